// Package tm is OpenSIPS's transaction module: stateful relaying (t_relay)
// with serial forking from failure_route, stateful replies, and the routes a
// transaction runs for replies (t_on_reply), failures (t_on_failure) and
// outgoing branches (t_on_branch).
//
// The functions here only check arguments and arm routes; the transaction
// machinery (client/server transactions, timers, CANCEL, reply selection)
// is the SIP runtime's (runtime/sipstack), reached through msgctx.SIPHost.
// Timer modparams are read by the runtime from the script generation that
// created a transaction, so a reload changes them for new transactions only.
package tm

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "tm"

// Modparam defaults (OpenSIPS 3.6).
const (
	DefaultFrTimeout    = 30  // seconds without a final reply (no reply at all)
	DefaultFrInvTimeout = 120 // seconds for an INVITE after a provisional reply
)

var (
	reqFail       = check.Routes(ast.RequestRoute, ast.FailureRoute)
	armRoutes     = check.Routes(ast.RequestRoute, ast.BranchRoute, ast.FailureRoute, ast.OnReplyRoute, ast.LocalRoute)
	branchRoutes  = check.Routes(ast.RequestRoute, ast.BranchRoute, ast.FailureRoute, ast.OnReplyRoute)
	checkTransRts = check.Routes(ast.RequestRoute, ast.BranchRoute)
	wasCancelRts  = check.Routes(ast.RequestRoute, ast.BranchRoute, ast.FailureRoute, ast.OnReplyRoute)
)

func init() {
	intParam := func(name string, def int) modules.Param {
		return modules.Param{Name: name, Kind: modules.ParamInt, Default: value.I(def)}
	}
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			intParam("fr_timeout", DefaultFrTimeout),
			intParam("fr_inv_timeout", DefaultFrInvTimeout),
			intParam("auto_100trying", 1),
			intParam("restart_fr_on_each_reply", 1),
			intParam("disable_6xx_block", 0),
			// Unset by default: the transactions then follow RFC 3261's
			// 64*T1 (32 s) wait timers; when set, see Params.WtTimer.
			{Name: "wt_timer", Kind: modules.ParamInt},
			// Accepted for compatibility; the runtime's timers follow RFC 3261.
			intParam("delete_timer", 2),
			intParam("T1_timer", 500),
			intParam("T2_timer", 4000),
			intParam("ruri_matching", 1),
			intParam("via1_matching", 1),
			intParam("onreply_avp_mode", 0),
			intParam("enable_stats", 1),
			intParam("pass_provisional_replies", 0),
			intParam("syn_branch", 1),
			intParam("timer_partitions", 1),
		},
		Funcs: []*modules.Func{
			{Name: "t_relay", Args: []check.ArgSpec{{Kind: check.ArgStr, Optional: true}, {Kind: check.ArgStr, Optional: true}},
				Routes: reqFail, Fixup: fixupRelay, Call: callRelay},
			{Name: "t_reply", Args: []check.ArgSpec{{Kind: check.ArgInt}, {Kind: check.ArgStr}},
				Routes: reqFail, Fixup: fixupReply, Call: callReply},
			{Name: "t_newtran", Routes: check.Routes(ast.RequestRoute), Call: callNewtran},
			{Name: "t_check_trans", Routes: checkTransRts, Call: callCheckTrans},
			{Name: "t_on_failure", Args: []check.ArgSpec{{Kind: check.ArgRoute, Route: ast.FailureRoute}},
				Routes: armRoutes, Call: callOnFailure},
			{Name: "t_on_reply", Args: []check.ArgSpec{{Kind: check.ArgRoute, Route: ast.OnReplyRoute}},
				Routes: armRoutes, Call: callOnReply},
			{Name: "t_on_branch", Args: []check.ArgSpec{{Kind: check.ArgRoute, Route: ast.BranchRoute}},
				Routes: branchRoutes, Call: callOnBranch},
			{Name: "t_check_status", Args: []check.ArgSpec{{Kind: check.ArgRegex}},
				Routes: branchRoutes, Call: callCheckStatus},
			{Name: "t_was_cancelled", Routes: wasCancelRts, Call: callWasCancelled},
			{Name: "t_local_replied", Args: []check.ArgSpec{{Kind: check.ArgStr}},
				Routes: branchRoutes, Fixup: fixupLocalReplied, Call: callLocalReplied},
		},
		PVars: []*pvar.Spec{
			{Name: "T_reply_code", Get: getReplyCode},
			{Name: "T_branch_idx", Get: getBranchIdx},
			{Name: "T_id", Get: getID},
			{Name: "T_ruri", Get: getTRURI},
			{Name: "T_fr_timeout", Writable: true, Get: getFr(false), Set: setFr(false)},
			{Name: "T_fr_inv_timeout", Writable: true, Get: getFr(true), Set: setFr(true)},
		},
	})
}

// Params of a generation, with defaults when tm is not loaded.
type Params struct {
	FrTimeout, FrInvTimeout int // seconds
	Auto100                 bool
	RestartFr               bool
	Disable6xxBlock         bool
	// WtTimer is wt_timer in seconds, 0 when the script does not set it:
	// how long a completed transaction stays to absorb retransmissions
	// (RFC 3261 timers J, L, M and D, 32 s each by default; OpenSIPS and
	// Kamailio use 5 s). The runtime applies it process-wide at start.
	WtTimer int
}

// ReadParams extracts the timer settings from a script's tm modparams
// (nil when the script does not load tm).
func ReadParams(p modules.Params) Params {
	out := Params{FrTimeout: DefaultFrTimeout, FrInvTimeout: DefaultFrInvTimeout, Auto100: true, RestartFr: true}
	if p == nil {
		return out
	}
	if v := p.Int("fr_timeout"); v > 0 {
		out.FrTimeout = v
	}
	if v := p.Int("fr_inv_timeout"); v > 0 {
		out.FrInvTimeout = v
	}
	out.Auto100 = p.Int("auto_100trying") != 0
	out.RestartFr = p.Int("restart_fr_on_each_reply") != 0
	out.Disable6xxBlock = p.Int("disable_6xx_block") != 0
	if v := p.Int("wt_timer"); v > 0 {
		out.WtTimer = v
	}
	return out
}

func host(m *msgctx.Msg, fname string) msgctx.SIPHost {
	if sh, ok := m.Host.(msgctx.SIPHost); ok {
		return sh
	}
	logf(m, msgctx.LErr, fname+": no SIP runtime behind this script run")
	return nil
}

func logf(m *msgctx.Msg, level int, text string) {
	if m.Host != nil {
		m.Host.Log(m, level, text)
	}
}

// relayFix is t_relay's fixed-up constant arguments.
type relayFix struct {
	flags    msgctx.RelayFlags
	flagsSet bool   // flags were a constant
	proxy    string // constant outbound proxy, or "" (then read at run time)
}

// ParseRelayFlags reads t_relay's first argument: comma-separated names
// (no-auto-477, no-dns-failover, pass-reason-hdr, allow-no-cancel) or the
// 1.x/2.x integer bitmask (0x02, 0x04, 0x08, 0x10).
func ParseRelayFlags(s string) (msgctx.RelayFlags, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(s, 0, 32); err == nil {
		var f msgctx.RelayFlags
		if n&0x02 != 0 {
			f |= msgctx.RelayNoAuto477
		}
		if n&0x04 != 0 {
			f |= msgctx.RelayNoDNSFailover
		}
		if n&0x08 != 0 {
			f |= msgctx.RelayPassReason
		}
		if n&0x10 != 0 {
			f |= msgctx.RelayAllowNoCancel
		}
		return f, nil
	}
	var f msgctx.RelayFlags
	for _, name := range strings.Split(s, ",") {
		switch strings.TrimSpace(name) {
		case "no-auto-477":
			f |= msgctx.RelayNoAuto477
		case "no-dns-failover":
			f |= msgctx.RelayNoDNSFailover
		case "pass-reason-hdr":
			f |= msgctx.RelayPassReason
		case "allow-no-cancel":
			f |= msgctx.RelayAllowNoCancel
		case "":
		default:
			return 0, fmt.Errorf("unknown t_relay flag %q (want no-auto-477, no-dns-failover, pass-reason-hdr or allow-no-cancel)", strings.TrimSpace(name))
		}
	}
	return f, nil
}

// looksLikeDest tells an old-style t_relay("udp:host:port") destination
// from a flags string.
func looksLikeDest(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, p := range []string{"udp:", "tcp:", "tls:", "ws:", "wss:", "sctp:", "sip:", "sips:"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func fixupRelay(args []check.FixupArg) (any, error) {
	fx := &relayFix{}
	if a := args[0]; a.Present && a.Const {
		if looksLikeDest(a.Str) {
			if _, err := msgctx.ParseHop(a.Str); err != nil {
				return nil, check.ArgError(0, "%v", err)
			}
			fx.proxy, fx.flagsSet = a.Str, true
		} else {
			s := a.Str
			if s == "" && a.Int != 0 {
				s = strconv.Itoa(a.Int)
			}
			f, err := ParseRelayFlags(s)
			if err != nil {
				return nil, check.ArgError(0, "%v", err)
			}
			fx.flags, fx.flagsSet = f, true
		}
	} else if !a.Present {
		fx.flagsSet = true
	}
	if len(args) > 1 {
		if a := args[1]; a.Present && a.Const {
			if _, err := msgctx.ParseHop(a.Str); err != nil {
				return nil, check.ArgError(1, "%v", err)
			}
			fx.proxy = a.Str
		}
	}
	return fx, nil
}

func callRelay(m *msgctx.Msg, a *modules.Args) int {
	sh := host(m, "t_relay")
	if sh == nil {
		return -1
	}
	fx, _ := a.Fix.(*relayFix)
	if fx == nil {
		fx = &relayFix{flagsSet: true}
	}
	flags, proxy := fx.flags, fx.proxy
	if !fx.flagsSet && a.Has(0) {
		s := a.Str(0)
		if looksLikeDest(s) {
			proxy = s
		} else {
			f, err := ParseRelayFlags(s)
			if err != nil {
				logf(m, msgctx.LErr, "t_relay: "+err.Error())
				return -1
			}
			flags = f
		}
	}
	if a.Has(1) && len(a.Vals) > 1 {
		if s := a.Str(1); s != "" {
			proxy = s
		}
	}
	return sh.Relay(m, proxy, flags)
}

func fixupReply(args []check.FixupArg) (any, error) {
	if a := args[0]; a.Present && a.Const && (a.Int < 100 || a.Int > 699) {
		return nil, check.ArgError(0, "reply code %d is not a SIP status code (100..699)", a.Int)
	}
	if a := args[1]; a.Present && a.Const && strings.ContainsAny(a.Str, "\r\n") {
		return nil, check.ArgError(1, "reason phrase %q must not contain line breaks", a.Str)
	}
	return nil, nil
}

func callReply(m *msgctx.Msg, a *modules.Args) int {
	code := a.Int(0)
	if code < 100 || code > 699 {
		logf(m, msgctx.LErr, fmt.Sprintf("t_reply: reply code %d is not a SIP status code (100..699)", code))
		return -1
	}
	if m.Req == nil || m.Req.IsAck() {
		logf(m, msgctx.LErr, "t_reply: no request to reply to")
		return -1
	}
	sh := host(m, "t_reply")
	if sh == nil {
		return -1
	}
	return sh.TransReply(m, code, a.Str(1))
}

func callNewtran(m *msgctx.Msg, _ *modules.Args) int {
	sh := host(m, "t_newtran")
	if sh == nil {
		return -1
	}
	return sh.NewTransaction(m)
}

func callCheckTrans(m *msgctx.Msg, _ *modules.Args) int {
	sh := host(m, "t_check_trans")
	if sh == nil {
		return -1
	}
	return sh.CheckTransaction(m)
}

func callOnFailure(m *msgctx.Msg, a *modules.Args) int {
	m.OnFailure = a.Int(0) + 1
	return 1
}

func callOnReply(m *msgctx.Msg, a *modules.Args) int {
	m.OnReply = a.Int(0) + 1
	return 1
}

func callOnBranch(m *msgctx.Msg, a *modules.Args) int {
	m.OnBranch = a.Int(0) + 1
	return 1
}

// statusCode is the code t_check_status matches: the reply being processed
// in onreply_route, the winning reply in failure_route, the last stateful
// reply sent in request route.
func statusCode(m *msgctx.Msg) int {
	if m.Kind == ast.OnReplyRoute && m.Resp != nil {
		return m.Resp.StatusCode
	}
	return m.T.Code
}

func callCheckStatus(m *msgctx.Msg, a *modules.Args) int {
	code := statusCode(m)
	if code == 0 {
		return -1
	}
	if a.Regex(0).MatchString(strconv.Itoa(code)) {
		return 1
	}
	return -1
}

func callWasCancelled(m *msgctx.Msg, _ *modules.Args) int {
	if m.T.Cancelled {
		return 1
	}
	return -1
}

func fixupLocalReplied(args []check.FixupArg) (any, error) {
	if a := args[0]; a.Present && a.Const {
		switch a.Str {
		case "all", "last", "branch":
		default:
			return nil, check.ArgError(0, "t_local_replied() takes \"all\", \"last\" or \"branch\", not %q", a.Str)
		}
	}
	return nil, nil
}

func callLocalReplied(m *msgctx.Msg, a *modules.Args) int {
	var ok bool
	switch a.Str(0) {
	case "all":
		ok = m.T.AllLocal
	case "last", "branch":
		ok = m.T.LastLocal
	default:
		logf(m, msgctx.LErr, "t_local_replied: unknown parameter "+a.Str(0))
		return -1
	}
	if ok {
		return 1
	}
	return -1
}

// ---- pseudo-variables ----

func getReplyCode(m *msgctx.Msg, _ any, _ pvar.Index) value.Value {
	return value.I(statusCode(m))
}

func getBranchIdx(m *msgctx.Msg, _ any, _ pvar.Index) value.Value {
	if m.T.Branch == 0 {
		return value.Null
	}
	return value.I(m.T.Branch - 1)
}

func getID(m *msgctx.Msg, _ any, _ pvar.Index) value.Value {
	if m.T.ID == "" {
		return value.Null
	}
	return value.S(m.T.ID)
}

func getTRURI(m *msgctx.Msg, _ any, _ pvar.Index) value.Value {
	if m.T.RURI != "" {
		return value.S(m.T.RURI)
	}
	if m.Req != nil {
		return value.S(m.Req.Recipient.String())
	}
	return value.Null
}

func getFr(inv bool) func(m *msgctx.Msg, _ any, _ pvar.Index) value.Value {
	return func(m *msgctx.Msg, _ any, _ pvar.Index) value.Value {
		v := m.T.FrTimeout
		if inv {
			v = m.T.FrInvTimeout
		}
		if v == 0 {
			if inv {
				v = DefaultFrInvTimeout
			} else {
				v = DefaultFrTimeout
			}
		}
		return value.I(v)
	}
}

func setFr(inv bool) func(m *msgctx.Msg, _ any, _ pvar.Index, _ string, v value.Value) error {
	return func(m *msgctx.Msg, _ any, _ pvar.Index, _ string, v value.Value) error {
		n := 0
		if !v.IsNull() {
			var ok bool
			if n, ok = v.AsInt(); !ok || n < 0 {
				return fmt.Errorf("a timeout must be a positive number of seconds, not %q", v.AsString())
			}
		}
		if inv {
			m.T.FrInvTimeout = n
		} else {
			m.T.FrTimeout = n
		}
		return nil
	}
}
