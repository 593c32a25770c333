// Package rtpsip is what the rtpproxy and rtpengine modules share between
// the relay and a script's SIP message: reading Call-ID, tags, body and
// source of the current message, writing the rewritten body back, the
// common modparams, and the statistics text the pvars and MI show.
package rtpsip

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/rtprelay"
)

// Message is what the relay needs from the current SIP message.
type Message struct {
	CallID, FromTag, ToTag string
	Reply                  bool   // a reply (onreply_route)
	Method                 string // request method, or the CSeq method of a reply
	Code                   int    // reply status code
	Body                   []byte // the SDP (nil when absent)
	Src                    netip.Addr
}

// ErrNoMessage is returned outside routes that have a SIP message.
var ErrNoMessage = errors.New("no SIP message in this route")

// Read extracts the current message's fields. In a failure route the
// request is used. A body whose Content-Type is not application/sdp (a
// multipart one, for example) counts as no SDP.
func Read(m *msgctx.Msg) (Message, error) {
	var msg sip.Message
	var out Message
	switch {
	case m.Resp != nil && m.Kind != ast.FailureRoute:
		msg = m.Resp
		out.Reply, out.Code = true, m.Resp.StatusCode
	case m.Req != nil:
		msg = m.Req
	case m.Resp != nil:
		msg = m.Resp
		out.Reply, out.Code = true, m.Resp.StatusCode
	default:
		return out, ErrNoMessage
	}
	out.Method = m.Method()
	if h := msg.CallID(); h != nil {
		out.CallID = h.Value()
	}
	if out.CallID == "" {
		return out, errors.New("message has no Call-ID")
	}
	if h := msg.From(); h != nil {
		out.FromTag, _ = h.Params.Get("tag")
	}
	if h := msg.To(); h != nil {
		out.ToTag, _ = h.Params.Get("tag")
	}
	if body := msg.Body(); len(strings.TrimSpace(string(body))) > 0 {
		ct := ""
		if hs := msg.GetHeaders("Content-Type"); len(hs) > 0 {
			ct = strings.ToLower(strings.TrimSpace(hs[0].Value()))
		}
		if ct == "" || strings.HasPrefix(ct, "application/sdp") {
			out.Body = body
		}
	}
	if a, err := netip.ParseAddr(strings.Trim(m.Src.IP, "[]")); err == nil {
		out.Src = a.Unmap()
	}
	return out, nil
}

// SetBody replaces the body of the current message (Content-Length follows).
func SetBody(m *msgctx.Msg, body []byte) {
	switch {
	case m.Resp != nil && m.Kind != ast.FailureRoute:
		m.Resp.SetBody(body)
	case m.Req != nil:
		m.Req.SetBody(body)
	case m.Resp != nil:
		m.Resp.SetBody(body)
	}
}

// Logf writes a script log line through the message's host.
func Logf(m *msgctx.Msg, level int, format string, args ...any) {
	if m != nil && m.Host != nil {
		m.Host.Log(m, level, fmt.Sprintf(format, args...))
	}
}

// Settings are the relay modparams both modules take.
type Settings struct {
	Interfaces   []string // "interfaces" values, each a list
	PortMin      int
	PortMax      int
	Timeout      int // seconds
	HoldTimeout  int
	SetupTimeout int
	DrainTime    int
}

// Profile turns the modparams into a relay profile configuration.
func (s Settings) Profile() (rtprelay.ProfileConfig, error) {
	var cfg rtprelay.ProfileConfig
	for _, v := range s.Interfaces {
		ifs, err := rtprelay.ParseInterfaces(v, s.PortMin, s.PortMax)
		if err != nil {
			return cfg, err
		}
		cfg.Interfaces = append(cfg.Interfaces, ifs...)
	}
	for name, v := range map[string]int{"media_timeout": s.Timeout, "hold_timeout": s.HoldTimeout,
		"setup_timeout": s.SetupTimeout, "drain_time": s.DrainTime} {
		if v < 0 {
			return cfg, fmt.Errorf("%s cannot be negative", name)
		}
	}
	cfg.Timeout = time.Duration(s.Timeout) * time.Second
	cfg.HoldTimeout = time.Duration(s.HoldTimeout) * time.Second
	cfg.SetupTimeout = time.Duration(s.SetupTimeout) * time.Second
	cfg.DrainTime = time.Duration(s.DrainTime) * time.Second
	if len(cfg.Interfaces) == 0 {
		return cfg, errors.New(`no media interface: set modparam "interfaces", e.g. "external/203.0.113.5:30000-39999;internal/10.0.0.1:40000-49999"`)
	}
	return cfg, rtprelay.CheckProfile(cfg)
}

// StatLine is $rtpstat's text, in OpenSIPS's rtpengine format.
func StatLine(si rtprelay.SessionInfo) string {
	var rtp, rtcp rtprelay.EndpointStats
	for _, st := range si.Streams {
		for _, l := range st.Legs {
			rtp.Packets += l.RTP.Packets - l.RTP.RTCP
			rtp.Bytes += l.RTP.Bytes
			rtp.Dropped += l.RTP.Dropped
			rtcp.Packets += l.RTCP.Packets + l.RTP.RTCP
			rtcp.Bytes += l.RTCP.Bytes
			rtcp.Dropped += l.RTCP.Dropped
		}
	}
	return fmt.Sprintf("RTP: %d bytes, %d packets, %d errors; RTCP: %d bytes, %d packets, %d errors",
		rtp.Bytes, rtp.Packets, rtp.Dropped, rtcp.Bytes, rtcp.Packets, rtcp.Dropped)
}

// SessionMap renders a session for MI and $rtpquery.
func SessionMap(si rtprelay.SessionInfo) map[string]any {
	streams := make([]any, 0, len(si.Streams))
	for _, st := range si.Streams {
		sm := map[string]any{"index": st.Index, "media": st.Media, "active": st.Active}
		if st.Active {
			legs := make([]any, 2)
			for k, l := range st.Legs {
				legs[k] = map[string]any{
					"tag": si.Tags[k], "interface": l.Interface, "local": l.Local.String(),
					"target": addrString(l.Target), "latched": addrString(l.Latched), "hold": l.Hold,
					"rtp": endpointMap(l.RTP), "rtcp": endpointMap(l.RTCP),
				}
			}
			sm["legs"] = legs
		}
		streams = append(streams, sm)
	}
	return map[string]any{
		"call-id": si.CallID, "from-tag": si.FromTag, "tags": []any{si.Tags[0], si.Tags[1]},
		"created": si.Created.Unix(), "last-activity": si.LastActivity.Unix(),
		"answered": si.Answered, "hold": si.Hold, "streams": streams,
		"totals": map[string]any{"caller": endpointMap(si.Sent[0]), "callee": endpointMap(si.Sent[1])},
	}
}

func addrString(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func endpointMap(e rtprelay.EndpointStats) map[string]any {
	m := map[string]any{
		"packets": e.Packets, "bytes": e.Bytes, "lost": e.Lost, "jitter-us": e.JitterUs,
		"dropped": e.Dropped, "non-rtp": e.NonRTP, "wrong-source": e.WrongSrc, "no-target": e.NoTarget,
	}
	if e.SSRC != 0 {
		m["ssrc"] = strconv.FormatUint(uint64(e.SSRC), 10)
	}
	if !e.LastSeen.IsZero() {
		m["last-seen"] = e.LastSeen.Unix()
	}
	return m
}

// StatsMap renders the relay counters for MI.
func StatsMap(p *rtprelay.Profile) map[string]any {
	st := p.Relay().Stats()
	var ifs []any
	for _, in := range p.Config().Interfaces {
		ifs = append(ifs, map[string]any{"name": in.Name, "bind": in.Bind.String(), "advertise": in.Advertise.String(),
			"ports": strconv.Itoa(in.MinPort) + "-" + strconv.Itoa(in.MaxPort)})
	}
	return map[string]any{
		"interfaces": ifs, "sessions": st.Sessions, "streams": st.Streams,
		"ports_in_use": st.PortsInUse, "ports_draining": st.PortsDraining, "ports_total": st.PortsTotal,
		"sessions_created": st.SessionsCreated, "sessions_deleted": st.SessionsDeleted,
		"sessions_timed_out": st.SessionsTimedOut, "bogus_streams": st.BogusStreams,
		"disabled_streams": st.DisabledStreams, "alloc_failures": st.AllocFailures,
		"packets": st.Media.Packets, "bytes": st.Media.Bytes, "dropped": st.Media.Dropped,
		"non_rtp": st.Media.NonRTP, "wrong_source": st.Media.WrongSrc, "no_target": st.Media.NoTarget,
		"drained": st.Drained,
	}
}
