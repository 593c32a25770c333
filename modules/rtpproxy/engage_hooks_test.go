package rtpproxy_test

import (
	"errors"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/modules/dialog"
	"github.com/sipedge/sipedge/modules/rtpproxy"
	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/rtprelay"
)

// What the SIP runtime does around a script run, with tm's hooks
// (runtime/sipstack): request hooks, the route, route-done hooks; each
// request sent downstream through the request-out hooks; each reply sent
// upstream through the response-out hooks.

// inbound runs the request hooks for a request from src; route runs in
// between (the script), then the route-done hooks.
func inbound(t *testing.T, text, src string, route func(m *msgctx.Msg)) *msgctx.Msg {
	t.Helper()
	m, _ := reqMsg(t, text, src)
	tm.RunRequestHooks(m)
	if route != nil {
		route(m)
	}
	tm.RunRouteDoneHooks(m, true)
	return m
}

// relayed is the request as t_relay sends it: the request-out hooks run.
func relayed(m *msgctx.Msg) *sip.Request {
	out := m.Req.Clone()
	tm.RunRequestOutHooks(m.Mod, out)
	return out
}

// upstream sends a reply through the response-out hooks of the
// transaction that m's route created.
func upstream(m *msgctx.Msg, code int, from, to, body, src string) *sip.Response {
	res := replyMsg(code, m.Method(), m.Req.CallID().Value(), from, to, body, src).Resp
	res.SetSource(src + ":5060")
	tm.RunResponseOutHooks(tm.CopyMod(m.Mod), m.Req, code, res)
	return res
}

// rtpproxy_engage in a running proxy: the 200's answer, a late offer, a
// re-INVITE from the callee and its answer, and the BYE are handled by
// the hooks with no script code.
func TestEngageThroughHooks(t *testing.T) {
	configure(t)
	caller, callerAddr := udp(t, "127.0.0.1")
	callee, calleeAddr := udp(t, "127.0.0.2")
	inv := inbound(t, request("INVITE", "eh-1", "a", "", sdpOf(callerAddr)), "127.0.0.1", func(m *msgctx.Msg) {
		if rc := call(t, m, "rtpproxy_engage", "ei"); rc != 1 {
			t.Fatalf("engage rc %d", rc)
		}
	})
	d := dialog.Current(inv)
	e := rtpproxy.Engaged(inv)
	if d == nil || e == nil || rtpproxy.EngagedDialog(d) != e {
		t.Fatalf("dialog %v engagement %v", d, e)
	}
	toCallee := mediaAddr(t, relayed(inv).Body())
	if toCallee.Addr().String() != "127.0.0.2" {
		t.Fatalf("offer to the callee: %v", toCallee)
	}
	if res := upstream(inv, 180, "a", "b", "", "127.0.0.2"); len(res.Body()) != 0 {
		t.Fatal("180 got a body")
	}
	ok := upstream(inv, 200, "a", "b", sdpOf(calleeAddr), "127.0.0.2")
	toCaller := mediaAddr(t, ok.Body())
	if toCaller.Addr().String() != "127.0.0.1" {
		t.Fatalf("200 to the caller:\n%s", ok.Body())
	}
	if d.State() != dialog.StateConfirmedNA {
		t.Fatalf("dialog state %d", d.State())
	}
	ack := inbound(t, request("ACK", "eh-1", "a", "b", ""), "127.0.0.1", nil)
	relayed(ack)
	if n := exchange(t, caller, callee, toCaller, 5); n != 5 {
		t.Fatalf("callee got %d", n)
	}
	if n := exchange(t, callee, caller, toCallee, 5); n != 5 {
		t.Fatalf("caller got %d", n)
	}

	// the callee moves its media with a re-INVITE (internal -> external)
	callee2, callee2Addr := udp(t, "127.0.0.2")
	reinv := inbound(t, request("INVITE", "eh-1", "b", "a", sdpOf(callee2Addr)), "127.0.0.2", nil)
	if got := mediaAddr(t, relayed(reinv).Body()); got != toCaller {
		t.Fatalf("re-INVITE to the caller points at %v, want %v", got, toCaller)
	}
	// the caller's answer, in the re-INVITE's 200, points at the LAN side
	ok2 := upstream(reinv, 200, "b", "a", sdpOf(callerAddr), "127.0.0.1")
	if got := mediaAddr(t, ok2.Body()); got != toCallee {
		t.Fatalf("re-INVITE's 200 points at %v, want %v", got, toCallee)
	}
	// a failed re-INVITE keeps the call's media
	reinv2 := inbound(t, request("INVITE", "eh-1", "a", "b", sdpOf(callerAddr)), "127.0.0.1", nil)
	relayed(reinv2)
	upstream(reinv2, 488, "a", "b", "", "127.0.0.2")
	if n := exchange(t, caller, callee2, toCaller, 5); n != 5 {
		t.Fatalf("callee's new address got %d", n)
	}

	inbound(t, request("BYE", "eh-1", "a", "b", ""), "127.0.0.1", nil)
	if _, ok := rtprelay.Default().Lookup("eh-1", ""); ok {
		t.Fatal("media after the BYE")
	}
	if rtpproxy.EngagedDialog(d) != nil {
		t.Fatal("engagement kept after the dialog ended")
	}
}

// A late offer (INVITE without SDP): the 200 carries the callee's offer,
// the ACK the caller's answer.
func TestEngageLateOfferThroughHooks(t *testing.T) {
	configure(t)
	caller, callerAddr := udp(t, "127.0.0.1")
	callee, calleeAddr := udp(t, "127.0.0.2")
	inv := inbound(t, request("INVITE", "eh-2", "a", "", ""), "127.0.0.1", func(m *msgctx.Msg) {
		if rc := call(t, m, "rtpproxy_engage", "ei"); rc != 1 {
			t.Fatalf("engage rc %d", rc)
		}
	})
	ok := upstream(inv, 200, "a", "b", sdpOf(calleeAddr), "127.0.0.2")
	toCaller := mediaAddr(t, ok.Body())
	if toCaller.Addr().String() != "127.0.0.1" {
		t.Fatalf("offer in the 200:\n%s", ok.Body())
	}
	ack := inbound(t, request("ACK", "eh-2", "a", "b", sdpOf(callerAddr)), "127.0.0.1", nil)
	toCallee := mediaAddr(t, relayed(ack).Body())
	if toCallee.Addr().String() != "127.0.0.2" {
		t.Fatalf("answer in the ACK points at %v", toCallee)
	}
	if n := exchange(t, caller, callee, toCaller, 3); n != 3 {
		t.Fatalf("callee got %d", n)
	}
	if n := exchange(t, callee, caller, toCallee, 3); n != 3 {
		t.Fatalf("caller got %d", n)
	}
	// no SIP runtime here to send the BYEs: the dialog ends all the same
	if err := dialog.Terminate("eh-2", "a", "test", ""); err != nil && !errors.Is(err, tm.ErrNoUAC) {
		t.Fatal(err)
	}
	if _, ok := rtprelay.Default().Lookup("eh-2", ""); ok {
		t.Fatal("media after the dialog was terminated")
	}
}

// A cancelled or refused INVITE releases the media; a request route that
// did not relay the INVITE drops the dialog and with it the media.
func TestEngageFailures(t *testing.T) {
	configure(t)
	_, callerAddr := udp(t, "127.0.0.1")
	engage := func(m *msgctx.Msg) {
		if rc := call(t, m, "rtpproxy_engage", "ei"); rc != 1 {
			t.Fatalf("engage rc %d", rc)
		}
	}
	inv := inbound(t, request("INVITE", "eh-3", "a", "", sdpOf(callerAddr)), "127.0.0.1", engage)
	upstream(inv, 180, "a", "b", "", "127.0.0.2")
	tm.RunResponseOutHooks(tm.CopyMod(inv.Mod), inv.Req, 487, nil) // CANCEL: sipgo's 487
	if _, ok := rtprelay.Default().Lookup("eh-3", ""); ok {
		t.Error("media after a CANCEL")
	}

	inv = inbound(t, request("INVITE", "eh-4", "a", "", sdpOf(callerAddr)), "127.0.0.1", engage)
	upstream(inv, 486, "a", "b", "", "127.0.0.2")
	if _, ok := rtprelay.Default().Lookup("eh-4", ""); ok {
		t.Error("media after a 486")
	}

	m, _ := reqMsg(t, request("INVITE", "eh-5", "a", "", sdpOf(callerAddr)), "127.0.0.1")
	tm.RunRequestHooks(m)
	engage(m)
	tm.RunRouteDoneHooks(m, false) // sl_send_reply / stateless forward
	if _, ok := rtprelay.Default().Lookup("eh-5", ""); ok {
		t.Error("media of an INVITE that was not relayed statefully")
	}
}
