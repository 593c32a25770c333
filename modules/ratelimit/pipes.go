package ratelimit

import (
	"hash/maphash"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Algorithm is a pipe's limiting algorithm.
type Algorithm uint8

const (
	Taildrop Algorithm = iota + 1
	RED
	SBT // slot based taildropping: a sliding window
)

var algoNames = map[Algorithm]string{Taildrop: "TAILDROP", RED: "RED", SBT: "SBT"}

func (a Algorithm) String() string { return algoNames[a] }

// parseAlgorithm reads an algorithm name (any case). unsupported is set
// for OpenSIPS algorithms sipedge lacks.
func parseAlgorithm(s string) (a Algorithm, unsupported bool) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "TAILDROP":
		return Taildrop, false
	case "RED":
		return RED, false
	case "SBT":
		return SBT, false
	case "FEEDBACK", "NETWORK":
		return 0, true
	}
	return 0, false
}

// params is the live configuration.
type params struct {
	interval    int64 // timer_interval, ns
	perInterval bool  // limit_per_interval
	expire      int64 // expire_time, ns
	defAlgo     Algorithm
	slots       int   // SBT window slots: window_size / slot_period
	slotMS      int64 // slot_period, ms
}

// limitPerInterval is what TAILDROP and RED compare an interval's count
// with: the limit is per second unless limit_per_interval is set.
func (p *params) limitPerInterval(limit int) int64 {
	if p.perInterval {
		return int64(limit)
	}
	return int64(limit) * (p.interval / int64(time.Second))
}

// pipe is one named limiter. TAILDROP and RED count per timer interval;
// the interval index (time / timer_interval) rolls lazily, which is the
// same as OpenSIPS's timer resetting every counter at once.
type pipe struct {
	algo     Algorithm
	limit    int
	counter  int64 // requests in the current interval
	last     int64 // requests in the previous interval (what rl_list shows)
	load     int64 // RED: drop all but every load-th request (0: drop none)
	interval int64
	lastUsed int64
	// SBT
	win      []int64
	lastSlot int64 // absolute slot (time / slot_period) of the newest count
}

func (pp *pipe) roll(p *params, at int64) {
	u := at / p.interval
	if pp.interval == u {
		return
	}
	if u == pp.interval+1 {
		pp.last = pp.counter
		if pp.algo == RED && pp.limit > 0 {
			if d := p.limitPerInterval(pp.limit); d > 0 {
				pp.load = pp.counter / d
			}
		}
	} else {
		// idle intervals: the previous one saw nothing
		pp.last = 0
		if pp.algo == RED {
			pp.load = 0
		}
	}
	pp.counter = 0
	pp.interval = u
}

// window adds delta to the SBT window at time at and returns the number of
// requests it holds.
func (pp *pipe) window(p *params, at int64, delta int64) int64 {
	if len(pp.win) != p.slots {
		pp.win = make([]int64, p.slots)
		pp.lastSlot = 0
	}
	n := int64(len(pp.win))
	slot := at / int64(time.Millisecond) / p.slotMS
	switch gap := slot - pp.lastSlot; {
	case gap >= n || gap < 0:
		clear(pp.win)
	default:
		for s := pp.lastSlot + 1; s <= slot; s++ {
			pp.win[s%n] = 0
		}
	}
	pp.lastSlot = slot
	if c := &pp.win[slot%n]; *c+delta >= 0 {
		*c += delta
	} else {
		*c = 0
	}
	var sum int64
	for _, c := range pp.win {
		sum += c
	}
	return sum
}

// count is the pipe's current counter ($rl_count).
func (pp *pipe) count(p *params, at int64) int64 {
	if pp.algo == SBT {
		return pp.window(p, at, 0)
	}
	pp.roll(p, at)
	return pp.counter
}

// check counts one request and decides: true to let it through.
func (pp *pipe) check(p *params, at int64) bool {
	if pp.algo == SBT {
		return pp.window(p, at, 1) <= int64(pp.limit)
	}
	pp.roll(p, at)
	pp.counter++
	switch pp.algo {
	case RED:
		return pp.load == 0 || pp.counter%pp.load == 0
	default:
		return pp.counter <= p.limitPerInterval(pp.limit)
	}
}

const numShards = 64

type shard struct {
	mu sync.Mutex
	m  map[string]*pipe
	_  [48]byte
}

// table is the process-wide set of pipes; it survives reloads.
type table struct{ shards [numShards]shard }

var (
	hashSeed = maphash.MakeSeed()
	pipes    = newTable()
)

func newTable() *table {
	t := &table{}
	for i := range t.shards {
		t.shards[i].m = make(map[string]*pipe)
	}
	return t
}

func (t *table) shard(name string) *shard {
	return &t.shards[maphash.String(hashSeed, name)&(numShards-1)]
}

// clockOffset shifts the module clock in tests (atomic: the sweeper reads it).
var clockOffset atomic.Int64

func now() int64 { return time.Now().UnixNano() + clockOffset.Load() }

// checkResult is what rl_check found besides its verdict.
type checkResult struct {
	allowed bool
	// algoMismatch is the existing pipe's algorithm when the call asked
	// for another one (the pipe keeps its own).
	algoMismatch Algorithm
}

// check runs rl_check on the named pipe, creating it; algo 0 means the
// default algorithm.
func (t *table) check(p *params, name string, limit int, algo Algorithm, at int64) checkResult {
	s := t.shard(name)
	s.mu.Lock()
	pp := s.m[name]
	var res checkResult
	if pp == nil {
		if algo == 0 {
			algo = p.defAlgo
		}
		pp = &pipe{algo: algo, interval: at / p.interval}
		s.m[strings.Clone(name)] = pp
	} else {
		if algo != 0 && algo != pp.algo {
			res.algoMismatch = pp.algo
		}
		if pp.algo != SBT {
			pp.roll(p, at) // before the new limit, as OpenSIPS's timer
		}
	}
	pp.limit = limit
	pp.lastUsed = at
	res.allowed = pp.check(p, at)
	s.mu.Unlock()
	return res
}

// change applies rl_dec_count (delta -1) or rl_reset_count (delta 0); it
// reports false when there is no such pipe.
func (t *table) change(p *params, name string, delta int64, at int64) bool {
	s := t.shard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	pp := s.m[name]
	if pp == nil {
		return false
	}
	if pp.algo == SBT {
		if delta == 0 {
			clear(pp.win)
		} else {
			pp.window(p, at, delta)
		}
		return true
	}
	pp.roll(p, at)
	if delta != 0 && pp.counter+delta >= 0 {
		pp.counter += delta
	} else {
		pp.counter = 0
	}
	return true
}

// counter is $rl_count(name); ok is false without such a pipe.
func (t *table) counter(p *params, name string, at int64) (int64, bool) {
	s := t.shard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	pp := s.m[name]
	if pp == nil {
		return 0, false
	}
	return pp.count(p, at), true
}

// PipeInfo is one pipe as rl_list shows it.
type PipeInfo struct {
	Name      string
	Algorithm Algorithm
	Limit     int
	// Counter is the previous timer interval's count for TAILDROP and RED
	// (what OpenSIPS shows), the current window's for SBT.
	Counter int64
}

func (t *table) list(p *params, at int64, only string) []PipeInfo {
	var out []PipeInfo
	add := func(name string, pp *pipe) {
		pi := PipeInfo{Name: name, Algorithm: pp.algo, Limit: pp.limit}
		if pp.algo == SBT {
			pi.Counter = pp.window(p, at, 0)
		} else {
			pp.roll(p, at)
			pi.Counter = pp.last
		}
		out = append(out, pi)
	}
	if only != "" {
		s := t.shard(only)
		s.mu.Lock()
		if pp := s.m[only]; pp != nil {
			add(only, pp)
		}
		s.mu.Unlock()
		return out
	}
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for name, pp := range s.m {
			add(name, pp)
		}
		s.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// expire deletes the pipes idle for longer than expire_time.
func (t *table) expire(p *params, at int64) int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for name, pp := range s.m {
			if pp.lastUsed+p.expire < at {
				delete(s.m, name)
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}

func (t *table) clear() {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		clear(s.m)
		s.mu.Unlock()
	}
}
