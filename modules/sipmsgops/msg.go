package sipmsgops

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"strings"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

// knownMethods are the methods OpenSIPS has an id for; only these may appear
// in an is_method() list.
var knownMethods = map[string]bool{
	"INVITE": true, "CANCEL": true, "ACK": true, "BYE": true, "INFO": true,
	"OPTIONS": true, "UPDATE": true, "REGISTER": true, "MESSAGE": true,
	"SUBSCRIBE": true, "NOTIFY": true, "PRACK": true, "REFER": true, "PUBLISH": true,
}

// methodSet is is_method()'s parsed argument: upper-case method names.
type methodSet []string

func parseMethods(s string) (methodSet, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty method name")
	}
	parts := strings.Split(strings.ReplaceAll(s, "|", ","), ",")
	var set methodSet
	for _, p := range parts {
		p = strings.ToUpper(strings.TrimSpace(p))
		if p == "" {
			return nil, fmt.Errorf("empty method name in %q", s)
		}
		if len(parts) > 1 && !knownMethods[p] {
			return nil, fmt.Errorf("%q in the list %q is not a method OpenSIPS knows (a list may only hold INVITE, ACK, CANCEL, BYE, REGISTER, OPTIONS, INFO, UPDATE, MESSAGE, SUBSCRIBE, NOTIFY, PRACK, REFER, PUBLISH)", p, s)
		}
		set = append(set, p)
	}
	return set, nil
}

func fixupMethod(args []check.FixupArg) (any, error) {
	s, ok := constStr(args[0])
	if !ok {
		return nil, nil
	}
	set, err := parseMethods(s)
	if err != nil {
		return nil, check.ArgError(0, "%v", err)
	}
	return set, nil
}

// is_method(list): the request method, or the CSeq method of a reply, is one
// of the '|'- (or ',')-separated names; compared without case.
func callIsMethod(m *msgctx.Msg, a *modules.Args) int {
	set, ok := a.Fix.(methodSet)
	if !ok {
		var err error
		if set, err = parseMethods(a.Str(0)); err != nil {
			return errf(m, "is_method", "%v", err)
		}
	}
	method := m.Method()
	for _, name := range set {
		if strings.EqualFold(name, method) {
			return 1
		}
	}
	return -1
}

func callHasTotag(m *msgctx.Msg, _ *modules.Args) int {
	msg := target(m)
	if msg == nil {
		return -1
	}
	to := msg.To()
	if to == nil {
		return -1
	}
	if tag, ok := to.Params.Get("tag"); ok && tag != "" {
		return 1
	}
	return -1
}

// mimeType is the lower-case type/subtype of a Content-Type value.
func mimeType(ct string) string {
	t, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(t))
}

func checkMime(s string) (string, error) {
	t := mimeType(s)
	typ, sub, ok := strings.Cut(t, "/")
	if !ok || typ == "" || sub == "" || strings.ContainsAny(t, " \t,") || strings.Contains(sub, "/") {
		return "", fmt.Errorf("%q is not a MIME type (type/subtype)", s)
	}
	return t, nil
}

type mimeFix struct{ mime string }

func fixupMime(args []check.FixupArg) (any, error) {
	s, ok := constStr(args[0])
	if !ok || s == "" {
		return nil, nil
	}
	t, err := checkMime(s)
	if err != nil {
		return nil, check.ArgError(0, "%v", err)
	}
	return &mimeFix{t}, nil
}

// has_body([mime]) / has_body_part([mime]): without a MIME, whether there is
// a body at all; with one, whether a body part has that type. A multipart/*
// MIME is checked against the message's own Content-Type.
func callHasBody(m *msgctx.Msg, a *modules.Args) int {
	msg := target(m)
	if msg == nil || len(msg.Body()) == 0 {
		return -1
	}
	want := ""
	if f, ok := a.Fix.(*mimeFix); ok {
		want = f.mime
	} else if a.Has(0) && a.Str(0) != "" {
		t, err := checkMime(a.Str(0))
		if err != nil {
			return errf(m, "has_body", "%v", err)
		}
		want = t
	}
	if want == "" {
		return 1
	}
	ct := ""
	if h := msg.ContentType(); h != nil {
		ct = h.Value()
	}
	own := mimeType(ct)
	if strings.HasPrefix(want, "multipart/") || !strings.HasPrefix(own, "multipart/") {
		if own == want {
			return 1
		}
		return -1
	}
	parts, err := partTypes(ct, msg.Body())
	if err != nil {
		return errf(m, "has_body", "cannot parse the multipart body: %v", err)
	}
	for _, p := range parts {
		if p == want {
			return 1
		}
	}
	return -1
}

// partTypes lists the MIME type of each part of a multipart body.
func partTypes(contentType string, body []byte) ([]string, error) {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, err
	}
	boundary := params["boundary"]
	if boundary == "" {
		return nil, errors.New("no boundary parameter")
	}
	r := multipart.NewReader(bytes.NewReader(body), boundary)
	var out []string
	for {
		p, err := r.NextRawPart()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, mimeType(p.Header.Get("Content-Type")))
	}
}

// privacyValues are the RFC 3323/3325/4244 priv-values.
var privacyValues = map[string]bool{
	"header": true, "session": true, "user": true, "none": true,
	"critical": true, "id": true, "history": true,
}

func fixupPrivacy(args []check.FixupArg) (any, error) {
	s, ok := constStr(args[0])
	if !ok {
		return nil, nil
	}
	if !privacyValues[strings.ToLower(strings.TrimSpace(s))] {
		return nil, check.ArgError(0, "%q is not a privacy value (header, session, user, none, critical, id, history)", s)
	}
	return nil, nil
}

// is_privacy(value): a Privacy header lists the value.
func callIsPrivacy(m *msgctx.Msg, a *modules.Args) int {
	msg := target(m)
	if msg == nil {
		return -1
	}
	want := strings.ToLower(strings.TrimSpace(a.Str(0)))
	for _, h := range msg.Headers() {
		if !strings.EqualFold(h.Name(), "Privacy") {
			continue
		}
		for _, v := range strings.Split(h.Value(), ";") {
			if strings.ToLower(strings.TrimSpace(v)) == want {
				return 1
			}
		}
	}
	return -1
}

func fixupReplyStatus(args []check.FixupArg) (any, error) {
	if a := args[0]; a.Present && a.Const && (a.Int < 100 || a.Int > 699) {
		return nil, check.ArgError(0, "status code %d is out of range 100..699", a.Int)
	}
	if s, ok := constStr(args[1]); ok && strings.ContainsAny(s, "\r\n") {
		return nil, check.ArgError(1, "reason phrase %q must not contain line breaks", s)
	}
	return nil, nil
}

// change_reply_status(code, reason) rewrites the status line of the reply
// an onreply_route handles. As in OpenSIPS, a 1xx or 2xx reply keeps its
// class, and no reply can be turned into a 1xx or 2xx of another class.
func callChangeReplyStatus(m *msgctx.Msg, a *modules.Args) int {
	if m.Resp == nil {
		return errf(m, "change_reply_status", "there is no reply in this route")
	}
	code, ok := a.Val(0).AsInt()
	if !ok || code < 100 || code > 699 {
		return errf(m, "change_reply_status", "bad status code %q", a.Str(0))
	}
	old := m.Resp.StatusCode
	if (code < 300 || old < 300) && code/100 != old/100 {
		return errf(m, "change_reply_status", "cannot change a %d reply into %d: the class of provisional and positive final replies cannot change", old, code)
	}
	m.Resp.StatusCode = code
	m.Resp.Reason = strings.NewReplacer("\r", " ", "\n", " ").Replace(a.Str(1))
	return 1
}
