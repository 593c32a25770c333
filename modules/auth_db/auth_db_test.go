package auth_db

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/modules/auth"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

type testHost struct {
	logs    []string
	replies []string
}

func (h *testHost) Log(_ *msgctx.Msg, level int, text string) { h.logs = append(h.logs, text) }
func (h *testHost) Reply(m *msgctx.Msg, code int, reason string) error {
	line := fmt.Sprintf("%d %s", code, reason)
	for _, hd := range m.ReplyHeaders {
		line += " | " + hd.Name() + ": " + hd.Value()
	}
	h.replies = append(h.replies, line)
	return nil
}

func register(user, domain string, extra ...string) string {
	return "REGISTER sip:" + domain + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 198.51.100.7:5070;branch=z9hG4bK-1\r\n" +
		"From: <sip:" + user + "@" + domain + ">;tag=1\r\n" +
		"To: <sip:" + user + "@" + domain + ">\r\n" +
		"Call-ID: c1\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n" +
		strings.Join(extra, "") + "Content-Length: 0\r\n\r\n"
}

func newMsg(t testing.TB, raw string) (*msgctx.Msg, *testHost) {
	t.Helper()
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	h := &testHost{}
	return &msgctx.Msg{Req: msg.(*sip.Request), Host: h}, h
}

// setup creates a database with alice@example.com / secret (plain password
// kept) and configures auth_db on it.
func setup(t testing.TB, params map[string]value.Value) *store.DB {
	t.Helper()
	u := "sqlite://" + filepath.Join(t.TempDir(), "auth.db")
	db, err := store.Create(u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	if err := db.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := AddSubscriber(ctx, db, NewSubscriber("alice", "example.com", "secret", true)); err != nil {
		t.Fatal(err)
	}
	configureT(t, Name, configure, merge(params, map[string]value.Value{"db_url": value.S(u)}))
	return db
}

func merge(a, b map[string]value.Value) map[string]value.Value {
	out := map[string]value.Value{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func configureT(t testing.TB, mod string, cfg func(modules.Params) (func(), error), params map[string]value.Value) {
	t.Helper()
	p := modules.Params{}
	for _, s := range modules.Lookup(mod).Params {
		if !s.Default.IsNull() {
			p[s.Name] = []value.Value{s.Default}
		}
	}
	for k, v := range params {
		p[k] = []value.Value{v}
	}
	apply, err := cfg(p)
	if err != nil {
		t.Fatal(err)
	}
	apply()
}

func fn(t testing.TB, mod, name string) *modules.Func {
	for _, f := range modules.Lookup(mod).Funcs {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no %s.%s", mod, name)
	return nil
}

func call(t testing.TB, m *msgctx.Msg, mod, name string, args ...string) int {
	t.Helper()
	f := fn(t, mod, name)
	fargs := make([]check.FixupArg, len(f.Args))
	a := &modules.Args{Vals: make([]value.Value, len(f.Args)), Given: make([]bool, len(f.Args))}
	for i, s := range args {
		fargs[i] = check.FixupArg{Present: true, Const: true, Str: s}
		a.Vals[i], a.Given[i] = value.S(s), true
	}
	if f.Fixup != nil {
		fix, err := f.Fixup(fargs)
		if err != nil {
			t.Fatalf("%s fixup: %v", name, err)
		}
		a.Fix = fix
	}
	return f.Call(m, a)
}

var (
	realmRx = regexp.MustCompile(`realm="([^"]*)"`)
	nonceRx = regexp.MustCompile(`nonce="([^"]+)"`)
	algRx   = regexp.MustCompile(`algorithm=([A-Za-z0-9-]+)`)
)

// answer builds an Authorization value for a challenge (the part after
// "WWW-Authenticate: "); nc counts uses of the nonce.
func answer(challenge, user, pass string, nc int) string {
	realm := realmRx.FindStringSubmatch(challenge)[1]
	nonce := nonceRx.FindStringSubmatch(challenge)[1]
	alg := auth.AlgUnspec
	if mm := algRx.FindStringSubmatch(challenge); mm != nil {
		alg, _ = auth.ParseAlg(mm[1])
	}
	qop := ""
	if strings.Contains(challenge, `qop="auth`) {
		qop = "auth"
	}
	ncs := fmt.Sprintf("%08x", nc)
	resp := auth.Response(alg, auth.HA1(alg.Base(), user, realm, pass), nonce, ncs, "c0ffee", qop, "REGISTER", "sip:"+realm, nil)
	v := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="sip:%s", response="%s"`, user, realm, nonce, realm, resp)
	if alg != auth.AlgUnspec {
		v += ", algorithm=" + alg.String()
	}
	if qop != "" {
		v += ", qop=auth, nc=" + ncs + `, cnonce="c0ffee"`
	}
	return v
}

// challenge gets a fresh challenge header value.
func challenge(t testing.TB, qop, algs string) []string {
	t.Helper()
	m, h := newMsg(t, register("alice", "example.com"))
	if rc := call(t, m, "auth", "www_challenge", "", qop, algs); rc != 0 {
		t.Fatalf("www_challenge = %d", rc)
	}
	var out []string
	for _, part := range strings.Split(h.replies[0], " | ")[1:] {
		out = append(out, strings.TrimPrefix(part, "WWW-Authenticate: "))
	}
	return out
}

func TestWWWAuthorize(t *testing.T) {
	setup(t, nil)
	ch := challenge(t, "auth", "SHA-512-256,SHA-256,MD5")
	if len(ch) != 3 {
		t.Fatalf("challenges: %v", ch)
	}
	for _, tc := range []struct {
		name, user, pass string
		ch               string
		want             int
	}{
		{"unknown user", "mallory", "secret", ch[2], auth.UserUnknown},
		{"bad password", "alice", "guess", ch[2], auth.InvalidPassword},
		{"md5", "alice", "secret", ch[2], auth.Authorized},
		{"sha-256", "alice", "secret", ch[1], auth.Authorized},
		{"sha-512-256", "alice", "secret", ch[0], auth.Authorized},
	} {
		m, _ := newMsg(t, register(tc.user, "example.com", "Authorization: "+answer(tc.ch, tc.user, tc.pass, 1)+"\r\n"))
		if got := call(t, m, Name, "www_authorize", "", "subscriber"); got != tc.want {
			t.Errorf("%s: www_authorize = %d, want %d", tc.name, got, tc.want)
		}
	}
	m, _ := newMsg(t, register("alice", "example.com"))
	if got := call(t, m, Name, "www_authorize", "", "subscriber"); got != auth.NoCredentials {
		t.Errorf("no credentials: %d", got)
	}
	// A table that is not there: generic error, logged.
	m, h := newMsg(t, register("alice", "example.com", "Authorization: "+answer(challenge(t, "", "")[0], "alice", "secret", 1)+"\r\n"))
	if got := call(t, m, Name, "www_authorize", "", "nosuch"); got != auth.AuthError || len(h.logs) == 0 {
		t.Errorf("missing table: %d %v", got, h.logs)
	}
}

func TestCalculateHA1AndDomains(t *testing.T) {
	db := setup(t, map[string]value.Value{"calculate_ha1": value.I(1), "password_column": value.S("password")})
	ch := challenge(t, "", "")[0]
	m, _ := newMsg(t, register("alice", "example.com", "Authorization: "+answer(ch, "alice", "secret", 1)+"\r\n"))
	if got := call(t, m, Name, "www_authorize", "", "subscriber"); got != auth.Authorized {
		t.Fatalf("calculate_ha1: %d", got)
	}
	// use_domain: alice exists only in example.com.
	m, _ = newMsg(t, register("alice", "other.example", "Authorization: "+answer(strings.Replace(ch, "example.com", "other.example", 1), "alice", "secret", 1)+"\r\n"))
	if got := call(t, m, Name, "www_authorize", "", "subscriber"); got != auth.UserUnknown {
		t.Errorf("other domain with use_domain: %d", got)
	}
	if got := call(t, m, Name, "db_does_uri_exist", "sip:alice@example.com", "subscriber"); got != 1 {
		t.Errorf("db_does_uri_exist = %d", got)
	}
	if got := call(t, m, Name, "db_does_uri_exist", "sip:alice@other.example", "subscriber"); got != -1 {
		t.Errorf("db_does_uri_exist other domain = %d", got)
	}
	_ = db
}

func TestCache(t *testing.T) {
	db := setup(t, map[string]value.Value{"cache_ttl": value.I(60)})
	ch := challenge(t, "auth", "")[0]
	try := func(nc int) int {
		m, _ := newMsg(t, register("alice", "example.com", "Authorization: "+answer(ch, "alice", "secret", nc)+"\r\n"))
		return call(t, m, Name, "www_authorize", "", "subscriber")
	}
	if got := try(1); got != auth.Authorized {
		t.Fatal(got)
	}
	if _, err := db.Exec(context.Background(), `DELETE FROM subscriber`); err != nil {
		t.Fatal(err)
	}
	if got := try(2); got != auth.Authorized {
		t.Errorf("cached credentials not used: %d", got)
	}
}

func TestConfigureErrors(t *testing.T) {
	p := modules.Params{"user_column": {value.S("user name")}}
	if _, err := configure(p); err == nil {
		t.Error("bad column accepted")
	}
	p = modules.Params{"user_column": {value.S("username")}, "domain_column": {value.S("domain")}, "password_column": {value.S("ha1")},
		"hash_column_sha256": {value.S("a")}, "hash_column_sha512t256": {value.S("b")}}
	if _, err := configure(p); err == nil || !strings.Contains(err.Error(), "db_url") {
		t.Errorf("missing db_url: %v", err)
	}
	p["db_url"] = []value.Value{value.S("sqlite://" + filepath.Join(t.TempDir(), "none.db"))}
	if _, err := configure(p); err == nil || !strings.Contains(err.Error(), "sipedge db init") {
		t.Errorf("missing file: %v", err)
	}
	p["load_credentials"] = []value.Value{value.S("rpid")}
	if _, err := configure(p); err == nil {
		t.Error("load_credentials accepted")
	}
}

func benchAuthorize(b *testing.B, params map[string]value.Value) {
	setup(b, params)
	ch := challenge(b, "auth", "")[0]
	m, _ := newMsg(b, register("alice", "example.com", "Authorization: x\r\n"))
	hdrs := make([]sip.Header, b.N)
	for i := range hdrs {
		hdrs[i] = sip.NewHeader("Authorization", answer(ch, "alice", "secret", i+1))
	}
	f := fn(b, Name, "www_authorize")
	a := &modules.Args{Vals: []value.Value{value.S(""), value.S("subscriber")}, Given: []bool{true, true}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Req.RemoveHeader("Authorization")
		m.Req.AppendHeader(hdrs[i])
		m.Mod = nil
		if rc := f.Call(m, a); rc != auth.Authorized {
			b.Fatalf("www_authorize = %d at %d", rc, i)
		}
	}
}

// BenchmarkWWWAuthorize is the CPU cost of one authorized REGISTER: finding
// and parsing the credentials, checking the nonce, the subscriber lookup
// (SQLite, or the cache) and the digest, and the replay check.
func BenchmarkWWWAuthorize(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchAuthorize(b, nil) })
	b.Run("cached", func(b *testing.B) { benchAuthorize(b, map[string]value.Value{"cache_ttl": value.I(60)}) })
}
