// Package sqlops is OpenSIPS 3.x's sqlops module: raw SQL queries from the
// script, sql_query() and sql_query_one(), with results in variables.
//
// Unlike OpenSIPS, the pseudo-variables in a query are never pasted into
// the SQL text: each one (or each quoted literal that contains one) is a
// bound parameter, so no value can change the query (see runtime/store/sqlq).
package sqlops

import (
	"fmt"
	"sync/atomic"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/store/sqlq"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "sqlops"

// DBs is a module's databases by db_url id.
type DBs map[int]*store.DB

var dbs atomic.Pointer[DBs]

func init() {
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "db_url", Kind: modules.ParamStr, Multi: true},
			{Name: "bigint_to_str", Kind: modules.ParamInt, Default: value.I(0)},
			{Name: "ps_id_max_buf_len", Kind: modules.ParamInt, Default: value.I(1024)},
		},
		Funcs: []*modules.Func{
			QueryFunc("sql_query", &dbs, sqlq.Options{}),
			QueryFunc("sql_query_one", &dbs, sqlq.Options{FirstRow: true, NullAsNull: true}),
		},
		Configure: func(p modules.Params) (func(), error) {
			set, err := OpenDBs(p.All("db_url"))
			if err != nil {
				return nil, err
			}
			return func() { dbs.Store(&set) }, nil
		},
	})
}

// OpenDBs opens the databases of a repeatable db_url modparam ("url" is
// id 0, "N url" is id N).
func OpenDBs(vals []value.Value) (DBs, error) {
	raw := make([]string, len(vals))
	for i, v := range vals {
		raw[i] = v.AsString()
	}
	urls, err := sqlq.ParseDBURLs(raw)
	if err != nil {
		return nil, err
	}
	out := DBs{}
	for id, u := range urls {
		db, err := store.Open(u)
		if err != nil {
			return nil, err
		}
		out[id] = db
	}
	return out, nil
}

// QueryFunc builds a raw-query function: name(query[, dest[, db_id]]). The
// query must be a string literal (it is compiled at load time); dest is one
// variable; db_id picks a db_url.
func QueryFunc(name string, set *atomic.Pointer[DBs], opt sqlq.Options) *modules.Func {
	return &modules.Func{
		Name: name,
		Args: []check.ArgSpec{
			{Kind: check.ArgStr, NoExpand: true},
			{Kind: check.ArgVar, Optional: true, Writable: true},
			{Kind: check.ArgInt, Optional: true},
		},
		Fixup: fixupQuery,
		Call: func(m *msgctx.Msg, a *modules.Args) int {
			return runQuery(m, a, name, set, opt)
		},
	}
}

func fixupQuery(args []check.FixupArg) (any, error) {
	a := args[0]
	if !a.Const {
		return nil, check.ArgError(0, "the query must be a string literal: sipedge compiles it at load time and binds its pseudo-variables as parameters (a query built in a variable could not be protected from SQL injection)")
	}
	q, err := sqlq.Compile(a.Str, a.Pos)
	if err != nil {
		return nil, check.ArgError(0, "%v", err)
	}
	if d := args[2]; d.Present && d.Const && d.Int < 0 {
		return nil, check.ArgError(2, "db_id %d must not be negative", d.Int)
	}
	return q, nil
}

func runQuery(m *msgctx.Msg, a *modules.Args, fname string, set *atomic.Pointer[DBs], opt sqlq.Options) int {
	q, ok := a.Fix.(*sqlq.Query)
	if !ok {
		return -1
	}
	id := 0
	if a.Has(2) {
		n, ok := a.Val(2).AsInt()
		if !ok {
			logf(m, msgctx.LErr, "%s: db_id %q is not a number", fname, a.Str(2))
			return -1
		}
		id = n
	}
	var db *store.DB
	if s := set.Load(); s != nil {
		db = (*s)[id]
	}
	if db == nil {
		logf(m, msgctx.LErr, "%s: no db_url with id %d (set the db_url modparam of the module)", fname, id)
		return -1
	}
	var dests []*pvar.Ref
	if a.Has(1) {
		dests = []*pvar.Ref{a.Ref(1)}
	}
	res, err := sqlq.Run(db, q, m, dests, opt)
	if err != nil {
		logf(m, msgctx.LErr, "%s: %v", fname, err)
		return -1
	}
	if !q.Write && res.Rows == 0 {
		return -2
	}
	return 1
}

func logf(m *msgctx.Msg, level int, format string, args ...any) {
	if m.Host != nil {
		m.Host.Log(m, level, fmt.Sprintf(format, args...))
	}
}
