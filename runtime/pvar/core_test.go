package pvar

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/runtime/value"
)

func TestCoreGetRequest(t *testing.T) {
	slots := newSlots()
	m := newReqMsg(t)
	m.RetCode = -2
	m.DstURI = "sip:10.1.1.1:5080;transport=tcp"
	cases := []struct{ spec, want string }{
		{"ru", "sip:+15551234@example.com;user=phone"},
		{"ruri", "sip:+15551234@example.com;user=phone"},
		{"rU", "+15551234"},
		{"ruri.user", "+15551234"},
		{"rd", "example.com"},
		{"rp", "5060"}, // no port in the R-URI: the default
		{"rP", "udp"},
		{"ru_q", "-1"},
		{"ou", "sip:+15551234@example.com;user=phone"},
		{"oU", "+15551234"},
		{"od", "example.com"},
		{"op", "5060"},
		{"oP", "udp"},
		{"du", "sip:10.1.1.1:5080;transport=tcp"},
		{"dd", "10.1.1.1"},
		{"dp", "5080"},
		{"dP", "tcp"},
		{"fu", "sip:alice@atlanta.example.com"},
		{"fU", "alice"},
		{"fd", "atlanta.example.com"},
		{"fn", `"Alice Smith"`},
		{"ft", "1928301774"},
		{"tu", "sip:+15551234@example.com"}, // compact "t:" header
		{"tU", "+15551234"},
		{"td", "example.com"},
		{"tn", "<null>"},
		{"tt", "<null>"},
		{"ua", "SIPp/3.6"},
		{"rm", "INVITE"},
		{"rs", "<null>"},
		{"rr", "<null>"},
		{"ci", "a84b4c76e66710@pc33.atlanta.example.com"},
		{"cs", "314159"},
		{"cl", strconv.Itoa(len(testBody))},
		{"cT", "application/sdp"},
		{"rb", testBody},
		{"si", "10.0.0.1"},
		{"src_ip", "10.0.0.1"},
		{"sp", "5060"},
		{"Ri", "192.0.2.10"},
		{"Rp", "5060"},
		{"pr", "udp"},
		{"proto", "udp"},
		{"socket_in", "udp:192.0.2.10:5060"},
		{"socket_in(port)", "5060"},
		{"retcode", "-2"},
		{"rc", "-2"},
		{"ct", `"Alice" <sip:alice@10.0.0.1:5060;transport=udp>;expires=3600;q=0.7`},
		{"ct[1]", "<sip:alice@192.0.2.1>"},
		{"ct[-1]", "<sip:alice@192.0.2.1>"},
		{"ct[2]", "<null>"},
		{"ct.fields(uri)", "sip:alice@10.0.0.1:5060;transport=udp"},
		{"ct.fields(name)", `"Alice"`},
		{"ct.fields(expires)", "3600"},
		{"ct.fields(q)", "0.7"},
		{"ct.fields(params)", "expires=3600;q=0.7"},
		{"ct.fields(received)", "<null>"},
		{"ct.fields(uri)[*]", "sip:alice@10.0.0.1:5060;transport=udp, sip:alice@192.0.2.1"},
		{"hdr(User-Agent)", "SIPp/3.6"},
		{"hdr(user-agent)", "SIPp/3.6"},
		{"hdr(X-Custom)", "one"},
		{"hdr(X-Custom)[1]", "two"},
		{"hdr(X-Custom)[-1]", "three"},
		{"hdr(X-Custom)[-3]", "one"},
		{"hdr(X-Custom)[3]", "<null>"},
		{"hdr(X-Custom)[-4]", "<null>"},
		{"hdr(X-Custom)[*]", "one, two, three"},
		{"hdr(X-Missing)", "<null>"},
		{"hdr(Supported)", "100rel"}, // message used the compact form k:
		{"hdr(k)", "100rel"},
		{"hdr(t)", "<sip:+15551234@example.com>"},
		{"hdr(To)", "<sip:+15551234@example.com>"},
		{"hdr(Via)[1]", "SIP/2.0/TCP proxy.example.net;branch=z9hG4bK-2;received=192.0.2.7"},
		{"hdr(v)", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds;rport"},
		{"hdr(Call-ID)", "a84b4c76e66710@pc33.atlanta.example.com"},
		{"hdr(i)", "a84b4c76e66710@pc33.atlanta.example.com"},
		{"hdrcnt(Via)", "2"},
		{"hdrcnt(X-Custom)", "3"},
		{"hdrcnt(Nope)", "0"},
		{"hdr_name", "Via"},
		{"hdr_name[3]", "From"},
		{"hdr_name[-1]", "Content-Length"},
		{"ai", "sip:alice@atlanta.example.com"},
		{"di", "sip:bob@example.com"},
		{"dir", "unconditional"},
		{"dip", "off"},
		{"pu", "<null>"},
		{"au", "alice"},
		{"ad", "atlanta.example.com"},
		{"aU", "alice@atlanta.example.com"},
		{"ar", "atlanta.example.com"},
		{"adu", "sip:+15551234@example.com"},
		{"an", "abc123"},
		{"auth.nonce", "abc123"},
		{"auth.resp", "0123456789abcdef"},
		{"auth.cnonce", "xyz"},
		{"auth.opaque", "<null>"},
		{"auth.alg", "MD5"},
		{"auth.qop", "auth"},
		{"auth.nc", "00000001"},
		{"param(1)", "<null>"},
		{"C(rx)", ""},
		{"ml", ""}, // checked below
	}
	for _, c := range cases {
		if c.spec == "ml" {
			continue
		}
		r := compileT(t, slots, c.spec)
		if got := show(r.Get(m)); got != c.want {
			t.Errorf("$%s = %q, want %q", c.spec, got, c.want)
		}
	}
	// int forms
	for spec, want := range map[string]int{"rp": 5060, "sp": 5060, "cs": 314159, "retcode": -2,
		"hdrcnt(Via)": 2, "dp": 5080, "cl": len(testBody)} {
		v := compileT(t, slots, spec).Get(m)
		if !v.IsInt() || v.I != want {
			t.Errorf("$%s int form = %+v, want %d", spec, v, want)
		}
	}
	mb := compileT(t, slots, "mb").Get(m).AsString()
	if !strings.HasPrefix(mb, "INVITE sip:+15551234@example.com;user=phone SIP/2.0\r\n") {
		t.Errorf("$mb starts %q", mb[:40])
	}
	if ml := compileT(t, slots, "ml").Get(m); ml.I != len(mb) {
		t.Errorf("$ml = %d, want %d", ml.I, len(mb))
	}
}

func TestCoreGetReply(t *testing.T) {
	slots := newSlots()
	m := newReplyMsg(t)
	cases := []struct{ spec, want string }{
		{"rs", "486"},
		{"rr", "Busy Here"},
		{"rm", "INVITE"}, // the CSeq method
		{"ru", "<null>"},
		{"rU", "<null>"},
		{"ou", "<null>"},
		{"tn", `"Bob"`},
		{"tt", "2"},
		{"ft", "1"},
		{"cs", "7"},
		{"au", "<null>"},
		{"ua", "<null>"},
		{"ct", "<null>"},
		{"du", "<null>"},
		{"dd", "<null>"},
	}
	for _, c := range cases {
		if got := show(compileT(t, slots, c.spec).Get(m)); got != c.want {
			t.Errorf("$%s = %q, want %q", c.spec, got, c.want)
		}
	}
	if v := compileT(t, slots, "rs").Get(m); !v.IsInt() || v.I != 486 {
		t.Errorf("$rs int form %+v", v)
	}
	if err := compileT(t, slots, "ru").Set(m, "=", value.S("sip:x@y")); err == nil {
		t.Error("setting $ru on a reply must fail")
	}
}

func TestRURIWrites(t *testing.T) {
	slots := newSlots()
	m := newReqMsg(t)
	set := func(spec string, v value.Value) {
		t.Helper()
		if err := compileT(t, slots, spec).Set(m, "=", v); err != nil {
			t.Fatalf("$%s = %v: %v", spec, v, err)
		}
	}
	get := func(spec string) string { return show(compileT(t, slots, spec).Get(m)) }

	set("rU", value.S("bob"))
	if got := get("ru"); got != "sip:bob@example.com;user=phone" {
		t.Errorf("after $rU: $ru = %q", got)
	}
	set("rd", value.S("biloxi.example.com"))
	set("rp", value.I(5070))
	if got := get("ru"); got != "sip:bob@biloxi.example.com:5070;user=phone" {
		t.Errorf("after $rd/$rp: $ru = %q", got)
	}
	if get("rp") != "5070" || get("rd") != "biloxi.example.com" {
		t.Errorf("$rp/$rd = %s/%s", get("rp"), get("rd"))
	}
	// the original R-URI is kept
	if got := get("ou"); got != "sip:+15551234@example.com;user=phone" {
		t.Errorf("$ou = %q", got)
	}
	if get("oU") != "+15551234" {
		t.Errorf("$oU = %q", get("oU"))
	}
	set("ru", value.S("sips:carol@chicago.example.com;transport=tcp"))
	if get("rU") != "carol" || get("rp") != "5061" || get("rP") != "tcp" {
		t.Errorf("after $ru: rU=%s rp=%s rP=%s", get("rU"), get("rp"), get("rP"))
	}
	if got := get("ou"); got != "sip:+15551234@example.com;user=phone" {
		t.Errorf("$ou after second rewrite = %q", got)
	}
	set("rp", value.Null)
	if got := get("ru"); got != "sips:carol@chicago.example.com;transport=tcp" {
		t.Errorf("after $rp = NULL: %q", got)
	}
	set("rU", value.Null)
	if got := get("ru"); got != "sips:chicago.example.com;transport=tcp" {
		t.Errorf("after $rU = NULL: %q", got)
	}
	for _, bad := range []struct {
		spec string
		v    value.Value
	}{
		{"ru", value.S("not a uri")},
		{"ru", value.Null},
		{"rd", value.Null},
		{"rp", value.S("70000")},
		{"rp", value.S("abc")},
		{"ru_q", value.S("x")},
	} {
		if err := compileT(t, slots, bad.spec).Set(m, "=", bad.v); err == nil {
			t.Errorf("$%s = %v: expected an error", bad.spec, bad.v)
		}
	}
	set("ru_q", value.I(500))
	if get("ru_q") != "500" {
		t.Errorf("$ru_q = %s", get("ru_q"))
	}
	set("ru_q", value.I(5000))
	if get("ru_q") != "1000" {
		t.Errorf("$ru_q capped = %s", get("ru_q"))
	}

	// read-only pvars
	for _, spec := range []string{"fu", "fU", "ua", "si", "rs", "hdr(X)", "ou", "rP"} {
		if err := compileT(t, slots, spec).Set(m, "=", value.S("x")); err == nil {
			t.Errorf("$%s must be read-only", spec)
		}
	}
}

func TestDstURIWrites(t *testing.T) {
	slots := newSlots()
	m := newReqMsg(t)
	du := compileT(t, slots, "du")
	dd := compileT(t, slots, "dd")
	dp := compileT(t, slots, "dp")
	// $dd without $du starts from the R-URI
	if err := dd.Set(m, "=", value.S("10.9.9.9")); err != nil {
		t.Fatal(err)
	}
	if m.DstURI != "sip:+15551234@10.9.9.9;user=phone" {
		t.Errorf("DstURI after $dd = %q", m.DstURI)
	}
	if err := du.Set(m, "=", value.S("sip:10.0.0.2;transport=tls")); err != nil {
		t.Fatal(err)
	}
	if show(dp.Get(m)) != "5061" || show(compileT(t, slots, "dP").Get(m)) != "tls" {
		t.Errorf("$dp/$dP = %s/%s", show(dp.Get(m)), show(compileT(t, slots, "dP").Get(m)))
	}
	if err := dp.Set(m, "=", value.S("5099")); err != nil {
		t.Fatal(err)
	}
	if m.DstURI != "sip:10.0.0.2:5099;transport=tls" {
		t.Errorf("DstURI after $dp = %q", m.DstURI)
	}
	if err := du.Set(m, "=", value.Null); err != nil || m.DstURI != "" {
		t.Errorf("$du = NULL: %v %q", err, m.DstURI)
	}
	if show(du.Get(m)) != "<null>" {
		t.Errorf("$du after reset = %s", show(du.Get(m)))
	}
}

func TestVarAndAVP(t *testing.T) {
	slots := newSlots()
	m := newReqMsg(t)
	v := compileT(t, slots, "var(x)")
	if show(v.Get(m)) != "<null>" {
		t.Errorf("unset $var = %s", show(v.Get(m)))
	}
	_ = v.Set(m, "=", value.I(7))
	if got := v.Get(m); !got.IsInt() || got.I != 7 {
		t.Errorf("$var(x) = %+v", got)
	}
	_ = v.Set(m, ":=", value.S("seven"))
	if show(v.Get(m)) != "seven" {
		t.Errorf("$var(x) = %s", show(v.Get(m)))
	}
	_ = v.Set(m, "=", value.Null)
	if !v.Get(m).IsNull() {
		t.Error("$var(x) = NULL did not clear it")
	}
	if compileT(t, slots, "var(x)").Arg.(varSlot).slot != v.Arg.(varSlot).slot {
		t.Error("the same name must get the same slot")
	}

	a := compileT(t, slots, "avp(a)")
	push := func(s string) {
		if err := a.Set(m, "=", value.S(s)); err != nil {
			t.Fatal(err)
		}
	}
	get := func(spec string) string { return show(compileT(t, slots, spec).Get(m)) }
	push("one")
	push("two")
	push("three")
	want := map[string]string{
		"avp(a)": "three", "avp(a)[0]": "three", "avp(a)[1]": "two", "avp(a)[2]": "one",
		"avp(a)[3]": "<null>", "avp(a)[-1]": "one", "avp(a)[-3]": "three", "avp(a)[-4]": "<null>",
		"avp(a)[*]": "three, two, one", "avp(b)": "<null>",
	}
	for spec, w := range want {
		if g := get(spec); g != w {
			t.Errorf("$%s = %q, want %q", spec, g, w)
		}
	}
	// indexed replace
	if err := compileT(t, slots, "avp(a)[1]").Set(m, "=", value.S("TWO")); err != nil {
		t.Fatal(err)
	}
	if get("avp(a)[*]") != "three, TWO, one" {
		t.Errorf("after indexed set: %s", get("avp(a)[*]"))
	}
	if err := compileT(t, slots, "avp(a)[9]").Set(m, "=", value.S("x")); err == nil {
		t.Error("replacing a missing index must fail")
	}
	// = NULL deletes the newest, [N] = NULL the Nth
	_ = a.Set(m, "=", value.Null)
	if get("avp(a)[*]") != "TWO, one" {
		t.Errorf("after = NULL: %s", get("avp(a)[*]"))
	}
	_ = compileT(t, slots, "avp(a)[1]").Set(m, "=", value.Null)
	if get("avp(a)[*]") != "TWO" {
		t.Errorf("after [1] = NULL: %s", get("avp(a)[*]"))
	}
	push("x")
	push("y")
	// := replaces every value
	_ = a.Set(m, ":=", value.I(42))
	if get("avp(a)[*]") != "42" {
		t.Errorf("after := : %s", get("avp(a)[*]"))
	}
	push("z")
	_ = compileT(t, slots, "avp(a)[*]").Set(m, "=", value.Null)
	if get("avp(a)") != "<null>" {
		t.Errorf("after [*] = NULL: %s", get("avp(a)"))
	}
	if err := compileT(t, slots, "avp(a)[-1]").Set(m, "=", value.Null); err == nil {
		t.Error("negative index delete must fail")
	}

	// dynamic names are compile-time only
	if _, err := Compile(parseSpec(t, "var(x)"), nil); err == nil {
		t.Error("$var with nil slots must fail")
	}
	dyn := compileT(t, slots, "avp($var(x))")
	if _, err := dyn.GetErr(m); err == nil {
		t.Error("dynamic AVP name must report an error")
	}
	if err := dyn.Set(m, "=", value.S("v")); err == nil {
		t.Error("dynamic AVP name set must fail")
	}
}

func TestDynamicHeaderAndIndex(t *testing.T) {
	slots := newSlots()
	m := newReqMsg(t)
	_ = compileT(t, slots, "var(h)").Set(m, "=", value.S("X-Custom"))
	_ = compileT(t, slots, "var(i)").Set(m, "=", value.I(2))
	if got := show(compileT(t, slots, "hdr($var(h))").Get(m)); got != "one" {
		t.Errorf("$hdr($var(h)) = %q", got)
	}
	if got := show(compileT(t, slots, "hdr(X-Custom)[$var(i)]").Get(m)); got != "three" {
		t.Errorf("indexed by pvar = %q", got)
	}
}

func TestParams(t *testing.T) {
	slots := newSlots()
	m := newReqMsg(t)
	m.Params = []value.Value{value.S("a"), value.I(2)}
	m.Event = map[string]value.Value{"ip": value.S("1.2.3.4")}
	for spec, want := range map[string]string{
		"param(1)": "a", "param(2)": "2", "param(3)": "<null>", "param(ip)": "1.2.3.4", "param(nope)": "<null>",
	} {
		if got := show(compileT(t, slots, spec).Get(m)); got != want {
			t.Errorf("$%s = %q, want %q", spec, got, want)
		}
	}
	if _, err := Compile(parseSpec(t, "param(0)"), slots); err == nil {
		t.Error("$param(0) must be rejected")
	}
}

func TestBranches(t *testing.T) {
	slots := newSlots()
	m := newReqMsg(t)
	br := compileT(t, slots, "branch")
	if show(br.Get(m)) != "<null>" {
		t.Error("no branch yet")
	}
	_ = br.Set(m, "=", value.S("sip:a@x"))
	_ = br.Set(m, "=", value.S("sip:b@y"))
	if err := compileT(t, slots, "branch(q)[1]").Set(m, "=", value.I(500)); err != nil {
		t.Fatal(err)
	}
	_ = compileT(t, slots, "branch(duri)").Set(m, "=", value.S("sip:10.0.0.9"))
	for spec, want := range map[string]string{
		"branch": "sip:a@x", "branch[1]": "sip:b@y", "branch[*]": "sip:a@x, sip:b@y",
		"branch(q)[1]": "0.5", "branch(q)": "", "branch(duri)": "sip:10.0.0.9", "branch(uri)[-1]": "sip:b@y",
		"branch[2]": "<null>",
	} {
		if got := show(compileT(t, slots, spec).Get(m)); got != want {
			t.Errorf("$%s = %q, want %q", spec, got, want)
		}
	}
}

func TestTimeAndColor(t *testing.T) {
	slots := newSlots()
	m := newReqMsg(t)
	fixed := time.Date(2026, 3, 5, 7, 8, 9, 123456000, time.Local)
	now = func() time.Time { return fixed }
	defer func() { now = time.Now }()
	for spec, want := range map[string]string{
		"time(%Y-%m-%d %H:%M:%S)": "2026-03-05 07:08:09",
		"time(%a %b %e %j %%)":    "Thu Mar  5 064 %",
		"Tf":                      "Thu Mar  5 07:08:09 2026",
		"Tsm":                     "123456",
	} {
		if got := show(compileT(t, slots, spec).Get(m)); got != want {
			t.Errorf("$%s = %q, want %q", spec, got, want)
		}
	}
	if v := compileT(t, slots, "Ts").Get(m); v.I != int(fixed.Unix()) {
		t.Errorf("$Ts = %v", v)
	}
	if _, err := Compile(parseSpec(t, "time(%Q)"), slots); err == nil {
		t.Error("unknown strftime conversion must fail")
	}
	c := compileT(t, slots, "C(Rb)")
	if show(c.Get(m)) != "" {
		t.Error("colours are off by default")
	}
	SetColors(true)
	defer SetColors(false)
	if got := show(c.Get(m)); got != "\033[1;31;44m" {
		t.Errorf("$C(Rb) = %q", got)
	}
	if got := show(compileT(t, slots, "C(xx)").Get(m)); got != "\033[0;39;49m" {
		t.Errorf("$C(xx) = %q", got)
	}
	for _, bad := range []string{"C(q)", "C(zz)", "C(xR)"} {
		if _, err := Compile(parseSpec(t, bad), slots); err == nil {
			t.Errorf("$%s must be rejected", bad)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	slots := newSlots()
	for _, bad := range []string{"hdr", "hdr()", "hdr(a b)", "ru(x)", "ct.fields(bogus)", "socket_in(bogus)", "nosuch"} {
		if _, err := Compile(parseSpec(t, bad), slots); err == nil {
			t.Errorf("$%s must be rejected", bad)
		}
	}
}

func TestNoMessage(t *testing.T) {
	// startup/timer routes: no SIP message at all
	slots := newSlots()
	m := newReqMsg(t)
	m.Req = nil
	for _, n := range Names() {
		s := Lookup(n)
		if s.Arg == NeedArg {
			continue
		}
		r, err := Compile(parseSpec(t, n), slots)
		if err != nil {
			t.Fatalf("$%s: %v", n, err)
		}
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("$%s panicked without a message: %v", n, p)
				}
			}()
			r.Get(m)
		}()
	}
}

func TestURIStringMatchesSipgo(t *testing.T) {
	for _, s := range []string{
		"sip:alice@example.com", "sips:bob:pw@[2001:db8::1]:5061;transport=tls;lr?subject=x&y=z",
		"sip:example.com;user=phone;maddr=1.2.3.4", "tel:+1234;phone-context=x", "sip:a@b;p=\"x y\"",
	} {
		var u sip.Uri
		if err := sip.ParseUri(s, &u); err != nil {
			t.Fatal(err)
		}
		if got, want := uriString(&u), u.String(); got != want {
			t.Errorf("uriString(%q) = %q, sipgo %q", s, got, want)
		}
	}
}
