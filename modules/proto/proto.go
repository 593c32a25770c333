// Package proto registers OpenSIPS's transport modules (proto_udp,
// proto_tcp, proto_tls, proto_ws, proto_wss) so that scripts written for
// OpenSIPS 3.x, which must load one per protocol they listen on, load
// unchanged. In sipedge the sockets themselves come from the socket= (or
// listen=) lines and are served by runtime/sipstack; these modules only
// accept the loadmodule line and the transport's common modparams.
//
// Which protocols the runtime can actually serve is the runtime's business
// (see runtime/sipstack/README.md): a socket= line for a protocol it lacks
// is refused when the proxy binds, whatever modules are loaded.
package proto

import (
	"fmt"

	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/value"
)

// Module describes one transport module.
type Module struct {
	Name  string // "proto_tcp"
	Proto string // "tcp"
	Port  int    // the protocol's default port (the <proto>_port modparam)
	// Served tells whether runtime/sipstack has sockets of this protocol.
	Served bool
}

// Modules are the transport modules registered here.
var Modules = []Module{
	{Name: "proto_udp", Proto: "udp", Port: 5060, Served: true},
	{Name: "proto_tcp", Proto: "tcp", Port: 5060, Served: true},
	{Name: "proto_tls", Proto: "tls", Port: 5061, Served: true},
	{Name: "proto_ws", Proto: "ws", Port: 80, Served: true},
	{Name: "proto_wss", Proto: "wss", Port: 443, Served: true},
}

// Lookup finds a transport module by name (nil: not one of them).
func Lookup(name string) *Module {
	for i := range Modules {
		if Modules[i].Name == name {
			return &Modules[i]
		}
	}
	return nil
}

func intParam(name string, def int) modules.Param {
	return modules.Param{Name: name, Kind: modules.ParamInt, Default: value.I(def)}
}

func strParam(name, def string) modules.Param {
	p := modules.Param{Name: name, Kind: modules.ParamStr}
	if def != "" {
		p.Default = value.S(def)
	}
	return p
}

// params are the modparams OpenSIPS 3.x documents for each transport.
// They are accepted and checked for type; <proto>_port is the port of a
// socket= line of that protocol without one (runtime/sipstack), the others
// change nothing.
func params(m Module) []modules.Param {
	p := m.Proto
	out := []modules.Param{intParam(p+"_port", m.Port)}
	// tracing (proto_hep) is common to every transport but udp
	trace := []modules.Param{strParam("trace_destination", ""), intParam("trace_on", 0), strParam("trace_filter_route", "")}
	switch p {
	case "udp":
		return out
	case "tcp", "tls":
		out = append(out,
			intParam(p+"_send_timeout", 100),
			intParam(p+"_max_msg_chunks", 4),
			intParam(p+"_crlf_pingpong", 1),
			intParam(p+"_crlf_drop", 0),
			intParam(p+"_async", 1),
			intParam(p+"_async_max_postponed_chunks", 32),
			intParam(p+"_async_local_connect_timeout", 100),
			intParam(p+"_async_local_write_timeout", 10),
		)
		if p == "tls" {
			out = append(out, intParam("tls_handshake_timeout", 100))
		}
	case "ws", "wss":
		out = append(out,
			intParam(p+"_send_timeout", 100),
			intParam(p+"_max_msg_chunks", 4),
			strParam(p+"_resource", "/"),
			intParam(p+"_handshake_timeout", 100),
		)
	}
	return append(out, trace...)
}

func configure(m Module) func(p modules.Params) (func(), error) {
	return func(p modules.Params) (func(), error) {
		if port := p.Int(m.Proto + "_port"); port <= 0 || port > 65535 {
			return nil, fmt.Errorf("%s_port %d is not a port number", m.Proto, port)
		}
		return nil, nil
	}
}

func init() {
	for _, m := range Modules {
		modules.Register(&modules.Info{
			Name:      m.Name,
			Params:    params(m),
			Configure: configure(m),
		})
	}
}
