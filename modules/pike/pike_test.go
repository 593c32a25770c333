package pike

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sipedge/sipedge/modules"
	_ "github.com/sipedge/sipedge/modules/core"
	_ "github.com/sipedge/sipedge/modules/sl"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/scripttest"
	"github.com/sipedge/sipedge/runtime/value"
)

type testHost struct{ logs []string }

func (h *testHost) Log(_ *msgctx.Msg, level int, text string) {
	h.logs = append(h.logs, msgctx.LevelName(level)+" "+text)
}
func (h *testHost) Reply(*msgctx.Msg, int, string) error { return nil }

// reset forgets every address, restores the default parameters and clock,
// and sets the sampling unit to an hour so no test crosses a unit boundary
// by accident (units are aligned on multiples of the unit since the epoch).
func reset(t testing.TB, unitSec, density, latencySec int) *params {
	do := func(p *params) {
		ips.clear()
		clockOffset.Store(0)
		cur.Store(p)
	}
	p := &params{unit: int64(unitSec) * int64(time.Second), density: uint32(density),
		latency: int64(latencySec) * int64(time.Second), logLvl: DefaultLogLevel, maxIPs: DefaultMaxIPs}
	do(p)
	// start at the beginning of a unit
	clockOffset.Store(p.unit - now()%p.unit)
	def := &params{unit: DefaultSamplingTimeUnit * int64(time.Second), density: DefaultDensity,
		latency: DefaultRemoveLatency * int64(time.Second), logLvl: DefaultLogLevel, maxIPs: DefaultMaxIPs}
	t.Cleanup(func() { do(def) })
	return p
}

func advance(d time.Duration) { clockOffset.Add(int64(d)) }

func pikeCheck(m *msgctx.Msg) int {
	return modules.Lookup(Name).Funcs[0].Call(m, &modules.Args{})
}

func msgFrom(ip string) (*msgctx.Msg, *testHost) {
	h := &testHost{}
	return &msgctx.Msg{Host: h, Src: msgctx.Addr{Proto: "udp", IP: ip, Port: 5060}}, h
}

func TestFloodDetection(t *testing.T) {
	reset(t, 10, 3, 60)
	m, h := msgFrom("192.0.2.1")
	other, _ := msgFrom("192.0.2.2")
	// 3 requests per unit are fine; the 4th blocks
	var got []int
	for range 6 {
		got = append(got, pikeCheck(m))
	}
	if fmt.Sprint(got) != "[1 1 1 -2 -1 -1]" {
		t.Fatal(got)
	}
	if len(h.logs) != 1 || h.logs[0] != "WARNING PIKE - BLOCKing ip 192.0.2.1" {
		t.Fatal(h.logs)
	}
	if pikeCheck(other) != RetOK {
		t.Fatal("another address is blocked too")
	}
	// the next unit: the previous one was hot, so still blocked
	advance(10 * time.Second)
	if rc := pikeCheck(m); rc != RetBlocked {
		t.Fatal(rc)
	}
	// a quiet unit later it is free again
	advance(10 * time.Second)
	if rc := pikeCheck(m); rc != RetOK {
		t.Fatal(rc)
	}
	// skipping units clears the history
	for range 3 {
		pikeCheck(m)
	}
	advance(30 * time.Second)
	for range 3 {
		if rc := pikeCheck(m); rc != RetOK {
			t.Fatal(rc)
		}
	}
	// no source address (a locally generated request): not tracked
	if rc := pikeCheck(&msgctx.Msg{}); rc != RetOK {
		t.Fatal(rc)
	}
}

func TestSweep(t *testing.T) {
	p := reset(t, 10, 2, 25)
	a, _ := msgFrom("198.51.100.1")
	b, _ := msgFrom("198.51.100.2")
	for range 3 {
		pikeCheck(a)
	}
	pikeCheck(b)
	if Tracked() != 2 {
		t.Fatal(Tracked())
	}
	if l := ips.blockedIPs(p, now()); fmt.Sprint(l) != "[198.51.100.1]" {
		t.Fatal(l)
	}
	advance(10 * time.Second)
	if u := ips.sweep(p, now()); len(u) != 0 {
		t.Fatal("unblocked while the previous unit was hot", u)
	}
	advance(10 * time.Second)
	if u := ips.sweep(p, now()); fmt.Sprint(u) != "[198.51.100.1]" {
		t.Fatal(u)
	}
	// remove_latency after the last request both are forgotten
	advance(5 * time.Second)
	ips.sweep(p, now())
	if Tracked() != 0 {
		t.Fatal(Tracked())
	}
}

func TestMaxIPs(t *testing.T) {
	p := reset(t, 3600, 1, 7200)
	p.maxIPs = 2
	for i := range 2 {
		m, _ := msgFrom("10.0.0." + strconv.Itoa(i))
		pikeCheck(m)
	}
	m, _ := msgFrom("10.0.0.99")
	for range 5 {
		if rc := pikeCheck(m); rc != RetOK {
			t.Fatal("an untracked address was blocked")
		}
	}
	if Tracked() != 2 {
		t.Fatal(Tracked())
	}
}

func TestConfigure(t *testing.T) {
	info := modules.Lookup(Name)
	base := func(kv ...any) modules.Params {
		p := modules.Params{}
		for _, s := range info.Params {
			if !s.Default.IsNull() {
				p[s.Name] = []value.Value{s.Default}
			}
		}
		for i := 0; i < len(kv); i += 2 {
			switch v := kv[i+1].(type) {
			case int:
				p[kv[i].(string)] = []value.Value{value.I(v)}
			case string:
				p[kv[i].(string)] = []value.Value{value.S(v)}
			}
		}
		return p
	}
	for _, bad := range []modules.Params{
		base("sampling_time_unit", 0), base("reqs_density_per_unit", 0), base("remove_latency", -1),
		base("check_route", "pike"), base("max_ips", 0),
	} {
		if _, err := configure(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	reset(t, 2, 30, 120)
	apply, err := configure(base("sampling_time_unit", 10, "remove_latency", 5, "pike_log_level", -1))
	if err != nil {
		t.Fatal(err)
	}
	apply()
	p := cur.Load()
	if p.unit != int64(10*time.Second) || p.latency != int64(11*time.Second) || p.logLvl != -1 {
		t.Fatalf("%+v", p)
	}
}

func TestMI(t *testing.T) {
	reset(t, 3600, 1, 7200)
	mi := map[string]modules.MICommand{}
	for _, c := range modules.Lookup(Name).MI {
		mi[c.Name] = c
	}
	a, _ := msgFrom("203.0.113.1")
	b, _ := msgFrom("2001:db8::1")
	c, _ := msgFrom("203.0.113.2")
	pikeCheck(a)
	pikeCheck(a)
	pikeCheck(b)
	pikeCheck(b)
	pikeCheck(c)
	got, _ := mi["pike_list"].Run(nil)
	if fmt.Sprint(got) != "map[IPs:[2001:db8::1 203.0.113.1]]" {
		t.Fatal(got)
	}
	for _, tc := range []struct {
		ip, err string
	}{
		{"nonsense", "bad IP"},
		{"203.0.113.9", "match not found"},
		{"203.0.113.2", "IP not blocked"},
		{"203.0.113.1", ""},
		{"2001:0db8:0::1", ""}, // any spelling of the address
	} {
		_, err := mi["pike_rm"].Run(map[string]any{"ip": tc.ip})
		if (err == nil) != (tc.err == "") || err != nil && err.Error() != tc.err {
			t.Errorf("pike_rm %s: %v", tc.ip, err)
		}
	}
	if rc := pikeCheck(a); rc != RetOK {
		t.Fatal("pike_rm did not reset the counters", rc)
	}
	if _, err := mi["pike_rm"].Run(nil); err == nil {
		t.Fatal("missing ip accepted")
	}
}

func TestConcurrent(t *testing.T) {
	reset(t, 3600, 1000000, 7200)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				m, _ := msgFrom("10.1." + strconv.Itoa(g) + "." + strconv.Itoa(i%20))
				pikeCheck(m)
				if i%250 == 0 {
					ips.sweep(cur.Load(), now())
				}
			}
		}()
	}
	wg.Wait()
	if Tracked() != 160 {
		t.Fatal(Tracked())
	}
}

func TestFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txtar")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			reset(t, 2, 30, 120)
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			res, err := scripttest.Run(f, data)
			if err != nil {
				t.Fatal(err)
			}
			if !res.OK() {
				t.Errorf("got:\n%s\nwant:\n%s", res.Got, res.Want)
			}
		})
	}
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
}

// BenchmarkPikeCheck is pike_check_req() for an address already tracked.
func BenchmarkPikeCheck(b *testing.B) {
	reset(b, 3600, 1<<30, 7200)
	m, _ := msgFrom("203.0.113.77")
	f := modules.Lookup(Name).Funcs[0]
	a := &modules.Args{}
	f.Call(m, a)
	b.ReportAllocs()
	for b.Loop() {
		if f.Call(m, a) != RetOK {
			b.Fatal("blocked")
		}
	}
}

// BenchmarkPikeCheckManyIPs spreads the calls over 65536 addresses.
func BenchmarkPikeCheckManyIPs(b *testing.B) {
	reset(b, 3600, 1<<30, 7200)
	msgs := make([]*msgctx.Msg, 1<<16)
	for i := range msgs {
		msgs[i], _ = msgFrom(fmt.Sprintf("10.%d.%d.1", i>>8, i&255))
	}
	f := modules.Lookup(Name).Funcs[0]
	a := &modules.Args{}
	for _, m := range msgs {
		f.Call(m, a)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		f.Call(msgs[i&(1<<16-1)], a)
		i++
	}
}

func BenchmarkPikeCheckParallel(b *testing.B) {
	reset(b, 3600, 1<<30, 7200)
	f := modules.Lookup(Name).Funcs[0]
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		msgs := make([]*msgctx.Msg, 256)
		for i := range msgs {
			msgs[i], _ = msgFrom("10.9." + strconv.Itoa(i) + ".1")
		}
		a := &modules.Args{}
		i := 0
		for pb.Next() {
			f.Call(msgs[i&255], a)
			i++
		}
	})
}
