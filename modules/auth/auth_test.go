package auth

import (
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/value"
)

// RFC 2617 §3.5 and RFC 7616 §3.9.1 examples.
func TestResponseVectors(t *testing.T) {
	ha1 := HA1(AlgMD5, "Mufasa", "testrealm@host.com", "Circle Of Life")
	if got := Response(AlgMD5, ha1, "dcd98b7102dd2f0e8b11d0f600bfb0c093", "00000001", "0a4f113b", "auth", "GET", "/dir/index.html", nil); got != "6629fae49393a05397450978507c4ef1" {
		t.Errorf("RFC 2617 MD5 response = %s", got)
	}
	nonce, cnonce := "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
	for _, tc := range []struct {
		alg  Alg
		want string
	}{
		{AlgMD5, "8ca523f5e9506fed4657c9700eebdbec"},
		{AlgSHA256, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"},
	} {
		ha1 := HA1(tc.alg, "Mufasa", "http-auth@example.org", "Circle of Life")
		if got := Response(tc.alg, ha1, nonce, "00000001", cnonce, "auth", "GET", "/dir/index.html", nil); got != tc.want {
			t.Errorf("RFC 7616 %s response = %s, want %s", tc.alg, got, tc.want)
		}
	}
}

func TestParseCredentials(t *testing.T) {
	c, ok := parseCredentials(`Digest username="bob@b.example", realm="b.example", nonce="n", uri="sip:b.example", response="0123456789abcdef0123456789abcdef", algorithm=MD5, qop=auth, nc=00000001, cnonce="x\"y"`)
	if !ok || c.malformed != "" || c.User != "bob" || c.Domain != "b.example" || c.CNonce != `x"y` || c.Alg != AlgMD5 {
		t.Fatalf("%+v %v", c, ok)
	}
	for v, why := range map[string]string{
		`Digest realm="r", nonce="n", uri="u", response="r"`:                                           "no username",
		`Digest username="u", realm="r", nonce="n", uri="u", response="r", qop=auth`:                   "nc or cnonce",
		`Digest username="u", realm="r", nonce="n", uri="u", response="r", algorithm=SHA-1`:            "unsupported algorithm",
		`Digest username="u", realm="r", nonce="n", uri="u", response="r", algorithm=SHA-256`:          "without qop",
		`Digest username="u", realm="r", nonce="n", uri="u", response="r", qop=auth, nc=1, cnonce="c"`: "bad nc",
	} {
		c, ok := parseCredentials(v)
		if !ok || !strings.Contains(c.malformed, why) {
			t.Errorf("%s: malformed = %q, want %q", v, c.malformed, why)
		}
	}
	if _, ok := parseCredentials(`Basic dXNlcjpwdw==`); ok {
		t.Error("Basic parsed as digest")
	}
}

func TestNonce(t *testing.T) {
	key := []byte("k")
	n := makeNonce(key, nonceData{expires: 100, index: 7, qop: qopAuth, alg: AlgSHA256})
	d, ok := parseNonce(key, n)
	if !ok || d.expires != 100 || d.index != 7 || d.qop != qopAuth || d.alg != AlgSHA256 {
		t.Fatalf("%+v %v", d, ok)
	}
	if _, ok := parseNonce([]byte("other"), n); ok {
		t.Error("nonce verified with another key")
	}
	b := []byte(n)
	b[3] ^= 1
	if _, ok := parseNonce(key, string(b)); ok {
		t.Error("tampered nonce verified")
	}
	if _, ok := parseNonce(key, "short"); ok {
		t.Error("junk verified")
	}
}

func TestParseQOPAndAlgs(t *testing.T) {
	for in, want := range map[string]uint8{"": 0, "0": 0, "1": qopAuth, "auth": qopAuth, "auth-int": qopAuthInt, "auth,auth-int": 3, "auth-int, auth": 3} {
		if got, err := ParseQOP(in); err != nil || got != want {
			t.Errorf("ParseQOP(%q) = %d, %v", in, got, err)
		}
	}
	if _, err := ParseQOP("2"); err == nil {
		t.Error("qop 2 accepted")
	}
	algs, err := ParseAlgs("md5,SHA-512-256, sha-256")
	if err != nil || len(algs) != 3 || algs[0] != AlgSHA512_256 || algs[1] != AlgSHA256 || algs[2] != AlgMD5 {
		t.Errorf("ParseAlgs = %v, %v", algs, err)
	}
	if _, err := ParseAlgs("SHA-1"); err == nil {
		t.Error("SHA-1 accepted")
	}
}

func setConfig(t *testing.T, params map[string]value.Value) {
	t.Helper()
	p := modules.Params{}
	for _, s := range modules.Lookup(Name).Params {
		if !s.Default.IsNull() {
			p[s.Name] = []value.Value{s.Default}
		}
	}
	for k, v := range params {
		p[k] = []value.Value{v}
	}
	apply, err := configure(p)
	if err != nil {
		t.Fatal(err)
	}
	old := cur.Load()
	apply()
	t.Cleanup(func() { cur.Store(old) })
}

func TestChallengeAndAuthorize(t *testing.T) {
	setConfig(t, nil)
	m, h := newMsg(t, register("alice", "example.com"))
	if _, code, done := Begin(m, "", WWW, "www_authorize"); !done || code != NoCredentials {
		t.Fatalf("no credentials: %d %v", code, done)
	}
	if rc := call(t, m, "www_challenge", "", "auth", "SHA-256,MD5"); rc != 0 {
		t.Fatalf("www_challenge = %d", rc)
	}
	if len(h.replies) != 1 || h.replies[0].code != 401 || h.replies[0].reason != "Unauthorized" || len(h.replies[0].headers) != 2 {
		t.Fatalf("replies = %+v", h.replies)
	}
	if len(m.ReplyHeaders) != 0 {
		t.Errorf("challenge headers left for later replies: %v", m.ReplyHeaders)
	}
	sha, md := h.replies[0].headers[0], h.replies[0].headers[1]
	if !strings.HasPrefix(sha, `WWW-Authenticate: Digest realm="example.com", nonce="`) || !strings.HasSuffix(sha, `", qop="auth", algorithm=SHA-256`) ||
		!strings.HasSuffix(md, `", qop="auth", algorithm=MD5`) {
		t.Fatalf("challenges:\n%s\n%s", sha, md)
	}

	for _, tc := range []struct {
		name, challenge string
	}{{"sha256", sha}, {"md5", md}} {
		cl := &client{user: "alice", pass: "secret"}
		cred := cl.answer(strings.TrimPrefix(tc.challenge, "WWW-Authenticate: "), "REGISTER", "sip:example.com")
		m2, _ := newMsg(t, register("alice", "example.com", "Authorization: "+cred+"\r\n"))
		a, code, done := Begin(m2, "", WWW, "www_authorize")
		if done {
			t.Fatalf("%s: Begin = %d", tc.name, code)
		}
		if a.Verify(a.HA1("wrong")) {
			t.Fatalf("%s: wrong password verified", tc.name)
		}
		if !a.Verify(a.HA1("secret")) {
			t.Fatalf("%s: good password refused", tc.name)
		}
		if rc := a.Finish(); rc != Authorized {
			t.Fatalf("%s: Finish = %d", tc.name, rc)
		}
		// consume_credentials removes exactly the authorized header.
		if rc := call(t, m2, "consume_credentials"); rc != 1 || m2.Req.GetHeader("Authorization") != nil {
			t.Fatalf("%s: consume_credentials = %d", tc.name, rc)
		}
		// The same response again is a replay: stale.
		m3, h3 := newMsg(t, register("alice", "example.com", "Authorization: "+cred+"\r\n"))
		a, _, done = Begin(m3, "", WWW, "www_authorize")
		if done || !a.Verify(a.HA1("secret")) || a.Finish() != StaleNonce {
			t.Fatalf("%s: replay accepted", tc.name)
		}
		call(t, m3, "www_challenge", "", "auth")
		if !strings.Contains(h3.replies[0].headers[0], "stale=true") {
			t.Errorf("%s: challenge after a replay: %v", tc.name, h3.replies[0].headers)
		}
		// With qop, the next nc on the same nonce is fine.
		cred2 := cl.answer(strings.TrimPrefix(tc.challenge, "WWW-Authenticate: "), "REGISTER", "sip:example.com")
		m4, _ := newMsg(t, register("alice", "example.com", "Authorization: "+cred2+"\r\n"))
		a, _, done = Begin(m4, "", WWW, "www_authorize")
		if done || !a.Verify(a.HA1("secret")) || a.Finish() != Authorized {
			t.Fatalf("%s: next nc refused", tc.name)
		}
	}
}

func TestStaleAndInvalidNonce(t *testing.T) {
	setConfig(t, map[string]value.Value{"nonce_expire": value.I(10), "secret": value.S("s3cret")})
	m, h := newMsg(t, register("alice", "example.com"))
	call(t, m, "www_challenge", "", "0")
	ch := strings.TrimPrefix(h.replies[0].headers[0], "WWW-Authenticate: ")
	if strings.Contains(ch, "qop") || strings.Contains(ch, "algorithm") {
		t.Fatalf("qop 0 challenge: %s", ch)
	}
	cl := &client{user: "alice", pass: "secret"}
	cred := cl.answer(ch, "REGISTER", "sip:example.com")

	// Expired: the response is right but the nonce is too old.
	defer func(f func() time.Time) { now = f }(now)
	now = func() time.Time { return time.Now().Add(11 * time.Second) }
	m2, _ := newMsg(t, register("alice", "example.com", "Authorization: "+cred+"\r\n"))
	a, _, done := Begin(m2, "", WWW, "www_authorize")
	if done || !a.Verify(a.HA1("secret")) || a.Finish() != StaleNonce {
		t.Fatal("expired nonce accepted")
	}
	now = time.Now

	// A nonce signed with another secret is stale straight away.
	setConfig(t, map[string]value.Value{"secret": value.S("other")})
	m3, _ := newMsg(t, register("alice", "example.com", "Authorization: "+cred+"\r\n"))
	if _, code, done := Begin(m3, "", WWW, "www_authorize"); !done || code != StaleNonce {
		t.Fatalf("foreign nonce: %d %v", code, done)
	}
}

func TestRealmAndMalformed(t *testing.T) {
	setConfig(t, map[string]value.Value{"realm_prefix": value.S("sip.")})
	m, h := newMsg(t, register("alice", "sip.example.com"))
	call(t, m, "proxy_challenge", "", "auth")
	if h.replies[0].code != 407 || !strings.HasPrefix(h.replies[0].headers[0], `Proxy-Authenticate: Digest realm="example.com"`) {
		t.Fatalf("%+v", h.replies)
	}
	// Credentials for another realm are not ours.
	m2, _ := newMsg(t, register("alice", "example.com", `Authorization: Digest username="alice", realm="other", nonce="x", uri="sip:a", response="00"`+"\r\n"))
	if _, code, _ := Begin(m2, "", WWW, "www_authorize"); code != NoCredentials {
		t.Errorf("other realm: %d", code)
	}
	// Ours but unusable: 400, and the script stops (0).
	m3, h3 := newMsg(t, register("alice", "example.com", `Authorization: Digest realm="example.com", nonce="x", uri="sip:a", response="00"`+"\r\n"))
	if _, code, _ := Begin(m3, "", WWW, "www_authorize"); code != Error || len(h3.replies) != 1 || h3.replies[0].code != 400 {
		t.Errorf("malformed: %d %+v", code, h3.replies)
	}
	// ACK and CANCEL are always authorized.
	ack := strings.Replace(strings.Replace(register("a", "example.com"), "REGISTER sip", "ACK sip", 1), "1 REGISTER", "1 ACK", 1)
	m4, _ := newMsg(t, ack)
	if _, code, done := Begin(m4, "", WWW, "www_authorize"); !done || code != Authorized {
		t.Errorf("ACK: %d", code)
	}
}

func TestFixupErrors(t *testing.T) {
	f := fn(t, "www_challenge")
	args := []struct{ qop, alg string }{{"bogus", ""}, {"auth", "SHA-1"}}
	for _, a := range args {
		_, err := f.Fixup(fixArgs(a.qop, a.alg))
		if err == nil {
			t.Errorf("fixup(%q, %q) accepted", a.qop, a.alg)
		}
	}
}

func fixArgs(qop, alg string) []check.FixupArg {
	return []check.FixupArg{{Present: true, Const: true}, {Present: true, Const: true, Str: qop}, {Present: true, Const: true, Str: alg}}
}
