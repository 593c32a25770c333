// Package stats holds sipedge's statistics: named counters grouped by
// module ("core", "tm", "sl" …) under OpenSIPS's names, so the MI commands
// get_statistics / list_statistics / reset_statistics and the prometheus
// module can show them as OpenSIPS does.
//
// A counter is created once, when its package initialises, and kept in a
// variable; the hot path is then a single atomic add with no lookup:
//
//	var sentReplies = stats.NewCounter("sl", "sent_replies")
//	…
//	sentReplies.Inc()
//
// There are three kinds, after OpenSIPS's statistic flags:
//
//   - NewCounter: an incremental counter; reset_statistics sets it to 0.
//   - NewGauge: a value that goes up and down (OpenSIPS STAT_NO_RESET, e.g.
//     tm's inuse_transactions); reset_statistics leaves it alone.
//   - NewFunc: a value computed when read (OpenSIPS STAT_IS_FUNC, e.g. core's
//     timestamp); it cannot be changed or reset.
//
// The core statistics are registered here as package variables
// (RcvRequests, FwdRequests …) for the SIP runtime to increment. Module
// statistics (tm's UAS_transactions, sl's 1xx_replies …) are registered by
// the module packages themselves with the constructors, so only statistics
// something increments are listed.
package stats

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
)

// Kind tells how a statistic behaves; see the package doc.
type Kind uint8

const (
	// KindCounter is incremental and resettable.
	KindCounter Kind = iota
	// KindGauge goes up and down and is not reset (OpenSIPS STAT_NO_RESET).
	KindGauge
	// KindFunc is computed when read (OpenSIPS STAT_IS_FUNC).
	KindFunc
)

func (k Kind) String() string {
	switch k {
	case KindCounter:
		return "counter"
	case KindGauge:
		return "gauge"
	case KindFunc:
		return "func"
	}
	return "?"
}

// Counter is one statistic. Its methods are safe for concurrent use; the
// update methods are one atomic operation each.
type Counter struct {
	v atomic.Int64
	// pad keeps two hot counters allocated side by side from sharing a
	// cache line.
	_     [56]byte
	group string
	name  string
	kind  Kind
	fn    func() int64
}

// Inc adds 1.
func (c *Counter) Inc() { c.v.Add(1) }

// Dec subtracts 1 (for gauges such as inuse_transactions).
func (c *Counter) Dec() { c.v.Add(-1) }

// Add adds n, which may be negative (OpenSIPS's update_stat).
func (c *Counter) Add(n int64) { c.v.Add(n) }

// Set stores n (for gauges).
func (c *Counter) Set(n int64) { c.v.Store(n) }

// Value is the current value; a func statistic is computed now.
func (c *Counter) Value() int64 {
	if c.fn != nil {
		return c.fn()
	}
	return c.v.Load()
}

// Reset sets an incremental counter to 0 and reports whether it did:
// gauges and func statistics are not resettable, as in OpenSIPS.
func (c *Counter) Reset() bool {
	if !c.Resettable() {
		return false
	}
	c.v.Store(0)
	return true
}

// Resettable tells whether reset_statistics changes this statistic.
func (c *Counter) Resettable() bool { return c.kind == KindCounter }

// Group is the module (OpenSIPS "class") the statistic belongs to.
func (c *Counter) Group() string { return c.group }

// Name is the statistic's name within its group.
func (c *Counter) Name() string { return c.name }

// FullName is "group:name", as get_statistics prints it.
func (c *Counter) FullName() string { return c.group + ":" + c.name }

// Kind tells how the statistic behaves.
func (c *Counter) Kind() Kind { return c.kind }

// Incremental is OpenSIPS's list_statistics attribute: counters are
// "incremental", gauges and func statistics "non-incremental".
func (c *Counter) Incremental() bool { return c.kind == KindCounter }

type group struct {
	name     string
	counters []*Counter
}

var reg struct {
	mu      sync.RWMutex
	groups  []*group
	byKey   map[string]*Counter // lower(group) + ":" + lower(name)
	version atomic.Uint64
}

// NewCounter registers an incremental statistic (or returns the one
// already registered under that group and name, so a package's tests can
// run its init twice). It panics when the name is empty or taken by a
// statistic of another kind.
func NewCounter(group, name string) *Counter { return register(group, name, KindCounter, nil) }

// NewGauge registers a statistic that goes up and down and that
// reset_statistics leaves alone (OpenSIPS STAT_NO_RESET).
func NewGauge(group, name string) *Counter { return register(group, name, KindGauge, nil) }

// NewFunc registers a statistic whose value fn computes when read
// (OpenSIPS STAT_IS_FUNC). fn must be cheap and safe for concurrent use.
func NewFunc(group, name string, fn func() int64) *Counter {
	if fn == nil {
		panic("stats: NewFunc without a function")
	}
	return register(group, name, KindFunc, fn)
}

func register(groupName, name string, kind Kind, fn func() int64) *Counter {
	if groupName == "" || name == "" {
		panic("stats: a statistic needs a group and a name")
	}
	if strings.ContainsRune(groupName, ':') {
		panic(fmt.Sprintf("stats: group %q must not contain ':'", groupName))
	}
	key := strings.ToLower(groupName) + ":" + strings.ToLower(name)
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if reg.byKey == nil {
		reg.byKey = map[string]*Counter{}
	}
	if c := reg.byKey[key]; c != nil {
		if c.kind != kind {
			panic(fmt.Sprintf("stats: %s is already registered as a %s", c.FullName(), c.kind))
		}
		if fn != nil {
			c.fn = fn
		}
		return c
	}
	c := &Counter{group: groupName, name: name, kind: kind, fn: fn}
	g := findGroup(groupName)
	if g == nil {
		g = &group{name: groupName}
		reg.groups = append(reg.groups, g)
	}
	g.counters = append(g.counters, c)
	reg.byKey[key] = c
	reg.version.Add(1)
	return c
}

// findGroup looks a group up case-insensitively (OpenSIPS compares
// statistic and group names without case). Callers hold reg.mu.
func findGroup(name string) *group {
	for _, g := range reg.groups {
		if strings.EqualFold(g.name, name) {
			return g
		}
	}
	return nil
}

// Version changes whenever a statistic is registered; collectors that
// cache per-statistic data rebuild when it moves.
func Version() uint64 { return reg.version.Load() }

// Groups lists the group names in registration order.
func Groups() []string {
	reg.mu.RLock()
	defer reg.mu.RUnlock()
	out := make([]string, len(reg.groups))
	for i, g := range reg.groups {
		out[i] = g.name
	}
	return out
}

// Group lists a group's statistics in registration order (nil when the
// group does not exist). The name is matched without case.
func Group(name string) []*Counter {
	reg.mu.RLock()
	defer reg.mu.RUnlock()
	if g := findGroup(name); g != nil {
		out := make([]*Counter, len(g.counters))
		copy(out, g.counters)
		return out
	}
	return nil
}

// Lookup finds a statistic by group and name (without case).
func Lookup(group, name string) *Counter {
	reg.mu.RLock()
	defer reg.mu.RUnlock()
	return reg.byKey[strings.ToLower(group)+":"+strings.ToLower(name)]
}

// Find returns the first statistic of that name in any group (groups in
// registration order), as OpenSIPS's get_stat does; nil if none.
func Find(name string) *Counter {
	reg.mu.RLock()
	defer reg.mu.RUnlock()
	for _, g := range reg.groups {
		for _, c := range g.counters {
			if strings.EqualFold(c.name, name) {
				return c
			}
		}
	}
	return nil
}

// All lists every statistic, group by group.
func All() []*Counter {
	var out []*Counter
	Each(func(c *Counter) { out = append(out, c) })
	return out
}

// Each calls f for every statistic, group by group, without copying the
// registry. f must not register statistics.
func Each(f func(*Counter)) {
	reg.mu.RLock()
	defer reg.mu.RUnlock()
	for _, g := range reg.groups {
		for _, c := range g.counters {
			f(c)
		}
	}
}

// Select resolves OpenSIPS statistic specs, as get_statistics and the
// prometheus module's "statistics" parameter take them: "all" is every
// statistic, "group:" a whole group, anything else one statistic by name
// (the first group that has it). Specs that match nothing are skipped;
// found tells whether any matched. A statistic named twice is listed once.
func Select(specs []string) (out []*Counter, found bool) {
	seen := map[*Counter]bool{}
	add := func(c *Counter) {
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	for _, s := range specs {
		switch {
		case s == "all":
			Each(add)
			found = true
		case len(s) > 1 && strings.HasSuffix(s, ":"):
			cs := Group(strings.TrimSuffix(s, ":"))
			if cs == nil {
				continue
			}
			for _, c := range cs {
				add(c)
			}
			found = true
		default:
			if c := Find(s); c != nil {
				add(c)
				found = true
			}
		}
	}
	return out, found
}
