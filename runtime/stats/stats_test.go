package stats

import (
	"sync"
	"testing"
)

func TestCoreCountersRegistered(t *testing.T) {
	want := []string{"rcv_requests", "rcv_replies", "fwd_requests", "fwd_replies",
		"drop_requests", "drop_replies", "err_requests", "err_replies",
		"bad_URIs_rcvd", "unsupported_methods", "bad_msg_hdr", "slow_messages", "timestamp"}
	got := Group("core")
	if len(got) != len(want) {
		t.Fatalf("core has %d statistics, want %d", len(got), len(want))
	}
	for i, c := range got {
		if c.Name() != want[i] || c.Group() != "core" {
			t.Errorf("core[%d] = %s, want core:%s", i, c.FullName(), want[i])
		}
	}
	if Lookup("CORE", "BAD_uris_rcvd") != BadURIsRcvd {
		t.Error("Lookup is not case-insensitive")
	}
	if Timestamp.Kind() != KindFunc || Timestamp.Resettable() {
		t.Error("timestamp must be a non-resettable func statistic")
	}
}

func TestKindsAndReset(t *testing.T) {
	c := NewCounter("testkinds", "hits")
	g := NewGauge("testkinds", "inuse")
	n := int64(41)
	f := NewFunc("testkinds", "answer", func() int64 { return n + 1 })
	c.Add(5)
	c.Inc()
	g.Inc()
	g.Inc()
	g.Dec()
	if c.Value() != 6 || g.Value() != 1 || f.Value() != 42 {
		t.Fatalf("values %d %d %d", c.Value(), g.Value(), f.Value())
	}
	if !c.Reset() || c.Value() != 0 {
		t.Error("counter not reset")
	}
	if g.Reset() || g.Value() != 1 {
		t.Error("gauge must not reset")
	}
	if f.Reset() || f.Value() != 42 {
		t.Error("func must not reset")
	}
	if !c.Incremental() || g.Incremental() || f.Incremental() {
		t.Error("incremental flags wrong")
	}
	// Registering again returns the same statistic.
	if NewCounter("testkinds", "HITS") != c {
		t.Error("re-registration returned a new counter")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("no panic registering a counter under a gauge's name")
			}
		}()
		NewCounter("testkinds", "inuse")
	}()
}

func TestSelect(t *testing.T) {
	a := NewCounter("testsel", "a")
	b := NewCounter("testsel", "b")
	NewCounter("testsel2", "a") // same name in a later group
	got, found := Select([]string{"testsel:", "a", "nope", "nogroup:"})
	if !found || len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("Select = %v %v", got, found)
	}
	if _, found := Select([]string{"nope", "nogroup:"}); found {
		t.Error("found nothing but reported found")
	}
	all, _ := Select([]string{"all"})
	if len(all) != len(All()) {
		t.Errorf("all = %d, All() = %d", len(all), len(All()))
	}
	if Find("a") != a {
		t.Error("Find must return the first group's statistic")
	}
}

func TestConcurrentInc(t *testing.T) {
	c := NewCounter("testconc", "n")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				c.Inc()
			}
		}()
	}
	wg.Wait()
	if c.Value() != 8000 {
		t.Fatalf("value %d", c.Value())
	}
}

func BenchmarkCounterInc(b *testing.B) {
	c := RcvRequests
	for b.Loop() {
		c.Inc()
	}
}

func BenchmarkCounterIncParallel(b *testing.B) {
	c := RcvRequests
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Inc()
		}
	})
}
