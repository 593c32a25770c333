// Package auth_db is OpenSIPS's auth_db module: www_authorize() and
// proxy_authorize() check digest credentials against a subscriber-like
// table, and db_does_uri_exist() looks a user up. The digest work (nonces,
// responses, replay protection, challenges) is the auth module's.
package auth_db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/modules/auth"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "auth_db"

// TableVersion is the subscriber table version auth_db checks for.
const TableVersion = 8

type config struct {
	db          *store.DB
	calcHA1     bool
	useDomain   bool
	userCol     string
	domainCol   string
	pwCol       string
	sha256Col   string
	sha512Col   string
	skipVersion bool
	cacheTTL    time.Duration
	cache       *credCache
	checked     sync.Map // table -> error (nil when fine)
}

var cur atomic.Pointer[config]

func init() {
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "db_url", Kind: modules.ParamStr},
			{Name: "calculate_ha1", Kind: modules.ParamInt, Default: value.I(0)},
			{Name: "use_domain", Kind: modules.ParamInt, Default: value.I(1)},
			{Name: "user_column", Kind: modules.ParamStr, Default: value.S("username")},
			{Name: "domain_column", Kind: modules.ParamStr, Default: value.S("domain")},
			{Name: "password_column", Kind: modules.ParamStr, Default: value.S("ha1")},
			{Name: "hash_column_sha256", Kind: modules.ParamStr, Default: value.S("ha1_sha256")},
			{Name: "hash_column_sha512t256", Kind: modules.ParamStr, Default: value.S("ha1_sha512t256")},
			{Name: "load_credentials", Kind: modules.ParamStr},
			{Name: "skip_version_check", Kind: modules.ParamInt, Default: value.I(0)},
			// sipedge: keep looked-up credentials this many seconds (0: off).
			{Name: "cache_ttl", Kind: modules.ParamInt, Default: value.I(0)},
		},
		Funcs: []*modules.Func{
			{
				Name:   "www_authorize",
				Args:   []check.ArgSpec{{Kind: check.ArgStr}, {Kind: check.ArgStr}},
				Routes: check.Routes(ast.RequestRoute),
				Fixup:  fixupTable(1),
				Call:   func(m *msgctx.Msg, a *modules.Args) int { return authorize(m, a, auth.WWW, "www_authorize") },
			},
			{
				Name:   "proxy_authorize",
				Args:   []check.ArgSpec{{Kind: check.ArgStr}, {Kind: check.ArgStr}},
				Routes: check.Routes(ast.RequestRoute),
				Fixup:  fixupTable(1),
				Call:   func(m *msgctx.Msg, a *modules.Args) int { return authorize(m, a, auth.Proxy, "proxy_authorize") },
			},
			{
				Name:   "db_does_uri_exist",
				Args:   []check.ArgSpec{{Kind: check.ArgStr}, {Kind: check.ArgStr}},
				Routes: check.Routes(ast.RequestRoute, ast.FailureRoute, ast.LocalRoute),
				Fixup:  fixupTable(1),
				Call:   callURIExists,
			},
		},
		Configure: configure,
	})
}

func configure(p modules.Params) (func(), error) {
	c := &config{
		calcHA1:     p.Int("calculate_ha1") != 0,
		useDomain:   p.Int("use_domain") != 0,
		userCol:     p.Str("user_column"),
		domainCol:   p.Str("domain_column"),
		pwCol:       p.Str("password_column"),
		sha256Col:   p.Str("hash_column_sha256"),
		sha512Col:   p.Str("hash_column_sha512t256"),
		skipVersion: p.Int("skip_version_check") != 0,
		cacheTTL:    time.Duration(p.Int("cache_ttl")) * time.Second,
		cache:       newCredCache(),
	}
	for _, col := range []struct{ param, v string }{
		{"user_column", c.userCol}, {"domain_column", c.domainCol}, {"password_column", c.pwCol},
		{"hash_column_sha256", c.sha256Col}, {"hash_column_sha512t256", c.sha512Col},
	} {
		if err := store.CheckIdent(col.param, col.v); err != nil {
			return nil, err
		}
	}
	if lc := strings.TrimSpace(p.Str("load_credentials")); lc != "" {
		return nil, errors.New("load_credentials is not supported yet (module parameters cannot name AVPs in sipedge); load extra columns with avp_db_query/sql_query after authorizing")
	}
	if c.cacheTTL < 0 {
		return nil, errors.New("cache_ttl must not be negative")
	}
	u := p.Str("db_url")
	if u == "" {
		return nil, errors.New(`no database: set modparam("auth_db", "db_url", "sqlite:///path/to/sipedge.db")`)
	}
	db, err := store.Open(u)
	if err != nil {
		return nil, err
	}
	c.db = db
	return func() { cur.Store(c) }, nil
}

// fixupTable checks a constant table name.
func fixupTable(i int) func(args []check.FixupArg) (any, error) {
	return func(args []check.FixupArg) (any, error) {
		if a := args[i]; a.Const {
			if err := store.CheckIdent("table", a.Str); err != nil {
				return nil, check.ArgError(i, "%v", err)
			}
		}
		return nil, nil
	}
}

func logf(m *msgctx.Msg, level int, format string, args ...any) {
	if m.Host != nil {
		m.Host.Log(m, level, fmt.Sprintf(format, args...))
	}
}

// checkTable verifies a table once per configuration: it exists and, unless
// skip_version_check is set, has the version auth_db works with.
func (c *config) checkTable(table string) error {
	if v, ok := c.checked.Load(table); ok {
		err, _ := v.(error)
		return err
	}
	if err := store.CheckIdent("table", table); err != nil {
		return err
	}
	want := TableVersion
	if c.skipVersion {
		want = 0
	}
	err := c.db.CheckVersion(context.Background(), table, want)
	if err == nil {
		c.checked.Store(table, nil)
	} else {
		c.checked.Store(table, err)
	}
	return err
}

// creds is one subscriber row as auth needs it.
type creds struct {
	found                    bool
	password, sha256, sha512 string
	expires                  int64
}

func (c *config) lookup(table, user, domain string) (creds, error) {
	key := table + "\x00" + user + "\x00" + domain
	now := time.Now().UnixNano()
	if c.cacheTTL > 0 {
		if r, ok := c.cache.get(key); ok && r.expires > now {
			return r, nil
		}
	}
	cols := c.pwCol
	if !c.calcHA1 {
		cols += ", " + c.sha256Col + ", " + c.sha512Col
	}
	q := "SELECT " + cols + " FROM " + table + " WHERE " + c.userCol + " = ?"
	args := []any{user}
	if c.useDomain {
		q += " AND " + c.domainCol + " = ?"
		args = append(args, domain)
	}
	q += " LIMIT 1"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := c.db.Query(ctx, q, args...)
	if err != nil {
		return creds{}, err
	}
	defer rows.Close()
	var r creds
	if rows.Next() {
		var pw, s256, s512 sql.NullString
		dest := []any{&pw}
		if !c.calcHA1 {
			dest = append(dest, &s256, &s512)
		}
		if err := rows.Scan(dest...); err != nil {
			return creds{}, err
		}
		r = creds{found: true, password: pw.String, sha256: s256.String, sha512: s512.String}
	}
	if err := rows.Err(); err != nil {
		return creds{}, err
	}
	if c.cacheTTL > 0 {
		r.expires = now + int64(c.cacheTTL)
		c.cache.put(key, r)
	}
	return r, nil
}

func authorize(m *msgctx.Msg, a *modules.Args, kind auth.Kind, fname string) int {
	at, code, done := auth.Begin(m, a.Str(0), kind, fname)
	if done {
		return code
	}
	c := cur.Load()
	if c == nil {
		logf(m, msgctx.LErr, "%s: auth_db has no database configured", fname)
		return auth.AuthError
	}
	table := a.Str(1)
	if err := c.checkTable(table); err != nil {
		logf(m, msgctx.LErr, "%s: %v", fname, err)
		return auth.AuthError
	}
	domain := ""
	if c.useDomain {
		domain = at.Realm
	}
	r, err := c.lookup(table, at.Cred.User, domain)
	if err != nil {
		logf(m, msgctx.LErr, "%s: looking up %q in %s: %v", fname, at.Cred.Username, table, err)
		return auth.AuthError
	}
	if !r.found {
		return auth.UserUnknown
	}
	var ha1 string
	switch {
	case c.calcHA1:
		ha1 = at.HA1(r.password)
	case at.Cred.Alg.Base() == auth.AlgSHA256:
		ha1 = r.sha256
	case at.Cred.Alg.Base() == auth.AlgSHA512_256:
		ha1 = r.sha512
	default:
		ha1 = r.password
	}
	if ha1 == "" || !at.Verify(ha1) {
		return auth.InvalidPassword
	}
	return at.Finish()
}

// db_does_uri_exist(uri, table): 1 when the URI's user (and domain, with
// use_domain) is a subscriber, -1 when not or on error.
func callURIExists(m *msgctx.Msg, a *modules.Args) int {
	c := cur.Load()
	if c == nil {
		logf(m, msgctx.LErr, "db_does_uri_exist: auth_db has no database configured")
		return -1
	}
	var u sip.Uri
	if err := sip.ParseUri(strings.TrimSpace(a.Str(0)), &u); err != nil || u.User == "" {
		logf(m, msgctx.LErr, "db_does_uri_exist: %q is not a SIP URI with a user", a.Str(0))
		return -1
	}
	table := a.Str(1)
	if err := c.checkTable(table); err != nil {
		logf(m, msgctx.LErr, "db_does_uri_exist: %v", err)
		return -1
	}
	q := "SELECT 1 FROM " + table + " WHERE " + c.userCol + " = ?"
	args := []any{u.User}
	if c.useDomain {
		q += " AND " + c.domainCol + " = ?"
		args = append(args, u.Host)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := c.db.Query(ctx, q+" LIMIT 1", args...)
	if err != nil {
		logf(m, msgctx.LErr, "db_does_uri_exist: %v", err)
		return -1
	}
	defer rows.Close()
	if rows.Next() {
		return 1
	}
	return -1
}

// credCache keeps looked-up rows (found or not) for cache_ttl.
type credCache struct {
	mu sync.RWMutex
	m  map[string]creds
}

const maxCached = 1 << 16

func newCredCache() *credCache { return &credCache{m: map[string]creds{}} }

func (c *credCache) get(k string) (creds, bool) {
	c.mu.RLock()
	r, ok := c.m[k]
	c.mu.RUnlock()
	return r, ok
}

func (c *credCache) put(k string, r creds) {
	c.mu.Lock()
	if len(c.m) >= maxCached {
		clear(c.m)
	}
	c.m[k] = r
	c.mu.Unlock()
}
