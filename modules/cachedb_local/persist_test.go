package cachedblocal

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSnapshotRoundTrip(t *testing.T) {
	reset(t)
	dir := t.TempDir()
	path := filepath.Join(dir, SnapshotFile)
	a, b := collection("snap_a"), collection("snap_b")
	a.Store("forever", "1", 0)
	a.Store("ttl", "2", 100)
	a.Store("binary\x00key", "v\nw", 0)
	a.Store("expired", "3", 1)
	b.Store("other", "4", 0)
	advance(2 * time.Second)
	if err := writeSnapshot(path, map[string]*Collection{"snap_a": a, "snap_b": b}, now()); err != nil {
		t.Fatal(err)
	}
	a.clear()
	b.clear()
	// a restart much later: the remaining lifetime is kept (98s)
	advance(time.Hour)
	n, err := readSnapshot(path, map[string]*Collection{"snap_a": a}) // snap_b no longer defined
	if err != nil || n != 3 {
		t.Fatal(n, err)
	}
	if v, _ := a.Fetch("binary\x00key"); v != "v\nw" {
		t.Fatal(v)
	}
	if b.Len() != 0 {
		t.Fatal("undefined collection restored")
	}
	advance(97 * time.Second)
	if _, ok := a.Fetch("ttl"); !ok {
		t.Fatal("ttl entry expired early")
	}
	advance(time.Second)
	if _, ok := a.Fetch("ttl"); ok {
		t.Fatal("ttl entry outlived its time")
	}
	if _, ok := a.Fetch("forever"); !ok {
		t.Fatal("forever lost")
	}
}

func TestSnapshotErrors(t *testing.T) {
	reset(t)
	dir := t.TempDir()
	if n, err := readSnapshot(filepath.Join(dir, "missing"), nil); n != 0 || err != nil {
		t.Fatal("a missing snapshot is an empty cache", n, err)
	}
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte("hello"), 0o600)
	if _, err := readSnapshot(junk, nil); err == nil {
		t.Fatal("junk accepted")
	}
	c := collection("snap_trunc")
	c.Store("k1", "v1", 0)
	c.Store("k2", "v2", 0)
	good := filepath.Join(dir, "good")
	if err := writeSnapshot(good, map[string]*Collection{"snap_trunc": c}, now()); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(good)
	os.WriteFile(junk, data[:len(data)-2], 0o600)
	c.clear()
	n, err := readSnapshot(junk, map[string]*Collection{"snap_trunc": c})
	if err == nil || !strings.Contains(err.Error(), "corrupt") || n != 1 || c.Len() != 1 {
		t.Fatal(n, err)
	}
	if err := writeSnapshot(filepath.Join(dir, "no/such/dir/x"), nil, now()); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

// TestRestartPersistency goes through the modparams: the first apply
// restores the snapshot, Flush writes it.
func TestRestartPersistency(t *testing.T) {
	reset(t)
	dir := t.TempDir()
	apply, err := configure(params("enable_restart_persistency", 1, "restart_persistency_dir", dir))
	if err != nil {
		t.Fatal(err)
	}
	apply()
	m, _ := newMsg()
	call(t, m, "cache_store", "local", "+616", "HIGHRISK")
	if !dirty.Load() {
		t.Fatal("store did not mark the cache dirty")
	}
	if err := Flush(); err != nil {
		t.Fatal(err)
	}
	if dirty.Load() {
		t.Fatal("still dirty after Flush")
	}
	if _, err := os.Stat(filepath.Join(dir, SnapshotFile)); err != nil {
		t.Fatal(err)
	}
	// "restart": forget the data and that the file was read
	collection(DefaultCollection).clear()
	loadedMu.Lock()
	delete(loadedSnapshot, filepath.Join(dir, SnapshotFile))
	loadedMu.Unlock()
	apply, _ = configure(params("enable_restart_persistency", 1, "restart_persistency_dir", dir))
	apply()
	if v, ok := Lookup("").Fetch("+616"); !ok || v != "HIGHRISK" {
		t.Fatal("not restored")
	}
	// a reload does not read the file again (it would resurrect removals)
	Lookup("").Remove("+616")
	apply, _ = configure(params("enable_restart_persistency", 1, "restart_persistency_dir", dir))
	apply()
	if _, ok := Lookup("").Fetch("+616"); ok {
		t.Fatal("reload re-read the snapshot")
	}
	// persistency off: Flush is a no-op
	apply, _ = configure(params())
	apply()
	if err := Flush(); err != nil {
		t.Fatal(err)
	}
}
