package dispatcher

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/internal/modtest"
	"github.com/sipedge/sipedge/modules"
	_ "github.com/sipedge/sipedge/modules/core"
	_ "github.com/sipedge/sipedge/modules/sl"
	_ "github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/events"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/scripttest"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

// params are the module's defaults plus kv.
func params(kv ...any) modules.Params {
	p := modules.Params{}
	for _, spec := range modules.Lookup(Name).Params {
		if !spec.Default.IsNull() {
			p[spec.Name] = []value.Value{spec.Default}
		}
	}
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		switch v := kv[i+1].(type) {
		case int:
			p[k] = []value.Value{value.I(v)}
		case string:
			if k == "destination" || k == "partition" {
				p[k] = append(p[k], value.S(v))
			} else {
				p[k] = []value.Value{value.S(v)}
			}
		}
	}
	return p
}

func apply(t *testing.T, kv ...any) {
	t.Helper()
	fn, err := configure(params(kv...))
	if err != nil {
		t.Fatal(err)
	}
	fn()
}

// reset forgets the live configuration so no state is inherited.
func reset() {
	cur.Store(&config{parts: map[string]*partition{}, threshold: 3, okCodes: map[int]bool{200: true}})
}

func invite(t *testing.T, callID string) *msgctx.Msg {
	t.Helper()
	m, _ := modtest.NewMsg(t, strings.Replace(modtest.InviteText, "a84b4c76e66710@pc33.example.org", callID, 1))
	return m
}

func TestParseList(t *testing.T) {
	ds, err := parseList(strings.NewReader(`
# gateways
1 sip:10.0.0.1:5060 weight=2 priority=5 attrs="a=1;b two" description=gw1
1 sip:gw2.example.net;transport=tcp state=p socket=udp:127.0.0.1:5060
2 sips:10.0.0.3 1
`), "list")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 3 {
		t.Fatalf("%d destinations", len(ds))
	}
	if d := ds[0]; d.Weight != 2 || d.Priority != 5 || d.Attrs != "a=1;b two" || d.Description != "gw1" || d.port != 5060 || d.DstURI != "sip:10.0.0.1:5060" {
		t.Errorf("first: %+v", d)
	}
	if d := ds[1]; d.state != Probing || d.port != 5060 || d.Socket != "udp:127.0.0.1:5060" {
		t.Errorf("second: %+v", d)
	}
	if d := ds[2]; d.state != Inactive || d.port != 5061 {
		t.Errorf("third (1.x flags column): %+v", d)
	}
	for _, bad := range []string{"x sip:a", "1", "1 http://x", "1 sip:a weight=x", "1 sip:a state=q", "1 sip:a color=red", `1 sip:a attrs="x`} {
		if _, err := parseList(strings.NewReader(bad), "list"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestPriorityOrder(t *testing.T) {
	reset()
	apply(t, "destination", "1 sip:10.0.0.1 priority=0", "destination", "1 sip:10.0.0.2 priority=10",
		"destination", "1 sip:10.0.0.3 priority=0", "destination", "2 sip:10.0.0.9")
	var got []string
	for _, d := range mustList(t) {
		got = append(got, fmt.Sprintf("%d %s", d.Set, d.URI))
	}
	want := "2 sip:10.0.0.9,1 sip:10.0.0.2,1 sip:10.0.0.1,1 sip:10.0.0.3"
	if strings.Join(got, ",") != want {
		t.Errorf("order %v, want %s", got, want)
	}
}

func mustList(t *testing.T) []DestInfo {
	t.Helper()
	l, err := List("")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRoundRobinWeights(t *testing.T) {
	reset()
	apply(t, "destination", "1 sip:a.test:5060 weight=2", "destination", "1 sip:b.test:5060", "destination", "1 sip:c.test:5060")
	var got []string
	for i := 0; i < 8; i++ {
		m := invite(t, "rr")
		if rc := modtest.Call(t, Name, m, "ds_select_dst", 1, AlgRoundRobin); rc != 1 {
			t.Fatalf("rc %d", rc)
		}
		got = append(got, strings.TrimSuffix(strings.TrimPrefix(m.DstURI, "sip:"), ".test:5060"))
	}
	if s := strings.Join(got, ""); s != "aabcaabc" {
		t.Errorf("weighted round robin %s, want aabcaabc", s)
	}
	// an inactive destination is skipped
	p, _ := lookupPartition("")
	s, d := p.d.Load().find(1, "sip:b.test:5060")
	p.setState(s, d, Inactive, false)
	got = nil
	for i := 0; i < 6; i++ {
		m := invite(t, "rr")
		modtest.Call(t, Name, m, "ds_select_dst", 1, AlgRoundRobin)
		got = append(got, strings.TrimSuffix(strings.TrimPrefix(m.DstURI, "sip:"), ".test:5060"))
	}
	if s := strings.Join(got, ""); strings.Contains(s, "b") {
		t.Errorf("inactive destination chosen: %s", s)
	}
}

func TestHashAlgorithms(t *testing.T) {
	reset()
	apply(t, "destination", "1 sip:10.0.0.1", "destination", "1 sip:10.0.0.2", "destination", "1 sip:10.0.0.3")
	for _, alg := range []int{AlgCallID, AlgFrom, AlgTo, AlgRURI} {
		first := ""
		for i := 0; i < 5; i++ {
			m := invite(t, "same-call")
			if rc := modtest.Call(t, Name, m, "ds_select_dst", 1, alg); rc != 1 {
				t.Fatalf("alg %d rc %d", alg, rc)
			}
			if first == "" {
				first = m.DstURI
			} else if m.DstURI != first {
				t.Errorf("alg %d not stable: %s then %s", alg, first, m.DstURI)
			}
		}
	}
	// different Call-IDs spread over the set
	seen := map[string]bool{}
	for i := 0; i < 60; i++ {
		m := invite(t, fmt.Sprintf("call-%d", i))
		modtest.Call(t, Name, m, "ds_select_dst", 1, AlgCallID)
		seen[m.DstURI] = true
	}
	if len(seen) != 3 {
		t.Errorf("Call-ID hash used %d of 3 destinations", len(seen))
	}
	// first available, and random
	m := invite(t, "x")
	modtest.Call(t, Name, m, "ds_select_dst", 1, AlgFirst)
	if m.DstURI != "sip:10.0.0.1" {
		t.Errorf("alg 8 chose %s", m.DstURI)
	}
	if rc := modtest.Call(t, Name, invite(t, "x"), "ds_select_dst", 1, AlgRandom); rc != 1 {
		t.Errorf("random rc %d", rc)
	}
	// hash stays on the active ones when its candidate is down
	p, _ := lookupPartition("")
	for i := 0; i < 30; i++ {
		m := invite(t, fmt.Sprintf("c%d", i))
		modtest.Call(t, Name, m, "ds_select_dst", 1, AlgCallID)
		s, d := p.d.Load().find(1, m.DstURI)
		p.setState(s, d, Inactive, false)
		m2 := invite(t, fmt.Sprintf("c%d", i))
		if rc := modtest.Call(t, Name, m2, "ds_select_dst", 1, AlgCallID); rc != 1 || m2.DstURI == m.DstURI {
			t.Fatalf("rehash after inactive: %s (rc %d)", m2.DstURI, rc)
		}
		p.setState(s, d, Active, false)
	}
	if rc := modtest.Call(t, Name, invite(t, "x"), "ds_select_dst", 7, 0); rc != -1 {
		t.Errorf("unknown set: rc %d", rc)
	}
}

func TestFailover(t *testing.T) {
	reset()
	apply(t, "destination", "1 sip:10.0.0.1", "destination", "1 sip:10.0.0.2", "destination", "1 sip:10.0.0.3 state=i",
		"destination", "1 sip:10.0.0.4", "destination", "1 sip:backup.test")
	m := invite(t, "f")
	if rc := modtest.Call(t, Name, m, "ds_select_dst", 1, AlgFirst, "fd"); rc != 1 {
		t.Fatal(rc)
	}
	var seq []string
	for {
		seq = append(seq, m.DstURI)
		if modtest.Call(t, Name, m, "ds_next_dst") != 1 {
			break
		}
	}
	want := "sip:10.0.0.1 sip:10.0.0.2 sip:10.0.0.4 sip:backup.test"
	if got := strings.Join(seq, " "); got != want {
		t.Errorf("failover %s\n want %s", got, want)
	}
	// max_res
	m = invite(t, "f")
	modtest.Call(t, Name, m, "ds_select_dst", 1, AlgFirst, "f", "", 2)
	n := 1
	for modtest.Call(t, Name, m, "ds_next_dst") == 1 {
		n++
	}
	if n != 2 {
		t.Errorf("max_res 2: %d destinations", n)
	}
	// without f there is nothing to fail over to
	m = invite(t, "f")
	modtest.Call(t, Name, m, "ds_select_dst", 1, AlgFirst)
	if modtest.Call(t, Name, m, "ds_next_dst") != -1 {
		t.Error("ds_next_dst without the f flag")
	}
	// ds_select_domain rewrites the R-URI
	m = invite(t, "d")
	modtest.Call(t, Name, m, "ds_select_domain", 1, AlgFirst, "f")
	if got := m.Req.Recipient.String(); got != "sip:alice@10.0.0.1;transport=udp" || m.DstURI != "" {
		t.Errorf("R-URI %s, $du %q", got, m.DstURI)
	}
	modtest.Call(t, Name, m, "ds_next_domain")
	if got := m.Req.Recipient.String(); got != "sip:alice@10.0.0.2;transport=udp" {
		t.Errorf("next R-URI %s", got)
	}
	f := modtest.Fn(t, Name, "ds_select_dst")
	if _, err := modtest.Fixup(t, f, modtest.CI(1), modtest.CI(0), modtest.CS("fx")); err == nil {
		t.Error("bad flag accepted")
	}
	if fl, err := ParseFlags("fUsD M 3"); err != nil || !fl.Failover || !fl.UserOnly || !fl.UseDefault || fl.MaxResults != 3 {
		t.Errorf("2.x flags: %+v %v", fl, err)
	}
}

func TestMarkAndProbe(t *testing.T) {
	reset()
	apply(t, "destination", "1 sip:10.0.0.1", "destination", "1 sip:10.0.0.2", "ds_probing_threshold", 2)
	var evs []events.Event
	var mu sync.Mutex
	unsub := events.Subscribe(func(e events.Event) {
		if e.Name == "E_DISPATCHER_STATUS" {
			mu.Lock()
			evs = append(evs, e)
			mu.Unlock()
		}
	})
	defer unsub()
	state := func(uri string) State {
		for _, d := range mustList(t) {
			if d.URI == uri {
				return d.State
			}
		}
		return 99
	}
	m := invite(t, "m")
	modtest.Call(t, Name, m, "ds_select_dst", 1, AlgFirst, "f")
	modtest.Call(t, Name, m, "ds_mark_dst", "p")
	if state("sip:10.0.0.1") != Active {
		t.Error("probing before the threshold")
	}
	modtest.Call(t, Name, m, "ds_mark_dst", "p")
	if state("sip:10.0.0.1") != Probing {
		t.Error("not probing at the threshold")
	}
	modtest.Call(t, Name, m, "ds_next_dst")
	modtest.Call(t, Name, m, "ds_mark_dst")
	if state("sip:10.0.0.2") != Inactive {
		t.Error("ds_mark_dst() did not make it inactive")
	}
	if rc := modtest.Call(t, Name, invite(t, "z"), "ds_select_dst", 1, AlgFirst); rc != -1 {
		t.Errorf("select with no usable destination: %d", rc)
	}
	if n, _ := Count("", 1, "ip"); n != 2 {
		t.Errorf("ds_count ip = %d", n)
	}

	// a probe round: only the probing one is probed; its 200 revives it
	var probed []string
	var done []func(int)
	sendProbe = func(req *sip.Request, cb func(int)) error {
		probed = append(probed, req.Recipient.String()+" "+string(req.Method)+" "+req.From().Address.String())
		done = append(done, cb)
		return nil
	}
	defer func() { sendProbe = func(*sip.Request, func(int)) error { return nil } }()
	if n := ProbeOnce(); n != 1 || probed[0] != "sip:10.0.0.1 OPTIONS sip:dispatcher@localhost" {
		t.Fatalf("probed %v", probed)
	}
	done[0](200)
	if state("sip:10.0.0.1") != Active {
		t.Error("200 to a probe did not make it active")
	}
	mu.Lock()
	var st []string
	for _, e := range evs {
		st = append(st, e.Get("address").AsString()+"="+e.Get("status").AsString())
	}
	mu.Unlock()
	if got := strings.Join(st, " "); got != "sip:10.0.0.1=inactive sip:10.0.0.2=inactive sip:10.0.0.1=active" {
		t.Errorf("events: %s", got)
	}

	// probing mode 1: every non-inactive destination; failures count
	reset()
	apply(t, "destination", "1 sip:10.0.0.1", "destination", "1 sip:10.0.0.2 state=i", "ds_probing_mode", 1,
		"ds_probing_threshold", 1, "options_reply_codes", "403,501")
	probed, done = nil, nil
	if n := ProbeOnce(); n != 1 {
		t.Fatalf("mode 1 probed %v", probed)
	}
	done[0](408)
	if state("sip:10.0.0.1") != Probing {
		t.Error("a timed-out probe in mode 1 did not set probing")
	}
	probed, done = nil, nil
	ProbeOnce()
	done[0](501)
	if state("sip:10.0.0.1") != Active {
		t.Error("options_reply_codes reply did not revive it")
	}
}

func TestInListAndCount(t *testing.T) {
	reset()
	apply(t, "destination", "1 sip:10.0.0.1:5070", "destination", "2 sip:10.0.0.2 state=p", "destination", "2 sip:[2001:db8::1]:5062")
	for _, tc := range []struct {
		ip         string
		port, set  int
		activeOnly bool
		want       bool
	}{
		{"10.0.0.1", 5070, -1, false, true},
		{"10.0.0.1", 0, 1, false, true},
		{"10.0.0.1", 5060, -1, false, false},
		{"10.0.0.1", 5070, 2, false, false},
		{"10.0.0.2", 5060, 2, false, true},
		{"10.0.0.2", 5060, 2, true, false},
		{"2001:db8::1", 5062, -1, false, true},
		{"10.0.0.9", 0, -1, false, false},
	} {
		if got, err := InList("", tc.ip, tc.port, tc.set, tc.activeOnly); err != nil || got != tc.want {
			t.Errorf("InList(%s:%d set %d active %v) = %v, %v", tc.ip, tc.port, tc.set, tc.activeOnly, got, err)
		}
	}
	m := invite(t, "x")
	m.Src = msgctx.Addr{IP: "10.0.0.1", Port: 5070}
	if rc := modtest.Call(t, Name, m, "ds_is_in_list", "10.0.0.1", 5070); rc != 1 {
		t.Errorf("ds_is_in_list rc %d", rc)
	}
	if rc := modtest.Call(t, Name, m, "ds_is_in_list", "10.0.0.2", 0, 2, "", 1); rc != -1 {
		t.Errorf("active_only rc %d", rc)
	}
	rec := &modtest.Recorder{Name: "var"}
	if rc := modtest.Call(t, Name, m, "ds_count", 2, "a", rec.Ref()); rc != 1 || rec.Vals[0].AsString() != "1" {
		t.Errorf("ds_count a = %v (rc %d)", rec.Vals, rc)
	}
	if rc := modtest.Call(t, Name, m, "ds_count", 2, "ap", rec.Ref()); rc != 1 || rec.Vals[1].AsString() != "2" {
		t.Errorf("ds_count ap = %v (rc %d)", rec.Vals, rc)
	}
}

func TestMI(t *testing.T) {
	reset()
	apply(t, "destination", "1 sip:10.0.0.1 weight=3 attrs=x description=one", "destination", "1 sip:10.0.0.2")
	out, err := miList(map[string]any{"full": 1})
	if err != nil {
		t.Fatal(err)
	}
	parts := out.(map[string]any)["PARTITIONS"].([]any)
	set := parts[0].(map[string]any)["SETS"].([]any)[0].(map[string]any)
	d0 := set["Destinations"].([]any)[0].(map[string]any)
	if parts[0].(map[string]any)["name"] != "default" || set["id"] != 1 || d0["URI"] != "sip:10.0.0.1" || d0["state"] != "Active" ||
		d0["weight"] != 3 || d0["attr"] != "x" || d0["description"] != "one" {
		t.Errorf("ds_list: %v", out)
	}
	if _, err := miSetState(map[string]any{"state": "i", "group": "1", "address": "sip:10.0.0.2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := miSetState(map[string]any{"state": "i", "group": "default:1", "address": "sip:10.0.0.9"}); err == nil {
		t.Error("unknown address accepted")
	}
	if n, _ := Count("", 1, "i"); n != 1 {
		t.Errorf("inactive after ds_set_state: %d", n)
	}
	if _, err := miReload(map[string]any{}); err != nil {
		t.Fatal(err)
	}
	if n, _ := Count("", 1, "i"); n != 1 {
		t.Error("ds_reload lost the state")
	}
}

func newDB(t *testing.T) (string, *store.DB) {
	t.Helper()
	u := "sqlite://" + filepath.Join(t.TempDir(), "sipedge.db")
	db, err := store.Create(u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	if err := db.Init(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range Schema {
		if _, err := db.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	return u, db
}

func TestDatabase(t *testing.T) {
	reset()
	u, db := newDB(t)
	ctx := context.Background()
	for _, r := range []string{
		`INSERT INTO dispatcher (setid, destination, state, weight, priority, attrs, description) VALUES (1, 'sip:10.0.0.1:5060', 0, '1', 0, 'a', 'gw1')`,
		`INSERT INTO dispatcher (setid, destination, state, weight, priority) VALUES (1, 'sip:10.0.0.2:5060', 1, '2', 0)`,
	} {
		if _, err := db.Exec(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	apply(t, "db_url", u)
	l := mustList(t)
	if len(l) != 2 || l[1].State != Inactive || l[1].Weight != 2 || l[0].Description != "gw1" {
		t.Fatalf("loaded %+v", l)
	}
	// a state change is written back
	if _, err := miSetState(map[string]any{"state": "a", "group": "1", "address": "sip:10.0.0.2:5060"}); err != nil {
		t.Fatal(err)
	}
	var st int
	for i := 0; i < 100; i++ {
		r, _ := db.Query(ctx, `SELECT state FROM dispatcher WHERE destination = 'sip:10.0.0.2:5060'`)
		if r.Next() {
			r.Scan(&st)
		}
		r.Close()
		if st == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st != 0 {
		t.Errorf("state column = %d after ds_set_state a", st)
	}
	// ds_reload sees a new row
	if _, err := db.Exec(ctx, `INSERT INTO dispatcher (setid, destination) VALUES (2, 'sip:10.0.0.3')`); err != nil {
		t.Fatal(err)
	}
	if err := Reload(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if len(mustList(t)) != 3 {
		t.Error("ds_reload did not load the new row")
	}
	// errors: a partition without a table, bad modparams
	for name, p := range map[string]modules.Params{
		"no source": params(),
		"attrs_avp": params("destination", "1 sip:a", "attrs_avp", "$avp(attrs)"),
		"bad from":  params("destination", "1 sip:a", "ds_ping_from", "nope"),
		"bad codes": params("destination", "1 sip:a", "options_reply_codes", "20x"),
		"bad part":  params("destination", "1 sip:a", "partition", "p2 db_url="+u),
		"no table":  params("partition", "p2: db_url="+u+"; table_name=other"),
		"bad mode":  params("destination", "1 sip:a", "ds_probing_mode", 3),
		"hash_pvar": params("destination", "1 sip:a", "hash_pvar", "$var(x)"),
		"bad dest":  params("destination", "1 mailto:x"),
		"dup part":  params("db_url", u, "partition", "default: db_url="+u),
	} {
		if _, err := configure(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// a second partition
	reset()
	apply(t, "partition", "gws: db_url="+u+"; table_name=dispatcher")
	if _, err := List("gws"); err != nil {
		t.Fatal(err)
	}
	m := invite(t, "p")
	if rc := modtest.Call(t, Name, m, "ds_select_dst", 2, 0, "", "gws"); rc != 1 || m.DstURI != "sip:10.0.0.3" {
		t.Errorf("partition select: %s rc %d", m.DstURI, rc)
	}
	if rc := modtest.Call(t, Name, m, "ds_select_dst", 2, 0); rc != -1 {
		t.Errorf("no default partition: rc %d", rc)
	}
}

func TestHashPVar(t *testing.T) {
	reset()
	apply(t, "destination", "1 sip:10.0.0.1", "destination", "1 sip:10.0.0.2", "hash_pvar", "$fU@$ci")
	a, b := invite(t, "hp"), invite(t, "hp")
	modtest.Call(t, Name, a, "ds_select_dst", 1, AlgHashPVar)
	modtest.Call(t, Name, b, "ds_select_dst", 1, AlgHashPVar)
	if a.DstURI == "" || a.DstURI != b.DstURI {
		t.Errorf("hash_pvar: %q %q", a.DstURI, b.DstURI)
	}
}

func TestFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txtar")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			reset()
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			res, err := scripttest.Run(f, data)
			if err != nil {
				t.Fatal(err)
			}
			if !res.OK() {
				t.Errorf("--- want\n%s--- got\n%s", res.Want, res.Got)
			}
		})
	}
}
