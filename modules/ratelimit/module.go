// Package ratelimit is OpenSIPS 3.x's ratelimit module: named pipes, each
// limiting the requests that pass through it with the TAILDROP, RED or SBT
// algorithm. rl_check(name, limit[, algorithm]) creates a pipe on first use
// and counts every call, allowed or not.
package ratelimit

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "ratelimit"

// Defaults of the modparams (OpenSIPS's).
const (
	DefaultTimerInterval = 10   // seconds
	DefaultExpireTime    = 3600 // seconds
	DefaultHashSize      = 1024
	DefaultAlgorithm     = "TAILDROP"
	DefaultWindowSize    = 10  // seconds (SBT)
	DefaultSlotPeriod    = 200 // milliseconds (SBT)
)

// Return codes.
const (
	RetOK   = 1
	RetDrop = -1 // rl_check: over the limit; rl_dec_count/rl_reset_count: no such pipe
)

var (
	cur       atomic.Pointer[params]
	sweepOnce sync.Once
)

// The routes rl_check and friends may be used in (all but startup_route).
var rlRoutes = check.Routes(ast.RequestRoute, ast.FailureRoute, ast.OnReplyRoute, ast.BranchRoute,
	ast.ErrorRoute, ast.LocalRoute, ast.TimerRoute, ast.EventRoute)

func init() {
	cur.Store(&params{interval: DefaultTimerInterval * int64(time.Second), expire: DefaultExpireTime * int64(time.Second),
		defAlgo: Taildrop, slots: DefaultWindowSize * 1000 / DefaultSlotPeriod, slotMS: DefaultSlotPeriod})
	str := check.ArgSpec{Kind: check.ArgStr}
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "timer_interval", Kind: modules.ParamInt, Default: value.I(DefaultTimerInterval)},
			{Name: "limit_per_interval", Kind: modules.ParamInt, Default: value.I(0)},
			{Name: "expire_time", Kind: modules.ParamInt, Default: value.I(DefaultExpireTime)},
			{Name: "hash_size", Kind: modules.ParamInt, Default: value.I(DefaultHashSize)},
			{Name: "default_algorithm", Kind: modules.ParamStr, Default: value.S(DefaultAlgorithm)},
			{Name: "window_size", Kind: modules.ParamInt, Default: value.I(DefaultWindowSize)},
			{Name: "slot_period", Kind: modules.ParamInt, Default: value.I(DefaultSlotPeriod)},
			{Name: "cachedb_url", Kind: modules.ParamStr},
			{Name: "db_prefix", Kind: modules.ParamStr, Default: value.S("rl_pipe_")},
			{Name: "pipe_replication_cluster", Kind: modules.ParamInt, Default: value.I(0)},
			{Name: "repl_buffer_threshold", Kind: modules.ParamInt},
			{Name: "repl_timer_interval", Kind: modules.ParamInt},
			{Name: "repl_timer_expire", Kind: modules.ParamInt},
		},
		Configure: configure,
		Funcs: []*modules.Func{
			{Name: "rl_check", Args: []check.ArgSpec{str, {Kind: check.ArgInt}, {Kind: check.ArgStr, Optional: true}},
				Routes: rlRoutes, Fixup: fixupCheck, Call: callCheck},
			{Name: "rl_dec_count", Args: []check.ArgSpec{str}, Routes: rlRoutes, Call: callDec},
			{Name: "rl_reset_count", Args: []check.ArgSpec{str}, Routes: rlRoutes, Call: callReset},
		},
		PVars: []*pvar.Spec{
			{Name: "rl_count", Arg: pvar.NeedArg, Get: getCount},
		},
		MI: []modules.MICommand{
			{Name: "rl_list", Help: "Params: [pipe] ; list the pipes (or one pipe) with their algorithm, limit and counter", Run: miList},
			{Name: "rl_reset_pipe", Help: "Params: pipe ; reset the counter of a pipe", Run: miReset},
		},
	})
}

func configure(mp modules.Params) (func(), error) {
	iv := mp.Int("timer_interval")
	if iv <= 0 {
		return nil, fmt.Errorf("timer_interval must be a positive number of seconds (got %d)", iv)
	}
	exp := mp.Int("expire_time")
	if exp < 0 {
		return nil, fmt.Errorf("expire_time cannot be negative (got %d)", exp)
	}
	if hs := mp.Int("hash_size"); hs <= 0 {
		return nil, fmt.Errorf("hash_size must be a positive power of 2 (got %d)", hs)
	}
	name := mp.Str("default_algorithm")
	algo, unsupported := parseAlgorithm(name)
	if algo == 0 {
		return nil, fmt.Errorf("default_algorithm %q: %s", name, algoError(unsupported))
	}
	win, slot := mp.Int("window_size"), mp.Int("slot_period")
	if win <= 0 || slot <= 0 || win*1000/slot < 1 {
		return nil, fmt.Errorf("window_size (%ds) and slot_period (%dms) must be positive, the window at least one slot", win, slot)
	}
	if u := mp.Str("cachedb_url"); u != "" {
		return nil, fmt.Errorf("cachedb_url %q: sipedge's ratelimit keeps its pipes in memory; distributed limiting is not supported", u)
	}
	if c := mp.Int("pipe_replication_cluster"); c != 0 {
		return nil, fmt.Errorf("pipe_replication_cluster %d: sipedge has no clusterer; pipes cannot be replicated", c)
	}
	p := &params{interval: int64(iv) * int64(time.Second), perInterval: mp.Int("limit_per_interval") != 0,
		expire: int64(exp) * int64(time.Second), defAlgo: algo, slots: win * 1000 / slot, slotMS: int64(slot)}
	return func() {
		cur.Store(p)
		sweepOnce.Do(func() { go sweeper() })
	}, nil
}

func algoError(unsupported bool) string {
	if unsupported {
		return "sipedge does not implement this algorithm (use TAILDROP, RED or SBT)"
	}
	return "unknown algorithm (use TAILDROP, RED or SBT)"
}

// sweeper forgets idle pipes every timer_interval, for the life of the
// process (counters roll on their own when a pipe is used or listed).
func sweeper() {
	for {
		time.Sleep(time.Duration(cur.Load().interval))
		pipes.expire(cur.Load(), now())
	}
}

func logf(m *msgctx.Msg, level int, format string, args ...any) {
	if m != nil && m.Host != nil {
		m.Host.Log(m, level, fmt.Sprintf(format, args...))
	}
}

// fixupCheck checks a constant algorithm and returns it.
func fixupCheck(args []check.FixupArg) (any, error) {
	if a := args[1]; a.Present && a.Const && a.Int < 0 {
		return nil, check.ArgError(1, "the limit cannot be negative (%d)", a.Int)
	}
	a := args[2]
	if !a.Present || !a.Const {
		return nil, nil
	}
	algo, unsupported := parseAlgorithm(a.Str)
	if algo == 0 {
		return nil, check.ArgError(2, "algorithm %q: %s", a.Str, algoError(unsupported))
	}
	return algo, nil
}

// rl_check(name, limit[, algorithm]): 1 below the limit, -1 over it.
func callCheck(m *msgctx.Msg, a *modules.Args) int {
	var algo Algorithm
	if a.Has(2) {
		if fa, ok := a.Fix.(Algorithm); ok {
			algo = fa
		} else {
			var unsupported bool
			if algo, unsupported = parseAlgorithm(a.Str(2)); algo == 0 {
				// OpenSIPS falls back to the default algorithm
				logf(m, msgctx.LErr, "rl_check: algorithm %q: %s; using the default", a.Str(2), algoError(unsupported))
			}
		}
	}
	name := a.Str(0)
	res := pipes.check(cur.Load(), name, a.Int(1), algo, now())
	if res.algoMismatch != 0 {
		logf(m, msgctx.LWarn, "rl_check: pipe %s keeps its algorithm %s (asked for %s)", name, res.algoMismatch, algo)
	}
	if res.allowed {
		return RetOK
	}
	return RetDrop
}

// rl_dec_count(name): 1, or -1 without such a pipe.
func callDec(m *msgctx.Msg, a *modules.Args) int { return change(m, a, "rl_dec_count", -1) }

// rl_reset_count(name): 1, or -1 without such a pipe.
func callReset(m *msgctx.Msg, a *modules.Args) int { return change(m, a, "rl_reset_count", 0) }

func change(m *msgctx.Msg, a *modules.Args, fn string, delta int64) int {
	name := a.Str(0)
	if !pipes.change(cur.Load(), name, delta, now()) {
		logf(m, msgctx.LErr, "%s: cannot find any pipe named %s", fn, name)
		return RetDrop
	}
	return RetOK
}

// $rl_count(name) is a pipe's counter; NULL when there is no such pipe.
func getCount(_ *msgctx.Msg, arg any, _ pvar.Index) value.Value {
	name, _ := arg.(string)
	n, ok := pipes.counter(cur.Load(), name, now())
	if !ok {
		return value.Null
	}
	return value.I(int(n))
}

func pipeMap(pi PipeInfo) map[string]any {
	return map[string]any{"id": pi.Name, "algorithm": pi.Algorithm.String(), "limit": pi.Limit, "counter": int(pi.Counter)}
}

func miList(params map[string]any) (any, error) {
	name := ""
	if raw, ok := params["pipe"]; ok && raw != nil {
		s, ok := raw.(string)
		if !ok {
			return nil, errors.New("parameter pipe must be a string")
		}
		name = s
	}
	list := pipes.list(cur.Load(), now(), name)
	if name != "" {
		if len(list) == 0 {
			return nil, errors.New("pipe not found")
		}
		return map[string]any{"Pipe": pipeMap(list[0]), "drop_rate": 0}, nil
	}
	out := make([]any, len(list))
	for i, pi := range list {
		out[i] = pipeMap(pi)
	}
	return map[string]any{"Pipes": out, "drop_rate": 0}, nil
}

func miReset(params map[string]any) (any, error) {
	raw, ok := params["pipe"]
	name, isStr := raw.(string)
	if !ok || !isStr || strings.TrimSpace(name) == "" {
		return nil, errors.New("missing parameter pipe")
	}
	if !pipes.change(cur.Load(), name, 0, now()) {
		return nil, fmt.Errorf("pipe %s not found", name)
	}
	return "OK", nil
}
