package usrloc

import (
	"errors"
	"hash/maphash"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Contact is one registered binding of an address-of-record.
type Contact struct {
	ID           int64  // contact_id: the location row (0 until first written in db_mode 2)
	AOR          string // user[@domain]
	URI          string // the Contact URI
	Received     string // "sip:IP:port[;transport=x]" when the REGISTER came from elsewhere (NAT)
	Path         string
	Expires      int64 // unix seconds; 0 never expires
	Q            int   // thousandths (0..1000); -1 when unspecified
	CallID       string
	CSeq         int
	LastModified int64 // unix seconds
	Flags        int
	CFlags       string
	UserAgent    string
	Socket       string // "proto:ip:port" the REGISTER arrived on
	Methods      int    // bitmask of supported methods (Allow); -1 when unknown (all)
	Instance     string // +sip.instance
	Attr         string

	key     int64     // identity in memory (the row id in db_mode 3); kept by copies
	memOnly bool      // saved with the 'm' flag: never written to the database
	state   syncState // db_mode 2 bookkeeping
}

type syncState uint8

const (
	synced syncState = iota
	stateNew
	stateDirty
)

// Expired tells whether the binding is gone at time now.
func (c *Contact) Expired(now int64) bool { return c.Expires != 0 && c.Expires <= now }

// Same tells whether two bindings hold the same data (ID and bookkeeping
// aside), so an unchanged re-registration writes nothing.
func (c *Contact) Same(o *Contact) bool {
	a, b := *c, *o
	a.ID, b.ID, a.key, b.key, a.state, b.state, a.memOnly, b.memOnly = 0, 0, 0, 0, 0, 0, false, false
	return a == b
}

// Domain is one location table ("location"): the registrar's first argument.
type Domain struct {
	Name   string
	shards [64]shard
	seed   maphash.Seed

	loadMu   sync.Mutex
	loadedDB string // database path the table was loaded from (db_mode 1, 2)

	delMu      sync.Mutex
	pendingDel []int64 // db_mode 2: rows to delete at the next flush
}

type shard struct {
	mu   sync.Mutex
	recs map[string][]*Contact
}

var (
	domainsMu sync.Mutex
	domains   = map[string]*Domain{}
)

// GetDomain returns the process-wide table of that name, creating it empty.
// Tables live as long as the process, so registrations survive reloads.
func GetDomain(name string) *Domain {
	domainsMu.Lock()
	defer domainsMu.Unlock()
	d := domains[name]
	if d == nil {
		d = &Domain{Name: name, seed: maphash.MakeSeed()}
		domains[name] = d
	}
	return d
}

// Domains lists the tables in use, sorted by name.
func Domains() []*Domain {
	domainsMu.Lock()
	defer domainsMu.Unlock()
	out := make([]*Domain, 0, len(domains))
	for _, d := range domains {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (d *Domain) shard(aor string) *shard {
	return &d.shards[maphash.String(d.seed, aor)%uint64(len(d.shards))]
}

var memIDs atomic.Int64 // contact IDs when no database assigns them

// clock is the time source; tests replace it.
var clock = func() int64 { return time.Now().Unix() }

// ErrNoDB means the configuration has no usable database for an operation
// that needs one.
var ErrNoDB = errors.New("usrloc has no database (set db_url)")

// Lookup returns copies of the AOR's live bindings, best first: highest q,
// then most recently refreshed (desc_time_order: most recent first only).
func (d *Domain) Lookup(aor string) ([]Contact, error) {
	c := cur.Load()
	now := clock()
	if c.mode == DBOnly {
		cs, err := c.dbLoadAOR(d.Name, aor, now)
		if err != nil {
			return nil, err
		}
		sortContacts(cs, c.descTime)
		return cs, nil
	}
	if err := d.ensureLoaded(c); err != nil {
		return nil, err
	}
	sh := d.shard(aor)
	sh.mu.Lock()
	var out []Contact
	for _, ct := range sh.recs[aor] {
		if !ct.Expired(now) {
			out = append(out, *ct)
		}
	}
	sh.mu.Unlock()
	sortContacts(out, c.descTime)
	return out, nil
}

func sortContacts(cs []Contact, descTime bool) {
	sort.SliceStable(cs, func(i, j int) bool {
		if !descTime && cs[i].Q != cs[j].Q {
			return cs[i].Q > cs[j].Q
		}
		return cs[i].LastModified > cs[j].LastModified
	})
}

// Update changes an AOR's bindings atomically: fn gets copies of the live
// bindings and returns the complete new set (return a copy it got, changed
// or not, to keep that binding; a Contact made from scratch is added). The
// changes are written as db_mode says, unless memOnly. If fn or the
// database write fails nothing changes. It returns the bindings after the
// change, best first.
func (d *Domain) Update(aor string, memOnly bool, fn func(cur []Contact) ([]Contact, error)) ([]Contact, error) {
	c := cur.Load()
	now := clock()
	if c.mode == DBOnly {
		out, err := c.dbUpdateAOR(d.Name, aor, now, fn)
		if err == nil {
			sortContacts(out, c.descTime)
		}
		return out, err
	}
	if err := d.ensureLoaded(c); err != nil {
		return nil, err
	}
	sh := d.shard(aor)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	old := sh.recs[aor]
	live := make([]Contact, 0, len(old))
	for _, ct := range old {
		if !ct.Expired(now) {
			live = append(live, *ct)
		}
	}
	next, err := fn(live)
	if err != nil {
		return nil, err
	}
	byKey := make(map[int64]*Contact, len(old))
	for _, ct := range old {
		byKey[ct.key] = ct
	}
	var ins, upd []*Contact
	kept := map[int64]bool{}
	newRec := make([]*Contact, 0, len(next))
	for i := range next {
		n := next[i]
		n.AOR = aor
		if o := byKey[n.key]; n.key != 0 && o != nil && !kept[n.key] {
			kept[n.key] = true
			n.ID, n.memOnly, n.state = o.ID, o.memOnly, o.state
			if !n.Same(o) {
				upd = append(upd, &n)
			}
		} else {
			n.ID, n.key, n.memOnly, n.state = 0, memIDs.Add(1), memOnly, synced
			ins = append(ins, &n)
		}
		newRec = append(newRec, &n)
	}
	var del []*Contact
	for _, o := range old {
		if !kept[o.key] {
			del = append(del, o)
		}
	}
	// memOnly (save's 'm' flag): this change touches no database row.
	switch {
	case memOnly:
	case c.mode == WriteThrough:
		if err := c.dbWrite(d.Name, filterDB(ins), filterDB(upd), inDB(del)); err != nil {
			return nil, err
		}
	case c.mode == WriteBack:
		for _, n := range ins {
			n.state = stateNew
		}
		for _, n := range upd {
			if n.state != stateNew && !n.memOnly {
				n.state = stateDirty
			}
		}
		d.delMu.Lock()
		for _, o := range inDB(del) {
			d.pendingDel = append(d.pendingDel, o.ID)
		}
		d.delMu.Unlock()
	}
	if len(newRec) == 0 {
		delete(sh.recs, aor)
	} else {
		if sh.recs == nil {
			sh.recs = map[string][]*Contact{}
		}
		sh.recs[aor] = newRec
	}
	out := make([]Contact, len(newRec))
	for i, n := range newRec {
		out[i] = *n
	}
	sortContacts(out, c.descTime)
	return out, nil
}

// inDB keeps the bindings that have a database row.
func inDB(cs []*Contact) []*Contact {
	out := cs[:0:0]
	for _, c := range cs {
		if c.ID > 0 {
			out = append(out, c)
		}
	}
	return out
}

func filterDB(cs []*Contact) []*Contact {
	out := cs[:0:0]
	for _, c := range cs {
		if !c.memOnly {
			out = append(out, c)
		}
	}
	return out
}

// RemoveAOR deletes every binding of an AOR; it reports how many went.
func (d *Domain) RemoveAOR(aor string) (int, error) {
	n := 0
	_, err := d.Update(aor, false, func(cur []Contact) ([]Contact, error) {
		n = len(cur)
		return nil, nil
	})
	return n, err
}

// All returns copies of every live binding, grouped by AOR (sorted).
func (d *Domain) All() (map[string][]Contact, error) {
	c := cur.Load()
	now := clock()
	out := map[string][]Contact{}
	if c.mode == DBOnly {
		cs, err := c.dbLoadAll(d.Name, now)
		if err != nil {
			return nil, err
		}
		for _, ct := range cs {
			out[ct.AOR] = append(out[ct.AOR], ct)
		}
	} else {
		if err := d.ensureLoaded(c); err != nil {
			return nil, err
		}
		for i := range d.shards {
			sh := &d.shards[i]
			sh.mu.Lock()
			for aor, cs := range sh.recs {
				for _, ct := range cs {
					if !ct.Expired(now) {
						out[aor] = append(out[aor], *ct)
					}
				}
			}
			sh.mu.Unlock()
		}
	}
	for aor := range out {
		sortContacts(out[aor], c.descTime)
	}
	return out, nil
}

// expire drops expired bindings from memory (db_mode 0, 1, 2) and returns
// how many went; the database side is cleaned by one DELETE in the timer.
func (d *Domain) expire(now int64) int {
	n := 0
	for i := range d.shards {
		sh := &d.shards[i]
		sh.mu.Lock()
		for aor, cs := range sh.recs {
			keep := cs[:0]
			for _, ct := range cs {
				if ct.Expired(now) {
					n++
					continue
				}
				keep = append(keep, ct)
			}
			clear(cs[len(keep):])
			if len(keep) == 0 {
				delete(sh.recs, aor)
			} else {
				sh.recs[aor] = keep
			}
		}
		sh.mu.Unlock()
	}
	return n
}

// ensureLoaded fills the table from the database the first time it is
// used with db_mode 1 or 2 (restart persistence).
func (d *Domain) ensureLoaded(c *config) error {
	if c.mode != WriteThrough && c.mode != WriteBack {
		return nil
	}
	d.loadMu.Lock()
	defer d.loadMu.Unlock()
	if d.loadedDB == c.db.Path {
		return nil
	}
	cs, err := c.dbLoadAll(d.Name, clock())
	if err != nil {
		return err
	}
	for i := range cs {
		ct := cs[i]
		sh := d.shard(ct.AOR)
		sh.mu.Lock()
		if sh.recs == nil {
			sh.recs = map[string][]*Contact{}
		}
		dup := false
		for _, o := range sh.recs[ct.AOR] {
			if o.ID == ct.ID || o.URI == ct.URI && o.CallID == ct.CallID {
				dup = true
			}
		}
		if !dup {
			ct.key = memIDs.Add(1)
			sh.recs[ct.AOR] = append(sh.recs[ct.AOR], &ct)
		}
		sh.mu.Unlock()
	}
	d.loadedDB = c.db.Path
	return nil
}

// SplitAOR splits "user@domain" for the username and domain columns.
func SplitAOR(aor string) (user, domain string) {
	if i := strings.IndexByte(aor, '@'); i >= 0 {
		return aor[:i], aor[i+1:]
	}
	return aor, ""
}

// Keep makes next replace old in an Update: next keeps old's identity.
func Keep(old, next *Contact) {
	next.key, next.ID = old.key, old.ID
}

// Now is usrloc's clock (unix seconds), for callers computing expiries.
func Now() int64 { return clock() }

// SetClock replaces usrloc's clock (tests); it returns the previous one.
func SetClock(f func() int64) func() int64 {
	old := clock
	clock = f
	return old
}
