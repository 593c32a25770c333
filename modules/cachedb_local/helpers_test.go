package cachedblocal

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	_ "github.com/sipedge/sipedge/modules/core"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

type logLine struct {
	level int
	text  string
}

type testHost struct{ logs []logLine }

func (h *testHost) Log(_ *msgctx.Msg, level int, text string) {
	h.logs = append(h.logs, logLine{level, text})
}
func (h *testHost) Reply(*msgctx.Msg, int, string) error { return nil }

func (h *testHost) hasLog(level int, substr string) bool {
	for _, l := range h.logs {
		if l.level == level && strings.Contains(l.text, substr) {
			return true
		}
	}
	return false
}

func newMsg() (*msgctx.Msg, *testHost) {
	h := &testHost{}
	return &msgctx.Msg{Host: h}, h
}

// reset empties every collection and restores the default configuration
// and clock when the test ends (and now).
func reset(t testing.TB) {
	do := func() {
		collMu.Lock()
		for _, c := range collections {
			c.clear()
		}
		collMu.Unlock()
		c := collection(DefaultCollection)
		cur.Store(&config{def: c, byName: map[string]*Collection{DefaultCollection: c}, first: c,
			clean: DefaultCleanPeriod * time.Second})
		persistOn.Store(false)
		dirty.Store(false)
		clockOffset.Store(0)
	}
	do()
	t.Cleanup(do)
}

func advance(d time.Duration) { clockOffset.Add(int64(d)) }

// fn finds a function among the core and cachedb_local exports.
func fn(t testing.TB, name string) *modules.Func {
	t.Helper()
	for _, mod := range []string{modules.CoreName, Name} {
		info := modules.Lookup(mod)
		if info == nil {
			continue
		}
		for _, f := range info.Funcs {
			if f.Name == name {
				return f
			}
		}
	}
	t.Fatalf("function %s not registered", name)
	return nil
}

func cs(s string) check.FixupArg { return check.FixupArg{Present: true, Const: true, Str: s} }
func ci(n int) check.FixupArg    { return check.FixupArg{Present: true, Const: true, Int: n} }

func fixup(f *modules.Func, args ...check.FixupArg) (any, error) {
	for len(args) < len(f.Args) {
		args = append(args, check.FixupArg{})
	}
	if f.Fixup == nil {
		return nil, nil
	}
	return f.Fixup(args)
}

// dyn marks a string argument that is not a constant (its value still
// reaches the call).
type dyn string

// args builds the fixed-up arguments of a call: strings, ints, dyn strings
// or *pvar.Ref.
func args(t testing.TB, f *modules.Func, vals ...any) *modules.Args {
	t.Helper()
	var fargs []check.FixupArg
	a := &modules.Args{Refs: make([]*pvar.Ref, len(f.Args))}
	for i, v := range vals {
		switch v := v.(type) {
		case string:
			fargs = append(fargs, cs(v))
			a.Vals = append(a.Vals, value.S(v))
		case dyn:
			fargs = append(fargs, check.FixupArg{Present: true})
			a.Vals = append(a.Vals, value.S(string(v)))
		case int:
			fargs = append(fargs, ci(v))
			a.Vals = append(a.Vals, value.SI(itoa(v), v))
		case *pvar.Ref:
			fargs = append(fargs, check.FixupArg{Present: true, PVar: v.Spec.Name})
			a.Vals = append(a.Vals, value.Null)
			a.Refs[i] = v
		default:
			t.Fatalf("bad arg %T", v)
		}
		a.Given = append(a.Given, true)
	}
	for len(a.Given) < len(f.Args) {
		a.Given = append(a.Given, false)
		a.Vals = append(a.Vals, value.Null)
	}
	fix, err := fixup(f, fargs...)
	if err != nil {
		t.Fatalf("%s fixup: %v", f.Name, err)
	}
	a.Fix = fix
	return a
}

func call(t testing.TB, m *msgctx.Msg, name string, vals ...any) int {
	t.Helper()
	f := fn(t, name)
	return f.Call(m, args(t, f, vals...))
}

func itoa(n int) string { return value.I(n).AsString() }

// recorder is a writable test pvar that keeps every value set.
type recorder struct {
	vals []value.Value
	fail bool
}

func (r *recorder) ref() *pvar.Ref {
	return &pvar.Ref{Text: "$rec", Spec: &pvar.Spec{
		Name:     "rec",
		Writable: true,
		Get: func(*msgctx.Msg, any, pvar.Index) value.Value {
			if len(r.vals) == 0 {
				return value.Null
			}
			return r.vals[len(r.vals)-1]
		},
		Set: func(_ *msgctx.Msg, _ any, _ pvar.Index, _ string, v value.Value) error {
			if r.fail {
				return errors.New("cannot set")
			}
			r.vals = append(r.vals, v)
			return nil
		},
	}}
}

func (r *recorder) last() value.Value {
	if len(r.vals) == 0 {
		return value.Null
	}
	return r.vals[len(r.vals)-1]
}
