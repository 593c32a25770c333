package pike

import (
	"hash/maphash"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// The per-source-IP counters. OpenSIPS keeps them in a tree of address
// bytes (so an address is only tracked once its prefix is busy); sipedge
// keeps one node per source address in a sharded map, which counts every
// address exactly from its first request.

const numShards = 64

// node is one source address. The counters cover the current sampling unit
// (curr) and the one before (prev); unit is the index of the current one
// (time / sampling_time_unit), so windows roll lazily when the address is
// next seen or when the sweeper passes.
type node struct {
	unit       int64
	prev, curr uint32
	red        bool  // blocked
	last       int64 // time of the last request, Unix nanoseconds
}

type shard struct {
	mu sync.Mutex
	m  map[string]*node
	_  [48]byte
}

// table is the process-wide set of tracked addresses; it survives reloads.
type table struct {
	shards [numShards]shard
	size   atomic.Int64 // number of nodes
}

var (
	hashSeed = maphash.MakeSeed()
	ips      = newTable()
)

func newTable() *table {
	t := &table{}
	for i := range t.shards {
		t.shards[i].m = make(map[string]*node)
	}
	return t
}

func (t *table) shard(ip string) *shard {
	return &t.shards[maphash.String(hashSeed, ip)&(numShards-1)]
}

// clockOffset shifts the module clock in tests (atomic: the sweeper reads it).
var clockOffset atomic.Int64

func now() int64 { return time.Now().UnixNano() + clockOffset.Load() }

// params is the live configuration.
type params struct {
	unit    int64  // sampling_time_unit, nanoseconds
	density uint32 // reqs_density_per_unit
	latency int64  // remove_latency, nanoseconds
	logLvl  int
	maxIPs  int64
}

// hot tells whether counts are over the limit: more than density requests
// in the current or in the previous sampling unit. (OpenSIPS also tests the
// average of the two, which can only be over the limit when one of them is.)
func (p *params) hot(prev, curr uint32) bool { return curr > p.density || prev > p.density }

// roll moves n to sampling unit u. It reports whether the node stopped being
// blocked.
func (p *params) roll(n *node, u int64) (unblocked bool) {
	if n.unit == u {
		return false
	}
	if u == n.unit+1 {
		n.prev = n.curr
	} else {
		n.prev = 0
	}
	n.curr = 0
	n.unit = u
	if n.red && !p.hot(n.prev, n.curr) {
		n.red = false
		return true
	}
	return false
}

// verdict is what a hit found.
type verdict uint8

const (
	allowed      verdict = iota
	blocked              // already blocked
	newlyBlocked         // blocked by this request
	untracked            // table full
)

// hit counts one request from ip at time t.
func (t *table) hit(p *params, ip string, at int64) verdict {
	s := t.shard(ip)
	u := at / p.unit
	s.mu.Lock()
	n := s.m[ip]
	if n == nil {
		if t.size.Load() >= p.maxIPs {
			s.mu.Unlock()
			return untracked
		}
		n = &node{unit: u}
		s.m[ip] = n
		t.size.Add(1)
	} else {
		p.roll(n, u)
	}
	if n.curr < ^uint32(0) {
		n.curr++
	}
	n.last = at
	v := allowed
	switch {
	case n.red:
		v = blocked
	case p.hot(n.prev, n.curr):
		n.red = true
		v = newlyBlocked
	}
	s.mu.Unlock()
	return v
}

// sweep rolls every node to the current unit, collecting the addresses
// that got unblocked, and forgets the ones idle for remove_latency.
func (t *table) sweep(p *params, at int64) (unblocked []string) {
	u := at / p.unit
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for ip, n := range s.m {
			if p.roll(n, u) {
				unblocked = append(unblocked, ip)
			}
			if at-n.last >= p.latency {
				delete(s.m, ip)
				t.size.Add(-1)
			}
		}
		s.mu.Unlock()
	}
	sort.Strings(unblocked)
	return unblocked
}

// blockedIPs lists the addresses blocked now.
func (t *table) blockedIPs(p *params, at int64) []string {
	u := at / p.unit
	var out []string
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for ip, n := range s.m {
			// look at a copy: the sweeper rolls (and logs the unblocks)
			c := *n
			p.roll(&c, u)
			if c.red {
				out = append(out, ip)
			}
		}
		s.mu.Unlock()
	}
	sort.Strings(out)
	return out
}

// unblock clears ip's block and counters (MI pike_rm). found is false when
// the address is not tracked; wasRed false when it was not blocked.
func (t *table) unblock(ip string) (found, wasRed bool) {
	s := t.shard(ip)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.m[ip]
	if n == nil {
		return false, false
	}
	if !n.red {
		return true, false
	}
	n.red, n.prev, n.curr = false, 0, 0
	return true, true
}

// clear forgets every address (tests).
func (t *table) clear() {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		clear(s.m)
		s.mu.Unlock()
	}
	t.size.Store(0)
}
