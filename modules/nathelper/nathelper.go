// Package nathelper is OpenSIPS's nathelper module: detecting clients
// behind NAT (nat_uac_test), rewriting what they advertise with the address
// their packets really come from (fix_nated_contact, fix_nated_sdp,
// add_rcv_param, fix_nated_register) and keeping their NAT bindings open by
// pinging registered contacts (natping_interval, with usrloc).
package nathelper

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/mi"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "nathelper"

// DefaultNoRTPProxy is the nortpproxy_str default.
const DefaultNoRTPProxy = "a=nortpproxy:yes\r\n"

// config is one script generation's modparams.
type config struct {
	noRTPProxy   string
	skipOldOrig  bool // oldip_skip 'o'
	skipOldMedia bool // oldip_skip 'c'
	ping         pingConfig
}

var cur atomic.Pointer[config]

func init() {
	cur.Store(&config{noRTPProxy: DefaultNoRTPProxy})
	intP := func(name string, def int) modules.Param {
		return modules.Param{Name: name, Kind: modules.ParamInt, Default: value.I(def)}
	}
	strP := func(name string) modules.Param { return modules.Param{Name: name, Kind: modules.ParamStr} }
	optStr := check.ArgSpec{Kind: check.ArgStr, Optional: true}
	anyMsg := check.Routes(ast.RequestRoute, ast.OnReplyRoute, ast.BranchRoute, ast.LocalRoute)
	withFailure := anyMsg | check.Routes(ast.FailureRoute)
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			intP("natping_interval", 0),
			intP("ping_nated_only", 0),
			intP("natping_partitions", 1),
			strP("natping_socket"),
			strP("received_avp"),
			strP("force_socket"),
			strP("sipping_bflag"),
			strP("remove_on_timeout_bflag"),
			strP("sipping_latency_flag"),
			strP("sipping_ignore_rpl_codes"),
			strP("sipping_from"),
			{Name: "sipping_method", Kind: modules.ParamStr, Default: value.S("OPTIONS")},
			{Name: "nortpproxy_str", Kind: modules.ParamStr, Default: value.S(DefaultNoRTPProxy)},
			intP("natping_tcp", 0),
			strP("oldip_skip"),
			intP("ping_threshold", 3),
			intP("max_pings_lost", 3),
			intP("cluster_id", 0),
			strP("cluster_sharing_tag"),
		},
		Funcs: []*modules.Func{
			{Name: "fix_nated_contact", Args: []check.ArgSpec{optStr}, Routes: anyMsg, Call: callFixNatedContact},
			{Name: "fix_nated_register", Routes: check.Routes(ast.RequestRoute), Call: callFixNatedRegister},
			{Name: "add_rcv_param", Args: []check.ArgSpec{{Kind: check.ArgInt, Optional: true}},
				Routes: check.Routes(ast.RequestRoute), Call: callAddRcvParam},
			{Name: "nat_uac_test", Args: []check.ArgSpec{{Kind: check.ArgStr}}, Routes: withFailure,
				Fixup: fixupUACTest, Call: callNatUACTest},
			{Name: "fix_nated_sdp", Args: []check.ArgSpec{{Kind: check.ArgStr}, optStr, optStr}, Routes: withFailure,
				Fixup: fixupSDP, Call: callFixNatedSDP},
		},
		MI: []modules.MICommand{
			{Name: "nh_enable_ping", Help: "Params: [status] ; shows, or with status 0/1 disables/enables, NAT pinging", Run: miEnablePing},
		},
		Configure: configure,
	})
	mi.DeclareParams("nh_enable_ping", []string{}, []string{"status"})
}

func configure(p modules.Params) (func(), error) {
	c := &config{noRTPProxy: p.Str("nortpproxy_str")}
	for _, r := range p.Str("oldip_skip") {
		switch r {
		case 'o', 'O':
			c.skipOldOrig = true
		case 'c', 'C':
			c.skipOldMedia = true
		default:
			return nil, fmt.Errorf("oldip_skip %q: use the letters o (a=oldoip) and c (a=oldcip)", p.Str("oldip_skip"))
		}
	}
	ping, err := readPingConfig(p)
	if err != nil {
		return nil, err
	}
	c.ping = ping
	return func() {
		cur.Store(c)
		if c.ping.interval > 0 {
			startPinger()
		}
	}, nil
}

func logErr(m *msgctx.Msg, format string, args ...any) {
	if m.Host != nil {
		m.Host.Log(m, msgctx.LErr, "nathelper: "+fmt.Sprintf(format, args...))
	}
}

// sipMessage is what the functions need of the request or reply a route
// runs on.
type sipMessage interface {
	Contact() *sip.ContactHeader
	Via() *sip.ViaHeader
	GetHeaders(name string) []sip.Header
	Headers() []sip.Header
	ContentType() *sip.ContentTypeHeader
	Body() []byte
	SetBody([]byte)
}

func message(m *msgctx.Msg) sipMessage {
	if m.Req != nil {
		return m.Req
	}
	if m.Resp != nil {
		return m.Resp
	}
	return nil
}

// contacts are the Contact headers of msg, in order (sipgo keeps one
// header per contact).
func contacts(msg sipMessage) []*sip.ContactHeader {
	var out []*sip.ContactHeader
	for _, h := range msg.Headers() {
		if c, ok := h.(*sip.ContactHeader); ok {
			out = append(out, c)
		}
	}
	return out
}

// srcHost is the source IP as a URI host ([v6] for IPv6).
func srcHost(m *msgctx.Msg) string {
	ip := strings.Trim(m.Src.IP, "[]")
	if strings.IndexByte(ip, ':') >= 0 {
		return "[" + ip + "]"
	}
	return ip
}

// ReceivedURI is "sip:IP:PORT[;transport=PROTO]" for where m came from,
// what the received parameter and column hold.
func ReceivedURI(m *msgctx.Msg) string {
	if m.Src.IP == "" {
		return ""
	}
	u := "sip:" + srcHost(m) + ":" + strconv.Itoa(m.Src.Port)
	if p := strings.ToLower(m.Src.Proto); p != "" && p != "udp" {
		u += ";transport=" + p
	}
	return u
}

// ---- fix_nated_contact, fix_nated_register, add_rcv_param ----

// fix_nated_contact([uri_params]): the first Contact URI gets the source
// IP and port (and the given URI parameters).
func callFixNatedContact(m *msgctx.Msg, a *modules.Args) int {
	msg := message(m)
	if msg == nil {
		logErr(m, "fix_nated_contact: there is no SIP message in this route")
		return -1
	}
	c := msg.Contact()
	if c == nil || c.Address.Wildcard || c.Address.Host == "" {
		return -1
	}
	if m.Src.IP == "" || m.Src.Port == 0 {
		logErr(m, "fix_nated_contact: the source address is unknown")
		return -1
	}
	c.Address.Host = srcHost(m)
	c.Address.Port = m.Src.Port
	if a.Has(0) {
		if err := addURIParams(&c.Address, a.Str(0)); err != nil {
			logErr(m, "fix_nated_contact: %v", err)
			return -1
		}
	}
	return 1
}

// addURIParams appends ";a=b;c" to u's parameters.
func addURIParams(u *sip.Uri, params string) error {
	for _, p := range strings.Split(params, ";") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		k, v, _ := strings.Cut(p, "=")
		k = strings.TrimSpace(k)
		if k == "" || strings.ContainsAny(k, " \t<>\",") {
			return fmt.Errorf("bad URI parameter %q", p)
		}
		if u.UriParams == nil {
			u.UriParams = sip.NewParams()
		}
		u.UriParams.Add(k, strings.TrimSpace(v))
	}
	return nil
}

type msgState struct {
	received string // fix_nated_register
}

// Received is the URI fix_nated_register() recorded for m ("" if it was
// not called): registrar modules may store it as the contact's received
// address.
func Received(m *msgctx.Msg) string {
	if s, ok := m.Mod[Name].(*msgState); ok {
		return s.received
	}
	return ""
}

// fix_nated_register(): remember where the REGISTER came from. OpenSIPS
// puts the URI in received_avp for registrar's save(); sipedge keeps it in
// the message's module data (see Received) and sipedge's registrar records
// the source itself (its save_received modparam).
func callFixNatedRegister(m *msgctx.Msg, _ *modules.Args) int {
	r := ReceivedURI(m)
	if r == "" || m.Req == nil {
		return -1
	}
	s := m.ModData(Name, func() any { return &msgState{} }).(*msgState)
	s.received = r
	return 1
}

// uriParamEscape escapes what may not appear in a URI parameter value.
func uriParamEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			strings.IndexByte("-_.!~*'()[]/:&+$", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// add_rcv_param([flag]): ;received="sip:IP:PORT" on every Contact header
// (flag 0), or ;received=<escaped URI> in every Contact URI (flag != 0).
func callAddRcvParam(m *msgctx.Msg, a *modules.Args) int {
	if m.Req == nil {
		return -1
	}
	r := ReceivedURI(m)
	cs := contacts(m.Req)
	if r == "" || len(cs) == 0 {
		return -1
	}
	inURI := a.Has(0) && a.Int(0) != 0
	n := 0
	for _, c := range cs {
		if c.Address.Wildcard {
			continue
		}
		if inURI {
			if c.Address.UriParams == nil {
				c.Address.UriParams = sip.NewParams()
			}
			c.Address.UriParams.Add("received", uriParamEscape(r))
		} else {
			if c.Params == nil {
				c.Params = sip.NewParams()
			}
			c.Params.Add("received", `"`+r+`"`)
		}
		n++
	}
	if n == 0 {
		return -1
	}
	return 1
}

// ---- nat_uac_test ----

// Test is one nat_uac_test check.
type Test uint16

const (
	PrivateContact     Test = 1 << iota // 1
	DiffIPSrcVia                        // 2
	PrivateVia                          // 4
	PrivateSDP                          // 8
	DiffPortSrcVia                      // 16
	DiffIPSrcContact                    // 32
	DiffPortSrcContact                  // 64
	CarrierGradeNAT                     // 128: RFC 6333 addresses count as private too
)

// TestNames are OpenSIPS 3.x's names for the checks.
var TestNames = map[string]Test{
	"private-contact": PrivateContact, "diff-ip-src-via": DiffIPSrcVia, "private-via": PrivateVia,
	"private-sdp": PrivateSDP, "diff-port-src-via": DiffPortSrcVia, "diff-ip-src-contact": DiffIPSrcContact,
	"diff-port-src-contact": DiffPortSrcContact, "carrier-grade-nat": CarrierGradeNAT,
}

// ParseTests reads nat_uac_test's argument: a comma-separated list of
// check names, or (OpenSIPS 2.x) a number that ORs the checks' bits.
// numeric tells which form it was.
func ParseTests(s string) (t Test, numeric bool, err error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 0, 32); err == nil {
		if n <= 0 || n > 255 {
			return 0, true, fmt.Errorf("nat_uac_test flags %d: want 1..255", n)
		}
		return Test(n), true, nil
	}
	for _, name := range strings.Split(s, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		b, ok := TestNames[name]
		if !ok {
			return 0, false, fmt.Errorf("unknown nat_uac_test check %q (private-contact, diff-ip-src-via, private-via, private-sdp, diff-port-src-via, diff-ip-src-contact, diff-port-src-contact, carrier-grade-nat)", name)
		}
		t |= b
	}
	if t == 0 {
		return 0, false, fmt.Errorf("nat_uac_test needs at least one check")
	}
	return t, false, nil
}

func fixupUACTest(args []check.FixupArg) (any, error) {
	a := args[0]
	if !a.Present || !a.Const {
		return nil, nil
	}
	s := a.Str
	if s == "" && a.Int != 0 {
		s = strconv.Itoa(a.Int)
	}
	t, _, err := ParseTests(s)
	if err != nil {
		return nil, check.ArgError(0, "%v", err)
	}
	return t, nil
}

var (
	privateNets = mustNets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
	cgnNets     = mustNets("192.0.0.0/29")
)

func mustNets(cidrs ...string) []*net.IPNet {
	var out []*net.IPNet
	for _, c := range cidrs {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			panic(err)
		}
		out = append(out, n)
	}
	return out
}

// IsPrivate tells whether host is an RFC 1918 / RFC 6598 IPv4 address
// (or RFC 6333 with cgn).
func IsPrivate(host string, cgn bool) bool {
	ip := net.ParseIP(strings.Trim(host, "[]"))
	if ip == nil || ip.To4() == nil {
		return false
	}
	for _, n := range privateNets {
		if n.Contains(ip) {
			return true
		}
	}
	if cgn {
		for _, n := range cgnNets {
			if n.Contains(ip) {
				return true
			}
		}
	}
	return false
}

func sameIP(host, src string) bool {
	a, b := net.ParseIP(strings.Trim(host, "[]")), net.ParseIP(strings.Trim(src, "[]"))
	if a == nil || b == nil {
		return strings.EqualFold(strings.Trim(host, "[]"), strings.Trim(src, "[]"))
	}
	return a.Equal(b)
}

func defaultPort(port int, transport string) int {
	if port > 0 {
		return port
	}
	if strings.EqualFold(transport, "tls") || strings.EqualFold(transport, "wss") {
		return 5061
	}
	return 5060
}

// RunTests runs the checks t on m: true when any says the sender is behind
// a NAT.
func RunTests(m *msgctx.Msg, t Test) bool {
	msg := message(m)
	if msg == nil {
		return false
	}
	cgn := t&CarrierGradeNAT != 0
	c := msg.Contact()
	hasContact := c != nil && !c.Address.Wildcard && c.Address.Host != ""
	if t&PrivateContact != 0 && hasContact && IsPrivate(c.Address.Host, cgn) {
		return true
	}
	if v := msg.Via(); v != nil {
		if t&DiffIPSrcVia != 0 && m.Src.IP != "" && !sameIP(v.Host, m.Src.IP) {
			return true
		}
		if t&PrivateVia != 0 && IsPrivate(v.Host, cgn) {
			return true
		}
		if t&DiffPortSrcVia != 0 && m.Src.Port != 0 && defaultPort(v.Port, v.Transport) != m.Src.Port {
			return true
		}
	}
	if t&PrivateSDP != 0 && sdpHasPrivate(msg, cgn) {
		return true
	}
	if hasContact {
		if t&DiffIPSrcContact != 0 && m.Src.IP != "" && !sameIP(c.Address.Host, m.Src.IP) {
			return true
		}
		if t&DiffPortSrcContact != 0 && m.Src.Port != 0 {
			tr, _ := c.Address.UriParams.Get("transport")
			if defaultPort(c.Address.Port, tr) != m.Src.Port {
				return true
			}
		}
	}
	return false
}

func callNatUACTest(m *msgctx.Msg, a *modules.Args) int {
	t, ok := a.Fix.(Test)
	if !ok {
		var err error
		if t, _, err = ParseTests(a.Str(0)); err != nil {
			logErr(m, "%v", err)
			return -1
		}
	}
	if RunTests(m, t) {
		return 1
	}
	return -1
}

// ---- MI ----

var pingDisabled atomic.Bool

func miEnablePing(params map[string]any) (any, error) {
	raw, ok := params["status"]
	if !ok || raw == nil {
		st := 1
		if pingDisabled.Load() {
			st = 0
		}
		return map[string]any{"Status": st}, nil
	}
	var n int
	switch v := raw.(type) {
	case int:
		n = v
	case float64:
		n = int(v)
	case string:
		var err error
		if n, err = strconv.Atoi(strings.TrimSpace(v)); err != nil {
			return nil, mi.Errorf(400, "status must be an integer")
		}
	default:
		return nil, mi.Errorf(400, "status must be an integer")
	}
	pingDisabled.Store(n <= 0)
	return nil, nil
}

// now is the clock; tests replace it.
var now = time.Now
