package dialog

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/runtime/store"
)

// Persistence (db_mode 1, 2 and 3): confirmed dialogs are rows of
// OpenSIPS's "dialog" table (version 10 schema), with their values, profile
// memberships and flags, so a restart finds every call still up and every
// profile size where it was. Writes are made by one goroutine from a queue
// in the order the dialogs changed (batched in transactions), so the SIP
// path never waits for SQLite; Flush waits for the queue to drain. Modes 2
// and 3 write the same way (sipedge has no shutdown hook for a mode-3 dump,
// and a write-behind queue already keeps writes off the SIP path).

// TableVersion is the dialog table version (OpenSIPS 3.x).
const TableVersion = 10

const createTable = `CREATE TABLE IF NOT EXISTS %s (
    dlg_id BIGINT(10) PRIMARY KEY NOT NULL,
    callid CHAR(255) NOT NULL,
    from_uri CHAR(255) NOT NULL,
    from_tag CHAR(64) NOT NULL,
    to_uri CHAR(255) NOT NULL,
    to_tag CHAR(64) NOT NULL,
    mangled_from_uri CHAR(64) DEFAULT NULL,
    mangled_to_uri CHAR(64) DEFAULT NULL,
    caller_cseq CHAR(11) NOT NULL,
    callee_cseq CHAR(11) NOT NULL,
    caller_ping_cseq INTEGER NOT NULL,
    callee_ping_cseq INTEGER NOT NULL,
    caller_route_set TEXT(512),
    callee_route_set TEXT(512),
    caller_contact CHAR(255),
    callee_contact CHAR(255),
    caller_sock CHAR(64) NOT NULL,
    callee_sock CHAR(64) NOT NULL,
    state INTEGER NOT NULL,
    start_time INTEGER NOT NULL,
    timeout INTEGER NOT NULL,
    vars BLOB(4096) DEFAULT NULL,
    profiles TEXT(512) DEFAULT NULL,
    script_flags INTEGER DEFAULT 0 NOT NULL,
    module_flags INTEGER DEFAULT 0 NOT NULL,
    flags INTEGER DEFAULT 0 NOT NULL
)`

const createVersion = `CREATE TABLE IF NOT EXISTS version (
    table_name CHAR(32) NOT NULL,
    table_version INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT version_t_name_idx  UNIQUE (table_name)
)`

type dbHandle struct {
	db    *store.DB
	table string
}

// openDB opens db_url and makes sure the dialog table exists.
func openDB(cfg *config) (*dbHandle, error) {
	if cfg.dbURL == "" {
		return nil, fmt.Errorf("db_mode %d needs a db_url", cfg.dbMode)
	}
	if err := store.CheckIdent("table_name", cfg.table); err != nil {
		return nil, err
	}
	db, err := store.Open(cfg.dbURL)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := db.Exec(ctx, fmt.Sprintf(createTable, cfg.table)); err != nil {
		return nil, fmt.Errorf("dialog table %s: %w", cfg.table, err)
	}
	if _, err := db.Exec(ctx, createVersion); err == nil {
		db.Exec(ctx, `INSERT OR IGNORE INTO version (table_name, table_version) VALUES (?, ?)`, cfg.table, TableVersion)
	}
	return &dbHandle{db: db, table: cfg.table}, nil
}

// op is one queued write.
type op struct {
	del     bool
	id      uint64
	row     []any
	barrier chan struct{}
}

type writer struct {
	h    *dbHandle
	ch   chan op
	done chan struct{}
	errs atomic.Uint64
}

var (
	wMu    sync.Mutex
	cur    atomic.Pointer[writer]
	loaded = map[string]bool{} // database paths whose dialogs were loaded
)

func dbOn() bool { return cur.Load() != nil }

// startDB switches persistence to h (nil: off), loading the dialogs the
// database holds the first time the process sees it.
func startDB(h *dbHandle) {
	wMu.Lock()
	defer wMu.Unlock()
	old := cur.Load()
	if old != nil && h != nil && old.h.db == h.db && old.h.table == h.table {
		return
	}
	if old != nil {
		cur.Store(nil)
		old.stop()
	}
	if h == nil {
		return
	}
	key := h.db.Path + "#" + h.table
	if !loaded[key] {
		loaded[key] = true
		loadDialogs(h)
	}
	w := &writer{h: h, ch: make(chan op, 1<<16), done: make(chan struct{})}
	go w.run()
	cur.Store(w)
}

func (w *writer) stop() {
	close(w.ch)
	<-w.done
}

func (w *writer) run() {
	defer close(w.done)
	ctx := context.Background()
	batch := make([]op, 0, 256)
	for first := range w.ch {
		batch = append(batch[:0], first)
	more:
		for len(batch) < cap(batch) {
			select {
			case o, ok := <-w.ch:
				if !ok {
					break more
				}
				batch = append(batch, o)
			default:
				break more
			}
		}
		w.write(ctx, batch)
	}
}

func (w *writer) write(ctx context.Context, batch []op) {
	ins := fmt.Sprintf(`INSERT OR REPLACE INTO %s (dlg_id, callid, from_uri, from_tag, to_uri, to_tag,
		caller_cseq, callee_cseq, caller_ping_cseq, callee_ping_cseq, caller_route_set, callee_route_set,
		caller_contact, callee_contact, caller_sock, callee_sock, state, start_time, timeout, vars, profiles,
		script_flags, module_flags, flags) VALUES (?,?,?,?,?,?,?,?,0,0,?,?,?,?,?,?,?,?,?,?,?,?,?,0)`, w.h.table)
	del := fmt.Sprintf(`DELETE FROM %s WHERE dlg_id = ?`, w.h.table)
	err := w.h.db.Tx(ctx, func(tx *sql.Tx) error {
		for _, o := range batch {
			var err error
			switch {
			case o.barrier != nil:
				continue
			case o.del:
				_, err = tx.ExecContext(ctx, del, int64(o.id))
			default:
				_, err = tx.ExecContext(ctx, ins, o.row...)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		w.errs.Add(1)
	}
	for _, o := range batch {
		if o.barrier != nil {
			close(o.barrier)
		}
	}
}

func enqueue(o op) {
	w := cur.Load()
	if w == nil {
		return
	}
	defer func() { recover() }() // the writer was stopped meanwhile
	w.ch <- o
}

// persistUpdate writes a confirmed dialog's row.
func persistUpdate(d *Dialog) {
	if !dbOn() {
		return
	}
	d.mu.Lock()
	if !d.persisted || d.state < StateConfirmedNA || d.state == StateDeleted {
		d.mu.Unlock()
		return
	}
	row := []any{int64(d.ID()), d.callID, d.fromURI, d.fromTag, d.toURI, d.toTag,
		strconv.FormatUint(uint64(d.callerCSeq), 10), strconv.FormatUint(uint64(d.calleeCSeq), 10),
		d.callerRoute, d.calleeRoute, d.callerContact, d.calleeContact, d.callerSock, d.calleeSock,
		int(d.state), d.start, d.expires, encodeVals(d.vals), encodeProfiles(d.profiles),
		int64(d.flags), int64(d.cflags)}
	d.mu.Unlock()
	enqueue(op{id: d.ID(), row: row})
}

func persistDelete(d *Dialog) { enqueue(op{del: true, id: d.ID()}) }

// Flush waits until every queued dialog write is in the database.
func Flush() {
	w := cur.Load()
	if w == nil {
		return
	}
	b := make(chan struct{})
	func() {
		defer func() { recover() }()
		w.ch <- op{barrier: b}
	}()
	select {
	case <-b:
	case <-w.done:
	}
}

// ---- encoding of vars and profiles: "name#value\n" lines ----

var escaper = strings.NewReplacer(`\`, `\\`, "#", `\#`, "\n", `\n`)

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			if s[i] == 'n' {
				b.WriteByte('\n')
			} else {
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func encodeVals(vals []kv) string {
	var b strings.Builder
	for _, e := range vals {
		b.WriteString(escaper.Replace(e.name))
		b.WriteByte('#')
		b.WriteString(escaper.Replace(e.val))
		b.WriteByte('\n')
	}
	return b.String()
}

func encodeProfiles(ls []link) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(escaper.Replace(l.p.Name))
		b.WriteByte('#')
		b.WriteString(escaper.Replace(l.val))
		b.WriteByte('\n')
	}
	return b.String()
}

// decodePairs reads "name#value\n" lines (escapes as encodeVals writes).
func decodePairs(s string) [][2]string {
	var out [][2]string
	for _, line := range strings.Split(s, "\n") {
		if line == "" {
			continue
		}
		// split at the first unescaped '#'
		sep := -1
		for i := 0; i < len(line); i++ {
			if line[i] == '\\' {
				i++
				continue
			}
			if line[i] == '#' {
				sep = i
				break
			}
		}
		if sep < 0 {
			out = append(out, [2]string{unescape(line), ""})
			continue
		}
		out = append(out, [2]string{unescape(line[:sep]), unescape(line[sep+1:])})
	}
	return out
}

// loadDialogs restores the dialogs of the table (at start).
func loadDialogs(h *dbHandle) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rows, err := h.db.QueryWriter(ctx, fmt.Sprintf(`SELECT dlg_id, callid, from_uri, from_tag, to_uri, to_tag,
		caller_cseq, callee_cseq, caller_route_set, callee_route_set, caller_contact, callee_contact,
		caller_sock, callee_sock, state, start_time, timeout, vars, profiles, script_flags, module_flags
		FROM %s`, h.table))
	if err != nil {
		return
	}
	var list []*Dialog
	var maxHID uint32
	for rows.Next() {
		var (
			id                                         int64
			callerCSeq, calleeCSeq                     string
			callerRoute, calleeRoute, callerC, calleeC sql.NullString
			vars, profs                                sql.NullString
			state                                      int
			start, expires, sflags, mflags             int64
		)
		d := &Dialog{}
		if err := rows.Scan(&id, &d.callID, &d.fromURI, &d.fromTag, &d.toURI, &d.toTag,
			&callerCSeq, &calleeCSeq, &callerRoute, &calleeRoute, &callerC, &calleeC,
			&d.callerSock, &d.calleeSock, &state, &start, &expires, &vars, &profs, &sflags, &mflags); err != nil {
			continue
		}
		d.entry, d.hid = uint32(uint64(id)>>32), uint32(id)
		if d.hid > maxHID {
			maxHID = d.hid
		}
		cs, _ := strconv.ParseUint(callerCSeq, 10, 32)
		ce, _ := strconv.ParseUint(calleeCSeq, 10, 32)
		d.callerCSeq, d.calleeCSeq = uint32(cs), uint32(ce)
		d.callerRoute, d.calleeRoute = callerRoute.String, calleeRoute.String
		d.callerContact, d.calleeContact = callerC.String, calleeC.String
		d.state = State(state)
		if d.state < StateConfirmedNA || d.state > StateConfirmed {
			d.state = StateConfirmed
		}
		d.start, d.expires, d.created = start, expires, start
		d.timeout = int32(expires - start)
		d.flags, d.cflags = uint32(sflags), uint8(mflags)
		for _, p := range decodePairs(vars.String) {
			d.vals = append(d.vals, kv{p[0], p[1]})
		}
		for _, p := range decodePairs(profs.String) {
			if pr := LookupProfile(p[0]); pr != nil {
				d.profiles = append(d.profiles, link{p: pr, val: p[1]})
			}
		}
		d.persisted = true
		list = append(list, d)
	}
	rows.Close()
	for tbl.hid.Load() < maxHID {
		tbl.hid.CompareAndSwap(tbl.hid.Load(), maxHID)
	}
	for _, d := range list {
		insertLoaded(d)
	}
}

// insertLoaded puts a restored dialog in the table, its profiles and the
// timer heap, and tells the LoadHooks.
func insertLoaded(d *Dialog) {
	h := hashCallID(d.callID)
	s := &tbl.shards[h%nShards]
	s.mu.Lock()
	d.next = s.byCall[d.callID]
	s.byCall[d.callID] = d
	s.n++
	s.mu.Unlock()
	tbl.count.Add(1)
	for _, l := range d.profiles {
		l.p.add(l.val, 1)
	}
	tmr.schedule(d, d.expires)
	if p := loadHooks.Load(); p != nil {
		for _, fn := range *p {
			fn(d)
		}
	}
}

// ForgetAll drops every dialog from memory (profile counters included),
// stops persistence and closes the database handle, as a process exit
// would. Tests use it to simulate a restart; the next script activation
// loads the dialogs back from the database.
func ForgetAll() {
	wMu.Lock()
	if w := cur.Load(); w != nil {
		cur.Store(nil)
		w.stop()
		w.h.db.Close()
	}
	loaded = map[string]bool{}
	wMu.Unlock()
	tbl.each(func(d *Dialog) bool {
		d.mu.Lock()
		d.state = StateDeleted
		d.mu.Unlock()
		tbl.remove(d)
		return true
	})
	tbl.early.Store(0)
	profMu.RLock()
	for _, p := range profiles {
		p.reset()
	}
	profMu.RUnlock()
	tmr.reset()
}
