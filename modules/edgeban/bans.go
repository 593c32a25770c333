package edgeban

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/sipedge/sipedge/modules/edgeban/gate"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/store"
)

// ban is one banned address.
type ban struct {
	ip     netip.Addr
	since  int64 // unix seconds
	until  int64 // unix seconds; 0: never
	reason string
	events int
	entry  *gate.Entry // published to the runtime; keeps the drop counter
}

func (b *ban) expired(now int64) bool { return b.until != 0 && now >= b.until }

// state is the process's counters and bans: they outlive script reloads.
type state struct {
	mu       sync.Mutex
	counters map[netip.Addr][]int64 // event times (unix ns) inside the window, oldest first
	bans     map[netip.Addr]*ban
	loaded   map[string]bool // database paths the bans were read from
}

var st = &state{counters: map[netip.Addr][]int64{}, bans: map[netip.Addr]*ban{}, loaded: map[string]bool{}}

// clock is the time source (unix nanoseconds); tests replace it.
var clock = func() int64 { return time.Now().UnixNano() }

// publishLocked hands the runtime a fresh copy of the ban set.
func (s *state) publishLocked(c *config) {
	if !c.dropEarly || len(s.bans) == 0 {
		gate.Publish(nil)
		return
	}
	set := make(gate.Set, len(s.bans))
	for ip, b := range s.bans {
		if b.entry == nil {
			b.entry = &gate.Entry{}
		}
		b.entry.Until = b.until * int64(time.Second)
		set[ip] = b.entry
	}
	gate.Publish(set)
}

// eventResult is what counting one event did.
type eventResult int

const (
	evCounted   eventResult = iota
	evBanned                // this event reached the threshold: banned now
	evAlready               // the address was banned already
	evExempt                // whitelisted, or used by a registered contact
	evUntracked             // max_tracked addresses are being counted already
)

// event counts one event for ip. reason names it (the alert category).
func (s *state) event(c *config, ip netip.Addr, reason string) (eventResult, *ban) {
	if c.whitelisted(ip) {
		return evExempt, nil
	}
	now := clock()
	nowSec := now / int64(time.Second)
	s.mu.Lock()
	if b := s.bans[ip]; b != nil && !b.expired(nowSec) {
		s.mu.Unlock()
		return evAlready, b
	}
	times, tracked := s.counters[ip]
	if !tracked && len(s.counters) >= c.maxTracked {
		s.mu.Unlock()
		return evUntracked, nil
	}
	times = prune(times, now-c.window)
	times = append(times, now)
	if len(times) < c.threshold {
		s.counters[ip] = times
		s.mu.Unlock()
		return evCounted, nil
	}
	events := len(times)
	delete(s.counters, ip)
	s.mu.Unlock()
	// the registered-contact check may query the database: not under the lock
	if c.exemptRegistered && registered(c, ip) {
		return evExempt, nil
	}
	b := &ban{ip: ip, since: nowSec, until: nowSec + c.banTime, reason: reason, events: events}
	if c.banTime <= 0 {
		b.until = 0
	}
	s.add(c, b)
	return evBanned, b
}

// prune drops the times before from (the slice is oldest first).
func prune(times []int64, from int64) []int64 {
	i := 0
	for i < len(times) && times[i] < from {
		i++
	}
	if i == 0 {
		return times
	}
	return append(times[:0], times[i:]...)
}

// add bans b.ip (replacing an earlier ban of it), writes it to the
// database and publishes the new set.
func (s *state) add(c *config, b *ban) {
	s.mu.Lock()
	if old := s.bans[b.ip]; old != nil {
		b.entry = old.entry // keep the drop counter
	}
	s.bans[b.ip] = b
	delete(s.counters, b.ip)
	s.publishLocked(c)
	s.mu.Unlock()
	if err := c.persist(b); err != nil {
		gate.Log(msgctx.LErr, fmt.Sprintf("edgeban: saving the ban of %s: %v", b.ip, err))
	}
}

// remove lifts the ban of ip; it reports whether there was one.
func (s *state) remove(c *config, ip netip.Addr) bool {
	s.mu.Lock()
	b := s.bans[ip]
	if b != nil {
		delete(s.bans, ip)
		s.publishLocked(c)
	}
	delete(s.counters, ip)
	s.mu.Unlock()
	if b == nil {
		return false
	}
	if err := c.unpersist(ip); err != nil {
		gate.Log(msgctx.LErr, fmt.Sprintf("edgeban: deleting the ban of %s: %v", ip, err))
	}
	return true
}

// banned returns ip's ban if it is in force.
func (s *state) banned(ip netip.Addr) *ban {
	now := clock() / int64(time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.bans[ip]; b != nil && !b.expired(now) {
		return b
	}
	return nil
}

// sweep lifts expired bans and forgets counters older than the window.
func (s *state) sweep(c *config) []netip.Addr {
	now := clock()
	nowSec := now / int64(time.Second)
	var gone []netip.Addr
	s.mu.Lock()
	for ip, b := range s.bans {
		if b.expired(nowSec) {
			delete(s.bans, ip)
			gone = append(gone, ip)
		}
	}
	for ip, times := range s.counters {
		if times = prune(times, now-c.window); len(times) == 0 {
			delete(s.counters, ip)
		} else {
			s.counters[ip] = times
		}
	}
	if len(gone) > 0 {
		s.publishLocked(c)
	}
	s.mu.Unlock()
	for _, ip := range gone {
		if err := c.unpersist(ip); err != nil {
			gate.Log(msgctx.LErr, fmt.Sprintf("edgeban: deleting the expired ban of %s: %v", ip, err))
		}
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i].Less(gone[j]) })
	return gone
}

// list copies the bans in force, sorted by address.
func (s *state) list() []ban {
	now := clock() / int64(time.Second)
	s.mu.Lock()
	out := make([]ban, 0, len(s.bans))
	for _, b := range s.bans {
		if !b.expired(now) {
			out = append(out, *b)
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ip.Less(out[j].ip) })
	return out
}

// counts copies the event counters inside the window.
func (s *state) counts(c *config) map[netip.Addr]int {
	from := clock() - c.window
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[netip.Addr]int, len(s.counters))
	for ip, times := range s.counters {
		if n := len(prune(append([]int64(nil), times...), from)); n > 0 {
			out[ip] = n
		}
	}
	return out
}

// reset forgets everything (tests).
func (s *state) reset() {
	s.mu.Lock()
	s.counters = map[netip.Addr][]int64{}
	s.bans = map[netip.Addr]*ban{}
	s.loaded = map[string]bool{}
	s.mu.Unlock()
	gate.Publish(nil)
}

// ---- persistence ----

// tableDDL creates the ban table (sipedge's own; not an OpenSIPS table).
func tableDDL(table string) string {
	return `CREATE TABLE IF NOT EXISTS ` + table + ` (
    ip CHAR(50) PRIMARY KEY NOT NULL,
    banned_at INTEGER NOT NULL,
    expires INTEGER DEFAULT 0 NOT NULL,
    reason CHAR(255) DEFAULT '' NOT NULL,
    events INTEGER DEFAULT 0 NOT NULL
)`
}

func (c *config) createTable() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.db.Exec(ctx, tableDDL(c.table))
	return err
}

func (c *config) persist(b *ban) error {
	if c.db == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.db.Exec(ctx, `INSERT OR REPLACE INTO `+c.table+` (ip, banned_at, expires, reason, events) VALUES (?, ?, ?, ?, ?)`,
		b.ip.String(), b.since, b.until, b.reason, b.events)
	return err
}

func (c *config) unpersist(ip netip.Addr) error {
	if c.db == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.db.Exec(ctx, `DELETE FROM `+c.table+` WHERE ip = ?`, ip.String())
	return err
}

// deleteExpired deletes the rows of bans that have ended (those that
// ended while the process was down are never in memory to expire).
func (c *config) deleteExpired() error {
	if c.db == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.db.Exec(ctx, `DELETE FROM `+c.table+` WHERE expires != 0 AND expires <= ?`, clock()/int64(time.Second))
	return err
}

// readBans reads the bans still in force from the table.
func readBans(ctx context.Context, db *store.DB, table string, now int64) ([]*ban, error) {
	rows, err := db.Query(ctx, `SELECT ip, banned_at, expires, reason, events FROM `+table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*ban
	for rows.Next() {
		var (
			ipText string
			since  int64
			until  int64
			reason sql.NullString
			events int
		)
		if err := rows.Scan(&ipText, &since, &until, &reason, &events); err != nil {
			return nil, err
		}
		ip, err := netip.ParseAddr(ipText)
		if err != nil {
			continue
		}
		b := &ban{ip: ip.Unmap(), since: since, until: until, reason: reason.String, events: events}
		if b.expired(now) {
			continue
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// restore adds bans read from the database (once per database file).
func (s *state) restore(c *config, path string, bans []*ban) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loaded[path] {
		s.publishLocked(c)
		return
	}
	s.loaded[path] = true
	for _, b := range bans {
		if old := s.bans[b.ip]; old != nil {
			continue // the one in memory is newer
		}
		s.bans[b.ip] = b
	}
	s.publishLocked(c)
}
