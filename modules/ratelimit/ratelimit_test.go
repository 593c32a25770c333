package ratelimit

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	_ "github.com/sipedge/sipedge/modules/core"
	_ "github.com/sipedge/sipedge/modules/sl"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/scripttest"
	"github.com/sipedge/sipedge/runtime/value"
)

type testHost struct{ logs []string }

func (h *testHost) Log(_ *msgctx.Msg, level int, text string) {
	h.logs = append(h.logs, msgctx.LevelName(level)+" "+text)
}
func (h *testHost) Reply(*msgctx.Msg, int, string) error { return nil }

// reset forgets every pipe, installs p (nil: defaults) and moves the clock
// to the start of a timer interval, restoring everything afterwards.
func reset(t testing.TB, p *params) *params {
	def := &params{interval: DefaultTimerInterval * int64(time.Second), expire: DefaultExpireTime * int64(time.Second),
		defAlgo: Taildrop, slots: DefaultWindowSize * 1000 / DefaultSlotPeriod, slotMS: DefaultSlotPeriod}
	if p == nil {
		cp := *def
		p = &cp
	}
	pipes.clear()
	clockOffset.Store(0)
	cur.Store(p)
	clockOffset.Store(p.interval - now()%p.interval)
	t.Cleanup(func() {
		pipes.clear()
		clockOffset.Store(0)
		cur.Store(def)
	})
	return p
}

func advance(d time.Duration) { clockOffset.Add(int64(d)) }

func fn(name string) *modules.Func {
	for _, f := range modules.Lookup(Name).Funcs {
		if f.Name == name {
			return f
		}
	}
	panic(name)
}

// rl calls rl_check(name, limit[, algo]) as a script would with constants.
func rl(m *msgctx.Msg, name string, limit int, algo ...string) int {
	f := fn("rl_check")
	a := &modules.Args{Vals: []value.Value{value.S(name), value.I(limit), value.Null}, Given: []bool{true, true, false}}
	fa := []check.FixupArg{{Present: true, Const: true, Str: name}, {Present: true, Const: true, Int: limit}, {}}
	if len(algo) > 0 {
		a.Vals[2], a.Given[2] = value.S(algo[0]), true
		fa[2] = check.FixupArg{Present: true, Const: true, Str: algo[0]}
	}
	fix, err := f.Fixup(fa)
	if err != nil {
		panic(err)
	}
	a.Fix = fix
	return f.Call(m, a)
}

func simple(m *msgctx.Msg, fname, pipe string) int {
	return fn(fname).Call(m, &modules.Args{Vals: []value.Value{value.S(pipe)}, Given: []bool{true}})
}

func newMsg() (*msgctx.Msg, *testHost) {
	h := &testHost{}
	return &msgctx.Msg{Host: h}, h
}

func run(m *msgctx.Msg, n int, f func() int) string {
	var out []string
	for range n {
		out = append(out, strconv.Itoa(f()))
	}
	return strings.Join(out, " ")
}

func TestTaildrop(t *testing.T) {
	p := reset(t, &params{interval: int64(2 * time.Second), expire: int64(time.Hour), defAlgo: Taildrop, slots: 50, slotMS: 200})
	m, _ := newMsg()
	// limit 2/s over a 2s interval: 4 per interval
	if got := run(m, 6, func() int { return rl(m, "gw", 2) }); got != "1 1 1 1 -1 -1" {
		t.Fatal(got)
	}
	// a new interval starts from zero
	advance(2 * time.Second)
	if got := run(m, 5, func() int { return rl(m, "gw", 2, "TAILDROP") }); got != "1 1 1 1 -1" {
		t.Fatal(got)
	}
	// limit_per_interval: the limit is per interval
	p.perInterval = true
	advance(2 * time.Second)
	if got := run(m, 3, func() int { return rl(m, "gw", 2) }); got != "1 1 -1" {
		t.Fatal(got)
	}
	// the limit follows the latest call
	if rc := rl(m, "gw", 10); rc != RetOK {
		t.Fatal(rc)
	}
}

func TestRED(t *testing.T) {
	reset(t, &params{interval: int64(time.Second), expire: int64(time.Hour), defAlgo: Taildrop, slots: 50, slotMS: 200})
	m, _ := newMsg()
	// the first interval has no measured load: nothing dropped
	if got := run(m, 7, func() int { return rl(m, "red", 2, "RED") }); got != "1 1 1 1 1 1 1" {
		t.Fatal(got)
	}
	// 7 requests at 2/s: load 3, so only every 3rd request passes
	advance(time.Second)
	if got := run(m, 6, func() int { return rl(m, "red", 2, "RED") }); got != "-1 -1 1 -1 -1 1" {
		t.Fatal(got)
	}
	// 6 requests: load 3 again; then an idle interval resets the load
	advance(2 * time.Second)
	if got := run(m, 3, func() int { return rl(m, "red", 2, "RED") }); got != "1 1 1" {
		t.Fatal(got)
	}
}

func TestSBT(t *testing.T) {
	// a 1s window of 4 slots of 250ms
	reset(t, &params{interval: int64(10 * time.Second), expire: int64(time.Hour), defAlgo: SBT, slots: 4, slotMS: 250})
	m, _ := newMsg()
	if got := run(m, 4, func() int { return rl(m, "sbt", 3) }); got != "1 1 1 -1" {
		t.Fatal(got)
	}
	advance(500 * time.Millisecond) // still inside the window
	if rc := rl(m, "sbt", 3); rc != RetDrop {
		t.Fatal(rc)
	}
	advance(500 * time.Millisecond) // the first slot (4 counts) left the window
	if got := run(m, 2, func() int { return rl(m, "sbt", 3) }); got != "1 1" {
		t.Fatal(got)
	}
	if n, _ := pipes.counter(cur.Load(), "sbt", now()); n != 3 {
		t.Fatal(n)
	}
	// rl_dec_count takes one off the current slot; rl_reset_count empties
	simple(m, "rl_dec_count", "sbt")
	if n, _ := pipes.counter(cur.Load(), "sbt", now()); n != 2 {
		t.Fatal(n)
	}
	simple(m, "rl_reset_count", "sbt")
	if n, _ := pipes.counter(cur.Load(), "sbt", now()); n != 0 {
		t.Fatal(n)
	}
	// far later the window is empty
	advance(time.Hour)
	if rc := rl(m, "sbt", 0); rc != RetDrop {
		t.Fatal("limit 0 lets a request through")
	}
}

func TestDecResetAndCount(t *testing.T) {
	reset(t, nil)
	m, h := newMsg()
	ref, err := pvar.Compile(pvarAST("rl_count", "p"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if v := ref.Get(m); !v.IsNull() {
		t.Fatal("no pipe: want NULL", v)
	}
	if rc := simple(m, "rl_dec_count", "p"); rc != RetDrop || !strings.Contains(fmt.Sprint(h.logs), "cannot find any pipe named p") {
		t.Fatal(rc, h.logs)
	}
	for range 3 {
		rl(m, "p", 100)
	}
	simple(m, "rl_dec_count", "p")
	if v := ref.Get(m); v != value.I(2) {
		t.Fatal(v)
	}
	simple(m, "rl_reset_count", "p")
	simple(m, "rl_dec_count", "p") // never below 0
	if v := ref.Get(m); v != value.I(0) {
		t.Fatal(v)
	}
}

func TestAlgorithmKept(t *testing.T) {
	reset(t, nil)
	m, h := newMsg()
	rl(m, "x", 1, "SBT")
	rl(m, "x", 1, "RED")
	if !strings.Contains(fmt.Sprint(h.logs), "pipe x keeps its algorithm SBT (asked for RED)") {
		t.Fatal(h.logs)
	}
	if l := pipes.list(cur.Load(), now(), "x"); l[0].Algorithm != SBT {
		t.Fatal(l)
	}
	// a dynamic, unknown algorithm falls back to the default
	f := fn("rl_check")
	a := &modules.Args{Vals: []value.Value{value.S("y"), value.I(5), value.S("BOGUS")}, Given: []bool{true, true, true}}
	if rc := f.Call(m, a); rc != RetOK || pipes.list(cur.Load(), now(), "y")[0].Algorithm != Taildrop {
		t.Fatal(rc)
	}
}

func TestExpire(t *testing.T) {
	p := reset(t, nil)
	m, _ := newMsg()
	rl(m, "old", 5)
	advance(30 * time.Minute)
	rl(m, "new", 5)
	advance(31 * time.Minute)
	if n := pipes.expire(p, now()); n != 1 {
		t.Fatal(n)
	}
	if l := pipes.list(p, now(), ""); len(l) != 1 || l[0].Name != "new" {
		t.Fatal(l)
	}
}

func TestFixupAndConfigure(t *testing.T) {
	f := fn("rl_check")
	for _, bad := range []string{"FEEDBACK", "NETWORK", "nope"} {
		_, err := f.Fixup([]check.FixupArg{{Present: true}, {Present: true}, {Present: true, Const: true, Str: bad}})
		if fe, ok := err.(*check.FixupError); !ok || fe.Arg != 2 {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if fix, err := f.Fixup([]check.FixupArg{{Present: true}, {Present: true}, {Present: true, Const: true, Str: "red"}}); err != nil || fix != RED {
		t.Fatal(fix, err)
	}
	if _, err := f.Fixup([]check.FixupArg{{Present: true}, {Present: true, Const: true, Int: -1}, {}}); err == nil {
		t.Fatal("negative limit accepted")
	}
	base := func(kv ...any) modules.Params {
		p := modules.Params{}
		for _, s := range modules.Lookup(Name).Params {
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
		base("timer_interval", 0), base("expire_time", -1), base("default_algorithm", "FEEDBACK"),
		base("default_algorithm", "x"), base("window_size", 0), base("slot_period", 5000, "window_size", 1),
		base("cachedb_url", "redis://x/"), base("pipe_replication_cluster", 1), base("hash_size", 0),
	} {
		if _, err := configure(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	reset(t, nil)
	apply, err := configure(base("timer_interval", 5, "default_algorithm", "sbt", "window_size", 2, "slot_period", 100, "limit_per_interval", 1))
	if err != nil {
		t.Fatal(err)
	}
	apply()
	if p := cur.Load(); p.interval != int64(5*time.Second) || p.defAlgo != SBT || p.slots != 20 || !p.perInterval {
		t.Fatalf("%+v", p)
	}
}

func TestMI(t *testing.T) {
	reset(t, nil)
	m, _ := newMsg()
	mi := map[string]modules.MICommand{}
	for _, c := range modules.Lookup(Name).MI {
		mi[c.Name] = c
	}
	for range 3 {
		rl(m, "b", 100)
	}
	rl(m, "a", 7, "RED")
	advance(10 * time.Second)
	got, _ := mi["rl_list"].Run(nil)
	want := "map[Pipes:[map[algorithm:RED counter:1 id:a limit:7] map[algorithm:TAILDROP counter:3 id:b limit:100]] drop_rate:0]"
	if fmt.Sprint(got) != want {
		t.Fatal(got)
	}
	got, _ = mi["rl_list"].Run(map[string]any{"pipe": "b"})
	if fmt.Sprint(got) != "map[Pipe:map[algorithm:TAILDROP counter:3 id:b limit:100] drop_rate:0]" {
		t.Fatal(got)
	}
	if _, err := mi["rl_list"].Run(map[string]any{"pipe": "zz"}); err == nil {
		t.Fatal("unknown pipe listed")
	}
	rl(m, "b", 100)
	if _, err := mi["rl_reset_pipe"].Run(map[string]any{"pipe": "b"}); err != nil {
		t.Fatal(err)
	}
	if n, _ := pipes.counter(cur.Load(), "b", now()); n != 0 {
		t.Fatal(n)
	}
	if _, err := mi["rl_reset_pipe"].Run(map[string]any{"pipe": "zz"}); err == nil {
		t.Fatal("unknown pipe reset")
	}
}

func TestConcurrent(t *testing.T) {
	reset(t, &params{interval: int64(time.Hour), expire: int64(time.Hour), defAlgo: Taildrop, slots: 50, slotMS: 200})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, _ := newMsg()
			for i := range 1000 {
				rl(m, "shared", 1<<20)
				rl(m, "sbt"+strconv.Itoa(i%4), 1<<20, "SBT")
			}
		}()
	}
	wg.Wait()
	if n, _ := pipes.counter(cur.Load(), "shared", now()); n != 8000 {
		t.Fatal(n)
	}
}

func TestFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txtar")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			reset(t, nil)
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
}

func BenchmarkRLCheck(b *testing.B) {
	reset(b, &params{interval: int64(time.Hour), expire: int64(time.Hour), defAlgo: Taildrop, slots: 50, slotMS: 200})
	m, _ := newMsg()
	f := fn("rl_check")
	a := &modules.Args{Vals: []value.Value{value.S("gw_10.0.0.1"), value.I(1 << 30), value.S("TAILDROP")},
		Given: []bool{true, true, true}, Fix: Taildrop}
	f.Call(m, a)
	b.ReportAllocs()
	for b.Loop() {
		f.Call(m, a)
	}
}

func pvarAST(name, arg string) *ast.PVar { return &ast.PVar{Name: name, HasArg: true, Arg: arg} }
