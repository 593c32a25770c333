// Package sipmsgops is OpenSIPS's sipmsgops module: SIP-aware header, body,
// method and Request-URI checks and edits on the message a route runs on.
package sipmsgops

import (
	"fmt"
	"regexp"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

// Route masks from OpenSIPS 3.6's export table.
var (
	rReqRpl   = check.Routes(ast.RequestRoute, ast.OnReplyRoute, ast.FailureRoute, ast.BranchRoute, ast.LocalRoute)
	rToReply  = check.Routes(ast.RequestRoute, ast.FailureRoute, ast.BranchRoute, ast.ErrorRoute)
	rRURI     = check.Routes(ast.RequestRoute, ast.FailureRoute, ast.BranchRoute, ast.LocalRoute)
	rE164     = check.Routes(ast.RequestRoute, ast.FailureRoute, ast.LocalRoute)
	rTime     = check.Routes(ast.RequestRoute, ast.FailureRoute, ast.BranchRoute, ast.LocalRoute)
	rOnReply  = check.Routes(ast.OnReplyRoute)
	str1      = []check.ArgSpec{{Kind: check.ArgStr}}
	strOpt    = []check.ArgSpec{{Kind: check.ArgStr, Optional: true}}
	strStrOpt = []check.ArgSpec{{Kind: check.ArgStr}, {Kind: check.ArgStr, Optional: true}}
)

func init() {
	modules.Register(&modules.Info{
		Name: "sipmsgops",
		Funcs: []*modules.Func{
			{Name: "append_to_reply", Args: str1, Routes: rToReply, Fixup: fixupHeaderText, Call: callAppendToReply},
			{Name: "append_body_to_reply", Args: str1, Routes: rToReply, Call: callAppendBodyToReply},
			{Name: "append_time", Routes: rTime, Call: callAppendTime},
			{Name: "append_hf", Args: strStrOpt, Routes: rReqRpl, Fixup: fixupAddHeader, Call: callAppendHf},
			{Name: "insert_hf", Args: strStrOpt, Routes: rReqRpl, Fixup: fixupAddHeader, Call: callInsertHf},
			{Name: "remove_hf", Args: str1, Routes: rReqRpl, Fixup: fixupHeaderName, Call: callRemoveHf},
			{Name: "remove_hf_re", Args: []check.ArgSpec{{Kind: check.ArgRegex}}, Routes: rReqRpl, Fixup: fixupNameRegex, Call: callRemoveHfRe},
			{Name: "remove_hf_glob", Args: str1, Routes: rReqRpl, Fixup: fixupGlob, Call: callRemoveHfGlob},
			{Name: "is_present_hf", Args: str1, Routes: rReqRpl, Fixup: fixupHeaderName, Call: callIsPresentHf},
			{Name: "get_glob_headers_values", Args: []check.ArgSpec{{Kind: check.ArgStr}, {Kind: check.ArgVar, Writable: true}, {Kind: check.ArgVar, Writable: true}},
				Routes: rReqRpl, Fixup: fixupGlobValues, Call: callGetGlobHeadersValues},
			{Name: "is_method", Args: str1, Routes: rReqRpl, Fixup: fixupMethod, Call: callIsMethod},
			{Name: "has_totag", Routes: rReqRpl, Call: callHasTotag},
			{Name: "has_body", Args: strOpt, Routes: rReqRpl, Fixup: fixupMime, Call: callHasBody},
			{Name: "has_body_part", Args: strOpt, Routes: rReqRpl, Fixup: fixupMime, Call: callHasBody},
			{Name: "is_privacy", Args: str1, Routes: rReqRpl, Fixup: fixupPrivacy, Call: callIsPrivacy},
			{Name: "ruri_has_param", Args: strStrOpt, Routes: rRURI, Call: callRuriHasParam},
			{Name: "ruri_add_param", Args: str1, Routes: rRURI, Call: callRuriAddParam},
			{Name: "ruri_del_param", Args: str1, Routes: rRURI, Call: callRuriDelParam},
			{Name: "ruri_tel2sip", Routes: rRURI, Call: callRuriTel2sip},
			{Name: "is_uri_user_e164", Args: str1, Routes: rE164, Call: callIsURIUserE164},
			{Name: "change_reply_status", Args: []check.ArgSpec{{Kind: check.ArgInt}, {Kind: check.ArgStr}},
				Routes: rOnReply, Fixup: fixupReplyStatus, Call: callChangeReplyStatus},
		},
	})
}

func logf(m *msgctx.Msg, level int, text string) {
	if m.Host != nil {
		m.Host.Log(m, level, text)
	}
}

func errf(m *msgctx.Msg, fname, format string, args ...any) int {
	logf(m, msgctx.LErr, fname+": "+fmt.Sprintf(format, args...))
	return -1
}

// constStr is the text of a constant argument.
func constStr(a check.FixupArg) (string, bool) {
	if !a.Present || !a.Const {
		return "", false
	}
	return a.Str, true
}

// icase recompiles a regex argument the way OpenSIPS 3 compiles its regex
// parameters (REG_EXTENDED|REG_ICASE|REG_NEWLINE).
func icase(a check.FixupArg) (*regexp.Regexp, error) {
	src := a.Str
	if a.Regex != nil {
		src = a.Regex.String()
	}
	return regexp.Compile("(?im)" + src)
}
