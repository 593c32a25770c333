// Package uac is the header-replacing part of OpenSIPS's uac module:
// uac_replace_from() and uac_replace_to() rewrite the From/To display name
// and URI of a request (anonymisation, number presentation), and the
// original URI is kept in a Record-Route parameter (vsf / vst) so that the
// dialog's sequential requests are put back the way each side expects
// (restore_mode "auto"), or on uac_restore_from()/uac_restore_to()
// ("manual").
//
// The stored value is OpenSIPS's scheme: the original and the new URI
// XORed together (and with restore_passwd when set), base64-encoded, so
// applying it to whichever of the two a request carries yields the other.
package uac

import (
	"encoding/base64"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "uac"

// Restore modes.
const (
	RestoreNone   = "none"
	RestoreManual = "manual"
	RestoreAuto   = "auto"
)

type config struct {
	mode      string
	passwd    string
	fromParam string
	toParam   string
}

var cur atomic.Pointer[config]

func defaults() *config {
	return &config{mode: RestoreAuto, fromParam: "vsf", toParam: "vst"}
}

func init() {
	cur.Store(defaults())
	optStr := check.ArgSpec{Kind: check.ArgStr, Optional: true}
	str := check.ArgSpec{Kind: check.ArgStr}
	routes := check.Routes(ast.RequestRoute, ast.BranchRoute, ast.FailureRoute)
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "restore_mode", Kind: modules.ParamStr, Default: value.S(RestoreAuto)},
			{Name: "restore_passwd", Kind: modules.ParamStr},
			{Name: "rr_from_store_param", Kind: modules.ParamStr, Default: value.S("vsf")},
			{Name: "rr_to_store_param", Kind: modules.ParamStr, Default: value.S("vst")},
			{Name: "force_dialog", Kind: modules.ParamInt, Default: value.I(0)},
		},
		Funcs: []*modules.Func{
			{Name: "uac_replace_from", Args: []check.ArgSpec{optStr, str}, Routes: routes, Fixup: fixupReplace, Call: callReplaceFrom},
			{Name: "uac_replace_to", Args: []check.ArgSpec{optStr, str}, Routes: routes, Fixup: fixupReplace, Call: callReplaceTo},
			{Name: "uac_restore_from", Routes: routes, Call: callRestoreFrom},
			{Name: "uac_restore_to", Routes: routes, Call: callRestoreTo},
		},
		Configure: configure,
	})
	tm.OnRequest(autoRestore)
}

func configure(p modules.Params) (func(), error) {
	c := &config{
		mode:      strings.ToLower(strings.TrimSpace(p.Str("restore_mode"))),
		passwd:    p.Str("restore_passwd"),
		fromParam: strings.TrimSpace(p.Str("rr_from_store_param")),
		toParam:   strings.TrimSpace(p.Str("rr_to_store_param")),
	}
	switch c.mode {
	case RestoreNone, RestoreManual, RestoreAuto:
	default:
		return nil, fmt.Errorf("restore_mode %q: want none, manual or auto", p.Str("restore_mode"))
	}
	for _, n := range []string{c.fromParam, c.toParam} {
		if n == "" || strings.ContainsAny(n, " \t;=,<>\"") {
			return nil, fmt.Errorf("%q is not a usable Record-Route parameter name", n)
		}
	}
	if c.fromParam == c.toParam {
		return nil, fmt.Errorf("rr_from_store_param and rr_to_store_param must differ")
	}
	if p.Int("force_dialog") != 0 {
		return nil, fmt.Errorf("force_dialog is not supported (sipedge keeps the original URIs in Record-Route only)")
	}
	return func() { cur.Store(c) }, nil
}

func logErr(m *msgctx.Msg, format string, args ...any) {
	if m.Host != nil {
		m.Host.Log(m, msgctx.LErr, "uac: "+fmt.Sprintf(format, args...))
	}
}

func fixupReplace(args []check.FixupArg) (any, error) {
	// uac_replace_from("sip:…") with one argument is the 2.x form: the URI
	if a := args[1]; a.Present && a.Const && a.Str != "" {
		var u sip.Uri
		if err := sip.ParseUri(a.Str, &u); err != nil || u.Host == "" {
			return nil, check.ArgError(1, "%q is not a SIP URI", a.Str)
		}
	}
	return nil, nil
}

// encode is OpenSIPS's stored form of a replacement: old XOR new (XOR the
// password), base64 without padding, URL-safe so it fits a URI parameter.
func encode(old, repl, passwd string) string {
	n := max(len(old), len(repl))
	b := make([]byte, n)
	for i := range n {
		var x byte
		if i < len(old) {
			x = old[i]
		}
		if i < len(repl) {
			x ^= repl[i]
		}
		if passwd != "" {
			x ^= passwd[i%len(passwd)]
		}
		b[i] = x
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// decode applies a stored value to cur, yielding the other URI.
func decode(enc, cur, passwd string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return "", fmt.Errorf("bad stored value %q", enc)
	}
	out := make([]byte, len(b))
	for i := range b {
		x := b[i]
		if passwd != "" {
			x ^= passwd[i%len(passwd)]
		}
		if i < len(cur) {
			x ^= cur[i]
		}
		out[i] = x
	}
	res := strings.TrimRight(string(out), "\x00")
	if strings.IndexByte(res, 0) >= 0 {
		return "", fmt.Errorf("stored value %q does not match the header", enc)
	}
	return res, nil
}

// nameAddr is the From or To header of a request.
type nameAddr struct {
	display *string
	uri     *sip.Uri
	params  sip.HeaderParams
}

func header(req *sip.Request, to bool) (nameAddr, bool) {
	if to {
		h := req.To()
		if h == nil {
			return nameAddr{}, false
		}
		return nameAddr{&h.DisplayName, &h.Address, h.Params}, true
	}
	h := req.From()
	if h == nil {
		return nameAddr{}, false
	}
	return nameAddr{&h.DisplayName, &h.Address, h.Params}, true
}

type msgState struct {
	replacedFrom, replacedTo bool
	restored                 bool // the stored URIs were applied to this request
}

func state(m *msgctx.Msg) *msgState {
	return m.ModData(Name, func() any { return &msgState{} }).(*msgState)
}

func replace(m *msgctx.Msg, a *modules.Args, to bool) int {
	fn := "uac_replace_from"
	if to {
		fn = "uac_replace_to"
	}
	if m.Req == nil {
		logErr(m, "%s: there is no request", fn)
		return -1
	}
	h, ok := header(m.Req, to)
	if !ok {
		logErr(m, "%s: the request has no %s header", fn, map[bool]string{false: "From", true: "To"}[to])
		return -1
	}
	display, hasDisplay := "", false
	uriStr := ""
	switch {
	case a.Has(1):
		uriStr = strings.TrimSpace(a.Str(1))
		if a.Has(0) {
			display, hasDisplay = a.Str(0), true
		}
	case a.Has(0): // 2.x: uac_replace_from(uri)
		uriStr = strings.TrimSpace(a.Str(0))
	}
	st := state(m)
	if (to && st.replacedTo) || (!to && st.replacedFrom) {
		logErr(m, "%s: already called for this request (OpenSIPS allows one change per branch)", fn)
		return -1
	}
	if hasDisplay {
		*h.display = strings.Trim(display, `"`)
	}
	if uriStr != "" {
		var u sip.Uri
		if err := sip.ParseUri(strings.Trim(uriStr, "<>"), &u); err != nil || u.Host == "" {
			logErr(m, "%s: %q is not a SIP URI", fn, uriStr)
			return -1
		}
		old := h.uri.String()
		*h.uri = u
		c := cur.Load()
		if c.mode != RestoreNone && old != u.String() {
			param := c.fromParam
			if to {
				param = c.toParam
			}
			m.RR.Params += ";" + param + "=" + encode(old, u.String(), c.passwd)
		}
	}
	if to {
		st.replacedTo = true
	} else {
		st.replacedFrom = true
	}
	return 1
}

func callReplaceFrom(m *msgctx.Msg, a *modules.Args) int { return replace(m, a, false) }
func callReplaceTo(m *msgctx.Msg, a *modules.Args) int   { return replace(m, a, true) }

// paramValue finds name in "a=b;c;d=e".
func paramValue(params, name string) (string, bool) {
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// restore applies the stored values found in params (our Route's
// parameters) to a sequential request. A request that goes the way the
// initial one went (its From tag is the ftag) carries the original From
// and gets the replacement; one going back carries the replacement in To
// and gets the original. Without ftag the request counts as going the
// initial way, as in OpenSIPS.
func restore(m *msgctx.Msg, params string, c *config, from, to bool) (int, error) {
	req := m.Req
	upstream := false
	if ftag, ok := paramValue(params, "ftag"); ok {
		tag := ""
		if f := req.From(); f != nil {
			tag, _ = f.Params.Get("tag")
		}
		upstream = tag != ftag
	}
	n := 0
	for _, x := range []struct {
		param string
		on    bool
		to    bool // the header the value was taken from
	}{{c.fromParam, from, false}, {c.toParam, to, true}} {
		if !x.on {
			continue
		}
		enc, ok := paramValue(params, x.param)
		if !ok || enc == "" {
			continue
		}
		// downstream: the header is where it was; upstream: From and To swapped
		h, ok := header(req, x.to != upstream)
		if !ok {
			continue
		}
		other, err := decode(enc, h.uri.String(), c.passwd)
		if err != nil {
			return n, err
		}
		var u sip.Uri
		if err := sip.ParseUri(other, &u); err != nil {
			return n, fmt.Errorf("restored URI %q: %v", other, err)
		}
		*h.uri = u
		n++
	}
	return n, nil
}

// ourRouteParams returns the parameters of the request's first Route when
// it names this proxy.
func ourRouteParams(m *msgctx.Msg) (string, bool) {
	if m.Req == nil {
		return "", false
	}
	var r *sip.RouteHeader
	for _, h := range m.Req.Headers() {
		if rh, ok := h.(*sip.RouteHeader); ok {
			r = rh
			break
		}
	}
	if r == nil || r.Address.UriParams == nil {
		return "", false
	}
	if sh, ok := m.Host.(msgctx.SIPHost); ok {
		port := r.Address.Port
		if port == 0 {
			port = 5060
		}
		if !sh.Myself(strings.Trim(r.Address.Host, "[]"), port) {
			return "", false
		}
	}
	return r.Address.UriParams.ToString(';'), true
}

// autoRestore runs before the request route (tm's request hook): a
// sequential request whose Route (ours) carries stored URIs gets them
// back, in restore_mode auto.
func autoRestore(m *msgctx.Msg) {
	c := cur.Load()
	if c.mode != RestoreAuto || m.Req == nil {
		return
	}
	if t := m.Req.To(); t == nil || !t.Params.Has("tag") {
		return
	}
	params, ok := ourRouteParams(m)
	if !ok || (!strings.Contains(params, c.fromParam+"=") && !strings.Contains(params, c.toParam+"=")) {
		return
	}
	n, err := restore(m, params, c, true, true)
	if err != nil {
		logErr(m, "restoring From/To: %v", err)
	}
	if n > 0 {
		state(m).restored = true
	}
}

// rrParams reads $rr_params (the rr module's record of our Route after
// loose_route()).
func rrParams(m *msgctx.Msg) (string, bool) {
	s := pvar.Lookup("rr_params")
	if s == nil {
		return "", false
	}
	v := s.Get(m, nil, pvar.Index{})
	if v.IsNull() {
		return "", false
	}
	return v.AsString(), true
}

func restoreCall(m *msgctx.Msg, from bool) int {
	fn := "uac_restore_to"
	if from {
		fn = "uac_restore_from"
	}
	if m.Req == nil {
		return -1
	}
	if st, ok := m.Mod[Name].(*msgState); ok && st.restored {
		return 1 // done already (restore_mode auto)
	}
	params, ok := rrParams(m)
	if !ok {
		if params, ok = ourRouteParams(m); !ok {
			return -1
		}
	}
	n, err := restore(m, params, cur.Load(), from, !from)
	if err != nil {
		logErr(m, "%s: %v", fn, err)
		return -1
	}
	if n == 0 {
		return -1
	}
	return 1
}

func callRestoreFrom(m *msgctx.Msg, _ *modules.Args) int { return restoreCall(m, true) }
func callRestoreTo(m *msgctx.Msg, _ *modules.Args) int   { return restoreCall(m, false) }
