package rtpproxy_test

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/internal/modtest"
	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/modules"
	_ "github.com/sipedge/sipedge/modules/all"
	"github.com/sipedge/sipedge/modules/rtpproxy"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/rtprelay"
	"github.com/sipedge/sipedge/runtime/value"
)

// TestFixtures runs testdata/*.txtar through `sipedge test`'s runner.
func TestFixtures(t *testing.T) { modtest.Fixtures(t) }

// The dual-interface edge of the seed: "external" faces the Internet
// (127.0.0.1 here), "internal" the LAN (127.0.0.2).
const ifaces = "external/127.0.0.1:23000-23199;internal/127.0.0.2:23200-23399"

func configure(t *testing.T) {
	t.Helper()
	apply, err := modules.Lookup("rtpproxy").Configure(modules.Params{
		"interfaces": {value.S(ifaces)}, "nortpproxy_str": {value.S("a=nortpproxy:yes\r\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	apply()
}

func sdpOf(a netip.AddrPort) string {
	ip := a.Addr().String()
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\n", ip, ip, a.Port())
}

func request(method, callID, from, to, body string) string {
	toTag := ""
	if to != "" {
		toTag = ";tag=" + to
	}
	ct := ""
	if body != "" {
		ct = "Content-Type: application/sdp\r\n"
	}
	return fmt.Sprintf("%s sip:bob@127.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK%s\r\n"+
		"From: <sip:alice@example.com>;tag=%s\r\nTo: <sip:bob@example.com>%s\r\nCall-ID: %s\r\nCSeq: 1 %s\r\n"+
		"Max-Forwards: 70\r\n%sContent-Length: %d\r\n\r\n%s", method, method, from, toTag, callID, method, ct, len(body), body)
}

func replyMsg(code int, method, callID, from, to, body, src string) *msgctx.Msg {
	ct := ""
	if body != "" {
		ct = "Content-Type: application/sdp\r\n"
	}
	text := fmt.Sprintf("SIP/2.0 %d X\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n"+
		"From: <sip:alice@example.com>;tag=%s\r\nTo: <sip:bob@example.com>;tag=%s\r\nCall-ID: %s\r\nCSeq: 1 %s\r\n"+
		"%sContent-Length: %d\r\n\r\n%s", code, from, to, callID, method, ct, len(body), body)
	msg, err := sip.ParseMessage([]byte(text))
	if err != nil {
		panic(err)
	}
	return &msgctx.Msg{Resp: msg.(*sip.Response), Kind: ast.OnReplyRoute, Host: &modtest.Host{}, Src: msgctx.Addr{IP: src, Port: 5060}}
}

func reqMsg(t *testing.T, text, src string) (*msgctx.Msg, *modtest.Host) {
	m, h := modtest.NewMsg(t, text)
	m.Src = msgctx.Addr{IP: src, Port: 5060, Proto: "udp"}
	return m, h
}

func call(t *testing.T, m *msgctx.Msg, name string, args ...any) int {
	t.Helper()
	return modtest.Call(t, "rtpproxy", m, name, args...)
}

func udp(t *testing.T, ip string) (*net.UDPConn, netip.AddrPort) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func mediaAddr(t *testing.T, body []byte) netip.AddrPort {
	t.Helper()
	var ip string
	var port int
	for _, l := range strings.Split(string(body), "\r\n") {
		if strings.HasPrefix(l, "c=IN IP4 ") {
			ip = strings.TrimPrefix(l, "c=IN IP4 ")
		}
		if strings.HasPrefix(l, "m=audio ") {
			fmt.Sscanf(l, "m=audio %d", &port)
		}
	}
	if ip == "" {
		t.Fatalf("no c= in\n%s", body)
	}
	return netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(port))
}

func exchange(t *testing.T, from, to *net.UDPConn, dst netip.AddrPort, n int) int {
	t.Helper()
	for i := 0; i < n; i++ {
		from.WriteToUDPAddrPort([]byte{0x80, 0, 0, byte(i), 0, 0, 0, 0, 0, 0, 0, 9, 'x'}, dst)
	}
	got := 0
	buf := make([]byte, 1500)
	for {
		to.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, _, err := to.ReadFromUDPAddrPort(buf); err != nil {
			return got
		}
		got++
	}
}

// An INVITE from the Internet to a LAN server: offer "ei", answer "ie".
func TestBridgeOfferAnswer(t *testing.T) {
	configure(t)
	caller, callerAddr := udp(t, "127.0.0.1")
	callee, calleeAddr := udp(t, "127.0.0.2")
	m, h := reqMsg(t, request("INVITE", "rp-1", "a", "", sdpOf(callerAddr)), "127.0.0.1")
	sock, ret := &modtest.Recorder{Name: "sock"}, &modtest.Recorder{Name: "ret"}
	if rc := call(t, m, "rtpproxy_offer", "eir", "", 0, sock.Ref(), ret.Ref()); rc != 1 {
		t.Fatalf("offer rc %d %v", rc, h.Logs)
	}
	toCallee := mediaAddr(t, m.Req.Body())
	if toCallee.Addr().String() != "127.0.0.2" || !strings.HasSuffix(string(m.Req.Body()), "a=nortpproxy:yes\r\n") {
		t.Fatalf("offer\n%s", m.Req.Body())
	}
	if ret.Vals[0].S != toCallee.String() || sock.Vals[0].S != rtpproxy.SockName {
		t.Fatalf("ret %v sock %v", ret.Vals, sock.Vals)
	}
	rm := replyMsg(200, "INVITE", "rp-1", "a", "b", sdpOf(calleeAddr), "127.0.0.2")
	if rc := call(t, rm, "rtpproxy_answer", "ier"); rc != 1 {
		t.Fatalf("answer rc %d %v", rc, rm.Host.(*modtest.Host).Logs)
	}
	toCaller := mediaAddr(t, rm.Resp.Body())
	if toCaller.Addr().String() != "127.0.0.1" {
		t.Fatalf("answer\n%s", rm.Resp.Body())
	}
	if n := exchange(t, caller, callee, toCaller, 10); n != 10 {
		t.Fatalf("callee got %d", n)
	}
	if n := exchange(t, callee, caller, toCallee, 10); n != 10 {
		t.Fatalf("caller got %d", n)
	}
	up, down, sent, fail := &modtest.Recorder{Name: "up"}, &modtest.Recorder{Name: "down"}, &modtest.Recorder{Name: "sent"}, &modtest.Recorder{Name: "fail"}
	if rc := call(t, rm, "rtpproxy_stats", up.Ref(), down.Ref(), sent.Ref(), fail.Ref()); rc != 1 {
		t.Fatal(rc)
	}
	if up.Vals[0].I != 10 || down.Vals[0].I != 10 || sent.Vals[0].I != 20 || fail.Vals[0].I != 0 {
		t.Fatalf("stats %v %v %v %v", up.Vals, down.Vals, sent.Vals, fail.Vals)
	}
	// the offer SDP, seen again (a spiral), carries the marker: refused
	again, _ := reqMsg(t, request("INVITE", "rp-1", "a", "", string(m.Req.Body())), "127.0.0.1")
	if rc := call(t, again, "rtpproxy_offer", "ei"); rc != -1 {
		t.Fatalf("marked SDP offered again: rc %d", rc)
	}
	bye, _ := reqMsg(t, request("BYE", "rp-1", "b", "a", ""), "127.0.0.2")
	if rc := call(t, bye, "rtpproxy_unforce"); rc != 1 {
		t.Fatalf("unforce rc %d", rc)
	}
	if _, ok := rtprelay.Default().Lookup("rp-1", ""); ok {
		t.Fatal("session after unforce")
	}
}

func TestWithoutTrustUsesSIPSource(t *testing.T) {
	configure(t)
	m, _ := reqMsg(t, request("INVITE", "rp-2", "a", "", sdpOf(netip.MustParseAddrPort("10.9.9.9:4000"))), "127.0.0.1")
	if rc := call(t, m, "rtpproxy_offer", "ei"); rc != 1 {
		t.Fatal(rc)
	}
	si, _ := rtprelay.Default().Lookup("rp-2", "")
	if si.Streams[0].Legs[0].Target != netip.MustParseAddrPort("127.0.0.1:4000") {
		t.Fatalf("target %v", si.Streams[0].Legs[0].Target)
	}
	rtprelay.Default().Delete("rp-2", "", "")
}

func TestEngage(t *testing.T) {
	configure(t)
	caller, callerAddr := udp(t, "127.0.0.1")
	callee, calleeAddr := udp(t, "127.0.0.2")
	inv, h := reqMsg(t, request("INVITE", "rp-3", "a", "", sdpOf(callerAddr)), "127.0.0.1")
	if rc := call(t, inv, "rtpproxy_engage", "eir"); rc != 1 {
		t.Fatalf("engage rc %d %v", rc, h.Logs)
	}
	e := rtpproxy.Engaged(inv)
	if e == nil || e.CallID != "rp-3" || e.FromTag != "a" {
		t.Fatalf("engagement %+v", e)
	}
	toCallee := mediaAddr(t, inv.Req.Body())
	// what the SIP runtime does: the 183/200 with SDP goes through Handle
	ok := replyMsg(200, "INVITE", "rp-3", "a", "b", sdpOf(calleeAddr), "127.0.0.2")
	if rc := e.Handle(ok); rc != 1 {
		t.Fatalf("Handle(200) = %d %v", rc, ok.Host.(*modtest.Host).Logs)
	}
	toCaller := mediaAddr(t, ok.Resp.Body())
	if toCaller.Addr().String() != "127.0.0.1" {
		t.Fatalf("200\n%s", ok.Resp.Body())
	}
	if n := exchange(t, caller, callee, toCaller, 5); n != 5 {
		t.Fatalf("callee got %d", n)
	}
	if n := exchange(t, callee, caller, toCallee, 5); n != 5 {
		t.Fatalf("caller got %d", n)
	}
	// an ACK without SDP and a 180 without SDP need nothing
	ack, _ := reqMsg(t, request("ACK", "rp-3", "a", "b", ""), "127.0.0.1")
	if rc := e.Handle(ack); rc != 0 {
		t.Fatalf("Handle(ACK) = %d", rc)
	}
	// a re-INVITE from the callee goes internal -> external
	reinv, _ := reqMsg(t, request("INVITE", "rp-3", "b", "a", sdpOf(calleeAddr)), "127.0.0.2")
	if rc := e.Handle(reinv); rc != 1 || mediaAddr(t, reinv.Req.Body()) != toCaller {
		t.Fatalf("re-INVITE rc %d\n%s", rc, reinv.Req.Body())
	}
	// its failure does not drop an established call
	if rc := e.Handle(replyMsg(488, "INVITE", "rp-3", "b", "a", "", "127.0.0.1")); rc != 0 {
		t.Fatalf("Handle(488 to re-INVITE) = %d", rc)
	}
	bye, _ := reqMsg(t, request("BYE", "rp-3", "a", "b", ""), "127.0.0.1")
	if rc := e.Handle(bye); rc != 1 {
		t.Fatalf("Handle(BYE) = %d", rc)
	}
	if _, ok := rtprelay.Default().Lookup("rp-3", ""); ok {
		t.Fatal("media after BYE")
	}
}

func TestEngageLateOfferAndFailure(t *testing.T) {
	configure(t)
	_, callerAddr := udp(t, "127.0.0.1")
	_, calleeAddr := udp(t, "127.0.0.2")
	inv, _ := reqMsg(t, request("INVITE", "rp-4", "a", "", ""), "127.0.0.1")
	if rc := call(t, inv, "rtpproxy_engage", "ei"); rc != 1 {
		t.Fatal(rc)
	}
	e := rtpproxy.Engaged(inv)
	ok := replyMsg(200, "INVITE", "rp-4", "a", "b", sdpOf(calleeAddr), "127.0.0.2")
	if rc := e.Handle(ok); rc != 1 || mediaAddr(t, ok.Resp.Body()).Addr().String() != "127.0.0.1" {
		t.Fatalf("offer in 200: rc %d\n%s", rc, ok.Resp.Body())
	}
	ack, _ := reqMsg(t, request("ACK", "rp-4", "a", "b", sdpOf(callerAddr)), "127.0.0.1")
	if rc := e.Handle(ack); rc != 1 || mediaAddr(t, ack.Req.Body()).Addr().String() != "127.0.0.2" {
		t.Fatalf("answer in ACK: rc %d\n%s", rc, ack.Req.Body())
	}
	if si, _ := rtprelay.Default().Lookup("rp-4", ""); !si.Answered {
		t.Fatalf("%+v", si)
	}
	e.End()

	inv, _ = reqMsg(t, request("INVITE", "rp-5", "a", "", sdpOf(callerAddr)), "127.0.0.1")
	if rc := call(t, inv, "rtpproxy_engage", "ei"); rc != 1 {
		t.Fatal(rc)
	}
	if rc := rtpproxy.Engaged(inv).Handle(replyMsg(486, "INVITE", "rp-5", "a", "b", "", "127.0.0.2")); rc != 1 {
		t.Fatalf("Handle(486) = %d", rc)
	}
	if _, ok := rtprelay.Default().Lookup("rp-5", ""); ok {
		t.Fatal("media of a failed call kept")
	}
}

func TestFlags(t *testing.T) {
	f := modtest.Fn(t, "rtpproxy", "rtpproxy_offer")
	for _, good := range []string{"", "ei", "ie", "ii", "ee", "rocfaw", "eit30", "EIr", "z20ie", "n"} {
		if _, err := modtest.Fixup(t, f, modtest.CS(good)); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
	for _, bad := range []string{"e", "eie", "x", "t", "q"} {
		if _, err := modtest.Fixup(t, f, modtest.CS(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := modtest.Fixup(t, f, modtest.CS("ei"), modtest.CS("not-an-ip")); err == nil {
		t.Error("bad ip accepted")
	}
}

func TestMissingInterface(t *testing.T) {
	apply, err := modules.Lookup("rtpproxy").Configure(modules.Params{
		"interfaces": {value.S("pub/127.0.0.1:23400-23499")}, "nortpproxy_str": {value.S("")},
	})
	if err != nil {
		t.Fatal(err)
	}
	apply()
	defer configure(t)
	m, h := reqMsg(t, request("INVITE", "rp-6", "a", "", sdpOf(netip.MustParseAddrPort("127.0.0.1:4000"))), "127.0.0.1")
	if rc := call(t, m, "rtpproxy_offer", "ei"); rc != -1 || !h.HasLog(msgctx.LErr, `interface "external"`) {
		t.Fatalf("rc %d logs %v", rc, h.Logs)
	}
	// without i/e flags the single interface serves both sides, and an
	// empty nortpproxy_str adds no marker
	if rc := call(t, m, "rtpproxy_offer"); rc != 1 || strings.Contains(string(m.Req.Body()), "nortpproxy") {
		t.Fatalf("rc %d\n%s", rc, m.Req.Body())
	}
	rtprelay.Default().Delete("rp-6", "", "")
}
