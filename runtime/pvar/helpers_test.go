package pvar

import (
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

// testSlots hands out $var/$avp slots like the compiler does.
type testSlots struct{ vars, avps map[string]int }

func newSlots() *testSlots { return &testSlots{map[string]int{}, map[string]int{}} }

func (s *testSlots) VarSlot(n string) int {
	if i, ok := s.vars[n]; ok {
		return i
	}
	s.vars[n] = len(s.vars)
	return s.vars[n]
}

func (s *testSlots) AVPSlot(n string) int {
	if i, ok := s.avps[n]; ok {
		return i
	}
	s.avps[n] = len(s.avps)
	return s.avps[n]
}

// parseSpec is a test-only reader for pvar text without the leading '$':
// name(arg)[index]{class.name,p1,p2}... ; an argument, index or parameter
// starting with '$' is a pvar.
func parseSpec(t testing.TB, s string) *ast.PVar {
	t.Helper()
	p := &ast.PVar{}
	i := 0
	for i < len(s) && !strings.ContainsRune("([{", rune(s[i])) {
		i++
	}
	p.Name = s[:i]
	s = s[i:]
	closing := func(open, close byte) int {
		depth := 0
		for j := 0; j < len(s); j++ {
			switch s[j] {
			case open:
				depth++
			case close:
				depth--
				if depth == 0 {
					return j
				}
			}
		}
		t.Fatalf("unbalanced %q in %q", open, s)
		return -1
	}
	if strings.HasPrefix(s, "(") {
		j := closing('(', ')')
		arg := s[1:j]
		s = s[j+1:]
		if strings.HasPrefix(arg, "$") {
			p.ArgPV = parseSpec(t, arg[1:])
		} else {
			p.Arg, p.HasArg = arg, true
		}
	}
	if strings.HasPrefix(s, "[") {
		j := closing('[', ']')
		idx := s[1:j]
		s = s[j+1:]
		switch {
		case idx == "*":
			p.IndexAll = true
		case strings.HasPrefix(idx, "$"):
			p.Index = parseSpec(t, idx[1:])
		default:
			n, err := strconv.Atoi(idx)
			if err != nil {
				t.Fatalf("bad index %q", idx)
			}
			p.Index = &ast.Literal{Kind: ast.IntLit, Int: n}
		}
	}
	for strings.HasPrefix(s, "{") {
		j := closing('{', '}')
		body := s[1:j]
		s = s[j+1:]
		var parts []string
		depth, start := 0, 0
		for k := 0; k < len(body); k++ {
			switch body[k] {
			case '(', '{', '[':
				depth++
			case ')', '}', ']':
				depth--
			case ',':
				if depth == 0 {
					parts = append(parts, body[start:k])
					start = k + 1
				}
			}
		}
		parts = append(parts, body[start:])
		dot := strings.IndexByte(parts[0], '.')
		tr := &ast.Transform{Class: parts[0][:dot], Name: parts[0][dot+1:]}
		for _, prm := range parts[1:] {
			if strings.HasPrefix(prm, "$") {
				tr.Params = append(tr.Params, parseSpec(t, prm[1:]))
			} else {
				tr.Params = append(tr.Params, &ast.Literal{Kind: ast.StringLit, Str: prm})
			}
		}
		p.Trans = append(p.Trans, tr)
	}
	if s != "" {
		t.Fatalf("trailing %q", s)
	}
	return p
}

func compileT(t testing.TB, slots *testSlots, spec string) *Ref {
	t.Helper()
	r, err := Compile(parseSpec(t, spec), slots)
	if err != nil {
		t.Fatalf("Compile(%s): %v", spec, err)
	}
	return r
}

const testBody = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"

var testInvite = strings.Join([]string{
	"INVITE sip:+15551234@example.com;user=phone SIP/2.0",
	"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds;rport",
	"Via: SIP/2.0/TCP proxy.example.net;branch=z9hG4bK-2;received=192.0.2.7",
	"Max-Forwards: 70",
	`From: "Alice Smith" <sip:alice@atlanta.example.com>;tag=1928301774`,
	"t: <sip:+15551234@example.com>",
	"Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
	"CSeq: 314159 INVITE",
	`Contact: "Alice" <sip:alice@10.0.0.1:5060;transport=udp>;expires=3600;q=0.7`,
	"Contact: <sip:alice@192.0.2.1>",
	"User-Agent: SIPp/3.6",
	"k: 100rel",
	"X-Custom: one",
	"X-Custom: two",
	"x-custom: three",
	`P-Asserted-Identity: "Alice" <sip:alice@atlanta.example.com>`,
	"Diversion: <sip:bob@example.com>;reason=unconditional;privacy=off",
	`Proxy-Authorization: Digest username="alice@atlanta.example.com", realm="atlanta.example.com", nonce="abc123", uri="sip:+15551234@example.com", response="0123456789abcdef", algorithm=MD5, qop=auth, nc=00000001, cnonce="xyz"`,
	"Content-Type: application/sdp",
	"Content-Length: " + strconv.Itoa(len(testBody)),
	"",
	testBody,
}, "\r\n")

const testReply = "SIP/2.0 486 Busy Here\r\n" +
	"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n" +
	"From: <sip:alice@atlanta.example.com>;tag=1\r\n" +
	"To: \"Bob\" <sip:bob@biloxi.example.com>;tag=2\r\n" +
	"Call-ID: c1\r\n" +
	"CSeq: 7 INVITE\r\n" +
	"Content-Length: 0\r\n\r\n"

func parseMsg(t testing.TB, raw string) sip.Message {
	t.Helper()
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatalf("ParseMessage: %v", err)
	}
	return msg
}

func newReqMsg(t testing.TB) *msgctx.Msg {
	t.Helper()
	m := &msgctx.Msg{}
	m.Reset(16, 16)
	m.Req = parseMsg(t, testInvite).(*sip.Request)
	m.Src = msgctx.Addr{IP: "10.0.0.1", Port: 5060, Proto: "udp"}
	m.Local = msgctx.Addr{IP: "192.0.2.10", Port: 5060, Proto: "udp"}
	return m
}

func newReplyMsg(t testing.TB) *msgctx.Msg {
	t.Helper()
	m := &msgctx.Msg{}
	m.Reset(16, 16)
	m.Resp = parseMsg(t, testReply).(*sip.Response)
	m.Kind = ast.OnReplyRoute
	return m
}

// show renders a value for comparisons: NULL as <null>, else the string form.
func show(v value.Value) string { return v.String() }
