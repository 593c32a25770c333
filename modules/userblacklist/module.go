// Package userblacklist is OpenSIPS's userblacklist module: per-user
// blacklists (check_user_blacklist, read from the userblacklist table on
// every call) and global blacklists (check_blacklist, tables such as
// globalblacklist held in memory and reloaded with the MI command
// reload_blacklist). Both find the longest prefix of a number among the
// table's prefixes; the number is blacklisted when that prefix is not a
// whitelist entry.
package userblacklist

import (
	"context"
	"errors"
	"fmt"
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
const Name = "userblacklist"

// MaxNumberLen is the longest number checked (OpenSIPS's MAXNUMBERLEN).
const MaxNumberLen = 31

// DefaultGlobalTable is OpenSIPS's table for global blacklists.
const DefaultGlobalTable = "globalblacklist"

// config is one generation's settings and its cached global tables.
type config struct {
	url       string
	db        *store.DB
	userTable string
	useDomain bool

	mu      sync.Mutex // guards globals' map (reads take it briefly)
	globals map[string]*atomic.Pointer[trie]
}

var (
	cur atomic.Pointer[config]
	// pending is the configuration being loaded: fixups of the same load
	// read their global tables into it, so a missing table fails the load.
	pending atomic.Pointer[config]
)

func init() {
	cur.Store(&config{userTable: "userblacklist", globals: map[string]*atomic.Pointer[trie]{}})
	str := check.ArgSpec{Kind: check.ArgStr}
	optStr := check.ArgSpec{Kind: check.ArgStr, Optional: true}
	routes := check.Routes(ast.RequestRoute, ast.FailureRoute)
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "db_url", Kind: modules.ParamStr},
			{Name: "db_table", Kind: modules.ParamStr, Default: value.S("userblacklist")},
			{Name: "use_domain", Kind: modules.ParamInt, Default: value.I(0)},
		},
		Configure: configure,
		Funcs: []*modules.Func{
			{Name: "check_user_blacklist", Args: []check.ArgSpec{str, str, optStr, optStr},
				Routes: routes, Fixup: fixupUser, Call: callUser},
			{Name: "check_blacklist", Args: []check.ArgSpec{str},
				Routes: routes, Fixup: fixupGlobal, Call: callGlobal},
		},
		MI: []modules.MICommand{
			{Name: "reload_blacklist", Help: "reloads the global blacklist tables into memory", Run: miReload},
		},
	})
	mi.DeclareParams("reload_blacklist", []string{})
}

func configure(p modules.Params) (func(), error) {
	c := &config{
		url:       strings.TrimSpace(p.Str("db_url")),
		userTable: strings.TrimSpace(p.Str("db_table")),
		useDomain: p.Int("use_domain") != 0,
		globals:   map[string]*atomic.Pointer[trie]{},
	}
	if err := store.CheckIdent("db_table", c.userTable); err != nil {
		return nil, err
	}
	if c.url != "" {
		db, err := store.Open(c.url)
		if err != nil {
			return nil, err
		}
		c.db = db
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := db.CheckVersion(ctx, c.userTable, store.TableVersion(c.userTable)); err != nil {
			return nil, err
		}
	}
	pending.Store(c)
	return func() {
		cur.Store(c)
		pending.CompareAndSwap(c, nil)
	}, nil
}

func logf(m *msgctx.Msg, level int, format string, args ...any) {
	if m != nil && m.Host != nil {
		m.Host.Log(m, level, "userblacklist: "+fmt.Sprintf(format, args...))
	}
}

// ---- the prefix tree ----

// trie is a decimal prefix tree, as OpenSIPS's d-tree.
type trie struct {
	root  tnode
	count int
}

type tnode struct {
	child     [10]*tnode
	leaf      bool
	whitelist bool
}

// insert adds a prefix; prefixes with anything but digits are refused.
func (t *trie) insert(prefix string, whitelist bool) bool {
	n := &t.root
	for i := 0; i < len(prefix); i++ {
		d := prefix[i] - '0'
		if d > 9 {
			return false
		}
		if n.child[d] == nil {
			n.child[d] = &tnode{}
		}
		n = n.child[d]
	}
	n.leaf, n.whitelist = true, whitelist
	t.count++
	return true
}

// longest finds the longest prefix of number in the tree; matched is -1
// when none matches. The number's digits are read up to its first
// non-digit.
func (t *trie) longest(number string) (matched int, whitelist bool) {
	matched = -1
	n := &t.root
	if n.leaf {
		matched, whitelist = 0, n.whitelist
	}
	for i := 0; i < len(number); i++ {
		d := number[i] - '0'
		if d > 9 || n.child[d] == nil {
			break
		}
		n = n.child[d]
		if n.leaf {
			matched, whitelist = i+1, n.whitelist
		}
	}
	return matched, whitelist
}

// blacklisted is OpenSIPS's verdict: the longest matching prefix is not a
// whitelist entry.
func (t *trie) blacklisted(number string) bool {
	matched, white := t.longest(number)
	return matched >= 0 && !white
}

// digits skips what precedes the first digit ("+49…" is "49…").
func digits(number string) string {
	i := 0
	for i < len(number) && (number[i] < '0' || number[i] > '9') {
		i++
	}
	return number[i:]
}

// loadTrie reads prefix/whitelist rows of a table (optionally only those
// of one user, and domain).
func loadTrie(ctx context.Context, db *store.DB, table string, where string, args ...any) (*trie, error) {
	q := "SELECT prefix, whitelist FROM " + table
	if where != "" {
		q += " WHERE " + where
	}
	q += " ORDER BY id"
	rows, err := db.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", table, err)
	}
	defer rows.Close()
	t := &trie{}
	for rows.Next() {
		var prefix *string
		var white *int64
		if err := rows.Scan(&prefix, &white); err != nil {
			return nil, fmt.Errorf("reading %s: %w", table, err)
		}
		if prefix == nil || white == nil {
			continue // NULL columns are skipped, as in OpenSIPS
		}
		t.insert(*prefix, *white != 0)
	}
	return t, rows.Err()
}

// ---- global tables ----

// global returns a global table, loading it on first use.
func (c *config) global(ctx context.Context, table string) (*trie, error) {
	c.mu.Lock()
	p := c.globals[table]
	c.mu.Unlock()
	if p != nil {
		if t := p.Load(); t != nil {
			return t, nil
		}
	}
	if c.db == nil {
		return nil, errors.New(`no database (set modparam("userblacklist", "db_url", …))`)
	}
	if err := store.CheckIdent("table", table); err != nil {
		return nil, err
	}
	if err := c.db.CheckVersion(ctx, table, store.TableVersion(table)); err != nil {
		return nil, err
	}
	t, err := loadTrie(ctx, c.db, table, "")
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if p = c.globals[table]; p == nil {
		p = &atomic.Pointer[trie]{}
		c.globals[table] = p
	}
	p.Store(t)
	c.mu.Unlock()
	return t, nil
}

// reload re-reads every global table in use; the old contents keep
// serving until each new one is complete.
func (c *config) reload(ctx context.Context) error {
	c.mu.Lock()
	names := make([]string, 0, len(c.globals))
	for n := range c.globals {
		names = append(names, n)
	}
	c.mu.Unlock()
	for _, n := range names {
		t, err := loadTrie(ctx, c.db, n, "")
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.globals[n].Store(t)
		c.mu.Unlock()
	}
	return nil
}

func fixupGlobal(args []check.FixupArg) (any, error) {
	a := args[0]
	if !a.Present || !a.Const {
		return nil, nil
	}
	table := strings.TrimSpace(a.Str)
	if err := store.CheckIdent("table", table); err != nil {
		return nil, check.ArgError(0, "%v", err)
	}
	// Load it now, so a missing table refuses the script (OpenSIPS
	// refuses to start).
	if c := pending.Load(); c != nil && c.db != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := c.global(ctx, table); err != nil {
			return nil, check.ArgError(0, "%v", err)
		}
	}
	return nil, nil
}

// ruriUser is the number both functions check by default: the R-URI user.
func ruriUser(m *msgctx.Msg, fn string) (string, bool) {
	if m.Req == nil {
		logf(m, msgctx.LErr, "%s: SIP msg is not a request", fn)
		return "", false
	}
	ru := &m.Req.Recipient
	u := ru.User
	if s := strings.ToLower(ru.Scheme); u == "" && (s == "tel" || s == "tels") {
		u, _, _ = strings.Cut(ru.Raw(), ";") // the number of a tel: URI
	}
	if u == "" {
		logf(m, msgctx.LErr, "%s: the Request-URI has no user", fn)
		return "", false
	}
	return u, true
}

// check_blacklist(table)
func callGlobal(m *msgctx.Msg, a *modules.Args) int {
	const fn = "check_blacklist"
	number, ok := ruriUser(m, fn)
	if !ok {
		return -1
	}
	if len(number) > MaxNumberLen {
		logf(m, msgctx.LErr, "%s: number too long", fn)
		return -1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t, err := cur.Load().global(ctx, strings.TrimSpace(a.Str(0)))
	if err != nil {
		logf(m, msgctx.LErr, "%s(%q): %v", fn, a.Str(0), err)
		return -1
	}
	if t.blacklisted(digits(number)) {
		return -1
	}
	return 1
}

// ---- per-user lists ----

func fixupUser(args []check.FixupArg) (any, error) {
	if a := args[3]; a.Present && a.Const && strings.TrimSpace(a.Str) != "" {
		if err := store.CheckIdent("table", strings.TrimSpace(a.Str)); err != nil {
			return nil, check.ArgError(3, "%v", err)
		}
	}
	return nil, nil
}

// UserBlacklisted tells whether number is blacklisted for user@domain in
// table ("" for db_table), as check_user_blacklist decides.
func UserBlacklisted(ctx context.Context, user, domain, number, table string) (bool, error) {
	c := cur.Load()
	if c.db == nil {
		return false, errors.New(`no database (set modparam("userblacklist", "db_url", …))`)
	}
	if table == "" {
		table = c.userTable
	}
	if err := store.CheckIdent("table", table); err != nil {
		return false, err
	}
	where, args := "username = ?", []any{user}
	if c.useDomain {
		where, args = "username = ? AND domain = ?", []any{user, domain}
	}
	t, err := loadTrie(ctx, c.db, table, where, args...)
	if err != nil {
		return false, err
	}
	return t.blacklisted(digits(number)), nil
}

// check_user_blacklist(user, domain[, number[, table]])
func callUser(m *msgctx.Msg, a *modules.Args) int {
	const fn = "check_user_blacklist"
	if m.Req == nil {
		logf(m, msgctx.LErr, "%s: SIP msg is not a request", fn)
		return -1
	}
	var number string
	if a.Has(2) {
		number = a.Str(2)
	} else {
		u, ok := ruriUser(m, fn)
		if !ok {
			return -1
		}
		number = u
	}
	if len(number) > MaxNumberLen {
		logf(m, msgctx.LErr, "%s: number too long", fn)
		return -1
	}
	table := ""
	if a.Has(3) {
		table = strings.TrimSpace(a.Str(3))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	black, err := UserBlacklisted(ctx, a.Str(0), a.Str(1), number, table)
	if err != nil {
		logf(m, msgctx.LErr, "%s: %v", fn, err)
		return -1
	}
	if black {
		return -1
	}
	return 1
}

// ---- MI ----

type miError struct {
	code int
	msg  string
}

func (e *miError) Error() string { return e.msg }
func (e *miError) MICode() int   { return e.code }

func miReload(map[string]any) (any, error) {
	c := cur.Load()
	if c.db == nil {
		return "OK", nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.reload(ctx); err != nil {
		return nil, &miError{code: 500, msg: "cannot reload blacklist"}
	}
	return "OK", nil
}
