// Package core holds the OpenSIPS core script functions that sipedge
// implements: xlog/log, message and branch flags, Request-URI rewriting,
// destination URI handling and force_rport. The module is named "core" and
// needs no loadmodule line.
package core

import (
	"strconv"
	"strings"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

// Name is the module name the core functions register under.
const Name = modules.CoreName

func init() {
	modules.Register(&modules.Info{
		Name: Name,
		Funcs: []*modules.Func{
			// logging (grammar keywords in OpenSIPS, functions here)
			{Name: "xlog", Args: []check.ArgSpec{{Kind: check.ArgStr}, {Kind: check.ArgStr, Optional: true}},
				Fixup: fixupXlog, Call: callXlog},
			{Name: "log", Args: []check.ArgSpec{{Kind: check.ArgStr, NoExpand: true}, {Kind: check.ArgStr, NoExpand: true, Optional: true}},
				Fixup: fixupLog, Call: callLog},

			// message flags
			{Name: "setflag", Args: flagArgs, Fixup: fixupMsgFlag, Call: callSetflag},
			{Name: "resetflag", Args: flagArgs, Fixup: fixupMsgFlag, Call: callResetflag},
			{Name: "isflagset", Args: flagArgs, Fixup: fixupMsgFlag, Call: callIsflagset},

			// branch flags
			{Name: "setbflag", Args: bflagArgs, Fixup: fixupBranchFlag, Call: callSetbflag},
			{Name: "resetbflag", Args: bflagArgs, Fixup: fixupBranchFlag, Call: callResetbflag},
			{Name: "isbflagset", Args: bflagArgs, Fixup: fixupBranchFlag, Call: callIsbflagset},

			// Request-URI rewriting
			{Name: "seturi", Args: strArg, Call: callSeturi},
			{Name: "sethost", Args: strArg, Call: callSethost},
			{Name: "sethostport", Args: strArg, Call: callSethostport},
			{Name: "setuser", Args: strArg, Call: callSetuser},
			{Name: "setuserpass", Args: strArg, Call: callSetuserpass},
			{Name: "setport", Args: strArg, Fixup: fixupPort, Call: callSetport},
			{Name: "prefix", Args: strArg, Call: callPrefix},
			{Name: "strip", Args: intArg, Fixup: fixupStripCount, Call: callStrip},
			{Name: "strip_tail", Args: intArg, Fixup: fixupStripCount, Call: callStripTail},

			// destination URI ($du)
			{Name: "setdsturi", Args: strArg, Fixup: fixupDstURI, Call: callSetdsturi},
			{Name: "resetdsturi", Call: callResetdsturi},
			{Name: "isdsturiset", Call: callIsdsturiset},

			// Via handling
			{Name: "force_rport", Call: callForceRport},

			// our own addresses
			{Name: "is_myself", Args: []check.ArgSpec{{Kind: check.ArgStr}, {Kind: check.ArgInt, Optional: true}},
				Fixup: fixupIsMyself, Call: callIsMyself},

			// variables and time
			{Name: "pv_printf", Args: []check.ArgSpec{{Kind: check.ArgVar, Writable: true}, {Kind: check.ArgStr}}, Call: callPvPrintf},
			{Name: "get_timestamp", Args: []check.ArgSpec{{Kind: check.ArgVar, Writable: true}, {Kind: check.ArgVar, Writable: true}},
				Fixup: fixupGetTimestamp, Call: callGetTimestamp},
		},
	})
}

var (
	strArg    = []check.ArgSpec{{Kind: check.ArgStr}}
	intArg    = []check.ArgSpec{{Kind: check.ArgInt}}
	flagArgs  = []check.ArgSpec{{Kind: check.ArgStr, NoExpand: true}}
	bflagArgs = []check.ArgSpec{{Kind: check.ArgStr, NoExpand: true}, {Kind: check.ArgInt, Optional: true}}
)

// constStr is the text of a constant argument. An integer literal given
// where a string is expected may arrive with only Int set.
func constStr(a check.FixupArg) (string, bool) {
	if !a.Present || !a.Const {
		return "", false
	}
	if a.Str == "" && a.Int != 0 {
		return strconv.Itoa(a.Int), true
	}
	return a.Str, true
}

// logf writes a log line through the message's Host, if it has one.
func logf(m *msgctx.Msg, level int, text string) {
	if m != nil && m.Host != nil {
		m.Host.Log(m, level, text)
	}
}

// State is the core's per-message state that has no field in msgctx.Msg.
type State struct {
	// ForceRport is set by force_rport(): the Via of the request gets an
	// rport parameter with the source port, as if the client had asked.
	ForceRport bool
}

// MsgState returns the core state of a message, creating it.
func MsgState(m *msgctx.Msg) *State {
	return m.ModData(Name, func() any { return &State{} }).(*State)
}

// ForceRport reports whether force_rport() was called for this message;
// the SIP runtime reads it when it builds the reply/forwarding Via.
func ForceRport(m *msgctx.Msg) bool {
	if s, ok := m.Mod[Name].(*State); ok {
		return s.ForceRport
	}
	return false
}

func callForceRport(m *msgctx.Msg, _ *modules.Args) int {
	MsgState(m).ForceRport = true
	return 1
}

func fixupIsMyself(args []check.FixupArg) (any, error) {
	if len(args) > 1 && args[1].Present && args[1].Const && (args[1].Int < 0 || args[1].Int > 65535) {
		return nil, check.ArgError(1, "port %d is out of range 0..65535", args[1].Int)
	}
	return nil, nil
}

// is_myself(host[, port]): host (and port; 0 or none = any) is one of the
// addresses sipedge listens on or advertises. It needs the SIP runtime.
func callIsMyself(m *msgctx.Msg, a *modules.Args) int {
	sh, ok := m.Host.(msgctx.SIPHost)
	if !ok {
		logf(m, msgctx.LErr, "is_myself: no SIP runtime behind this script run")
		return -1
	}
	port := 0
	if a.Has(1) {
		port = a.Int(1)
	}
	if sh.Myself(strings.Trim(strings.TrimSpace(a.Str(0)), "[]"), port) {
		return 1
	}
	return -1
}
