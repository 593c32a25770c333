package cfgutils

import (
	"testing"
	"time"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

func reset(t *testing.T) {
	orig := randFloat
	t.Cleanup(func() {
		initial.Store(DefaultProbability)
		probability.Store(DefaultProbability)
		randFloat = orig
	})
}

func TestProbability(t *testing.T) {
	reset(t)
	m, _ := newMsg(t, inviteText)
	if rc := call(t, m, "rand_get_prob"); rc != DefaultProbability {
		t.Fatalf("default probability %d", rc)
	}
	// rand_event compares a uniform [0,1) draw with prob/100
	randFloat = func() float64 { return 0.095 }
	if rc := call(t, m, "rand_event"); rc != 1 {
		t.Fatalf("0.095 < 10%%: %d", rc)
	}
	randFloat = func() float64 { return 0.10 }
	if rc := call(t, m, "rand_event"); rc != -1 {
		t.Fatalf("0.10 !< 10%%: %d", rc)
	}
	if rc := call(t, m, "rand_event", 11); rc != 1 {
		t.Fatalf("override 11%%: %d", rc)
	}
	if rc := call(t, m, "rand_set_prob", 50); rc != 1 || probability.Load() != 50 {
		t.Fatal(rc)
	}
	if rc := call(t, m, "rand_event"); rc != 1 || call(t, m, "rand_get_prob") != 50 {
		t.Fatal("set_prob not used")
	}
	if rc := call(t, m, "rand_set_prob", 0); rc != 1 || call(t, m, "rand_get_prob") != 0 {
		t.Fatal("probability 0 must read back as return code 0")
	}
	randFloat = func() float64 { return 0 }
	if rc := call(t, m, "rand_event"); rc != -1 {
		t.Fatalf("probability 0 fired: %d", rc)
	}
	if rc := call(t, m, "rand_reset_prob"); rc != 1 || probability.Load() != DefaultProbability {
		t.Fatal(rc)
	}
	// a run-time value out of range is refused
	f := fn(t, "rand_set_prob")
	if rc := f.Call(m, &modules.Args{Vals: []value.Value{value.I(101)}, Given: []bool{true}}); rc != -1 {
		t.Fatal(rc)
	}
}

func TestProbabilityConfigureAndMI(t *testing.T) {
	reset(t)
	apply, err := configure(modules.Params{"initial_probability": {value.I(25)}})
	if err != nil {
		t.Fatal(err)
	}
	apply()
	if probability.Load() != 25 {
		t.Fatal(probability.Load())
	}
	if _, err := configure(modules.Params{"initial_probability": {value.I(101)}}); err == nil {
		t.Fatal("101 accepted")
	}
	mi := map[string]modules.MICommand{}
	for _, c := range modules.Lookup("cfgutils").MI {
		mi[c.Name] = c
	}
	if _, err := mi["rand_set_prob"].Run(map[string]any{"prob_proc": "60"}); err != nil || probability.Load() != 60 {
		t.Fatal(err)
	}
	if _, err := mi["rand_set_prob"].Run(map[string]any{"prob_proc": 200}); err == nil {
		t.Fatal("200 accepted")
	}
	if _, err := mi["rand_set_prob"].Run(map[string]any{}); err == nil {
		t.Fatal("missing param accepted")
	}
	got, _ := mi["rand_get_prob"].Run(nil)
	if got.(map[string]any)["actual probability percent"] != 60 {
		t.Fatal(got)
	}
	mi["rand_reset_prob"].Run(nil)
	if probability.Load() != 25 {
		t.Fatal(probability.Load())
	}
}

func TestFixups(t *testing.T) {
	for _, name := range []string{"rand_event", "rand_set_prob"} {
		for _, p := range []int{-1, 101} {
			if _, err := fixup(t, fn(t, name), ci(p)); err == nil {
				t.Errorf("%s(%d) accepted", name, p)
			}
		}
	}
	for _, name := range []string{"sleep", "usleep"} {
		if _, err := fixup(t, fn(t, name), ci(-5)); err == nil {
			t.Errorf("%s(-5) accepted", name)
		}
	}
	if r := fn(t, "sleep").Routes; r.Has(ast.ErrorRoute) || !r.Has(ast.TimerRoute) {
		t.Errorf("routes %b", r)
	}
}

func TestSleep(t *testing.T) {
	defer func(f func(time.Duration)) { sleepFor = f }(sleepFor)
	var slept []time.Duration
	sleepFor = func(d time.Duration) { slept = append(slept, d) }
	m, _ := newMsg(t, inviteText)
	if call(t, m, "sleep", 2) != 1 || call(t, m, "usleep", 1500) != 1 || call(t, m, "sleep", 0) != 1 {
		t.Fatal("rc")
	}
	if len(slept) != 2 || slept[0] != 2*time.Second || slept[1] != 1500*time.Microsecond {
		t.Fatalf("slept %v", slept)
	}
	// the real thing
	sleepFor = time.Sleep
	start := time.Now()
	call(t, m, "usleep", 2000)
	if time.Since(start) < 2*time.Millisecond {
		t.Fatal("usleep did not sleep")
	}
}

func TestGetAccurateTime(t *testing.T) {
	defer func(f func() time.Time) { now = f }(now)
	now = func() time.Time { return time.Unix(1700000000, 5000) }
	m, _ := newMsg(t, inviteText)
	sec, usec, both := &recorder{Name: "var"}, &recorder{Name: "var"}, &recorder{Name: "var"}
	if rc := call(t, m, "get_accurate_time", sec.Ref(), usec.Ref(), both.Ref()); rc != 1 {
		t.Fatal(rc)
	}
	if sec.Vals[0] != value.SI("1700000000", 1700000000) || usec.Vals[0] != value.SI("5", 5) || both.Vals[0] != value.S("1700000000.000005") {
		t.Fatalf("%v %v %v", sec.Vals, usec.Vals, both.Vals)
	}
	if rc := call(t, m, "get_accurate_time", sec.Ref(), usec.Ref()); rc != 1 || len(both.Vals) != 1 {
		t.Fatal(rc)
	}
	sec.Fail = true
	if rc := call(t, m, "get_accurate_time", sec.Ref(), usec.Ref()); rc != -1 {
		t.Fatal(rc)
	}
}

func TestTsUsecDelta(t *testing.T) {
	m, _ := newMsg(t, inviteText)
	s, i := &recorder{Name: "var"}, &recorder{Name: "var"}
	if rc := call(t, m, "ts_usec_delta", 10, 300, 12, 100, s.Ref(), i.Ref()); rc != 1 {
		t.Fatal(rc)
	}
	if s.Vals[0] != value.S("1999800") || i.Vals[0] != value.I(1999800) {
		t.Fatalf("%v %v", s.Vals, i.Vals)
	}
	// large deltas do not overflow (OpenSIPS's int holder would)
	if rc := call(t, m, "ts_usec_delta", 0, 0, 7200, 0, s.Ref()); rc != 1 || s.Vals[1] != value.S("7200000000") {
		t.Fatalf("%d %v", rc, s.Vals)
	}
}

func TestPVars(t *testing.T) {
	defer func(f func() int) { randInt = f }(randInt)
	randInt = func() int { return 12345 }
	m, _ := newMsg(t, inviteText)
	r := &pvar.Ref{Spec: pvar.Lookup("RANDOM")}
	if r.Spec == nil || r.Spec.Module != "cfgutils" {
		t.Fatalf("$RANDOM spec %+v", r.Spec)
	}
	if v := r.Get(m); v != value.SI("12345", 12345) {
		t.Fatal(v)
	}
	t.Setenv("SIPEDGE_TEST_ENV", "hello")
	e := &pvar.Ref{Spec: pvar.Lookup("env"), Arg: "SIPEDGE_TEST_ENV"}
	if v := e.Get(m); v != value.S("hello") {
		t.Fatal(v)
	}
	e.Arg = "SIPEDGE_TEST_UNSET_ENV"
	if v := e.Get(m); !v.IsNull() {
		t.Fatal(v)
	}
}
