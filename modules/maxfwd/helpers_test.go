// Code shared by this package's tests (a copy of modules/core/helpers_test.go).

package maxfwd

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

const testModule = "maxfwd"

type logLine struct {
	level int
	text  string
}

type reply struct {
	code   int
	reason string
}

// testHost records what the functions ask of the outside world.
type testHost struct {
	logs     []logLine
	replies  []reply
	replyErr error
}

func (h *testHost) Log(_ *msgctx.Msg, level int, text string) {
	h.logs = append(h.logs, logLine{level, text})
}

func (h *testHost) Reply(_ *msgctx.Msg, code int, reason string) error {
	if h.replyErr != nil {
		return h.replyErr
	}
	h.replies = append(h.replies, reply{code, reason})
	return nil
}

const inviteText = "INVITE sip:alice@example.com:5060;transport=udp SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n" +
	"Max-Forwards: 70\r\n" +
	"To: Alice <sip:alice@example.com>\r\n" +
	"From: Bob <sip:bob@example.org>;tag=1928301774\r\n" +
	"Call-ID: a84b4c76e66710@pc33.example.org\r\n" +
	"CSeq: 314159 INVITE\r\n" +
	"Contact: <sip:bob@10.0.0.1>\r\n" +
	"Content-Length: 0\r\n" +
	"\r\n"

func parseReq(t *testing.T, text string) *sip.Request {
	t.Helper()
	msg, err := sip.ParseMessage([]byte(text))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		t.Fatalf("not a request: %T", msg)
	}
	return req
}

func newMsg(t *testing.T, text string) (*msgctx.Msg, *testHost) {
	t.Helper()
	h := &testHost{}
	m := &msgctx.Msg{Host: h}
	if text != "" {
		m.Req = parseReq(t, text)
	}
	return m, h
}

func fn(t *testing.T, name string) *modules.Func {
	t.Helper()
	info := modules.Lookup(testModule)
	if info == nil {
		t.Fatalf("module %s not registered", testModule)
	}
	for _, f := range info.Funcs {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("function %s not registered", name)
	return nil
}

// cs is a constant string fixup argument, ci a constant int one, dyn a
// pvar argument.
func cs(s string) check.FixupArg { return check.FixupArg{Present: true, Const: true, Str: s} }
func ci(n int) check.FixupArg    { return check.FixupArg{Present: true, Const: true, Int: n} }
func dyn() check.FixupArg        { return check.FixupArg{Present: true} }

// fixup runs a function's Fixup (if any) on the given arguments, padding
// absent optional ones.
func fixup(t *testing.T, f *modules.Func, args ...check.FixupArg) (any, error) {
	t.Helper()
	for len(args) < len(f.Args) {
		args = append(args, check.FixupArg{})
	}
	if f.Fixup == nil {
		return nil, nil
	}
	return f.Fixup(args)
}

// call fixes up constant arguments and runs the function. Arguments are
// strings, ints or *pvar.Ref.
func call(t *testing.T, m *msgctx.Msg, name string, vals ...any) int {
	t.Helper()
	f := fn(t, name)
	var fargs []check.FixupArg
	a := &modules.Args{}
	for i, v := range vals {
		switch v := v.(type) {
		case string:
			fargs = append(fargs, cs(v))
			a.Vals = append(a.Vals, value.S(v))
		case int:
			fargs = append(fargs, ci(v))
			a.Vals = append(a.Vals, value.I(v))
		case *pvar.Ref:
			fargs = append(fargs, check.FixupArg{Present: true, PVar: v.Spec.Name})
			a.Vals = append(a.Vals, value.Null)
			for len(a.Refs) < i {
				a.Refs = append(a.Refs, nil)
			}
			a.Refs = append(a.Refs, v)
		default:
			t.Fatalf("bad arg %T", v)
		}
		a.Given = append(a.Given, true)
	}
	for len(a.Given) < len(f.Args) {
		a.Given = append(a.Given, false)
		a.Vals = append(a.Vals, value.Null)
	}
	fix, err := fixup(t, f, fargs...)
	if err != nil {
		t.Fatalf("%s fixup: %v", name, err)
	}
	a.Fix = fix
	return f.Call(m, a)
}

// recorder is a writable test pvar that keeps every value set.
type recorder struct {
	name string
	vals []value.Value
	fail bool
}

func (r *recorder) ref() *pvar.Ref {
	return &pvar.Ref{Text: "$" + r.name, Spec: &pvar.Spec{
		Name:     r.name,
		Writable: true,
		Get: func(*msgctx.Msg, any, pvar.Index) value.Value {
			if len(r.vals) == 0 {
				return value.Null
			}
			return r.vals[len(r.vals)-1]
		},
		Set: func(_ *msgctx.Msg, _ any, _ pvar.Index, _ string, v value.Value) error {
			if r.fail {
				return errors.New("cannot set")
			}
			r.vals = append(r.vals, v)
			return nil
		},
	}}
}

func (h *testHost) hasLog(level int, substr string) bool {
	for _, l := range h.logs {
		if l.level == level && strings.Contains(l.text, substr) {
			return true
		}
	}
	return false
}

func (h *testHost) String() string { return fmt.Sprint(h.logs) }

func dynVar(class string) check.FixupArg { return check.FixupArg{Present: true, PVar: class} }
