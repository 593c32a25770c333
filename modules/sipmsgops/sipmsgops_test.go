package sipmsgops

import (
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

// names lists the header names of the message in order.
func names(m *msgctx.Msg) string {
	var out []string
	for _, h := range target(m).Headers() {
		out = append(out, h.Name())
	}
	return strings.Join(out, ",")
}

const baseNames = "Via,Max-Forwards,To,From,Call-ID,CSeq,Contact,Content-Length"

func withHeaders(extra string) string {
	return strings.Replace(inviteText, "Content-Length: 0\r\n", extra+"Content-Length: 0\r\n", 1)
}

func withBody(ct, body string) string {
	return strings.Replace(inviteText, "Content-Length: 0\r\n\r\n",
		"Content-Type: "+ct+"\r\nContent-Length: "+itoa(len(body))+"\r\n\r\n"+body, 1)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	s := ""
	for ; n > 0; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return s
}

const replyText = "SIP/2.0 603 Decline\r\n" +
	"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n" +
	"To: Alice <sip:alice@example.com>;tag=a6c85cf\r\n" +
	"From: Bob <sip:bob@example.org>;tag=1928301774\r\n" +
	"Call-ID: a84b4c76e66710@pc33.example.org\r\n" +
	"CSeq: 314159 INVITE\r\n" +
	"Content-Length: 0\r\n\r\n"

func replyMsg(t *testing.T, status string) (*msgctx.Msg, *testHost) {
	t.Helper()
	text := strings.Replace(replyText, "603 Decline", status, 1)
	msg, err := sip.ParseMessage([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	h := &testHost{}
	return &msgctx.Msg{Resp: msg.(*sip.Response), Kind: ast.OnReplyRoute, Host: h}, h
}

func TestAppendInsertHf(t *testing.T) {
	cases := []struct {
		name  string
		fn    string
		args  []any
		names string
	}{
		{"append", "append_hf", []any{"X-Hint: voicemail\r\n"}, baseNames + ",X-Hint"},
		{"append two", "append_hf", []any{"X-A: 1\r\nX-B: 2\r\n"}, baseNames + ",X-A,X-B"},
		{"append after anchor", "append_hf", []any{"X-A: 1\r\n", "Call-ID"}, "Via,Max-Forwards,To,From,Call-ID,X-A,CSeq,Contact,Content-Length"},
		{"append after compact anchor", "append_hf", []any{"X-A: 1\r\n", "i"}, "Via,Max-Forwards,To,From,Call-ID,X-A,CSeq,Contact,Content-Length"},
		{"append missing anchor", "append_hf", []any{"X-A: 1\r\n", "X-None"}, baseNames + ",X-A"},
		{"insert", "insert_hf", []any{"X-A: 1\r\n"}, "X-A," + baseNames},
		{"insert before anchor", "insert_hf", []any{"X-A: 1\r\n", "to"}, "Via,Max-Forwards,X-A,To,From,Call-ID,CSeq,Contact,Content-Length"},
		{"insert missing anchor", "insert_hf", []any{"X-A: 1\r\n", "X-None"}, "X-A," + baseNames},
		{"no trailing CRLF", "append_hf", []any{"X-A: 1"}, baseNames + ",X-A"},
		{"folded", "append_hf", []any{"X-A: 1,\r\n 2\r\n"}, baseNames + ",X-A"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, h := newMsg(t, inviteText)
			if rc := call(t, m, c.fn, c.args...); rc != 1 {
				t.Fatalf("rc = %d (%v)", rc, h.Logs)
			}
			if got := names(m); got != c.names {
				t.Fatalf("headers\n got %s\nwant %s", got, c.names)
			}
			// the message still serializes and parses
			if _, err := sip.ParseMessage([]byte(m.Req.String())); err != nil {
				t.Fatalf("reparse: %v\n%s", err, m.Req.String())
			}
		})
	}
}

func TestAppendHfValues(t *testing.T) {
	m, _ := newMsg(t, inviteText)
	call(t, m, "append_hf", "X-A: 1,\r\n\t2\r\n")
	if v := m.Req.GetHeader("X-A").Value(); v != "1, 2" {
		t.Fatalf("folded value %q", v)
	}
	// well-known headers become typed ones the runtime can use
	call(t, m, "append_hf", "Route: <sip:10.0.0.9;lr>\r\n")
	if r := m.Req.Route(); r == nil || r.Address.Host != "10.0.0.9" {
		t.Fatalf("Route = %v", r)
	}
	// the pre-parsed constant is copied for every message
	f := fn(t, "append_hf")
	fix, _ := fixup(t, f, cs("X-C: c\r\n"))
	m1, _ := newMsg(t, inviteText)
	m2, _ := newMsg(t, inviteText)
	a := &modules.Args{Vals: []value.Value{value.S("X-C: c\r\n"), value.Null}, Given: []bool{true, false}, Fix: fix}
	f.Call(m1, a)
	f.Call(m2, a)
	if m1.Req.GetHeader("X-C") == m2.Req.GetHeader("X-C") {
		t.Fatal("header shared between messages")
	}
}

func TestAddHeaderErrors(t *testing.T) {
	for _, name := range []string{"append_hf", "insert_hf", "append_to_reply"} {
		for _, txt := range []string{"no colon here", "", "Bad Name: x"} {
			if _, err := fixup(t, fn(t, name), cs(txt)); err == nil {
				t.Errorf("%s(%q) accepted", name, txt)
			}
		}
	}
	if _, err := fixup(t, fn(t, "append_hf"), cs("X-A: 1"), cs("Bad:Anchor")); err == nil {
		t.Error("bad anchor accepted")
	}
	// text from a pvar is checked per call
	m, h := newMsg(t, inviteText)
	f := fn(t, "append_hf")
	fix, _ := fixup(t, f, dyn())
	a := &modules.Args{Vals: []value.Value{value.S("garbage"), value.Null}, Given: []bool{true, false}, Fix: fix}
	if rc := f.Call(m, a); rc != -1 || len(h.Logs) != 1 || names(m) != baseNames {
		t.Fatalf("rc=%d logs=%v names=%s", rc, h.Logs, names(m))
	}
}

func TestRemoveHf(t *testing.T) {
	msg := withHeaders("X-Billing-Account: 1\r\nx-billing-price: 2\r\nUser-Agent: ua\r\nk: 100rel\r\n")
	cases := []struct {
		name  string
		fn    string
		arg   string
		rc    int
		names string
	}{
		{"by name", "remove_hf", "User-Agent", 1, "Via,Max-Forwards,To,From,Call-ID,CSeq,Contact,X-Billing-Account,x-billing-price,k,Content-Length"},
		{"case-insensitive", "remove_hf", "x-billing-account", 1, "Via,Max-Forwards,To,From,Call-ID,CSeq,Contact,x-billing-price,User-Agent,k,Content-Length"},
		{"full name removes compact", "remove_hf", "Supported", 1, "Via,Max-Forwards,To,From,Call-ID,CSeq,Contact,X-Billing-Account,x-billing-price,User-Agent,Content-Length"},
		{"compact removes full", "remove_hf", "m", 1, "Via,Max-Forwards,To,From,Call-ID,CSeq,X-Billing-Account,x-billing-price,User-Agent,k,Content-Length"},
		{"absent", "remove_hf", "Subject", -1, "Via,Max-Forwards,To,From,Call-ID,CSeq,Contact,X-Billing-Account,x-billing-price,User-Agent,k,Content-Length"},
		{"glob", "remove_hf_glob", "X-Billing*", 1, "Via,Max-Forwards,To,From,Call-ID,CSeq,Contact,User-Agent,k,Content-Length"},
		{"glob absent", "remove_hf_glob", "X-None-*", -1, "Via,Max-Forwards,To,From,Call-ID,CSeq,Contact,X-Billing-Account,x-billing-price,User-Agent,k,Content-Length"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, _ := newMsg(t, msg)
			if rc := call(t, m, c.fn, c.arg); rc != c.rc {
				t.Fatalf("rc = %d", rc)
			}
			if got := names(m); got != c.names {
				t.Fatalf("headers\n got %s\nwant %s", got, c.names)
			}
		})
	}
}

func TestRemoveHfRe(t *testing.T) {
	f := fn(t, "remove_hf_re")
	fix, err := fixup(t, f, cs("^X-B.+e$"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := newMsg(t, withHeaders("X-Billing-Account: 1\r\nx-billing-price: 2\r\n"))
	a := &modules.Args{Vals: []value.Value{value.S("^X-B.+e$")}, Given: []bool{true}, Fix: fix}
	if rc := f.Call(m, a); rc != 1 || names(m) != "Via,Max-Forwards,To,From,Call-ID,CSeq,Contact,X-Billing-Account,Content-Length" {
		t.Fatalf("rc=%d names=%s", rc, names(m))
	}
	if rc := f.Call(m, a); rc != -1 {
		t.Fatalf("second call rc=%d", rc)
	}
	if _, err := fixup(t, f, cs("(")); err == nil {
		t.Error("bad regex accepted")
	}
	if _, err := fixup(t, fn(t, "remove_hf_glob"), cs("X-[")); err == nil {
		t.Error("bad glob accepted")
	}
	if _, err := fixup(t, fn(t, "remove_hf"), cs("Bad Name")); err == nil {
		t.Error("bad header name accepted")
	}
}

func TestIsPresentHf(t *testing.T) {
	m, _ := newMsg(t, withHeaders("k: timer\r\n"))
	for arg, want := range map[string]int{"Call-ID": 1, "i": 1, "call-id": 1, "Supported": 1, "X-None": -1, "Route": -1} {
		if rc := call(t, m, "is_present_hf", arg); rc != want {
			t.Errorf("is_present_hf(%q) = %d, want %d", arg, rc, want)
		}
	}
}

func TestIsMethod(t *testing.T) {
	cases := []struct {
		arg  string
		want int
	}{
		{"INVITE", 1}, {"invite", 1}, {"BYE", -1}, {"BYE|INVITE", 1}, {"bye|ack", -1},
		{"REGISTER,INVITE", 1}, {"FOO", -1},
	}
	for _, c := range cases {
		m, _ := newMsg(t, inviteText)
		if rc := call(t, m, "is_method", c.arg); rc != c.want {
			t.Errorf("is_method(%q) = %d, want %d", c.arg, rc, c.want)
		}
	}
	// replies test the CSeq method
	m, _ := replyMsg(t, "200 OK")
	if rc := call(t, m, "is_method", "INVITE|BYE"); rc != 1 {
		t.Errorf("reply: %d", rc)
	}
	for _, bad := range []string{"", "INVITE|FOO", "INVITE||BYE"} {
		if _, err := fixup(t, fn(t, "is_method"), cs(bad)); err == nil {
			t.Errorf("is_method(%q) accepted", bad)
		}
	}
	// a method list from a pvar is parsed per call
	m, h := newMsg(t, inviteText)
	f := fn(t, "is_method")
	if rc := f.Call(m, &modules.Args{Vals: []value.Value{value.S("ACK|INVITE")}, Given: []bool{true}}); rc != 1 {
		t.Errorf("dynamic: %d", rc)
	}
	if rc := f.Call(m, &modules.Args{Vals: []value.Value{value.S("ACK|BOGUS")}, Given: []bool{true}}); rc != -1 || len(h.Logs) != 1 {
		t.Errorf("dynamic bad: %d %v", rc, h.Logs)
	}
}

func TestHasTotag(t *testing.T) {
	m, _ := newMsg(t, inviteText)
	if rc := call(t, m, "has_totag"); rc != -1 {
		t.Errorf("initial INVITE: %d", rc)
	}
	m, _ = newMsg(t, strings.Replace(inviteText, "To: Alice <sip:alice@example.com>", "To: Alice <sip:alice@example.com>;tag=xyz", 1))
	if rc := call(t, m, "has_totag"); rc != 1 {
		t.Errorf("in-dialog: %d", rc)
	}
	r, _ := replyMsg(t, "200 OK")
	if rc := call(t, r, "has_totag"); rc != 1 {
		t.Errorf("reply: %d", rc)
	}
}

const multipartBody = "--xyz\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n" +
	"--xyz\r\nContent-Type: application/ISUP;version=itu-t92+\r\n\r\nabc\r\n--xyz--\r\n"

func TestHasBody(t *testing.T) {
	cases := []struct {
		name string
		msg  string
		fn   string
		args []any
		want int
	}{
		{"no body", inviteText, "has_body", nil, -1},
		{"no body, mime", inviteText, "has_body", []any{"application/sdp"}, -1},
		{"body", withBody("application/sdp", "v=0\r\n"), "has_body", nil, 1},
		{"mime match", withBody("application/sdp", "v=0\r\n"), "has_body", []any{"application/sdp"}, 1},
		{"mime case/params", withBody("Application/SDP; charset=x", "v=0\r\n"), "has_body", []any{"application/sdp"}, 1},
		{"mime mismatch", withBody("application/sdp", "v=0\r\n"), "has_body", []any{"text/plain"}, -1},
		{"multipart part", withBody("multipart/mixed;boundary=xyz", multipartBody), "has_body_part", []any{"application/isup"}, 1},
		{"multipart sdp", withBody("multipart/mixed;boundary=xyz", multipartBody), "has_body_part", []any{"application/sdp"}, 1},
		{"multipart missing", withBody("multipart/mixed;boundary=xyz", multipartBody), "has_body_part", []any{"text/plain"}, -1},
		{"multipart itself", withBody("multipart/mixed;boundary=xyz", multipartBody), "has_body", []any{"multipart/mixed"}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, h := newMsg(t, c.msg)
			if rc := call(t, m, c.fn, c.args...); rc != c.want {
				t.Fatalf("rc = %d, want %d (%v)", rc, c.want, h.Logs)
			}
		})
	}
	for _, bad := range []string{"sdp", "application/", "/sdp", "a/b/c"} {
		if _, err := fixup(t, fn(t, "has_body"), cs(bad)); err == nil {
			t.Errorf("has_body(%q) accepted", bad)
		}
	}
}

func TestIsPrivacy(t *testing.T) {
	m, _ := newMsg(t, withHeaders("Privacy: id; Header\r\n"))
	for arg, want := range map[string]int{"id": 1, "header": 1, "user": -1} {
		if rc := call(t, m, "is_privacy", arg); rc != want {
			t.Errorf("is_privacy(%q) = %d", arg, rc)
		}
	}
	if _, err := fixup(t, fn(t, "is_privacy"), cs("secret")); err == nil {
		t.Error("bad privacy value accepted")
	}
}

func TestRURIParams(t *testing.T) {
	lr := strings.Replace(inviteText, "transport=udp", "transport=udp;lr", 1)
	cases := []struct {
		name string
		fn   string
		args []any
		rc   int
		ruri string
	}{
		{"has with value", "ruri_has_param", []any{"transport", "udp"}, 1, ""},
		{"has wrong value", "ruri_has_param", []any{"transport", "tcp"}, -1, ""},
		{"has valued, no value asked", "ruri_has_param", []any{"transport"}, -1, ""},
		{"has flag", "ruri_has_param", []any{"lr"}, 1, ""},
		{"has missing", "ruri_has_param", []any{"maddr"}, -1, ""},
		{"add", "ruri_add_param", []any{"nat=yes"}, 1, "sip:alice@example.com:5060;transport=udp;lr;nat=yes"},
		{"add flag", "ruri_add_param", []any{"ob"}, 1, "sip:alice@example.com:5060;transport=udp;lr;ob"},
		{"add empty", "ruri_add_param", []any{""}, 1, "sip:alice@example.com:5060;transport=udp;lr"},
		{"del", "ruri_del_param", []any{"transport"}, 1, "sip:alice@example.com:5060;lr"},
		{"del missing", "ruri_del_param", []any{"user"}, -1, "sip:alice@example.com:5060;transport=udp;lr"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, _ := newMsg(t, lr)
			if rc := call(t, m, c.fn, c.args...); rc != c.rc {
				t.Fatalf("rc = %d", rc)
			}
			if c.ruri != "" && m.Req.Recipient.String() != c.ruri {
				t.Fatalf("R-URI %q, want %q", m.Req.Recipient.String(), c.ruri)
			}
		})
	}
}

const telInvite = "INVITE tel:+4930123;phone-context=example.com SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n" +
	"To: <tel:+4930123>\r\nFrom: <sip:bob@example.org>;tag=1\r\n" +
	"Call-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"

func TestTelURIs(t *testing.T) {
	m, _ := newMsg(t, telInvite)
	if rc := call(t, m, "ruri_has_param", "phone-context", "example.com"); rc != 1 {
		t.Fatalf("tel has_param: %d", rc)
	}
	if rc := call(t, m, "ruri_add_param", "isub=1"); rc != 1 || m.Req.Recipient.String() != "tel:+4930123;phone-context=example.com;isub=1" {
		t.Fatalf("tel add: %d %s", rc, m.Req.Recipient.String())
	}
	if rc := call(t, m, "ruri_del_param", "isub"); rc != 1 {
		t.Fatal(rc)
	}
	if rc := call(t, m, "ruri_tel2sip"); rc != 1 {
		t.Fatal(rc)
	}
	if got := m.Req.Recipient.String(); got != "sip:+4930123;phone-context=example.com@example.org;user=phone" {
		t.Fatalf("tel2sip = %s", got)
	}
	// a SIP R-URI is left alone
	if rc := call(t, m, "ruri_tel2sip"); rc != 1 || !strings.HasPrefix(m.Req.Recipient.String(), "sip:+4930123") {
		t.Fatal(rc)
	}
}

func TestIsURIUserE164(t *testing.T) {
	for uri, want := range map[string]int{
		"sip:+4930123456@example.com":     1,
		"sip:4930123456@example.com":      -1,
		"sip:+49a@example.com":            -1,
		"sip:+1@example.com":              -1,
		"sip:+1234567890123456@x.com":     -1,
		"tel:+4930123;phone-context=x.de": 1,
		"":                                -1,
		"not a uri":                       -1,
	} {
		m, _ := newMsg(t, inviteText)
		if rc := call(t, m, "is_uri_user_e164", uri); rc != want {
			t.Errorf("is_uri_user_e164(%q) = %d, want %d", uri, rc, want)
		}
	}
}

func TestReplyAdditions(t *testing.T) {
	defer func(f func() time.Time) { now = f }(now)
	now = func() time.Time { return time.Date(2024, 3, 5, 7, 8, 9, 0, time.FixedZone("X", 3600)) }
	m, _ := newMsg(t, inviteText)
	if rc := call(t, m, "append_to_reply", "Retry-After: 120\r\nX-Reason: busy\r\n"); rc != 1 {
		t.Fatal(rc)
	}
	if rc := call(t, m, "append_time"); rc != 1 {
		t.Fatal(rc)
	}
	var got []string
	for _, h := range m.ReplyHeaders {
		got = append(got, h.Name()+": "+h.Value())
	}
	want := "Retry-After: 120|X-Reason: busy|Date: Tue, 05 Mar 2024 06:08:09 GMT"
	if strings.Join(got, "|") != want {
		t.Fatalf("reply headers %q", got)
	}
	call(t, m, "append_body_to_reply", "first")
	call(t, m, "append_body_to_reply", "v=0\r\n")
	if string(m.ReplyBody) != "v=0\r\n" {
		t.Fatalf("reply body %q", m.ReplyBody)
	}
	if names(m) != baseNames {
		t.Fatal("request changed")
	}
	if r := fn(t, "append_to_reply").Routes; !r.Has(ast.ErrorRoute) || r.Has(ast.OnReplyRoute) {
		t.Errorf("append_to_reply routes %b", r)
	}
}

func TestChangeReplyStatus(t *testing.T) {
	cases := []struct {
		status string
		code   int
		rc     int
		want   string
	}{
		{"603 Decline", 404, 1, "404 Not Found"},
		{"486 Busy", 600, 1, "600 Not Found"},
		{"180 Ringing", 183, 1, "183 Not Found"},
		{"180 Ringing", 404, -1, "180 Ringing"},
		{"200 OK", 202, 1, "202 Not Found"},
		{"404 Nope", 200, -1, "404 Nope"},
	}
	for _, c := range cases {
		m, _ := replyMsg(t, c.status)
		if rc := call(t, m, "change_reply_status", c.code, "Not Found"); rc != c.rc {
			t.Errorf("%s -> %d: rc %d", c.status, c.code, rc)
		}
		if got := itoa(m.Resp.StatusCode) + " " + m.Resp.Reason; got != c.want {
			t.Errorf("%s -> %d: status %q, want %q", c.status, c.code, got, c.want)
		}
	}
	for _, bad := range []int{99, 700} {
		if _, err := fixup(t, fn(t, "change_reply_status"), ci(bad), cs("x")); err == nil {
			t.Errorf("code %d accepted", bad)
		}
	}
	m, _ := newMsg(t, inviteText)
	if rc := call(t, m, "change_reply_status", 404, "x"); rc != -1 {
		t.Errorf("on a request: %d", rc)
	}
}

func TestGetGlobHeadersValues(t *testing.T) {
	m, _ := newMsg(t, withHeaders("X-Acc: 1\r\nx-acc-id: 42\r\n"))
	n, v := &recorder{Name: "avp"}, &recorder{Name: "avp"}
	if rc := call(t, m, "get_glob_headers_values", "x-acc*", n.Ref(), v.Ref()); rc != 1 {
		t.Fatal(rc)
	}
	if len(n.Vals) != 2 || n.Vals[1] != value.S("x-acc-id") || v.Vals[1] != value.S("42") {
		t.Fatalf("names %v values %v", n.Vals, v.Vals)
	}
	if rc := call(t, m, "get_glob_headers_values", "Y-*", n.Ref(), v.Ref()); rc != -1 {
		t.Fatal(rc)
	}
	if _, err := fixup(t, fn(t, "get_glob_headers_values"), cs("X-*"), dynVar("var"), dynVar("avp")); err == nil {
		t.Error("$var accepted")
	}
}

func TestRouteMasks(t *testing.T) {
	for _, name := range []string{"append_hf", "remove_hf", "is_method", "has_body"} {
		r := fn(t, name).Routes
		if !r.Has(ast.OnReplyRoute) || !r.Has(ast.LocalRoute) || r.Has(ast.StartupRoute) {
			t.Errorf("%s routes %b", name, r)
		}
	}
	if r := fn(t, "is_uri_user_e164").Routes; r.Has(ast.BranchRoute) {
		t.Errorf("is_uri_user_e164 routes %b", r)
	}
}
