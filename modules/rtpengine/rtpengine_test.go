package rtpengine_test

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/internal/modtest"
	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/modules"
	_ "github.com/sipedge/sipedge/modules/all"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/rtprelay"
	"github.com/sipedge/sipedge/runtime/value"
)

// TestFixtures runs testdata/*.txtar through `sipedge test`'s runner.
func TestFixtures(t *testing.T) { modtest.Fixtures(t) }

// Interfaces of these tests: below the ephemeral port range, away from the
// fixture's and the other packages' ranges.
const ifaces = "external/127.0.0.1:22000-22199;internal/127.0.0.2:22200-22399"

func configure(t *testing.T) {
	t.Helper()
	apply, err := modules.Lookup("rtpengine").Configure(modules.Params{
		"interfaces": {value.S(ifaces)}, "port_min": {value.I(30000)}, "port_max": {value.I(40000)},
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

func reply(code int, method, callID, from, to, body string) *sip.Response {
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
	return msg.(*sip.Response)
}

func reqMsg(t *testing.T, text string, src string) (*msgctx.Msg, *modtest.Host) {
	m, h := modtest.NewMsg(t, text)
	m.Src = msgctx.Addr{IP: src, Port: 5060, Proto: "udp"}
	return m, h
}

func replyMsg(resp *sip.Response, src string) (*msgctx.Msg, *modtest.Host) {
	h := &modtest.Host{}
	return &msgctx.Msg{Resp: resp, Kind: ast.OnReplyRoute, Host: h, Src: msgctx.Addr{IP: src, Port: 5060}}, h
}

func call(t *testing.T, m *msgctx.Msg, name string, args ...any) int {
	t.Helper()
	return modtest.Call(t, "rtpengine", m, name, args...)
}

func udp(t *testing.T, ip string) *net.UDPConn {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
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
	return netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(port))
}

func rtpPacket(seq byte) []byte {
	return []byte{0x80, 0, 0, seq, 0, 0, 0, seq, 0, 0, 0, 7, 'm', 'e', 'd', 'i', 'a'}
}

func exchange(t *testing.T, from, to *net.UDPConn, dst netip.AddrPort, n int) int {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := from.WriteToUDPAddrPort(rtpPacket(byte(i)), dst); err != nil {
			t.Fatal(err)
		}
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

func TestOfferAnswerMediaDelete(t *testing.T) {
	configure(t)
	caller, callee := udp(t, "127.0.0.1"), udp(t, "127.0.0.2")
	callerAddr := caller.LocalAddr().(*net.UDPAddr).AddrPort()
	calleeAddr := callee.LocalAddr().(*net.UDPAddr).AddrPort()

	m, h := reqMsg(t, request("INVITE", "eng-1", "a", "", sdpOf(callerAddr)), "127.0.0.1")
	if rc := call(t, m, "rtpengine_offer", "direction=external direction=internal"); rc != 1 {
		t.Fatalf("offer rc %d logs %v", rc, h.Logs)
	}
	toCallee := mediaAddr(t, m.Req.Body())
	if toCallee.Addr().String() != "127.0.0.2" || toCallee.Port() < 22200 || toCallee.Port() > 22399 {
		t.Fatalf("offer body\n%s", m.Req.Body())
	}
	if cl := m.Req.ContentLength(); cl == nil || int(*cl) != len(m.Req.Body()) {
		t.Fatalf("Content-Length %v for %d bytes", cl, len(m.Req.Body()))
	}

	rm, h := replyMsg(reply(200, "INVITE", "eng-1", "a", "b", sdpOf(calleeAddr)), "127.0.0.2")
	if rc := call(t, rm, "rtpengine_answer"); rc != 1 {
		t.Fatalf("answer rc %d logs %v", rc, h.Logs)
	}
	toCaller := mediaAddr(t, rm.Resp.Body())
	if toCaller.Addr().String() != "127.0.0.1" || toCaller.Port() < 22000 || toCaller.Port() > 22199 {
		t.Fatalf("answer body\n%s", rm.Resp.Body())
	}

	if n := exchange(t, caller, callee, toCaller, 20); n != 20 {
		t.Fatalf("callee got %d of 20", n)
	}
	if n := exchange(t, callee, caller, toCallee, 20); n != 20 {
		t.Fatalf("caller got %d of 20", n)
	}
	stat := pvar.Lookup("rtpstat")
	if got := stat.Get(rm, nil, pvar.Index{}).AsString(); got != "RTP: 680 bytes, 40 packets, 0 errors; RTCP: 0 bytes, 0 packets, 0 errors" {
		t.Fatalf("$rtpstat = %q", got)
	}
	if v := stat.Get(rm, "packetloss-max", pvar.Index{}); v.I != 0 || !v.IsInt() {
		t.Fatalf("packetloss-max %v", v)
	}
	if v := stat.Get(rm, "mos-average", pvar.Index{}); !v.IsNull() {
		t.Fatalf("mos %v", v)
	}
	if q := pvar.Lookup("rtpquery").Get(rm, nil, pvar.Index{}).AsString(); !strings.Contains(q, `"call-id":"eng-1"`) {
		t.Fatalf("$rtpquery %s", q)
	}

	bye, _ := reqMsg(t, request("BYE", "eng-1", "a", "b", ""), "127.0.0.1")
	if rc := call(t, bye, "rtpengine_delete"); rc != 1 {
		t.Fatalf("delete rc %d", rc)
	}
	if rc := call(t, bye, "rtpengine_delete"); rc != -1 {
		t.Fatalf("second delete rc %d", rc)
	}
}

func TestManageLateOffer(t *testing.T) {
	configure(t)
	caller, callee := udp(t, "127.0.0.1"), udp(t, "127.0.0.2")
	callerAddr := caller.LocalAddr().(*net.UDPAddr).AddrPort()
	calleeAddr := callee.LocalAddr().(*net.UDPAddr).AddrPort()
	const flags = "in-iface=external out-iface=internal"

	inv, _ := reqMsg(t, request("INVITE", "eng-2", "a", "", ""), "127.0.0.1")
	if rc := call(t, inv, "rtpengine_manage", flags); rc != -1 {
		t.Fatalf("INVITE without SDP: rc %d", rc)
	}
	// the 200 carries the offer: it comes from the internal side
	ok, h := replyMsg(reply(200, "INVITE", "eng-2", "a", "b", sdpOf(calleeAddr)), "127.0.0.2")
	if rc := call(t, ok, "rtpengine_manage", "in-iface=internal out-iface=external"); rc != 1 {
		t.Fatalf("200 rc %d %v", rc, h.Logs)
	}
	toCallee := mediaAddr(t, ok.Resp.Body())
	if toCallee.Addr().String() != "127.0.0.1" {
		t.Fatalf("offer in 200\n%s", ok.Resp.Body())
	}
	ack, h := reqMsg(t, request("ACK", "eng-2", "a", "b", sdpOf(callerAddr)), "127.0.0.1")
	if rc := call(t, ack, "rtpengine_manage", flags); rc != 1 {
		t.Fatalf("ACK rc %d %v", rc, h.Logs)
	}
	toCaller := mediaAddr(t, ack.Req.Body())
	if toCaller.Addr().String() != "127.0.0.2" {
		t.Fatalf("answer in ACK\n%s", ack.Req.Body())
	}
	si, found := rtprelay.Default().Lookup("eng-2", "")
	if !found || !si.Answered || si.Tags != [2]string{"b", "a"} {
		t.Fatalf("session %+v", si)
	}
	if n := exchange(t, caller, callee, toCallee, 5); n != 5 {
		t.Fatalf("callee got %d", n)
	}
	if n := exchange(t, callee, caller, toCaller, 5); n != 5 {
		t.Fatalf("caller got %d", n)
	}
	// a re-INVITE with SDP is an offer, its 200 an answer
	reinv, _ := reqMsg(t, request("INVITE", "eng-2", "a", "b", sdpOf(callerAddr)), "127.0.0.1")
	if rc := call(t, reinv, "rtpengine_manage"); rc != 1 || mediaAddr(t, reinv.Req.Body()) != toCaller {
		t.Fatalf("re-INVITE rc %d\n%s", rc, reinv.Req.Body())
	}
	ok2, _ := replyMsg(reply(200, "INVITE", "eng-2", "a", "b", sdpOf(calleeAddr)), "127.0.0.2")
	if rc := call(t, ok2, "rtpengine_manage"); rc != 1 || mediaAddr(t, ok2.Resp.Body()) != toCallee {
		t.Fatalf("re-INVITE 200 rc %d\n%s", rc, ok2.Resp.Body())
	}
	bye, _ := reqMsg(t, request("BYE", "eng-2", "b", "a", ""), "127.0.0.2")
	if rc := call(t, bye, "rtpengine_manage"); rc != 1 {
		t.Fatalf("BYE rc %d", rc)
	}
	if _, found := rtprelay.Default().Lookup("eng-2", ""); found {
		t.Fatal("session survived BYE")
	}
}

func TestManageFailedCall(t *testing.T) {
	configure(t)
	caller := udp(t, "127.0.0.1")
	inv, _ := reqMsg(t, request("INVITE", "eng-3", "a", "", sdpOf(caller.LocalAddr().(*net.UDPAddr).AddrPort())), "127.0.0.1")
	if rc := call(t, inv, "rtpengine_manage"); rc != 1 {
		t.Fatalf("rc %d", rc)
	}
	busy, _ := replyMsg(reply(486, "INVITE", "eng-3", "a", "b", ""), "127.0.0.2")
	if rc := call(t, busy, "rtpengine_manage"); rc != 1 {
		t.Fatalf("486 rc %d", rc)
	}
	if _, found := rtprelay.Default().Lookup("eng-3", ""); found {
		t.Fatal("session survived a failed INVITE")
	}
}

func TestSDPIntoVariable(t *testing.T) {
	configure(t)
	caller := udp(t, "127.0.0.1")
	body := sdpOf(caller.LocalAddr().(*net.UDPAddr).AddrPort())
	m, h := reqMsg(t, request("INVITE", "eng-4", "a", "", body), "127.0.0.1")
	sock, out := &modtest.Recorder{Name: "sock"}, &modtest.Recorder{Name: "sdp"}
	if rc := call(t, m, "rtpengine_offer", "", sock.Ref(), out.Ref()); rc != 1 {
		t.Fatalf("rc %d %v", rc, h.Logs)
	}
	if string(m.Req.Body()) != body {
		t.Fatal("body changed although sdp_pvar was given")
	}
	if len(out.Vals) != 1 || !strings.Contains(out.Vals[0].S, "c=IN IP4 127.0.0.1") || sock.Vals[0].S != "builtin:sipedge" {
		t.Fatalf("sdp %v sock %v", out.Vals, sock.Vals)
	}
	rtprelay.Default().Delete("eng-4", "", "")
}

func TestFlagsFixup(t *testing.T) {
	f := modtest.Fn(t, "rtpengine", "rtpengine_offer")
	for _, bad := range []string{"transcode-PCMA", "ICE=force", "rtcp-mux-demux", "RTP/AVP SDES-off", "record-call=yes",
		"direction=a direction=b direction=c", "media-address=nope", "codec-strip-opus"} {
		if _, err := modtest.Fixup(t, f, modtest.CS(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, good := range []string{"", "trust-address replace-origin replace-session-connection ICE=remove RTP/AVP",
		"direction=ext direction=int", "in-iface=a out-iface=b", "internal external", "label=x via-branch=1 no-redis-update record-call=no",
		"SIP-source-address asymmetric media-handover to-tag from-tag=x call-id=y media-address=10.0.0.1"} {
		if _, err := modtest.Fixup(t, f, modtest.CS(good)); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
}

func TestUnknownInterface(t *testing.T) {
	configure(t)
	m, h := reqMsg(t, request("INVITE", "eng-5", "a", "", sdpOf(netip.MustParseAddrPort("203.0.113.1:4000"))), "127.0.0.1")
	if rc := call(t, m, "rtpengine_offer", "direction=ext direction=int"); rc != -1 {
		t.Fatalf("rc %d", rc)
	}
	if !h.HasLog(msgctx.LErr, `no media interface named "ext"`) {
		t.Fatalf("logs %v", h.Logs)
	}
}

func TestConfigure(t *testing.T) {
	cfg := modules.Lookup("rtpengine").Configure
	for _, p := range []modules.Params{
		{},
		{"interfaces": {value.S("bad")}},
		{"interfaces": {value.S("a/127.0.0.1:30000-30010")}, "media_timeout": {value.I(-1)}},
	} {
		if _, err := cfg(p); err == nil {
			t.Errorf("%v accepted", p)
		}
	}
	// several values add up
	if _, err := cfg(modules.Params{"interfaces": {value.S("a/127.0.0.1:30000-30010"), value.S("b/127.0.0.2")},
		"port_min": {value.I(30000)}, "port_max": {value.I(30100)}}); err != nil {
		t.Fatal(err)
	}
}

func TestMI(t *testing.T) {
	configure(t)
	caller := udp(t, "127.0.0.1")
	m, _ := reqMsg(t, request("INVITE", "eng-6", "a", "", sdpOf(caller.LocalAddr().(*net.UDPAddr).AddrPort())), "127.0.0.1")
	if rc := call(t, m, "rtpengine_offer"); rc != 1 {
		t.Fatal(rc)
	}
	mi := map[string]modules.MICommand{}
	for _, c := range modules.Lookup("rtpengine").MI {
		mi[c.Name] = c
	}
	show, err := mi["rtpengine_show"].Run(nil)
	if err != nil || show.(map[string]any)["sessions"].(int) < 1 {
		t.Fatalf("show %v %v", show, err)
	}
	list, err := mi["rtpengine_list_sessions"].Run(map[string]any{"callid": "eng-6"})
	if err != nil || len(list.(map[string]any)["sessions"].([]any)) != 1 {
		t.Fatalf("list %v %v", list, err)
	}
	var mu sync.Mutex
	var ended []string
	rtprelay.Default().SetOnTimeout(func(callID, fromTag string) {
		mu.Lock()
		ended = append(ended, callID+"/"+fromTag)
		mu.Unlock()
	})
	defer rtprelay.Default().SetOnTimeout(nil)
	if _, err := mi["teardown"].Run(map[string]any{"callid": "eng-6"}); err != nil {
		t.Fatal(err)
	}
	if _, err := mi["teardown"].Run(map[string]any{"callid": "eng-6"}); err == nil {
		t.Fatal("teardown of a gone call")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ended) != 1 || ended[0] != "eng-6/a" {
		t.Fatalf("ended %v", ended)
	}
}
