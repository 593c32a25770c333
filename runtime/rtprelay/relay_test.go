package rtprelay

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// party is a fake user agent: an RTP socket on an even port and the RTCP
// socket next to it.
type party struct {
	rtp, rtcp *net.UDPConn
}

func newParty(t testing.TB, ip string) *party {
	t.Helper()
	for i := 0; i < 100; i++ {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
		if err != nil {
			t.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		if port%2 == 0 {
			if c2, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip), Port: port + 1}); err == nil {
				p := &party{rtp: c, rtcp: c2}
				t.Cleanup(func() { c.Close(); c2.Close() })
				return p
			}
		}
		c.Close()
	}
	t.Fatal("no even port pair")
	return nil
}

func (p *party) addr() netip.AddrPort { return p.rtp.LocalAddr().(*net.UDPAddr).AddrPort() }

func rtpPacket(t testing.TB, seq uint16, ts, ssrc uint32, payload []byte) []byte {
	t.Helper()
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc}, Payload: payload}
	b, err := pkt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sendTo(t testing.TB, c *net.UDPConn, to netip.AddrPort, b []byte) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort(b, to); err != nil {
		t.Fatal(err)
	}
}

type got struct {
	data []byte
	from netip.AddrPort
}

// recvAll reads until idle has passed without a packet.
func recvAll(c *net.UDPConn, idle time.Duration) []got {
	var out []got
	buf := make([]byte, 2048)
	for {
		c.SetReadDeadline(time.Now().Add(idle))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return out
		}
		out = append(out, got{append([]byte(nil), buf[:n]...), from})
	}
}

// mPort reads the first m= port and c= address of a rewritten body.
func relayAddr(t testing.TB, body []byte) netip.AddrPort {
	t.Helper()
	var ip, port string
	for _, l := range strings.Split(string(body), "\r\n") {
		if strings.HasPrefix(l, "c=IN IP4 ") && ip == "" {
			ip = strings.TrimPrefix(l, "c=IN IP4 ")
		}
		if strings.HasPrefix(l, "m=") && port == "" {
			port = strings.Fields(l)[1]
		}
	}
	n, _ := strconv.Atoi(port)
	return netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(n))
}

func offerFor(p *party) []byte {
	a := p.addr()
	return []byte(sdp("v=0", "o=- 1 1 IN IP4 "+a.Addr().String(), "s=-", "c=IN IP4 "+a.Addr().String(), "t=0 0",
		"m=audio "+strconv.Itoa(int(a.Port()))+" RTP/AVP 0"))
}

// call sets up call-1 between a caller on 127.0.0.1 (pub) and a callee on
// 127.0.0.2 (lan); it returns the relay addresses each one was given.
func call(t testing.TB, p *Profile, caller, callee *party) (forCaller, forCallee netip.AddrPort) {
	t.Helper()
	res, err := p.Process(&Request{Op: Offer, CallID: "call-1", FromTag: "a", Body: offerFor(caller),
		InIface: "pub", OutIface: "lan", TrustAddress: true})
	if err != nil {
		t.Fatal(err)
	}
	forCallee = relayAddr(t, res.Body)
	res, err = p.Process(&Request{Op: Answer, Reply: true, CallID: "call-1", FromTag: "a", ToTag: "b",
		Body: offerFor(callee), TrustAddress: true})
	if err != nil {
		t.Fatal(err)
	}
	return relayAddr(t, res.Body), forCallee
}

func TestRelayForwardsBothWays(t *testing.T) {
	r, p := newTestRelay(t, testIfaces, nil)
	caller, callee := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.2")
	toRelayPub, toRelayLan := call(t, p, caller, callee)
	if toRelayPub.Addr().String() != "127.0.0.1" || toRelayLan.Addr().String() != "127.0.0.2" {
		t.Fatalf("relay addresses %v %v", toRelayPub, toRelayLan)
	}
	var sent [][]byte
	for i := 0; i < 200; i++ {
		b := rtpPacket(t, uint16(1000+i), uint32(160*i), 0xA11CE, []byte("caller-"+strconv.Itoa(i)))
		sent = append(sent, b)
		sendTo(t, caller.rtp, toRelayPub, b)
	}
	rcv := recvAll(callee.rtp, 300*time.Millisecond)
	if len(rcv) != 200 {
		t.Fatalf("callee got %d packets, want 200", len(rcv))
	}
	for i, g := range rcv {
		if !bytes.Equal(g.data, sent[i]) || g.from != toRelayLan {
			t.Fatalf("packet %d: from %v (want %v), equal=%v", i, g.from, toRelayLan, bytes.Equal(g.data, sent[i]))
		}
	}
	sent = sent[:0]
	for i := 0; i < 200; i++ {
		b := rtpPacket(t, uint16(i), uint32(160*i), 0xB0B, []byte("callee-"+strconv.Itoa(i)))
		sent = append(sent, b)
		sendTo(t, callee.rtp, toRelayLan, b)
	}
	rcv = recvAll(caller.rtp, 300*time.Millisecond)
	if len(rcv) != 200 {
		t.Fatalf("caller got %d packets, want 200", len(rcv))
	}
	for i, g := range rcv {
		if !bytes.Equal(g.data, sent[i]) || g.from != toRelayPub {
			t.Fatalf("packet %d back: from %v (want %v)", i, g.from, toRelayPub)
		}
	}
	// RTCP goes RTP port + 1 to RTP port + 1
	rtcp := []byte{0x81, 201, 0, 1, 0, 0, 0, 1}
	sendTo(t, caller.rtcp, netip.AddrPortFrom(toRelayPub.Addr(), toRelayPub.Port()+1), rtcp)
	if rcv := recvAll(callee.rtcp, 200*time.Millisecond); len(rcv) != 1 || !bytes.Equal(rcv[0].data, rtcp) ||
		rcv[0].from.Port() != toRelayLan.Port()+1 {
		t.Fatalf("rtcp: %+v", rcv)
	}
	si, ok := r.Lookup("call-1", "a")
	if !ok {
		t.Fatal("no session")
	}
	if si.Sent[0].Packets != 201 || si.Sent[1].Packets != 200 || si.Sent[0].RTCP != 1 || si.Sent[0].Lost != 0 || si.Sent[0].Dropped != 0 {
		t.Fatalf("stats %+v / %+v", si.Sent[0], si.Sent[1])
	}
	leg := si.Streams[0].Legs[0]
	if leg.RTP.SSRC != 0xA11CE || leg.Latched != caller.addr() || leg.RTP.LastSeen.IsZero() {
		t.Fatalf("leg %+v", leg)
	}
	if st := r.Stats(); st.Media.Packets != 401 || st.Sessions != 1 || st.PortsInUse != 2 {
		t.Fatalf("relay stats %+v", st)
	}
}

func TestLatching(t *testing.T) {
	r, p := newTestRelay(t, testIfaces, nil)
	caller, callee := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.2")
	// The caller's SDP names one port, but it really sends from another
	// socket (a NAT): media to it must follow the real source.
	nat := newParty(t, "127.0.0.1")
	toPub, toLan := call(t, p, caller, callee)
	sendTo(t, nat.rtp, toPub, rtpPacket(t, 1, 0, 1, []byte("x")))
	if rcv := recvAll(callee.rtp, 200*time.Millisecond); len(rcv) != 1 {
		t.Fatalf("callee got %d", len(rcv))
	}
	sendTo(t, callee.rtp, toLan, rtpPacket(t, 1, 0, 2, []byte("y")))
	if rcv := recvAll(nat.rtp, 200*time.Millisecond); len(rcv) != 1 {
		t.Fatalf("latched source got %d packets", len(rcv))
	}
	if rcv := recvAll(caller.rtp, 50*time.Millisecond); len(rcv) != 0 {
		t.Fatalf("SDP address still gets media after latching")
	}
	// A third source is refused.
	intruder := newParty(t, "127.0.0.1")
	for i := 0; i < 10; i++ {
		sendTo(t, intruder.rtp, toPub, rtpPacket(t, uint16(100+i), 0, 666, []byte("evil")))
	}
	if rcv := recvAll(callee.rtp, 200*time.Millisecond); len(rcv) != 0 {
		t.Fatalf("intruder's packets relayed: %d", len(rcv))
	}
	si, _ := r.Lookup("call-1", "a")
	if w := si.Streams[0].Legs[0].RTP.WrongSrc; w != 10 {
		t.Fatalf("wrong source count %d", w)
	}
	// A re-INVITE naming a new address forgets the latch.
	if _, err := p.Process(&Request{Op: Offer, CallID: "call-1", FromTag: "a", ToTag: "b", Body: offerFor(intruder), TrustAddress: true}); err != nil {
		t.Fatal(err)
	}
	sendTo(t, intruder.rtp, toPub, rtpPacket(t, 200, 0, 666, []byte("ok now")))
	if rcv := recvAll(callee.rtp, 200*time.Millisecond); len(rcv) != 1 {
		t.Fatalf("after re-INVITE got %d", len(rcv))
	}
}

func TestNonRTPDropped(t *testing.T) {
	r, p := newTestRelay(t, testIfaces, nil)
	caller, callee := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.2")
	toPub, _ := call(t, p, caller, callee)
	for _, b := range [][]byte{
		[]byte("hello world, not rtp"),
		{0x40, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}, // version 1
		{0x80, 0, 0},                            // short
		{0x8f, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}, // CSRC count beyond the packet
		make([]byte, 4000),                      // larger than any RTP the relay takes
	} {
		sendTo(t, caller.rtp, toPub, b)
	}
	sendTo(t, caller.rtp, toPub, rtpPacket(t, 1, 0, 1, []byte("real")))
	rcv := recvAll(callee.rtp, 200*time.Millisecond)
	if len(rcv) != 1 {
		t.Fatalf("callee got %d packets, want only the RTP one", len(rcv))
	}
	if st := r.Stats(); st.Media.NonRTP != 5 || st.Media.Packets != 1 {
		t.Fatalf("stats %+v", st.Media)
	}
	// the garbage did not latch the source: nothing else was seen before
	si, _ := r.Lookup("call-1", "")
	if si.Streams[0].Legs[0].Latched != caller.addr() {
		t.Fatalf("latched %v", si.Streams[0].Legs[0].Latched)
	}
}

func TestDeleteReleasesAndDrains(t *testing.T) {
	r, p := newTestRelay(t, testIfaces, func(c *ProfileConfig) { c.DrainTime = 150 * time.Millisecond })
	caller, callee := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.2")
	toPub, _ := call(t, p, caller, callee)
	if n := r.Delete("call-1", "b", ""); n != 1 {
		t.Fatalf("deleted %d", n)
	}
	if n := r.Delete("call-1", "", ""); n != 0 {
		t.Fatalf("deleted again %d", n)
	}
	st := r.Stats()
	if st.Sessions != 0 || st.PortsInUse != 0 || st.PortsDraining != 2 || st.SessionsDeleted != 1 {
		t.Fatalf("after delete %+v", st)
	}
	// late packets are swallowed while the ports drain
	sendTo(t, caller.rtp, toPub, rtpPacket(t, 1, 0, 1, []byte("late")))
	if rcv := recvAll(callee.rtp, 100*time.Millisecond); len(rcv) != 0 {
		t.Fatal("late packet relayed")
	}
	if d := r.Stats().Drained; d != 1 {
		t.Fatalf("drained %d", d)
	}
	// a new call meanwhile gets other ports
	res, err := p.Process(&Request{Op: Offer, CallID: "call-2", FromTag: "x", Body: offerFor(caller), InIface: "pub", OutIface: "lan", TrustAddress: true})
	if err != nil {
		t.Fatal(err)
	}
	if a := relayAddr(t, res.Body); a.Port() == 21000 {
		t.Fatal("draining port reused")
	}
	time.Sleep(300 * time.Millisecond)
	st = r.Stats()
	if st.PortsDraining != 0 || st.PortsInUse != 2 {
		t.Fatalf("after drain %+v", st)
	}
	// the released sockets are closed: the ports can be bound again
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(toPub))
	if err != nil {
		t.Fatalf("port still bound: %v", err)
	}
	c.Close()
}

func TestSessionSurvivesReload(t *testing.T) {
	r, p := newTestRelay(t, testIfaces, nil)
	caller, callee := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.2")
	toPub, toLan := call(t, p, caller, callee)
	// "reload": the modules build a new profile from the new modparams;
	// here "pub" moved to another range and a new interface appeared.
	ifs, _ := ParseInterfaces("pub/127.0.0.1:20500-20599;lan/127.0.0.2:21000-21099;more/127.0.0.3:22000-22099", 0, 0)
	p2, err := r.NewProfile(ProfileConfig{Interfaces: ifs, Timeout: time.Minute, HoldTimeout: time.Hour, SetupTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	sendTo(t, caller.rtp, toPub, rtpPacket(t, 1, 0, 1, []byte("after reload")))
	if rcv := recvAll(callee.rtp, 200*time.Millisecond); len(rcv) != 1 || rcv[0].from != toLan {
		t.Fatalf("after reload callee got %+v", rcv)
	}
	// a re-INVITE handled by the new generation keeps the call's ports
	res, err := p2.Process(&Request{Op: Offer, CallID: "call-1", FromTag: "a", ToTag: "b", Body: offerFor(caller), TrustAddress: true})
	if err != nil || res.Created || relayAddr(t, res.Body) != toLan {
		t.Fatalf("re-INVITE after reload: %v %+v", err, res)
	}
	// new calls use the new range
	res, err = p2.Process(&Request{Op: Offer, CallID: "call-2", FromTag: "x", Body: offerFor(callee), InIface: "lan", OutIface: "pub", TrustAddress: true})
	if err != nil {
		t.Fatal(err)
	}
	if a := relayAddr(t, res.Body); a.Port() < 20500 || a.Port() > 20599 {
		t.Fatalf("new call on %v", a)
	}
	if r.Stats().Sessions != 2 {
		t.Fatal("sessions lost")
	}
}

func TestInactivityTimeout(t *testing.T) {
	r, p := newTestRelay(t, testIfaces, func(c *ProfileConfig) {
		c.Timeout, c.SetupTimeout, c.DrainTime = 150*time.Millisecond, 400*time.Millisecond, 0
	})
	var mu sync.Mutex
	var ended []string
	r.SetOnTimeout(func(callID, fromTag string) {
		mu.Lock()
		ended = append(ended, callID+"/"+fromTag)
		mu.Unlock()
	})
	caller, callee := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.2")
	toPub, _ := call(t, p, caller, callee)
	// media keeps it alive
	for i := 0; i < 5; i++ {
		sendTo(t, caller.rtp, toPub, rtpPacket(t, uint16(i), 0, 1, []byte("x")))
		time.Sleep(60 * time.Millisecond)
	}
	if r.Stats().Sessions != 1 {
		t.Fatal("session with media timed out")
	}
	// an unanswered session has the (longer) setup timeout
	if _, err := p.Process(&Request{Op: Offer, CallID: "call-2", FromTag: "x", Body: offerFor(caller)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	if len(ended) != 1 || ended[0] != "call-1/a" {
		t.Fatalf("ended %v", ended)
	}
	mu.Unlock()
	if _, ok := r.Lookup("call-1", ""); ok {
		t.Fatal("timed out session still there")
	}
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(ended) != 2 || ended[1] != "call-2/x" || r.Stats().SessionsTimedOut != 2 || r.Stats().PortsInUse != 0 {
		t.Fatalf("ended %v stats %+v", ended, r.Stats())
	}
}

func TestLossAndJitter(t *testing.T) {
	r, p := newTestRelay(t, testIfaces, nil)
	caller, callee := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.2")
	toPub, _ := call(t, p, caller, callee)
	for i := 0; i < 60; i++ {
		if i%10 == 5 { // 6 packets "lost"
			continue
		}
		sendTo(t, caller.rtp, toPub, rtpPacket(t, uint16(65500+i), uint32(160*i), 7, make([]byte, 160)))
		time.Sleep(2 * time.Millisecond) // 2 ms between packets whose timestamps say 20 ms
	}
	recvAll(callee.rtp, 100*time.Millisecond)
	si, _ := r.Lookup("call-1", "")
	rtpSt := si.Streams[0].Legs[0].RTP
	if rtpSt.Lost != 6 || rtpSt.Packets != 54 {
		t.Fatalf("lost %d packets %d", rtpSt.Lost, rtpSt.Packets)
	}
	// each packet arrives ~18 ms early against its timestamp: the jitter
	// estimate converges towards that
	if rtpSt.JitterUs < 5000 || rtpSt.JitterUs > 40000 {
		t.Fatalf("jitter %d us", rtpSt.JitterUs)
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		p    []byte
		rtcp bool
		want int
	}{
		{[]byte{0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, false, pktRTP},
		{[]byte{0x80, 200, 0, 6, 0, 0, 0, 1}, false, pktRTCP}, // muxed SR
		{[]byte{0x80, 200, 0, 6, 0, 0, 0, 1}, true, pktRTCP},
		{[]byte{0x80, 0, 0, 0, 0, 0, 0, 0}, false, pktBad}, // too short for RTP
		{[]byte{0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, false, pktBad},
		{[]byte{0x81, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, false, pktRTP},
		{[]byte{0x82, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, false, pktBad},
	} {
		if got := classify(c.p, c.rtcp); got != c.want {
			t.Errorf("classify(% x, %v) = %d, want %d", c.p, c.rtcp, got, c.want)
		}
	}
}

func TestPortsExhausted(t *testing.T) {
	r, p := newTestRelay(t, "pub/127.0.0.1:20200-20201;lan/127.0.0.2:21200-21203", func(c *ProfileConfig) { c.DrainTime = 0 })
	caller := newParty(t, "127.0.0.1")
	req := func(id string) *Request {
		return &Request{Op: Offer, CallID: id, FromTag: "a", Body: offerFor(caller), InIface: "pub", OutIface: "lan", TrustAddress: true}
	}
	if _, err := p.Process(req("c1")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Process(req("c2")); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("err %v", err)
	}
	st := r.Stats()
	if st.AllocFailures != 1 || st.Sessions != 1 || st.PortsInUse != 2 {
		t.Fatalf("stats %+v", st)
	}
	r.Delete("c1", "", "")
	if _, err := p.Process(req("c2")); err != nil {
		t.Fatalf("after delete: %v", err)
	}
}

func TestExpecting(t *testing.T) {
	r, p := newTestRelay(t, testIfaces, nil)
	if op := r.Expecting("call-1", "a", "b", true); op != Offer {
		t.Fatal("no session: want offer")
	}
	if _, err := p.Process(&Request{Op: Offer, CallID: "call-1", FromTag: "a", Body: []byte(aliceOffer)}); err != nil {
		t.Fatal(err)
	}
	if op := r.Expecting("call-1", "a", "b", true); op != Answer {
		t.Fatal("200 after an offer: want answer")
	}
	if op := r.Expecting("call-1", "a", "", false); op != Offer {
		t.Fatal("the offerer again: want offer")
	}
	if _, err := p.Process(&Request{Op: Answer, Reply: true, CallID: "call-1", FromTag: "a", ToTag: "b", Body: []byte(bobAnswer)}); err != nil {
		t.Fatal(err)
	}
	if op := r.Expecting("call-1", "a", "b", true); op != Answer {
		t.Fatal("the 200 after an answer in a 183: want answer")
	}
	if op := r.Expecting("call-1", "b", "a", false); op != Offer {
		t.Fatal("a re-INVITE from the callee: want offer")
	}
	if op := r.Expecting("call-1", "a", "b", false); op != Offer {
		t.Fatal("a re-INVITE from the caller: want offer")
	}
}
