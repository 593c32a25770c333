package sipmsgops

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/runtime/msgctx"
)

// sipMsg is what the header functions need of a request or a reply.
type sipMsg interface {
	Headers() []sip.Header
	AppendHeader(sip.Header)
	PrependHeader(...sip.Header)
	RemoveHeader(name string) bool
	Body() []byte
	ContentType() *sip.ContentTypeHeader
	To() *sip.ToHeader
}

// target is the message the route runs on: the request, or the reply in an
// onreply_route. It is nil when there is neither (startup/timer routes).
func target(m *msgctx.Msg) sipMsg {
	if m.Req != nil {
		return m.Req
	}
	if m.Resp != nil {
		return m.Resp
	}
	return nil
}

// compactNames are the RFC 3261/3265/3515/3841/4028/4474 compact header
// forms, so that "f" and "From" name the same header.
var compactNames = map[string]string{
	"a": "accept-contact", "b": "referred-by", "c": "content-type", "d": "request-disposition",
	"e": "content-encoding", "f": "from", "i": "call-id", "j": "reject-contact",
	"k": "supported", "l": "content-length", "m": "contact", "n": "identity-info",
	"o": "event", "r": "refer-to", "s": "subject", "t": "to", "u": "allow-events",
	"v": "via", "x": "session-expires", "y": "identity",
}

// canonName is the lowercase full form of a header name.
func canonName(name string) string {
	n := strings.ToLower(strings.TrimSpace(name))
	if full, ok := compactNames[n]; ok {
		return full
	}
	return n
}

func sameHeader(a, b string) bool { return canonName(a) == canonName(b) }

// checkHeaderName validates a header name given to a function.
func checkHeaderName(name string) error {
	name = strings.TrimSpace(name)
	if name == "" {
		return errors.New("empty header name")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return fmt.Errorf("%q is not a valid header name", name)
		}
	}
	return nil
}

var headerParser = sip.HeadersParser(sip.DefaultHeadersParser())

// parseHeaders turns script text such as "X-A: 1\r\nX-B: 2\r\n" into
// headers. Folded lines are joined; well-known headers (Contact, Route …)
// are parsed into sipgo's typed headers, anything else, or a well-known
// header whose value does not parse, is kept as text.
func parseHeaders(text string) ([]sip.Header, error) {
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		l = strings.TrimRight(l, "\r")
		switch {
		case strings.TrimSpace(l) == "":
			continue
		case (l[0] == ' ' || l[0] == '\t') && len(lines) > 0:
			lines[len(lines)-1] += " " + strings.TrimSpace(l)
		default:
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return nil, errors.New("no header in the text")
	}
	var out []sip.Header
	for _, l := range lines {
		name, val, ok := strings.Cut(l, ":")
		if !ok {
			return nil, fmt.Errorf("%q is not a header (no ':')", l)
		}
		name, val = strings.TrimSpace(name), strings.TrimSpace(val)
		if err := checkHeaderName(name); err != nil {
			return nil, err
		}
		hs, err := headerParser.ParseHeader(nil, []byte(name+": "+val))
		if err != nil || len(hs) == 0 {
			hs = []sip.Header{sip.NewHeader(name, val)}
		}
		out = append(out, hs...)
	}
	return out, nil
}

// setHeaders replaces the header list of msg. sipgo has no positional
// insert or delete, so the list is emptied (RemoveHeader drops the first
// header of a name, which is the head of the list) and rebuilt.
func setHeaders(msg sipMsg, hs []sip.Header) {
	for len(msg.Headers()) > 0 {
		msg.RemoveHeader(msg.Headers()[0].Name())
	}
	for _, h := range hs {
		msg.AppendHeader(h)
	}
}

// insertAt puts hs before position pos of the header list.
func insertAt(msg sipMsg, pos int, hs []sip.Header) {
	old := msg.Headers()
	out := make([]sip.Header, 0, len(old)+len(hs))
	out = append(out, old[:pos]...)
	out = append(out, hs...)
	out = append(out, old[pos:]...)
	setHeaders(msg, out)
}

// removeMatching deletes every header whose name satisfies match and
// returns how many went.
func removeMatching(msg sipMsg, match func(name string) bool) int {
	var keep []sip.Header
	n := 0
	for _, h := range msg.Headers() {
		if match(h.Name()) {
			n++
			continue
		}
		keep = append(keep, h)
	}
	if n > 0 {
		setHeaders(msg, keep)
	}
	return n
}

// findHeader is the position of the first header named name, or -1.
func findHeader(msg sipMsg, name string) int {
	for i, h := range msg.Headers() {
		if sameHeader(h.Name(), name) {
			return i
		}
	}
	return -1
}
