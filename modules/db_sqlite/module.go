// Package db_sqlite stands for OpenSIPS's db_sqlite module, so scripts that
// `loadmodule "db_sqlite.so"` load. sipedge always has its SQLite driver
// (runtime/store); modules reach a database through their db_url modparam,
// "sqlite:///path/to/file.db".
package db_sqlite

import (
	"errors"

	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/value"
)

func init() {
	modules.Register(&modules.Info{
		Name: "db_sqlite",
		Params: []modules.Param{
			// Accepted for compatibility: sipedge reads rows as they come.
			{Name: "alloc_limit", Kind: modules.ParamInt, Default: value.I(10)},
			{Name: "load_extension", Kind: modules.ParamStr, Multi: true},
		},
		Configure: func(p modules.Params) (func(), error) {
			if len(p.All("load_extension")) > 0 {
				return nil, errors.New("load_extension is not supported: sipedge does not load SQLite extensions")
			}
			if p.Int("alloc_limit") <= 0 {
				return nil, errors.New("alloc_limit must be positive")
			}
			return nil, nil
		},
	})
}
