package cachedblocal

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestCollectionStoreFetchRemove(t *testing.T) {
	reset(t)
	c := collection("t_basic")
	if _, ok := c.Fetch("k"); ok {
		t.Fatal("empty collection found k")
	}
	c.Store("k", "v1", 0)
	c.Store("k", "v2", 0) // replaces
	if v, ok := c.Fetch("k"); !ok || v != "v2" {
		t.Fatalf("fetch %q %v", v, ok)
	}
	c.Store("empty", "", 0) // an empty value is a value
	if v, ok := c.Fetch("empty"); !ok || v != "" {
		t.Fatalf("empty value %q %v", v, ok)
	}
	c.Remove("k")
	c.Remove("never-there")
	if _, ok := c.Fetch("k"); ok {
		t.Fatal("removed key found")
	}
	if c.Len() != 1 {
		t.Fatal(c.Len())
	}
}

func TestCollectionExpiry(t *testing.T) {
	reset(t)
	c := collection("t_expiry")
	c.Store("short", "x", 2)
	c.Store("forever", "y", 0)
	c.Store("gone", "z", -1) // already expired: a removal
	if _, ok := c.Fetch("gone"); ok {
		t.Fatal("negative expire stored a readable value")
	}
	advance(1999 * time.Millisecond)
	if _, ok := c.Fetch("short"); !ok {
		t.Fatal("expired early")
	}
	advance(time.Millisecond)
	if _, ok := c.Fetch("short"); ok {
		t.Fatal("not expired after 2s")
	}
	// the read dropped it
	if c.Len() != 1 {
		t.Fatalf("len %d, want 1 (lazy delete)", c.Len())
	}
	advance(1000 * time.Hour)
	if v, ok := c.Fetch("forever"); !ok || v != "y" {
		t.Fatal("expire 0 expired")
	}
}

func TestSweep(t *testing.T) {
	reset(t)
	c := collection("t_sweep")
	for i := range 100 {
		c.Store("k"+strconv.Itoa(i), "v", 1+i%2)
	}
	c.Store("keep", "v", 0)
	advance(1500 * time.Millisecond)
	if n := SweepNow(); n != 50 {
		t.Fatalf("swept %d, want 50", n)
	}
	advance(time.Second)
	if n := SweepNow(); n != 50 {
		t.Fatalf("swept %d, want 50", n)
	}
	if c.Len() != 1 {
		t.Fatal(c.Len())
	}
}

func TestCollectionAdd(t *testing.T) {
	reset(t)
	c := collection("t_add")
	steps := []struct {
		key    string
		delta  int
		expire int
		want   int
		err    bool
	}{
		{"n", 5, 10, 5, false},   // created with the delta
		{"n", 3, 0, 8, false},    // existing: expire ignored
		{"n", -10, 0, -2, false}, // sub goes negative
		{"s", 1, 0, 0, true},     // not an integer (stored below)
	}
	c.Store("s", "abc", 0)
	for i, s := range steps {
		n, err := c.Add(s.key, s.delta, s.expire)
		if (err != nil) != s.err || (!s.err && n != s.want) {
			t.Fatalf("step %d: %d %v", i, n, err)
		}
	}
	// the first expire (10s) still holds
	advance(9 * time.Second)
	if v, _ := c.Fetch("n"); v != "-2" {
		t.Fatalf("n=%q", v)
	}
	advance(time.Second)
	if _, ok := c.Fetch("n"); ok {
		t.Fatal("counter kept past its first expire")
	}
	// an expired counter starts again from the delta with the new expire
	c.Store("e", "40", 1)
	advance(2 * time.Second)
	if n, _ := c.Add("e", 2, 0); n != 2 {
		t.Fatal(n)
	}
	if n, found, err := c.CounterFetch("e"); n != 2 || !found || err != nil {
		t.Fatal(n, found, err)
	}
	if _, found, err := c.CounterFetch("s"); !found || err != ErrNotInteger {
		t.Fatal(found, err)
	}
	if _, found, _ := c.CounterFetch("missing"); found {
		t.Fatal("missing found")
	}
}

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		pat, s string
		want   bool
	}{
		{"*", "", true},
		{"*", "a/b", true}, // no FNM_PATHNAME: * crosses '/'
		{"myinfo_*", "myinfo_1", true},
		{"myinfo_*", "myinfo", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"*b*d", "abcbd", true},
		{"*b*d", "abcbe", false},
		{"[abc]x", "bx", true},
		{"[!abc]x", "bx", false},
		{"[^abc]x", "dx", true},
		{"[a-c]", "b", true},
		{"[a-c]", "d", false},
		{"[]]", "]", true},
		{"[a-]", "-", true},
		{`\*`, "*", true},
		{`\*`, "a", false},
		{"[", "[", true}, // unterminated: literal
		{"+61*", "+616", true},
		{"+61*", "+686", false},
		{"", "", true},
		{"", "a", false},
		{"**a", "bba", true},
	}
	for _, c := range cases {
		if got := globMatch(c.pat, c.s); got != c.want {
			t.Errorf("globMatch(%q, %q) = %v", c.pat, c.s, got)
		}
	}
}

func TestChunks(t *testing.T) {
	reset(t)
	c := collection("t_chunk")
	c.Store("user_1", "a", 0)
	c.Store("user_2", "b", 0)
	c.Store("user_3", "c", 1)
	c.Store("other", "d", 0)
	advance(2 * time.Second)
	got := c.FetchChunk("user_*")
	if fmt.Sprint(got) != "[{user_1 a} {user_2 b}]" {
		t.Fatal(got)
	}
	if n := c.RemoveChunk("user_*"); n != 3 { // the expired one too
		t.Fatal(n)
	}
	if c.Len() != 1 {
		t.Fatal(c.Len())
	}
}

// TestConcurrent hammers one collection from many goroutines; run with
// -race.
func TestConcurrent(t *testing.T) {
	reset(t)
	c := collection("t_conc")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := "k" + strconv.Itoa(i%50)
				switch i % 4 {
				case 0:
					c.Store(k, "v", 1)
				case 1:
					c.Fetch(k)
				case 2:
					c.Add("ctr", 1, 0)
				case 3:
					if g == 0 && i%400 == 3 {
						SweepNow()
					}
					c.Remove(k)
				}
			}
		}()
	}
	wg.Wait()
	if n, _, _ := c.CounterFetch("ctr"); n != 8*500 {
		t.Fatalf("ctr = %d, want %d", n, 8*500)
	}
}
