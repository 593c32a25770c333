package sipstack

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

const badMsgScript = `
socket = udp:127.0.0.1:PORT
udp_workers = 4
loadmodule "sl.so"
route { sl_send_reply(200, "OK"); }
`

// A request sipgo cannot parse is answered 400 (Via, From, To, Call-ID,
// CSeq copied, a To tag added); a reply or garbage is not; the socket
// keeps answering parseable requests.
func TestUnparseableRequestAnswered400(t *testing.T) {
	srv, port, _ := startServer(t, badMsgScript)
	c := newUDPClient(t)
	local := c.c.LocalAddr().String()
	bad := "INVITE sip:bob@example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bKbad1\r\n" +
		"f: \"unbalanced <sip:alice@example.com>;tag=1\r\n" +
		"To: <sip:bob@example.com>\r\n" +
		"Call-ID: bad-1@test\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Content-Length: -3\r\n\r\n"
	c.send(t, port, []byte(bad))
	got, ok := c.recv(2 * time.Second)
	if !ok {
		t.Fatal("no reply to an unparseable request")
	}
	for _, want := range []string{"SIP/2.0 400 Bad Request\r\n", "Via: SIP/2.0/UDP " + local + ";branch=z9hG4bKbad1\r\n",
		"Call-ID: bad-1@test\r\n", "CSeq: 1 INVITE\r\n", "To: <sip:bob@example.com>;tag=", "Warning: 399 sipedge \"unparseable request"} {
		if !strings.Contains(got, want) {
			t.Errorf("reply lacks %q:\n%s", want, got)
		}
	}
	if st := srv.Snapshot(); st["bad_msg_hdr"] != 1 || st["err_requests"] != 1 {
		t.Errorf("bad_msg_hdr %d err_requests %d", st["bad_msg_hdr"], st["err_requests"])
	}

	for _, junk := range []string{
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP " + local + "\r\nContent-Length: -1\r\n\r\n", // a reply
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",                                              // no SIP request line
		"INVITE sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n",                           // no Via
	} {
		c.send(t, port, []byte(junk))
	}
	if msgs := c.drain(300 * time.Millisecond); len(msgs) != 0 {
		t.Errorf("replies to junk: %q", msgs)
	}
	c.send(t, port, options(port, c.port(), "after-bad"))
	if r := waitReply(c, "after-bad", 2*time.Second); statusCode(r) != "200" {
		t.Fatalf("no 200 after the bad requests: %q", r)
	}
}

// Several readers, bad and good datagrams from several sources at once:
// every bad one gets its 400 at its own source.
func TestUnparseableConcurrent(t *testing.T) {
	_, port, _ := startServer(t, badMsgScript)
	const clients, each = 8, 20
	errs := make(chan error, clients)
	for i := range clients {
		go func() {
			c := newUDPClient(t)
			local := c.c.LocalAddr().String()
			for j := range each {
				msg := fmt.Sprintf("OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%d.%d\r\n"+
					"From: <sip:a@b>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: c%d.%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: -1\r\n\r\n",
					local, i, j, i, j)
				c.send(t, port, []byte(msg))
			}
			got := 0
			for got < each {
				r, ok := c.recv(3 * time.Second)
				if !ok {
					break
				}
				if statusCode(r) == "400" && strings.Contains(r, local) {
					got++
				}
			}
			if got != each {
				errs <- fmt.Errorf("client %d: %d of %d 400s", i, got, each)
				return
			}
			errs <- nil
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestBadRequestReply(t *testing.T) {
	raw := "MESSAGE sip:b@x SIP/2.0\nv: SIP/2.0/UDP 10.0.0.1\n ;branch=z9hG4bKf\nt: <sip:b@x>;tag=abc\ni: id1\nCSeq: 7 MESSAGE\n\nbody"
	got := string(badRequestReply([]byte(raw), `bad "From"`, "sipedge"))
	for _, want := range []string{"Via: SIP/2.0/UDP 10.0.0.1 ;branch=z9hG4bKf\r\n", "To: <sip:b@x>;tag=abc\r\n", "Call-ID: id1\r\n",
		"Server: sipedge\r\n", `Warning: 399 sipedge "unparseable request: bad 'From'"`} {
		if !strings.Contains(got, want) {
			t.Errorf("lacks %q:\n%s", want, got)
		}
	}
}

// fakePC returns a datagram at once, so the benchmark measures the
// reader's bookkeeping, not a syscall.
type fakePC struct {
	net.PacketConn
	data []byte
	addr net.Addr
}

func (f *fakePC) ReadFrom(b []byte) (int, net.Addr, error) { return copy(b, f.data), f.addr, nil }

// BenchmarkUDPReader: the cost udpReader adds to every datagram read.
func BenchmarkUDPReader(b *testing.B) {
	data := options(5060, 5062, "bench")
	addr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5062}
	buf := make([]byte, 65535)
	b.Run("direct", func(b *testing.B) {
		var pc net.PacketConn = &fakePC{data: data, addr: addr}
		for b.Loop() {
			pc.ReadFrom(buf)
		}
	})
	b.Run("udpReader", func(b *testing.B) {
		var pc net.PacketConn = &udpReader{PacketConn: &fakePC{data: data, addr: addr}, s: &Server{}}
		for b.Loop() {
			pc.ReadFrom(buf)
		}
	})
}
