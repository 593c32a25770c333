// Package corefwd adds OpenSIPS's core forward([destination]) to the core
// module: a stateless relay of the current request to $du, the given
// "[proto:]host[:port]", or the Request-URI. It lives outside modules/core
// because the relay itself is the SIP runtime's (msgctx.SIPHost.Forward);
// modules.RegisterCore makes it a core function that needs no loadmodule.
package corefwd

import (
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

func init() {
	modules.RegisterCore(&modules.Func{
		Name:  "forward",
		Args:  []check.ArgSpec{{Kind: check.ArgStr, Optional: true}},
		Fixup: fixupForward,
		Call:  callForward,
	})
}

func fixupForward(args []check.FixupArg) (any, error) {
	if a := args[0]; a.Present && a.Const && a.Str != "" {
		if _, err := msgctx.ParseHop(a.Str); err != nil {
			return nil, check.ArgError(0, "%v", err)
		}
	}
	return nil, nil
}

func callForward(m *msgctx.Msg, a *modules.Args) int {
	sh, ok := m.Host.(msgctx.SIPHost)
	if !ok {
		if m.Host != nil {
			m.Host.Log(m, msgctx.LErr, "forward: no SIP runtime behind this script run")
		}
		return -1
	}
	if m.Req == nil {
		if m.Host != nil {
			m.Host.Log(m, msgctx.LErr, "forward: only requests can be forwarded")
		}
		return -1
	}
	dst := ""
	if a.Has(0) {
		dst = a.Str(0)
	}
	if err := sh.Forward(m, dst); err != nil {
		m.Host.Log(m, msgctx.LErr, "forward: "+err.Error())
		return -1
	}
	return 1
}
