package usrloc

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

// resetMemory forgets every table, as a restart would.
func resetMemory() {
	domainsMu.Lock()
	domains = map[string]*Domain{}
	domainsMu.Unlock()
}

func newDB(t testing.TB) string {
	t.Helper()
	u := "sqlite://" + filepath.Join(t.TempDir(), "ul.db")
	db, err := store.Create(u)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d, err := store.Open(u); err == nil {
			d.Close()
		}
	})
	return u
}

func setConfig(t testing.TB, params map[string]value.Value) {
	t.Helper()
	p := modules.Params{}
	for _, s := range modules.Lookup(Name).Params {
		if !s.Default.IsNull() {
			p[s.Name] = []value.Value{s.Default}
		}
	}
	for k, v := range params {
		p[k] = []value.Value{v}
	}
	apply, err := configure(p)
	if err != nil {
		t.Fatal(err)
	}
	old := cur.Load()
	cur.Store(func() *config { apply(); return cur.Load() }())
	t.Cleanup(func() { cur.Store(old); resetMemory() })
}

// register adds or refreshes a binding the way registrar does.
func register(t testing.TB, d *Domain, aor, uri, callid string, cseq int, expires int64, q int) []Contact {
	t.Helper()
	out, err := d.Update(aor, false, func(cs []Contact) ([]Contact, error) {
		for i := range cs {
			if cs[i].URI == uri {
				if expires == 0 {
					return append(cs[:i], cs[i+1:]...), nil
				}
				cs[i].CallID, cs[i].CSeq, cs[i].Expires, cs[i].LastModified = callid, cseq, clock()+expires, clock()
				return cs, nil
			}
		}
		if expires == 0 {
			return cs, nil
		}
		return append(cs, Contact{URI: uri, CallID: callid, CSeq: cseq, Expires: clock() + expires, Q: q,
			LastModified: clock(), Methods: -1, Received: "sip:198.51.100.7:5070", Socket: "udp:192.0.2.1:5060", UserAgent: "ua"}), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func uris(cs []Contact) string {
	var s []string
	for _, c := range cs {
		s = append(s, c.URI)
	}
	return strings.Join(s, " ")
}

func TestModes(t *testing.T) {
	for _, mode := range []int{0, 1, 2, 3} {
		t.Run([]string{"memory", "write-through", "write-back", "db-only"}[mode], func(t *testing.T) {
			params := map[string]value.Value{"db_mode": value.I(mode)}
			if mode != 0 {
				params["db_url"] = value.S(newDB(t))
			}
			setConfig(t, params)
			var now int64 = 1_700_000_000
			clock = func() int64 { return now }
			defer func() { clock = defaultClock }()
			d := GetDomain("location")
			register(t, d, "alice@example.com", "sip:alice@10.0.0.1", "c1", 1, 3600, 500)
			now++
			register(t, d, "alice@example.com", "sip:alice@10.0.0.2", "c2", 1, 60, 500)
			register(t, d, "alice@example.com", "sip:alice@10.0.0.3", "c3", 1, 120, 900)
			cs, err := d.Lookup("alice@example.com")
			if err != nil {
				t.Fatal(err)
			}
			// q first, then the most recent.
			if got := uris(cs); got != "sip:alice@10.0.0.3 sip:alice@10.0.0.2 sip:alice@10.0.0.1" {
				t.Fatalf("order: %s", got)
			}
			// Refresh, unregister one.
			register(t, d, "alice@example.com", "sip:alice@10.0.0.1", "c1", 2, 3600, 500)
			register(t, d, "alice@example.com", "sip:alice@10.0.0.3", "c3", 2, 0, 0)
			cs, _ = d.Lookup("alice@example.com")
			if got := uris(cs); got != "sip:alice@10.0.0.1 sip:alice@10.0.0.2" {
				t.Fatalf("after refresh/unregister: %s", got)
			}
			if cs[0].CSeq != 2 || cs[0].Received != "sip:198.51.100.7:5070" || cs[0].Socket != "udp:192.0.2.1:5060" || cs[0].Methods != -1 || cs[0].Q != 500 {
				t.Errorf("fields: %+v", cs[0])
			}
			// Expiry: 10.0.0.2 had 60 s.
			now += 61
			cs, _ = d.Lookup("alice@example.com")
			if got := uris(cs); got != "sip:alice@10.0.0.1" {
				t.Fatalf("after expiry: %s", got)
			}
			if err := Timer(); err != nil {
				t.Fatal(err)
			}
			if mode != 0 {
				// The database matches: one row for alice.
				c := cur.Load()
				ctx := context.Background()
				rows, err := c.db.Query(ctx, `SELECT count(*), max(cseq), max(received) FROM location WHERE username = 'alice' AND domain = 'example.com'`)
				if err != nil {
					t.Fatal(err)
				}
				var n, cseq int
				var rcv string
				rows.Next()
				rows.Scan(&n, &cseq, &rcv)
				rows.Close()
				if n != 1 || cseq != 2 || rcv != "sip:198.51.100.7:5070" {
					t.Errorf("location rows: n=%d cseq=%d received=%q", n, cseq, rcv)
				}
			}
			// Restart: memory is gone and the database is closed and
			// reopened; modes 1-3 get the binding back.
			resetMemory()
			if mode != 0 {
				if err := cur.Load().db.Close(); err != nil {
					t.Fatal(err)
				}
				setConfig(t, params)
			}
			cs, err = GetDomain("location").Lookup("alice@example.com")
			if err != nil {
				t.Fatal(err)
			}
			want := "sip:alice@10.0.0.1"
			if mode == 0 {
				want = ""
			}
			if got := uris(cs); got != want {
				t.Errorf("after restart: %q, want %q", got, want)
			}
			if mode != 0 && len(cs) == 1 && (cs[0].CSeq != 2 || cs[0].Q != 500 || cs[0].LastModified != now-61 || cs[0].Methods != -1) {
				t.Errorf("reloaded fields: %+v", cs[0])
			}
			// And the reloaded binding is updated, not duplicated.
			register(t, GetDomain("location"), "alice@example.com", "sip:alice@10.0.0.1", "c1", 3, 3600, 500)
			if err := Flush(); err != nil {
				t.Fatal(err)
			}
			resetMemory()
			cs, _ = GetDomain("location").Lookup("alice@example.com")
			if mode != 0 && (len(cs) != 1 || cs[0].CSeq != 3) {
				t.Errorf("after second restart: %+v", cs)
			}
		})
	}
}

var defaultClock = clock

func TestWriteBackNeedsFlush(t *testing.T) {
	u := newDB(t)
	setConfig(t, map[string]value.Value{"db_mode": value.I(2), "db_url": value.S(u)})
	d := GetDomain("location")
	register(t, d, "bob", "sip:bob@10.0.0.9", "c", 1, 3600, -1)
	c := cur.Load()
	count := func() int {
		rows, _ := c.db.Query(context.Background(), `SELECT count(*) FROM location`)
		defer rows.Close()
		var n int
		rows.Next()
		rows.Scan(&n)
		return n
	}
	if n := count(); n != 0 {
		t.Fatalf("write-back wrote before the timer: %d rows", n)
	}
	if err := Timer(); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("after the timer: %d rows", n)
	}
	// Unregister, flush: the row goes.
	register(t, d, "bob", "sip:bob@10.0.0.9", "c", 2, 0, -1)
	if err := Flush(); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Fatalf("after unregister+flush: %d rows", n)
	}
	// Memory-only saves never reach the database.
	if _, err := d.Update("carol", true, func(cs []Contact) ([]Contact, error) {
		return append(cs, Contact{URI: "sip:carol@x", Expires: clock() + 60, Q: -1, Methods: -1}), nil
	}); err != nil {
		t.Fatal(err)
	}
	Flush()
	if n := count(); n != 0 {
		t.Fatalf("memory-only binding written: %d rows", n)
	}
}

func TestConfigureErrors(t *testing.T) {
	base := func() modules.Params {
		p := modules.Params{}
		for _, s := range modules.Lookup(Name).Params {
			if !s.Default.IsNull() {
				p[s.Name] = []value.Value{s.Default}
			}
		}
		return p
	}
	for name, set := range map[string]map[string]value.Value{
		"db_mode 1 without url": {"db_mode": value.I(1)},
		"db_mode 7":             {"db_mode": value.I(7)},
		"preset":                {"working_mode_preset": value.S("full-sharing-cluster")},
		"timer":                 {"timer_interval": value.I(0)},
	} {
		p := base()
		for k, v := range set {
			p[k] = []value.Value{v}
		}
		if _, err := configure(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	p := base()
	p["working_mode_preset"] = []value.Value{value.S("single-instance-sql-write-back")}
	p["db_url"] = []value.Value{value.S(newDB(t))}
	apply, err := configure(p)
	if err != nil {
		t.Fatal(err)
	}
	old := cur.Load()
	apply()
	defer cur.Store(old)
	if DBMode() != WriteBack {
		t.Errorf("preset gave mode %d", DBMode())
	}
}

func TestMI(t *testing.T) {
	setConfig(t, nil)
	d := GetDomain("location")
	register(t, d, "alice", "sip:alice@10.0.0.1", "c1", 1, 3600, 1000)
	mi := map[string]modules.MICommand{}
	for _, c := range modules.Lookup(Name).MI {
		mi[c.Name] = c
	}
	out, err := mi["ul_dump"].Run(nil)
	if err != nil {
		t.Fatal(err)
	}
	doms := out.(map[string]any)["Domains"].([]any)
	aors := doms[0].(map[string]any)["AORs"].([]any)
	ct := aors[0].(map[string]any)["Contacts"].([]any)[0].(map[string]any)
	if aors[0].(map[string]any)["AOR"] != "alice" || ct["Contact"] != "sip:alice@10.0.0.1" || ct["Q"] != "1" || ct["Received"] != "sip:198.51.100.7:5070" {
		t.Errorf("ul_dump: %v", out)
	}
	if _, err := mi["usrloc:show_contact"].Run(map[string]any{"table_name": "location", "aor": "alice"}); err != nil {
		t.Error(err)
	}
	if _, err := mi["ul_show_contact"].Run(map[string]any{"table_name": "location", "aor": "nobody"}); err == nil {
		t.Error("unknown AOR shown")
	}
	if _, err := mi["ul_rm_contact"].Run(map[string]any{"table_name": "location", "aor": "alice", "contact": "sip:alice@10.0.0.1"}); err != nil {
		t.Error(err)
	}
	if cs, _ := d.Lookup("alice"); len(cs) != 0 {
		t.Errorf("after ul_rm_contact: %v", cs)
	}
}

// TestConcurrent saves, looks up and expires from many goroutines with the
// timer running (go test -race).
func TestConcurrent(t *testing.T) {
	for _, mode := range []int{1, 2} {
		setConfig(t, map[string]value.Value{"db_mode": value.I(mode), "db_url": value.S(newDB(t))})
		d := GetDomain("location")
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; i < 20; i++ {
				if err := Timer(); err != nil {
					t.Error(err)
				}
			}
		}()
		errs := make(chan error, 8)
		for g := 0; g < 8; g++ {
			go func(g int) {
				for i := 0; i < 30; i++ {
					aor := "user" + string(rune('a'+g%4))
					uri := "sip:" + aor + "@10.0.0." + string(rune('0'+i%5))
					_, err := d.Update(aor, false, func(cs []Contact) ([]Contact, error) {
						for j := range cs {
							if cs[j].URI == uri {
								cs[j].CSeq++
								return cs, nil
							}
						}
						return append(cs, Contact{URI: uri, Expires: clock() + 60, Q: -1, Methods: -1}), nil
					})
					if err == nil {
						_, err = d.Lookup(aor)
					}
					if err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}(g)
		}
		for g := 0; g < 8; g++ {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		<-done
		if err := Flush(); err != nil {
			t.Fatal(err)
		}
		all, _ := d.All()
		n := 0
		for _, cs := range all {
			n += len(cs)
		}
		var rows int
		r, _ := cur.Load().db.Query(context.Background(), `SELECT count(*) FROM location`)
		r.Next()
		r.Scan(&rows)
		r.Close()
		if n != 20 || rows != 20 {
			t.Errorf("mode %d: %d bindings in memory, %d rows, want 20", mode, n, rows)
		}
		resetMemory()
	}
}

// TestMemOnlyChanges: save's 'm' flag touches no row, in either mode, and
// a later normal change of a stored binding still reaches the database.
func TestMemOnlyChanges(t *testing.T) {
	for _, mode := range []int{1, 2} {
		setConfig(t, map[string]value.Value{"db_mode": value.I(mode), "db_url": value.S(newDB(t))})
		d := GetDomain("location")
		count := func() (n, cseq int) {
			Flush()
			r, _ := cur.Load().db.Query(context.Background(), `SELECT count(*), ifnull(max(cseq), 0) FROM location`)
			defer r.Close()
			r.Next()
			r.Scan(&n, &cseq)
			return
		}
		set := func(memOnly bool, cseq int, drop bool) {
			d.Update("dave", memOnly, func(cs []Contact) ([]Contact, error) {
				if drop {
					return nil, nil
				}
				if len(cs) == 0 {
					return []Contact{{URI: "sip:dave@x", CSeq: cseq, Expires: clock() + 60, Q: -1, Methods: -1}}, nil
				}
				cs[0].CSeq = cseq
				return cs, nil
			})
		}
		set(false, 1, false)
		if n, c := count(); n != 1 || c != 1 {
			t.Fatalf("mode %d: stored %d rows cseq %d", mode, n, c)
		}
		set(true, 2, false) // memory only: the row keeps cseq 1
		if n, c := count(); n != 1 || c != 1 {
			t.Errorf("mode %d: 'm' update reached the row: %d %d", mode, n, c)
		}
		set(false, 3, false)
		if n, c := count(); n != 1 || c != 3 {
			t.Errorf("mode %d: normal update after 'm': %d %d", mode, n, c)
		}
		set(false, 4, true)
		if n, _ := count(); n != 0 {
			t.Errorf("mode %d: delete did not reach the row: %d", mode, n)
		}
		resetMemory()
	}
}
