package cachedblocal

import (
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

func TestRegisteredAsCore(t *testing.T) {
	core := modules.Lookup(modules.CoreName)
	for _, name := range []string{"cache_store", "cache_remove", "cache_fetch", "cache_counter_fetch", "cache_add", "cache_sub"} {
		found := false
		for _, f := range core.Funcs {
			found = found || f.Name == name
		}
		if !found {
			t.Errorf("%s is not a core function", name)
		}
	}
	if modules.Lookup(Name) == nil {
		t.Fatal("cachedb_local not registered")
	}
}

func TestCacheFunctions(t *testing.T) {
	reset(t)
	m, h := newMsg()
	out := newRecorder()
	steps := []struct {
		name string
		args []any
		want int
		val  value.Value // expected last value of out, when not Null
	}{
		{"cache_fetch", []any{"local", "+616", out.Ref()}, RetNotFound, value.Null},
		{"cache_store", []any{"local", "+616", "HIGHRISK"}, RetOK, value.Null},
		{"cache_fetch", []any{"local", "+616", out.Ref()}, RetOK, value.S("HIGHRISK")},
		{"cache_fetch", []any{dyn("local"), dyn("+616"), out.Ref()}, RetOK, value.S("HIGHRISK")},
		{"cache_counter_fetch", []any{"local", "+616", out.Ref()}, RetNotInt, value.Null},
		{"cache_remove", []any{"local", "+616"}, RetOK, value.Null},
		{"cache_remove", []any{"local", "+616"}, RetOK, value.Null}, // absent: still 1
		{"cache_fetch", []any{"local", "+616", out.Ref()}, RetNotFound, value.Null},
		{"cache_add", []any{"local", "calls", 2, 0, out.Ref()}, RetOK, value.I(2)},
		{"cache_add", []any{"local", "calls", 5, 0}, RetOK, value.Null},
		{"cache_sub", []any{"local", "calls", 3, 0, out.Ref()}, RetOK, value.I(4)},
		{"cache_counter_fetch", []any{"local", "calls", out.Ref()}, RetOK, value.I(4)},
		{"cache_fetch", []any{"local", "calls", out.Ref()}, RetOK, value.S("4")},
		{"cache_counter_fetch", []any{"local", "nope", out.Ref()}, RetNotFound, value.Null},
		{"cache_store", []any{"local", "word", "abc"}, RetOK, value.Null},
		{"cache_add", []any{"local", "word", 1, 0, out.Ref()}, RetError, value.Null},
		// run-time errors
		{"cache_store", []any{dyn("redis"), "k", "v"}, RetError, value.Null},
		{"cache_store", []any{dyn("local:nogroup"), "k", "v"}, RetError, value.Null},
		{"cache_store", []any{"local", dyn(""), "v"}, RetError, value.Null},
		{"cache_fetch", []any{"local", dyn(""), out.Ref()}, RetError, value.Null},
	}
	for i, s := range steps {
		before := len(out.Vals)
		if got := call(t, m, s.name, s.args...); got != s.want {
			t.Fatalf("step %d %s%v = %d, want %d (logs %v)", i, s.name, s.args, got, s.want, h.Logs)
		}
		if !s.val.IsNull() {
			if len(out.Vals) == before || out.Last() != s.val {
				t.Fatalf("step %d %s: out = %#v, want %#v", i, s.name, out.Last(), s.val)
			}
		} else if len(out.Vals) != before {
			t.Fatalf("step %d %s: out was set to %#v", i, s.name, out.Last())
		}
	}
	if !h.HasLog(msgctx.LErr, `backend "redis" is not available`) || !h.HasLog(msgctx.LErr, `"local:nogroup"`) ||
		!h.HasLog(msgctx.LErr, "attribute cannot be empty") {
		t.Fatalf("logs %v", h.Logs)
	}
	// a variable that cannot be set is an error
	out.Fail = true
	call(t, m, "cache_store", "local", "k", "v")
	if rc := call(t, m, "cache_fetch", "local", "k", out.Ref()); rc != RetError {
		t.Fatal(rc)
	}
}

func TestCacheStoreExpire(t *testing.T) {
	reset(t)
	m, _ := newMsg()
	out := newRecorder()
	call(t, m, "cache_store", "local", "k", "v", 5)
	advance(5 * time.Second)
	if rc := call(t, m, "cache_fetch", "local", "k", out.Ref()); rc != RetNotFound {
		t.Fatal(rc)
	}
	// cache_add's expire applies when it creates the counter only
	call(t, m, "cache_add", "local", "c", 1, 3)
	call(t, m, "cache_add", "local", "c", 1, 100)
	advance(3 * time.Second)
	if rc := call(t, m, "cache_counter_fetch", "local", "c", out.Ref()); rc != RetNotFound {
		t.Fatal(rc)
	}
}

func TestFixups(t *testing.T) {
	bad := []struct {
		name string
		args []check.FixupArg
		arg  int
		msg  string
	}{
		{"cache_store", []check.FixupArg{cs("redis"), cs("k"), cs("v")}, 0, "not available"},
		{"cache_fetch", []check.FixupArg{cs(""), cs("k")}, 0, "empty cachedb backend"},
		{"cache_store", []check.FixupArg{cs("local"), cs(""), cs("v")}, 1, "cannot be empty"},
		{"cache_store", []check.FixupArg{cs("local"), cs("k"), cs("v"), ci(-1)}, 3, "expire"},
		{"cache_add", []check.FixupArg{cs("local"), cs("k"), ci(1), ci(-5)}, 3, "expire"},
	}
	for _, b := range bad {
		_, err := fixup(t, fn(t, b.name), b.args...)
		fe, ok := err.(*check.FixupError)
		if !ok || fe.Arg != b.arg || !strings.Contains(err.Error(), b.msg) {
			t.Errorf("%s%v: %v", b.name, b.args, err)
		}
	}
	fix, err := fixup(t, fn(t, "cache_fetch"), cs("local:grp"), cs("k"))
	if err != nil || fix.(*backend).group != "grp" {
		t.Fatal(fix, err)
	}
	// dynamic backends and keys are checked at run time
	if fix, err := fixup(t, fn(t, "cache_fetch"), check.FixupArg{Present: true}, check.FixupArg{Present: true}); err != nil || fix.(*backend) != nil {
		t.Fatal(fix, err)
	}
	// negative increments are fine
	if _, err := fixup(t, fn(t, "cache_add"), cs("local"), cs("k"), ci(-1), ci(0)); err != nil {
		t.Fatal(err)
	}
}

func params(kv ...any) modules.Params {
	p := modules.Params{}
	for _, spec := range modules.Lookup(Name).Params {
		if !spec.Default.IsNull() {
			p[spec.Name] = []value.Value{spec.Default}
		}
	}
	for i := 0; i < len(kv); i += 2 {
		name := kv[i].(string)
		var v value.Value
		switch x := kv[i+1].(type) {
		case string:
			v = value.S(x)
		case int:
			v = value.I(x)
		}
		p[name] = append(p[name], v)
	}
	return p
}

func TestConfigure(t *testing.T) {
	bad := []struct {
		p   modules.Params
		msg string
	}{
		{params("cache_collections", "a; a"), "more than once"},
		{params("cache_collections", "a", "cache_collections", "a"), "more than once"},
		{params("cache_collections", "a=x"), "invalid hash size"},
		{params("cache_collections", "a=40"), "invalid hash size"},
		{params("cachedb_url", "local:///nope"), "not defined"},
		{params("cachedb_url", "redis://127.0.0.1/"), "start with \"local\""},
		{params("cachedb_url", "local"), "want local"},
		{modules.Params{"cache_clean_period": {value.I(0)}}, "cache_clean_period"},
		{params("cluster_id", 1), "no clusterer"},
		{params("cluster_persistency", "bogus"), "cluster_persistency"},
		{params("enable_restart_persistency", 2), "0 or 1"},
	}
	for _, b := range bad {
		if _, err := configure(b.p); err == nil || !strings.Contains(err.Error(), b.msg) {
			t.Errorf("%v: %v", b.p, err)
		}
	}
	good := []modules.Params{
		params(),
		params("cache_table_size", 10), // the seed's 2.x parameter
		params("cache_collections", "collection1; collection2=5; default=4", "cachedb_url", "local://",
			"cachedb_url", "local:///collection1", "cachedb_url", "local:group2:///collection2"),
		params("cache_collections", "repl/r", "cachedb_url", "local:r:///repl", "cluster_persistency", "none", "exec_threshold", 100),
	}
	for _, p := range good {
		if _, err := configure(p); err != nil {
			t.Errorf("%v: %v", p, err)
		}
	}
}

func TestCollectionsAndURLs(t *testing.T) {
	reset(t)
	apply, err := configure(params("cache_collections", "collection1; collection2=5; default=4",
		"cachedb_url", "local://", "cachedb_url", "local:///collection1", "cachedb_url", "local:group2:///collection2"))
	if err != nil {
		t.Fatal(err)
	}
	apply()
	if Lookup("").Name() != "collection1" || Lookup("group2").Name() != "collection2" || Lookup("x") != nil {
		t.Fatal(Lookup(""), Lookup("group2"))
	}
	m, _ := newMsg()
	out := newRecorder()
	call(t, m, "cache_store", "local", "k", "one")
	call(t, m, "cache_store", "local:group2", "k", "two")
	if collection("collection1").Len() != 1 || collection("collection2").Len() != 1 || collection(DefaultCollection).Len() != 0 {
		t.Fatal("stores went to the wrong collections")
	}
	if call(t, m, "cache_fetch", "local:group2", "k", out.Ref()); out.Last() != value.S("two") {
		t.Fatal(out.Last())
	}
	// cache_remove_chunk names collections, not groups; one argument is the
	// glob on the default collection
	collection(DefaultCollection).Store("k1", "x", 0)
	if rc := call(t, m, "cache_remove_chunk", "k*"); rc != 1 || collection(DefaultCollection).Len() != 0 || collection("collection1").Len() != 1 {
		t.Fatal("remove_chunk(glob)")
	}
	if rc := call(t, m, "cache_remove_chunk", "collection2", "*"); rc != 1 || collection("collection2").Len() != 0 {
		t.Fatal("remove_chunk(collection, glob)")
	}
	if rc := call(t, m, "cache_remove_chunk", "group2", "*"); rc != -1 {
		t.Fatal(rc)
	}
	// only group URLs: plain "local" has no connection
	apply, _ = configure(params("cachedb_url", "local:g://"))
	apply()
	if rc := call(t, m, "cache_store", "local", "k", "v"); rc != RetError {
		t.Fatal(rc)
	}
	if rc := call(t, m, "cache_store", "local:g", "k", "v"); rc != RetOK {
		t.Fatal(rc)
	}
}

// TestReloadKeepsData: a new script generation sees what the old one stored.
func TestReloadKeepsData(t *testing.T) {
	reset(t)
	m, _ := newMsg()
	apply, _ := configure(params())
	apply()
	call(t, m, "cache_store", "local", "k", "v")
	apply, _ = configure(params("cache_clean_period", 60))
	apply()
	if v, ok := Lookup("").Fetch("k"); !ok || v != "v" {
		t.Fatal("reload lost the cache")
	}
}

func TestMI(t *testing.T) {
	reset(t)
	mi := map[string]modules.MICommand{}
	for _, c := range modules.Lookup(Name).MI {
		mi[c.Name] = c
	}
	run := func(name string, p map[string]any) (any, error) { return mi[name].Run(p) }
	if _, err := run("cache_store", map[string]any{"system": "local", "attr": "a", "value": "1", "expire": 10}); err != nil {
		t.Fatal(err)
	}
	got, err := run("cache_fetch", map[string]any{"system": "local", "attr": "a"})
	if err != nil || got.(map[string]any)["value"] != "1" || got.(map[string]any)["key"] != "a" {
		t.Fatal(got, err)
	}
	for _, p := range []map[string]any{
		{"system": "local", "attr": "a", "value": "1", "expire": -1},
		{"system": "local", "attr": "a", "value": ""},
		{"system": "", "attr": "a", "value": "x"},
		{"system": "local", "value": "x"},
		{"system": "memcached", "attr": "a", "value": "x"},
	} {
		if _, err := run("cache_store", p); err == nil {
			t.Errorf("cache_store %v accepted", p)
		}
	}
	run("cache_store", map[string]any{"system": "local", "attr": "b", "value": "2"})
	got, _ = run("cache_fetch_chunk", map[string]any{"glob": "*"})
	keys := got.(map[string]any)["keys"].([]any)
	if len(keys) != 2 || keys[1].(map[string]any)["name"] != "b" {
		t.Fatal(got)
	}
	if _, err := run("cache_fetch_chunk", map[string]any{"glob": "*", "collection": "nope"}); err == nil {
		t.Fatal("unknown collection accepted")
	}
	run("cache_remove_chunk", map[string]any{"glob": "b", "collection": "default"})
	run("cache_remove", map[string]any{"system": "local", "attr": "a"})
	if _, err := run("cache_fetch", map[string]any{"system": "local", "attr": "a"}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatal(err)
	}
	if Lookup("").Len() != 0 {
		t.Fatal(Lookup("").Len())
	}
}

func TestPersistencyDirChecked(t *testing.T) {
	if _, err := configure(params("enable_restart_persistency", 1, "restart_persistency_dir", "/nonexistent/sipedge")); err == nil ||
		!strings.Contains(err.Error(), "not a directory") {
		t.Fatal(err)
	}
}
