// Package modtest holds what module packages' tests share: a recording
// Host, real SIP messages, and a way to fix up and call a registered
// function by name as the VM would.
package modtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/scripttest"
	"github.com/sipedge/sipedge/runtime/value"
)

// LogLine is one recorded Host.Log call.
type LogLine struct {
	Level int
	Text  string
}

// Reply is one recorded Host.Reply call.
type Reply struct {
	Code   int
	Reason string
}

// Host records what the functions ask of the outside world.
type Host struct {
	Logs     []LogLine
	Replies  []Reply
	ReplyErr error
}

func (h *Host) Log(_ *msgctx.Msg, level int, text string) {
	h.Logs = append(h.Logs, LogLine{level, text})
}

func (h *Host) Reply(_ *msgctx.Msg, code int, reason string) error {
	if h.ReplyErr != nil {
		return h.ReplyErr
	}
	h.Replies = append(h.Replies, Reply{code, reason})
	return nil
}

// InviteText is a plain INVITE for tests.
const InviteText = "INVITE sip:alice@example.com:5060;transport=udp SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n" +
	"Max-Forwards: 70\r\n" +
	"To: Alice <sip:alice@example.com>\r\n" +
	"From: Bob <sip:bob@example.org>;tag=1928301774\r\n" +
	"Call-ID: a84b4c76e66710@pc33.example.org\r\n" +
	"CSeq: 314159 INVITE\r\n" +
	"Contact: <sip:bob@10.0.0.1>\r\n" +
	"Content-Length: 0\r\n" +
	"\r\n"

// ParseReq parses a CRLF request text.
func ParseReq(t testing.TB, text string) *sip.Request {
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

// NewMsg is a message context for text ("" for none) with a recording Host.
func NewMsg(t testing.TB, text string) (*msgctx.Msg, *Host) {
	t.Helper()
	h := &Host{}
	m := &msgctx.Msg{Host: h}
	if text != "" {
		m.Req = ParseReq(t, text)
	}
	return m, h
}

// Fn finds a registered function of module.
func Fn(t testing.TB, module, name string) *modules.Func {
	t.Helper()
	info := modules.Lookup(module)
	if info == nil {
		t.Fatalf("module %s not registered", module)
	}
	for _, f := range info.Funcs {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("function %s not registered", name)
	return nil
}

// CS is a constant string fixup argument, CI a constant int one, Dyn a
// pvar argument.
func CS(s string) check.FixupArg { return check.FixupArg{Present: true, Const: true, Str: s} }
func CI(n int) check.FixupArg    { return check.FixupArg{Present: true, Const: true, Int: n} }
func Dyn() check.FixupArg        { return check.FixupArg{Present: true} }

// Fixup runs a function's Fixup (if any) on the given arguments, padding
// absent optional ones.
func Fixup(t testing.TB, f *modules.Func, args ...check.FixupArg) (any, error) {
	t.Helper()
	for len(args) < len(f.Args) {
		args = append(args, check.FixupArg{})
	}
	if f.Fixup == nil {
		return nil, nil
	}
	return f.Fixup(args)
}

// DynStr is a string argument that is not a constant: fixup sees a
// non-constant argument, but its value still reaches the call.
type DynStr string

// Call fixes up constant arguments and runs module's function name, as the
// VM would. Arguments are as for Args.
func Call(t testing.TB, module string, m *msgctx.Msg, name string, vals ...any) int {
	t.Helper()
	f := Fn(t, module, name)
	return f.Call(m, Args(t, f, vals...))
}

// Args builds the fixed-up arguments of a call to f, as the VM would.
// Arguments are strings, DynStr strings, ints or *pvar.Ref.
func Args(t testing.TB, f *modules.Func, vals ...any) *modules.Args {
	t.Helper()
	var fargs []check.FixupArg
	a := &modules.Args{}
	for i, v := range vals {
		switch v := v.(type) {
		case string:
			fargs = append(fargs, CS(v))
			a.Vals = append(a.Vals, value.S(v))
		case DynStr:
			fargs = append(fargs, Dyn())
			a.Vals = append(a.Vals, value.S(string(v)))
		case int:
			fargs = append(fargs, CI(v))
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
	fix, err := Fixup(t, f, fargs...)
	if err != nil {
		t.Fatalf("%s fixup: %v", f.Name, err)
	}
	a.Fix = fix
	return a
}

// Recorder is a writable test pvar that keeps every value set.
type Recorder struct {
	Name string
	Vals []value.Value
	Fail bool
}

// Ref is a reference to the recorder, to pass as a var argument.
func (r *Recorder) Ref() *pvar.Ref {
	return &pvar.Ref{Text: "$" + r.Name, Spec: &pvar.Spec{
		Name:     r.Name,
		Writable: true,
		Get: func(*msgctx.Msg, any, pvar.Index) value.Value {
			return r.Last()
		},
		Set: func(_ *msgctx.Msg, _ any, _ pvar.Index, _ string, v value.Value) error {
			if r.Fail {
				return errors.New("cannot set")
			}
			r.Vals = append(r.Vals, v)
			return nil
		},
	}}
}

// Last is the last value set, or null.
func (r *Recorder) Last() value.Value {
	if len(r.Vals) == 0 {
		return value.Null
	}
	return r.Vals[len(r.Vals)-1]
}

// HasLog reports a log line at level containing substr.
func (h *Host) HasLog(level int, substr string) bool {
	for _, l := range h.Logs {
		if l.Level == level && strings.Contains(l.Text, substr) {
			return true
		}
	}
	return false
}

func (h *Host) String() string { return fmt.Sprint(h.Logs) }

// DynVar is a var argument of pvar class.
func DynVar(class string) check.FixupArg { return check.FixupArg{Present: true, PVar: class} }

// Configure configures module with its parameters' defaults, overridden by
// kv (pairs of parameter name and int or string value), and applies it.
func Configure(t testing.TB, module string, kv ...any) {
	t.Helper()
	info := modules.Lookup(module)
	if info == nil {
		t.Fatalf("module %s not registered", module)
	}
	p := modules.Params{}
	for _, spec := range info.Params {
		if !spec.Default.IsNull() {
			p[spec.Name] = []value.Value{spec.Default}
		}
	}
	for i := 0; i < len(kv); i += 2 {
		switch v := kv[i+1].(type) {
		case int:
			p[kv[i].(string)] = []value.Value{value.I(v)}
		case string:
			p[kv[i].(string)] = []value.Value{value.S(v)}
		}
	}
	apply, err := info.Configure(p)
	if err != nil {
		t.Fatal(err)
	}
	apply()
}

// Fixtures runs testdata/*.txtar through `sipedge test`'s runner, one
// subtest each.
func Fixtures(t *testing.T) {
	t.Helper()
	files, _ := filepath.Glob("testdata/*.txtar")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			res, err := scripttest.Run(f, data)
			if err != nil {
				t.Fatal(err)
			}
			if !res.OK() {
				t.Errorf("--- want\n%s--- got\n%s", res.Want, res.Got)
			}
		})
	}
}
