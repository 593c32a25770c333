package usrloc

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/sipedge/sipedge/runtime/store"
)

// The location table as OpenSIPS 3.x defines it (version 1013); expires is
// a unix time (0: permanent), last_modified is written in UTC, q is the q
// value as a float (-0.001 when unspecified, as OpenSIPS stores it).

// LocationVersion is the location table version usrloc works with.
const LocationVersion = 1013

const selectCols = "contact_id, username, domain, contact, received, path, expires, q, callid, cseq, last_modified, flags, cflags, user_agent, socket, methods, sip_instance, attr"

const dbTimeout = 5 * time.Second

func (c *config) checkTable(table string) error {
	if v, ok := c.checked.Load(table); ok {
		err, _ := v.(error)
		return err
	}
	err := store.CheckIdent("table", table)
	if err == nil {
		err = c.db.CheckVersion(context.Background(), table, LocationVersion)
	}
	c.checked.Store(table, err)
	return err
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (c *config) aorWhere(aor string) (string, []any) {
	user, domain := SplitAOR(aor)
	if c.useDomain {
		if domain == "" {
			return "username = ? AND (domain IS NULL OR domain = '')", []any{user}
		}
		return "username = ? AND domain = ?", []any{user, domain}
	}
	return "username = ?", []any{user}
}

func (c *config) scanContacts(ctx context.Context, q querier, query string, args ...any) ([]Contact, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Contact
	for rows.Next() {
		var (
			ct                                                 Contact
			domain, received, path, cflags, socket, inst, attr sql.NullString
			ua, callid                                         sql.NullString
			q                                                  sql.NullFloat64
			methods, cseq, flags                               sql.NullInt64
			lastMod                                            any
			user, contact                                      string
		)
		if err := rows.Scan(&ct.ID, &user, &domain, &contact, &received, &path, &ct.Expires, &q, &callid, &cseq,
			&lastMod, &flags, &cflags, &ua, &socket, &methods, &inst, &attr); err != nil {
			return nil, err
		}
		ct.AOR = user
		if c.useDomain && domain.String != "" {
			ct.AOR = user + "@" + domain.String
		}
		ct.URI, ct.Received, ct.Path, ct.CFlags, ct.Socket = contact, received.String, path.String, cflags.String, socket.String
		ct.Instance, ct.Attr, ct.UserAgent, ct.CallID = inst.String, attr.String, ua.String, callid.String
		ct.CSeq, ct.Flags = int(cseq.Int64), int(flags.Int64)
		ct.Q = -1
		if q.Valid && q.Float64 >= 0 {
			ct.Q = int(math.Round(q.Float64 * 1000))
		}
		ct.Methods = -1
		if methods.Valid {
			ct.Methods = int(methods.Int64)
		}
		ct.LastModified = parseTime(lastMod)
		ct.key = ct.ID
		out = append(out, ct)
	}
	return out, rows.Err()
}

func parseTime(v any) int64 {
	switch t := v.(type) {
	case time.Time:
		return t.Unix()
	case string:
		if tt, err := time.ParseInLocation(time.DateTime, t, time.UTC); err == nil {
			return tt.Unix()
		}
	case []byte:
		return parseTime(string(t))
	case int64:
		return t
	}
	return 0
}

func (c *config) dbLoadAll(table string, now int64) ([]Contact, error) {
	if c.db == nil {
		return nil, ErrNoDB
	}
	if err := c.checkTable(table); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*dbTimeout)
	defer cancel()
	return c.scanContacts(ctx, readerQuerier{c.db}, "SELECT "+selectCols+" FROM "+table+" WHERE expires = 0 OR expires > ? ORDER BY contact_id", now)
}

// readerQuerier runs queries on the reader pool (with the statement cache).
type readerQuerier struct{ db *store.DB }

func (r readerQuerier) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return r.db.Query(ctx, q, args...)
}

func (c *config) dbLoadAOR(table, aor string, now int64) ([]Contact, error) {
	if c.db == nil {
		return nil, ErrNoDB
	}
	if err := c.checkTable(table); err != nil {
		return nil, err
	}
	where, args := c.aorWhere(aor)
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	return c.scanContacts(ctx, readerQuerier{c.db}, "SELECT "+selectCols+" FROM "+table+" WHERE "+where+" AND (expires = 0 OR expires > ?)", append(args, now)...)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (c *config) rowValues(ct *Contact) []any {
	user, domain := SplitAOR(ct.AOR)
	var dom any
	if c.useDomain {
		dom = domain
	}
	var methods any
	if ct.Methods >= 0 {
		methods = ct.Methods
	}
	return []any{user, dom, ct.URI, nullStr(ct.Received), nullStr(ct.Path), ct.Expires, float64(ct.Q) / 1000,
		ct.CallID, ct.CSeq, time.Unix(ct.LastModified, 0).UTC().Format(time.DateTime), ct.Flags, nullStr(ct.CFlags),
		ct.UserAgent, nullStr(ct.Socket), methods, nullStr(ct.Instance), nullStr(ct.Attr)}
}

const writeCols = "username, domain, contact, received, path, expires, q, callid, cseq, last_modified, flags, cflags, user_agent, socket, methods, sip_instance, attr"

func insertSQL(table string) string {
	return "INSERT INTO " + table + " (" + writeCols + ") VALUES (" + strings.Repeat("?, ", 16) + "?) RETURNING contact_id"
}

func updateSQL(table string) string {
	set := strings.ReplaceAll(writeCols, ",", " = ?,") + " = ?"
	return "UPDATE " + table + " SET " + set + " WHERE contact_id = ?"
}

func (c *config) insert(ctx context.Context, tx execer, table string, ct *Contact) error {
	return tx.QueryRowContext(ctx, insertSQL(table), c.rowValues(ct)...).Scan(&ct.ID)
}

// update writes a row; when it is gone (deleted as expired meanwhile) it is
// inserted again.
func (c *config) update(ctx context.Context, tx execer, table string, ct *Contact) error {
	res, err := tx.ExecContext(ctx, updateSQL(table), append(c.rowValues(ct), ct.ID)...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return c.insert(ctx, tx, table, ct)
	}
	return nil
}

// dbWrite applies one AOR's changes in a transaction (db_mode 1).
func (c *config) dbWrite(table string, ins, upd, del []*Contact) error {
	if len(ins)+len(upd)+len(del) == 0 {
		return nil
	}
	if c.db == nil {
		return ErrNoDB
	}
	if err := c.checkTable(table); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	return c.db.Tx(ctx, func(tx *sql.Tx) error {
		for _, ct := range del {
			if ct.ID > 0 {
				if _, err := tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE contact_id = ?", ct.ID); err != nil {
					return err
				}
			}
		}
		for _, ct := range upd {
			if ct.ID <= 0 {
				if err := c.insert(ctx, tx, table, ct); err != nil {
					return err
				}
				continue
			}
			if err := c.update(ctx, tx, table, ct); err != nil {
				return err
			}
		}
		for _, ct := range ins {
			if err := c.insert(ctx, tx, table, ct); err != nil {
				return err
			}
		}
		return nil
	})
}

// dbUpdateAOR is Domain.Update for db_mode 3: read, change and write the
// AOR's rows in one transaction.
func (c *config) dbUpdateAOR(table, aor string, now int64, fn func([]Contact) ([]Contact, error)) ([]Contact, error) {
	if c.db == nil {
		return nil, ErrNoDB
	}
	if err := c.checkTable(table); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	var out []Contact
	err := c.db.Tx(ctx, func(tx *sql.Tx) error {
		where, args := c.aorWhere(aor)
		live, err := c.scanContacts(ctx, tx, "SELECT "+selectCols+" FROM "+table+" WHERE "+where+" AND (expires = 0 OR expires > ?)", append(args, now)...)
		if err != nil {
			return err
		}
		in := make([]Contact, len(live))
		copy(in, live)
		next, err := fn(in)
		if err != nil {
			return err
		}
		old := map[int64]*Contact{}
		for i := range live {
			old[live[i].ID] = &live[i]
		}
		kept := map[int64]bool{}
		out = make([]Contact, 0, len(next))
		for i := range next {
			n := next[i]
			n.AOR = aor
			if o := old[n.key]; n.key != 0 && o != nil && !kept[n.key] {
				kept[n.key] = true
				n.ID = o.ID
				if !n.Same(o) {
					if err := c.update(ctx, tx, table, &n); err != nil {
						return err
					}
				}
			} else {
				if err := c.insert(ctx, tx, table, &n); err != nil {
					return err
				}
			}
			n.key = n.ID
			out = append(out, n)
		}
		for id := range old {
			if !kept[id] {
				if _, err := tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE contact_id = ?", id); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// dbDeleteExpired removes the rows that expired by now.
func (c *config) dbDeleteExpired(table string, now int64) (int64, error) {
	if err := c.checkTable(table); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*dbTimeout)
	defer cancel()
	res, err := c.db.Exec(ctx, "DELETE FROM "+table+" WHERE expires != 0 AND expires <= ?", now)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// flush writes db_mode 2's pending changes: deletions, then new and changed
// bindings, one shard at a time.
func (d *Domain) flush(c *config) error {
	if c.mode != WriteBack || c.db == nil {
		return nil
	}
	if err := c.checkTable(d.Name); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*dbTimeout)
	defer cancel()
	d.delMu.Lock()
	dels := d.pendingDel
	d.pendingDel = nil
	d.delMu.Unlock()
	if len(dels) > 0 {
		err := c.db.Tx(ctx, func(tx *sql.Tx) error {
			for _, id := range dels {
				if _, err := tx.ExecContext(ctx, "DELETE FROM "+d.Name+" WHERE contact_id = ?", id); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			d.delMu.Lock()
			d.pendingDel = append(dels, d.pendingDel...)
			d.delMu.Unlock()
			return fmt.Errorf("flushing deletions of %s: %w", d.Name, err)
		}
	}
	for i := range d.shards {
		sh := &d.shards[i]
		sh.mu.Lock()
		if !sh.pending() {
			sh.mu.Unlock()
			continue
		}
		err := c.db.Tx(ctx, func(tx *sql.Tx) error {
			for _, cs := range sh.recs {
				for _, ct := range cs {
					if ct.memOnly {
						continue
					}
					switch ct.state {
					case stateNew:
						if err := c.insert(ctx, tx, d.Name, ct); err != nil {
							return err
						}
					case stateDirty:
						if err := c.update(ctx, tx, d.Name, ct); err != nil {
							return err
						}
					}
				}
			}
			return nil
		})
		if err == nil {
			for _, cs := range sh.recs {
				for _, ct := range cs {
					ct.state = synced
				}
			}
		}
		sh.mu.Unlock()
		if err != nil {
			return fmt.Errorf("flushing %s: %w", d.Name, err)
		}
	}
	return nil
}

// pending tells whether a shard has bindings to write (call with mu held).
func (sh *shard) pending() bool {
	for _, cs := range sh.recs {
		for _, ct := range cs {
			if ct.state != synced && !ct.memOnly {
				return true
			}
		}
	}
	return false
}
