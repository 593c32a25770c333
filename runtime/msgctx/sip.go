package msgctx

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// SIPHost is what the routing modules (tm, rr, core forward) ask of the SIP
// runtime beyond Host. It is a separate, optional interface: a Host that only
// logs and replies (unit-test hosts) need not implement it, and the functions
// that need it log an error and return -1 when the Host lacks it.
// The SIP runtime and the `sipedge test` Recorder implement it.
type SIPHost interface {
	// Forward relays the current request statelessly (core forward()).
	// dst is "" for $du or else the R-URI, or "[proto:]host[:port]".
	Forward(m *Msg, dst string) error
	// Relay relays the current request statefully (tm t_relay), creating its
	// transaction if needed: one branch for $ru/$du and one per
	// append_branch() branch. dst, when not "", is an outbound proxy used
	// for branches without a $du. It returns an OpenSIPS t_relay code
	// (1 sent, -1 internal error … -6 send failed).
	Relay(m *Msg, dst string, flags RelayFlags) int
	// TransReply sends a stateful reply (t_reply), creating the transaction
	// if needed; it returns 1 or a negative code.
	TransReply(m *Msg, code int, reason string) int
	// NewTransaction creates the transaction for the request (t_newtran).
	// It returns 1, or 0 when the request is a retransmission of an existing
	// transaction (the script stops, as in OpenSIPS), or -1.
	NewTransaction(m *Msg) int
	// CheckTransaction implements t_check_trans(): 1 when the request
	// belongs to a transaction (CANCEL: the INVITE's; ACK: a hop-by-hop ACK),
	// 0 for a retransmission that was absorbed (stops the script), -1 when
	// there is none and -2 for an end-to-end ACK.
	CheckTransaction(m *Msg) int
	// Myself tells whether host (and port, 0 = any) names one of our
	// sockets or their advertised addresses.
	Myself(host string, port int) bool
}

// RelayFlags are t_relay()'s string flags.
type RelayFlags uint8

const (
	RelayNoAuto477     RelayFlags = 1 << iota // no-auto-477 (0x02)
	RelayNoDNSFailover                        // no-dns-failover (0x04)
	RelayPassReason                           // pass-reason-hdr (0x08)
	RelayAllowNoCancel                        // allow-no-cancel (0x10)
)

// TransInfo is what the SIP runtime tells the tm functions and pvars about
// the transaction a message belongs to. The zero value means "none".
type TransInfo struct {
	// ID is $T_id; "" when the message has no transaction.
	ID string
	// Code is $T_reply_code: the last stateful reply sent (request route),
	// the reply being processed (onreply), the winning reply (failure).
	Code int
	// Branch is $T_branch_idx + 1; 0 outside per-branch routes.
	Branch int
	// Cancelled is t_was_cancelled(): the UAC sent a CANCEL.
	Cancelled bool
	// LastLocal and AllLocal answer t_local_replied("last") and ("all").
	LastLocal, AllLocal bool
	// FrTimeout and FrInvTimeout are $T_fr_timeout and $T_fr_inv_timeout in
	// seconds; 0 means the tm modparam.
	FrTimeout, FrInvTimeout int
	// RURI is $T_ruri: the Request-URI of the current branch.
	RURI string
}

// RecordRoute is what record_route(), record_route_preset() and
// add_rr_param() asked for on one request.
type RecordRoute struct {
	On bool // record_route() or record_route_preset() was called
	// Params are URI parameters (";a=b;c") from record_route(params) and
	// add_rr_param(); add_rr_param may come before or after record_route.
	Params string
	// Preset and Preset2 are record_route_preset's addresses ("host:port"
	// or a SIP URI); Preset2, when set, is the inbound one.
	Preset, Preset2 string
}

// Hop is where a request goes next.
type Hop struct {
	Proto string // "udp", "tcp", "tls", "ws", "wss"
	Host  string // IP or name, without IPv6 brackets
	Port  int    // 0: the protocol's default
	// Default is true when the port was not given (DNS SRV would apply).
	Default bool
}

// String renders "proto:host:port" with the port made explicit.
func (h Hop) String() string {
	return h.Proto + ":" + net.JoinHostPort(h.Host, strconv.Itoa(h.PortOrDefault()))
}

// Addr is "host:port" with the port made explicit.
func (h Hop) Addr() string { return net.JoinHostPort(h.Host, strconv.Itoa(h.PortOrDefault())) }

// PortOrDefault is Port, or the protocol's well-known port.
func (h Hop) PortOrDefault() int {
	if h.Port > 0 {
		return h.Port
	}
	switch h.Proto {
	case "tls":
		return 5061
	case "ws":
		return 80
	case "wss":
		return 443
	}
	return 5060
}

var errNoDest = errors.New("no destination")

// ParseHop reads a destination: "[proto:]host[:port]" (core forward,
// t_relay's outbound proxy) or a SIP URI ($du, R-URI). A URI's
// ;transport= parameter or a sips: scheme choose the protocol.
func ParseHop(s string) (Hop, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Hop{}, errNoDest
	}
	low := strings.ToLower(s)
	if strings.HasPrefix(low, "sip:") || strings.HasPrefix(low, "sips:") || strings.HasPrefix(low, "<sip") {
		var u sip.Uri
		if err := sip.ParseUri(strings.Trim(s, "<>"), &u); err != nil {
			return Hop{}, fmt.Errorf("bad destination URI %q: %v", s, err)
		}
		return URIHop(&u)
	}
	h := Hop{Proto: "udp"}
	if i := strings.IndexByte(s, ':'); i > 0 {
		switch p := strings.ToLower(s[:i]); p {
		case "udp", "tcp", "tls", "ws", "wss", "sctp":
			h.Proto, s = p, s[i+1:]
		}
	}
	host, port, err := splitHostPort(s)
	if err != nil {
		return Hop{}, fmt.Errorf("bad destination %q: %v", s, err)
	}
	h.Host, h.Port, h.Default = host, port, port == 0
	return h, nil
}

// URIHop is the hop a SIP URI names.
func URIHop(u *sip.Uri) (Hop, error) {
	if u.Host == "" {
		return Hop{}, fmt.Errorf("URI %q has no host", u.String())
	}
	h := Hop{Proto: "udp", Host: strings.Trim(u.Host, "[]"), Port: u.Port, Default: u.Port == 0}
	if t, ok := u.UriParams.Get("transport"); ok && t != "" {
		h.Proto = strings.ToLower(t)
	}
	if strings.EqualFold(u.Scheme, "sips") {
		switch h.Proto {
		case "ws":
			h.Proto = "wss"
		default:
			h.Proto = "tls"
		}
	}
	if maddr, ok := u.UriParams.Get("maddr"); ok && maddr != "" {
		h.Host = strings.Trim(maddr, "[]")
	}
	return h, nil
}

func splitHostPort(s string) (string, int, error) {
	if s == "" {
		return "", 0, errNoDest
	}
	if s[0] == '[' { // [v6] or [v6]:port
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", 0, errors.New("unclosed [")
		}
		host, rest := s[1:end], s[end+1:]
		if rest == "" {
			return host, 0, nil
		}
		if rest[0] != ':' {
			return "", 0, errors.New("junk after ]")
		}
		p, err := parsePort(rest[1:])
		return host, p, err
	}
	if strings.Count(s, ":") > 1 { // bare IPv6
		return s, 0, nil
	}
	host, ps, ok := strings.Cut(s, ":")
	if !ok {
		return host, 0, nil
	}
	p, err := parsePort(ps)
	return host, p, err
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p <= 0 || p > 65535 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return p, nil
}

// NextHop is where the current request goes: $du if set, else the outbound
// proxy dst if given, else the Request-URI.
func NextHop(m *Msg, dst string) (Hop, error) {
	if m.DstURI != "" {
		return ParseHop(m.DstURI)
	}
	if dst != "" {
		return ParseHop(dst)
	}
	if m.Req == nil {
		return Hop{}, errors.New("no request")
	}
	return URIHop(&m.Req.Recipient)
}

// RRAddr is one socket address a Record-Route header names.
type RRAddr struct {
	Proto string // "udp", "tcp" …
	Host  string
	Port  int
}

// Values renders the Record-Route header values (without "Record-Route: ")
// that r asks for, topmost first. out is the socket the request leaves on
// and in the one it arrived on; when they differ and double is set, two
// values are made (outbound first), both marked ;r2=on. ftag is the From
// tag for ;ftag= ("" to leave it out); user is put in the URI when not "".
func (r RecordRoute) Values(in, out RRAddr, double bool, ftag, user string) []string {
	if !r.On {
		return nil
	}
	if r.Preset != "" {
		vals := []string{presetValue(r.Preset, r.Params)}
		if r.Preset2 != "" {
			vals = append(vals, presetValue(r.Preset2, r.Params))
		}
		return vals
	}
	two := double && (in.Proto != out.Proto || in.Host != out.Host || in.Port != out.Port) && in.Host != ""
	one := func(a RRAddr) string {
		var b strings.Builder
		b.WriteString("<sip:")
		if user != "" {
			b.WriteString(user)
			b.WriteByte('@')
		}
		if strings.IndexByte(a.Host, ':') >= 0 {
			b.WriteString("[" + a.Host + "]")
		} else {
			b.WriteString(a.Host)
		}
		if a.Port > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(a.Port))
		}
		if a.Proto != "" && a.Proto != "udp" {
			b.WriteString(";transport=")
			b.WriteString(a.Proto)
		}
		if two {
			b.WriteString(";r2=on")
		}
		b.WriteString(";lr")
		if ftag != "" {
			b.WriteString(";ftag=")
			b.WriteString(ftag)
		}
		b.WriteString(r.Params)
		b.WriteByte('>')
		return b.String()
	}
	if two {
		return []string{one(out), one(in)}
	}
	return []string{one(out)}
}

func presetValue(p, params string) string {
	p = strings.Trim(strings.TrimSpace(p), "<>")
	if !strings.HasPrefix(strings.ToLower(p), "sip:") && !strings.HasPrefix(strings.ToLower(p), "sips:") {
		p = "sip:" + p
	}
	if !strings.Contains(p, ";lr") {
		p += ";lr"
	}
	return "<" + p + params + ">"
}

// SplitRouteList splits a comma-separated list of name-addrs (a Route,
// Record-Route or Path value) into its entries, keeping commas inside <>.
func SplitRouteList(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '<':
			depth++
		case '>':
			depth--
		case ',':
			if depth == 0 {
				if p := strings.TrimSpace(s[start:i]); p != "" {
					out = append(out, p)
				}
				start = i + 1
			}
		}
	}
	if p := strings.TrimSpace(s[start:]); p != "" {
		out = append(out, p)
	}
	return out
}
