package registrar

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/modules/usrloc"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

type testHost struct {
	logs    []string
	replies []string
}

func (h *testHost) Log(_ *msgctx.Msg, level int, text string) {
	h.logs = append(h.logs, msgctx.LevelName(level)+" "+text)
}

func (h *testHost) Reply(m *msgctx.Msg, code int, reason string) error {
	line := fmt.Sprintf("%d %s", code, reason)
	for _, hd := range m.ReplyHeaders {
		line += " | " + hd.Name() + ": " + hd.Value()
	}
	h.replies = append(h.replies, line)
	return nil
}

func (h *testHost) last() string {
	if len(h.replies) == 0 {
		return ""
	}
	return h.replies[len(h.replies)-1]
}

const now = 1_700_000_000

// setup configures usrloc (memory unless params say otherwise) and
// registrar, with a fixed clock, and forgets the location table afterwards.
func setup(t testing.TB, ulParams, regParams map[string]value.Value) {
	t.Helper()
	old := usrloc.SetClock(func() int64 { return now })
	configureT(t, usrloc.Name, ulParams)
	configureT(t, Name, regParams)
	t.Cleanup(func() {
		usrloc.SetClock(old)
		usrloc.GetDomain("location").RemoveAOR("alice@example.com")
		configureT(t, usrloc.Name, nil)
		configureT(t, Name, nil)
	})
}

func configureT(t testing.TB, mod string, params map[string]value.Value) {
	t.Helper()
	info := modules.Lookup(mod)
	p := modules.Params{}
	for _, s := range info.Params {
		if !s.Default.IsNull() {
			p[s.Name] = []value.Value{s.Default}
		}
	}
	for k, v := range params {
		p[k] = []value.Value{v}
	}
	apply, err := info.Configure(p)
	if err != nil {
		t.Fatal(err)
	}
	apply()
}

func req(t testing.TB, first string, headers ...string) (*msgctx.Msg, *testHost) {
	t.Helper()
	method := strings.Fields(first)[0]
	raw := first + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bK-1\r\n" +
		"From: <sip:alice@example.com>;tag=1\r\n" +
		"To: <sip:alice@example.com>\r\n" +
		"Max-Forwards: 70\r\n"
	hasCallID, hasCSeq := false, false
	for _, h := range headers {
		hasCallID = hasCallID || strings.HasPrefix(h, "Call-ID:")
		hasCSeq = hasCSeq || strings.HasPrefix(h, "CSeq:")
		raw += h + "\r\n"
	}
	if !hasCallID {
		raw += "Call-ID: cid-1\r\n"
	}
	if !hasCSeq {
		raw += "CSeq: 1 " + method + "\r\n"
	}
	raw += "Content-Length: 0\r\n\r\n"
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	h := &testHost{}
	return &msgctx.Msg{Req: msg.(*sip.Request), Host: h,
		Src:   msgctx.Addr{IP: "203.0.113.5", Port: 5074, Proto: "udp"},
		Local: msgctx.Addr{IP: "192.0.2.1", Port: 5060, Proto: "udp"}}, h
}

func register(t testing.TB, headers ...string) (*msgctx.Msg, *testHost) {
	return req(t, "REGISTER sip:example.com", headers...)
}

func fn(t testing.TB, name string) *modules.Func {
	for _, f := range modules.Lookup(Name).Funcs {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no function %s", name)
	return nil
}

func call(t testing.TB, m *msgctx.Msg, name string, args ...string) int {
	t.Helper()
	f := fn(t, name)
	fargs := make([]check.FixupArg, len(f.Args))
	a := &modules.Args{Vals: make([]value.Value, len(f.Args)), Given: make([]bool, len(f.Args))}
	for i, s := range args {
		fargs[i] = check.FixupArg{Present: true, Const: true, Str: s}
		a.Vals[i], a.Given[i] = value.S(s), true
	}
	fix, err := f.Fixup(fargs)
	if err != nil {
		t.Fatalf("%s fixup: %v", name, err)
	}
	a.Fix = fix
	return f.Call(m, a)
}

func TestSave(t *testing.T) {
	setup(t, nil, nil)
	m, h := register(t, "Contact: <sip:alice@192.168.1.10:5060>;expires=120, <sip:alice@203.0.113.5:5074>;q=0.5", "Expires: 30", "Allow: INVITE, ACK, BYE", "User-Agent: ua/1")
	if rc := call(t, m, "save", "location"); rc != 1 {
		t.Fatalf("save = %d: %v", rc, h.logs)
	}
	// expires=30 is raised to min_expires (60); the NATed one has received.
	want := `200 OK | Contact: <sip:alice@203.0.113.5:5074>;q=0.5;expires=60, <sip:alice@192.168.1.10:5060>;expires=120;received="sip:203.0.113.5:5074"`
	if got := h.last(); got != want {
		t.Fatalf("reply\n got %s\nwant %s", got, want)
	}
	cs, _ := usrloc.GetDomain("location").Lookup("alice@example.com")
	if len(cs) != 2 || cs[1].UserAgent != "ua/1" || cs[1].Socket != "udp:192.0.2.1:5060" || cs[1].Methods != 1|4|8 || cs[1].CallID != "cid-1" {
		t.Fatalf("bindings: %+v", cs)
	}

	// Same Call-ID, same CSeq: a retransmission, answered, nothing changes.
	m, h = register(t, "Contact: <sip:alice@192.168.1.10:5060>;expires=0")
	if rc := call(t, m, "save", "location"); rc != 1 || !strings.HasPrefix(h.last(), "200 OK | Contact: ") {
		t.Fatalf("retransmission: %d %s", rc, h.last())
	}
	// A query (no Contact) lists the bindings.
	m, h = register(t, "CSeq: 2 REGISTER")
	if call(t, m, "save", "location"); !strings.Contains(h.last(), "sip:alice@192.168.1.10:5060") {
		t.Fatalf("query: %s", h.last())
	}
	// Higher CSeq, expires=0: removed.
	m, h = register(t, "CSeq: 3 REGISTER", "Contact: <sip:alice@192.168.1.10:5060>;expires=0")
	if rc := call(t, m, "save", "location"); rc != 1 || h.last() != "200 OK | Contact: <sip:alice@203.0.113.5:5074>;q=0.5;expires=60" {
		t.Fatalf("unregister one: %d %s", rc, h.last())
	}
	// Out of order (lower CSeq, same Call-ID): 200, no change.
	m, h = register(t, "CSeq: 1 REGISTER", "Contact: <sip:alice@203.0.113.5:5074>;expires=0")
	if rc := call(t, m, "save", "location"); rc != 1 || !strings.Contains(h.last(), "sip:alice@203.0.113.5:5074") {
		t.Fatalf("out of order: %d %s", rc, h.last())
	}
	// * with Expires: 0 removes all.
	m, h = register(t, "CSeq: 9 REGISTER", "Contact: *", "Expires: 0")
	if rc := call(t, m, "save", "location"); rc != 1 || h.last() != "200 OK" {
		t.Fatalf("star: %d %s", rc, h.last())
	}
	if rc := call(t, m, "is_registered", "location"); rc != -1 {
		t.Errorf("is_registered after *: %d", rc)
	}
}

func TestSaveErrors(t *testing.T) {
	setup(t, nil, map[string]value.Value{"max_contacts": value.I(1), "retry_after": value.I(30)})
	for _, tc := range []struct {
		headers []string
		want    string
	}{
		{[]string{"Contact: *"}, "400 Bad Request | P-Registrar-Error: * used in contact and expires is not zero"},
		{[]string{"Contact: *, <sip:a@b>", "Expires: 0"}, "400 Bad Request | P-Registrar-Error: * used in contact and more than 1 contact"},
		{[]string{"Contact: <sip:a@b>;expires=x"}, "400 Bad Request | P-Registrar-Error: Invalid expires param in contact"},
		{[]string{"Contact: <sip:a@b>;q=2"}, "400 Bad Request | P-Registrar-Error: Invalid q param in contact"},
		{[]string{"Contact: <sip:a@b>", "Expires: soon"}, "400 Bad Request | P-Registrar-Error: Expires parse error"},
		{[]string{"Contact: <sip:a@b>, <sip:c@d>"}, "503 Service Unavailable | P-Registrar-Error: Too many registered contacts | Retry-After: 30"},
	} {
		m, h := register(t, tc.headers...)
		if rc := call(t, m, "save", "location"); rc != -1 || h.last() != tc.want {
			t.Errorf("%v: %d %q, want %q", tc.headers, rc, h.last(), tc.want)
		}
	}
	// 'f' makes room by dropping the oldest; cN overrides max_contacts.
	m, h := register(t, "Contact: <sip:a@b>, <sip:c@d>")
	if rc := call(t, m, "save", "location", "fc1"); rc != 1 || strings.Count(h.last(), "<sip:") != 1 {
		t.Errorf("force: %d %s", rc, h.last())
	}
	m, h = register(t, "CSeq: 2 REGISTER", "Contact: <sip:e@f>, <sip:g@h>")
	if rc := call(t, m, "save", "location", "c3r"); rc != 1 || len(h.replies) != 0 {
		t.Errorf("c3r: %d %v", rc, h.replies)
	}
	for _, bad := range []string{"x", "c", "p7", "s"} {
		if _, err := fn(t, "save").Fixup([]check.FixupArg{{Const: true, Str: "location"}, {Present: true, Const: true, Str: bad}, {}, {}}); err == nil {
			t.Errorf("save flags %q accepted", bad)
		}
	}
	if _, err := fn(t, "save").Fixup([]check.FixupArg{{Const: true, Str: "loc;drop"}, {}, {}, {}}); err == nil {
		t.Error("bad table accepted")
	}
}

func TestLookup(t *testing.T) {
	setup(t, nil, nil)
	m, _ := register(t, "Contact: <sip:alice@10.0.0.1>;q=0.1, <sip:alice@203.0.113.5:5074;transport=tcp>;q=0.9", "Allow: INVITE")
	m.Src.Proto = "tcp"
	if rc := call(t, m, "save", "location"); rc != 1 {
		t.Fatal(rc)
	}
	inv, _ := req(t, "INVITE sip:alice@example.com")
	if rc := call(t, inv, "lookup", "location"); rc != 1 {
		t.Fatalf("lookup = %d", rc)
	}
	if got := inv.Req.Recipient.String(); got != "sip:alice@203.0.113.5:5074;transport=tcp" {
		t.Errorf("$ru = %s", got)
	}
	if inv.DstURI != "" || len(inv.Branches) != 1 || inv.Branches[0].URI != "sip:alice@10.0.0.1" ||
		inv.Branches[0].Dst != "sip:203.0.113.5:5074;transport=tcp" || inv.Branches[0].Q != 100 {
		t.Errorf("du %q branches %+v", inv.DstURI, inv.Branches)
	}
	inv, _ = req(t, "INVITE sip:alice@example.com")
	call(t, inv, "lookup", "location", "b")
	if len(inv.Branches) != 0 {
		t.Errorf("b flag: %+v", inv.Branches)
	}
	// Method filtering: the contacts allow INVITE only.
	msg, _ := req(t, "MESSAGE sip:alice@example.com")
	if rc := call(t, msg, "lookup", "location", "m"); rc != -2 {
		t.Errorf("method filtered lookup = %d", rc)
	}
	if rc := call(t, msg, "lookup", "location"); rc != 1 {
		t.Errorf("unfiltered lookup = %d", rc)
	}
	inv, _ = req(t, "INVITE sip:bob@example.com")
	if rc := call(t, inv, "lookup", "location"); rc != -1 {
		t.Errorf("unknown AOR = %d", rc)
	}
	if rc := call(t, inv, "lookup", "location", "", "sip:alice@example.com"); rc != 1 {
		t.Errorf("lookup with aor = %d", rc)
	}
	// is_registered & co.
	if rc := call(t, inv, "is_registered", "location"); rc != -1 { // From bob? no: From alice
		_ = rc
	}
	if rc := call(t, inv, "is_registered", "location", "sip:alice@example.com"); rc != 1 {
		t.Errorf("is_registered = %d", rc)
	}
	if rc := call(t, inv, "registered", "location", "sip:alice@example.com", "cid-1"); rc != 1 {
		t.Errorf("registered with callid = %d", rc)
	}
	if rc := call(t, inv, "registered", "location", "sip:alice@example.com", "other"); rc != -1 {
		t.Errorf("registered with other callid = %d", rc)
	}
	if rc := call(t, inv, "is_contact_registered", "location", "sip:alice@example.com", "sip:alice@10.0.0.1"); rc != 1 {
		t.Errorf("is_contact_registered = %d", rc)
	}
	if rc := call(t, inv, "remove", "location", "sip:alice@example.com", "10.0.0.1"); rc != 1 {
		t.Errorf("remove by host = %d", rc)
	}
	if rc := call(t, inv, "is_contact_registered", "location", "sip:alice@example.com", "sip:alice@10.0.0.1"); rc != -1 {
		t.Errorf("after remove = %d", rc)
	}
}

func TestPathAndUAFilter(t *testing.T) {
	setup(t, nil, nil)
	m, h := register(t, "Contact: <sip:alice@10.0.0.1>", "Path: <sip:edge.example.com;lr>", "Supported: path", "User-Agent: Yealink")
	if rc := call(t, m, "save", "location", "p1"); rc != 1 || !strings.HasSuffix(h.last(), "| Path: <sip:edge.example.com;lr>") {
		t.Fatalf("p1: %d %s", rc, h.last())
	}
	inv, _ := req(t, "INVITE sip:alice@example.com")
	if rc := call(t, inv, "lookup", "location", "u/yealink/i"); rc != 1 {
		t.Fatalf("ua lookup = %d", rc)
	}
	if inv.DstURI != "sip:edge.example.com;lr" || inv.Req.GetHeader("Route") == nil {
		t.Errorf("path: du %q route %v", inv.DstURI, inv.Req.GetHeader("Route"))
	}
	inv, _ = req(t, "INVITE sip:alice@example.com")
	if rc := call(t, inv, "lookup", "location", "u/polycom/"); rc != -1 {
		t.Errorf("ua mismatch = %d", rc)
	}
	m, h = register(t, "CSeq: 5 REGISTER", "Contact: <sip:alice@10.0.0.1>", "Path: <sip:edge.example.com;lr>")
	if rc := call(t, m, "save", "location", "p2"); rc != -1 || !strings.HasPrefix(h.last(), "420 Bad Extension") {
		t.Errorf("p2 without Supported: path: %d %s", rc, h.last())
	}
}

func newDBURL(t testing.TB) string {
	u := "sqlite://" + filepath.Join(t.TempDir(), "reg.db")
	db, err := store.Create(u)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return u
}

// BenchmarkSave is one re-registration (a refresh of an existing binding
// with the next CSeq) through save(): parsing, the usrloc update, and the
// 200 OK with the Contact list; in memory and with write-through/write-back
// to sqlite.
func BenchmarkSave(b *testing.B) {
	for _, mode := range []int{0, 1, 2} {
		b.Run([]string{"memory", "write-through", "write-back"}[mode], func(b *testing.B) {
			ul := map[string]value.Value{"db_mode": value.I(mode)}
			if mode != 0 {
				ul["db_url"] = value.S(newDBURL(b))
			}
			setup(b, ul, nil)
			m, h := register(b, "Contact: <sip:alice@192.168.1.10:5060>", "Expires: 3600", "User-Agent: bench")
			f := fn(b, "save")
			fix, _ := f.Fixup([]check.FixupArg{{Const: true, Str: "location"}, {}, {}, {}})
			a := &modules.Args{Vals: []value.Value{value.S("location"), value.Null, value.Null, value.Null}, Given: []bool{true, false, false, false}, Fix: fix}
			cseq := m.Req.CSeq()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				cseq.SeqNo = uint32(i + 1)
				h.replies = h.replies[:0]
				if rc := f.Call(m, a); rc != 1 {
					b.Fatalf("save = %d %v", rc, h.logs)
				}
			}
			b.StopTimer()
			if mode == 2 {
				usrloc.Flush()
			}
		})
	}
}
