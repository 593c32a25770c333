package dialog

import (
	"container/heap"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// State is a dialog's state, numbered as OpenSIPS's $DLG_status.
type State uint8

const (
	StateUnconfirmed State = 1 // created, no reply yet
	StateEarly       State = 2 // provisional reply seen
	StateConfirmedNA State = 3 // 2xx seen, no ACK yet
	StateConfirmed   State = 4 // 2xx and ACK seen
	StateDeleted     State = 5 // ended
)

// Create flags (create_dialog's string argument).
const (
	FlagByeOnTimeout uint8 = 1 << iota // "B"
	FlagPingCaller                     // "P" (accepted; no pinging yet)
	FlagPingCallee                     // "p"
	FlagReinvCaller                    // "R"
	FlagReinvCallee                    // "r"
)

// End reasons ($DLG_end_reason).
const (
	ReasonUpstreamBYE   = "Upstream BYE"
	ReasonDownstreamBYE = "Downstream BYE"
	ReasonTimeout       = "Lifetime Timeout"
	ReasonMI            = "MI Termination"
	ReasonFailed        = "" // never confirmed: negative reply, CANCEL, not relayed
)

type kv struct{ name, val string }

type link struct {
	p   *Profile
	val string
}

// Dialog is one tracked call. It belongs to the process: it outlives script
// reloads. Its fields are guarded by mu.
type Dialog struct {
	mu sync.Mutex

	entry, hid uint32 // OpenSIPS's h_entry and h_id; ID() is entry<<32|hid
	next       *Dialog

	callID, fromTag, toTag       string
	fromURI, toURI               string
	callerContact, calleeContact string
	callerRoute, calleeRoute     string // comma-separated route sets
	callerSock, calleeSock       string
	callerCSeq, calleeCSeq       uint32
	state                        State
	cflags                       uint8
	flags                        uint32 // script flags (set_dlg_flag)
	created, start, expires      int64  // unix seconds: creation, confirmation, lifetime end
	timeout                      int32  // lifetime in seconds
	endReason                    string
	vals                         []kv
	profiles                     []link
	persisted                    bool // a row exists in the database
}

// ID is the dialog's numeric id (h_entry<<32 | h_id), as dlg_list shows it.
func (d *Dialog) ID() uint64 { return uint64(d.entry)<<32 | uint64(d.hid) }

// DID is $DLG_did: "h_entry:h_id".
func (d *Dialog) DID() string {
	return strconv.FormatUint(uint64(d.entry), 10) + ":" + strconv.FormatUint(uint64(d.hid), 10)
}

// CallID is the dialog's Call-ID.
func (d *Dialog) CallID() string { return d.callID }

// State is the dialog's current state.
func (d *Dialog) State() State {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state
}

// Value returns a dialog value ($dlg_val).
func (d *Dialog) Value(name string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.valueLocked(name)
}

func (d *Dialog) valueLocked(name string) (string, bool) {
	for _, e := range d.vals {
		if e.name == name {
			return e.val, true
		}
	}
	return "", false
}

// SetValue stores a dialog value (deleting it when del is true).
func (d *Dialog) SetValue(name, val string, del bool) {
	d.mu.Lock()
	changed := d.setValueLocked(name, val, del)
	w := changed && d.persisted
	d.mu.Unlock()
	if w {
		persistUpdate(d)
	}
}

func (d *Dialog) setValueLocked(name, val string, del bool) bool {
	for i, e := range d.vals {
		if e.name == name {
			if del {
				d.vals = append(d.vals[:i], d.vals[i+1:]...)
				return true
			}
			if e.val == val {
				return false
			}
			d.vals[i].val = strings.Clone(val)
			return true
		}
	}
	if del {
		return false
	}
	d.vals = append(d.vals, kv{strings.Clone(name), strings.Clone(val)})
	return true
}

// Lifetime is $DLG_lifetime: seconds since confirmation (0 before).
func (d *Dialog) Lifetime(now int64) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.start == 0 {
		return 0
	}
	return now - d.start
}

// ---- the table ----

const nShards = 256

type shard struct {
	mu     sync.Mutex
	byCall map[string]*Dialog // Call-ID → dialogs with that Call-ID (chained by next)
	n      int
	peak   int // high-water mark of n since the map was last rebuilt
}

type table struct {
	shards [nShards]shard
	hid    atomic.Uint32
	count  atomic.Int64 // live dialogs ($DLG_count, active_dialogs)
	early  atomic.Int64

	processed, expired, failed atomic.Uint64
}

var tbl = newTable()

func newTable() *table {
	t := &table{}
	for i := range t.shards {
		t.shards[i].byCall = map[string]*Dialog{}
	}
	return t
}

func hashCallID(callID string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(callID))
	return h.Sum32()
}

func (t *table) shardOf(callID string) *shard {
	return &t.shards[hashCallID(callID)%nShards]
}

// insert adds a new dialog and gives it its ids.
func (t *table) insert(d *Dialog, hashSize uint32) {
	h := hashCallID(d.callID)
	d.entry = h & (hashSize - 1)
	if d.hid == 0 {
		d.hid = t.hid.Add(1)
	}
	s := &t.shards[h%nShards]
	s.mu.Lock()
	d.next = s.byCall[d.callID]
	s.byCall[d.callID] = d
	s.n++
	if s.n > s.peak {
		s.peak = s.n
	}
	s.mu.Unlock()
	t.count.Add(1)
	t.processed.Add(1)
}

// remove takes a dialog out of the table; false if it was not there.
func (t *table) remove(d *Dialog) bool {
	s := t.shardOf(d.callID)
	s.mu.Lock()
	defer s.mu.Unlock()
	var prev *Dialog
	for cur := s.byCall[d.callID]; cur != nil; prev, cur = cur, cur.next {
		if cur != d {
			continue
		}
		if prev == nil {
			if cur.next == nil {
				delete(s.byCall, d.callID)
			} else {
				s.byCall[d.callID] = cur.next
			}
		} else {
			prev.next = cur.next
		}
		cur.next = nil
		s.n--
		t.count.Add(-1)
		if s.peak > 256 && s.n < s.peak/4 {
			// Go maps never shrink: rebuild after a peak has passed
			m := make(map[string]*Dialog, s.n)
			for k, v := range s.byCall {
				m[k] = v
			}
			s.byCall, s.peak = m, s.n
		}
		return true
	}
	return false
}

// Direction of a sequential request in its dialog.
const (
	DirDownstream = 1 // caller → callee
	DirUpstream   = 2 // callee → caller
)

// match finds the dialog of a sequential request by Call-ID and tags.
func (t *table) match(callID, fromTag, toTag string) (*Dialog, int) {
	s := t.shardOf(callID)
	s.mu.Lock()
	defer s.mu.Unlock()
	var early *Dialog
	for d := s.byCall[callID]; d != nil; d = d.next {
		d.mu.Lock()
		dt, ft := d.toTag, d.fromTag
		d.mu.Unlock()
		switch {
		case ft == fromTag && dt == toTag && dt != "":
			return d, DirDownstream
		case dt != "" && dt == fromTag && ft == toTag:
			return d, DirUpstream
		case dt == "" && ft == fromTag && early == nil:
			early = d
		}
	}
	if early != nil {
		return early, DirDownstream
	}
	return nil, 0
}

// each calls fn for every live dialog (MI, profile listing). fn runs with
// no lock held.
func (t *table) each(fn func(d *Dialog) bool) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		var list []*Dialog
		for _, d := range s.byCall {
			for ; d != nil; d = d.next {
				list = append(list, d)
			}
		}
		s.mu.Unlock()
		for _, d := range list {
			if !fn(d) {
				return
			}
		}
	}
}

// byID finds a dialog by numeric id or, failing that, by Call-ID.
func (t *table) find(id string) *Dialog {
	if n, err := strconv.ParseUint(id, 10, 64); err == nil {
		var found *Dialog
		t.each(func(d *Dialog) bool {
			if d.ID() == n {
				found = d
				return false
			}
			return true
		})
		if found != nil {
			return found
		}
	}
	s := t.shardOf(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byCall[id]
}

// ---- lifetime timers: one goroutine and a heap, no timer per dialog ----

type expiry struct {
	at int64
	d  *Dialog
}

type expHeap []expiry

func (h expHeap) Len() int           { return len(h) }
func (h expHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h expHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = expiry{}
	*h = old[:len(old)-1]
	return x
}

type timers struct {
	mu      sync.Mutex
	h       expHeap
	wake    chan struct{}
	started bool
}

var tmr = &timers{wake: make(chan struct{}, 1)}

// clock is the time source in unix seconds (SetClock replaces it).
var clock atomic.Pointer[func() int64]

func init() {
	f := func() int64 { return time.Now().Unix() }
	clock.Store(&f)
}

func (tm *timers) now() int64 { return (*clock.Load())() }

// schedule arms (or re-arms) a dialog's lifetime end at unix time at.
// Entries are not removed when re-armed: a popped entry whose time does not
// match the dialog's current expiry is stale and skipped.
func (tm *timers) schedule(d *Dialog, at int64) {
	tm.mu.Lock()
	heap.Push(&tm.h, expiry{at: at, d: d})
	first := tm.h[0].d == d && tm.h[0].at == at
	if !tm.started {
		tm.started = true
		go tm.loop()
	}
	tm.mu.Unlock()
	if first {
		select {
		case tm.wake <- struct{}{}:
		default:
		}
	}
}

func (tm *timers) loop() {
	t := time.NewTimer(10 * time.Second)
	for {
		tm.mu.Lock()
		wait := 10 * time.Second // at least this often, stale entries are swept
		if len(tm.h) > 0 {
			wait = time.Duration(tm.h[0].at-tm.now()) * time.Second
			if wait < 0 {
				wait = 0
			}
			if wait > 10*time.Second {
				wait = 10 * time.Second
			}
		}
		tm.mu.Unlock()
		t.Reset(wait)
		select {
		case <-t.C:
		case <-tm.wake:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		}
		tm.fire()
	}
}

// fire ends every dialog whose lifetime is over.
func (tm *timers) fire() {
	now := tm.now()
	var due []*Dialog
	tm.mu.Lock()
	for len(tm.h) > 0 && tm.h[0].at <= now {
		e := heap.Pop(&tm.h).(expiry)
		e.d.mu.Lock()
		live := e.d.state != StateDeleted && e.d.expires == e.at
		e.d.mu.Unlock()
		if live {
			due = append(due, e.d)
		}
	}
	// drop stale entries that would otherwise pile up
	if len(tm.h) > 1024 && len(tm.h) > 2*int(tbl.count.Load()) {
		kept := tm.h[:0]
		for _, e := range tm.h {
			e.d.mu.Lock()
			live := e.d.state != StateDeleted && e.d.expires == e.at
			e.d.mu.Unlock()
			if live {
				kept = append(kept, e)
			}
		}
		for i := len(kept); i < len(tm.h); i++ {
			tm.h[i] = expiry{}
		}
		if cap(kept) > 4*len(kept)+1024 {
			kept = append(expHeap(nil), kept...)
		}
		tm.h = kept
		heap.Init(&tm.h)
	}
	tm.mu.Unlock()
	for _, d := range due {
		timeoutDialog(d)
	}
}

// reset empties the heap (tests simulating a restart).
func (tm *timers) reset() {
	tm.mu.Lock()
	tm.h = nil
	tm.mu.Unlock()
}
