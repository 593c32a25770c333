package dialog

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

const benchScript = `
loadmodule "tm.so"
loadmodule "dialog.so"
modparam("dialog", "profiles_with_value", "concurrent")
modparam("dialog", "profiles_no_value", "all")
route { create_dialog(); set_dlg_profile("concurrent", "$fU"); set_dlg_profile("all"); t_relay(); }
`

// liveDialogs creates n confirmed dialogs (100 users) and returns them.
func liveDialogs(tb testing.TB, s *sim, n int) []*call {
	calls := make([]*call, 0, n)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("a84b4c76e66710-%07d@pc33.example.org", i)
		text := invite(id, fmt.Sprintf("1928301774-%d", i), "bob")
		text = replaceFromUser(text, fmt.Sprintf("u%03d", i%100))
		c := s.request(text)
		c.reply(200, fmt.Sprintf("314159-%d", i))
		calls = append(calls, c)
	}
	s.rec.Lines = nil
	return calls
}

func replaceFromUser(text, user string) string {
	return stringsReplace(text, "From: <sip:1001@", "From: <sip:"+user+"@")
}

func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestMemoryPerDialog measures the heap a live dialog costs (100 000 of
// them, with two profile memberships each) and checks it all goes away
// when they end.
func TestMemoryPerDialog(t *testing.T) {
	if testing.Short() {
		t.Skip("100k dialogs")
	}
	fresh(t)
	s := newSim(t, benchScript)
	const n = 100000
	before := heapInUse()
	calls := liveDialogs(t, s, n)
	// keep only the dialogs: drop the messages the simulator kept
	dl := make([]*Dialog, n)
	for i, c := range calls {
		dl[i] = Current(c.m)
	}
	calls = nil
	during := heapInUse()
	per := float64(during-before) / n
	t.Logf("%d live dialogs: %.0f bytes each (heap %d → %d)", n, per, before, during)
	if per > 1024 {
		t.Errorf("%.0f bytes per live dialog, want ≤ 1024", per)
	}
	if got := LookupProfile("concurrent").Size("u007", true); got != n/100 {
		t.Errorf("profile size %d", got)
	}
	for _, d := range dl {
		end(d, ReasonDownstreamBYE)
	}
	dl = nil
	tmr.fire()
	after := heapInUse()
	t.Logf("after they ended: heap %d (%+d bytes vs before)", after, int64(after)-int64(before))
	if Count() != 0 || LookupProfile("all").Size("", false) != 0 {
		t.Errorf("left: count %d", Count())
	}
	if int64(after)-int64(before) > 1<<20 {
		t.Errorf("heap grew by %d bytes after every dialog ended", int64(after)-int64(before))
	}
}

// BenchmarkGetProfileSize calls get_profile_size with 100 000 live dialogs.
func BenchmarkGetProfileSize(b *testing.B) {
	fresh(b)
	s := newSim(b, benchScript)
	liveDialogs(b, s, 100000)
	var f *modules.Func
	for _, fn := range modules.Lookup(Name).Funcs {
		if fn.Name == "get_profile_size" {
			f = fn
		}
	}
	fix, _ := f.Fixup([]check.FixupArg{{Present: true, Const: true, Str: "concurrent"}, {Present: true}, {Present: true}})
	var got value.Value
	out := &pvar.Ref{Spec: &pvar.Spec{Name: "out", Writable: true,
		Get: func(*msgctx.Msg, any, pvar.Index) value.Value { return got },
		Set: func(_ *msgctx.Msg, _ any, _ pvar.Index, _ string, v value.Value) error { got = v; return nil }}}
	a := &modules.Args{Vals: []value.Value{value.S("concurrent"), value.S("u042"), value.Null},
		Refs: []*pvar.Ref{nil, nil, out}, Given: []bool{true, true, true}, Fix: fix}
	m := &msgctx.Msg{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.Call(m, a)
	}
	b.StopTimer()
	if n, _ := got.AsInt(); n != 1000 {
		b.Fatalf("size %d", n)
	}
}

func stringsReplace(s, old, new string) string { return strings.Replace(s, old, new, 1) }
