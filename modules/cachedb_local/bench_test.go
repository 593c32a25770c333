package cachedblocal

import (
	"strconv"
	"testing"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

type oneSlot struct{}

func (oneSlot) VarSlot(string) int { return 0 }
func (oneSlot) AVPSlot(string) int { return 0 }

// benchCall prepares a cache function call as the VM makes it: constant
// backend fixed up, key and value strings, a real $var(out) result.
func benchCall(b *testing.B, name string, vals ...any) (*modules.Func, *modules.Args, *msgctx.Msg) {
	ref, err := pvar.Compile(&ast.PVar{Name: "var", HasArg: true, Arg: "out"}, oneSlot{})
	if err != nil {
		b.Fatal(err)
	}
	for i, v := range vals {
		if v == nil {
			vals[i] = ref
		}
	}
	f := fn(b, name)
	a := args(b, f, vals...)
	m := &msgctx.Msg{}
	m.Reset(1, 1)
	return f, a, m
}

// BenchmarkCacheFetch is cache_fetch("local", key, $var(out)) on a hit in a
// cache of 10000 keys.
func BenchmarkCacheFetch(b *testing.B) {
	reset(b)
	c := Lookup("")
	for i := range 10000 {
		c.Store("+"+strconv.Itoa(1000+i), "HIGHRISK", 0)
	}
	f, a, m := benchCall(b, "cache_fetch", "local", "+5616", nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if f.Call(m, a) != RetOK {
			b.Fatal("miss")
		}
	}
	if m.Vars[0] != value.S("HIGHRISK") {
		b.Fatal(m.Vars[0])
	}
}

// BenchmarkCacheFetchExpiring: the entry has an expiry, so the clock is read.
func BenchmarkCacheFetchExpiring(b *testing.B) {
	reset(b)
	Lookup("").Store("k", "v", 3600)
	f, a, m := benchCall(b, "cache_fetch", "local", "k", nil)
	b.ReportAllocs()
	for b.Loop() {
		f.Call(m, a)
	}
}

func BenchmarkCacheFetchParallel(b *testing.B) {
	reset(b)
	c := Lookup("")
	for i := range 10000 {
		c.Store("k"+strconv.Itoa(i), "v", 0)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Fetch("k" + strconv.Itoa(i%100))
			i++
		}
	})
}

func BenchmarkCacheStore(b *testing.B) {
	reset(b)
	f, a, m := benchCall(b, "cache_store", "local", "key", "value", 60)
	b.ReportAllocs()
	for b.Loop() {
		f.Call(m, a)
	}
}

func BenchmarkCacheAdd(b *testing.B) {
	reset(b)
	f, a, m := benchCall(b, "cache_add", "local", "ctr", 1, 60, nil)
	b.ReportAllocs()
	for b.Loop() {
		f.Call(m, a)
	}
}
