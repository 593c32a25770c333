// Package domain is OpenSIPS's domain module: is_domain_local(),
// is_from_local() and is_uri_host_local() tell whether a host is one of
// the domains this proxy is responsible for, by the `domain` table
// (domain, attrs, accept_subdomain).
//
// db_mode 1 caches the table in memory: it is read when a script
// generation goes live and again on the MI command domain_reload. db_mode
// 0 (OpenSIPS's default) queries the database on every call. A sipedge
// extension, modparam("domain", "local_domain", "example.com"), declares
// domains in the script itself, with or without a database.
package domain

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/mi"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "domain"

// TableVersion is the version OpenSIPS 3.x gives the domain table.
const TableVersion = 4

// Schema creates the domain table as OpenSIPS 3.x's SQLite script does
// (`sipedge db init` does not create it yet).
var Schema = []string{
	`CREATE TABLE IF NOT EXISTS domain (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    domain CHAR(64) DEFAULT '' NOT NULL,
    attrs CHAR(255) DEFAULT NULL,
    accept_subdomain INTEGER DEFAULT 0 NOT NULL,
    last_modified DATETIME DEFAULT '1900-01-01 00:00:01' NOT NULL,
    CONSTRAINT domain_domain_idx UNIQUE (domain)
)`,
	`INSERT OR IGNORE INTO version (table_name, table_version) VALUES ('domain', 4)`,
}

// Entry is one local domain.
type Entry struct {
	Name      string // lower case
	Attrs     string
	HasAttrs  bool // attrs is not NULL
	Subdomain bool // accept_subdomain: any host below Name is local too
	Static    bool // from a local_domain modparam, not the table
}

// table is the set of local domains a lookup sees.
type table struct {
	byName map[string]*Entry
}

func newTable() *table { return &table{byName: map[string]*Entry{}} }

// lookup finds host, or the nearest parent that accepts subdomains.
func (t *table) lookup(host string) *Entry {
	if e := t.byName[host]; e != nil {
		return e
	}
	for h := host; ; {
		i := strings.IndexByte(h, '.')
		if i < 0 {
			return nil
		}
		h = h[i+1:]
		if e := t.byName[h]; e != nil && e.Subdomain {
			return e
		}
	}
}

func (t *table) sorted() []*Entry {
	out := make([]*Entry, 0, len(t.byName))
	for _, e := range t.byName {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

type columns struct {
	table, domain, attrs, subdomain string
}

func (c columns) check() error {
	for what, v := range map[string]string{"domain_table": c.table, "domain_col": c.domain, "attrs_col": c.attrs, "subdomain_col": c.subdomain} {
		if err := store.CheckIdent(what, v); err != nil {
			return err
		}
	}
	return nil
}

// config is one script generation's view of the module.
type config struct {
	db     *store.DB // nil without db_url
	cols   columns
	cache  bool // db_mode 1
	static *table
	tbl    atomic.Pointer[table] // static + the cached table (db_mode 1)
	mu     sync.Mutex            // serialises reloads
}

var cur atomic.Pointer[config]

func init() {
	empty := &config{static: newTable()}
	empty.tbl.Store(newTable())
	cur.Store(empty)
	attrsVar := check.ArgSpec{Kind: check.ArgVar, Writable: true, Optional: true}
	routes := check.Routes(ast.RequestRoute, ast.FailureRoute, ast.BranchRoute, ast.LocalRoute)
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "db_url", Kind: modules.ParamStr},
			{Name: "db_mode", Kind: modules.ParamInt, Default: value.I(0)},
			{Name: "domain_table", Kind: modules.ParamStr, Default: value.S("domain")},
			{Name: "domain_col", Kind: modules.ParamStr, Default: value.S("domain")},
			{Name: "attrs_col", Kind: modules.ParamStr, Default: value.S("attrs")},
			{Name: "subdomain_col", Kind: modules.ParamStr, Default: value.S("accept_subdomain")},
			// sipedge: domains declared in the script ("example.com",
			// "*.example.com" for subdomains too, ";attrs" after the name).
			{Name: "local_domain", Kind: modules.ParamStr, Multi: true},
		},
		Funcs: []*modules.Func{
			{Name: "is_domain_local", Args: []check.ArgSpec{{Kind: check.ArgStr}, attrsVar}, Routes: routes, Call: callIsDomainLocal},
			{Name: "is_from_local", Args: []check.ArgSpec{attrsVar}, Routes: routes, Call: callIsFromLocal},
			{Name: "is_uri_host_local", Args: []check.ArgSpec{attrsVar}, Routes: routes, Call: callIsURIHostLocal},
		},
		MI: []modules.MICommand{
			{Name: "domain_reload", Help: "re-reads the domain table into the cache (db_mode 1)", Run: miReload},
			{Name: "domain_dump", Help: "lists the cached local domains", Run: miDump},
		},
		Configure: configure,
	})
	mi.DeclareParams("domain_reload", []string{})
	mi.DeclareParams("domain_dump", []string{})
}

// parseStatic reads a local_domain modparam.
func parseStatic(s string) (*Entry, error) {
	name, attrs, hasAttrs := strings.Cut(strings.TrimSpace(s), ";")
	name = strings.ToLower(strings.TrimSpace(name))
	e := &Entry{Attrs: attrs, HasAttrs: hasAttrs, Static: true}
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		e.Subdomain, name = true, rest
	}
	if name == "" || strings.ContainsAny(name, " \t*@:/") {
		return nil, fmt.Errorf("local_domain %q: want a domain name, optionally \"*.\" before it and \";attrs\" after it", s)
	}
	e.Name = name
	return e, nil
}

func configure(p modules.Params) (func(), error) {
	c := &config{
		cols: columns{table: p.Str("domain_table"), domain: p.Str("domain_col"),
			attrs: p.Str("attrs_col"), subdomain: p.Str("subdomain_col")},
		static: newTable(),
	}
	if err := c.cols.check(); err != nil {
		return nil, err
	}
	for _, v := range p.All("local_domain") {
		e, err := parseStatic(v.AsString())
		if err != nil {
			return nil, err
		}
		if _, dup := c.static.byName[e.Name]; dup {
			return nil, fmt.Errorf("local_domain %q is given twice", e.Name)
		}
		c.static.byName[e.Name] = e
	}
	switch mode := p.Int("db_mode"); mode {
	case 0, 1:
		c.cache = mode == 1
	default:
		return nil, fmt.Errorf("db_mode %d: want 0 (query the database on every check) or 1 (cache the table)", mode)
	}
	if u := strings.TrimSpace(p.Str("db_url")); u != "" {
		db, err := store.Open(u)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := db.CheckVersion(ctx, c.cols.table, TableVersion); err != nil {
			return nil, err
		}
		c.db = db
	} else if len(c.static.byName) == 0 {
		return nil, errors.New(`no domains: set modparam("domain", "db_url", "sqlite:///path/to/sipedge.db") or list them with modparam("domain", "local_domain", "example.com")`)
	}
	t := c.static
	if c.db != nil && c.cache {
		// read now, so the generation goes live with the table loaded and a
		// broken table refuses the load
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var err error
		if t, err = c.load(ctx); err != nil {
			return nil, err
		}
	}
	c.tbl.Store(t)
	return func() { cur.Store(c) }, nil
}

// load reads the whole table, merged over the static domains.
func (c *config) load(ctx context.Context) (*table, error) {
	q := fmt.Sprintf("SELECT %s, %s, %s FROM %s", c.cols.domain, c.cols.attrs, c.cols.subdomain, c.cols.table)
	rows, err := c.db.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", c.cols.table, err)
	}
	defer rows.Close()
	t := newTable()
	for n, e := range c.static.byName {
		t.byName[n] = e
	}
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", c.cols.table, err)
		}
		if e == nil {
			continue
		}
		if _, static := t.byName[e.Name]; !static {
			t.byName[e.Name] = e
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", c.cols.table, err)
	}
	return t, nil
}

func scanEntry(rows *sql.Rows) (*Entry, error) {
	var (
		name, attrs sql.NullString
		sub         sql.NullInt64
	)
	if err := rows.Scan(&name, &attrs, &sub); err != nil {
		return nil, err
	}
	n := strings.ToLower(strings.TrimSpace(name.String))
	if n == "" {
		return nil, nil
	}
	return &Entry{Name: n, Attrs: attrs.String, HasAttrs: attrs.Valid, Subdomain: sub.Int64 > 0}, nil
}

// query looks host up in the database (db_mode 0): the host itself and
// every parent domain, in one statement. Names compare case-insensitively
// (lower() keeps SQLite off the index; domain tables are small).
func (c *config) query(ctx context.Context, host string) (*Entry, error) {
	cands := []any{host}
	for h := host; ; {
		i := strings.IndexByte(h, '.')
		if i < 0 {
			break
		}
		h = h[i+1:]
		cands = append(cands, h)
	}
	q := fmt.Sprintf("SELECT %s, %s, %s FROM %s WHERE lower(%s) IN (?%s)", c.cols.domain, c.cols.attrs, c.cols.subdomain,
		c.cols.table, c.cols.domain, strings.Repeat(", ?", len(cands)-1))
	rows, err := c.db.Query(ctx, q, cands...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	t := newTable()
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, err
		}
		if e != nil {
			t.byName[e.Name] = e
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return t.lookup(host), nil
}

// Lookup tells whether host is a local domain, and returns its entry.
func Lookup(ctx context.Context, host string) (*Entry, error) {
	c := cur.Load()
	host = strings.ToLower(strings.Trim(strings.TrimSpace(host), "[]"))
	if host == "" {
		return nil, nil
	}
	if e := c.tbl.Load().lookup(host); e != nil {
		return e, nil
	}
	if c.db == nil || c.cache {
		return nil, nil
	}
	return c.query(ctx, host)
}

// IsLocal is Lookup for other modules: errors count as "not local".
func IsLocal(host string) bool {
	e, _ := Lookup(context.Background(), host)
	return e != nil
}

// Reload re-reads the table into the cache (MI domain_reload).
func Reload(ctx context.Context) error {
	c := cur.Load()
	if c.db == nil || !c.cache {
		return errors.New("command not activated")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t, err := c.load(ctx)
	if err != nil {
		return err
	}
	c.tbl.Store(t)
	return nil
}

// ---- script functions ----

func logErr(m *msgctx.Msg, format string, args ...any) {
	if m.Host != nil {
		m.Host.Log(m, msgctx.LErr, "domain: "+fmt.Sprintf(format, args...))
	}
}

// check looks host up and sets the attributes variable (argument i) when
// the call has one; 1 for a local domain, -1 otherwise or on error.
func checkHost(m *msgctx.Msg, a *modules.Args, i int, fn, host string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, err := Lookup(ctx, host)
	if err != nil {
		logErr(m, "%s: %v", fn, err)
		return -1
	}
	if e == nil {
		return -1
	}
	if a.Has(i) && i < len(a.Refs) && a.Refs[i] != nil {
		v := value.Null
		if e.HasAttrs {
			v = value.S(e.Attrs)
		}
		if err := a.Ref(i).Set(m, "=", v); err != nil {
			logErr(m, "%s: setting %s: %v", fn, a.Ref(i).Text, err)
			return -1
		}
	}
	return 1
}

func callIsDomainLocal(m *msgctx.Msg, a *modules.Args) int {
	return checkHost(m, a, 1, "is_domain_local", a.Str(0))
}

func callIsFromLocal(m *msgctx.Msg, a *modules.Args) int {
	if m.Req == nil || m.Req.From() == nil {
		logErr(m, "is_from_local: the message has no From header")
		return -1
	}
	return checkHost(m, a, 0, "is_from_local", m.Req.From().Address.Host)
}

func callIsURIHostLocal(m *msgctx.Msg, a *modules.Args) int {
	if m.Req == nil {
		logErr(m, "is_uri_host_local: there is no request")
		return -1
	}
	return checkHost(m, a, 0, "is_uri_host_local", m.Req.Recipient.Host)
}

// ---- MI ----

func miReload(map[string]any) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Reload(ctx); err != nil {
		if err.Error() == "command not activated" {
			return nil, mi.Errorf(500, "command not activated")
		}
		return nil, mi.Errorf(500, "Domain table reload failed: %v", err)
	}
	return nil, nil
}

func miDump(map[string]any) (any, error) {
	c := cur.Load()
	if c.db != nil && !c.cache && len(c.static.byName) == 0 {
		return nil, mi.Errorf(500, "command not activated")
	}
	var list []any
	for _, e := range c.tbl.Load().sorted() {
		item := map[string]any{"name": e.Name, "accept_subdomain": 0}
		if e.Subdomain {
			item["accept_subdomain"] = 1
		}
		if e.HasAttrs {
			item["attributes"] = e.Attrs
		}
		list = append(list, item)
	}
	if list == nil {
		list = []any{}
	}
	return map[string]any{"Domains": list}, nil
}
