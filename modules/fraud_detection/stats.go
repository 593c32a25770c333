package frauddetection

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sipedge/sipedge/runtime/store"
)

// window is the calls-per-minute window, one bucket per second.
const window = 60

// stats are one (user, rule key) pair's counters, as OpenSIPS keeps them
// per user and matched prefix.
type stats struct {
	mu          sync.Mutex
	user, key   string
	day         int    // yyyymmdd of the last match; a new day resets
	ruleID      int    // the rule that matched last; another rule resets
	interval    uint32 // bumped on every reset
	total, conc int
	seq         int
	lastDial    string
	lastTime    int64
	buckets     [window]uint16
	stamps      [window]int64
	dirty       bool
}

// cpm counts the calls of the last 60 seconds.
func (s *stats) cpm(now int64) int {
	n := 0
	for i := range s.buckets {
		if s.stamps[i] > now-window && s.stamps[i] <= now {
			n += int(s.buckets[i])
		}
	}
	return n
}

func (s *stats) addCall(now int64) {
	i := now % window
	if s.stamps[i] != now {
		s.stamps[i], s.buckets[i] = now, 0
	}
	if s.buckets[i] < 65535 {
		s.buckets[i]++
	}
}

func (s *stats) resetWindow() {
	s.buckets = [window]uint16{}
	s.stamps = [window]int64{}
}

const nShards = 64

type statsShard struct {
	mu sync.Mutex
	m  map[string]*stats
}

type statsTable struct {
	shards [nShards]statsShard
}

var table = newStatsTable()

func newStatsTable() *statsTable {
	t := &statsTable{}
	for i := range t.shards {
		t.shards[i].m = map[string]*stats{}
	}
	return t
}

func statsKey(user, key string) string { return user + "\x00" + key }

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

func (t *statsTable) get(user, key string, create bool) *stats {
	k := statsKey(user, key)
	sh := &t.shards[fnv32(k)%nShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.m[k]
	if s == nil && create {
		s = &stats{user: strings.Clone(user), key: strings.Clone(key)}
		sh.m[k] = s
	}
	return s
}

func (t *statsTable) reset() {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		sh.m = map[string]*stats{}
		sh.mu.Unlock()
	}
}

func (t *statsTable) each(fn func(s *stats)) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		list := make([]*stats, 0, len(sh.m))
		for _, s := range sh.m {
			list = append(list, s)
		}
		sh.mu.Unlock()
		for _, s := range list {
			fn(s)
		}
	}
}

// ---- persistence: the fraud_stats table (sipedge) ----

const createStats = `CREATE TABLE IF NOT EXISTS %s (
    username CHAR(64) NOT NULL,
    prefix CHAR(64) NOT NULL,
    day INTEGER NOT NULL,
    interval_id INTEGER NOT NULL,
    rule_id INTEGER NOT NULL,
    total_calls INTEGER NOT NULL,
    concurrent_calls INTEGER NOT NULL,
    sequential_calls INTEGER NOT NULL,
    last_dial CHAR(64) NOT NULL,
    last_time INTEGER NOT NULL,
    cpm_window TEXT NOT NULL,
    PRIMARY KEY (username, prefix)
)`

// Group tables sipedge adds (see README): created empty when missing.
const createDestGroups = `CREATE TABLE IF NOT EXISTS %s (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    groupname CHAR(64) NOT NULL,
    prefix CHAR(64) NOT NULL
)`

const createUserGroups = `CREATE TABLE IF NOT EXISTS %s (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    groupname CHAR(64) NOT NULL,
    username CHAR(64) NOT NULL
)`

func encodeWindow(s *stats) string {
	var b strings.Builder
	for i := range s.buckets {
		if s.buckets[i] == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(s.stamps[i], 10))
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(int(s.buckets[i])))
	}
	return b.String()
}

func decodeWindow(s *stats, text string) {
	for _, part := range strings.Split(text, ",") {
		a, b, ok := strings.Cut(part, ":")
		if !ok {
			continue
		}
		ts, err1 := strconv.ParseInt(a, 10, 64)
		n, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || ts < 0 {
			continue
		}
		i := ts % window
		s.stamps[i], s.buckets[i] = ts, uint16(n)
	}
}

type persister struct {
	db    *store.DB
	table string
	stop  chan struct{}
	done  chan struct{}
	kick  chan chan struct{}
}

var (
	pMu  sync.Mutex
	pers *persister
	// statsLoaded tells the dialog LoadHook whether persisted stats are in
	// memory already (see module.go onDialogLoad).
	statsLoaded bool
)

func loadStats(ctx context.Context, db *store.DB, tableName string) error {
	rows, err := db.QueryWriter(ctx, fmt.Sprintf(`SELECT username, prefix, day, interval_id, rule_id,
		total_calls, sequential_calls, last_dial, last_time, cpm_window FROM %s`, tableName))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			user, key, last, win    string
			day, itv, rid, tot, seq int
			lt                      int64
		)
		if err := rows.Scan(&user, &key, &day, &itv, &rid, &tot, &seq, &last, &lt, &win); err != nil {
			return err
		}
		s := table.get(user, key, true)
		s.mu.Lock()
		s.day, s.interval, s.ruleID, s.total, s.seq, s.lastDial, s.lastTime = day, uint32(itv), rid, tot, seq, last, lt
		s.conc = 0 // recounted from the live dialogs
		decodeWindow(s, win)
		s.mu.Unlock()
	}
	return rows.Err()
}

// flush writes the changed stats.
func (p *persister) flush() {
	var rows [][]any
	table.each(func(s *stats) {
		s.mu.Lock()
		if s.dirty {
			s.dirty = false
			rows = append(rows, []any{s.user, s.key, s.day, int64(s.interval), s.ruleID, s.total, s.conc, s.seq,
				s.lastDial, s.lastTime, encodeWindow(s)})
		}
		s.mu.Unlock()
	})
	if len(rows) == 0 {
		return
	}
	q := fmt.Sprintf(`INSERT OR REPLACE INTO %s (username, prefix, day, interval_id, rule_id, total_calls,
		concurrent_calls, sequential_calls, last_dial, last_time, cpm_window) VALUES (?,?,?,?,?,?,?,?,?,?,?)`, p.table)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p.db.Tx(ctx, func(tx *sql.Tx) error {
		for _, r := range rows {
			if _, err := tx.ExecContext(ctx, q, r...); err != nil {
				return err
			}
		}
		return nil
	})
}

func (p *persister) run(every time.Duration) {
	defer close(p.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			p.flush()
			return
		case <-t.C:
			p.flush()
		case ack := <-p.kick:
			p.flush()
			close(ack)
		}
	}
}

// Flush writes every changed counter to the database now.
func Flush() {
	pMu.Lock()
	p := pers
	pMu.Unlock()
	if p == nil {
		return
	}
	ack := make(chan struct{})
	select {
	case p.kick <- ack:
		<-ack
	case <-p.done:
	}
}

func stopPersister() {
	if pers != nil {
		close(pers.stop)
		<-pers.done
		pers = nil
	}
}
