// Package mihttp is OpenSIPS 3.x's mi_http module: the Management
// Interface as JSON-RPC 2.0 over HTTP POST, served by the httpd module at
// http://[httpd ip]:[httpd port]/[root] (default /mi). The commands and
// the JSON-RPC handling are runtime/mi's (mi.Default).
package mihttp

import (
	"net/http"

	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/modules/httpd"
	"github.com/sipedge/sipedge/runtime/mi"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module's name.
const Name = "mi_http"

// DefaultRoot is the default root path.
const DefaultRoot = "mi"

func init() {
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "root", Kind: modules.ParamStr, Default: value.S(DefaultRoot)},
			// Accepted for compatibility: sipedge has no tracing module
			// (proto_hep) to send MI traffic to.
			{Name: "trace_destination", Kind: modules.ParamStr},
			{Name: "trace_bwlist", Kind: modules.ParamStr},
		},
		Configure: func(p modules.Params) (func(), error) {
			return nil, httpd.ValidRoot(p.Str("root"))
		},
	})
	httpd.RegisterRoot(Name, route)
}

// Handler is what mi_http serves: mi.Default's JSON-RPC handler.
func Handler() http.Handler { return mi.Default }

func route(p modules.Params) (string, http.Handler, error) {
	root := p.Str("root")
	if err := httpd.ValidRoot(root); err != nil {
		return "", nil, err
	}
	return root, Handler(), nil
}
