package sipstack

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func request(method, ruri string, from int, callid string, extra string) []byte {
	return []byte(fmt.Sprintf("%s %s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%s\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:t@127.0.0.1>;tag=1\r\n"+
		"To: <sip:b@127.0.0.1>\r\n"+
		"Call-ID: %s\r\n"+
		"CSeq: 1 %s\r\n"+
		"%s"+
		"Content-Length: 0\r\n\r\n", method, ruri, from, callid, callid, method, extra))
}

const routesScript = `
socket = udp:127.0.0.1:PORT
log_level = 3
loadmodule "sl.so"
loadmodule "sipmsgops.so"

startup_route {
	xlog("L_NOTICE", "startup ran\n");
}

timer_route[tick, 1] {
	xlog("L_NOTICE", "tick\n");
}

route {
	if (is_method("OPTIONS")) {
		sl_send_reply(200, "From $Ri:$Rp");
		exit;
	}
	drop;
}

error_route {
	xlog("L_WARN", "error_route for $rm\n");
	sl_send_reply(400, "Seen by error_route");
}
`

func TestStartupTimerAndErrorRoutes(t *testing.T) {
	srv, port, logs := startServer(t, routesScript)
	c := newUDPClient(t)

	c.send(t, port, request("OPTIONS", fmt.Sprintf("sip:127.0.0.1:%d", port), c.port(), "opt1", ""))
	if r := waitReply(c, "opt1", 2*time.Second); !strings.HasPrefix(r, fmt.Sprintf("SIP/2.0 200 From 127.0.0.1:%d\r\n", port)) {
		t.Fatalf("OPTIONS reply %q", r)
	}
	// a CSeq that does not match the method reaches error_route
	bad := strings.Replace(string(request("OPTIONS", "sip:x@127.0.0.1", c.port(), "bad1", "")), "CSeq: 1 OPTIONS", "CSeq: 1 INVITE", 1)
	c.send(t, port, []byte(bad))
	if r := waitReply(c, "bad1", 2*time.Second); !strings.HasPrefix(r, "SIP/2.0 400 Seen by error_route") {
		t.Fatalf("reply to a bad request %q", r)
	}
	// drop: nothing comes back
	c.send(t, port, request("MESSAGE", "sip:x@127.0.0.1", c.port(), "drop1", ""))
	if r := waitReply(c, "drop1", 300*time.Millisecond); r != "" {
		t.Fatalf("dropped request answered: %q", r)
	}
	time.Sleep(1200 * time.Millisecond)
	l := logs.String()
	if n := strings.Count(l, "startup ran"); n != 1 {
		t.Errorf("startup_route ran %d times", n)
	}
	if !strings.Contains(l, "tick") {
		t.Errorf("timer_route did not run within 1.2 s")
	}
	if !strings.Contains(l, "error_route for OPTIONS") {
		t.Errorf("error_route did not log")
	}
	st := srv.Snapshot()
	if st["err_requests"] != 1 || st["drop_requests"] != 1 {
		t.Errorf("stats %v", st)
	}
}

// Without error_route a malformed request is answered by the runtime.
func TestBadRequestDefaultReply(t *testing.T) {
	_, port, _ := startServer(t, `
socket = udp:127.0.0.1:PORT
route { drop; }
`)
	c := newUDPClient(t)
	bad := strings.Replace(string(request("OPTIONS", "sip:x@127.0.0.1", c.port(), "v7", "")), "OPTIONS sip:x@127.0.0.1 SIP/2.0", "OPTIONS sip:x@127.0.0.1 SIP/7.0", 1)
	c.send(t, port, []byte(bad))
	if r := waitReply(c, "v7", 2*time.Second); !strings.HasPrefix(r, "SIP/2.0 505 ") {
		t.Fatalf("reply %q", r)
	}
}

// Reload: a broken script is refused with positioned errors and the
// running one keeps serving; a good one replaces it.
func TestReload(t *testing.T) {
	srv, port, _ := startServer(t, `
socket = udp:127.0.0.1:PORT
loadmodule "sl.so"
route { sl_send_reply(200, "one"); }
`)
	c := newUDPClient(t)
	ask := func(id string) string {
		c.send(t, port, request("OPTIONS", "sip:x@127.0.0.1", c.port(), id, ""))
		r := waitReply(c, id, 2*time.Second)
		line, _, _ := strings.Cut(r, "\r\n")
		return line
	}
	if got := ask("r1"); got != "SIP/2.0 200 one" {
		t.Fatalf("before reload: %q", got)
	}
	path := srv.opts.Script
	os.WriteFile(path, []byte(fmt.Sprintf("socket = udp:127.0.0.1:%d\nloadmodule \"sl.so\"\nroute { sl_send_replyy(200, \"two\"); }\n", port)), 0o644)
	err := srv.Reload()
	if err == nil || !strings.Contains(err.Error(), path+":3:9") {
		t.Fatalf("broken reload: error %v", err)
	}
	if got := ask("r2"); got != "SIP/2.0 200 one" {
		t.Fatalf("after a refused reload: %q", got)
	}
	os.WriteFile(path, []byte(fmt.Sprintf("socket = udp:127.0.0.1:%d\nloadmodule \"sl.so\"\nroute { sl_send_reply(200, \"two\"); }\n", port)), 0o644)
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := ask("r3"); got != "SIP/2.0 200 two" {
		t.Fatalf("after reload: %q", got)
	}
	if srv.Generation() != 2 {
		t.Errorf("generation %d", srv.Generation())
	}
}

func TestParseSocket(t *testing.T) {
	cases := []struct {
		in   string
		want SocketSpec
		err  bool
	}{
		{"udp:127.0.0.1:5060", SocketSpec{Proto: "udp", Host: "127.0.0.1", Port: 5060}, false},
		{"tcp:10.0.0.1:5070 as 203.0.113.5:5080", SocketSpec{Proto: "tcp", Host: "10.0.0.1", Port: 5070, AdvHost: "203.0.113.5", AdvPort: 5080}, false},
		{"127.0.0.1", SocketSpec{Proto: "udp", Host: "127.0.0.1", Port: 5060}, false},
		{"udp:*:5060", SocketSpec{Proto: "udp", Host: "0.0.0.0", Port: 5060}, false},
		{"udp:[::1]:5062", SocketSpec{Proto: "udp", Host: "::1", Port: 5062}, false},
		{"tls:127.0.0.1", SocketSpec{Proto: "tls", Host: "127.0.0.1", Port: 5061}, false},
		{"ws:127.0.0.1:8080", SocketSpec{Proto: "ws", Host: "127.0.0.1", Port: 8080}, false},
		{"WSS:127.0.0.1", SocketSpec{Proto: "wss", Host: "127.0.0.1", Port: 443}, false},
		{"sctp:127.0.0.1:5060", SocketSpec{}, true},
		{"udp:127.0.0.1:99999", SocketSpec{}, true},
	}
	for _, c := range cases {
		got, err := ParseSocket(c.in)
		if (err != nil) != c.err || (!c.err && got != c.want) {
			t.Errorf("ParseSocket(%q) = %+v, %v", c.in, got, err)
		}
	}
}
