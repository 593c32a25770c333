// Package cfgutils is the part of OpenSIPS's cfgutils module sipedge has:
// the shared random-event probability, sleeps, time-stamp helpers and the
// $RANDOM and $env pseudo-variables.
package cfgutils

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

// DefaultProbability is the initial_probability default.
const DefaultProbability = 10

var (
	initial     atomic.Int64 // initial_probability
	probability atomic.Int64 // the shared current probability, in percent
)

// Every route kind but error_route, as OpenSIPS 3.6 exports these.
var rAll = check.Routes(ast.RequestRoute, ast.FailureRoute, ast.OnReplyRoute, ast.BranchRoute,
	ast.LocalRoute, ast.StartupRoute, ast.TimerRoute, ast.EventRoute)

func init() {
	initial.Store(DefaultProbability)
	probability.Store(DefaultProbability)
	intArg := []check.ArgSpec{{Kind: check.ArgInt}}
	outVar := check.ArgSpec{Kind: check.ArgVar, Writable: true}
	optOutVar := check.ArgSpec{Kind: check.ArgVar, Writable: true, Optional: true}
	modules.Register(&modules.Info{
		Name: "cfgutils",
		Params: []modules.Param{
			{Name: "initial_probability", Kind: modules.ParamInt, Default: value.I(DefaultProbability)},
		},
		Configure: configure,
		Funcs: []*modules.Func{
			{Name: "rand_event", Args: []check.ArgSpec{{Kind: check.ArgInt, Optional: true}}, Routes: rAll, Fixup: fixupProb, Call: callRandEvent},
			{Name: "rand_set_prob", Args: intArg, Routes: rAll, Fixup: fixupProb, Call: callRandSetProb},
			{Name: "rand_reset_prob", Routes: rAll, Call: callRandResetProb},
			{Name: "rand_get_prob", Routes: rAll, Call: callRandGetProb},
			{Name: "sleep", Args: intArg, Routes: rAll, Fixup: fixupDuration, Call: callSleep},
			{Name: "usleep", Args: intArg, Routes: rAll, Fixup: fixupDuration, Call: callUsleep},
			{Name: "get_accurate_time", Args: []check.ArgSpec{outVar, outVar, optOutVar}, Routes: rAll, Call: callGetAccurateTime},
			{Name: "ts_usec_delta", Args: []check.ArgSpec{{Kind: check.ArgInt}, {Kind: check.ArgInt}, {Kind: check.ArgInt}, {Kind: check.ArgInt}, optOutVar, optOutVar},
				Routes: rAll, Call: callTsUsecDelta},
		},
		PVars: []*pvar.Spec{
			{Name: "RANDOM", Get: getRandom},
			{Name: "env", Arg: pvar.NeedArg, Get: getEnv},
		},
		MI: []modules.MICommand{
			{Name: "rand_set_prob", Help: "set the rand_event() probability: prob_proc (0..100)", Run: miSetProb},
			{Name: "rand_reset_prob", Help: "reset the rand_event() probability to initial_probability", Run: miResetProb},
			{Name: "rand_get_prob", Help: "show the rand_event() probability", Run: miGetProb},
		},
	})
}

func configure(p modules.Params) (func(), error) {
	n := p.Int("initial_probability")
	if n < 0 || n > 100 {
		return nil, fmt.Errorf("initial_probability %d is out of range 0..100", n)
	}
	return func() {
		initial.Store(int64(n))
		probability.Store(int64(n))
	}, nil
}

func logf(m *msgctx.Msg, level int, text string) {
	if m.Host != nil {
		m.Host.Log(m, level, text)
	}
}

func fixupProb(args []check.FixupArg) (any, error) {
	if a := args[0]; a.Present && a.Const && (a.Int < 0 || a.Int > 100) {
		return nil, check.ArgError(0, "probability %d is out of range 0..100", a.Int)
	}
	return nil, nil
}

// randFloat is replaced by tests.
var randFloat = rand.Float64

// rand_event([prob]): true with the given or the shared probability.
func callRandEvent(m *msgctx.Msg, a *modules.Args) int {
	p := int(probability.Load())
	if a.Has(0) {
		p = a.Int(0)
	}
	if randFloat() < float64(p)/100 {
		return 1
	}
	return -1
}

func callRandSetProb(m *msgctx.Msg, a *modules.Args) int {
	p := a.Int(0)
	if p < 0 || p > 100 {
		logf(m, msgctx.LErr, fmt.Sprintf("rand_set_prob: probability %d is out of range 0..100", p))
		return -1
	}
	probability.Store(int64(p))
	return 1
}

func callRandResetProb(_ *msgctx.Msg, _ *modules.Args) int {
	probability.Store(initial.Load())
	return 1
}

// rand_get_prob() returns the probability itself, as OpenSIPS does: a
// probability of 0 is a return code of 0, which stops the script.
func callRandGetProb(_ *msgctx.Msg, _ *modules.Args) int { return int(probability.Load()) }

func fixupDuration(args []check.FixupArg) (any, error) {
	if a := args[0]; a.Present && a.Const && a.Int < 0 {
		return nil, check.ArgError(0, "cannot sleep a negative time (%d)", a.Int)
	}
	return nil, nil
}

// sleepFor is replaced by tests.
var sleepFor = time.Sleep

// sleep(seconds)/usleep(microseconds) block the goroutine running the
// script; a value that is not a number sleeps 0.
func callSleep(m *msgctx.Msg, a *modules.Args) int  { return doSleep(a, time.Second) }
func callUsleep(m *msgctx.Msg, a *modules.Args) int { return doSleep(a, time.Microsecond) }

func doSleep(a *modules.Args, unit time.Duration) int {
	if n := a.Int(0); n > 0 {
		sleepFor(time.Duration(n) * unit)
	}
	return 1
}

// now is replaced by tests.
var now = time.Now

// get_accurate_time(sec, usec[, sec_usec]) stores the current time.
func callGetAccurateTime(m *msgctx.Msg, a *modules.Args) int {
	t := now()
	sec, usec := t.Unix(), t.Nanosecond()/1000
	sets := []struct {
		i int
		v value.Value
	}{
		{0, value.SI(strconv.FormatInt(sec, 10), int(sec))},
		{1, value.SI(strconv.Itoa(usec), usec)},
		{2, value.S(fmt.Sprintf("%d.%06d", sec, usec))},
	}
	for _, s := range sets {
		if !a.Has(s.i) {
			continue
		}
		if err := a.Ref(s.i).Set(m, "=", s.v); err != nil {
			logf(m, msgctx.LErr, "get_accurate_time: "+err.Error())
			return -1
		}
	}
	return 1
}

// ts_usec_delta(t1_sec, t1_usec, t2_sec, t2_usec[, delta_str[, delta_int]])
// stores |t1 - t2| in microseconds.
func callTsUsecDelta(m *msgctx.Msg, a *modules.Args) int {
	d := (a.Int(0)-a.Int(2))*1000000 + a.Int(1) - a.Int(3)
	if d < 0 {
		d = -d
	}
	if a.Has(4) {
		if err := a.Ref(4).Set(m, "=", value.S(strconv.Itoa(d))); err != nil {
			logf(m, msgctx.LErr, "ts_usec_delta: "+err.Error())
			return -1
		}
	}
	if a.Has(5) {
		if err := a.Ref(5).Set(m, "=", value.I(d)); err != nil {
			logf(m, msgctx.LErr, "ts_usec_delta: "+err.Error())
			return -1
		}
	}
	return 1
}

// randInt is replaced by tests.
var randInt = func() int { return int(rand.Int32()) }

// $RANDOM is a random non-negative 31-bit integer, like libc rand().
func getRandom(*msgctx.Msg, any, pvar.Index) value.Value {
	n := randInt()
	return value.SI(strconv.Itoa(n), n)
}

// $env(NAME) is an environment variable of the sipedge process; NULL when
// it is not set.
func getEnv(_ *msgctx.Msg, arg any, _ pvar.Index) value.Value {
	name, _ := arg.(string)
	if v, ok := os.LookupEnv(name); ok {
		return value.S(v)
	}
	return value.Null
}

func miSetProb(params map[string]any) (any, error) {
	raw, ok := params["prob_proc"]
	if !ok {
		return nil, fmt.Errorf("missing parameter prob_proc")
	}
	var p int
	switch v := raw.(type) {
	case int:
		p = v
	case float64:
		p = int(v)
	case string:
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("prob_proc %q is not a number", v)
		}
		p = n
	default:
		return nil, fmt.Errorf("prob_proc must be a number")
	}
	if p < 0 || p > 100 {
		return nil, fmt.Errorf("prob_proc %d is out of range 0..100", p)
	}
	probability.Store(int64(p))
	return "OK", nil
}

func miResetProb(map[string]any) (any, error) {
	probability.Store(initial.Load())
	return "OK", nil
}

func miGetProb(map[string]any) (any, error) {
	return map[string]any{"actual probability percent": int(probability.Load())}, nil
}
