// Package uri is OpenSIPS 1.x/2.x's uri module, kept so old configs that
// `loadmodule "uri.so"` run unchanged. OpenSIPS 2.2+ moved its checks to
// sipmsgops under new names; this module exports the old names on top of
// sipmsgops's implementations (no logic of its own):
//
//	has_totag()              = sipmsgops has_totag()
//	uri_param(name[, value]) = ruri_has_param(name[, value])
//	add_uri_param(param)     = ruri_add_param(param)
//	del_uri_param(name)      = ruri_del_param(name)
//	tel2sip()                = ruri_tel2sip()
//	is_uri_user_e164(uri)    = is_uri_user_e164(uri)
package uri

import (
	"fmt"

	"github.com/sipedge/sipedge/modules"
	_ "github.com/sipedge/sipedge/modules/sipmsgops" // registers first
)

// Name is the module name.
const Name = "uri"

// Aliases maps each function this module exports to the sipmsgops
// function behind it.
var Aliases = []struct{ Name, Target string }{
	{"has_totag", "has_totag"},
	{"uri_param", "ruri_has_param"},
	{"add_uri_param", "ruri_add_param"},
	{"del_uri_param", "ruri_del_param"},
	{"tel2sip", "ruri_tel2sip"},
	{"is_uri_user_e164", "is_uri_user_e164"},
}

func init() {
	src := modules.Lookup("sipmsgops")
	if src == nil {
		panic("uri: module sipmsgops is not registered")
	}
	var funcs []*modules.Func
	for _, a := range Aliases {
		var target *modules.Func
		for _, f := range src.Funcs {
			if f.Name == a.Target {
				target = f
			}
		}
		if target == nil {
			panic(fmt.Sprintf("uri: sipmsgops has no %s()", a.Target))
		}
		alias := *target
		alias.Name = a.Name
		funcs = append(funcs, &alias)
	}
	modules.Register(&modules.Info{Name: Name, Funcs: funcs})
}
