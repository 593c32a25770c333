package acc

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/syntax"
	_ "github.com/sipedge/sipedge/modules/core"
	"github.com/sipedge/sipedge/modules/dialog"
	_ "github.com/sipedge/sipedge/modules/sipmsgops"
	_ "github.com/sipedge/sipedge/modules/sl"
	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/engine"
	"github.com/sipedge/sipedge/runtime/events"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/scripttest"
	"github.com/sipedge/sipedge/runtime/store"
)

// newDB creates a database with the schema `sipedge db init` creates.
func newDB(t testing.TB, extra ...string) string {
	t.Helper()
	url := "sqlite://" + filepath.Join(t.TempDir(), "acc.db")
	db, err := store.Create(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := db.Init(ctx); err != nil {
		t.Fatal(err)
	}
	for _, q := range extra {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() { Flush(); db.Close() })
	return url
}

// logSink captures the module's background log lines.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func captureLog(t testing.TB) *logSink {
	s := &logSink{}
	tm.SetLogger(func(level int, source, text string) {
		s.mu.Lock()
		s.lines = append(s.lines, fmt.Sprintf("%d %s %s", level, source, text))
		s.mu.Unlock()
	})
	t.Cleanup(func() { tm.SetLogger(nil) })
	return s
}

func (s *logSink) find(sub string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.lines {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

// sim drives a script the way the SIP runtime does: request hooks, request
// route, route-done hooks; then replies through the response-out hooks.
type sim struct {
	t   testing.TB
	s   *engine.Script
	rec *scripttest.Recorder
	now atomic.Int64 // unix ns; the dialog timer goroutine reads it
}

func newSim(t testing.TB, script string) *sim {
	t.Helper()
	dialog.ForgetAll()
	t.Cleanup(dialog.ForgetAll)
	s, err := engine.Load("script.cfg", syntax.Options{ReadFile: func(string) ([]byte, error) { return []byte(script), nil }})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	s.Activate()
	sm := &sim{t: t, s: s, rec: &scripttest.Recorder{}}
	sm.now.Store(time.Date(2024, 5, 1, 10, 0, 0, 0, time.Local).UnixNano())
	oldClock := clock
	clock = func() time.Time { return time.Unix(0, sm.now.Load()) }
	restore := dialog.SetClock(func() int64 { return time.Unix(0, sm.now.Load()).Unix() })
	t.Cleanup(func() { clock = oldClock; restore() })
	return sm
}

func (s *sim) advance(d time.Duration) { s.now.Add(int64(d)) }

func (s *sim) msg(kind ast.RouteKind) *msgctx.Msg {
	m := &msgctx.Msg{}
	m.Reset(s.s.Image.NumVars(), s.s.Image.NumAVPs())
	m.Kind = kind
	m.Host = s.rec
	m.Src = msgctx.Addr{Proto: "udp", IP: "10.0.0.1", Port: 5060}
	m.Local = msgctx.Addr{Proto: "udp", IP: "127.0.0.1", Port: 5060}
	return m
}

type call struct {
	s   *sim
	req *sip.Request
	mod map[string]any
	m   *msgctx.Msg
}

func (s *sim) request(text string) *call {
	s.t.Helper()
	msg, err := scripttest.ParseMessage([]byte(text))
	if err != nil {
		s.t.Fatalf("parse: %v", err)
	}
	req := msg.(*sip.Request)
	m := s.msg(ast.RequestRoute)
	m.Req = req
	n := len(s.rec.Lines)
	tm.RunRequestHooks(m)
	r, _ := s.s.Prog.Lookup(ast.RequestRoute, "")
	s.s.Image.Run(m, r)
	stateful := false
	for _, l := range s.rec.Lines[n:] {
		if strings.HasPrefix(l, "relay ") || strings.HasPrefix(l, "t_reply") || l == "t_newtran" {
			stateful = true
		}
	}
	tm.RunRouteDoneHooks(m, stateful)
	return &call{s: s, req: req, mod: tm.CopyMod(m.Mod), m: m}
}

// reply sends a downstream reply upstream through the hooks.
func (c *call) reply(code int, toTag string) {
	res := sip.NewResponseFromRequest(c.req, code, "R"+fmt.Sprint(code), nil)
	if toTag != "" {
		res.To().Params.Add("tag", toTag)
	}
	res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "callee", Host: "10.0.0.9", Port: 5080}})
	tm.RunResponseOutHooks(c.mod, c.req, code, res)
}

// failure runs the failure hooks as the runtime does before a failure_route.
func (c *call) failure(code int) {
	tm.RunFailureHooks(c.mod, c.req, code, nil)
}

func invite(callID, fromTag string) string {
	return "INVITE sip:2000@127.0.0.1 SIP/2.0\n" +
		"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK" + callID + "\n" +
		"From: <sip:1001@example.com>;tag=" + fromTag + "\n" +
		"To: <sip:2000@127.0.0.1>\n" +
		"Call-ID: " + callID + "\n" +
		"CSeq: 1 INVITE\n" +
		"Contact: <sip:1001@10.0.0.1:5060>\n" +
		"Max-Forwards: 70\n" +
		"Content-Length: 0\n\n"
}

func inDialog(method, callID, fromTag, toTag string, cseq int) string {
	return fmt.Sprintf("%s sip:1001@10.0.0.1:5060 SIP/2.0\n"+
		"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK%s%s\n"+
		"From: <sip:1001@example.com>;tag=%s\n"+
		"To: <sip:2000@127.0.0.1>;tag=%s\n"+
		"Call-ID: %s\n"+
		"CSeq: %d %s\n"+
		"Max-Forwards: 70\n"+
		"Content-Length: 0\n\n", method, callID, method, fromTag, toTag, callID, cseq, method)
}

const header = `
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "dialog.so"
loadmodule "acc.so"
modparam("acc", "db_url", "%s")
`

func rows(t testing.TB, url, q string) []string {
	t.Helper()
	Flush()
	db, err := store.Open(url)
	if err != nil {
		t.Fatal(err)
	}
	r, err := db.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cols, _ := r.Columns()
	var out []string
	for r.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := r.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			switch x := v.(type) {
			case []byte:
				v = string(x)
			case time.Time:
				v = x.Format(timeLayout)
			}
			parts[i] = fmt.Sprint(v)
		}
		out = append(out, strings.Join(parts, "|"))
	}
	return out
}

func TestCDRWithDuration(t *testing.T) {
	url := newDB(t)
	logs := captureLog(t)
	evs := watch(t)
	s := newSim(t, fmt.Sprintf(header, url)+`
modparam("acc", "log_level", 3)
route {
	if (has_totag()) { t_relay(); exit; }
	do_accounting("log|db|evi", "cdr|missed");
	t_relay();
}`)
	c := s.request(invite("cdr1", "ft1"))
	c.reply(180, "tt1")
	s.advance(2 * time.Second)
	c.reply(200, "tt1")
	c.reply(200, "tt1") // a retransmission
	if got := rows(t, url, "SELECT count(*) FROM acc"); got[0] != "0" {
		t.Fatalf("the 2xx of a CDR call wrote %s rows", got[0])
	}
	s.request(inDialog("ACK", "cdr1", "ft1", "tt1", 1))
	s.advance(65*time.Second + 250*time.Millisecond)
	s.request(inDialog("BYE", "cdr1", "ft1", "tt1", 2))
	got := rows(t, url, "SELECT method, from_tag, to_tag, callid, sip_code, sip_reason, time, duration, ms_duration, setuptime, created FROM acc")
	want := "INVITE|ft1|tt1|cdr1|200|R200|2024-05-01 10:00:02|65|65250|2|2024-05-01 10:00:00"
	if len(got) != 1 || got[0] != want {
		t.Fatalf("acc rows:\n%q\nwant\n%q", got, want)
	}
	l := logs.find("ACC: call ended:")
	if len(l) != 1 || !strings.HasPrefix(l[0], "3 acc ACC: call ended: created=") ||
		!strings.Contains(l[0], ";duration=65;ms_duration=65250;setuptime=2;method=INVITE;from_tag=ft1;to_tag=tt1;call_id=cdr1;code=200;reason=R200") {
		t.Errorf("log: %q", l)
	}
	// a missed call with the cdr flag records its setup time and creation
	c2 := s.request(invite("cdr2", "ft2"))
	s.advance(3 * time.Second)
	c2.reply(486, "tt2")
	if got := rows(t, url, "SELECT callid, sip_code, setuptime, created FROM missed_calls"); len(got) != 1 ||
		got[0] != "cdr2|486|3|2024-05-01 10:01:07" {
		t.Errorf("missed_calls: %q", got)
	}
	cdrs := evs.named(EventCDR)
	if len(cdrs) != 1 || cdrs[0].Get("duration").AsString() != "65" || cdrs[0].Get("callid").AsString() != "cdr1" {
		t.Errorf("E_ACC_CDR: %+v", cdrs)
	}
}

func TestMissedAndFailed(t *testing.T) {
	url := newDB(t)
	logs := captureLog(t)
	s := newSim(t, fmt.Sprintf(header, url)+`
route {
	if ($rU == "failed") {
		do_accounting("db", "failed");
	} else if ($rU == "plain") {
		do_accounting("db");
	} else {
		do_accounting("log|db", "missed");
	}
	t_relay();
}`)
	// missed call: a 486 to an INVITE
	s.request(invite("m1", "f1")).reply(486, "t1")
	got := rows(t, url, "SELECT method, from_tag, to_tag, callid, sip_code, sip_reason, time, setuptime, created FROM missed_calls")
	if len(got) != 1 || got[0] != "INVITE|f1|t1|m1|486|R486|2024-05-01 10:00:00|0|<nil>" {
		t.Fatalf("missed_calls: %q", got)
	}
	if l := logs.find("ACC: call missed: timestamp="); len(l) != 1 || !strings.Contains(l[0], ";method=INVITE;from_tag=f1;to_tag=t1;call_id=m1;code=486;reason=R486") {
		t.Errorf("log: %q", logs.lines)
	}
	// the missed flag is reset once used: the failure_route's accounting
	// plus the final reply make one record
	c := s.request(invite("m2", "f2"))
	c.failure(408)
	c.reply(503, "t2")
	if got := rows(t, url, "SELECT callid, sip_code, sip_reason FROM missed_calls WHERE callid='m2'"); len(got) != 1 || got[0] != "m2|408|Request Timeout" {
		t.Errorf("missed m2: %q", got)
	}
	// a failed transaction is accounted only with the failed flag
	s.request(strings.Replace(invite("f3", "f3"), "sip:2000@", "sip:failed@", 1)).reply(404, "t3")
	s.request(strings.Replace(invite("p4", "f4"), "sip:2000@", "sip:plain@", 1)).reply(404, "t4")
	s.request(strings.Replace(invite("p5", "f5"), "sip:2000@", "sip:plain@", 1)).reply(200, "t5")
	got = rows(t, url, "SELECT callid, sip_code, duration, setuptime, created FROM acc ORDER BY id")
	if strings.Join(got, ",") != "f3|404|0|0|<nil>,p5|200|0|0|<nil>" {
		t.Errorf("acc: %q", got)
	}
}

func TestRequestFunctionsAndExtras(t *testing.T) {
	url := newDB(t, `ALTER TABLE acc ADD COLUMN src_ip CHAR(64)`, `ALTER TABLE missed_calls ADD COLUMN src_ip CHAR(64)`)
	logs := captureLog(t)
	s := newSim(t, fmt.Sprintf(header, url)+`
modparam("acc", "extra_fields", "db: ip->src_ip")
modparam("acc", "extra_fields", "log: ip->source; ua")
route {
	$acc_extra(ip) = $si;
	$acc_extra(ua) = "sipp";
	acc_log_request("403 Destination not allowed");
	acc_db_request("404", "missed_calls");
	acc_db_request("Some comment", "acc");
	acc_evi_request("480 Later");
	sl_send_reply(403, "Forbidden");
}`)
	evs := watch(t)
	s.request(invite("r1", "f1"))
	if l := logs.find("ACC: request accounted:"); len(l) != 1 || !strings.HasSuffix(l[0],
		";method=INVITE;from_tag=f1;to_tag=;call_id=r1;code=403;reason=Destination not allowed;source=10.0.0.1;ua=sipp") {
		t.Errorf("log: %q", logs.lines)
	}
	if got := rows(t, url, "SELECT sip_code, sip_reason, src_ip FROM missed_calls"); len(got) != 1 || got[0] != "404|Not Found|10.0.0.1" {
		t.Errorf("missed_calls: %q", got)
	}
	if got := rows(t, url, "SELECT sip_code, sip_reason, src_ip FROM acc"); len(got) != 1 || got[0] != "|Some comment|10.0.0.1" {
		t.Errorf("acc: %q", got)
	}
	if e := evs.named(EventMissed); len(e) != 1 || e[0].Get("sip_code").AsString() != "480" || e[0].Get("sip_reason").AsString() != "Later" {
		t.Errorf("events: %+v", e)
	}
}

func TestDropAccounting(t *testing.T) {
	url := newDB(t)
	s := newSim(t, fmt.Sprintf(header, url)+`
route {
	do_accounting("db", "missed|failed");
	if ($rU == "nomissed") drop_accounting("db", "missed");
	if ($rU == "none") drop_accounting();
	t_relay();
}`)
	s.request(strings.Replace(invite("d1", "f1"), "sip:2000@", "sip:nomissed@", 1)).reply(486, "t1")
	s.request(strings.Replace(invite("d2", "f2"), "sip:2000@", "sip:none@", 1)).reply(486, "t2")
	if got := rows(t, url, "SELECT callid FROM missed_calls"); len(got) != 0 {
		t.Errorf("missed_calls: %q", got)
	}
	if got := rows(t, url, "SELECT callid FROM acc"); len(got) != 1 || got[0] != "d1" {
		t.Errorf("acc: %q", got)
	}
}

func TestCDRTable(t *testing.T) {
	url := newDB(t, `CREATE TABLE my_acc AS SELECT * FROM acc WHERE 0`)
	s := newSim(t, fmt.Sprintf(header, url)+`
route {
	if (has_totag()) { t_relay(); exit; }
	do_accounting("db", "cdr", "my_acc");
	t_relay();
}`)
	c := s.request(invite("c1", "f1"))
	c.reply(200, "t1")
	s.advance(10 * time.Second)
	s.request(inDialog("BYE", "c1", "t1", "f1", 1)) // the callee hangs up
	if got := rows(t, url, "SELECT callid, duration FROM my_acc"); len(got) != 1 || got[0] != "c1|10" {
		t.Errorf("my_acc: %q", got)
	}
	// an unanswered CDR call writes no CDR
	s.request(invite("c2", "f2")).reply(487, "")
	if got := rows(t, url, "SELECT count(*) FROM my_acc"); got[0] != "1" {
		t.Errorf("my_acc rows: %s", got[0])
	}
}

func TestLoadErrors(t *testing.T) {
	url := newDB(t)
	for name, script := range map[string]string{
		"aaa":      `route { do_accounting("aaa"); }`,
		"bad type": `route { do_accounting("syslog"); }`,
		"bad flag": `route { do_accounting("log", "cdr|lost"); }`,
		"aaa req":  `route { acc_aaa_request("200 OK"); }`,
		"no tag":   `route { $acc_extra(nope) = 1; }`,
	} {
		_, err := engine.Load("script.cfg", syntax.Options{ReadFile: func(string) ([]byte, error) {
			return []byte(fmt.Sprintf(header, url) + script), nil
		}})
		if err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
	_, err := engine.Load("script.cfg", syntax.Options{ReadFile: func(string) ([]byte, error) {
		return []byte(`loadmodule "acc.so"
route { do_accounting("db"); }`), nil
	}})
	if err == nil || !strings.Contains(err.Error(), "db_url") {
		t.Errorf("db without db_url: %v", err)
	}
}

func TestParse(t *testing.T) {
	for in, want := range map[string]string{
		"404 Not here": "404/Not here", "404": "404/Not Found", "Some text": "0/Some text", "": "0/Unspecified",
	} {
		c, r := parseComment(in)
		if got := fmt.Sprintf("%d/%s", c, r); got != want {
			t.Errorf("parseComment(%q) = %s, want %s", in, got, want)
		}
	}
	defs, err := parseExtras("db: a->col_a; col_b")
	if err != nil || len(defs) != 2 || defs[0] != (extraDef{"a", "col_a", beDB}) || defs[1] != (extraDef{"col_b", "col_b", beDB}) {
		t.Errorf("parseExtras: %+v %v", defs, err)
	}
	var m mask
	m.set(beLog|beDB, 1<<optCDR|1<<optMissed)
	m.drop(beLog, 1<<optMissed)
	if !m.on(optMissed, beDB) || m.on(optMissed, beLog) || !m.on(optCDR, beLog) || !m.on(optAcc, beLog) {
		t.Errorf("mask %v", m)
	}
	m.drop(allBackends, 0)
	if !m.empty() {
		t.Errorf("mask %v not empty", m)
	}
}

// eventLog collects raised events.
type eventLog struct {
	mu  sync.Mutex
	evs []events.Event
}

func watch(t testing.TB) *eventLog {
	l := &eventLog{}
	cancel := events.Subscribe(func(e events.Event) {
		l.mu.Lock()
		l.evs = append(l.evs, e)
		l.mu.Unlock()
	})
	t.Cleanup(cancel)
	return l
}

func (l *eventLog) named(name string) []events.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []events.Event
	for _, e := range l.evs {
		if e.Name == name {
			out = append(out, e)
		}
	}
	return out
}
