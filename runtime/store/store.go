// Package store is sipedge's SQL storage: SQLite databases named by OpenSIPS
// db_url strings ("sqlite:///var/lib/sipedge/sipedge.db"), opened once per
// process and shared by every module and every script generation that names
// the same file, so a script reload never reopens or loses a connection.
//
// Each database has two pools over the same file: a pool of read-only
// connections (WAL lets readers run while a write is in progress) and a
// single writer connection, so writes are serialised in the process and
// SQLite's own locking only arbitrates with other processes (busy_timeout).
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"

	_ "github.com/mattn/go-sqlite3" // the "sqlite3" database/sql driver (cgo)
)

// Scheme is the db_url scheme sipedge implements.
const Scheme = "sqlite"

// BusyTimeoutMS is how long a connection waits for another process's lock.
const BusyTimeoutMS = 5000

// ParseURL returns the database file an OpenSIPS db_url names. OpenSIPS's
// db_sqlite opens what follows "sqlite:/", so "sqlite:///var/db/x.db" (and
// "sqlite:////var/db/x.db") is the absolute path /var/db/x.db and
// "sqlite://x.db" is /x.db; the path is cleaned.
func ParseURL(u string) (string, error) {
	u = strings.TrimSpace(u)
	scheme, rest, ok := strings.Cut(u, ":")
	if !ok || !strings.EqualFold(scheme, Scheme) {
		if ok && strings.Contains(rest, "//") {
			return "", fmt.Errorf("db_url %q: sipedge only has the sqlite driver (want sqlite:///path/to/file.db)", redact(u))
		}
		return "", fmt.Errorf("db_url %q: want sqlite:///path/to/file.db", redact(u))
	}
	if !strings.HasPrefix(rest, "/") {
		return "", fmt.Errorf("db_url %q: want sqlite:///path/to/file.db", u)
	}
	p := filepath.Clean(rest)
	if p == "/" || strings.ContainsAny(p, "?#") {
		return "", fmt.Errorf("db_url %q: want sqlite:///path/to/file.db", u)
	}
	return p, nil
}

// redact hides a password in someone else's URL (mysql://user:pw@host/db).
func redact(u string) string {
	pu, err := url.Parse(u)
	if err != nil || pu.User == nil {
		return u
	}
	if _, has := pu.User.Password(); has {
		pu.User = url.UserPassword(pu.User.Username(), "xxx")
	}
	return pu.String()
}

// DB is one open database file.
type DB struct {
	URL  string // the db_url it was first opened with
	Path string

	r *sql.DB // read-only connections
	w *sql.DB // the single writer

	mu    sync.Mutex
	stmts map[stmtKey]*sql.Stmt
}

type stmtKey struct {
	write bool
	query string
}

var (
	openMu sync.Mutex
	open   = map[string]*DB{} // by path
)

// Open returns the process-wide handle for url's file, opening it on first
// use. The file must exist (`sipedge db init` creates it), so a typo in a
// db_url is an error rather than a new empty database.
func Open(u string) (*DB, error) { return get(u, false) }

// Create is Open, creating an empty file when there is none.
func Create(u string) (*DB, error) { return get(u, true) }

func get(u string, create bool) (*DB, error) {
	path, err := ParseURL(u)
	if err != nil {
		return nil, err
	}
	openMu.Lock()
	defer openMu.Unlock()
	if db := open[path]; db != nil {
		return db, nil
	}
	db, err := openFile(u, path, create)
	if err != nil {
		return nil, err
	}
	open[path] = db
	return db, nil
}

func dsn(path string, mode string, readOnly bool) string {
	q := fmt.Sprintf("_busy_timeout=%d&_journal_mode=WAL&_synchronous=NORMAL&mode=%s", BusyTimeoutMS, mode)
	if readOnly {
		q += "&_query_only=1"
	} else {
		q += "&_txlock=immediate"
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q
}

func openFile(u, path string, create bool) (*DB, error) {
	mode := "rw"
	if create {
		mode = "rwc"
	}
	w, err := sql.Open("sqlite3", dsn(path, mode, false))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	// Connect now so a missing or unreadable file fails the load, and WAL
	// is switched on before the first reader opens.
	if err := w.Ping(); err != nil {
		w.Close()
		return nil, fmt.Errorf("db_url %s: cannot open %s: %w", u, path, friendly(err))
	}
	r, err := sql.Open("sqlite3", dsn(path, "ro", true))
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	r.SetConnMaxLifetime(0)
	return &DB{URL: u, Path: path, r: r, w: w, stmts: map[stmtKey]*sql.Stmt{}}, nil
}

func friendly(err error) error {
	if strings.Contains(err.Error(), "unable to open database file") {
		return errors.New("no such database file (create it with `sipedge db init`)")
	}
	return err
}

// Close closes the database and forgets it, so the next Open reopens the
// file. Modules never call it (handles live as long as the process); tests
// and `sipedge db` do, and a test simulating a restart does.
func (d *DB) Close() error {
	openMu.Lock()
	if open[d.Path] == d {
		delete(open, d.Path)
	}
	openMu.Unlock()
	d.mu.Lock()
	for k, s := range d.stmts {
		s.Close()
		delete(d.stmts, k)
	}
	d.mu.Unlock()
	return errors.Join(d.r.Close(), d.w.Close())
}

// stmt returns a prepared statement from the per-database cache.
func (d *DB) stmt(ctx context.Context, write bool, query string) (*sql.Stmt, error) {
	k := stmtKey{write, query}
	d.mu.Lock()
	s := d.stmts[k]
	d.mu.Unlock()
	if s != nil {
		return s, nil
	}
	pool := d.r
	if write {
		pool = d.w
	}
	s, err := pool.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if old := d.stmts[k]; old != nil {
		d.mu.Unlock()
		s.Close()
		return old, nil
	}
	if len(d.stmts) > 1024 { // scripts building queries dynamically: don't grow forever
		for k2, s2 := range d.stmts {
			s2.Close()
			delete(d.stmts, k2)
		}
	}
	d.stmts[k] = s
	d.mu.Unlock()
	return s, nil
}

// Query runs a read-only statement on a reader connection.
func (d *DB) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s, err := d.stmt(ctx, false, query)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// QueryWriter runs a statement that returns rows on the writer connection
// (INSERT … RETURNING, or a query that must see the writer's own state).
func (d *DB) QueryWriter(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s, err := d.stmt(ctx, true, query)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// Exec runs a statement on the writer connection.
func (d *DB) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	s, err := d.stmt(ctx, true, query)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(ctx, args...)
}

// Tx runs fn in a write transaction (BEGIN IMMEDIATE) and commits it when
// fn returns nil.
func (d *DB) Tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// IsIdent reports whether s is a plain SQL identifier, for table and column
// names that come from a script (modparams, function arguments) and have to
// be written into SQL text.
func IsIdent(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// CheckIdent is IsIdent as an error naming what the identifier is for.
func CheckIdent(what, s string) error {
	if !IsIdent(s) {
		return fmt.Errorf("%s %q is not a valid SQL identifier (letters, digits and _)", what, s)
	}
	return nil
}
