// Package textops is OpenSIPS's textops module: regular-expression search
// and replace over the text of the SIP message, and sed-like subst().
//
// sipgo keeps a message parsed, not as text, so an edit serializes the
// message, changes the text, parses the header section back and copies the
// headers and body into the message (the start line is never edited, as in
// OpenSIPS). That costs a serialization and a parse per edit; searches cost
// a serialization.
package textops

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

var (
	rAll = check.Routes(ast.RequestRoute, ast.OnReplyRoute, ast.FailureRoute, ast.BranchRoute, ast.LocalRoute)
	rURI = check.Routes(ast.RequestRoute, ast.OnReplyRoute, ast.FailureRoute, ast.BranchRoute)
	re1  = []check.ArgSpec{{Kind: check.ArgRegex}}
	re2  = []check.ArgSpec{{Kind: check.ArgRegex}, {Kind: check.ArgStr}}
	sub  = []check.ArgSpec{{Kind: check.ArgStr, NoExpand: true}}
)

func init() {
	modules.Register(&modules.Info{
		Name: "textops",
		Funcs: []*modules.Func{
			{Name: "search", Args: re1, Routes: rAll, Fixup: fixupRegex, Call: callSearch},
			{Name: "search_body", Args: re1, Routes: rAll, Fixup: fixupRegex, Call: callSearchBody},
			{Name: "search_append", Args: re2, Routes: rAll, Fixup: fixupRegex, Call: callSearchAppend},
			{Name: "search_append_body", Args: re2, Routes: rAll, Fixup: fixupRegex, Call: callSearchAppendBody},
			{Name: "replace", Args: re2, Routes: rAll, Fixup: fixupRegex, Call: callReplace},
			{Name: "replace_body", Args: re2, Routes: rAll, Fixup: fixupRegex, Call: callReplaceBody},
			{Name: "replace_all", Args: re2, Routes: rAll, Fixup: fixupRegex, Call: callReplaceAll},
			{Name: "replace_body_all", Args: re2, Routes: rAll, Fixup: fixupRegex, Call: callReplaceBodyAll},
			{Name: "replace_body_atonce", Args: re2, Routes: rAll, Fixup: fixupRegex, Call: callReplaceBodyAll},
			{Name: "subst", Args: sub, Routes: rAll, Fixup: fixupSubst, Call: callSubst},
			{Name: "subst_uri", Args: sub, Routes: rURI, Fixup: fixupSubst, Call: callSubstURI},
			{Name: "subst_user", Args: sub, Routes: rURI, Fixup: fixupSubst, Call: callSubstUser},
			{Name: "subst_body", Args: sub, Routes: rAll, Fixup: fixupSubst, Call: callSubstBody},
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

// fixupRegex recompiles the regex argument the way OpenSIPS 3 compiles
// regex parameters: REG_EXTENDED|REG_ICASE|REG_NEWLINE, i.e. case-blind,
// with ^ and $ at line ends.
func fixupRegex(args []check.FixupArg) (any, error) {
	src := args[0].Str
	if args[0].Regex != nil {
		src = args[0].Regex.String()
	}
	rx, err := regexp.Compile("(?im)" + src)
	if err != nil {
		return nil, check.ArgError(0, "bad regular expression %q: %v", src, err)
	}
	return rx, nil
}

func regexOf(a *modules.Args) *regexp.Regexp {
	if rx, ok := a.Fix.(*regexp.Regexp); ok {
		return rx
	}
	return a.Regex(0)
}

// textMsg is what the text functions need of a request or a reply.
type textMsg interface {
	String() string
	Headers() []sip.Header
	AppendHeader(sip.Header)
	RemoveHeader(name string) bool
	Body() []byte
	SetBody([]byte)
}

func target(m *msgctx.Msg) textMsg {
	if m.Req != nil {
		return m.Req
	}
	if m.Resp != nil {
		return m.Resp
	}
	return nil
}

// splitText returns the start line (with its CRLF) and the rest (headers,
// the empty line and the body) of a message's text.
func splitText(msg textMsg) (first, rest string) {
	full := msg.String()
	if i := strings.Index(full, "\r\n"); i >= 0 {
		return full[:i+2], full[i+2:]
	}
	return full, ""
}

var parser = sip.NewParser()

// setText replaces the headers and body of msg with those of first+rest.
// The Content-Length is set to the new body's length.
func setText(msg textMsg, first, rest string) error {
	text := first + rest
	i := strings.Index(text, "\r\n\r\n")
	if i < 0 {
		return fmt.Errorf("the edited message has no empty line after its headers")
	}
	head, body := text[:i+4], text[i+4:]
	parsed, _, err := parser.ParseHeaders([]byte(head), false)
	if err != nil {
		return fmt.Errorf("the edited message does not parse: %v", err)
	}
	hm, ok := parsed.(interface{ Headers() []sip.Header })
	if !ok {
		return fmt.Errorf("the edited message does not parse")
	}
	for len(msg.Headers()) > 0 {
		msg.RemoveHeader(msg.Headers()[0].Name())
	}
	for _, h := range hm.Headers() {
		msg.AppendHeader(h)
	}
	setBody(msg, body)
	return nil
}

func setBody(msg textMsg, body string) {
	if body == "" {
		msg.SetBody(nil)
		return
	}
	msg.SetBody([]byte(body))
}

// editRest applies edit to the text after the start line.
func editRest(m *msgctx.Msg, fname string, edit func(rest string) (string, int, error)) int {
	msg := target(m)
	if msg == nil {
		return errf(m, fname, "there is no SIP message in this route")
	}
	first, rest := splitText(msg)
	out, n, err := edit(rest)
	if err != nil {
		return errf(m, fname, "%v", err)
	}
	if n == 0 {
		return -1
	}
	if err := setText(msg, first, out); err != nil {
		return errf(m, fname, "%v", err)
	}
	return 1
}

// editBody applies edit to the body; an empty body is a failure.
func editBody(m *msgctx.Msg, fname string, edit func(body string) (string, int, error)) int {
	msg := target(m)
	if msg == nil {
		return errf(m, fname, "there is no SIP message in this route")
	}
	body := string(msg.Body())
	if body == "" {
		return -1
	}
	out, n, err := edit(body)
	if err != nil {
		return errf(m, fname, "%v", err)
	}
	if n == 0 {
		return -1
	}
	setBody(msg, out)
	return 1
}

// search(re) looks at the whole message, start line included.
func callSearch(m *msgctx.Msg, a *modules.Args) int {
	msg := target(m)
	if msg == nil || !regexOf(a).MatchString(msg.String()) {
		return -1
	}
	return 1
}

func callSearchBody(m *msgctx.Msg, a *modules.Args) int {
	msg := target(m)
	if msg == nil || len(msg.Body()) == 0 || !regexOf(a).Match(msg.Body()) {
		return -1
	}
	return 1
}

func appendAfterFirst(rx *regexp.Regexp, txt string) func(string) (string, int, error) {
	return func(in string) (string, int, error) {
		loc := rx.FindStringIndex(in)
		if loc == nil {
			return in, 0, nil
		}
		return in[:loc[1]] + txt + in[loc[1]:], 1, nil
	}
}

func replaceFirst(rx *regexp.Regexp, txt string) func(string) (string, int, error) {
	return func(in string) (string, int, error) {
		loc := rx.FindStringIndex(in)
		if loc == nil {
			return in, 0, nil
		}
		return in[:loc[0]] + txt + in[loc[1]:], 1, nil
	}
}

func replaceEvery(rx *regexp.Regexp, txt string) func(string) (string, int, error) {
	return func(in string) (string, int, error) {
		locs := rx.FindAllStringIndex(in, -1)
		var b strings.Builder
		last := 0
		for _, loc := range locs {
			if loc[0] == loc[1] {
				return in, 0, errEmptyMatch
			}
			b.WriteString(in[last:loc[0]])
			b.WriteString(txt)
			last = loc[1]
		}
		b.WriteString(in[last:])
		return b.String(), len(locs), nil
	}
}

func callSearchAppend(m *msgctx.Msg, a *modules.Args) int {
	return editRest(m, "search_append", appendAfterFirst(regexOf(a), a.Str(1)))
}

func callSearchAppendBody(m *msgctx.Msg, a *modules.Args) int {
	return editBody(m, "search_append_body", appendAfterFirst(regexOf(a), a.Str(1)))
}

func callReplace(m *msgctx.Msg, a *modules.Args) int {
	return editRest(m, "replace", replaceFirst(regexOf(a), a.Str(1)))
}

func callReplaceBody(m *msgctx.Msg, a *modules.Args) int {
	return editBody(m, "replace_body", replaceFirst(regexOf(a), a.Str(1)))
}

func callReplaceAll(m *msgctx.Msg, a *modules.Args) int {
	return editRest(m, "replace_all", replaceEvery(regexOf(a), a.Str(1)))
}

func callReplaceBodyAll(m *msgctx.Msg, a *modules.Args) int {
	return editBody(m, "replace_body_all", replaceEvery(regexOf(a), a.Str(1)))
}

// substCache keeps expressions that were not constant at load time.
var substCache sync.Map // string -> *substExpr

func fixupSubst(args []check.FixupArg) (any, error) {
	if !args[0].Present || args[0].Str == "" {
		return nil, nil
	}
	e, err := parseSubst(args[0].Str)
	if err != nil {
		return nil, check.ArgError(0, "%v", err)
	}
	return e, nil
}

func substOf(m *msgctx.Msg, a *modules.Args, fname string) (*substExpr, bool) {
	if e, ok := a.Fix.(*substExpr); ok {
		return e, true
	}
	s := a.Str(0)
	if e, ok := substCache.Load(s); ok {
		return e.(*substExpr), true
	}
	e, err := parseSubst(s)
	if err != nil {
		errf(m, fname, "%v", err)
		return nil, false
	}
	substCache.Store(s, e)
	return e, true
}

func substEdit(m *msgctx.Msg, e *substExpr) func(string) (string, int, error) {
	return func(in string) (string, int, error) { return e.apply(m, in) }
}

func callSubst(m *msgctx.Msg, a *modules.Args) int {
	e, ok := substOf(m, a, "subst")
	if !ok {
		return -1
	}
	return editRest(m, "subst", substEdit(m, e))
}

func callSubstBody(m *msgctx.Msg, a *modules.Args) int {
	e, ok := substOf(m, a, "subst_body")
	if !ok {
		return -1
	}
	return editBody(m, "subst_body", substEdit(m, e))
}

// subst_uri runs the expression on the Request-URI text; the result must
// parse as a URI.
func callSubstURI(m *msgctx.Msg, a *modules.Args) int {
	e, ok := substOf(m, a, "subst_uri")
	if !ok {
		return -1
	}
	if m.Req == nil {
		return errf(m, "subst_uri", "there is no request (and no Request-URI) in this route")
	}
	out, n, err := e.apply(m, m.Req.Recipient.String())
	if err != nil {
		return errf(m, "subst_uri", "%v", err)
	}
	if n == 0 {
		return -1
	}
	var u sip.Uri
	if err := sip.ParseUri(out, &u); err != nil {
		return errf(m, "subst_uri", "the result %q is not a URI: %v", out, err)
	}
	m.Req.Recipient = u
	return 1
}

// subst_user runs the expression on the user part of the Request-URI (""
// when it has none) and sets the result as the new user.
func callSubstUser(m *msgctx.Msg, a *modules.Args) int {
	e, ok := substOf(m, a, "subst_user")
	if !ok {
		return -1
	}
	if m.Req == nil {
		return errf(m, "subst_user", "there is no request (and no Request-URI) in this route")
	}
	u := m.Req.Recipient.Clone()
	user, ok := uriUser(u)
	if !ok {
		return errf(m, "subst_user", "a %s: Request-URI has no user part", u.Scheme)
	}
	out, n, err := e.apply(m, user)
	if err != nil {
		return errf(m, "subst_user", "%v", err)
	}
	if n == 0 {
		return -1
	}
	if err := setURIUser(u, out); err != nil {
		return errf(m, "subst_user", "%v", err)
	}
	m.Req.Recipient = *u
	return 1
}

func isTel(u *sip.Uri) bool {
	s := strings.ToLower(u.Scheme)
	return u.Raw() != "" && (s == "tel" || s == "tels")
}

func uriUser(u *sip.Uri) (string, bool) {
	switch {
	case u.Raw() == "":
		return u.User, true
	case isTel(u):
		user, _, _ := strings.Cut(u.Raw(), ";")
		return user, true
	}
	return "", false
}

func setURIUser(u *sip.Uri, user string) error {
	if !isTel(u) {
		u.User = user
		return nil
	}
	_, params, found := strings.Cut(u.Raw(), ";")
	s := u.Scheme + ":" + user
	if found {
		s += ";" + params
	}
	var nu sip.Uri
	if err := sip.ParseUri(s, &nu); err != nil {
		return err
	}
	*u = nu
	return nil
}
