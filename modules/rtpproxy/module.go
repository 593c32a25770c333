// Package rtpproxy is OpenSIPS's rtpproxy module on sipedge's built-in
// media relay (runtime/rtprelay): rtpproxy_offer/answer/engage/unforce
// steer a call's media through the relay, in bridging mode between the
// interfaces named "internal" (flag i) and "external" (flag e). There is
// no RTPProxy daemon and no control socket: the relay is part of the
// sipedge process and survives script reloads. See README.md.
package rtpproxy

import (
	"errors"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/rtprelay"
	"github.com/sipedge/sipedge/runtime/rtprelay/rtpsip"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "rtpproxy"

// SockName is what sock_pvar arguments receive: the relay is built in.
const SockName = "builtin:sipedge"

// DefaultMarker is nortpproxy_str's default (without its line end).
const DefaultMarker = "a=nortpproxy:yes"

type state struct {
	prof   *rtprelay.Profile
	marker string
}

var live atomic.Pointer[state]

// Profile returns the relay profile the live script configured, or nil.
func Profile() *rtprelay.Profile {
	if s := live.Load(); s != nil {
		return s.prof
	}
	return nil
}

func init() {
	str := check.ArgSpec{Kind: check.ArgStr, Optional: true}
	num := check.ArgSpec{Kind: check.ArgInt, Optional: true}
	out := check.ArgSpec{Kind: check.ArgVar, Optional: true, Writable: true}
	routes := check.Routes(ast.RequestRoute, ast.OnReplyRoute, ast.FailureRoute, ast.BranchRoute, ast.LocalRoute)
	v := check.ArgSpec{Kind: check.ArgVar, Writable: true}
	modules.Register(&modules.Info{
		Name: Name,
		Params: append(rtpsip.Params(), []modules.Param{
			{Name: "nortpproxy_str", Kind: modules.ParamStr, Default: value.S(DefaultMarker + "\r\n")},
			// OpenSIPS's, for external RTPProxies: accepted and ignored.
			{Name: "rtpproxy_sock", Kind: modules.ParamStr, Multi: true},
			{Name: "rtpproxy_disable_tout", Kind: modules.ParamInt},
			{Name: "rtpproxy_timeout", Kind: modules.ParamStr},
			{Name: "rtpproxy_tout", Kind: modules.ParamInt},
			{Name: "rtpproxy_retr", Kind: modules.ParamInt},
			{Name: "rtpproxy_autobridge", Kind: modules.ParamInt},
			{Name: "default_set", Kind: modules.ParamInt},
			{Name: "db_url", Kind: modules.ParamStr},
			{Name: "db_table", Kind: modules.ParamStr},
			{Name: "rtpp_socket_col", Kind: modules.ParamStr},
			{Name: "set_id_col", Kind: modules.ParamStr},
			{Name: "rtpp_notify_socket", Kind: modules.ParamStr},
		}...),
		Configure: configure,
		Funcs: []*modules.Func{
			{Name: "rtpproxy_offer", Args: []check.ArgSpec{str, str, num, out, out, out}, Routes: routes, Fixup: fixupFlags,
				Call: func(m *msgctx.Msg, a *modules.Args) int { return offerAnswer(m, a, rtprelay.Offer, "rtpproxy_offer") }},
			{Name: "rtpproxy_answer", Args: []check.ArgSpec{str, str, num, out, out, out}, Routes: routes, Fixup: fixupFlags,
				Call: func(m *msgctx.Msg, a *modules.Args) int { return offerAnswer(m, a, rtprelay.Answer, "rtpproxy_answer") }},
			{Name: "rtpproxy_engage", Args: []check.ArgSpec{str, str, num, out, out}, Routes: routes, Fixup: fixupFlags, Call: callEngage},
			{Name: "rtpproxy_unforce", Args: []check.ArgSpec{num, out}, Routes: routes, Call: callUnforce},
			{Name: "rtpproxy_stats", Args: []check.ArgSpec{v, v, v, v, num, out}, Routes: routes, Call: callStats},
		},
		MI: []modules.MICommand{
			{Name: "rtpproxy_show", Help: "show the built-in relay's interfaces and counters", Run: func(map[string]any) (any, error) { return rtpsip.MIShow(Profile()) }},
			{Name: "rtpproxy_list_sessions", Help: "Params: [callid] ; list relay sessions with per-stream statistics", Run: rtpsip.MIList},
		},
	})
}

func configure(p modules.Params) (func(), error) {
	cfg, err := rtpsip.ProfileConfig(p)
	if err != nil {
		return nil, err
	}
	marker := strings.TrimRight(p.Str("nortpproxy_str"), "\r\n")
	if strings.ContainsAny(marker, "\r\n") {
		return nil, errors.New("nortpproxy_str must be one SDP line")
	}
	return func() {
		prof, err := rtprelay.Default().NewProfile(cfg)
		if err == nil { // checked above
			live.Store(&state{prof: prof, marker: marker})
		}
	}, nil
}

func fixupFlags(args []check.FixupArg) (any, error) {
	if a := args[1]; a.Present && a.Const && a.Str != "" {
		if _, err := netip.ParseAddr(a.Str); err != nil {
			return nil, check.ArgError(1, "%q is not an IP address", a.Str)
		}
	}
	return rtpsip.FixupFlags(args[0], parseFlags)
}

func flagsOf(m *msgctx.Msg, a *modules.Args, fn string) (*flags, bool) {
	return rtpsip.FlagsOf(m, a, fn, parseFlags)
}

func setRef(m *msgctx.Msg, a *modules.Args, i int, v string) {
	if a.Has(i) && i < len(a.Refs) && a.Refs[i] != nil {
		if err := a.Refs[i].Set(m, "=", value.S(v)); err != nil {
			rtpsip.Logf(m, msgctx.LErr, "cannot set %s: %v", a.Refs[i].Text, err)
		}
	}
}

// request builds the relay request for the current message.
func request(m *msgctx.Msg, a *modules.Args, op rtprelay.Op, fn string) (*rtprelay.Request, *state, bool) {
	f, ok := flagsOf(m, a, fn)
	if !ok {
		return nil, nil, false
	}
	st := live.Load()
	if st == nil {
		rtpsip.Logf(m, msgctx.LErr, "%s: the media relay is not configured", fn)
		return nil, nil, false
	}
	msg, err := rtpsip.Read(m)
	if err != nil {
		rtpsip.Logf(m, msgctx.LErr, "%s: %v", fn, err)
		return nil, nil, false
	}
	if len(msg.Body) == 0 {
		rtpsip.Logf(m, msgctx.LErr, "%s: no SDP body", fn)
		return nil, nil, false
	}
	for _, name := range []string{f.in, f.out} {
		if name != "" && !st.prof.HasInterface(name) {
			rtpsip.Logf(m, msgctx.LErr, "%s: flags name interface %q: define it in modparam(\"rtpproxy\", \"interfaces\", ...)", fn, name)
			return nil, nil, false
		}
	}
	req := &rtprelay.Request{
		Op: op, CallID: msg.CallID, FromTag: msg.FromTag, ToTag: msg.ToTag, Reply: msg.Reply, Body: msg.Body,
		InIface: f.in, OutIface: f.out, TrustAddress: f.trust, SIPSource: msg.Src,
		ReplaceOrigin: f.origin, ReplaceSessionConn: f.sessConn, Asymmetric: f.asym,
		LookupOnly: f.lookup, KeepBody: f.keep, Marker: st.marker, Force: f.force, Timeout: f.ttl,
	}
	if a.Has(1) {
		if ip := a.Str(1); ip != "" {
			addr, err := netip.ParseAddr(ip)
			if err != nil {
				rtpsip.Logf(m, msgctx.LErr, "%s: %q is not an IP address", fn, ip)
				return nil, nil, false
			}
			req.MediaAddress = addr.Unmap()
		}
	}
	return req, st, true
}

// offerAnswer is rtpproxy_offer/answer. Arguments: flags, ip, set_id
// (ignored: one built-in relay), sock_pvar, ret_pvar (relay IP:port of the
// first stream), body_pvar (the new body goes there instead of the
// message).
func offerAnswer(m *msgctx.Msg, a *modules.Args, op rtprelay.Op, fn string) int {
	req, st, ok := request(m, a, op, fn)
	if !ok {
		return -1
	}
	res, err := st.prof.Process(req)
	if err != nil {
		rtpsip.Logf(m, msgctx.LErr, "%s: %v", fn, err)
		return -1
	}
	setRef(m, a, 3, SockName)
	if res.Addr.IsValid() {
		setRef(m, a, 4, res.Addr.String())
	}
	if a.Has(5) && len(a.Refs) > 5 && a.Refs[5] != nil {
		setRef(m, a, 5, string(res.Body))
		return 1
	}
	if !req.KeepBody {
		rtpsip.SetBody(m, res.Body)
	}
	return 1
}

// rtpproxy_unforce([set_id[, sock_pvar]]): tear the call's media down.
func callUnforce(m *msgctx.Msg, a *modules.Args) int {
	msg, err := rtpsip.Read(m)
	if err != nil {
		rtpsip.Logf(m, msgctx.LErr, "rtpproxy_unforce: %v", err)
		return -1
	}
	setRef(m, a, 1, SockName)
	if rtprelay.Default().Delete(msg.CallID, msg.FromTag, msg.ToTag) == 0 {
		return -1
	}
	return 1
}

// rtpproxy_stats(up, down, sent, fail): packets from the caller, from the
// callee, relayed in all, dropped in all.
func callStats(m *msgctx.Msg, a *modules.Args) int {
	msg, err := rtpsip.Read(m)
	if err != nil {
		return -1
	}
	si, ok := rtprelay.Default().Lookup(msg.CallID, "")
	if !ok {
		return -1
	}
	up, down := si.Sent[0], si.Sent[1]
	for i, n := range []uint64{up.Packets + up.Dropped, down.Packets + down.Dropped, up.Packets + down.Packets, up.Dropped + down.Dropped} {
		if err := a.Refs[i].Set(m, "=", value.I(int(n))); err != nil {
			rtpsip.Logf(m, msgctx.LErr, "rtpproxy_stats: cannot set %s: %v", a.Refs[i].Text, err)
			return -1
		}
	}
	setRef(m, a, 5, SockName)
	return 1
}
