package pvar

import (
	"strconv"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/runtime/value"
)

type trCase struct {
	in    value.Value
	trans string // e.g. "{s.substr,0,4}"
	want  string // "<null>" for NULL
	err   bool   // the transformation must fail (value NULL)
}

func runTrans(t *testing.T, cases []trCase) {
	t.Helper()
	slots := newSlots()
	m := newReqMsg(t)
	in := compileT(t, slots, "var(in)")
	for _, c := range cases {
		if err := in.Set(m, "=", c.in); err != nil {
			t.Fatal(err)
		}
		r := compileT(t, slots, "var(in)"+c.trans)
		got, err := r.GetErr(m)
		switch {
		case c.err && err == nil:
			t.Errorf("%q%s = %q, want an error", c.in.AsString(), c.trans, show(got))
		case c.err && !got.IsNull():
			t.Errorf("%q%s failed but gave %q, want NULL", c.in.AsString(), c.trans, show(got))
		case !c.err && err != nil:
			t.Errorf("%q%s: unexpected error %v", c.in.AsString(), c.trans, err)
		case !c.err && show(got) != c.want:
			t.Errorf("%q%s = %q, want %q", c.in.AsString(), c.trans, show(got), c.want)
		}
	}
}

func s(v string) value.Value { return value.S(v) }

func TestStringTrans(t *testing.T) {
	runTrans(t, []trCase{
		{s("abcde"), "{s.len}", "5", false},
		{value.I(123), "{s.len}", "3", false},
		{value.Null, "{s.len}", "<null>", false},
		{s(""), "{s.len}", "0", false},
		{s("123abc"), "{s.int}", "123", false},
		{s("-42"), "{s.int}", "-42", false},
		{s("abc"), "{s.int}", "0", false},
		{value.I(7), "{s.int}", "7", false},
		{s("abc"), "{s.md5}", "900150983cd24fb0d6963f7d28e17f72", false},
		{s("abc"), "{s.sha1}", "a9993e364706816aba3e25717850c26c9cd0d89d", false},
		{s("abc"), "{s.sha224}", "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7", false},
		{s("abc"), "{s.sha256}", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", false},
		{s("The quick brown fox jumps over the lazy dog"), "{s.sha256_hmac,key}",
			"f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8", false},
		{s("abc"), "{s.crc32}", "891568578", false},
		{s("abc"), "{s.encode.hexa}", "616263", false},
		{s("616263"), "{s.decode.hexa}", "abc", false},
		{s("61626"), "{s.decode.hexa}", "ab", false},
		{s("6z"), "{s.decode.hexa}", "", true},
		{s("ff"), "{s.hex2dec}", "255", false},
		{s("FF"), "{s.hex2dec}", "255", false},
		{s("ffffffff"), "{s.hex2dec}", "-1", false},
		{s("zz"), "{s.hex2dec}", "", true},
		{value.I(255), "{s.dec2hex}", "ff", false},
		{s("255"), "{s.dec2hex}", "ff", false},
		{s("-1"), "{s.dec2hex}", "ffffffff", false},
		{s("x1"), "{s.dec2hex}", "", true},
		{s(`a'b"c\d`), "{s.escape.common}", `a\'b\"c\\d`, false},
		{s(`a\'b\"c\\d\x`), "{s.unescape.common}", `a'b"c\d\x`, false},
		{s("alice smith@x"), "{s.escape.user}", "alice%20smith%40x", false},
		{s("a+b;c?d/e"), "{s.escape.user}", "a+b;c?d/e", false},
		{s("alice%20smith%3A"), "{s.unescape.user}", "alice smith:", false},
		{s("bad%zz"), "{s.unescape.user}", "", true},
		{s("bad%0a"), "{s.unescape.user}", "", true},
		{s("trunc%4"), "{s.unescape.user}", "", true},
		{s("a b;c=d:[x]"), "{s.escape.param}", "a%20b%3bc%3dd:[x]", false},
		{s("a%20b%3bc"), "{s.unescape.param}", "a b;c", false},
		{s("tab\there"), "{s.escape.user}", "", true},
		{s("abcdefgh"), "{s.substr,0,4}", "abcd", false},
		{s("abcdefgh"), "{s.substr,2,0}", "cdefgh", false},
		{s("abcdefgh"), "{s.substr,-3,0}", "fgh", false},
		{s("abcdefgh"), "{s.substr,-3,2}", "fg", false},
		{s("abcdefgh"), "{s.substr,1,-2}", "bcdef", false},
		{s("abcdefgh"), "{s.substr,6,10}", "gh", false},
		{s("abcdefgh"), "{s.substr,8,1}", "", true},
		{s("abcdefgh"), "{s.substr,-9,1}", "", true},
		{s("abcdefgh"), "{s.substr,1,-8}", "", true},
		{s(""), "{s.substr,0,1}", "", true},
		{value.I(123456), "{s.substr,1,2}", "23", false},
		{s("a.b.c"), "{s.select,0,.}", "a", false},
		{s("a.b.c"), "{s.select,1,.}", "b", false},
		{s("a.b.c"), "{s.select,2,.}", "c", false},
		{s("a.b.c"), "{s.select,3,.}", "<null>", false},
		{s("a.b.c"), "{s.select,-1,.}", "c", false},
		{s("a.b.c"), "{s.select,-3,.}", "a", false},
		{s("a.b.c"), "{s.select,-4,.}", "<null>", false},
		{s("a..c"), "{s.select,1,.}", "", false},
		{s("AbC-1"), "{s.tolower}", "abc-1", false},
		{s("AbC-1"), "{s.toupper}", "ABC-1", false},
		{value.I(5), "{s.toupper}", "5", false},
		{s("hello world"), "{s.index,o}", "4", false},
		{s("hello world"), "{s.index,o,5}", "7", false},
		{s("hello world"), "{s.index,o,-4}", "7", false},
		{s("hello world"), "{s.index,zz}", "<null>", false},
		{s("hello world"), "{s.index,o,20}", "<null>", false},
		{s("hello world"), "{s.rindex,o}", "7", false},
		{s("hello world"), "{s.rindex,o,5}", "4", false},
		{s("hello world"), "{s.rindex,hello}", "0", false},
		{s("hello world"), "{s.rindex,world,3}", "<null>", false},
		{s("5"), "{s.fill.left,0,3}", "005", false},
		{s("abc"), "{s.fill.left,xy,6}", "yxyabc", false},
		{s("abc"), "{s.fill.right,xy,6}", "abcxyx", false},
		{s("abc"), "{s.fill.right,' ',5}", "abc  ", false},
		{s("abcdef"), "{s.fill.left,0,3}", "abcdef", false},
		{value.I(7), "{s.fill.left,0,3}", "007", false},
		{s("abc"), "{s.width,5}", "abc  ", false},
		{s("abcdef"), "{s.width,3}", "abc", false},
		{s("hello"), "{s.b64encode}", "aGVsbG8=", false},
		{s("aGVsbG8="), "{s.b64decode}", "hello", false},
		{s("!!"), "{s.b64decode}", "", true},
		{s("abc"), "{s.xor,k}{s.xor,k}", "abc", false},
		{s("abc"), "{s.xor,k}{s.encode.hexa}", "0a0908", false},
		{s("  a b \t"), "{s.trim}", "a b", false},
		{s("  a b \t"), "{s.trimr}", "  a b", false},
		{s("  a b \t"), "{s.triml}", "a b \t", false},
		{s("abc"), "{s.reverse}", "cba", false},
		{s("Thu, 13 Jun 2024 12:48:00 GMT"), "{s.date2unix}", "1718282880", false},
		{s("yesterday"), "{s.date2unix}", "", true},
		{s("Hello"), "{s.tolower}{s.len}{s.dec2hex}", "5", false},
	})
}

func TestURITrans(t *testing.T) {
	full := s("sip:alice:secret@example.com:5070;transport=tcp;lr;user=phone;ttl=5;maddr=1.2.3.4;method=INVITE;r2=on?subject=hi&x=y")
	runTrans(t, []trCase{
		{full, "{uri.user}", "alice", false},
		{full, "{uri.passwd}", "secret", false},
		{full, "{uri.host}", "example.com", false},
		{full, "{uri.domain}", "example.com", false},
		{full, "{uri.port}", "5070", false},
		{full, "{uri.params}", "transport=tcp;lr;user=phone;ttl=5;maddr=1.2.3.4;method=INVITE;r2=on", false},
		{full, "{uri.param,transport}", "tcp", false},
		{full, "{uri.param,TTL}", "5", false},
		{full, "{uri.param,lr}", "", false},
		{full, "{uri.param,nope}", "<null>", false},
		{full, "{uri.headers}", "subject=hi&x=y", false},
		{full, "{uri.transport}", "tcp", false},
		{full, "{uri.ttl}", "5", false},
		{full, "{uri.uparam}", "phone", false},
		{full, "{uri.maddr}", "1.2.3.4", false},
		{full, "{uri.method}", "INVITE", false},
		{full, "{uri.lr}", "<null>", false},
		{full, "{uri.r2}", "on", false},
		{full, "{uri.schema}", "sip", false},
		{s("sip:alice@x.com;transport=tcp"), "{uri.user}", "alice", false},
		{s("sips:x.com"), "{uri.user}", "<null>", false},
		{s("sips:x.com"), "{uri.port}", "<null>", false},
		{s("sips:x.com"), "{uri.params}", "<null>", false},
		{s("sips:x.com"), "{uri.schema}", "sips", false},
		{s("sip:[2001:db8::1]:5080;lr"), "{uri.host}", "[2001:db8::1]", false},
		{s("sip:[2001:db8::1]:5080;lr"), "{uri.port}", "5080", false},
		{s("tel:+1234;phone-context=example.com"), "{uri.user}", "+1234", false},
		{s("tel:+1234;phone-context=example.com"), "{uri.param,phone-context}", "example.com", false},
		{s("<sip:a@b>"), "{uri.user}", "", true},
		{s(`"A" <sip:a@b>`), "{uri.host}", "", true},
		{s("alice@example.com"), "{uri.user}", "", true},
		{s("http://x"), "{uri.host}", "", true},
		{s("sip:a@b:99999"), "{uri.port}", "", true},
		{s("sip:a@b:"), "{uri.port}", "", true},
		{s("sip:@b"), "{uri.host}", "", true},
		{s(""), "{uri.user}", "", true},
		{value.I(5), "{uri.user}", "", true},
		{value.Null, "{uri.user}", "<null>", false},
		{full, "{uri.user}{s.toupper}", "ALICE", false},
	})
}

func TestParamTrans(t *testing.T) {
	pl := s(`a=1;b=2;c;d="x y"`)
	runTrans(t, []trCase{
		{pl, "{param.value,b}", "2", false},
		{pl, "{param.value,B}", "2", false},
		{pl, "{param.value,c}", "", false},
		{pl, "{param.value,d}", "x y", false},
		{pl, "{param.value,z}", "<null>", false},
		{pl, "{param.exist,c}", "1", false},
		{pl, "{param.exist,z}", "0", false},
		{pl, "{param.valueat,0}", "1", false},
		{pl, "{param.valueat,-1}", "x y", false},
		{pl, "{param.valueat,9}", "<null>", false},
		{pl, "{param.name,1}", "b", false},
		{pl, "{param.name,-1}", "d", false},
		{pl, "{param.name,-5}", "<null>", false},
		{pl, "{param.count}", "4", false},
		{s(" a = 1 ; b "), "{param.value,a}", "1", false},
		{s(";lr;r2=on"), "{param.count}", "2", false},
		{s("=x"), "{param.count}", "", true},
		{s(`a="unterminated`), "{param.value,a}", "", true},
		{s(";"), "{param.count}", "", true},
		{value.I(1), "{param.count}", "", true},
	})
}

func TestNameAddrTrans(t *testing.T) {
	na := s(`"Alice Smith" <sip:alice@x.com;transport=tcp>;tag=abc;expires=10`)
	runTrans(t, []trCase{
		{na, "{nameaddr.name}", `"Alice Smith"`, false},
		{na, "{nameaddr.uri}", "sip:alice@x.com;transport=tcp", false},
		{na, "{nameaddr.params}", "tag=abc;expires=10", false},
		{na, "{nameaddr.param,tag}", "abc", false},
		{na, "{nameaddr.param,TAG}", "<null>", false},
		{na, "{nameaddr.param,nope}", "<null>", false},
		{na, "{nameaddr.len}", strconv.Itoa(len(na.S)), false},
		{na, "{nameaddr.uri}{uri.param,transport}", "tcp", false},
		{s("sip:bob@y.com;tag=1"), "{nameaddr.uri}", "sip:bob@y.com", false},
		{s("sip:bob@y.com;tag=1"), "{nameaddr.param,tag}", "1", false},
		{s("sip:bob@y.com;tag=1"), "{nameaddr.name}", "<null>", false},
		{s("Bob <sip:bob@y>"), "{nameaddr.name}", "Bob", false},
		{s("<sip:bob@y>"), "{nameaddr.params}", "<null>", false},
		{s("<sip:a@b"), "{nameaddr.uri}", "", true},
		{s(`"Alice <sip:a@b>`), "{nameaddr.uri}", "", true},
		{s("<>"), "{nameaddr.uri}", "", true},
		{s("<sip:a@b> junk"), "{nameaddr.uri}", "", true},
	})
}

func TestViaTrans(t *testing.T) {
	v := s("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776;rport;received=1.2.3.4 (a comment)")
	runTrans(t, []trCase{
		{v, "{via.name}", "SIP", false},
		{v, "{via.version}", "2.0", false},
		{v, "{via.transport}", "UDP", false},
		{v, "{via.host}", "10.0.0.1", false},
		{v, "{via.port}", "5060", false},
		{v, "{via.params}", "branch=z9hG4bK776;rport;received=1.2.3.4", false},
		{v, "{via.comment}", "a comment", false},
		{v, "{via.branch}", "z9hG4bK776", false},
		{v, "{via.received}", "1.2.3.4", false},
		{v, "{via.rport}", "<null>", false},
		{v, "{via.param,rport}", "", false},
		{v, "{via.param,BRANCH}", "z9hG4bK776", false},
		{v, "{via.param,nope}", "<null>", false},
		{s("SIP/2.0/TLS [2001:db8::1]:5061;branch=x"), "{via.host}", "[2001:db8::1]", false},
		{s("SIP/2.0/TCP example.com"), "{via.port}", "<null>", false},
		{s("SIP/2.0/TCP example.com"), "{via.params}", "<null>", false},
		{s("SIP/2.0/UDP a.example;branch=1, SIP/2.0/UDP b.example"), "{via.host}", "a.example", false},
		{s("garbage"), "{via.host}", "", true},
		{s("SIP/2.0/UDP"), "{via.host}", "", true},
		{s("ab"), "{via.host}", "", true},
	})
}

func TestMiscTrans(t *testing.T) {
	runTrans(t, []trCase{
		{s(`a,"b,c",,"d""e"`), "{csv.count}", "4", false},
		{s(`a,"b,c",,"d""e"`), "{csv.value,1}", "b,c", false},
		{s(`a,"b,c",,"d""e"`), "{csv.value,2}", "", false},
		{s(`a,"b,c",,"d""e"`), "{csv.value,-1}", `d"e`, false},
		{s(`a,"b,c",,"d""e"`), "{csv.value,4}", "", true},
		{s(`"open`), "{csv.count}", "", true},
		{s("alice@example.com"), `{re.subst,/^([a-z]+)@(.*)$/\2:\1/}`, "example.com:alice", false},
		{s("aAa"), "{re.subst,/A/b/i}", "bAa", false},
		{s("aAa"), "{re.subst,/a/b/gi}", "bbb", false},
		{s("aAa"), "{re.subst,/a/b/g}", "bAb", false},
		{s("xyz"), "{re.subst,/a/b/}", "xyz", false},
		{s("+4412345"), `{re.subst,/^\+44/0/}`, "012345", false},
		{s("1.2.3.4"), "{ip.isip}", "1", false},
		{s("nope"), "{ip.isip}", "0", false},
		{s("::1"), "{ip.isip4}", "0", false},
		{s("::1"), "{ip.isip6}", "1", false},
		{s("10.1.2.3"), "{ip.isprivate}", "1", false},
		{s("8.8.8.8"), "{ip.isprivate}", "0", false},
		{s("10.1.2.3"), "{ip.matches,10.0.0.0/8}", "1", false},
		{s("11.1.2.3"), "{ip.matches,10.0.0.0/8}", "0", false},
		{s("::1"), "{ip.matches,10.0.0.0/8}", "", true},
		{s("1.2.3.4"), "{ip.pton}{ip.ntop}", "1.2.3.4", false},
		{s("1.2.3.4"), "{ip.pton}{ip.family}", "INET", false},
		{s("2001:db8::1"), "{ip.pton}{ip.family}", "INET6", false},
		{s("x"), "{ip.pton}", "", true},
		{s("abc"), "{ip.ntop}", "", true},
	})
}

func TestTransOnMessage(t *testing.T) {
	slots := newSlots()
	m := newReqMsg(t)
	for spec, want := range map[string]string{
		"rU{s.substr,0,4}":                       "+155",
		"fu{uri.user}{s.toupper}":                "ALICE",
		"hdr(Via)[1]{via.host}":                  "proxy.example.net",
		"hdr(Via){via.branch}":                   "z9hG4bK776asdhds",
		"hdr(Via)[1]{via.received}":              "192.0.2.7",
		"hdr(From){nameaddr.param,tag}":          "1928301774",
		"ct{nameaddr.uri}{uri.port}":             "5060",
		"hdr(Diversion){nameaddr.uri}{uri.user}": "bob",
		"ru{uri.param,user}":                     "phone",
		"ua{s.select,0,/}":                       "SIPp",
		"ua{s.len}":                              "8",
		"hdr(X-Missing){s.len}":                  "<null>",
		"rU{s.substr,$var(off),$var(len)}":       "555",
		"ua{s.index,$var(needle)}":               "4",
	} {
		_ = compileT(t, slots, "var(off)").Set(m, "=", value.I(2))
		_ = compileT(t, slots, "var(len)").Set(m, "=", value.I(3))
		_ = compileT(t, slots, "var(needle)").Set(m, "=", value.S("/"))
		got, err := compileT(t, slots, spec).GetErr(m)
		if err != nil || show(got) != want {
			t.Errorf("$(%s) = %q, %v; want %q", spec, show(got), err, want)
		}
	}
	// an error names the pvar and the transformation
	r := compileT(t, slots, "fn{uri.user}")
	_, err := r.GetErr(m)
	if err == nil || !strings.Contains(err.Error(), "{uri.user}") {
		t.Errorf("error %v should name the transformation", err)
	}
	// a pvar parameter of the wrong kind is a run-time error
	_ = compileT(t, slots, "var(off)").Set(m, "=", value.S("x"))
	if _, err := compileT(t, slots, "rU{s.substr,$var(off),1}").GetErr(m); err == nil {
		t.Error("non-integer pvar parameter must fail")
	}
}

func TestTransCompileErrors(t *testing.T) {
	slots := newSlots()
	for _, bad := range []string{
		"var(x){s.nope}", "var(x){s.substr,1}", "var(x){s.substr,a,1}", "var(x){s.select,x,.}",
		"var(x){re.subst,/(/x/}", "var(x){re.subst,/a/b/q}", "var(x){re.subst,abc}", `var(x){re.subst,/a/\3/}`,
		"var(x){re.subst,/a/$var(y)/}", "var(x){s.width,0}", "var(x){s.fill.left,'',3}",
		"var(x){s.fill.left,0,$var(n)}", "var(x){uri.param}", "var(x){ip.matches,zzz}",
		"var(x){s.len,1}", "var(x){param.valueat,x}", "var(x){csv.value,x}", "var(x){nope.user}",
	} {
		if _, err := Compile(parseSpec(t, bad), slots); err == nil {
			t.Errorf("$(%s) must be rejected at load time", bad)
		}
	}
}

// TestTransNoPanic runs every transformation on awkward inputs: the result
// may be an error, never a panic.
func TestTransNoPanic(t *testing.T) {
	slots := newSlots()
	m := newReqMsg(t)
	inputs := []value.Value{value.Null, s(""), s("x"), value.I(-7), s("%"), s("\x00\xff"), s(";;="),
		s(`"`), s("<"), s("sip:"), s("SIP/"), s(strings.Repeat("ab,", 200)), s("::::"), s("[")}
	params := []value.Value{s("1"), value.I(-1), s("x"), value.I(0), value.I(1000), s(";"), value.Null}
	in := compileT(t, slots, "var(in)")
	pr := []*Ref{compileT(t, slots, "var(p0)"), compileT(t, slots, "var(p1)")}
	for key, tr := range transforms {
		for _, v := range inputs {
			for _, p := range params {
				_ = in.Set(m, "=", v)
				_ = pr[0].Set(m, "=", p)
				_ = pr[1].Set(m, "=", p)
				ps := []value.Value{p, p}[:tr.MaxParams]
				func() {
					defer func() {
						if e := recover(); e != nil {
							t.Errorf("{%s} on %q with %v panicked: %v", key, v.AsString(), p, e)
						}
					}()
					out, err := tr.Fn(m, v, ps)
					if err != nil && !out.IsNull() {
						t.Errorf("{%s} on %q failed (%v) but returned %v", key, v.AsString(), err, out)
					}
				}()
			}
		}
	}
}
