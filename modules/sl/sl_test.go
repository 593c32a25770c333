package sl

import (
	"errors"
	"github.com/sipedge/sipedge/internal/modtest"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/value"
)

func TestSendReply(t *testing.T) {
	m, h := newMsg(t, inviteText)
	if rc := call(t, m, "sl_send_reply", 404, "Not Here"); rc != 1 {
		t.Fatalf("rc = %d", rc)
	}
	if len(h.Replies) != 1 || h.Replies[0] != (modtest.Reply{Code: 404, Reason: "Not Here"}) {
		t.Fatalf("replies = %v", h.Replies)
	}
}

func TestSendReplyRuntimeErrors(t *testing.T) {
	f := fn(t, "sl_send_reply")
	cases := []struct {
		name string
		msg  string
		code value.Value
		err  error
	}{
		{"code from pvar not a number", inviteText, value.S("abc"), nil},
		{"code out of range", inviteText, value.I(99), nil},
		{"host fails", inviteText, value.I(200), errors.New("socket closed")},
		{"no request", "", value.I(200), nil},
		{"ACK", strings.Replace(strings.Replace(inviteText, "INVITE", "ACK", 2), "CSeq: 314159 INVITE", "CSeq: 314159 ACK", 1), value.I(200), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, h := newMsg(t, c.msg)
			h.ReplyErr = c.err
			a := &modules.Args{Vals: []value.Value{c.code, value.S("OK")}, Given: []bool{true, true}}
			if rc := f.Call(m, a); rc != -1 {
				t.Fatalf("rc = %d", rc)
			}
			if len(h.Replies) != 0 || len(h.Logs) != 1 {
				t.Fatalf("replies=%v logs=%v", h.Replies, h.Logs)
			}
		})
	}
}

func TestSendReplyStripsLineBreaks(t *testing.T) {
	m, h := newMsg(t, inviteText)
	f := fn(t, "sl_send_reply")
	a := &modules.Args{Vals: []value.Value{value.I(403), value.S("No\r\nX-Injected: 1")}, Given: []bool{true, true}}
	if rc := f.Call(m, a); rc != 1 || h.Replies[0].Reason != "No  X-Injected: 1" {
		t.Fatalf("rc=%d replies=%v", rc, h.Replies)
	}
}

func TestSendReplyFixup(t *testing.T) {
	f := fn(t, "sl_send_reply")
	for _, code := range []int{0, 99, 700, 1000} {
		if _, err := fixup(t, f, ci(code), cs("x")); err == nil {
			t.Errorf("code %d accepted", code)
		}
	}
	if _, err := fixup(t, f, ci(200), cs("O\nK")); err == nil {
		t.Error("reason with a line break accepted")
	}
	if _, err := fixup(t, f, dyn(), dyn()); err != nil {
		t.Errorf("pvar arguments rejected: %v", err)
	}
	if f.Routes.Has(ast.OnReplyRoute) || !f.Routes.Has(ast.ErrorRoute) || !f.Routes.Has(ast.RequestRoute) {
		t.Errorf("routes = %b", f.Routes)
	}
}

func TestReplyError(t *testing.T) {
	m, h := newMsg(t, inviteText)
	if rc := call(t, m, "sl_reply_error"); rc != 1 {
		t.Fatalf("rc = %d", rc)
	}
	if len(h.Replies) != 1 || h.Replies[0] != (modtest.Reply{Code: 500, Reason: ErrorReason}) {
		t.Fatalf("replies = %v", h.Replies)
	}
	if r := fn(t, "sl_reply_error").Routes; r != 1<<ast.RequestRoute {
		t.Errorf("routes = %b", r)
	}
}
