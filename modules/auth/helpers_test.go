package auth

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

type reply struct {
	code    int
	reason  string
	headers []string
}

type testHost struct {
	logs    []string
	replies []reply
}

func (h *testHost) Log(_ *msgctx.Msg, level int, text string) {
	h.logs = append(h.logs, msgctx.LevelName(level)+" "+text)
}

func (h *testHost) Reply(m *msgctx.Msg, code int, reason string) error {
	r := reply{code: code, reason: reason}
	for _, hd := range m.ReplyHeaders {
		r.headers = append(r.headers, hd.Name()+": "+hd.Value())
	}
	h.replies = append(h.replies, r)
	return nil
}

func register(user, domain string, extra ...string) string {
	return "REGISTER sip:" + domain + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 198.51.100.7:5070;branch=z9hG4bK-1\r\n" +
		"From: <sip:" + user + "@" + domain + ">;tag=1\r\n" +
		"To: <sip:" + user + "@" + domain + ">\r\n" +
		"Call-ID: c1\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n" +
		"Contact: <sip:" + user + "@198.51.100.7:5070>\r\n" +
		strings.Join(extra, "") +
		"Content-Length: 0\r\n\r\n"
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

func fn(t testing.TB, name string) *modules.Func {
	t.Helper()
	for _, f := range modules.Lookup(Name).Funcs {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no function %s", name)
	return nil
}

// call runs a function with constant string arguments.
func call(t testing.TB, m *msgctx.Msg, name string, args ...string) int {
	t.Helper()
	f := fn(t, name)
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

var nonceRx = regexp.MustCompile(`nonce="([^"]+)"`)

// Client is a digest client answering a challenge.
type client struct {
	user, pass string
	nc         int
}

// answer builds the credentials header for a challenge header value.
func (c *client) answer(challenge, method, uri string) string {
	realm := regexp.MustCompile(`realm="([^"]*)"`).FindStringSubmatch(challenge)[1]
	nonce := nonceRx.FindStringSubmatch(challenge)[1]
	alg := AlgUnspec
	if mm := regexp.MustCompile(`algorithm=([A-Za-z0-9-]+)`).FindStringSubmatch(challenge); mm != nil {
		alg, _ = ParseAlg(mm[1])
	}
	qop := ""
	if strings.Contains(challenge, `qop="auth`) {
		qop = "auth"
	}
	c.nc++
	nc := fmt.Sprintf("%08x", c.nc)
	cnonce := "0a4f113b"
	ha1 := HA1(alg.Base(), c.user, realm, c.pass)
	resp := Response(alg, ha1, nonce, nc, cnonce, qop, method, uri, nil)
	v := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s"`, c.user, realm, nonce, uri, resp)
	if alg != AlgUnspec {
		v += ", algorithm=" + alg.String()
	}
	if qop != "" {
		v += fmt.Sprintf(", qop=%s, nc=%s, cnonce=\"%s\"", qop, nc, cnonce)
	}
	return v
}
