package cachedblocal

import (
	"errors"
	"hash/maphash"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// numShards is how many independently locked maps a collection is split
// into. OpenSIPS sizes its bucket array from cache_collections; Go maps grow
// on their own, so the size only matters for lock contention and is fixed.
const numShards = 64

// entry is one stored value. exp is the expiry in Unix nanoseconds, 0 for
// never.
type entry struct {
	val string
	exp int64
}

func (e entry) expired(now int64) bool { return e.exp != 0 && now >= e.exp }

type shard struct {
	mu sync.RWMutex
	m  map[string]entry
	_  [32]byte // keep neighbouring shards' locks off one cache line
}

// Collection is one cachedb_local hash table ("default", or one named in
// cache_collections). Collections live as long as the process: a script
// reload keeps their contents.
type Collection struct {
	name   string
	shards [numShards]shard
}

var hashSeed = maphash.MakeSeed()

func newCollection(name string) *Collection {
	c := &Collection{name: name}
	for i := range c.shards {
		c.shards[i].m = make(map[string]entry)
	}
	return c
}

// Name is the collection's name.
func (c *Collection) Name() string { return c.name }

func (c *Collection) shard(key string) *shard {
	return &c.shards[maphash.String(hashSeed, key)&(numShards-1)]
}

// clockOffset shifts the module's clock; tests advance it instead of
// sleeping (atomically, so the sweeper goroutine may read it).
var clockOffset atomic.Int64

func now() int64 { return time.Now().UnixNano() + clockOffset.Load() }

// expiry turns a script's expire (seconds, 0 = never) into an absolute time.
func expiry(expire int, t int64) int64 {
	if expire == 0 {
		return 0
	}
	return t + int64(expire)*int64(time.Second)
}

// Fetch returns a key's value; an expired entry is deleted and reported
// missing, as OpenSIPS does on read.
func (c *Collection) Fetch(key string) (string, bool) {
	s := c.shard(key)
	s.mu.RLock()
	e, ok := s.m[key]
	s.mu.RUnlock()
	if !ok {
		return "", false
	}
	if e.exp != 0 {
		if t := now(); e.expired(t) {
			s.dropExpired(key, t)
			return "", false
		}
	}
	return e.val, true
}

// dropExpired deletes key if it is (still) expired at t.
func (s *shard) dropExpired(key string, t int64) {
	s.mu.Lock()
	if e, ok := s.m[key]; ok && e.expired(t) {
		delete(s.m, key)
		markDirty()
	}
	s.mu.Unlock()
}

// Store sets key to val, replacing any value; expire is in seconds (0:
// never). Key and value are copied so that a stored substring does not keep
// a whole SIP message alive.
func (c *Collection) Store(key, val string, expire int) {
	if expire < 0 {
		// OpenSIPS stores an entry that is already expired: nothing can
		// read it, so it amounts to a removal.
		c.Remove(key)
		return
	}
	e := entry{val: strings.Clone(val), exp: expiry(expire, now())}
	s := c.shard(key)
	s.mu.Lock()
	s.m[strings.Clone(key)] = e
	s.mu.Unlock()
	markDirty()
}

// Remove deletes key; a missing key is not an error.
func (c *Collection) Remove(key string) {
	s := c.shard(key)
	s.mu.Lock()
	if _, ok := s.m[key]; ok {
		delete(s.m, key)
		markDirty()
	}
	s.mu.Unlock()
}

// ErrNotInteger is returned by Add and CounterFetch when the stored value is
// not a decimal integer.
var ErrNotInteger = errors.New("value is not an integer")

// Add adds delta to the integer stored at key and returns the new value. A
// missing (or expired) key is created holding delta with the given expire;
// an existing one keeps its expiry, as in OpenSIPS.
func (c *Collection) Add(key string, delta, expire int) (int, error) {
	s := c.shard(key)
	t := now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok && !e.expired(t) {
		n, err := strconv.Atoi(e.val)
		if err != nil {
			return 0, ErrNotInteger
		}
		n += delta
		e.val = strconv.Itoa(n)
		s.m[key] = e
		markDirty()
		return n, nil
	}
	if expire < 0 {
		delete(s.m, key)
		markDirty()
		return delta, nil
	}
	s.m[strings.Clone(key)] = entry{val: strconv.Itoa(delta), exp: expiry(expire, t)}
	markDirty()
	return delta, nil
}

// CounterFetch reads the integer stored at key.
func (c *Collection) CounterFetch(key string) (n int, found bool, err error) {
	v, ok := c.Fetch(key)
	if !ok {
		return 0, false, nil
	}
	n, perr := strconv.Atoi(v)
	if perr != nil {
		return 0, true, ErrNotInteger
	}
	return n, true, nil
}

// KV is one key and its value.
type KV struct {
	Key, Value string
}

// FetchChunk returns the live entries whose key matches the glob pattern
// (fnmatch syntax without special treatment of '/'), sorted by key.
func (c *Collection) FetchChunk(glob string) []KV {
	t := now()
	var out []KV
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		for k, e := range s.m {
			if !e.expired(t) && globMatch(glob, k) {
				out = append(out, KV{k, e.val})
			}
		}
		s.mu.RUnlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// RemoveChunk deletes every key matching the glob pattern and reports how
// many it removed.
func (c *Collection) RemoveChunk(glob string) int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k := range s.m {
			if globMatch(glob, k) {
				delete(s.m, k)
				n++
			}
		}
		s.mu.Unlock()
	}
	if n > 0 {
		markDirty()
	}
	return n
}

// Len counts the entries, expired ones not yet swept included.
func (c *Collection) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// sweep deletes the entries expired at t, one shard at a time so readers
// wait at most one shard's scan.
func (c *Collection) sweep(t int64) int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if e.expired(t) {
				delete(s.m, k)
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}

// clear empties the collection (tests).
func (c *Collection) clear() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.m)
		s.mu.Unlock()
	}
}

// globMatch is fnmatch(3) without flags: '*' and '?' match any byte ('/'
// included), [...] is a set with ranges and '!' or '^' negation, and '\'
// quotes the next character.
func globMatch(pattern, s string) bool {
	px, sx := 0, 0
	// Where to resume after the last '*': the pattern just past it and the
	// subject position it currently absorbs up to.
	starP, starS := -1, 0
	for sx < len(s) || px < len(pattern) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				starP, starS = px+1, sx
				px++
				continue
			case '?':
				if sx < len(s) {
					px++
					sx++
					continue
				}
			case '[':
				if sx < len(s) {
					if ok, next, valid := matchSet(pattern, px, s[sx]); valid {
						if ok {
							px, sx = next, sx+1
							continue
						}
						break
					}
					// an unterminated '[' is an ordinary character
					if s[sx] == '[' {
						px++
						sx++
						continue
					}
				}
			case '\\':
				lit := byte('\\')
				adv := 1
				if px+1 < len(pattern) {
					lit, adv = pattern[px+1], 2
				}
				if sx < len(s) && s[sx] == lit {
					px += adv
					sx++
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if starP >= 0 && starS < len(s) {
			starS++
			px, sx = starP, starS
			continue
		}
		return false
	}
	return true
}

// matchSet matches byte b against the bracket expression starting at
// pattern[px] ('['). It returns whether b is in the set, the pattern index
// after ']', and false in valid when the set is not terminated.
func matchSet(pattern string, px int, b byte) (ok bool, next int, valid bool) {
	i := px + 1
	neg := false
	if i < len(pattern) && (pattern[i] == '!' || pattern[i] == '^') {
		neg = true
		i++
	}
	first := true
	for i < len(pattern) {
		c := pattern[i]
		if c == ']' && !first {
			return ok != neg, i + 1, true
		}
		first = false
		if c == '\\' && i+1 < len(pattern) {
			i++
			c = pattern[i]
		}
		lo, hi := c, c
		if i+2 < len(pattern) && pattern[i+1] == '-' && pattern[i+2] != ']' {
			hi = pattern[i+2]
			if hi == '\\' && i+3 < len(pattern) {
				hi = pattern[i+3]
				i++
			}
			i += 2
		}
		if lo <= b && b <= hi {
			ok = true
		}
		i++
	}
	return false, 0, false
}
