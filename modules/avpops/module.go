// Package avpops is the OpenSIPS 2.x avpops module's query and AVP
// helpers, which 2.x-era scripts (like the fail2ban-bypass check of
// avp_db_query + is_avp_set) still use: avp_db_query(), is_avp_set() and
// avp_delete(). avp_db_query binds its pseudo-variables as SQL parameters,
// as sqlops does.
package avpops

import (
	"sync/atomic"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/modules/sqlops"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/store/sqlq"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "avpops"

var dbs atomic.Pointer[sqlops.DBs]

func init() {
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "db_url", Kind: modules.ParamStr, Multi: true},
		},
		Funcs: []*modules.Func{
			sqlops.QueryFunc("avp_db_query", &dbs, sqlq.Options{}),
			{Name: "is_avp_set", Args: []check.ArgSpec{{Kind: check.ArgVar}}, Call: callIsSet},
			{Name: "avp_delete", Args: []check.ArgSpec{{Kind: check.ArgVar, Writable: true}}, Call: callDelete},
		},
		Configure: func(p modules.Params) (func(), error) {
			set, err := sqlops.OpenDBs(p.All("db_url"))
			if err != nil {
				return nil, err
			}
			return func() { dbs.Store(&set) }, nil
		},
	})
}

// is_avp_set(name): true when the variable has a value.
func callIsSet(m *msgctx.Msg, a *modules.Args) int {
	if a.Ref(0).Get(m).IsNull() {
		return -1
	}
	return 1
}

// avp_delete(name): deletes the newest value (OpenSIPS without the /g flag).
func callDelete(m *msgctx.Msg, a *modules.Args) int {
	if err := a.Ref(0).Set(m, "=", value.Null); err != nil {
		if m.Host != nil {
			m.Host.Log(m, msgctx.LErr, "avp_delete: "+err.Error())
		}
		return -1
	}
	return 1
}
