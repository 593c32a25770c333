package sipmsgops

import (
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

// headerTextFix is the pre-parsed header text of a constant argument.
type headerTextFix struct{ hs []sip.Header }

func fixupHeaderText(args []check.FixupArg) (any, error) {
	s, ok := constStr(args[0])
	if !ok {
		return nil, nil
	}
	hs, err := parseHeaders(s)
	if err != nil {
		return nil, check.ArgError(0, "%v", err)
	}
	return &headerTextFix{hs}, nil
}

// headersOf returns the headers of argument 0: a fresh copy of the
// pre-parsed constant (headers are pointers and must not be shared between
// messages) or the run-time text parsed now.
func headersOf(a *modules.Args) ([]sip.Header, error) {
	if f, ok := a.Fix.(*headerTextFix); ok {
		out := make([]sip.Header, len(f.hs))
		for i, h := range f.hs {
			out[i] = sip.HeaderClone(h)
		}
		return out, nil
	}
	return parseHeaders(a.Str(0))
}

func callAppendToReply(m *msgctx.Msg, a *modules.Args) int {
	hs, err := headersOf(a)
	if err != nil {
		return errf(m, "append_to_reply", "%v", err)
	}
	m.ReplyHeaders = append(m.ReplyHeaders, hs...)
	return 1
}

// append_body_to_reply(txt): a later call replaces the body set by an
// earlier one; no Content-Type is added (use append_to_reply for it).
func callAppendBodyToReply(m *msgctx.Msg, a *modules.Args) int {
	m.ReplyBody = []byte(a.Str(0))
	return 1
}

// now is replaced by tests.
var now = time.Now

func callAppendTime(m *msgctx.Msg, _ *modules.Args) int {
	m.ReplyHeaders = append(m.ReplyHeaders, sip.NewHeader("Date", now().UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")))
	return 1
}

// addHeaderFix is append_hf/insert_hf's fixed-up arguments.
type addHeaderFix struct {
	text *headerTextFix
}

func fixupAddHeader(args []check.FixupArg) (any, error) {
	fix := &addHeaderFix{}
	if s, ok := constStr(args[0]); ok {
		hs, err := parseHeaders(s)
		if err != nil {
			return nil, check.ArgError(0, "%v", err)
		}
		fix.text = &headerTextFix{hs}
	}
	if len(args) > 1 {
		if s, ok := constStr(args[1]); ok {
			if err := checkHeaderName(s); err != nil {
				return nil, check.ArgError(1, "%v", err)
			}
		}
	}
	return fix, nil
}

func addHeaders(m *msgctx.Msg, a *modules.Args, fname string, insert bool) int {
	msg := target(m)
	if msg == nil {
		return errf(m, fname, "there is no SIP message in this route")
	}
	b := *a
	if f, ok := a.Fix.(*addHeaderFix); ok && f.text != nil {
		b.Fix = f.text
	} else {
		b.Fix = nil
	}
	hs, err := headersOf(&b)
	if err != nil {
		return errf(m, fname, "%v", err)
	}
	pos := -1
	if a.Has(1) {
		pos = findHeader(msg, a.Str(1))
	}
	switch {
	case insert && pos >= 0: // before the anchor
		insertAt(msg, pos, hs)
	case insert: // before the first header
		msg.PrependHeader(hs...)
	case pos >= 0: // after the anchor
		insertAt(msg, pos+1, hs)
	default: // after the last header
		for _, h := range hs {
			msg.AppendHeader(h)
		}
	}
	return 1
}

func callAppendHf(m *msgctx.Msg, a *modules.Args) int { return addHeaders(m, a, "append_hf", false) }
func callInsertHf(m *msgctx.Msg, a *modules.Args) int { return addHeaders(m, a, "insert_hf", true) }

func fixupHeaderName(args []check.FixupArg) (any, error) {
	if s, ok := constStr(args[0]); ok {
		if err := checkHeaderName(s); err != nil {
			return nil, check.ArgError(0, "%v", err)
		}
	}
	return nil, nil
}

func callRemoveHf(m *msgctx.Msg, a *modules.Args) int {
	msg := target(m)
	if msg == nil {
		return -1
	}
	name := a.Str(0)
	if removeMatching(msg, func(n string) bool { return sameHeader(n, name) }) == 0 {
		return -1
	}
	return 1
}

func callIsPresentHf(m *msgctx.Msg, a *modules.Args) int {
	msg := target(m)
	if msg == nil || findHeader(msg, a.Str(0)) < 0 {
		return -1
	}
	return 1
}

func fixupNameRegex(args []check.FixupArg) (any, error) {
	rx, err := icase(args[0])
	if err != nil {
		return nil, check.ArgError(0, "%v", err)
	}
	return rx, nil
}

func callRemoveHfRe(m *msgctx.Msg, a *modules.Args) int {
	msg := target(m)
	if msg == nil {
		return -1
	}
	rx, _ := a.Fix.(*regexp.Regexp)
	if rx == nil {
		rx = a.Regex(0)
	}
	if removeMatching(msg, rx.MatchString) == 0 {
		return -1
	}
	return 1
}

// globMatch is fnmatch(3) with FNM_CASEFOLD, as OpenSIPS uses it.
func globMatch(pattern, name string) bool {
	ok, err := path.Match(strings.ToLower(pattern), strings.ToLower(name))
	return err == nil && ok
}

func fixupGlob(args []check.FixupArg) (any, error) {
	if s, ok := constStr(args[0]); ok {
		if _, err := path.Match(s, ""); err != nil {
			return nil, check.ArgError(0, "bad glob pattern %q: %v", s, err)
		}
	}
	return nil, nil
}

func callRemoveHfGlob(m *msgctx.Msg, a *modules.Args) int {
	msg := target(m)
	if msg == nil {
		return -1
	}
	pat := a.Str(0)
	if removeMatching(msg, func(n string) bool { return globMatch(pat, n) }) == 0 {
		return -1
	}
	return 1
}

func fixupGlobValues(args []check.FixupArg) (any, error) {
	if _, err := fixupGlob(args); err != nil {
		return nil, err
	}
	for i := 1; i < 3 && i < len(args); i++ {
		if p := args[i].PVar; p != "" && p != "avp" {
			return nil, check.ArgError(i, "get_glob_headers_values() needs an AVP here, not $%s", p)
		}
	}
	return nil, nil
}

// get_glob_headers_values(glob, $avp(names), $avp(values)) adds the name
// and the value of each matching header to the two AVPs.
func callGetGlobHeadersValues(m *msgctx.Msg, a *modules.Args) int {
	msg := target(m)
	if msg == nil {
		return -1
	}
	pat, n := a.Str(0), 0
	for _, h := range msg.Headers() {
		if !globMatch(pat, h.Name()) {
			continue
		}
		if err := a.Ref(1).Set(m, "=", value.S(h.Name())); err != nil {
			return errf(m, "get_glob_headers_values", "%v", err)
		}
		if err := a.Ref(2).Set(m, "=", value.S(h.Value())); err != nil {
			return errf(m, "get_glob_headers_values", "%v", err)
		}
		n++
	}
	if n == 0 {
		return -1
	}
	return 1
}
