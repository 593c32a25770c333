package dialog

import (
	"fmt"
	"hash/maphash"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Profile is a dialog profile: a set of dialogs, optionally keyed by a
// value. Sizes are counters kept as dialogs join and leave, so
// get_profile_size is O(1) whatever the number of live dialogs.
type Profile struct {
	Name      string
	WithValue bool

	total  atomic.Int64
	shards [16]profShard
}

type profShard struct {
	mu     sync.Mutex
	counts map[string]int64
}

var hashSeed = maphash.MakeSeed()

func (p *Profile) shard(val string) *profShard {
	return &p.shards[maphash.String(hashSeed, val)%uint64(len(p.shards))]
}

func newProfile(name string, withValue bool) *Profile {
	p := &Profile{Name: name, WithValue: withValue}
	for i := range p.shards {
		p.shards[i].counts = map[string]int64{}
	}
	return p
}

func (p *Profile) add(val string, n int64) {
	p.total.Add(n)
	if !p.WithValue {
		return
	}
	s := p.shard(val)
	s.mu.Lock()
	c := s.counts[val] + n
	if c <= 0 {
		delete(s.counts, val)
	} else {
		s.counts[val] = c
	}
	s.mu.Unlock()
}

// Size is the number of dialogs in the profile; with a value (for a
// profile with values) the number inserted with that value.
func (p *Profile) Size(val string, byValue bool) int64 {
	if !byValue || !p.WithValue {
		return p.total.Load()
	}
	s := p.shard(val)
	s.mu.Lock()
	n := s.counts[val]
	s.mu.Unlock()
	return n
}

// Values lists a profile's values with their counts.
func (p *Profile) Values() map[string]int64 {
	out := map[string]int64{}
	for i := range p.shards {
		s := &p.shards[i]
		s.mu.Lock()
		for k, v := range s.counts {
			out[k] = v
		}
		s.mu.Unlock()
	}
	return out
}

func (p *Profile) reset() {
	p.total.Store(0)
	for i := range p.shards {
		s := &p.shards[i]
		s.mu.Lock()
		s.counts = map[string]int64{}
		s.mu.Unlock()
	}
}

// ---- the process-wide profile registry ----

var (
	profMu   sync.RWMutex
	profiles = map[string]*Profile{}
)

// LookupProfile finds a defined profile.
func LookupProfile(name string) *Profile {
	profMu.RLock()
	defer profMu.RUnlock()
	return profiles[name]
}

// profileNames lists the defined profiles, sorted.
func profileNames() []string {
	profMu.RLock()
	defer profMu.RUnlock()
	out := make([]string, 0, len(profiles))
	for n := range profiles {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// profileDef is one name from a profiles_with_value/profiles_no_value list.
type profileDef struct {
	name      string
	withValue bool
}

// parseProfiles reads OpenSIPS's ";"-separated profile lists. The /b and /s
// sharing suffixes are accepted and ignored (one instance, no sharing).
func parseProfiles(list string, withValue bool) ([]profileDef, error) {
	var out []profileDef
	for _, part := range strings.Split(list, ";") {
		name := strings.TrimSpace(part)
		if name == "" {
			continue
		}
		if i := strings.IndexByte(name, '/'); i >= 0 {
			switch strings.TrimSpace(name[i+1:]) {
			case "b", "s":
			default:
				return nil, fmt.Errorf("profile %q: unknown flag %q (want /b or /s)", name, name[i+1:])
			}
			name = strings.TrimSpace(name[:i])
		}
		if strings.ContainsAny(name, " \t#\n") {
			return nil, fmt.Errorf("bad profile name %q", name)
		}
		out = append(out, profileDef{name, withValue})
	}
	return out, nil
}

// defineProfiles registers profiles, keeping existing ones (and their
// counters) across reloads. A profile whose kind changed gets a new
// counter set.
func defineProfiles(defs []profileDef) {
	profMu.Lock()
	defer profMu.Unlock()
	for _, d := range defs {
		if p := profiles[d.name]; p != nil && p.WithValue == d.withValue {
			continue
		}
		profiles[d.name] = newProfile(d.name, d.withValue)
	}
}
