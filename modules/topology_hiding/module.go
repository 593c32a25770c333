// Package topologyhiding is OpenSIPS 3.x's topology_hiding module on top of
// the dialog module: each side of a call sees only the proxy. Requests sent
// on keep only our Via and no Record-Route, their Contact is the proxy's
// address; replies get the request's Vias back, lose their Record-Route and
// get the proxy's Contact; sequential requests, sent to the proxy's
// Contact, are routed by topology_hiding_match() to the other side's
// Contact and route set, which the module keeps in the dialog.
//
// It works through tm's hooks (modules/tm/hooks.go): OnRequestOut rewrites
// requests the runtime sends, OnResponseRelay puts the Vias back on
// relayed replies, OnResponseOut rewrites the replies sent upstream.
package topologyhiding

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/modules/dialog"
	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "topology_hiding"

// dlgKey is the dialog value holding a call's topology hiding data.
const dlgKey = "__th"

// Flags of topology_hiding().
const (
	FlagUser    = 1 << iota // U: keep the Contact user
	FlagDIDUser             // D: the dialog id in the Contact user
	FlagCallID              // C: encode the Call-ID towards the callee
)

type config struct {
	callIDPasswd, callIDPrefix string
	passURIParams, passParams  []string
}

var live atomic.Pointer[config]

func liveCfg() *config {
	if c := live.Load(); c != nil {
		return c
	}
	return &config{callIDPasswd: "OpenSIPS", callIDPrefix: "DLGCH_"}
}

// info is what a dialog keeps for topology hiding.
type info struct {
	Flags         int      `json:"f"`
	FromTag       string   `json:"ft"`
	CallID        string   `json:"ci"` // the caller side's Call-ID
	CallerContact string   `json:"cc"`
	CallerRoute   []string `json:"cr,omitempty"` // towards the caller, in order
	CalleeContact string   `json:"ec,omitempty"`
	CalleeRoute   []string `json:"er,omitempty"` // towards the callee, in order
	DID           string   `json:"d"`
	// Contact params to pass on (th_passed_contact_*), from each side
	CallerCtURIParams string `json:"cup,omitempty"`
	CallerCtParams    string `json:"cp,omitempty"`
	CalleeCtURIParams string `json:"eup,omitempty"`
	CalleeCtParams    string `json:"ep,omitempty"`
}

// msgTH marks a message (and its transaction) for topology hiding.
type msgTH struct {
	mu       sync.Mutex // the transaction's hooks may run on several branches at once
	d        *dialog.Dialog
	in       info
	toCallee bool        // the request goes from the caller to the callee
	initial  bool        // the dialog's initial INVITE
	local    msgctx.Addr // where the request came in: our address for its sender
}

func mark(m *msgctx.Msg) *msgTH {
	t, _ := m.Mod[Name].(*msgTH)
	return t
}

func markOf(mod map[string]any) *msgTH {
	t, _ := mod[Name].(*msgTH)
	return t
}

func init() {
	strP := func(name, def string) modules.Param {
		return modules.Param{Name: name, Kind: modules.ParamStr, Default: value.S(def)}
	}
	optStr := check.ArgSpec{Kind: check.ArgStr, Optional: true}
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			strP("th_callid_passwd", "OpenSIPS"),
			strP("th_callid_prefix", "DLGCH_"),
			{Name: "th_passed_contact_uri_params", Kind: modules.ParamStr},
			{Name: "th_passed_contact_params", Kind: modules.ParamStr},
			{Name: "force_dialog", Kind: modules.ParamInt, Default: value.I(0)},
			strP("th_contact_encode_passwd", "ToPoCtPaSS"),
			strP("th_contact_encode_param", "thinfo"),
			strP("th_contact_encode_scheme", "base64"),
		},
		Configure: func(p modules.Params) (func(), error) {
			cfg := &config{callIDPasswd: p.Str("th_callid_passwd"), callIDPrefix: p.Str("th_callid_prefix"),
				passURIParams: splitList(p.Str("th_passed_contact_uri_params")),
				passParams:    splitList(p.Str("th_passed_contact_params"))}
			if cfg.callIDPrefix == "" || cfg.callIDPasswd == "" {
				return nil, fmt.Errorf("th_callid_prefix and th_callid_passwd must not be empty")
			}
			return func() { live.Store(cfg) }, nil
		},
		Funcs: []*modules.Func{
			{Name: "topology_hiding", Args: []check.ArgSpec{optStr, optStr}, Routes: check.Routes(ast.RequestRoute),
				Fixup: fixupTH, Call: callTH},
			{Name: "topology_hiding_match", Args: []check.ArgSpec{optStr}, Routes: check.Routes(ast.RequestRoute),
				Call: callMatch},
		},
		PVars: []*pvar.Spec{
			{Name: "TH_callee_callid", Get: getCalleeCallID},
		},
	})
	tm.OnRequestOut(onRequestOut)
	tm.OnResponseRelay(onResponseRelay)
	tm.OnResponseOut(onResponseOut)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ";") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, strings.ToLower(p))
		}
	}
	return out
}

func parseFlags(s string) (int, error) {
	f := 0
	for _, c := range s {
		switch c {
		case 'U':
			f |= FlagUser
		case 'D':
			f |= FlagDIDUser
		case 'C':
			f |= FlagCallID
		case ' ':
		default:
			return 0, fmt.Errorf("unknown flag %q (U, D, C)", c)
		}
	}
	return f, nil
}

type fix struct {
	flags int
	isSet bool
}

func fixupTH(args []check.FixupArg) (any, error) {
	if len(args) > 1 && args[1].Present {
		return nil, check.ArgError(1, "the second argument of topology_hiding() is not supported")
	}
	f := &fix{isSet: true}
	if len(args) > 0 && args[0].Present {
		if !args[0].Const {
			f.isSet = false
			return f, nil
		}
		fl, err := parseFlags(args[0].Str)
		if err != nil {
			return nil, check.ArgError(0, "%v", err)
		}
		f.flags = fl
	}
	return f, nil
}

func logf(m *msgctx.Msg, level int, format string, args ...any) {
	if m.Host != nil {
		m.Host.Log(m, level, Name+": "+fmt.Sprintf(format, args...))
	}
}

func tagOf(p sip.HeaderParams) string {
	if p == nil {
		return ""
	}
	t, _ := p.Get("tag")
	return t
}

// ---- Call-ID encoding (C) ----

func encodeCallID(cfg *config, cid string) string {
	b := []byte(cid)
	for i := range b {
		b[i] ^= cfg.callIDPasswd[i%len(cfg.callIDPasswd)]
	}
	return cfg.callIDPrefix + base64.RawURLEncoding.EncodeToString(b)
}

func decodeCallID(cfg *config, cid string) (string, bool) {
	rest, ok := strings.CutPrefix(cid, cfg.callIDPrefix)
	if !ok {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return "", false
	}
	for i := range b {
		b[i] ^= cfg.callIDPasswd[i%len(cfg.callIDPasswd)]
	}
	return string(b), true
}

// headerList is what requests and responses share for editing headers.
type headerList interface {
	GetHeader(name string) sip.Header
	RemoveHeader(name string) bool
	AppendHeader(h sip.Header)
}

// setCallID replaces the Call-ID (a new header: the old one may be shared
// with the request that was received).
func setCallID(msg headerList, cid string) {
	for msg.GetHeader("Call-ID") != nil {
		msg.RemoveHeader("Call-ID")
	}
	h := sip.CallIDHeader(cid)
	msg.AppendHeader(&h)
}

// ---- topology_hiding() ----

func callTH(m *msgctx.Msg, a *modules.Args) int {
	req := m.Req
	if req == nil || !req.IsInvite() || req.To() == nil || tagOf(req.To().Params) != "" {
		logf(m, msgctx.LErr, "topology_hiding() needs an initial INVITE")
		return -1
	}
	f, _ := a.Fix.(*fix)
	flags := 0
	if f != nil && f.isSet {
		flags = f.flags
	} else if a.Has(0) {
		fl, err := parseFlags(a.Str(0))
		if err != nil {
			logf(m, msgctx.LErr, "topology_hiding: %v", err)
			return -1
		}
		flags = fl
	}
	d, err := dialog.Ensure(m)
	if err != nil {
		logf(m, msgctx.LErr, "topology_hiding: cannot create the dialog: %v", err)
		return -1
	}
	cfg := liveCfg()
	in := info{Flags: flags, DID: d.DID(), CallID: d.CallID()}
	if fr := req.From(); fr != nil {
		in.FromTag = tagOf(fr.Params)
	}
	if c := req.Contact(); c != nil {
		in.CallerContact = c.Address.String()
		in.CallerCtURIParams = pickParams(c.Address.UriParams, cfg.passURIParams)
		in.CallerCtParams = pickParams(c.Params, cfg.passParams)
	}
	for _, h := range req.GetHeaders("Record-Route") {
		in.CallerRoute = append(in.CallerRoute, msgctx.SplitRouteList(h.Value())...)
	}
	save(d, &in)
	if m.Mod == nil {
		m.Mod = map[string]any{}
	}
	m.Mod[Name] = &msgTH{d: d, in: in, toCallee: true, initial: true, local: m.Local}
	return 1
}

func save(d *dialog.Dialog, in *info) {
	if b, err := json.Marshal(in); err == nil {
		d.SetValue(dlgKey, string(b), false)
	}
}

func load(d *dialog.Dialog) (info, bool) {
	var in info
	v, ok := d.Value(dlgKey)
	if !ok || json.Unmarshal([]byte(v), &in) != nil {
		return info{}, false
	}
	return in, true
}

// pickParams renders the parameters of ps named in keep (";a=1;b").
func pickParams(ps sip.HeaderParams, keep []string) string {
	var b strings.Builder
	for _, kv := range ps {
		for _, k := range keep {
			if strings.EqualFold(kv.K, k) {
				b.WriteByte(';')
				b.WriteString(kv.K)
				if kv.V != "" {
					b.WriteByte('=')
					b.WriteString(kv.V)
				}
			}
		}
	}
	return b.String()
}

// ---- topology_hiding_match() ----

func callMatch(m *msgctx.Msg, a *modules.Args) int {
	req := m.Req
	if req == nil || req.To() == nil || tagOf(req.To().Params) == "" {
		return -1
	}
	cfg := liveCfg()
	// a Call-ID encoded towards the callee comes back from it: decode it
	// before the dialog is looked up
	if cid := req.CallID(); cid != nil {
		if orig, ok := decodeCallID(cfg, cid.Value()); ok {
			setCallID(req, orig)
			if dialog.Current(m) == nil {
				matchDialog(m, a)
			}
		}
	}
	d := dialog.Current(m)
	if d == nil {
		matchDialog(m, a)
		if d = dialog.Current(m); d == nil {
			return -1
		}
	}
	in, ok := load(d)
	if !ok {
		return -1
	}
	toCallee := true
	if f := req.From(); f != nil && tagOf(f.Params) != in.FromTag {
		toCallee = false
	}
	target, routes := in.CalleeContact, in.CalleeRoute
	if !toCallee {
		target, routes = in.CallerContact, in.CallerRoute
	}
	if target == "" {
		logf(m, msgctx.LErr, "topology_hiding_match: the dialog has no contact for the %s", map[bool]string{true: "callee", false: "caller"}[toCallee])
		return -1
	}
	var u sip.Uri
	if err := sip.ParseUri(strings.Trim(target, "<>"), &u); err != nil {
		logf(m, msgctx.LErr, "topology_hiding_match: bad contact %q", target)
		return -1
	}
	pvar.SaveOriginalURI(m)
	req.Recipient = u
	for req.GetHeader("Route") != nil {
		req.RemoveHeader("Route")
	}
	// the route set goes right after the Vias, in order; the runtime sends
	// to $du, so the first hop is put there (loose routing)
	m.DstURI = ""
	for i := len(routes) - 1; i >= 0; i-- {
		req.AppendHeaderAfter(sip.NewHeader("Route", routes[i]), "Via")
	}
	if len(routes) > 0 {
		m.DstURI = strings.Trim(strings.SplitN(routes[0], ">", 2)[0], "< ")
	}
	if m.Mod == nil {
		m.Mod = map[string]any{}
	}
	m.Mod[Name] = &msgTH{d: d, in: in, toCallee: toCallee, local: m.Local}
	return 1
}

// matchDialog runs the dialog module's match_dialog() on the message.
func matchDialog(m *msgctx.Msg, a *modules.Args) {
	info := modules.Lookup("dialog")
	if info == nil {
		return
	}
	for _, f := range info.Funcs {
		if f.Name == "match_dialog" {
			args := &modules.Args{Vals: []value.Value{value.Null}, Given: []bool{false}}
			if a != nil && a.Has(0) {
				args.Vals[0], args.Given[0] = a.Val(0), true
			}
			f.Call(m, args)
			return
		}
	}
}

func getCalleeCallID(m *msgctx.Msg, _ any, _ pvar.Index) value.Value {
	d := dialog.Current(m)
	if d == nil {
		return value.Null
	}
	in, ok := load(d)
	if !ok || in.Flags&FlagCallID == 0 {
		return value.Null
	}
	return value.S(encodeCallID(liveCfg(), in.CallID))
}

// ---- hooks ----

// ourContact is the Contact the proxy puts in a message going to one side:
// its address there, the dialog id, and what the flags and passed params
// keep of the original Contact.
func ourContact(in *info, host string, port int, proto string, origUser, uriParams, params string) *sip.ContactHeader {
	u := sip.Uri{Scheme: "sip", Host: host, Port: port, UriParams: sip.NewParams()}
	switch {
	case in.Flags&FlagDIDUser != 0:
		u.User = strings.ReplaceAll(in.DID, ":", ".")
	case in.Flags&FlagUser != 0:
		u.User = origUser
	}
	if in.Flags&FlagDIDUser == 0 {
		u.UriParams.Add("did", in.DID)
	}
	if proto != "" && proto != "udp" {
		u.UriParams.Add("transport", proto)
	}
	for _, kv := range parseParamList(uriParams) {
		u.UriParams.Add(kv[0], kv[1])
	}
	c := &sip.ContactHeader{Address: u, Params: sip.NewParams()}
	for _, kv := range parseParamList(params) {
		c.Params.Add(kv[0], kv[1])
	}
	return c
}

func parseParamList(s string) [][2]string {
	var out [][2]string
	for _, p := range strings.Split(s, ";") {
		if p == "" {
			continue
		}
		k, v, _ := strings.Cut(p, "=")
		out = append(out, [2]string{k, v})
	}
	return out
}

func contactUser(msg sip.Message) string {
	var c *sip.ContactHeader
	switch x := msg.(type) {
	case *sip.Request:
		c = x.Contact()
	case *sip.Response:
		c = x.Contact()
	}
	if c == nil {
		return ""
	}
	return c.Address.User
}

func hasContact(msg sip.Message) bool { return len(msg.GetHeaders("Contact")) > 0 }

// onRequestOut hides the sender's side on a request going out: only our
// Via, no Record-Route, our Contact, the callee's Call-ID.
func onRequestOut(mod map[string]any, out *sip.Request) {
	t := markOf(mod)
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	top := out.Via()
	if top == nil {
		return
	}
	top = top.Clone()
	for out.GetHeader("Via") != nil {
		out.RemoveHeader("Via")
	}
	out.PrependHeader(top)
	for out.GetHeader("Record-Route") != nil {
		out.RemoveHeader("Record-Route")
	}
	if hasContact(out) {
		user := contactUser(out)
		uriParams, params := t.in.CallerCtURIParams, t.in.CallerCtParams
		if !t.toCallee {
			uriParams, params = t.in.CalleeCtURIParams, t.in.CalleeCtParams
		}
		for out.GetHeader("Contact") != nil {
			out.RemoveHeader("Contact")
		}
		out.AppendHeader(ourContact(&t.in, top.Host, top.Port, strings.ToLower(top.Transport), user, uriParams, params))
	}
	if t.in.Flags&FlagCallID != 0 && t.toCallee {
		setCallID(out, encodeCallID(liveCfg(), t.in.CallID))
	}
}

// onResponseRelay puts back on a relayed reply the Vias the request had
// when it reached us (its copy downstream had only ours).
func onResponseRelay(mod map[string]any, origin *sip.Request, res *sip.Response) {
	if markOf(mod) == nil || origin == nil {
		return
	}
	for res.GetHeader("Via") != nil {
		res.RemoveHeader("Via")
	}
	vias := origin.GetHeaders("Via")
	for i := len(vias) - 1; i >= 0; i-- {
		res.PrependHeader(sip.HeaderClone(vias[i]))
	}
}

// onResponseOut hides the other side on a reply going upstream: no
// Record-Route, our Contact, the Call-ID the request's sender uses. On the
// initial INVITE's 2xx it records the callee's Contact and route set.
func onResponseOut(mod map[string]any, _ *sip.Request, code int, res *sip.Response) {
	t := markOf(mod)
	if t == nil || res == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.initial && code >= 200 && code < 300 {
		in, ok := load(t.d)
		if ok && in.CalleeContact == "" {
			cfg := liveCfg()
			if c := res.Contact(); c != nil {
				in.CalleeContact = c.Address.String()
				in.CalleeCtURIParams = pickParams(c.Address.UriParams, cfg.passURIParams)
				in.CalleeCtParams = pickParams(c.Params, cfg.passParams)
			}
			var rr []string
			for _, h := range res.GetHeaders("Record-Route") {
				rr = append(rr, msgctx.SplitRouteList(h.Value())...)
			}
			for i := len(rr) - 1; i >= 0; i-- {
				in.CalleeRoute = append(in.CalleeRoute, rr[i])
			}
			save(t.d, &in)
			t.in = in
		}
	}
	for res.GetHeader("Record-Route") != nil {
		res.RemoveHeader("Record-Route")
	}
	if hasContact(res) {
		user := contactUser(res)
		uriParams, params := t.in.CalleeCtURIParams, t.in.CalleeCtParams
		if !t.toCallee {
			uriParams, params = t.in.CallerCtURIParams, t.in.CallerCtParams
		}
		for res.GetHeader("Contact") != nil {
			res.RemoveHeader("Contact")
		}
		proto := t.local.Proto
		res.AppendHeader(ourContact(&t.in, t.local.IP, t.local.Port, proto, user, uriParams, params))
	}
	if t.in.Flags&FlagCallID != 0 {
		cid := t.in.CallID
		if !t.toCallee {
			cid = encodeCallID(liveCfg(), t.in.CallID)
		}
		setCallID(res, cid)
	}
}
