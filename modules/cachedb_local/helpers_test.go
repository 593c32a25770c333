package cachedblocal

import (
	"slices"
	"testing"
	"time"

	"github.com/sipedge/sipedge/internal/modtest"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	_ "github.com/sipedge/sipedge/modules/core"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

// Thin names over internal/modtest, bound to this module.

type (
	testHost = modtest.Host
	// dyn marks a string argument that is not a constant (its value still
	// reaches the call).
	dyn = modtest.DynStr
)

var (
	cs = modtest.CS
	ci = modtest.CI
)

func newMsg() (*msgctx.Msg, *testHost) {
	h := &testHost{}
	return &msgctx.Msg{Host: h}, h
}

// newRecorder is a writable test pvar $rec that keeps every value set.
func newRecorder() *modtest.Recorder { return &modtest.Recorder{Name: "rec"} }

// modOf is the module that registers function name: cachedb_local for its
// own exports, core for the cache_* functions it adds to the core.
func modOf(name string) string {
	if info := modules.Lookup(Name); info != nil &&
		slices.ContainsFunc(info.Funcs, func(f *modules.Func) bool { return f.Name == name }) {
		return Name
	}
	return modules.CoreName
}

func fn(t testing.TB, name string) *modules.Func { return modtest.Fn(t, modOf(name), name) }
func fixup(t testing.TB, f *modules.Func, args ...check.FixupArg) (any, error) {
	return modtest.Fixup(t, f, args...)
}
func args(t testing.TB, f *modules.Func, vals ...any) *modules.Args {
	t.Helper()
	return modtest.Args(t, f, vals...)
}
func call(t testing.TB, m *msgctx.Msg, name string, vals ...any) int {
	t.Helper()
	return modtest.Call(t, modOf(name), m, name, vals...)
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
