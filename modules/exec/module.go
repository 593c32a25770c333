// Package exec is OpenSIPS's exec module: exec() runs an external command
// through /bin/sh, optionally feeding it standard input and capturing its
// standard output and error into script variables. The 2.x helpers
// exec_avp(), exec_getenv() and exec_msg() are kept for old configs.
//
// As in OpenSIPS the command is a shell command line: pvars expanded into it
// are not quoted, so a value holding shell syntax ($fU = "a;rm -rf /") runs
// as shell syntax. Quote such values in the script (see README.md).
package exec

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/lang/source"
	"github.com/sipedge/sipedge/lang/syntax"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "exec"

// MaxOutput is how much of a stream exec() keeps (OpenSIPS's 32 KiB buffer).
const MaxOutput = 32 * 1024

// config is one generation's modparams.
type config struct {
	setvars    bool
	timeToKill time.Duration // 0: never
	timeout    time.Duration // 0: wait for the output as long as it takes
}

var cur atomic.Pointer[config]

func init() {
	cur.Store(&config{})
	str := check.ArgSpec{Kind: check.ArgStr}
	optStr := check.ArgSpec{Kind: check.ArgStr, Optional: true}
	outVar := check.ArgSpec{Kind: check.ArgVar, Optional: true, Writable: true}
	envVar := check.ArgSpec{Kind: check.ArgVar, Optional: true}
	all := check.Routes(ast.RequestRoute, ast.FailureRoute, ast.LocalRoute, ast.StartupRoute,
		ast.TimerRoute, ast.EventRoute, ast.OnReplyRoute)
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "setvars", Kind: modules.ParamInt, Default: value.I(0)},
			{Name: "time_to_kill", Kind: modules.ParamInt, Default: value.I(0)},
			// sipedge: the longest exec() waits for a command's output, in
			// milliseconds (0: no limit, as OpenSIPS).
			{Name: "timeout", Kind: modules.ParamInt, Default: value.I(0)},
			// 1.x: exec_msg in a separate process; accepted, no effect.
			{Name: "async", Kind: modules.ParamInt, Default: value.I(0)},
		},
		Configure: configure,
		Funcs: []*modules.Func{
			{Name: "exec", Args: []check.ArgSpec{str, optStr, outVar, outVar, envVar},
				Routes: all, Fixup: fixupExec, Call: callExec},
			{Name: "exec_avp", Args: []check.ArgSpec{str, {Kind: check.ArgStr, Optional: true, NoExpand: true}},
				Routes: all, Fixup: fixupExecAVP, Call: callExecAVP},
			{Name: "exec_getenv", Args: []check.ArgSpec{str, {Kind: check.ArgVar, Optional: true, Writable: true}},
				Routes: all, Fixup: fixupGetenv, Call: callGetenv},
			{Name: "exec_msg", Args: []check.ArgSpec{str},
				Routes: check.Routes(ast.RequestRoute, ast.FailureRoute, ast.LocalRoute, ast.TimerRoute,
					ast.EventRoute, ast.OnReplyRoute),
				Call: callExecMsg},
		},
	})
}

func configure(p modules.Params) (func(), error) {
	ttk, to := p.Int("time_to_kill"), p.Int("timeout")
	if ttk < 0 {
		return nil, fmt.Errorf("time_to_kill %d is negative", ttk)
	}
	if to < 0 {
		return nil, fmt.Errorf("timeout %d is negative", to)
	}
	c := &config{
		setvars:    p.Int("setvars") != 0,
		timeToKill: time.Duration(ttk) * time.Second,
		timeout:    time.Duration(to) * time.Millisecond,
	}
	return func() { cur.Store(c) }, nil
}

func logf(m *msgctx.Msg, level int, format string, args ...any) {
	if m != nil && m.Host != nil {
		m.Host.Log(m, level, "exec: "+fmt.Sprintf(format, args...))
	}
}

// ---- exec(command[, input[, out[, err[, env]]]]) ----

func fixupExec(args []check.FixupArg) (any, error) {
	if a := args[0]; a.Present && a.Const && strings.TrimSpace(a.Str) == "" {
		return nil, check.ArgError(0, "empty command")
	}
	if a := args[4]; a.Present && a.PVar != "" && a.PVar != "avp" {
		return nil, check.ArgError(4, "the environment must be an AVP ($avp(name)), not $%s", a.PVar)
	}
	return nil, nil
}

func ref(a *modules.Args, i int) *pvar.Ref {
	if !a.Has(i) || i >= len(a.Refs) {
		return nil
	}
	return a.Refs[i]
}

func callExec(m *msgctx.Msg, a *modules.Args) int {
	c := cur.Load()
	command := a.Str(0)
	if strings.TrimSpace(command) == "" {
		logf(m, msgctx.LErr, "exec: empty command")
		return -1
	}
	job := &job{command: command, cfg: c}
	if a.Has(1) {
		job.input = a.Str(1)
	}
	outRef, errRef, envRef := ref(a, 2), ref(a, 3), ref(a, 4)
	if envRef != nil {
		vals := avpValues(m, envRef)
		if len(vals) == 0 {
			logf(m, msgctx.LErr, "exec: %s has no value to pass in the environment", envRef.Text)
			return -1
		}
		for i, v := range vals {
			job.env = append(job.env, fmt.Sprintf("OSIPS_EXEC_%d=%s", i, v.AsString()))
		}
	}
	if c.setvars {
		job.env = append(job.env, sipVars(m)...)
	}
	job.wantOut, job.wantErr = outRef != nil, errRef != nil
	res, err := job.run()
	if err != nil {
		logf(m, msgctx.LErr, "exec %q: %v", command, err)
		return -1
	}
	for _, o := range []struct {
		r    *pvar.Ref
		data []byte
	}{{outRef, res.out}, {errRef, res.err}} {
		if o.r == nil || len(o.data) == 0 {
			continue // OpenSIPS leaves the variable alone when nothing came
		}
		if err := o.r.Set(m, "=", value.S(string(o.data))); err != nil {
			logf(m, msgctx.LErr, "exec: setting %s: %v", o.r.Text, err)
			return -1
		}
	}
	return 1
}

// avpValues lists an AVP's values, newest first.
func avpValues(m *msgctx.Msg, r *pvar.Ref) []value.Value {
	var out []value.Value
	for i := 0; i < 1<<16; i++ {
		v, err := r.GetAt(m, i)
		if err != nil || v.IsNull() {
			break
		}
		out = append(out, v)
	}
	return out
}

// ---- exec_avp(command[, avplist]) ----

// maxAVPLines is how many output lines exec_avp() stores without an AVP
// list (in $avp(1), $avp(2) …).
const maxAVPLines = 32

type avpList struct{ refs []*pvar.Ref }

func fixupExecAVP(args []check.FixupArg) (any, error) {
	if a := args[0]; a.Present && a.Const && strings.TrimSpace(a.Str) == "" {
		return nil, check.ArgError(0, "empty command")
	}
	l := &avpList{}
	a := args[1]
	if a.Present && !a.Const {
		return nil, check.ArgError(1, "the AVP list must be a constant string")
	}
	var names []*ast.PVar
	if a.Present {
		for _, f := range strings.FieldsFunc(a.Str, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			pv, n, err := syntax.ParsePVar(f, source.Pos{})
			if err != nil || n != len(f) || pv.Name != "avp" {
				return nil, check.ArgError(1, "%q is not an AVP ($avp(name))", f)
			}
			names = append(names, pv)
		}
	}
	for i := len(names); i < maxAVPLines; i++ {
		n := fmt.Sprint(i + 1)
		names = append(names, &ast.PVar{Name: "avp", Arg: n, HasArg: true})
	}
	if a.Slots == nil && args[0].Slots == nil {
		return l, nil // a unit test without slots
	}
	slots := a.Slots
	if slots == nil {
		slots = args[0].Slots
	}
	for _, pv := range names {
		r, err := pvar.Compile(pv, slots)
		if err != nil {
			return nil, check.ArgError(1, "%v", err)
		}
		l.refs = append(l.refs, r)
	}
	return l, nil
}

func callExecAVP(m *msgctx.Msg, a *modules.Args) int {
	l, _ := a.Fix.(*avpList)
	if l == nil {
		return -1
	}
	j := &job{command: a.Str(0), cfg: cur.Load(), wantOut: true}
	if j.cfg.setvars {
		j.env = sipVars(m)
	}
	res, err := j.run()
	if err != nil {
		logf(m, msgctx.LErr, "exec_avp %q: %v", j.command, err)
		return -1
	}
	lines := strings.Split(strings.TrimSuffix(string(res.out), "\n"), "\n")
	if len(res.out) == 0 {
		lines = nil
	}
	for i, line := range lines {
		if i >= len(l.refs) {
			logf(m, msgctx.LWarn, "exec_avp: output has more than %d lines; the rest is dropped", len(l.refs))
			break
		}
		if err := l.refs[i].Set(m, "=", value.S(strings.TrimSuffix(line, "\r"))); err != nil {
			logf(m, msgctx.LErr, "exec_avp: %v", err)
			return -1
		}
	}
	return 1
}

// ---- exec_getenv(name[, avp]) ----

type getenvFix struct{ def *pvar.Ref }

func fixupGetenv(args []check.FixupArg) (any, error) {
	if args[1].Present {
		return &getenvFix{}, nil
	}
	slots := args[0].Slots
	if slots == nil {
		return &getenvFix{}, nil
	}
	r, err := pvar.Compile(&ast.PVar{Name: "avp", Arg: "1", HasArg: true}, slots)
	if err != nil {
		return nil, err
	}
	return &getenvFix{def: r}, nil
}

func callGetenv(m *msgctx.Msg, a *modules.Args) int {
	name := strings.TrimSpace(a.Str(0))
	v, ok := lookupEnv(name)
	if !ok {
		return -1
	}
	r := ref(a, 1)
	if r == nil {
		if f, _ := a.Fix.(*getenvFix); f != nil {
			r = f.def
		}
	}
	if r == nil {
		return -1
	}
	if err := r.Set(m, "=", value.S(v)); err != nil {
		logf(m, msgctx.LErr, "exec_getenv: %v", err)
		return -1
	}
	return 1
}

// ---- exec_msg(command) ----

func callExecMsg(m *msgctx.Msg, a *modules.Args) int {
	var raw string
	switch {
	case m.Req != nil:
		raw = m.Req.String()
	case m.Resp != nil:
		raw = m.Resp.String()
	default:
		logf(m, msgctx.LErr, "exec_msg: there is no SIP message in this route")
		return -1
	}
	j := &job{command: a.Str(0), cfg: cur.Load(), input: raw, wait: true}
	if j.cfg.setvars {
		j.env = sipVars(m)
	}
	res, err := j.run()
	if err != nil {
		logf(m, msgctx.LErr, "exec_msg %q: %v", j.command, err)
		return -1
	}
	if res.exitCode != 0 {
		return -1
	}
	return 1
}

var errTimeout = errors.New("timed out waiting for the output")
