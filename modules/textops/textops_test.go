package textops

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

const sdp = "v=0\r\no=bob 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"

func sdpInvite() string {
	return strings.Replace(inviteText, "Content-Length: 0\r\n\r\n",
		"User-Agent: softphone softphone\r\nContent-Type: application/sdp\r\nContent-Length: "+strconv.Itoa(len(sdp))+"\r\n\r\n"+sdp, 1)
}

// callRx runs a function whose first argument is a regex.
func callRx(t *testing.T, m *msgctx.Msg, name, re string, rest ...string) int {
	t.Helper()
	f := fn(t, name)
	fargs := []check.FixupArg{{Present: true, Const: true, Str: re, Regex: regexp.MustCompile(re)}}
	a := &modules.Args{Vals: []value.Value{value.S(re)}, Given: []bool{true}, Rx: []*regexp.Regexp{regexp.MustCompile(re)}}
	for _, s := range rest {
		fargs = append(fargs, cs(s))
		a.Vals = append(a.Vals, value.S(s))
		a.Given = append(a.Given, true)
	}
	fix, err := fixup(t, f, fargs...)
	if err != nil {
		t.Fatalf("%s fixup: %v", name, err)
	}
	a.Fix = fix
	return f.Call(m, a)
}

// checkConsistent verifies the message reparses and Content-Length matches
// the body.
func checkConsistent(t *testing.T, m *msgctx.Msg) {
	t.Helper()
	text := m.Req.String()
	msg, err := sip.ParseMessage([]byte(text))
	if err != nil {
		t.Fatalf("reparse: %v\n%s", err, text)
	}
	if cl := msg.ContentLength(); cl == nil || int(*cl) != len(m.Req.Body()) {
		t.Fatalf("Content-Length %v, body %d bytes\n%s", cl, len(m.Req.Body()), text)
	}
}

func TestSearch(t *testing.T) {
	cases := []struct {
		fn, re string
		want   int
	}{
		{"search", "^INVITE sip:", 1},  // the start line is searched too
		{"search", "call-id: a84b", 1}, // case-blind, as in OpenSIPS
		{"search", "^CSeq: 314159", 1}, // ^ at line starts
		{"search", "X-Nope", -1},
		{"search_body", "^c=IN IP4 10\\.0\\.0\\.1", 1},
		{"search_body", "Call-ID", -1},
	}
	for _, c := range cases {
		m, _ := newMsg(t, sdpInvite())
		if rc := callRx(t, m, c.fn, c.re); rc != c.want {
			t.Errorf("%s(%q) = %d, want %d", c.fn, c.re, rc, c.want)
		}
	}
	m, _ := newMsg(t, inviteText)
	if rc := callRx(t, m, "search_body", "."); rc != -1 {
		t.Errorf("search_body without body = %d", rc)
	}
}

func TestReplaceFamily(t *testing.T) {
	cases := []struct {
		name  string
		fn    string
		re    string
		txt   string
		rc    int
		check func(*msgctx.Msg) bool
	}{
		{"replace first", "replace", "softphone", "phone", 1, func(m *msgctx.Msg) bool {
			return m.Req.GetHeader("User-Agent").Value() == "phone softphone"
		}},
		{"replace_all", "replace_all", "softphone", "ua", 1, func(m *msgctx.Msg) bool {
			return m.Req.GetHeader("User-Agent").Value() == "ua ua"
		}},
		{"replace keeps start line", "replace_all", "alice@example\\.com", "carol@example.net", 1, func(m *msgctx.Msg) bool {
			return m.Req.Recipient.Host == "example.com" && m.Req.To().Address.User == "carol"
		}},
		{"replace no match", "replace", "nothing-here", "x", -1, func(m *msgctx.Msg) bool { return true }},
		{"search_append", "search_append", "User-Agent: [a-z]+", "-v2", 1, func(m *msgctx.Msg) bool {
			return m.Req.GetHeader("User-Agent").Value() == "softphone-v2 softphone"
		}},
		{"replace_body", "replace_body", "10\\.0\\.0\\.1", "192.0.2.1", 1, func(m *msgctx.Msg) bool {
			return strings.Count(string(m.Req.Body()), "192.0.2.1") == 1
		}},
		{"replace_body_all", "replace_body_all", "10\\.0\\.0\\.1", "192.0.2.100", 1, func(m *msgctx.Msg) bool {
			return strings.Count(string(m.Req.Body()), "192.0.2.100") == 2 && !strings.Contains(string(m.Req.Body()), "10.0.0.1")
		}},
		{"replace_body_atonce", "replace_body_atonce", "^m=audio 4000", "m=audio 5000", 1, func(m *msgctx.Msg) bool {
			return strings.Contains(string(m.Req.Body()), "m=audio 5000 RTP")
		}},
		{"search_append_body", "search_append_body", "^s=-\r\n", "i=info\r\n", 1, func(m *msgctx.Msg) bool {
			return strings.Contains(string(m.Req.Body()), "s=-\r\ni=info\r\nc=")
		}},
		{"empty match refused", "replace_all", "x*", "y", -1, func(m *msgctx.Msg) bool { return true }},
		{"edit that breaks the message", "replace_all", ":", "", -1, func(m *msgctx.Msg) bool {
			return m.Req.CallID() != nil && m.Req.GetHeader("User-Agent") != nil
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, h := newMsg(t, sdpInvite())
			if rc := callRx(t, m, c.fn, c.re, c.txt); rc != c.rc {
				t.Fatalf("rc = %d, want %d (%v)", rc, c.rc, h.Logs)
			}
			if !c.check(m) {
				t.Fatalf("unexpected result:\n%s", m.Req.String())
			}
			checkConsistent(t, m)
		})
	}
}

func TestRegexFixup(t *testing.T) {
	if _, err := fixup(t, fn(t, "search"), check.FixupArg{Present: true, Const: true, Str: "("}); err == nil {
		t.Error("bad regex accepted")
	}
}

func TestSubst(t *testing.T) {
	cases := []struct {
		name  string
		fn    string
		expr  string
		rc    int
		check func(*msgctx.Msg) bool
	}{
		{"doc example: To gets the R-URI", "subst", `/^To:(.*)sip:[^@]*@[a-zA-Z0-9.]+(.*)$/t:\1\u\2/ig`, 1, func(m *msgctx.Msg) bool {
			to := m.Req.To()
			return to != nil && to.Address.Port == 5060 && to.DisplayName == "Alice"
		}},
		{"first only", "subst", `/softphone/phone/`, 1, func(m *msgctx.Msg) bool {
			return m.Req.GetHeader("User-Agent").Value() == "phone softphone"
		}},
		{"global", "subst", `/softphone/phone/g`, 1, func(m *msgctx.Msg) bool {
			return m.Req.GetHeader("User-Agent").Value() == "phone phone"
		}},
		{"case-sensitive by default", "subst", `/SOFTPHONE/x/`, -1, func(m *msgctx.Msg) bool { return true }},
		{"i flag", "subst", `/SOFTPHONE/x/i`, 1, func(m *msgctx.Msg) bool {
			return m.Req.GetHeader("User-Agent").Value() == "x softphone"
		}},
		{"other separator and escapes", "subst", `|User-Agent: (\w+)|User-Agent: \1\|\$|`, 1, func(m *msgctx.Msg) bool {
			return m.Req.GetHeader("User-Agent").Value() == "softphone|$ softphone"
		}},
		{"pvar in replacement", "subst", `/^(User-Agent: )(.*)$/\1$fU \2/`, 1, func(m *msgctx.Msg) bool {
			return m.Req.GetHeader("User-Agent").Value() == "bob softphone softphone"
		}},
		{"subst_body", "subst_body", `/^c=IN IP4 (.*)$/c=IN IP4 192.0.2.7/`, 1, func(m *msgctx.Msg) bool {
			return strings.Contains(string(m.Req.Body()), "c=IN IP4 192.0.2.7\nt=0")
		}},
		{"subst_uri", "subst_uri", `/^sip:([a-z]+)@/sip:00\1@/`, 1, func(m *msgctx.Msg) bool {
			return m.Req.Recipient.String() == "sip:00alice@example.com:5060;transport=udp"
		}},
		{"subst_uri no match", "subst_uri", `/^tel:/sip:/`, -1, func(m *msgctx.Msg) bool {
			return m.Req.Recipient.User == "alice"
		}},
		{"subst_uri bad result", "subst_uri", `/^sip:.*$/not a uri/`, -1, func(m *msgctx.Msg) bool {
			return m.Req.Recipient.User == "alice"
		}},
		{"subst_user", "subst_user", `/^ali/ALI/`, 1, func(m *msgctx.Msg) bool {
			return m.Req.Recipient.String() == "sip:ALIce@example.com:5060;transport=udp"
		}},
		{"subst_user no match", "subst_user", `/^bob/x/`, -1, func(m *msgctx.Msg) bool { return true }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, h := newMsg(t, sdpInvite())
			if rc := call(t, m, c.fn, c.expr); rc != c.rc {
				t.Fatalf("rc = %d, want %d (%v)", rc, c.rc, h.Logs)
			}
			if !c.check(m) {
				t.Fatalf("unexpected result:\n%s", m.Req.String())
			}
			checkConsistent(t, m)
		})
	}
}

func TestSubstFixupRejects(t *testing.T) {
	for _, expr := range []string{
		"ab",            // too short
		`\a\b\`,         // bad separator
		"/abc",          // no separator after the regex
		"/abc/def",      // no separator after the replacement
		"/abc/def/x",    // unknown flag
		"/a(/b/",        // bad regex
		"/a/$var(x)/",   // $var needs slots
		"/a/$nosuchpv/", // unknown pvar
		"/a/b\\/",       // dangling separator escape leaves no end
	} {
		for _, name := range []string{"subst", "subst_uri", "subst_user", "subst_body"} {
			if _, err := fixup(t, fn(t, name), cs(expr)); err == nil {
				t.Errorf("%s(%q) accepted", name, expr)
			}
		}
	}
}

func TestSubstOnReply(t *testing.T) {
	text := "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n" +
		"To: <sip:alice@example.com>;tag=a\r\nFrom: <sip:bob@example.org>;tag=b\r\n" +
		"Call-ID: c\r\nCSeq: 1 INVITE\r\nServer: pbx-1.0\r\nContent-Length: 0\r\n\r\n"
	msg, err := sip.ParseMessage([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	m := &msgctx.Msg{Resp: msg.(*sip.Response), Host: &testHost{}}
	if rc := call(t, m, "subst", `/^Server: .*$/Server: sipedge\r/`); rc != 1 {
		t.Fatalf("rc = %d", rc)
	}
	if v := m.Resp.GetHeader("Server").Value(); v != "sipedge" || m.Resp.StatusCode != 200 {
		t.Fatalf("Server = %q\n%s", v, m.Resp.String())
	}
}

func TestDynamicSubstIsCached(t *testing.T) {
	m, _ := newMsg(t, sdpInvite())
	f := fn(t, "subst")
	a := &modules.Args{Vals: []value.Value{value.S("/softphone/x/")}, Given: []bool{true}}
	if rc := f.Call(m, a); rc != 1 {
		t.Fatal(rc)
	}
	if _, ok := substCache.Load("/softphone/x/"); !ok {
		t.Fatal("not cached")
	}
	a.Vals[0] = value.S("/(/x/")
	m2, h := newMsg(t, sdpInvite())
	if rc := f.Call(m2, a); rc != -1 || len(h.Logs) != 1 {
		t.Fatalf("rc=%d logs=%v", rc, h.Logs)
	}
}
