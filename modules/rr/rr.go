// Package rr is OpenSIPS's Record-Route module: record_route() makes this
// proxy stay on the path of a dialog, loose_route() routes in-dialog
// requests by their Route headers (RFC 3261 16.12, including strict-router
// interworking), and add_rr_param/check_route_param/is_direction keep
// per-dialog information in the Record-Route URI.
//
// record_route() only marks the request (msgctx.Msg.RR): the SIP runtime
// writes the header(s) when it sends the request, because the address is
// that of the outgoing socket, and two headers are written when the request
// leaves on another socket than it came in on (enable_double_rr).
package rr

import (
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "rr"

var recordRoutes = check.Routes(ast.RequestRoute, ast.BranchRoute, ast.FailureRoute)

func init() {
	intParam := func(name string, def int) modules.Param {
		return modules.Param{Name: name, Kind: modules.ParamInt, Default: value.I(def)}
	}
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			intParam("append_fromtag", 1),
			intParam("enable_double_rr", 1),
			intParam("add_username", 0),
			intParam("enable_socket_mismatch_warning", 1),
		},
		Funcs: []*modules.Func{
			{Name: "loose_route", Routes: check.Routes(ast.RequestRoute), Call: callLooseRoute},
			{Name: "record_route", Args: []check.ArgSpec{{Kind: check.ArgStr, Optional: true}},
				Routes: recordRoutes, Call: callRecordRoute},
			{Name: "record_route_preset", Args: []check.ArgSpec{{Kind: check.ArgStr}, {Kind: check.ArgStr, Optional: true}},
				Routes: recordRoutes, Call: callRecordRoutePreset},
			{Name: "add_rr_param", Args: []check.ArgSpec{{Kind: check.ArgStr}},
				Routes: recordRoutes, Call: callAddRRParam},
			{Name: "check_route_param", Args: []check.ArgSpec{{Kind: check.ArgRegex}},
				Routes: check.Routes(ast.RequestRoute), Call: callCheckRouteParam},
			{Name: "is_direction", Args: []check.ArgSpec{{Kind: check.ArgStr}},
				Routes: check.Routes(ast.RequestRoute), Fixup: fixupDirection, Call: callIsDirection},
		},
		PVars: []*pvar.Spec{
			{Name: "rr_params", Get: getRRParams},
		},
	})
}

// Params are the rr modparams of one script generation.
type Params struct {
	AppendFromTag bool
	DoubleRR      bool
	AddUsername   bool
}

// ReadParams reads a generation's rr modparams (nil: rr not loaded).
func ReadParams(p modules.Params) Params {
	if p == nil {
		return Params{AppendFromTag: true, DoubleRR: true}
	}
	return Params{
		AppendFromTag: p.Int("append_fromtag") != 0,
		DoubleRR:      p.Int("enable_double_rr") != 0,
		AddUsername:   p.Int("add_username") != 0,
	}
}

// state is what loose_route() found, for check_route_param, is_direction
// and $rr_params.
type state struct {
	routed bool
	params string // the local Route URI's parameters, ";"-joined, no leading ";"
}

func getState(m *msgctx.Msg) *state {
	return m.ModData(Name, func() any { return &state{} }).(*state)
}

func peekState(m *msgctx.Msg) *state {
	s, _ := m.Mod[Name].(*state)
	return s
}

func logf(m *msgctx.Msg, level int, text string) {
	if m.Host != nil {
		m.Host.Log(m, level, text)
	}
}

// normParam makes ";a=b" of "a=b" and trims blanks.
func normParam(p string) string {
	p = strings.TrimSpace(p)
	if p == "" {
		return ""
	}
	if p[0] != ';' {
		p = ";" + p
	}
	return p
}

func callRecordRoute(m *msgctx.Msg, a *modules.Args) int {
	if m.Req == nil {
		return -1
	}
	m.RR.On = true
	if a.Has(0) {
		m.RR.Params += normParam(a.Str(0))
	}
	return 1
}

func callRecordRoutePreset(m *msgctx.Msg, a *modules.Args) int {
	if m.Req == nil {
		return -1
	}
	m.RR.On = true
	m.RR.Preset = strings.TrimSpace(a.Str(0))
	if a.Has(1) {
		m.RR.Preset2 = strings.TrimSpace(a.Str(1))
	}
	return 1
}

func callAddRRParam(m *msgctx.Msg, a *modules.Args) int {
	if m.Req == nil {
		return -1
	}
	m.RR.Params += normParam(a.Str(0))
	return 1
}

func callCheckRouteParam(m *msgctx.Msg, a *modules.Args) int {
	s := peekState(m)
	if s == nil || !s.routed {
		return -1
	}
	if a.Regex(0).MatchString(s.params) {
		return 1
	}
	return -1
}

func fixupDirection(args []check.FixupArg) (any, error) {
	if a := args[0]; a.Present && a.Const && a.Str != "upstream" && a.Str != "downstream" {
		return nil, check.ArgError(0, "is_direction() takes \"upstream\" or \"downstream\", not %q", a.Str)
	}
	return nil, nil
}

func callIsDirection(m *msgctx.Msg, a *modules.Args) int {
	s := peekState(m)
	if s == nil || !s.routed || m.Req == nil {
		return -1
	}
	ftag, ok := paramValue(s.params, "ftag")
	if !ok {
		return -1
	}
	fromTag := ""
	if f := m.Req.From(); f != nil {
		fromTag, _ = f.Params.Get("tag")
	}
	dir := "upstream"
	if ftag == fromTag {
		dir = "downstream"
	}
	if dir == a.Str(0) {
		return 1
	}
	return -1
}

func getRRParams(m *msgctx.Msg, _ any, _ pvar.Index) value.Value {
	s := peekState(m)
	if s == nil || !s.routed {
		return value.Null
	}
	return value.S(s.params)
}

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

// ---- loose_route ----

func uriParams(u *sip.Uri) string {
	if u.UriParams == nil || u.UriParams.Length() == 0 {
		return ""
	}
	return u.UriParams.ToString(';')
}

func isLoose(u *sip.Uri) bool { return u.UriParams.Has("lr") }

func isMyself(sh msgctx.SIPHost, u *sip.Uri) bool {
	port := u.Port
	if port == 0 {
		port = 5060
		if strings.EqualFold(u.Scheme, "sips") {
			port = 5061
		}
	}
	return sh.Myself(strings.Trim(u.Host, "[]"), port)
}

func hasToTag(req *sip.Request) bool {
	if t := req.To(); t != nil {
		if tag, ok := t.Params.Get("tag"); ok && tag != "" {
			return true
		}
	}
	return false
}

// routeHeaders are the request's Route values in order (sipgo splits
// comma-separated values into separate headers).
func routeHeaders(req *sip.Request) []*sip.RouteHeader {
	var out []*sip.RouteHeader
	for _, h := range req.Headers() {
		if r, ok := h.(*sip.RouteHeader); ok {
			out = append(out, r)
		}
	}
	return out
}

// removeHeader drops exactly h from the request.
func removeHeader(req *sip.Request, h sip.Header) {
	hs := req.Headers()
	keep := make([]sip.Header, 0, len(hs))
	for _, x := range hs {
		if x != h {
			keep = append(keep, x)
		}
	}
	// Rebuild: sipgo has no "remove this header" API, so remove all Route
	// headers and append the kept ones back in order, before the body.
	for req.RemoveHeader("Route") {
	}
	var routes []sip.Header
	for _, x := range keep {
		if _, ok := x.(*sip.RouteHeader); ok {
			routes = append(routes, x)
		}
	}
	insertRoutes(req, routes)
}

// insertRoutes puts Route headers back where Route headers belong: after
// the last Via (sipgo appends otherwise at the end, which is also valid).
func insertRoutes(req *sip.Request, routes []sip.Header) {
	for i := len(routes) - 1; i >= 0; i-- {
		req.AppendHeaderAfter(routes[i], lastViaName(req))
	}
}

func lastViaName(req *sip.Request) string {
	if req.GetHeader("Via") != nil {
		return "Via"
	}
	return "Call-ID"
}

func callLooseRoute(m *msgctx.Msg, _ *modules.Args) int {
	req := m.Req
	if req == nil {
		return -1
	}
	routes := routeHeaders(req)
	if len(routes) == 0 {
		return -1
	}
	sh, ok := m.Host.(msgctx.SIPHost)
	if !ok {
		logf(m, msgctx.LErr, "loose_route: no SIP runtime behind this script run")
		return -1
	}
	st := getState(m)
	first := &routes[0].Address
	if !isMyself(sh, first) {
		if isMyself(sh, &req.Recipient) {
			return afterStrict(m, sh, st, routes)
		}
		// The next hop is someone else's Route: send there.
		return routeTo(m, routes, 0)
	}
	st.routed, st.params = true, uriParams(first)
	removed := []*sip.RouteHeader{routes[0]}
	next := 1
	if paramsHave(st.params, "r2") && len(routes) > 1 && isMyself(sh, &routes[1].Address) {
		// double Record-Route: drop our second entry too
		removed = append(removed, routes[1])
		next = 2
	}
	for _, h := range removed {
		removeHeader(req, h)
	}
	if next >= len(routes) {
		if !hasToTag(req) {
			// a pre-loaded Route naming only us: the R-URI decides
			return -1
		}
		return 1
	}
	return routeTo(m, routes, next)
}

func paramsHave(params, name string) bool {
	_, ok := paramValue(params, name)
	return ok
}

// routeTo sends the request to routes[i]: loose router → $du; strict
// router → it becomes the R-URI and the R-URI goes last in the route set.
func routeTo(m *msgctx.Msg, routes []*sip.RouteHeader, i int) int {
	req := m.Req
	r := routes[i]
	if isLoose(&r.Address) {
		m.DstURI = r.Address.String()
		return 1
	}
	// strict router next: R-URI to the end of the route set, the route to the R-URI
	pvar.SaveOriginalURI(m)
	last := &sip.RouteHeader{Address: *req.Recipient.Clone()}
	req.Recipient = *r.Address.Clone()
	removeHeader(req, r)
	req.AppendHeader(last)
	return 1
}

// afterStrict handles a request whose previous hop was a strict router: the
// R-URI is our Record-Route and the real target is the last Route.
func afterStrict(m *msgctx.Msg, sh msgctx.SIPHost, st *state, routes []*sip.RouteHeader) int {
	req := m.Req
	st.routed, st.params = true, uriParams(&req.Recipient)
	lastRoute := routes[len(routes)-1]
	pvar.SaveOriginalURI(m)
	req.Recipient = *lastRoute.Address.Clone()
	removeHeader(req, lastRoute)
	routes = routes[:len(routes)-1]
	if len(routes) == 0 {
		return 1
	}
	if isMyself(sh, &routes[0].Address) {
		removeHeader(req, routes[0])
		routes = routes[1:]
		if len(routes) == 0 {
			return 1
		}
	}
	return routeTo(m, routes, 0)
}
