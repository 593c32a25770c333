package sipstack

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/runtime/msgctx"
)

const perfInvite = "INVITE sip:bob@example.com SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc;rport\r\n" +
	"Via: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKdef\r\n" +
	"Max-Forwards: 70\r\n" +
	"From: <sip:alice@example.com>;tag=1\r\n" +
	"To: <sip:bob@example.com>\r\n" +
	"Call-ID: perf-1\r\n" +
	"CSeq: 1 INVITE\r\n" +
	"Contact: <sip:alice@10.0.0.1>\r\n" +
	"Content-Type: application/sdp\r\n" +
	"Content-Length: 4\r\n" +
	"\r\n" +
	"v=0\n"

func parseReq(t *testing.T, raw string) *sip.Request {
	t.Helper()
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return msg.(*sip.Request)
}

// A stateless copy renders like sipgo's Clone, and what forward() changes
// on it (top Via parameters, a new Via, Record-Route, R-URI) never shows in
// the original.
func TestShallowCopy(t *testing.T) {
	req := parseReq(t, perfInvite)
	req.SetTransport("UDP")
	req.SetSource("10.0.0.1:5060")
	orig := req.String()

	out := shallowCopy(req)
	if got, want := out.String(), req.Clone().String(); got != want {
		t.Fatalf("copy renders\n%s\nwant\n%s", got, want)
	}
	if out.Transport() != "UDP" || out.Source() != "10.0.0.1:5060" {
		t.Errorf("transport/source not copied: %q %q", out.Transport(), out.Source())
	}
	sock := &Socket{SocketSpec: SocketSpec{Proto: "udp", Host: "127.0.0.1", Port: 5060}}
	gen := &generation{}
	s := &Server{}
	s.prepareRequest(out, msgctx.Addr{IP: "10.0.0.2", Port: 4000, Proto: "udp"}, true,
		msgctx.RecordRoute{On: true}, gen, sock, sock, "z9hG4bKout")
	out.Recipient.Host = "changed.example.com"
	out.Recipient.UriParams.Add("x", "y")

	if got := req.String(); got != orig {
		t.Fatalf("original changed by the copy:\n%s\nwas\n%s", got, orig)
	}
	text := out.String()
	for _, want := range []string{
		"INVITE sip:bob@changed.example.com;x=y SIP/2.0\r\n",
		"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKout\r\n",
		"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc;rport=4000;received=10.0.0.2\r\n",
		"Record-Route: <sip:127.0.0.1:5060;lr>\r\n",
		"\r\n\r\nv=0\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("copy lacks %q:\n%s", want, text)
		}
	}
}

func TestProtoCase(t *testing.T) {
	for _, p := range []string{"udp", "UDP", "tcp", "TCP", "tls", "ws", "WSS", "Sctp", ""} {
		if got, want := upperProto(p), strings.ToUpper(p); got != want {
			t.Errorf("upperProto(%q) = %q, want %q", p, got, want)
		}
		if got, want := lowerProto(p), strings.ToLower(p); got != want {
			t.Errorf("lowerProto(%q) = %q, want %q", p, got, want)
		}
	}
}

func TestUDPReaders(t *testing.T) {
	if n := udpReaders(Options{UDPReaders: 3}, nil); n != 3 {
		t.Errorf("Options.UDPReaders 3: got %d", n)
	}
	if n := udpReaders(Options{UDPReaders: 1000}, nil); n != maxUDPReaders {
		t.Errorf("Options.UDPReaders 1000: got %d, want the cap %d", n, maxUDPReaders)
	}
	if n := udpReaders(Options{}, nil); n < 2 {
		t.Errorf("default: got %d, want at least 2", n)
	}
	srv, _, _ := startServer(t, "udp_workers = 5\nsocket = udp:127.0.0.1:PORT\nroute { exit; }\n")
	if n := udpReaders(Options{}, srv.cur.Load().script); n != 5 {
		t.Errorf("udp_workers = 5: got %d", n)
	}
}

// Requests run on the worker pool or inline; either way every one is
// handled, also when more arrive at once than there are workers.
func TestRequestsUnderBurst(t *testing.T) {
	srv, port, _ := startServer(t, "socket = udp:127.0.0.1:PORT\nloadmodule \"sl.so\"\nroute { sl_send_reply(200, \"OK\"); }\n")
	c := newUDPClient(t)
	const n = 200
	for i := range n {
		c.send(t, port, []byte(fmt.Sprintf("OPTIONS sip:127.0.0.1:%d SIP/2.0\r\n"+
			"Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKburst%d\r\n"+
			"From: <sip:a@127.0.0.1>;tag=%d\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: burst-%d\r\n"+
			"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", port, c.port(), i, i, i)))
	}
	got := map[string]bool{}
	for len(got) < n {
		msg, ok := c.recv(5 * time.Second)
		if !ok {
			break
		}
		if i := strings.Index(msg, "Call-ID: "); i >= 0 && strings.HasPrefix(msg, "SIP/2.0 200") {
			got[strings.SplitN(msg[i:], "\r\n", 2)[0]] = true
		}
	}
	if len(got) != n {
		t.Errorf("%d of %d OPTIONS answered", len(got), n)
	}
	if st := srv.Snapshot(); st["rcv_requests"] < n {
		t.Errorf("rcv_requests = %d, want ≥ %d", st["rcv_requests"], n)
	}
}

// wt_timer is applied once, before serving; a later different value only
// warns. The sipgo globals are restored for the other tests.
func TestApplyWtTimer(t *testing.T) {
	saved := [4]time.Duration{sip.Timer_J, sip.Timer_L, sip.Timer_M, sip.Timer_D}
	txTimers.Lock()
	savedWt := txTimers.wt
	txTimers.wt = 0
	txTimers.Unlock()
	t.Cleanup(func() {
		sip.Timer_J, sip.Timer_L, sip.Timer_M, sip.Timer_D = saved[0], saved[1], saved[2], saved[3]
		txTimers.Lock()
		txTimers.wt = savedWt
		txTimers.Unlock()
	})
	logs := &syncBuffer{}
	s := &Server{log: NewLogger(logs, DefaultLogLevel)}
	gen := &generation{}
	s.applyWtTimer(gen, true) // not set: RFC timers stay
	if sip.Timer_J != saved[0] || sip.Timer_L != saved[1] {
		t.Fatalf("unset wt_timer changed the timers: J=%s L=%s", sip.Timer_J, sip.Timer_L)
	}
	gen.tm.WtTimer = 5
	s.applyWtTimer(gen, false) // a reload cannot apply it
	if sip.Timer_J != saved[0] || !strings.Contains(logs.String(), "needs a restart") {
		t.Fatalf("reload applied wt_timer (J=%s) or did not warn: %s", sip.Timer_J, logs.String())
	}
	s.applyWtTimer(gen, true)
	for i, d := range []time.Duration{sip.Timer_J, sip.Timer_L, sip.Timer_M, sip.Timer_D} {
		if d != 5*time.Second {
			t.Errorf("timer %d = %s, want 5s", i, d)
		}
	}
}

// The GOMAXPROCS controller adds a P as soon as the busy share passes 70%
// and gives one back only after 5 s of a load that fits one fewer.
func TestProcsController(t *testing.T) {
	c := &procsController{max: 4, n: 1}
	// a moderate load, even with a spike, stays on one P
	for _, l := range []float64{0.5, 0.6, 1.0, 0.5, 0.6, 0.5} {
		if got := c.next(l); got != 1 {
			t.Fatalf("load %.1f moved to %d Ps", l, got)
		}
	}
	// saturated for two ticks: one more P, and so on up to max
	for want := 2; want <= 4; want++ {
		c.next(float64(want-1) * 0.99)
		if got := c.next(float64(want-1) * 0.99); got != want {
			t.Fatalf("saturated at %d Ps: got %d", want-1, got)
		}
	}
	if got := c.next(3.99); got != 4 {
		t.Fatalf("went past max: %d", got)
	}
	// a sustained high load crosses the smoothed threshold too
	c = &procsController{max: 2, n: 1}
	n, ticks := 1, 0
	for n == 1 && ticks < 50 {
		n = c.next(0.9)
		ticks++
	}
	if n != 2 || ticks < 3 {
		t.Fatalf("0.9 cores on one P: %d Ps after %d ticks", n, ticks)
	}
	// quiet: it takes procsDownWait ticks per step down
	c = &procsController{max: 4, n: 4, load: 3}
	ticks = 0
	for c.n > 1 && ticks < 10*procsDownWait {
		c.next(0.3)
		ticks++
	}
	if c.n != 1 || ticks < 3*procsDownWait {
		t.Fatalf("%d Ps after %d quiet ticks, want 1 after at least %d", c.n, ticks, 3*procsDownWait)
	}
	// a dip shorter than procsDownWait ticks does not take a P away
	c = &procsController{max: 2, n: 2, load: 1.5}
	for range procsDownWait - 1 {
		c.next(0.1)
	}
	c.next(1.8)
	c.next(1.8)
	if c.n != 2 {
		t.Errorf("a dip shorter than %d ticks removed a P", procsDownWait)
	}
}

// A retransmitted non-INVITE request answered by sl_send_reply gets the
// same reply again, byte for byte, without running the script again (the
// reply is kept in slcache.go, not in a live server transaction).
func TestStatelessReplyRetransmission(t *testing.T) {
	srv, port, logs := startServer(t, `socket = udp:127.0.0.1:PORT
loadmodule "sl.so"
route { xlog("L_NOTICE", "script ran for $rm\n"); sl_send_reply(200, "OK"); }
`)
	c := newUDPClient(t)
	req := []byte(fmt.Sprintf("OPTIONS sip:127.0.0.1:%d SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKretrans1\r\n"+
		"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: retrans-1\r\n"+
		"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", port, c.port()))
	c.send(t, port, req)
	first, ok := c.recv(5 * time.Second)
	if !ok || !strings.HasPrefix(first, "SIP/2.0 200 OK") {
		t.Fatalf("no 200: %q", first)
	}
	for i := range 2 {
		c.send(t, port, req)
		again, ok := c.recv(5 * time.Second)
		if !ok {
			t.Fatalf("retransmission %d not answered", i+1)
		}
		if again != first {
			t.Fatalf("retransmission %d answered\n%s\nfirst answer\n%s", i+1, again, first)
		}
	}
	if n := strings.Count(logs.String(), "script ran for OPTIONS"); n != 1 {
		t.Errorf("the script ran %d times for one request and its retransmissions", n)
	}
	if st := srv.Snapshot(); st["rcv_requests"] != 1 {
		t.Errorf("rcv_requests = %d, want 1", st["rcv_requests"])
	}
	// a new request (new branch) runs the script again
	c.send(t, port, []byte(strings.Replace(string(req), "z9hG4bKretrans1", "z9hG4bKretrans2", 1)))
	if _, ok := c.recv(5 * time.Second); !ok {
		t.Fatal("new request not answered")
	}
	if n := strings.Count(logs.String(), "script ran for OPTIONS"); n != 2 {
		t.Errorf("the script ran %d times for two requests", n)
	}
}

// The reply cache drops entries after timer J.
func TestSLRepliesExpire(t *testing.T) {
	var c slReplies
	c.put("k", slReply{data: []byte("x")})
	if _, ok := c.get("k"); !ok {
		t.Fatal("fresh entry missing")
	}
	c.mu.Lock()
	c.rotated = c.rotated.Add(-2 * slTTL())
	c.mu.Unlock()
	if _, ok := c.get("k"); ok {
		t.Fatal("entry kept past timer J")
	}
}
