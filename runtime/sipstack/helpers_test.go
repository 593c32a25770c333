package sipstack

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/sipedge/sipedge/modules/all"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freePort finds a port free for both UDP and TCP on 127.0.0.1.
func freePort(t testing.TB) int {
	t.Helper()
	for range 50 {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		u.Close()
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("no free port")
	return 0
}

// startServer writes script (with PORT replaced) and serves it on a free
// port over UDP and TCP.
func startServer(t testing.TB, script string) (*Server, int, *syncBuffer) {
	t.Helper()
	port := freePort(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "test.cfg")
	script = strings.ReplaceAll(script, "PORT", fmt.Sprint(port))
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv, err := New(Options{Script: path, Log: logs, UDPReadBuffer: 1 << 20})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		if t.Failed() {
			t.Logf("proxy log:\n%s", logs.String())
		}
	})
	return srv, port, logs
}

// udpClient is a test UDP endpoint.
type udpClient struct {
	c *net.UDPConn
}

func newUDPClient(t testing.TB) *udpClient {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A burst of replies overflows the default receive buffer (each small
	// datagram costs about 1 KB of it), which would look like proxy loss.
	setReadBuffer(c, 4<<20)
	return &udpClient{c: c}
}

func (u *udpClient) port() int { return u.c.LocalAddr().(*net.UDPAddr).Port }

func (u *udpClient) send(t testing.TB, port int, msg []byte) {
	t.Helper()
	if _, err := u.c.WriteToUDP(msg, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
		t.Fatal(err)
	}
}

// recv waits up to d for one datagram.
func (u *udpClient) recv(d time.Duration) (string, bool) {
	buf := make([]byte, 65535)
	u.c.SetReadDeadline(time.Now().Add(d))
	n, _, err := u.c.ReadFromUDP(buf)
	if err != nil {
		return "", false
	}
	return string(buf[:n]), true
}

// drain reads everything that arrives within d.
func (u *udpClient) drain(d time.Duration) []string {
	var out []string
	for {
		m, ok := u.recv(d)
		if !ok {
			return out
		}
		out = append(out, m)
	}
}

func statusCode(msg string) string {
	if !strings.HasPrefix(msg, "SIP/2.0 ") {
		return ""
	}
	f := strings.Fields(msg)
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

func options(port, from int, callid string) []byte {
	return []byte(fmt.Sprintf("OPTIONS sip:ping@127.0.0.1:%d SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%s\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:t@127.0.0.1>;tag=1\r\n"+
		"To: <sip:ping@127.0.0.1>\r\n"+
		"Call-ID: %s\r\n"+
		"CSeq: 1 OPTIONS\r\n"+
		"Content-Length: 0\r\n\r\n", port, from, callid, callid))
}

// waitReply reads until a reply with callid arrives or d passes.
func waitReply(u *udpClient, callid string, d time.Duration) string {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		m, ok := u.recv(time.Until(deadline))
		if ok && strings.Contains(m, callid) {
			return m
		}
	}
	return ""
}
