package frauddetection

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/modules/dialog"
	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/events"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

const schema = `CREATE TABLE fraud_detection (
    ruleid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    profileid INTEGER NOT NULL,
    prefix CHAR(64) NOT NULL,
    start_hour CHAR(5) DEFAULT '00:00' NOT NULL,
    end_hour CHAR(5) DEFAULT '23:59' NOT NULL,
    daysoftheweek CHAR(64) DEFAULT 'Mon-Sun' NOT NULL,
    cpm_warning INTEGER NOT NULL,
    cpm_critical INTEGER NOT NULL,
    call_duration_warning INTEGER NOT NULL,
    call_duration_critical INTEGER NOT NULL,
    total_calls_warning INTEGER NOT NULL,
    total_calls_critical INTEGER NOT NULL,
    concurrent_calls_warning INTEGER NOT NULL,
    concurrent_calls_critical INTEGER NOT NULL,
    sequential_calls_warning INTEGER NOT NULL,
    sequential_calls_critical INTEGER NOT NULL
)`

// newDB makes a database with OpenSIPS's fraud_detection table and the
// given extra statements.
func newDB(t testing.TB, stmts ...string) string {
	t.Helper()
	url := "sqlite://" + filepath.Join(t.TempDir(), "fraud.db")
	db, err := store.Create(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, q := range append([]string{schema,
		`CREATE TABLE version (table_name CHAR(32) NOT NULL, table_version INTEGER DEFAULT 0 NOT NULL)`,
		`INSERT INTO version VALUES ('fraud_detection', 1)`}, stmts...) {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return url
}

// rule inserts a rule: thresholds in table order (cpm w/c, duration w/c,
// total w/c, concurrent w/c, sequential w/c).
func ruleSQL(id, profile int, prefix string, th [10]int) string {
	return fmt.Sprintf(`INSERT INTO fraud_detection (ruleid, profileid, prefix, cpm_warning, cpm_critical,
		call_duration_warning, call_duration_critical, total_calls_warning, total_calls_critical,
		concurrent_calls_warning, concurrent_calls_critical, sequential_calls_warning, sequential_calls_critical)
		VALUES (%d, %d, '%s', %d, %d, %d, %d, %d, %d, %d, %d, %d, %d)`, id, profile, prefix,
		th[0], th[1], th[2], th[3], th[4], th[5], th[6], th[7], th[8], th[9])
}

// setup configures the module (and dialog) as a script load would.
func setup(t testing.TB, url string, extra map[string]string) {
	t.Helper()
	info := modules.Lookup(Name)
	p := modules.Params{}
	for _, spec := range info.Params {
		if !spec.Default.IsNull() {
			p[spec.Name] = []value.Value{spec.Default}
		}
	}
	p["db_url"] = []value.Value{value.S(url)}
	for k, v := range extra {
		p[k] = []value.Value{value.S(v)}
		if n, err := fmt.Sscan(v, new(int)); err == nil && n == 1 {
			var i int
			fmt.Sscan(v, &i)
			p[k] = []value.Value{value.SI(v, i)}
		}
	}
	apply, err := info.Configure(p)
	if err != nil {
		t.Fatalf("configure: %v", err)
	}
	apply()
}

func reset(t testing.TB) {
	ForgetAll()
	dialog.ForgetAll()
	t.Cleanup(func() {
		ForgetAll()
		dialog.ForgetAll()
	})
}

// fakeClock drives both this module's and the dialog module's clocks.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func useClock(t testing.TB, start time.Time) *fakeClock {
	c := &fakeClock{now: start}
	old := clock
	clock = c.Now
	restore := dialog.SetClock(func() int64 { return c.Now().Unix() })
	t.Cleanup(func() { clock = old; restore() })
	return c
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type host struct{ logs []string }

func (h *host) Log(_ *msgctx.Msg, _ int, text string) { h.logs = append(h.logs, text) }
func (h *host) Reply(*msgctx.Msg, int, string) error  { return nil }

var callSeq int

// fcall is one call through check_fraud and its dialog.
type fcall struct {
	m   *msgctx.Msg
	req *sip.Request
}

func checkFraud(t testing.TB, user, number string, profile int) (int, *fcall) {
	t.Helper()
	callSeq++
	text := fmt.Sprintf("INVITE sip:%s@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK%d\r\n"+
		"From: <sip:%s@example.com>;tag=f%d\r\nTo: <sip:%s@127.0.0.1>\r\nCall-ID: frd-%d\r\nCSeq: 1 INVITE\r\n"+
		"Contact: <sip:%s@10.0.0.1>\r\nContent-Length: 0\r\n\r\n", number, callSeq, user, callSeq, number, callSeq, user)
	msg, err := sip.ParseMessage([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	req := msg.(*sip.Request)
	m := &msgctx.Msg{Req: req, Host: &host{}}
	a := &modules.Args{Vals: []value.Value{value.S(user), value.S(number), value.I(profile)}, Given: []bool{true, true, true}}
	rc := callCheckFraud(m, a)
	tm.RunRouteDoneHooks(m, true)
	return rc, &fcall{m: m, req: req}
}

// answer confirms the call's dialog (200 relayed upstream).
func (c *fcall) answer() {
	res := sip.NewResponseFromRequest(c.req, 200, "OK", nil)
	res.To().Params.Add("tag", "t")
	tm.RunResponseOutHooks(c.m.Mod, c.req, 200, res)
}

// fail ends the call with a negative final reply.
func (c *fcall) fail() { tm.RunResponseOutHooks(c.m.Mod, c.req, 486, nil) }

// hangup sends the caller's BYE through the request hooks.
func (c *fcall) hangup(t testing.TB) {
	from, _ := c.req.From().Params.Get("tag")
	text := fmt.Sprintf("BYE sip:x@10.0.0.9 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKbye%s\r\n"+
		"From: <sip:a@example.com>;tag=%s\r\nTo: <sip:b@127.0.0.1>;tag=t\r\nCall-ID: %s\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
		from, from, c.req.CallID().Value())
	msg, err := sip.ParseMessage([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	tm.RunRequestHooks(&msgctx.Msg{Req: msg.(*sip.Request)})
}

func watch(t testing.TB) *[]events.Event {
	var mu sync.Mutex
	var evs []events.Event
	t.Cleanup(events.Subscribe(func(e events.Event) {
		if strings.HasPrefix(e.Name, "E_FRD_") {
			mu.Lock()
			evs = append(evs, e)
			mu.Unlock()
		}
	}))
	return &evs
}

func evString(e events.Event) string {
	return fmt.Sprintf("%s %s=%s/%s user=%s num=%s rule=%s prof=%s", e.Name, e.Get("param"), e.Get("value"),
		e.Get("threshold"), e.Get("user"), e.Get("called_number"), e.Get("rule_id"), e.Get("profile_id"))
}

var monday = time.Date(2026, 3, 2, 10, 0, 0, 0, time.Local) // a Monday, 10:00

// Each threshold kind: warning 2 and critical 3 give 1, -1, -2 for the
// first three calls (the counter includes the current call; "at or above").
func TestThresholdKinds(t *testing.T) {
	cases := []struct {
		name  string
		th    [10]int
		param string
		// how a call is placed: kept up (concurrent), hung up (total) …
		run func(t *testing.T, i int) int
	}{
		{"concurrent", [10]int{4: 0, 6: 2, 7: 3}, ParamConcurrent, func(t *testing.T, i int) int {
			rc, c := checkFraud(t, "1001", "+61612345", 1)
			c.answer()
			return rc
		}},
		{"total", [10]int{4: 2, 5: 3}, ParamTotal, func(t *testing.T, i int) int {
			rc, c := checkFraud(t, "1001", fmt.Sprintf("+6161234%d", i), 1)
			c.answer()
			c.hangup(t)
			return rc
		}},
		{"cpm", [10]int{0: 2, 1: 3}, ParamCPM, func(t *testing.T, i int) int {
			rc, c := checkFraud(t, "1001", fmt.Sprintf("+6161234%d", i), 1)
			c.fail()
			return rc
		}},
		{"sequential", [10]int{8: 2, 9: 3}, ParamSequential, func(t *testing.T, i int) int {
			rc, c := checkFraud(t, "1001", "+61612345", 1)
			c.fail()
			return rc
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reset(t)
			useClock(t, monday)
			evs := watch(t)
			setup(t, newDB(t, ruleSQL(7, 1, "+616", tc.th)), nil)
			var got []int
			for i := 0; i < 3; i++ {
				got = append(got, tc.run(t, i))
			}
			if fmt.Sprint(got) != "[1 -1 -2]" {
				t.Fatalf("return codes %v, want [1 -1 -2]", got)
			}
			if len(*evs) != 2 {
				t.Fatalf("events: %v", *evs)
			}
			w, c := evString((*evs)[0]), evString((*evs)[1])
			if w != fmt.Sprintf("E_FRD_WARNING %s=2/2 user=1001 num=%s rule=7 prof=1", tc.param, (*evs)[0].Get("called_number")) ||
				c != fmt.Sprintf("E_FRD_CRITICAL %s=3/3 user=1001 num=%s rule=7 prof=1", tc.param, (*evs)[1].Get("called_number")) {
				t.Errorf("events:\n%s\n%s", w, c)
			}
		})
	}
}

func TestConcurrentReleasedAndCPMWindow(t *testing.T) {
	reset(t)
	clk := useClock(t, monday)
	setup(t, newDB(t, ruleSQL(1, 1, "+616", [10]int{0: 3, 6: 2, 7: 3})), nil)
	_, a := checkFraud(t, "1001", "+61611", 1)
	a.answer()
	rc, b := checkFraud(t, "1001", "+61612", 1)
	b.answer()
	if rc != -1 {
		t.Fatalf("2nd concurrent: %d", rc)
	}
	a.hangup(t)
	clk.Add(61 * time.Second) // the cpm window moves on
	rc, _ = checkFraud(t, "1001", "+61613", 1)
	if rc != -1 { // concurrent back to 2 (b + this one)
		t.Fatalf("after a hangup: %d", rc)
	}
	st, ok := Lookup("1001", "+616")
	if !ok || st.Concurrent != 2 || st.Total != 3 || st.CPM != 1 || st.Sequential != 1 {
		t.Fatalf("stats %+v", st)
	}
	// another user has counters of his own
	if rc, _ := checkFraud(t, "1002", "+61612", 1); rc != 1 {
		t.Errorf("other user: %d", rc)
	}
	// a new day resets everything
	clk.Add(24 * time.Hour)
	if rc, _ := checkFraud(t, "1001", "+61614", 1); rc != 1 {
		t.Errorf("next day: %d", rc)
	}
}

func TestCallDuration(t *testing.T) {
	reset(t)
	clk := useClock(t, monday)
	evs := watch(t)
	setup(t, newDB(t, ruleSQL(3, 1, "+44", [10]int{2: 10, 3: 20})), nil)
	for _, secs := range []int{5, 15, 25} {
		rc, c := checkFraud(t, "1001", "+4420", 1)
		if rc != 1 {
			t.Fatalf("rc %d", rc)
		}
		c.answer()
		clk.Add(time.Duration(secs) * time.Second)
		c.hangup(t)
	}
	// a call that never connected raises nothing
	_, c := checkFraud(t, "1001", "+4420", 1)
	clk.Add(60 * time.Second)
	c.fail()
	var got []string
	for _, e := range *evs {
		got = append(got, evString(e))
	}
	want := []string{
		"E_FRD_WARNING call-duration=15/10 user=1001 num=+4420 rule=3 prof=1",
		"E_FRD_CRITICAL call-duration=25/20 user=1001 num=+4420 rule=3 prof=1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestMatching(t *testing.T) {
	reset(t)
	clk := useClock(t, monday)
	url := newDB(t,
		`ALTER TABLE fraud_detection ADD COLUMN user_group CHAR(64) DEFAULT '' NOT NULL`,
		ruleSQL(1, 1, "+61", [10]int{6: 5, 7: 9}),
		ruleSQL(2, 1, "+616", [10]int{6: 1, 7: 9}), // longer prefix wins
		ruleSQL(3, 1, "re:^\\+88[0-9]{3}$", [10]int{6: 1, 7: 9}),
		ruleSQL(4, 1, "grp:HIGHRISK", [10]int{6: 1, 7: 9}),
		ruleSQL(5, 2, "+1", [10]int{6: 1, 7: 9}),
		`UPDATE fraud_detection SET start_hour='22:00', end_hour='06:00' WHERE ruleid=5`,
		ruleSQL(6, 3, "+1", [10]int{6: 1, 7: 9}),
		`UPDATE fraud_detection SET daysoftheweek='Sat-Sun' WHERE ruleid=6`,
		ruleSQL(8, 4, "+33", [10]int{6: 1, 7: 9}),
		`UPDATE fraud_detection SET user_group='wholesale' WHERE ruleid=8`,
		`CREATE TABLE fraud_dest_groups (id INTEGER PRIMARY KEY, groupname CHAR(64), prefix CHAR(64))`,
		`INSERT INTO fraud_dest_groups (groupname, prefix) VALUES ('HIGHRISK', '+232'), ('HIGHRISK', '+252'), ('HIGHRISK', 're:^\+99')`,
		`CREATE TABLE fraud_user_groups (id INTEGER PRIMARY KEY, groupname CHAR(64), username CHAR(64))`,
		`INSERT INTO fraud_user_groups (groupname, username) VALUES ('wholesale', 'carrier1')`,
	)
	setup(t, url, nil)
	for _, tc := range []struct {
		user, number string
		profile      int
		rc           int
		key          string
	}{
		{"u", "+61712", 1, 1, "+61"},
		{"u", "+61612", 1, -1, "+616"},
		{"u", "+88123", 1, -1, `re:^\+88[0-9]{3}$`},
		{"u", "+881234", 1, 2, ""},
		{"u", "+23255", 1, -1, "grp:HIGHRISK"},
		{"u", "+25200", 1, -1, "grp:HIGHRISK"}, // same group: same counters
		{"u", "+99000", 1, -1, "grp:HIGHRISK"},
		{"u", "+4412", 1, 2, ""},
		{"u", "+1555", 2, 2, ""}, // 22:00-06:00 only
		{"u", "+1555", 3, 2, ""}, // weekends only
		{"u", "+3312", 4, 2, ""}, // not a wholesale user
		{"carrier1", "+3312", 4, -1, "+33"},
	} {
		rc, _ := checkFraud(t, tc.user, tc.number, tc.profile)
		if rc != tc.rc {
			t.Errorf("%s → %s (profile %d): rc %d, want %d", tc.user, tc.number, tc.profile, rc, tc.rc)
		}
		if tc.key != "" {
			if _, ok := Lookup(tc.user, tc.key); !ok {
				t.Errorf("%s → %s: no stats under %q", tc.user, tc.number, tc.key)
			}
		}
	}
	if st, _ := Lookup("u", "grp:HIGHRISK"); st.Concurrent != 3 {
		t.Errorf("group counters %+v", st)
	}
	clk.Add(13 * time.Hour) // 23:00 Monday
	if rc, _ := checkFraud(t, "u", "+1555", 2); rc != -1 {
		t.Errorf("night rule: %d", rc)
	}
	clk.Add(5 * 24 * time.Hour) // Saturday
	if rc, _ := checkFraud(t, "u", "+1555", 3); rc != -1 {
		t.Errorf("weekend rule: %d", rc)
	}
}

func TestPersistenceAndMI(t *testing.T) {
	reset(t)
	useClock(t, monday)
	url := newDB(t, ruleSQL(1, 1, "+616", [10]int{4: 10, 5: 20, 6: 2, 7: 3}))
	dlgApply := configureDialog(t, url)
	dlgApply()
	setup(t, url, nil)
	var up []*fcall
	for i := 0; i < 2; i++ {
		_, c := checkFraud(t, "1001", "+61612", 1)
		c.answer()
		up = append(up, c)
	}
	_, c := checkFraud(t, "1001", "+61612", 1)
	c.answer()
	c.hangup(t)
	st, _ := Lookup("1001", "+616")
	if st.Total != 3 || st.Concurrent != 2 {
		t.Fatalf("before restart %+v", st)
	}
	dialog.Flush()
	Flush()
	ForgetAll()
	dialog.ForgetAll()
	if _, ok := Lookup("1001", "+616"); ok {
		t.Fatal("not forgotten")
	}
	// restart: dialog first, then fraud (and the other way round below)
	configureDialog(t, url)()
	setup(t, url, nil)
	st, ok := Lookup("1001", "+616")
	if !ok || st.Total != 3 || st.Concurrent != 2 || st.Sequential != 3 {
		t.Fatalf("after restart %+v", st)
	}
	if rc, _ := checkFraud(t, "1001", "+61612", 1); rc != -2 { // 3 concurrent now
		t.Errorf("after restart rc %d", rc)
	}
	// the restored dialogs release their calls
	dialog.Flush()
	Flush()
	ForgetAll()
	dialog.ForgetAll()
	setup(t, url, nil) // fraud first this time
	configureDialog(t, url)()
	if st, _ := Lookup("1001", "+616"); st.Concurrent != 2 || st.Total != 4 {
		t.Fatalf("second restart %+v", st)
	}
	n := 0
	dialog.ForEach(func(d *dialog.Dialog) bool {
		if d.CallID() == up[0].req.CallID().Value() {
			dialog.EndDialog(fmt.Sprint(d.ID()), "")
		}
		n++
		return true
	})
	if st, _ := Lookup("1001", "+616"); st.Concurrent != 1 || n != 2 {
		t.Fatalf("after ending a restored dialog %+v (%d dialogs)", st, n)
	}
	res, err := miShowStats(map[string]any{"user": "1001", "prefix": "+616"})
	if err != nil || fmt.Sprint(res) != "map[concurrent_calls:1 cpm:4 seq_calls:4 total_calls:4]" {
		t.Errorf("show_fraud_stats = %v, %v", res, err)
	}
	if _, err := miShowStats(map[string]any{"user": "nobody", "prefix": "+616"}); err == nil {
		t.Error("no error for unknown user")
	}
	db, _ := store.Open(url)
	db.Exec(context.Background(), ruleSQL(2, 1, "+44", [10]int{6: 1, 7: 1}))
	if rc, _ := checkFraud(t, "1001", "+4412", 1); rc != 2 {
		t.Errorf("before reload %d", rc)
	}
	if _, err := miReload(nil); err != nil {
		t.Fatal(err)
	}
	if rc, _ := checkFraud(t, "1001", "+4412", 1); rc != -2 {
		t.Errorf("after reload %d", rc)
	}
}

func configureDialog(t testing.TB, url string) func() {
	t.Helper()
	info := modules.Lookup(dialog.Name)
	p := modules.Params{}
	for _, spec := range info.Params {
		if !spec.Default.IsNull() {
			p[spec.Name] = []value.Value{spec.Default}
		}
	}
	p["db_mode"] = []value.Value{value.I(1)}
	p["db_url"] = []value.Value{value.S(url)}
	apply, err := info.Configure(p)
	if err != nil {
		t.Fatal(err)
	}
	return apply
}

func TestLoadErrors(t *testing.T) {
	reset(t)
	info := modules.Lookup(Name)
	for _, tc := range []struct {
		stmts []string
		want  string
	}{
		{[]string{`UPDATE version SET table_version = 2`}, "version 2"},
		{[]string{ruleSQL(1, 1, "re:(", [10]int{}), `SELECT 1`}, "bad regular expression"},
		{[]string{ruleSQL(1, 1, "grp:NOPE", [10]int{})}, "no destination group"},
		{[]string{ruleSQL(1, 1, "+1", [10]int{}), `UPDATE fraud_detection SET daysoftheweek='Mon-Xyz'`}, "unknown week day"},
		{[]string{ruleSQL(1, 1, "+1", [10]int{}), `UPDATE fraud_detection SET start_hour='25:00'`}, "want HH:MM"},
	} {
		url := newDB(t, tc.stmts...)
		p := modules.Params{"db_url": {value.S(url)}}
		for _, spec := range info.Params {
			if _, ok := p[spec.Name]; !ok && !spec.Default.IsNull() {
				p[spec.Name] = []value.Value{spec.Default}
			}
		}
		if _, err := info.Configure(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.stmts, err, tc.want)
		}
	}
	if _, err := info.Configure(modules.Params{}); err == nil {
		t.Error("no db_url accepted")
	}
	_ = check.ArgStr
}

// BenchmarkCheckFraud runs check_fraud with 100 000 live dialogs (1 000
// users × 100 calls up each, the call counted, then released).
func BenchmarkCheckFraud(b *testing.B) {
	reset(b)
	setup(b, newDB(b, ruleSQL(1, 1, "+616", [10]int{0: 1 << 30, 1: 1 << 30, 4: 1 << 30, 5: 1 << 30, 6: 1 << 30, 7: 1 << 30})), nil)
	for i := 0; i < 100000; i++ {
		_, c := checkFraud(b, fmt.Sprintf("u%04d", i%1000), "+61612345", 1)
		c.answer()
	}
	if dialog.Count() != 100000 {
		b.Fatalf("%d dialogs", dialog.Count())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rc, _, s, itv, _ := countCall("u0042", "+61612345", 1)
		if rc != 1 {
			b.Fatal(rc)
		}
		s.mu.Lock()
		if s.interval == itv {
			s.conc--
		}
		s.mu.Unlock()
	}
}
