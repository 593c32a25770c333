// Package cachedblocal is OpenSIPS's cachedb_local module — an in-memory
// key/value cache shared by every worker — together with the core
// cache_store/cache_fetch/cache_remove/cache_add/cache_sub/
// cache_counter_fetch functions for its "local" backend.
//
// The cache belongs to the process: it outlives script reloads, and with
// enable_restart_persistency it is written to a snapshot file and read back
// after a restart.
package cachedblocal

import (
	"fmt"
	"strings"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name; scripts may load it as "cachedb_local.so" or by
// its 2.x name "cached_local.so".
const Name = "cachedb_local"

// Return codes of the cache functions (OpenSIPS's cachedb core).
const (
	RetOK       = 1
	RetError    = -1
	RetNotFound = -2
	RetNotInt   = -3 // cache_counter_fetch on a value that is not an integer
)

func init() {
	str := check.ArgSpec{Kind: check.ArgStr}
	integer := check.ArgSpec{Kind: check.ArgInt}
	out := check.ArgSpec{Kind: check.ArgVar, Writable: true}
	modules.RegisterCore(
		&modules.Func{Name: "cache_store", Args: []check.ArgSpec{str, str, str, {Kind: check.ArgInt, Optional: true}},
			Fixup: fixupCache, Call: callStore},
		&modules.Func{Name: "cache_remove", Args: []check.ArgSpec{str, str}, Fixup: fixupCache, Call: callRemove},
		&modules.Func{Name: "cache_fetch", Args: []check.ArgSpec{str, str, out}, Fixup: fixupCache, Call: callFetch},
		&modules.Func{Name: "cache_counter_fetch", Args: []check.ArgSpec{str, str, out}, Fixup: fixupCache, Call: callCounterFetch},
		&modules.Func{Name: "cache_add", Args: []check.ArgSpec{str, str, integer, integer, {Kind: check.ArgVar, Writable: true, Optional: true}},
			Fixup: fixupCache, Call: callAdd},
		&modules.Func{Name: "cache_sub", Args: []check.ArgSpec{str, str, integer, integer, {Kind: check.ArgVar, Writable: true, Optional: true}},
			Fixup: fixupCache, Call: callSub},
	)
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "cache_collections", Kind: modules.ParamStr, Multi: true},
			{Name: "cachedb_url", Kind: modules.ParamStr, Multi: true},
			{Name: "cache_clean_period", Kind: modules.ParamInt, Default: value.I(DefaultCleanPeriod)},
			{Name: "exec_threshold", Kind: modules.ParamInt, Default: value.I(0)},
			{Name: "cluster_id", Kind: modules.ParamInt, Default: value.I(0)},
			{Name: "cluster_persistency", Kind: modules.ParamStr},
			{Name: "enable_restart_persistency", Kind: modules.ParamInt, Default: value.I(0)},
			// sipedge: where the restart-persistency snapshot lives.
			{Name: "restart_persistency_dir", Kind: modules.ParamStr, Default: value.S(DefaultPersistencyDir)},
			// 2.x: the single table's size; accepted and ignored.
			{Name: "cache_table_size", Kind: modules.ParamInt},
		},
		Configure: configure,
		Shutdown:  Flush,
		Funcs: []*modules.Func{
			{Name: "cache_remove_chunk", Args: []check.ArgSpec{str, {Kind: check.ArgStr, Optional: true}},
				Routes: check.Routes(ast.RequestRoute, ast.OnReplyRoute, ast.FailureRoute, ast.BranchRoute, ast.LocalRoute, ast.StartupRoute),
				Call:   callRemoveChunk},
		},
		MI: []modules.MICommand{
			{Name: "cache_store", Help: "Params: system attr value [expire] ; store a value in a cachedb backend (\"local\")", Run: miStore},
			{Name: "cache_fetch", Help: "Params: system attr ; fetch a value from a cachedb backend", Run: miFetch},
			{Name: "cache_remove", Help: "Params: system attr ; remove a value from a cachedb backend", Run: miRemove},
			{Name: "cache_fetch_chunk", Help: "Params: glob [collection] ; list the local cache entries whose key matches glob", Run: miFetchChunk},
			{Name: "cache_remove_chunk", Help: "Params: glob [collection] ; remove the local cache entries whose key matches glob", Run: miRemoveChunk},
		},
	})
}

func logf(m *msgctx.Msg, level int, format string, args ...any) {
	if m != nil && m.Host != nil {
		m.Host.Log(m, level, fmt.Sprintf(format, args...))
	}
}

// backend is a parsed cachedb id ("local" or "local:group").
type backend struct{ group string }

// parseBackend splits a cachedb id; only the "local" engine exists here.
func parseBackend(id string) (*backend, error) {
	engine, group, _ := strings.Cut(id, ":")
	if engine != "local" {
		if engine == "" {
			return nil, fmt.Errorf("empty cachedb backend name")
		}
		return nil, fmt.Errorf("cachedb backend %q is not available: sipedge only has \"local\" (cachedb_local)", engine)
	}
	return &backend{group: group}, nil
}

// fixupCache checks a constant backend id, attribute (key) and expire; the
// parsed backend comes back as Args.Fix.
func fixupCache(args []check.FixupArg) (any, error) {
	var b *backend
	if a := args[0]; a.Present && a.Const {
		var err error
		if b, err = parseBackend(a.Str); err != nil {
			return nil, check.ArgError(0, "%v", err)
		}
	}
	if a := args[1]; a.Present && a.Const && a.Str == "" {
		return nil, check.ArgError(1, "the cache key (attribute) cannot be empty")
	}
	// cache_store's and cache_add/cache_sub's expire
	if len(args) > 3 {
		if a := args[3]; a.Present && a.Const && a.Int < 0 {
			return nil, check.ArgError(3, "expire must be 0 (never) or a number of seconds, not %d", a.Int)
		}
	}
	return b, nil
}

// resolve finds the collection a call's backend argument names.
func resolve(m *msgctx.Msg, fn string, a *modules.Args) *Collection {
	b, _ := a.Fix.(*backend)
	if b == nil {
		var err error
		if b, err = parseBackend(a.Str(0)); err != nil {
			logf(m, msgctx.LErr, "%s: %v", fn, err)
			return nil
		}
	}
	c := Lookup(b.group)
	if c == nil {
		id := "local"
		if b.group != "" {
			id += ":" + b.group
		}
		logf(m, msgctx.LErr, "%s: no cachedb_url defines %q (check the cachedb_local cachedb_url modparam)", fn, id)
	}
	return c
}

// key reads the attribute argument; OpenSIPS refuses an empty one.
func key(m *msgctx.Msg, fn string, a *modules.Args) (string, bool) {
	k := a.Str(1)
	if k == "" {
		logf(m, msgctx.LErr, "%s: attribute cannot be empty", fn)
		return "", false
	}
	return k, true
}

// cache_store(backend, key, value[, expire]).
func callStore(m *msgctx.Msg, a *modules.Args) int {
	c := resolve(m, "cache_store", a)
	if c == nil {
		return RetError
	}
	k, ok := key(m, "cache_store", a)
	if !ok {
		return RetError
	}
	expire := 0
	if a.Has(3) {
		expire = a.Int(3)
	}
	c.Store(k, a.Str(2), expire)
	return RetOK
}

// cache_remove(backend, key): 1 whether or not the key existed.
func callRemove(m *msgctx.Msg, a *modules.Args) int {
	c := resolve(m, "cache_remove", a)
	if c == nil {
		return RetError
	}
	k, ok := key(m, "cache_remove", a)
	if !ok {
		return RetError
	}
	c.Remove(k)
	return RetOK
}

// cache_fetch(backend, key, $out): 1 and $out set, -2 when the key is
// missing or expired ($out untouched), -1 on error.
func callFetch(m *msgctx.Msg, a *modules.Args) int {
	c := resolve(m, "cache_fetch", a)
	if c == nil {
		return RetError
	}
	k, ok := key(m, "cache_fetch", a)
	if !ok {
		return RetError
	}
	v, found := c.Fetch(k)
	if !found {
		return RetNotFound
	}
	if err := a.Ref(2).Set(m, "=", value.S(v)); err != nil {
		logf(m, msgctx.LErr, "cache_fetch: cannot set the result: %v", err)
		return RetError
	}
	return RetOK
}

// cache_counter_fetch(backend, key, $out): 1 and $out set to an integer,
// -2 when missing, -3 when the value is not an integer.
func callCounterFetch(m *msgctx.Msg, a *modules.Args) int {
	c := resolve(m, "cache_counter_fetch", a)
	if c == nil {
		return RetError
	}
	k, ok := key(m, "cache_counter_fetch", a)
	if !ok {
		return RetError
	}
	n, found, err := c.CounterFetch(k)
	switch {
	case !found:
		return RetNotFound
	case err != nil:
		logf(m, msgctx.LErr, "cache_counter_fetch: %q is not a counter", k)
		return RetNotInt
	}
	if err := a.Ref(2).Set(m, "=", value.I(n)); err != nil {
		logf(m, msgctx.LErr, "cache_counter_fetch: cannot set the result: %v", err)
		return RetError
	}
	return RetOK
}

func callAdd(m *msgctx.Msg, a *modules.Args) int { return addSub(m, a, "cache_add", 1) }
func callSub(m *msgctx.Msg, a *modules.Args) int { return addSub(m, a, "cache_sub", -1) }

// cache_add/cache_sub(backend, key, n, expire[, $new]).
func addSub(m *msgctx.Msg, a *modules.Args, fn string, sign int) int {
	c := resolve(m, fn, a)
	if c == nil {
		return RetError
	}
	k, ok := key(m, fn, a)
	if !ok {
		return RetError
	}
	n, err := c.Add(k, sign*a.Int(2), a.Int(3))
	if err != nil {
		logf(m, msgctx.LErr, "%s: %q does not hold an integer", fn, k)
		return RetError
	}
	if a.Has(4) {
		if err := a.Ref(4).Set(m, "=", value.I(n)); err != nil {
			logf(m, msgctx.LErr, "%s: cannot set the result: %v", fn, err)
			return RetError
		}
	}
	return RetOK
}

// cache_remove_chunk([collection,] glob): with one argument it is the glob
// and the default collection is used.
func callRemoveChunk(m *msgctx.Msg, a *modules.Args) int {
	cfg := cur.Load()
	c, glob := cfg.first, a.Str(0)
	if a.Has(1) {
		name := a.Str(0)
		glob = a.Str(1)
		if c = cfg.byName[name]; c == nil {
			logf(m, msgctx.LErr, "cache_remove_chunk: collection <%s> not defined", name)
			return RetError
		}
	}
	c.RemoveChunk(glob)
	return RetOK
}
