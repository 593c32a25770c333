// Package rtpengine is OpenSIPS's rtpengine module on sipedge's built-in
// media relay (runtime/rtprelay): rtpengine_offer/answer/manage/delete
// rewrite SDP and steer media through the relay's named interfaces, the
// way OpenSIPS drives a Sipwise rtpengine daemon. There is no daemon and
// no control socket: the relay lives in the sipedge process and survives
// script reloads. See README.md for the modparams (interfaces, timeouts)
// and the flags honoured.
package rtpengine

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/rtprelay"
	"github.com/sipedge/sipedge/runtime/rtprelay/rtpsip"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "rtpengine"

// SockName is what sock_pvar arguments receive: the relay is built in.
const SockName = "builtin:sipedge"

// profile is the live generation's relay profile (interfaces, timeouts).
var profile atomic.Pointer[rtprelay.Profile]

// Profile returns the relay profile the live script configured, or nil
// before one went live.
func Profile() *rtprelay.Profile { return profile.Load() }

func init() {
	flagsArg := check.ArgSpec{Kind: check.ArgStr, Optional: true}
	varArg := check.ArgSpec{Kind: check.ArgVar, Optional: true, Writable: true}
	bodyArg := check.ArgSpec{Kind: check.ArgStr, Optional: true}
	sdpArgs := []check.ArgSpec{flagsArg, varArg, varArg, bodyArg}
	modules.Register(&modules.Info{
		Name: Name,
		Params: append(rtpsip.Params(), []modules.Param{
			// OpenSIPS's, for an external daemon: accepted and ignored.
			{Name: "rtpengine_sock", Kind: modules.ParamStr, Multi: true},
			{Name: "rtpengine_disable_tout", Kind: modules.ParamInt},
			{Name: "rtpengine_tout", Kind: modules.ParamInt},
			{Name: "rtpengine_retr", Kind: modules.ParamInt},
			{Name: "extra_id_pv", Kind: modules.ParamStr},
			{Name: "setid_avp", Kind: modules.ParamStr},
			{Name: "db_url", Kind: modules.ParamStr},
			{Name: "db_table", Kind: modules.ParamStr},
			{Name: "socket_column", Kind: modules.ParamStr},
			{Name: "set_column", Kind: modules.ParamStr},
			{Name: "notification_sock", Kind: modules.ParamStr},
		}...),
		Configure: configure,
		Funcs: []*modules.Func{
			{Name: "rtpengine_offer", Args: sdpArgs, Fixup: fixupFlags, Call: func(m *msgctx.Msg, a *modules.Args) int {
				return offerAnswer(m, a, rtprelay.Offer, "rtpengine_offer")
			}},
			{Name: "rtpengine_answer", Args: sdpArgs, Fixup: fixupFlags, Call: callAnswer},
			{Name: "rtpengine_manage", Args: sdpArgs, Fixup: fixupFlags, Call: callManage},
			{Name: "rtpengine_delete", Args: []check.ArgSpec{flagsArg, varArg}, Fixup: fixupFlags, Call: callDelete},
			{Name: "rtpengine_use_set", Args: []check.ArgSpec{{Kind: check.ArgInt}},
				Routes: check.Routes(ast.RequestRoute, ast.OnReplyRoute, ast.BranchRoute, ast.FailureRoute),
				Call:   func(*msgctx.Msg, *modules.Args) int { return 1 }},
		},
		PVars: []*pvar.Spec{
			{Name: "rtpstat", Arg: pvar.OptionalArg, Fix: fixStat, Get: getRtpstat},
			{Name: "rtpquery", Get: getRtpquery},
		},
		MI: []modules.MICommand{
			{Name: "rtpengine_show", Help: "show the built-in relay's interfaces and counters", Run: func(map[string]any) (any, error) { return rtpsip.MIShow(profile.Load()) }},
			{Name: "rtpengine_list_sessions", Help: "Params: [callid] ; list relay sessions with per-stream statistics", Run: rtpsip.MIList},
			{Name: "teardown", Help: "Params: callid ; drop a call's media and end its dialog (through the relay's end-call hook)", Run: miTeardown},
		},
	})
}

func configure(p modules.Params) (func(), error) {
	cfg, err := rtpsip.ProfileConfig(p)
	if err != nil {
		return nil, err
	}
	return func() {
		prof, err := rtprelay.Default().NewProfile(cfg)
		if err == nil { // checked above
			profile.Store(prof)
		}
	}, nil
}

// fixupFlags checks a constant flags string at load time.
func fixupFlags(args []check.FixupArg) (any, error) {
	return rtpsip.FixupFlags(args[0], parseFlags)
}

func flagsOf(m *msgctx.Msg, a *modules.Args, fn string) (*flags, bool) {
	return rtpsip.FlagsOf(m, a, fn, parseFlags)
}

func setSock(m *msgctx.Msg, a *modules.Args, i int) {
	if a.Has(i) && i < len(a.Refs) && a.Refs[i] != nil {
		a.Refs[i].Set(m, "=", value.S(SockName))
	}
}

// offerAnswer is rtpengine_offer/answer: the body (or the body argument)
// goes through the relay and the result replaces the message body, or
// lands in sdp_pvar when one is given.
func offerAnswer(m *msgctx.Msg, a *modules.Args, op rtprelay.Op, fn string) int {
	f, ok := flagsOf(m, a, fn)
	if !ok {
		return -1
	}
	prof := profile.Load()
	if prof == nil {
		rtpsip.Logf(m, msgctx.LErr, "%s: the media relay is not configured", fn)
		return -1
	}
	msg, err := rtpsip.Read(m)
	if err != nil {
		rtpsip.Logf(m, msgctx.LErr, "%s: %v", fn, err)
		return -1
	}
	body := msg.Body
	if a.Has(3) {
		body = []byte(a.Str(3))
	}
	if len(body) == 0 {
		rtpsip.Logf(m, msgctx.LErr, "%s: no SDP body", fn)
		return -1
	}
	req := &rtprelay.Request{
		Op: op, CallID: msg.CallID, FromTag: msg.FromTag, ToTag: msg.ToTag, Reply: msg.Reply, Body: body,
		InIface: f.in, OutIface: f.out, TrustAddress: f.trust, SIPSource: msg.Src, MediaAddress: f.mediaAddr,
		ReplaceOrigin: f.origin, ReplaceSessionConn: f.sessConn, Profile: f.profile,
		Asymmetric: f.asym, Handover: f.handover, LookupOnly: f.forceAnswer,
	}
	if f.callID != "" {
		req.CallID = f.callID
	}
	if f.fromTag != "" {
		req.FromTag = f.fromTag
	}
	if f.toTag != "" {
		req.ToTag = f.toTag
	}
	res, err := prof.Process(req)
	if err != nil {
		rtpsip.Logf(m, msgctx.LErr, "%s: %v", fn, err)
		return -1
	}
	setSock(m, a, 1)
	if a.Has(2) && len(a.Refs) > 2 && a.Refs[2] != nil {
		if err := a.Refs[2].Set(m, "=", value.S(string(res.Body))); err != nil {
			rtpsip.Logf(m, msgctx.LErr, "%s: cannot set %s: %v", fn, a.Refs[2].Text, err)
		}
		return 1
	}
	rtpsip.SetBody(m, res.Body)
	return 1
}

// rtpengine_answer: on a request only ACK and PRACK carry answers.
func callAnswer(m *msgctx.Msg, a *modules.Args) int {
	if m.Req != nil && m.Resp == nil {
		if meth := string(m.Req.Method); meth != "ACK" && meth != "PRACK" {
			return -1
		}
	}
	return offerAnswer(m, a, rtprelay.Answer, "rtpengine_answer")
}

func callDelete(m *msgctx.Msg, a *modules.Args) int {
	f, ok := flagsOf(m, a, "rtpengine_delete")
	if !ok {
		return -1
	}
	msg, err := rtpsip.Read(m)
	if err != nil {
		rtpsip.Logf(m, msgctx.LErr, "rtpengine_delete: %v", err)
		return -1
	}
	callID, from, to := msg.CallID, msg.FromTag, ""
	if f.callID != "" {
		callID = f.callID
	}
	if f.fromTag != "" {
		from = f.fromTag
	}
	if f.toTagSet {
		to = msg.ToTag
		if f.toTag != "" {
			to = f.toTag
		}
	}
	setSock(m, a, 1)
	if rtprelay.Default().Delete(callID, from, to) == 0 {
		return -1
	}
	return 1
}

// callManage picks offer, answer or delete from the message, as OpenSIPS's
// rtpengine_manage does; an SDP in a reply is an answer when the other
// party has an offer outstanding in the relay, else an offer (late offer).
func callManage(m *msgctx.Msg, a *modules.Args) int {
	msg, err := rtpsip.Read(m)
	if err != nil {
		rtpsip.Logf(m, msgctx.LErr, "rtpengine_manage: %v", err)
		return -1
	}
	switch msg.Method {
	case "INVITE", "ACK", "CANCEL", "BYE", "UPDATE", "PRACK":
	default:
		return -1
	}
	if msg.Method == "CANCEL" || msg.Method == "BYE" {
		return callDelete(m, a)
	}
	hasSDP := len(msg.Body) > 0 || a.Has(3)
	if !msg.Reply {
		if !hasSDP {
			return -1
		}
		switch msg.Method {
		case "ACK", "PRACK":
			return offerAnswer(m, a, rtprelay.Answer, "rtpengine_manage")
		case "INVITE":
			if m.Kind == ast.FailureRoute {
				return callDelete(m, a)
			}
		}
		return offerAnswer(m, a, rtprelay.Offer, "rtpengine_manage")
	}
	if msg.Code >= 300 {
		return callDelete(m, a)
	}
	if !hasSDP {
		return -1
	}
	op := rtprelay.Default().Expecting(msg.CallID, msg.FromTag, msg.ToTag, true)
	if msg.Method == "UPDATE" {
		op = rtprelay.Answer
	}
	return offerAnswer(m, a, op, "rtpengine_manage")
}

// $rtpstat and $rtpstat(name): the relay's statistics for the current
// call. Names: jitter-average/min/max (microseconds), packetloss-average/
// min/max (lost packets per stream), mos-* (always NULL: no MOS here).
var statNames = map[string]bool{
	"mos-average": true, "mos-min": true, "mos-max": true, "mos-min-at": true, "mos-max-at": true,
	"jitter-average": true, "jitter-min": true, "jitter-max": true, "jitter-min-at": true, "jitter-max-at": true,
	"roundtrip-average": true, "roundtrip-min": true, "roundtrip-max": true, "roundtrip-min-at": true, "roundtrip-max-at": true,
	"packetloss-average": true, "packetloss-min": true, "packetloss-max": true, "packetloss-min-at": true, "packetloss-max-at": true,
}

func fixStat(arg string, _ check.Slots) (any, error) {
	n := strings.ToLower(arg)
	if n != "" && !statNames[n] {
		return nil, fmt.Errorf("unknown RTP statistic %q", arg)
	}
	return n, nil
}

func currentSession(m *msgctx.Msg) (rtprelay.SessionInfo, bool) {
	msg, err := rtpsip.Read(m)
	if err != nil {
		return rtprelay.SessionInfo{}, false
	}
	return rtprelay.Default().Lookup(msg.CallID, "")
}

func getRtpstat(m *msgctx.Msg, arg any, _ pvar.Index) value.Value {
	si, ok := currentSession(m)
	if !ok {
		return value.Null
	}
	name, _ := arg.(string)
	if name == "" {
		return value.S(rtpsip.StatLine(si))
	}
	var vals []uint64
	for _, st := range si.Streams {
		for _, l := range st.Legs {
			if l.RTP.Packets == 0 {
				continue
			}
			switch {
			case strings.HasPrefix(name, "jitter-"):
				vals = append(vals, l.RTP.JitterUs)
			case strings.HasPrefix(name, "packetloss-"):
				vals = append(vals, l.RTP.Lost)
			}
		}
	}
	if len(vals) == 0 || strings.HasSuffix(name, "-at") {
		return value.Null
	}
	var out uint64
	switch {
	case strings.HasSuffix(name, "-average"):
		for _, v := range vals {
			out += v
		}
		out /= uint64(len(vals))
	case strings.HasSuffix(name, "-min"):
		out = vals[0]
		for _, v := range vals {
			out = min(out, v)
		}
	default:
		for _, v := range vals {
			out = max(out, v)
		}
	}
	return value.I(int(out))
}

func getRtpquery(m *msgctx.Msg, _ any, _ pvar.Index) value.Value {
	si, ok := currentSession(m)
	if !ok {
		return value.Null
	}
	return value.S(jsonString(rtpsip.SessionMap(si)))
}

func miTeardown(params map[string]any) (any, error) {
	callID, _ := params["callid"].(string)
	if callID == "" {
		return nil, errors.New("missing parameter callid")
	}
	n, hooked := rtprelay.Default().Teardown(callID)
	if n == 0 {
		return nil, fmt.Errorf("no media session for call %q", callID)
	}
	if !hooked {
		return "media dropped; no dialog hook installed to end the call", nil
	}
	return "OK", nil
}

func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}
