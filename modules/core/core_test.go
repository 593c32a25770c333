package core

import (
	"github.com/sipedge/sipedge/internal/modtest"
	"strconv"
	"testing"
	"time"

	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

func TestXlogAndLog(t *testing.T) {
	cases := []struct {
		name  string
		fn    string
		args  []any
		level int
		text  string
	}{
		{"xlog default level", "xlog", []any{"hello $rm"}, msgctx.LErr, "hello $rm"},
		{"xlog named level", "xlog", []any{"L_INFO", "info"}, msgctx.LInfo, "info"},
		{"xlog L_ERROR alias", "xlog", []any{"L_ERROR", "e"}, msgctx.LErr, "e"},
		{"xlog numeric level", "xlog", []any{"2", "n"}, msgctx.LNotice, "n"},
		{"log default level", "log", []any{"dbg"}, msgctx.LDbg, "dbg"},
		{"log numeric level", "log", []any{"1", "warn"}, msgctx.LWarn, "warn"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, h := newMsg(t, inviteText)
			if rc := call(t, m, c.fn, c.args...); rc != 1 {
				t.Fatalf("rc = %d", rc)
			}
			if len(h.Logs) != 1 || h.Logs[0] != (modtest.LogLine{Level: c.level, Text: c.text}) {
				t.Fatalf("logs = %v, want [{%d %q}]", h.Logs, c.level, c.text)
			}
		})
	}
}

func TestXlogDynamicLevel(t *testing.T) {
	m, h := newMsg(t, inviteText)
	f := fn(t, "xlog")
	fix, err := fixup(t, f, dyn(), cs("text"))
	if err != nil {
		t.Fatal(err)
	}
	a := &modules.Args{Vals: []value.Value{value.S("L_WARN"), value.S("text")}, Given: []bool{true, true}, Fix: fix}
	if rc := f.Call(m, a); rc != 1 || h.Logs[0].Level != msgctx.LWarn {
		t.Fatalf("rc=%d logs=%v", rc, h.Logs)
	}
	// a bad dynamic level warns and logs at the default level
	h.Logs = nil
	a.Vals[0] = value.S("L_NOPE")
	f.Call(m, a)
	if len(h.Logs) != 2 || h.Logs[1] != (modtest.LogLine{Level: msgctx.LErr, Text: "text"}) || !h.HasLog(msgctx.LWarn, "L_NOPE") {
		t.Fatalf("logs = %v", h.Logs)
	}
}

func TestLogFixupRejectsBadLevel(t *testing.T) {
	for _, name := range []string{"xlog", "log"} {
		for _, lvl := range []string{"L_FOO", "9", "-4", "info"} {
			if _, err := fixup(t, fn(t, name), cs(lvl), cs("x")); err == nil {
				t.Errorf("%s(%q, ...) accepted", name, lvl)
			}
		}
	}
}

func TestMessageFlags(t *testing.T) {
	m, _ := newMsg(t, inviteText)
	if rc := call(t, m, "isflagset", 5); rc != -1 {
		t.Fatalf("isflagset on clear flag = %d", rc)
	}
	if rc := call(t, m, "setflag", 5); rc != 1 || m.Flags != 1<<5 {
		t.Fatalf("setflag: rc=%d flags=%b", rc, m.Flags)
	}
	if rc := call(t, m, "isflagset", "5"); rc != 1 {
		t.Fatalf("isflagset(\"5\") = %d", rc)
	}
	if rc := call(t, m, "setflag", 0); rc != 1 || m.Flags&1 == 0 {
		t.Fatalf("setflag(0): rc=%d flags=%b", rc, m.Flags)
	}
	if rc := call(t, m, "resetflag", 5); rc != 1 || m.Flags != 1 {
		t.Fatalf("resetflag: rc=%d flags=%b", rc, m.Flags)
	}
	// named flags get a stable bit, counted from the top
	if rc := call(t, m, "setflag", "NAT_FLAG"); rc != 1 {
		t.Fatal(rc)
	}
	bit, err := FlagBit("NAT_FLAG")
	if err != nil || m.Flags&(1<<bit) == 0 || bit < 32 {
		t.Fatalf("NAT_FLAG bit=%d err=%v flags=%b", bit, err, m.Flags)
	}
	if again, _ := FlagBit(" NAT_FLAG "); again != bit {
		t.Fatalf("named flag moved: %d then %d", bit, again)
	}
	if rc := call(t, m, "isflagset", "NAT_FLAG"); rc != 1 {
		t.Fatal(rc)
	}
	if rc := call(t, m, "resetflag", "NAT_FLAG"); rc != 1 || m.Flags&(1<<bit) != 0 {
		t.Fatal(rc)
	}
}

func TestFlagFixupRejects(t *testing.T) {
	named, err := FlagBit("TAKEN_BY_NAME")
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name string
		arg  any
	}{
		{"out of range", 64},
		{"way out of range", "1000"},
		{"bit of a named flag", named},
	}
	for _, c := range bad {
		arg := cs("")
		switch v := c.arg.(type) {
		case int:
			arg = ci(v)
		case string:
			arg = cs(v)
		}
		for _, f := range []string{"setflag", "resetflag", "isflagset", "setbflag"} {
			if c.name == "bit of a named flag" && f == "setbflag" {
				continue // branch flags have their own table
			}
			if _, err := fixup(t, fn(t, f), arg); err == nil {
				t.Errorf("%s: %s(%v) accepted", c.name, f, c.arg)
			}
		}
	}
	if _, err := fixup(t, fn(t, "setflag"), dyn()); err == nil {
		t.Error("setflag($var(x)) accepted")
	}
	if _, err := fixup(t, fn(t, "setbflag"), ci(1), ci(-1)); err == nil {
		t.Error("setbflag(1, -1) accepted")
	}
}

func TestBranchFlags(t *testing.T) {
	m, _ := newMsg(t, inviteText)
	m.Branches = []msgctx.Branch{{URI: "sip:b1@example.com"}}
	if rc := call(t, m, "setbflag", 3); rc != 1 || m.BranchFlags != 1<<3 {
		t.Fatalf("setbflag(3): rc=%d bflags=%b", rc, m.BranchFlags)
	}
	if rc := call(t, m, "setbflag", 4, 1); rc != 1 || m.Branches[0].Flags != 1<<4 || m.BranchFlags != 1<<3 {
		t.Fatalf("setbflag(4,1): rc=%d", rc)
	}
	if rc := call(t, m, "isbflagset", 4, 1); rc != 1 {
		t.Fatal(rc)
	}
	if rc := call(t, m, "isbflagset", 4); rc != -1 {
		t.Fatalf("flag 4 leaked to branch 0: %d", rc)
	}
	if rc := call(t, m, "setbflag", 4, 2); rc != -1 {
		t.Fatalf("setbflag on missing branch = %d", rc)
	}
	if rc := call(t, m, "isbflagset", 4, 2); rc != -1 {
		t.Fatal(rc)
	}
	if rc := call(t, m, "resetbflag", 3, 0); rc != 1 || m.BranchFlags != 0 {
		t.Fatal(rc)
	}
	if rc := call(t, m, "setbflag", "RTP"); rc != 1 || m.BranchFlags == 0 {
		t.Fatal(rc)
	}
}

func TestRURIRewriting(t *testing.T) {
	const tel = "INVITE tel:+4930123;phone-context=example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n" +
		"To: <tel:+4930123>\r\nFrom: <sip:bob@example.org>;tag=1\r\n" +
		"Call-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
	const maddr = "INVITE sip:alice@example.com;maddr=10.1.1.1;lr SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n" +
		"To: <sip:alice@example.com>\r\nFrom: <sip:bob@example.org>;tag=1\r\n" +
		"Call-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
	cases := []struct {
		name string
		msg  string
		fn   string
		arg  any
		rc   int
		want string
	}{
		{"seturi", inviteText, "seturi", "sips:carol@example.net;user=phone", 1, "sips:carol@example.net;user=phone"},
		{"seturi bad", inviteText, "seturi", "not a uri", -1, "sip:alice@example.com:5060;transport=udp"},
		{"sethost", inviteText, "sethost", "gw.example.net", 1, "sip:alice@gw.example.net:5060;transport=udp"},
		{"sethost strips maddr", maddr, "sethost", "gw.example.net", 1, "sip:alice@gw.example.net;lr"},
		{"sethost rejects host:port", inviteText, "sethost", "gw:5070", -1, "sip:alice@example.com:5060;transport=udp"},
		{"sethostport", inviteText, "sethostport", "10.2.2.2:5070", 1, "sip:alice@10.2.2.2:5070;transport=udp"},
		{"sethostport drops port", inviteText, "sethostport", "gw.example.net", 1, "sip:alice@gw.example.net;transport=udp"},
		{"sethostport v6", inviteText, "sethostport", "[2001:db8::1]:5080", 1, "sip:alice@[2001:db8::1]:5080;transport=udp"},
		{"sethostport bad port", inviteText, "sethostport", "gw:99999", -1, "sip:alice@example.com:5060;transport=udp"},
		{"setuser", inviteText, "setuser", "bob", 1, "sip:bob@example.com:5060;transport=udp"},
		{"setuser empty", inviteText, "setuser", "", 1, "sip:example.com:5060;transport=udp"},
		{"setuserpass", inviteText, "setuserpass", "bob:secret", 1, "sip:bob:secret@example.com:5060;transport=udp"},
		{"setport", inviteText, "setport", "5080", 1, "sip:alice@example.com:5080;transport=udp"},
		{"setport empty removes", inviteText, "setport", "", 1, "sip:alice@example.com;transport=udp"},
		{"prefix", inviteText, "prefix", "00", 1, "sip:00alice@example.com:5060;transport=udp"},
		{"strip", inviteText, "strip", 2, 1, "sip:ice@example.com:5060;transport=udp"},
		{"strip all", inviteText, "strip", 10, 1, "sip:example.com:5060;transport=udp"},
		{"strip_tail", inviteText, "strip_tail", 3, 1, "sip:al@example.com:5060;transport=udp"},
		{"tel prefix", tel, "prefix", "00", 1, "tel:00+4930123;phone-context=example.com"},
		{"tel strip", tel, "strip", 1, 1, "tel:4930123;phone-context=example.com"},
		{"tel sethost fails", tel, "sethost", "x.example.com", -1, "tel:+4930123;phone-context=example.com"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, h := newMsg(t, c.msg)
			if rc := call(t, m, c.fn, c.arg); rc != c.rc {
				t.Fatalf("rc = %d, want %d (logs %v)", rc, c.rc, h.Logs)
			}
			if got := m.Req.Recipient.String(); got != c.want {
				t.Fatalf("R-URI = %q, want %q", got, c.want)
			}
			if c.rc < 0 && len(h.Logs) == 0 {
				t.Fatal("failure not logged")
			}
		})
	}
}

func TestRURIWithoutRequest(t *testing.T) {
	m, h := newMsg(t, "")
	if rc := call(t, m, "sethost", "x"); rc != -1 || len(h.Logs) != 1 {
		t.Fatalf("rc=%d logs=%v", rc, h.Logs)
	}
}

func TestRURIFixups(t *testing.T) {
	if _, err := fixup(t, fn(t, "setport"), cs("http")); err == nil {
		t.Error("setport(\"http\") accepted")
	}
	if _, err := fixup(t, fn(t, "strip"), ci(-2)); err == nil {
		t.Error("strip(-2) accepted")
	}
	if _, err := fixup(t, fn(t, "strip_tail"), ci(-1)); err == nil {
		t.Error("strip_tail(-1) accepted")
	}
	if _, err := fixup(t, fn(t, "setdsturi"), cs("garbage")); err == nil {
		t.Error("setdsturi(\"garbage\") accepted")
	}
	if _, err := fixup(t, fn(t, "setdsturi"), cs("tel:+123")); err == nil {
		t.Error("setdsturi(\"tel:+123\") accepted")
	}
	if _, err := fixup(t, fn(t, "setdsturi"), cs("sip:10.0.0.9:5080;transport=tcp")); err != nil {
		t.Error(err)
	}
}

func TestDstURI(t *testing.T) {
	m, _ := newMsg(t, inviteText)
	if rc := call(t, m, "isdsturiset"); rc != -1 {
		t.Fatal(rc)
	}
	if rc := call(t, m, "setdsturi", "sip:10.0.0.9:5080;transport=tcp"); rc != 1 || m.DstURI != "sip:10.0.0.9:5080;transport=tcp" {
		t.Fatalf("rc=%d du=%q", rc, m.DstURI)
	}
	if rc := call(t, m, "isdsturiset"); rc != 1 {
		t.Fatal(rc)
	}
	if rc := call(t, m, "resetdsturi"); rc != 1 || m.DstURI != "" {
		t.Fatal(rc)
	}
	// a bad value from a pvar fails at run time and leaves $du alone
	m.DstURI = "sip:keep@example.com"
	f := fn(t, "setdsturi")
	if rc := f.Call(m, &modules.Args{Vals: []value.Value{value.S("::")}, Given: []bool{true}}); rc != -1 || m.DstURI != "sip:keep@example.com" {
		t.Fatalf("rc=%d du=%q", rc, m.DstURI)
	}
}

func TestForceRport(t *testing.T) {
	m, _ := newMsg(t, inviteText)
	if ForceRport(m) {
		t.Fatal("set before the call")
	}
	if rc := call(t, m, "force_rport"); rc != 1 || !ForceRport(m) {
		t.Fatal(rc)
	}
	m.Reset(0, 0)
	if ForceRport(m) {
		t.Fatal("survived Reset")
	}
}

func TestPvPrintf(t *testing.T) {
	m, h := newMsg(t, inviteText)
	r := &recorder{Name: "var"}
	if rc := call(t, m, "pv_printf", r.Ref(), "a-b"); rc != 1 || len(r.Vals) != 1 || r.Vals[0] != value.S("a-b") {
		t.Fatalf("rc=%d vals=%v", rc, r.Vals)
	}
	r.Fail = true
	if rc := call(t, m, "pv_printf", r.Ref(), "x"); rc != -1 || len(h.Logs) != 1 {
		t.Fatalf("rc=%d logs=%v", rc, h.Logs)
	}
}

func TestGetTimestamp(t *testing.T) {
	defer func(f func() time.Time) { now = f }(now)
	now = func() time.Time { return time.Unix(1700000000, 123456789) }
	m, _ := newMsg(t, inviteText)
	sec, usec := &recorder{Name: "avp"}, &recorder{Name: "avp"}
	if rc := call(t, m, "get_timestamp", sec.Ref(), usec.Ref()); rc != 1 {
		t.Fatal(rc)
	}
	if sec.Vals[0] != value.I(1700000000) || usec.Vals[0] != value.I(123456) {
		t.Fatalf("sec=%v usec=%v", sec.Vals, usec.Vals)
	}
	if _, err := fixup(t, fn(t, "get_timestamp"), dynVar("var"), dynVar("avp")); err == nil {
		t.Error("get_timestamp($var(x), ...) accepted")
	}
}

// sipHost is a testHost with the SIP runtime's extras; only Myself matters.
type sipHost struct {
	*testHost
	mine map[string]bool // "host:port", port 0 = any
}

func (s *sipHost) Forward(*msgctx.Msg, string) error                { return nil }
func (s *sipHost) Relay(*msgctx.Msg, string, msgctx.RelayFlags) int { return 1 }
func (s *sipHost) TransReply(*msgctx.Msg, int, string) int          { return 1 }
func (s *sipHost) NewTransaction(*msgctx.Msg) int                   { return 1 }
func (s *sipHost) CheckTransaction(*msgctx.Msg) int                 { return -1 }
func (s *sipHost) Myself(host string, port int) bool {
	return s.mine[host+":"+strconv.Itoa(port)] || s.mine[host+":0"]
}

func TestIsMyself(t *testing.T) {
	m, h := newMsg(t, inviteText)
	if rc := call(t, m, "is_myself", "127.0.0.1"); rc != -1 || !h.HasLog(msgctx.LErr, "no SIP runtime") {
		t.Fatalf("without SIP host: rc=%d logs=%v", rc, h.Logs)
	}
	m.Host = &sipHost{testHost: h, mine: map[string]bool{"127.0.0.1:5060": true, "::1:0": true}}
	cases := []struct {
		args []any
		want int
	}{
		{[]any{"127.0.0.1", 5060}, 1},
		{[]any{"127.0.0.1", 5070}, -1},
		{[]any{"[::1]"}, 1},
		{[]any{"example.com"}, -1},
	}
	for _, c := range cases {
		if rc := call(t, m, "is_myself", c.args...); rc != c.want {
			t.Errorf("is_myself(%v) = %d, want %d", c.args, rc, c.want)
		}
	}
	if _, err := fixup(t, fn(t, "is_myself"), cs("x"), ci(70000)); err == nil {
		t.Error("port 70000 accepted")
	}
}
