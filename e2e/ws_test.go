package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// WebSocket end-to-end tests (RFC 7118): a minimal WebSocket client
// (gobwas/ws, which sipgo uses) sends one SIP message per text frame.

// wsDial opens a WebSocket to url with the "sip" subprotocol.
func wsDial(t *testing.T, url string, tlsConf *tls.Config) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := ws.Dialer{Protocols: []string{"sip"}, TLSConfig: tlsConf}
	c, _, hs, err := d.Dial(ctx, url)
	if err != nil {
		t.Fatalf("WebSocket to %s: %v", url, err)
	}
	if hs.Protocol != "sip" {
		t.Errorf("subprotocol %q, want sip", hs.Protocol)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// wsSend sends one SIP message in a text frame.
func wsSend(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := wsutil.WriteClientText(c, []byte(msg)); err != nil {
		t.Fatalf("WebSocket send: %v", err)
	}
}

// wsRead reads the next SIP message from the proxy.
func wsRead(t *testing.T, c net.Conn) sip.Message {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	for {
		data, op, err := wsutil.ReadServerData(c)
		if err != nil {
			t.Fatalf("WebSocket read: %v", err)
		}
		if op != ws.OpText && op != ws.OpBinary {
			continue
		}
		msg, err := sip.ParseMessage(data)
		if err != nil {
			t.Fatalf("parsing %q: %v", data, err)
		}
		return msg
	}
}

// wsExchange sends req and returns the first final response.
func wsExchange(t *testing.T, c net.Conn, req string) *sip.Response {
	t.Helper()
	wsSend(t, c, req)
	for {
		if res, ok := wsRead(t, c).(*sip.Response); ok && res.StatusCode >= 200 {
			return res
		}
	}
}

// OPTIONS and REGISTER over ws and wss sockets: replies come back in
// frames on the same connection; $pr/$socket_in name the transport.
func TestWSOptionsRegister(t *testing.T) {
	p := newPKI(t)
	pp, wp, sp := freePort(t), freePort(t), freePort(t)
	script := fmt.Sprintf(`
socket = udp:127.0.0.1:%d
socket = ws:127.0.0.1:%d
socket = wss:127.0.0.1:%d
loadmodule "sl.so"
loadmodule "sipmsgops.so"
%s
%s`, pp, wp, sp, p.tlsModparams(), echoRoute)
	px := startProxy(t, pp, script)

	for _, c := range []struct {
		proto, url string
		port       int
		tls        *tls.Config
	}{
		{"ws", fmt.Sprintf("ws://127.0.0.1:%d/", wp), wp, nil},
		{"wss", fmt.Sprintf("wss://127.0.0.1:%d/", sp), sp, &tls.Config{RootCAs: p.ca.Pool, ServerName: "127.0.0.1"}},
	} {
		t.Run(c.proto, func(t *testing.T) {
			conn := wsDial(t, c.url, c.tls)
			via := strings.ToUpper(c.proto)
			local := randHex(6) + ".invalid" // what browsers put in Via
			res := wsExchange(t, conn, sipReq("OPTIONS", "sip:127.0.0.1", via, local))
			if res.StatusCode != 200 {
				t.Fatalf("OPTIONS: %d %s", res.StatusCode, res.Reason)
			}
			if got, want := hdr(res, "X-Proto"), c.proto+" "+c.proto; got != want {
				t.Errorf("X-Proto = %q, want %q", got, want)
			}
			if got, want := hdr(res, "X-Socket"), fmt.Sprintf("%s:127.0.0.1:%d", c.proto, c.port); got != want {
				t.Errorf("X-Socket = %q, want %q", got, want)
			}
			if c.proto == "wss" {
				if got := hdr(res, "X-TLS"); got != "TLSv1.3 0" {
					t.Errorf("X-TLS = %q", got)
				}
			}
			if v := res.Via(); v == nil || v.Transport != via {
				t.Errorf("reply Via %v", v)
			}
			res = wsExchange(t, conn, sipReq("REGISTER", "sip:sipedge.test", via, local,
				"Contact: <sip:alice@"+local+";transport=ws>", "Expires: 60"))
			if res.StatusCode != 200 {
				t.Fatalf("REGISTER: %d %s", res.StatusCode, res.Reason)
			}
		})
	}

	t.Run("silent client does not stall the socket", func(t *testing.T) {
		// a TCP connection that never sends its upgrade request
		idle, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", wp))
		if err != nil {
			t.Fatal(err)
		}
		defer idle.Close()
		conn := wsDial(t, fmt.Sprintf("ws://127.0.0.1:%d/", wp), nil)
		if res := wsExchange(t, conn, sipReq("OPTIONS", "sip:127.0.0.1", "WS", "x.invalid")); res.StatusCode != 200 {
			t.Fatalf("OPTIONS: %d", res.StatusCode)
		}
	})

	if st := px.srv.Snapshot(); st["panics"] != 0 || st["script_faults"] != 0 {
		t.Errorf("panics/faults: %v", st)
	}
}

// A WebSocket client registers (its Contact is a .invalid host, as a
// browser's) and a caller over UDP reaches it: lookup() gives the received
// address, the request is relayed on the client's WebSocket connection and
// its answer comes back to the caller over UDP.
func TestWSRelayToRegisteredClient(t *testing.T) {
	pp, wp := freePort(t), freePort(t)
	script := fmt.Sprintf(`
socket = udp:127.0.0.1:%d
socket = ws:127.0.0.1:%d
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "sipmsgops.so"
route {
	if (is_method("REGISTER")) {
		if (!save("location"))
			sl_reply_error();
		exit;
	}
	if (!lookup("location")) {
		sl_send_reply(404, "Not Found");
		exit;
	}
	record_route();
	if (!t_relay())
		sl_reply_error();
}`, pp, wp)
	startProxy(t, pp, script)

	user := "ws" + randHex(4)
	conn := wsDial(t, fmt.Sprintf("ws://127.0.0.1:%d/", wp), nil)
	local := randHex(6) + ".invalid"
	reg := sipReq("REGISTER", "sip:127.0.0.1", "WS", local,
		fmt.Sprintf("Contact: <sip:%s@%s;transport=ws>", user, local), "Expires: 60")
	reg = strings.ReplaceAll(reg, "alice@sipedge.test", user+"@127.0.0.1")
	if res := wsExchange(t, conn, reg); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d %s", res.StatusCode, res.Reason)
	}

	caller, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	msg := sipReq("MESSAGE", fmt.Sprintf("sip:%s@127.0.0.1", user), "UDP", caller.LocalAddr().String())
	msg = strings.Replace(msg, "To: <sip:alice@sipedge.test>", fmt.Sprintf("To: <sip:%s@127.0.0.1>", user), 1)
	proxy := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: pp}
	if _, err := caller.WriteToUDP([]byte(msg), proxy); err != nil {
		t.Fatal(err)
	}

	// the WebSocket client gets the MESSAGE and answers it
	got := wsRead(t, conn)
	req, ok := got.(*sip.Request)
	if !ok || req.Method != sip.MESSAGE {
		t.Fatalf("WebSocket client got %v", got)
	}
	if v := req.Via(); v == nil || v.Transport != "WS" || v.Port != wp {
		t.Errorf("top Via %v, want the proxy's WS socket", v)
	}
	if rr := req.GetHeader("Record-Route"); rr == nil || !strings.Contains(rr.Value(), "transport=ws") {
		t.Errorf("Record-Route %v", rr)
	}
	wsSend(t, conn, sip.NewResponseFromRequest(req, 200, "OK", nil).String())

	caller.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65535)
	for {
		n, _, err := caller.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("no reply at the caller: %v", err)
		}
		m, err := sip.ParseMessage(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		res, ok := m.(*sip.Response)
		if !ok || res.StatusCode < 200 {
			continue
		}
		if res.StatusCode != 200 {
			t.Fatalf("caller got %d %s", res.StatusCode, res.Reason)
		}
		break
	}
}
