package restclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

// Result is one HTTP transfer's outcome.
type Result struct {
	RC    int    // RetOK or a negative code
	Code  int    // HTTP status, 0 when no reply arrived
	Body  string // trimmed, as OpenSIPS stores it
	Ctype string // the reply's Content-Type, trimmed
}

// Request is one transfer to make.
type Request struct {
	Method  string
	URL     string
	Body    string
	Ctype   string   // POST/PUT only
	Headers []string // "Name: value" lines (rest_append_hf)
}

// Do runs a transfer with the live configuration.
func Do(r Request) (Result, error) { return cur.Load().do(r) }

func (c *config) do(r Request) (Result, error) {
	res := Result{RC: RetInternal}
	ctx, cancel := context.WithTimeout(context.Background(), c.transferTO)
	defer cancel()
	var connected atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		ConnectDone: func(_, _ string, err error) {
			if err == nil {
				connected.Store(true)
			}
		},
		GotConn: func(httptrace.GotConnInfo) { connected.Store(true) },
	})
	var body io.Reader
	if r.Method != http.MethodGet {
		body = strings.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, body)
	if err != nil {
		return res, err
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return res, errors.New("unsupported protocol " + req.URL.Scheme)
	}
	// What libcurl sends by default: Accept */*, no User-Agent.
	req.Header.Set("Accept", "*/*")
	req.Header["User-Agent"] = []string{""}
	for _, h := range r.Headers {
		name, val, _ := strings.Cut(h, ":")
		name, val = strings.TrimSpace(name), strings.TrimSpace(val)
		if strings.EqualFold(name, "Host") {
			req.Host = val
			continue
		}
		req.Header.Add(textproto.CanonicalMIMEHeaderKey(name), val)
	}
	if r.Method != http.MethodGet {
		req.Header.Set("Content-Type", r.Ctype)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		res.RC = classify(err, connected.Load())
		return res, err
	}
	defer resp.Body.Close()
	res.Code = resp.StatusCode
	res.Ctype = strings.TrimSpace(resp.Header.Get("Content-Type"))
	var rd io.Reader = resp.Body
	if c.maxSize > 0 {
		rd = io.LimitReader(resp.Body, c.maxSize+1)
	}
	data, err := io.ReadAll(rd)
	res.Body = strings.TrimSpace(string(data))
	if err != nil {
		res.RC = classify(err, true)
		return res, err
	}
	if c.maxSize > 0 && int64(len(data)) > c.maxSize {
		res.Body = ""
		return res, errors.New("max download size exceeded (max_transfer_size)")
	}
	res.RC = RetOK
	return res, nil
}

// classify maps a transfer error to OpenSIPS's return codes.
func classify(err error, connected bool) int {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return RetConnRefused
	}
	var te interface{ Timeout() bool }
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &te) && te.Timeout()) {
		if !connected {
			return RetConnTimeout
		}
		return RetTransferTimeout
	}
	return RetInternal
}

func ref(a *modules.Args, i int) *pvar.Ref {
	if !a.Has(i) || i >= len(a.Refs) {
		return nil
	}
	return a.Refs[i]
}

// pendingHeaders are rest_append_hf's headers waiting for the next
// request of this message.
type pendingHeaders struct{ list []string }

const modKey = "rest_client"

func takeHeaders(m *msgctx.Msg) []string {
	p, _ := m.Mod[modKey].(*pendingHeaders)
	if p == nil {
		return nil
	}
	l := p.list
	p.list = nil
	return l
}

// rest_get(url, body_pv[, ctype_pv[, code_pv]])
// rest_post(url, body, [ctype], body_pv[, ctype_pv[, code_pv]]), rest_put alike
func callMethod(m *msgctx.Msg, a *modules.Args, method string) int {
	fname := "rest_" + strings.ToLower(method)
	r := Request{Method: method, URL: strings.TrimSpace(a.Str(0)), Headers: takeHeaders(m)}
	first := 1
	if method != http.MethodGet {
		r.Body = a.Str(1)
		r.Ctype = DefaultCtype
		if a.Has(2) && a.Str(2) != "" {
			r.Ctype = a.Str(2)
		}
		first = 3
	}
	bodyRef, ctypeRef, codeRef := ref(a, first), ref(a, first+1), ref(a, first+2)
	res, err := Do(r)
	set := func(r *pvar.Ref, v value.Value) bool {
		if r == nil {
			return true
		}
		if err := r.Set(m, "=", v); err != nil {
			logf(m, msgctx.LErr, "%s: setting %s: %v", fname, r.Text, err)
			return false
		}
		return true
	}
	if !set(codeRef, value.I(res.Code)) {
		return RetInternal
	}
	if err != nil {
		logf(m, msgctx.LErr, "%s %s: %v", fname, r.URL, err)
	}
	if res.RC < 0 && res.RC != RetTransferTimeout {
		return res.RC
	}
	if !set(bodyRef, value.S(res.Body)) || !set(ctypeRef, value.S(res.Ctype)) {
		return RetInternal
	}
	return res.RC
}

// ---- rest_append_hf(txt) ----

func fixupAppendHF(args []check.FixupArg) (any, error) {
	if a := args[0]; a.Present && a.Const {
		if err := checkHeader(a.Str); err != nil {
			return nil, check.ArgError(0, "%v", err)
		}
	}
	return nil, nil
}

func checkHeader(h string) error {
	name, _, ok := strings.Cut(h, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") || strings.ContainsAny(h, "\r\n") {
		return errors.New("want one HTTP header, \"Name: value\"")
	}
	return nil
}

func callAppendHF(m *msgctx.Msg, a *modules.Args) int {
	h := strings.TrimRight(a.Str(0), "\r\n")
	if err := checkHeader(h); err != nil {
		logf(m, msgctx.LErr, "rest_append_hf(%q): %v", h, err)
		return -1
	}
	p := m.ModData(modKey, func() any { return &pendingHeaders{} }).(*pendingHeaders)
	p.list = append(p.list, h)
	return 1
}

// ---- {rest.escape}, {rest.unescape} ----

const hexUpper = "0123456789ABCDEF"

// Escape percent-encodes everything but RFC 3986 unreserved characters,
// as curl_easy_escape does.
func Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexUpper[c>>4])
		b.WriteByte(hexUpper[c&15])
	}
	return b.String()
}

// Unescape decodes %XX sequences ('+' stays '+'); a '%' not followed by two
// hex digits is kept.
func Unescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func transEscape(_ *msgctx.Msg, in value.Value, _ []value.Value) (value.Value, error) {
	if in.IsNull() {
		return in, nil
	}
	return value.S(Escape(in.AsString())), nil
}

func transUnescape(_ *msgctx.Msg, in value.Value, _ []value.Value) (value.Value, error) {
	if in.IsNull() {
		return in, nil
	}
	return value.S(Unescape(in.AsString())), nil
}
