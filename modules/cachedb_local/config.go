package cachedblocal

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

// DefaultCollection is the collection OpenSIPS always creates.
const DefaultCollection = "default"

// Defaults of the modparams.
const (
	DefaultCleanPeriod    = 600 // seconds
	DefaultPersistencyDir = "/var/lib/sipedge"
	// SnapshotFile is the file name of the restart-persistency snapshot
	// inside restart_persistency_dir.
	SnapshotFile = "cachedb_local.snapshot"
	// persistInterval is how often a changed cache is written out when
	// enable_restart_persistency is on.
	persistInterval = 10 * time.Second
)

// config is one script generation's view of the module: which collection
// each cachedb URL group names, the sweep period and persistence.
type config struct {
	def    *Collection            // "local" (no group); nil when no URL has no group
	groups map[string]*Collection // "local:group" → collection
	byName map[string]*Collection // the collections this script defines
	first  *Collection            // cache_remove_chunk's collection when none is named
	clean  time.Duration
	// persist is the snapshot file, "" when restart persistency is off.
	persist string
}

var (
	// collections holds every collection ever defined, by name; they are
	// never dropped, so a reload that removes and later restores one finds
	// its data again.
	collMu      sync.Mutex
	collections = map[string]*Collection{}

	cur atomic.Pointer[config]

	sweeperOnce sync.Once
	flusherOnce sync.Once
	// loadedSnapshot remembers which snapshot files this process has read
	// (the first script to enable persistency loads it; reloads do not).
	loadedMu       sync.Mutex
	loadedSnapshot = map[string]bool{}
)

func init() {
	// Before any script configures the module (and for scripts that use
	// cache_* without loading it), "local" is the default collection.
	c := collection(DefaultCollection)
	cur.Store(&config{def: c, byName: map[string]*Collection{DefaultCollection: c}, first: c,
		clean: DefaultCleanPeriod * time.Second})
}

// collection returns the named collection, creating it.
func collection(name string) *Collection {
	collMu.Lock()
	defer collMu.Unlock()
	c := collections[name]
	if c == nil {
		c = newCollection(name)
		collections[name] = c
	}
	return c
}

// Lookup returns the collection a cachedb URL group names for the live
// script ("" for plain "local"), or nil.
func Lookup(group string) *Collection {
	cfg := cur.Load()
	if group == "" {
		return cfg.def
	}
	return cfg.groups[group]
}

// plan is a validated set of modparams, applied when the script goes live.
type plan struct {
	colls   []string          // collection names, "default" included
	urls    map[string]string // group → collection
	clean   int
	persist string
}

func configure(p modules.Params) (func(), error) {
	pl := &plan{urls: map[string]string{}}
	seen := map[string]bool{}
	for _, v := range p.All("cache_collections") {
		names, err := parseCollections(v.AsString())
		if err != nil {
			return nil, fmt.Errorf("cache_collections: %v", err)
		}
		for _, n := range names {
			if seen[n] {
				return nil, fmt.Errorf("cache_collections: collection %q defined more than once", n)
			}
			seen[n] = true
			pl.colls = append(pl.colls, n)
		}
	}
	if !seen[DefaultCollection] {
		pl.colls = append([]string{DefaultCollection}, pl.colls...)
		seen[DefaultCollection] = true
	}
	urls := p.All("cachedb_url")
	for _, v := range urls {
		group, coll, err := parseURL(v.AsString())
		if err != nil {
			return nil, fmt.Errorf("cachedb_url %q: %v", v.AsString(), err)
		}
		if !seen[coll] {
			return nil, fmt.Errorf("cachedb_url %q: collection %q is not defined in cache_collections", v.AsString(), coll)
		}
		pl.urls[group] = coll // a later URL for the same group replaces it
	}
	if len(urls) == 0 {
		pl.urls[""] = DefaultCollection
	}
	if pl.clean = p.Int("cache_clean_period"); pl.clean <= 0 {
		return nil, fmt.Errorf("cache_clean_period must be a positive number of seconds (got %d)", pl.clean)
	}
	if id := p.Int("cluster_id"); id != 0 {
		return nil, fmt.Errorf("cluster_id %d: sipedge has no clusterer, so cachedb_local cannot replicate (leave cluster_id unset)", id)
	}
	if cp := p.Str("cluster_persistency"); cp != "" && !strings.EqualFold(cp, "none") && !strings.EqualFold(cp, "sync-from-cluster") {
		return nil, fmt.Errorf("cluster_persistency %q: want \"none\" or \"sync-from-cluster\"", cp)
	}
	switch n := p.Int("enable_restart_persistency"); n {
	case 0:
	case 1:
		dir := p.Str("restart_persistency_dir")
		if dir == "" {
			return nil, fmt.Errorf("enable_restart_persistency needs restart_persistency_dir")
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("restart_persistency_dir %q is not a directory", dir)
		}
		pl.persist = filepath.Join(dir, SnapshotFile)
	default:
		return nil, fmt.Errorf("enable_restart_persistency must be 0 or 1 (got %d)", n)
	}
	return pl.apply, nil
}

// parseCollections reads "name[=size]; name2[=size]…". A "/r" suffix marks
// a replicated collection in OpenSIPS; sipedge has no replication and keeps
// the collection local. Sizes are checked and otherwise ignored.
func parseCollections(s string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, size, hasSize := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		if hasSize {
			n, err := strconv.Atoi(strings.TrimSpace(size))
			if err != nil || n < 0 || n > 30 {
				return nil, fmt.Errorf("collection %q: invalid hash size %q (a power of two exponent, 0..30)", name, strings.TrimSpace(size))
			}
		}
		name = strings.TrimSuffix(name, "/r")
		if name == "" {
			return nil, fmt.Errorf("empty collection name in %q", part)
		}
		out = append(out, name)
	}
	return out, nil
}

// parseURL reads a cachedb_local URL: local[:group]://[host][/collection].
func parseURL(u string) (group, coll string, err error) {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return "", "", fmt.Errorf("want local[:group]://[/collection]")
	}
	engine, group, _ := strings.Cut(scheme, ":")
	if engine != "local" {
		return "", "", fmt.Errorf("cachedb_local URLs start with \"local\", not %q", engine)
	}
	coll = DefaultCollection
	if i := strings.IndexByte(rest, '/'); i >= 0 && rest[i+1:] != "" {
		coll = rest[i+1:]
	}
	return group, coll, nil
}

func (pl *plan) apply() {
	cfg := &config{groups: map[string]*Collection{}, byName: map[string]*Collection{},
		clean: time.Duration(pl.clean) * time.Second, persist: pl.persist}
	for _, n := range pl.colls {
		c := collection(n)
		cfg.byName[n] = c
		if n == DefaultCollection {
			cfg.first = c
		}
	}
	for g, n := range pl.urls {
		if g == "" {
			cfg.def = cfg.byName[n]
		} else {
			cfg.groups[g] = cfg.byName[n]
		}
	}
	if cfg.persist != "" {
		loadedMu.Lock()
		first := !loadedSnapshot[cfg.persist]
		loadedSnapshot[cfg.persist] = true
		loadedMu.Unlock()
		if first {
			if n, err := readSnapshot(cfg.persist, cfg.byName); err != nil {
				logBackground(msgctx.LErr, fmt.Sprintf("cachedb_local: cannot restore %s: %v", cfg.persist, err))
			} else if n > 0 {
				logBackground(msgctx.LInfo, fmt.Sprintf("cachedb_local: restored %d entries from %s", n, cfg.persist))
			}
		}
	}
	persistOn.Store(cfg.persist != "")
	cur.Store(cfg)
	sweeperOnce.Do(func() { go sweeper() })
	if cfg.persist != "" {
		flusherOnce.Do(func() { go flusher() })
	}
}

// sweeper deletes expired entries every cache_clean_period, for the life of
// the process (reads also drop the expired entries they meet).
func sweeper() {
	for {
		time.Sleep(cur.Load().clean)
		SweepNow()
	}
}

// SweepNow deletes the expired entries of every collection now and returns
// how many it deleted.
func SweepNow() int {
	t := now()
	collMu.Lock()
	all := make([]*Collection, 0, len(collections))
	for _, c := range collections {
		all = append(all, c)
	}
	collMu.Unlock()
	n := 0
	for _, c := range all {
		n += c.sweep(t)
	}
	if n > 0 {
		markDirty()
	}
	return n
}
