package pvar

import (
	"errors"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

// Small helpers shared by the core pvars and the transformations. Hot getters
// avoid fmt and allocation: values point into the parsed message.

var errDynName = errors.New("dynamic names are not supported for $var/$avp (use a constant name)")

// smallInts caches the decimal form of small integers so int-valued pvars
// ($retcode, $rs, $cl …) need no allocation.
var smallInts [1280]string

const smallIntMin = -256

func init() {
	for i := range smallInts {
		smallInts[i] = strconv.Itoa(i + smallIntMin)
	}
}

func itoa(n int) string {
	if i := n - smallIntMin; i >= 0 && i < len(smallInts) {
		return smallInts[i]
	}
	switch n {
	case 5060:
		return "5060"
	case 5061:
		return "5061"
	}
	return strconv.Itoa(n)
}

// vInt is an integer value with its decimal string form (OpenSIPS int pvars
// carry both).
func vInt(n int) value.Value { return value.SI(itoa(n), n) }

// vStrNull is s, or NULL when s is empty (OpenSIPS returns NULL for an empty
// URI user, host …).
func vStrNull(s string) value.Value {
	if s == "" {
		return value.Null
	}
	return value.S(s)
}

// sipMsg is the message the route runs on, as the sip.Message interface, or
// nil (never a typed nil).
func sipMsg(m *msgctx.Msg) sip.Message {
	if m.Req != nil {
		return m.Req
	}
	if m.Resp != nil {
		return m.Resp
	}
	return nil
}

// headers of whichever message the route runs on.
func headersOf(m *msgctx.Msg) []sip.Header {
	if m.Req != nil {
		return m.Req.Headers()
	}
	if m.Resp != nil {
		return m.Resp.Headers()
	}
	return nil
}

// hdrName is a fixed-up header name: its full form and, when it has one, its
// RFC 3261 compact form. Matching is case-insensitive against both, as
// OpenSIPS matches known header types whatever spelling the message used.
type hdrName struct {
	name    string // as written in the script
	full    string // canonical full name ("From")
	compact string // "f", or ""
}

// compactForms maps compact header names to full ones (IANA SIP header
// compact forms).
var compactForms = map[string]string{
	"a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
	"e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact", "k": "Supported",
	"l": "Content-Length", "m": "Contact", "n": "Identity-Info", "o": "Event", "r": "Refer-To",
	"s": "Subject", "t": "To", "u": "Allow-Events", "v": "Via", "x": "Session-Expires", "y": "Identity",
}

var fullToCompact = func() map[string]string {
	out := make(map[string]string, len(compactForms))
	for c, f := range compactForms {
		out[strings.ToLower(f)] = c
	}
	return out
}()

func newHdrName(s string) (*hdrName, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty header name")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == ':' || c >= 0x7f || c == '(' || c == ')' || c == ',' || c == ';' {
			return nil, errors.New("invalid header name " + strconv.Quote(s))
		}
	}
	h := &hdrName{name: s, full: s}
	if f, ok := compactForms[strings.ToLower(s)]; ok {
		h.full, h.compact = f, strings.ToLower(s)
	} else if c, ok := fullToCompact[strings.ToLower(s)]; ok {
		h.compact = c
	}
	return h, nil
}

func (h *hdrName) match(name string) bool {
	if len(name) == len(h.full) && strings.EqualFold(name, h.full) {
		return true
	}
	return h.compact != "" && len(name) == 1 && (name[0]|0x20) == h.compact[0]
}

// findHeaders calls fn for every header matching h, in message order, until
// fn returns false.
func eachHeader(m *msgctx.Msg, h *hdrName, fn func(sip.Header) bool) {
	for _, hd := range headersOf(m) {
		if h.match(hd.Name()) && !fn(hd) {
			return
		}
	}
}

// firstHeaderValue is the value of the first header called name (full name,
// any case, or its compact form), without allocating for generic headers.
func firstHeaderValue(m *msgctx.Msg, h *hdrName) (string, bool) {
	for _, hd := range headersOf(m) {
		if h.match(hd.Name()) {
			return hd.Value(), true
		}
	}
	return "", false
}

// pickIndex resolves an Index against n items: it returns the position to use
// and false when out of range. No index means the first item.
func pickIndex(idx Index, n int) (int, bool) {
	i := 0
	if idx.Set && !idx.All {
		i = idx.N
	}
	if i < 0 {
		i += n
	}
	if i < 0 || i >= n {
		return 0, false
	}
	return i, true
}

// joinVals joins the string forms of vs with OpenSIPS's ", " field delimiter.
func joinVals(vs []string) value.Value {
	if len(vs) == 0 {
		return value.Null
	}
	return value.S(strings.Join(vs, ", "))
}

// isWS is OpenSIPS's whitespace for trimming.
func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func trimWS(s string) string { return trimRightWS(trimLeftWS(s)) }

func trimLeftWS(s string) string {
	i := 0
	for i < len(s) && isWS(s[i]) {
		i++
	}
	return s[i:]
}

func trimRightWS(s string) string {
	j := len(s)
	for j > 0 && isWS(s[j-1]) {
		j--
	}
	return s[:j]
}

// uriString serialises u exactly as sipgo's Uri.String does, with a single
// allocation for the result.
func uriString(u *sip.Uri) string {
	var buf [160]byte
	b := buf[:0]
	if u.Scheme == "" {
		b = append(b, "sip"...)
	} else {
		b = append(b, u.Scheme...)
	}
	b = append(b, ':')
	if r := u.Raw(); r != "" {
		return string(append(b, r...))
	}
	if u.HierarhicalSlashes {
		b = append(b, "//"...)
	}
	if u.User != "" {
		b = append(b, u.User...)
		if u.Password != "" {
			b = append(b, ':')
			b = append(b, u.Password...)
		}
		b = append(b, '@')
	}
	if strings.IndexByte(u.Host, ':') >= 0 && !strings.HasPrefix(u.Host, "[") {
		b = append(b, '[')
		b = append(b, u.Host...)
		b = append(b, ']')
	} else {
		b = append(b, u.Host...)
	}
	if u.Port > 0 {
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(u.Port), 10)
	}
	b = appendParams(b, ';', ';', u.UriParams)
	b = appendParams(b, '?', '&', u.Headers)
	return string(b)
}

func appendParams(b []byte, lead, sep byte, ps sip.HeaderParams) []byte {
	for i, kv := range ps {
		if i == 0 {
			b = append(b, lead)
		} else {
			b = append(b, sep)
		}
		b = append(b, kv.K...)
		switch {
		case strings.ContainsAny(kv.V, " \t"):
			b = append(b, `="`...)
			b = append(b, kv.V...)
			b = append(b, '"')
		case kv.V != "":
			b = append(b, '=')
			b = append(b, kv.V...)
		}
	}
	return b
}
