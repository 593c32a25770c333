// Package sl is OpenSIPS's stateless reply module: sl_send_reply() and
// sl_reply_error() answer the current request without a transaction. The
// reply itself (To-tag, Via copy, headers added by append_to_reply) is built
// and sent by the SIP runtime through msgctx.Host.Reply.
package sl

import (
	"fmt"
	"strings"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

func init() {
	modules.Register(&modules.Info{
		Name: "sl",
		Params: []modules.Param{
			// Accepted for compatibility; sipedge has no statistics yet.
			{Name: "enable_stats", Kind: modules.ParamInt, Default: value.I(1)},
		},
		Funcs: []*modules.Func{
			{
				Name:   "sl_send_reply",
				Args:   []check.ArgSpec{{Kind: check.ArgInt}, {Kind: check.ArgStr}},
				Routes: check.Routes(ast.RequestRoute, ast.ErrorRoute),
				Fixup:  fixupSendReply,
				Call:   callSendReply,
			},
			{
				Name:   "sl_reply_error",
				Routes: check.Routes(ast.RequestRoute),
				Call:   callReplyError,
			},
		},
	})
}

// ErrorReason is what sl_reply_error() sends: OpenSIPS's text for its
// default internal error (E_UNSPEC), signed by the sl module.
const ErrorReason = "I'm terribly sorry, server error occurred (1/SL)"

func validCode(code int) bool { return code >= 100 && code <= 699 }

func fixupSendReply(args []check.FixupArg) (any, error) {
	if a := args[0]; a.Present && a.Const && !validCode(a.Int) {
		return nil, check.ArgError(0, "reply code %d is not a SIP status code (100..699)", a.Int)
	}
	if a := args[1]; a.Present && a.Const && strings.ContainsAny(a.Str, "\r\n") {
		return nil, check.ArgError(1, "reason phrase %q must not contain line breaks", a.Str)
	}
	return nil, nil
}

func logf(m *msgctx.Msg, level int, text string) {
	if m.Host != nil {
		m.Host.Log(m, level, text)
	}
}

func send(m *msgctx.Msg, fname string, code int, reason string) int {
	if m.Req == nil {
		logf(m, msgctx.LErr, fname+": there is no request to reply to")
		return -1
	}
	if m.Req.IsAck() {
		// OpenSIPS never answers an ACK.
		logf(m, msgctx.LErr, fname+": cannot reply to an ACK")
		return -1
	}
	if !validCode(code) {
		logf(m, msgctx.LErr, fmt.Sprintf("%s: reply code %d is not a SIP status code (100..699)", fname, code))
		return -1
	}
	if m.Host == nil {
		return -1
	}
	if err := m.Host.Reply(m, code, reason); err != nil {
		logf(m, msgctx.LErr, fmt.Sprintf("%s: sending %d %s failed: %v", fname, code, reason, err))
		return -1
	}
	return 1
}

func callSendReply(m *msgctx.Msg, a *modules.Args) int {
	code, ok := a.Val(0).AsInt()
	if !ok {
		logf(m, msgctx.LErr, fmt.Sprintf("sl_send_reply: reply code %q is not a number", a.Str(0)))
		return -1
	}
	reason := strings.NewReplacer("\r", " ", "\n", " ").Replace(a.Str(1))
	return send(m, "sl_send_reply", code, reason)
}

// sl_reply_error(): sipedge keeps no "last internal error" per message, so
// the reply is always the one OpenSIPS sends for an unspecified error.
func callReplyError(m *msgctx.Msg, _ *modules.Args) int {
	return send(m, "sl_reply_error", 500, ErrorReason)
}
