package e2e

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/internal/testcert"
	"github.com/sipedge/sipedge/runtime/sipstack"
)

// TLS end-to-end tests. SIPp's Debian build has no TLS (`sipp -v` shows no
// -TLS- feature), so the TLS peers are Go: a crypto/tls client sending
// hand-written requests, and a sipgo UAS on a TLS listener. Certificates
// are made when the tests run (internal/testcert).

// pki is a test CA with certificates for the proxy, a UAS and a client,
// written to a temp dir.
type pki struct {
	ca                 *testcert.CA
	caFile             string
	proxyCert, proxyKy string
	uas, client        *testcert.Leaf
	clientCert         string
	clientKey          string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	p := &pki{ca: testcert.NewCA(t, "sipedge test CA")}
	p.caFile = p.ca.WriteCA(t, dir, "ca.pem")
	p.proxyCert, p.proxyKy = p.ca.Leaf(t, "proxy.sipedge.test", "127.0.0.1", "proxy.sipedge.test").Write(t, dir, "proxy")
	p.uas = p.ca.Leaf(t, "uas.sipedge.test", "127.0.0.1")
	p.client = p.ca.Leaf(t, "alice.sipedge.test", "alice.sipedge.test")
	p.clientCert, p.clientKey = p.client.Write(t, dir, "client")
	return p
}

// tlsModparams are the tls_mgm lines of a script using p.
func (p *pki) tlsModparams(extra ...string) string {
	var b strings.Builder
	b.WriteString("loadmodule \"tls_mgm.so\"\n")
	for _, kv := range [][2]string{
		{"certificate", p.proxyCert}, {"private_key", p.proxyKy}, {"ca_list", p.caFile},
		{"verify_cert", "1"}, {"require_cert", "0"}, {"tls_method", "TLSv1_2-"},
	} {
		fmt.Fprintf(&b, "modparam(\"tls_mgm\", %q, %q)\n", kv[0], kv[1])
	}
	for _, l := range extra {
		b.WriteString(l + "\n")
	}
	return b.String()
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// sipReq is a request with the headers a UA sends; transport is the Via
// token, local the sent-by.
func sipReq(method, ruri, transport, local string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", method, ruri)
	fmt.Fprintf(&b, "Via: SIP/2.0/%s %s;branch=z9hG4bK%s;rport\r\n", transport, local, randHex(8))
	b.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: <sip:alice@sipedge.test>;tag=%s\r\n", randHex(4))
	b.WriteString("To: <sip:alice@sipedge.test>\r\n")
	fmt.Fprintf(&b, "Call-ID: %s@e2e\r\n", randHex(8))
	fmt.Fprintf(&b, "CSeq: 1 %s\r\n", method)
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// readSIP reads one message from a stream.
func readSIP(r *bufio.Reader) (sip.Message, error) {
	var head strings.Builder
	length := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if head.Len() == 0 && strings.TrimSpace(line) == "" {
			continue // keep-alive CRLF
		}
		head.WriteString(line)
		if line == "\r\n" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			if k = strings.ToLower(strings.TrimSpace(k)); k == "content-length" || k == "l" {
				length, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return sip.ParseMessage(append([]byte(head.String()), body...))
}

// exchange sends req on c and returns the first final response.
func exchange(t *testing.T, c net.Conn, req string) *sip.Response {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("send: %v", err)
	}
	r := bufio.NewReader(c)
	for {
		msg, err := readSIP(r)
		if err != nil {
			t.Fatalf("reading the reply to %s: %v", strings.SplitN(req, " ", 2)[0], err)
		}
		if res, ok := msg.(*sip.Response); ok && res.StatusCode >= 200 {
			return res
		}
	}
}

func hdr(res *sip.Response, name string) string {
	if h := res.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// echoScript answers OPTIONS and REGISTER with what the script sees of
// the transport.
const echoRoute = `
route {
	if (is_method("OPTIONS|REGISTER")) {
		append_to_reply("X-Proto: $pr $proto\r\nX-Socket: $socket_in\r\nX-Rcv: $Ri:$Rp\r\n");
		if ($pr == "tls" || $pr == "wss") {
			if (is_peer_verified())
				append_to_reply("X-Peer: verified $tls_peer_subject_cn\r\n");
			else
				append_to_reply("X-Peer: none\r\n");
			append_to_reply("X-TLS: $tls_version $tls_peer_verified\r\n");
		}
		sl_send_reply(200, "OK");
		exit;
	}
	sl_send_reply(404, "Not here");
}
`

// OPTIONS and REGISTER over TLS: the default server domain's certificate
// (verified by the client), $pr/$socket_in/$tls_* in the script, a client
// certificate verified against ca_list; a second socket whose named
// server domain requires a client certificate.
func TestTLSOptionsRegister(t *testing.T) {
	p := newPKI(t)
	pp, tp, sp := freePort(t), freePort(t), freePort(t)
	script := fmt.Sprintf(`
socket = udp:127.0.0.1:%d
socket = tls:127.0.0.1:%d
socket = tls:127.0.0.1:%d
loadmodule "sl.so"
loadmodule "sipmsgops.so"
%s
%s`, pp, tp, sp, p.tlsModparams(
		`modparam("tls_mgm", "server_domain", "strict")`,
		fmt.Sprintf(`modparam("tls_mgm", "match_ip_address", "[strict]127.0.0.1:%d")`, sp),
		fmt.Sprintf(`modparam("tls_mgm", "certificate", "[strict]%s")`, p.proxyCert),
		fmt.Sprintf(`modparam("tls_mgm", "private_key", "[strict]%s")`, p.proxyKy),
		fmt.Sprintf(`modparam("tls_mgm", "ca_list", "[strict]%s")`, p.caFile),
		`modparam("tls_mgm", "require_cert", "[strict]1")`,
	), echoRoute)
	px := startProxy(t, pp, script)

	dial := func(port int, cert *tls.Certificate) (*tls.Conn, error) {
		cfg := &tls.Config{RootCAs: p.ca.Pool, ServerName: "127.0.0.1"}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		d := &net.Dialer{Timeout: 5 * time.Second}
		return tls.DialWithDialer(d, "tcp", fmt.Sprintf("127.0.0.1:%d", port), cfg)
	}

	t.Run("anonymous client", func(t *testing.T) {
		c, err := dial(tp, nil)
		if err != nil {
			t.Fatalf("TLS to the proxy: %v", err)
		}
		defer c.Close()
		local := c.LocalAddr().String()
		res := exchange(t, c, sipReq("OPTIONS", fmt.Sprintf("sip:127.0.0.1:%d;transport=tls", tp), "TLS", local))
		if res.StatusCode != 200 {
			t.Fatalf("OPTIONS: %d %s", res.StatusCode, res.Reason)
		}
		want := map[string]string{
			"X-Proto":  "tls tls",
			"X-Socket": fmt.Sprintf("tls:127.0.0.1:%d", tp),
			"X-Rcv":    fmt.Sprintf("127.0.0.1:%d", tp),
			"X-Peer":   "none",
			"X-TLS":    "TLSv1.3 0",
		}
		for k, v := range want {
			if got := hdr(res, k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		if v := res.Via(); v == nil || !strings.EqualFold(v.Transport, "TLS") {
			t.Errorf("reply Via %v", v)
		}
		// a second request on the same connection
		res = exchange(t, c, sipReq("REGISTER", "sip:sipedge.test", "TLS", local,
			"Contact: <sip:alice@"+local+";transport=tls>", "Expires: 60"))
		if res.StatusCode != 200 || hdr(res, "X-Proto") != "tls tls" {
			t.Fatalf("REGISTER: %d %s, X-Proto %q", res.StatusCode, res.Reason, hdr(res, "X-Proto"))
		}
	})

	t.Run("client certificate", func(t *testing.T) {
		c, err := dial(tp, &p.client.TLS)
		if err != nil {
			t.Fatalf("TLS to the proxy: %v", err)
		}
		defer c.Close()
		res := exchange(t, c, sipReq("OPTIONS", "sip:127.0.0.1", "TLS", c.LocalAddr().String()))
		if got := hdr(res, "X-Peer"); got != "verified alice.sipedge.test" {
			t.Errorf("X-Peer = %q", got)
		}
		if got := hdr(res, "X-TLS"); got != "TLSv1.3 1" {
			t.Errorf("X-TLS = %q", got)
		}
	})

	t.Run("untrusted client certificate", func(t *testing.T) {
		other := testcert.NewCA(t, "another CA").Leaf(t, "mallory")
		// sent even though the proxy asks for certificates of its CA
		cfg := &tls.Config{RootCAs: p.ca.Pool, ServerName: "127.0.0.1",
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &other.TLS, nil }}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", tp), cfg)
		if err == nil {
			// TLS 1.3: the server's verdict arrives with the first read
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, sipReq("OPTIONS", "sip:127.0.0.1", "TLS", c.LocalAddr().String()))
			_, err = readSIP(bufio.NewReader(c))
			c.Close()
		}
		if err == nil {
			t.Fatal("a certificate from another CA was accepted")
		}
	})

	t.Run("named domain requires a certificate", func(t *testing.T) {
		c, err := dial(sp, nil)
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, sipReq("OPTIONS", "sip:127.0.0.1", "TLS", c.LocalAddr().String()))
			_, err = readSIP(bufio.NewReader(c))
			c.Close()
		}
		if err == nil {
			t.Fatal("the [strict] domain accepted a client without a certificate")
		}
		c, err = dial(sp, &p.client.TLS)
		if err != nil {
			t.Fatalf("with a certificate: %v", err)
		}
		defer c.Close()
		res := exchange(t, c, sipReq("OPTIONS", "sip:127.0.0.1", "TLS", c.LocalAddr().String()))
		if got := hdr(res, "X-Socket"); res.StatusCode != 200 || got != fmt.Sprintf("tls:127.0.0.1:%d", sp) {
			t.Errorf("%d, X-Socket %q", res.StatusCode, got)
		}
	})

	if st := px.srv.Snapshot(); st["panics"] != 0 || st["script_faults"] != 0 {
		t.Errorf("panics/faults: %v", st)
	}
}

// A proxy with a tls socket and no certificate does not start.
func TestTLSSocketNeedsCertificate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "proxy.cfg")
	script := fmt.Sprintf("socket = tls:127.0.0.1:%d\nloadmodule \"sl.so\"\nroute { sl_send_reply(404, \"x\"); }\n", freePort(t))
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := sipstack.New(sipstack.Options{Script: path, Log: io.Discard})
	if err == nil {
		srv.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "TLS server domain") {
		t.Fatalf("error %v", err)
	}
}

// tlsUAS is a sipgo UAS on a TLS listener that requires the proxy's
// client certificate: it answers INVITE 180/200 and BYE 200.
type tlsUAS struct {
	port           int
	invites, acks  atomic.Int64
	byes, messages atomic.Int64
	viaTLS, rrTLS  atomic.Int64
	clientVerified atomic.Int64
}

func startTLSUAS(t *testing.T, p *pki) *tlsUAS {
	t.Helper()
	u := &tlsUAS{port: freePort(t)}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("e2e-uas"), sipgo.WithUserAgentHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	params := sip.NewParams()
	params.Add("transport", "tls")
	contact := sip.ContactHeader{Address: sip.Uri{User: "uas", Host: "127.0.0.1", Port: u.port, UriParams: params}}
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		u.invites.Add(1)
		if v := req.Via(); v != nil && v.Transport == "TLS" {
			u.viaTLS.Add(1)
		}
		for _, h := range req.GetHeaders("Record-Route") {
			if strings.Contains(h.Value(), "transport=tls") {
				u.rrTLS.Add(1)
				break
			}
		}
		tx.Respond(sip.NewResponseFromRequest(req, 180, "Ringing", nil))
		res := sip.NewResponseFromRequest(req, 200, "OK", []byte("v=0\r\no=uas 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"))
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		res.AppendHeader(&contact)
		tx.Respond(res)
	})
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { u.acks.Add(1) })
	srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		u.messages.Add(1)
		tx.Respond(sip.NewResponseFromRequest(req, 202, "Accepted", nil))
	})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		u.byes.Add(1)
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	conf := &tls.Config{
		Certificates: []tls.Certificate{p.uas.TLS},
		ClientCAs:    p.ca.Pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.VerifiedChains) > 0 {
				u.clientVerified.Add(1)
			}
			return nil
		},
	}
	l, err := tls.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", u.port), conf)
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(l)
	t.Cleanup(func() {
		l.Close()
		srv.Close()
		ua.Close()
	})
	return u
}

// A call relayed UDP → proxy → TLS: SIPp UAC over UDP, scripts/proxy.cfg
// relaying to a sips: $du, a sipgo UAS on TLS that requires the proxy's
// client certificate. ACK and BYE follow the Record-Route back through
// the proxy and out on the same TLS connection.
func TestTLSRelayCallUDPToTLS(t *testing.T) {
	needSipp(t)
	p := newPKI(t)
	u := startTLSUAS(t, p)
	pp, tp, u2, up := freePort(t), freePort(t), freePort(t), freePort(t)
	script := proxyScript(t, pp, u.port, u2)
	old := fmt.Sprintf(`$du = "sip:127.0.0.1:%d;transport=" + $pr;`, u.port)
	if !strings.Contains(script, old) {
		t.Fatalf("scripts/proxy.cfg no longer has %s", old)
	}
	script = strings.Replace(script, old, fmt.Sprintf(`$du = "sips:127.0.0.1:%d";`, u.port), 1)
	script = strings.Replace(script, "####### Modules #########",
		fmt.Sprintf("socket = tls:127.0.0.1:%d\n\n####### Modules #########\n\n%s", tp,
			p.tlsModparams()), 1)
	px := startProxy(t, pp, script)
	const calls = 5
	expectCalls(t, uac(t, "uac.xml", pp, up, calls, 10), calls)
	waitFor(t, 5*time.Second, "the BYEs at the UAS", func() bool { return u.byes.Load() == calls })
	if n := u.invites.Load(); n != calls {
		t.Errorf("UAS got %d INVITEs, want %d", n, calls)
	}
	if n := u.viaTLS.Load(); n != calls {
		t.Errorf("%d INVITEs with a TLS Via, want %d", n, calls)
	}
	if n := u.rrTLS.Load(); n != calls {
		t.Errorf("%d INVITEs with a ;transport=tls Record-Route, want %d", n, calls)
	}
	if n := u.acks.Load(); n != calls {
		t.Errorf("UAS got %d ACKs, want %d", n, calls)
	}
	if n := u.clientVerified.Load(); n < 1 {
		t.Errorf("the UAS verified no client certificate")
	}
	if st := px.srv.Snapshot(); st["panics"] != 0 || st["script_faults"] != 0 {
		t.Errorf("panics/faults: %v", st)
	}
}

// udpExchange sends req from a UDP socket to the proxy and returns the
// first final reply.
func udpExchange(t *testing.T, port int, req func(local string) string) *sip.Response {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.WriteToUDP([]byte(req(c.LocalAddr().String())), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	for {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no reply: %v", err)
		}
		msg, err := sip.ParseMessage(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		if res, ok := msg.(*sip.Response); ok && res.StatusCode >= 200 {
			return res
		}
	}
}

// Stateless forward() from UDP to a TLS UAS: the proxy dials the TLS
// connection, and the reply (matching no transaction) is relayed back by
// its Via.
func TestTLSStatelessForward(t *testing.T) {
	p := newPKI(t)
	u := startTLSUAS(t, p)
	pp, tp := freePort(t), freePort(t)
	startProxy(t, pp, fmt.Sprintf(`
socket = udp:127.0.0.1:%d
socket = tls:127.0.0.1:%d
loadmodule "sl.so"
%s
route {
	$du = "sip:127.0.0.1:%d;transport=tls";
	forward();
}`, pp, tp, p.tlsModparams(), u.port))
	for i := range 3 {
		res := udpExchange(t, pp, func(local string) string {
			return sipReq("MESSAGE", "sip:uas@127.0.0.1", "UDP", local)
		})
		if res.StatusCode != 202 {
			t.Fatalf("MESSAGE %d: %d %s", i, res.StatusCode, res.Reason)
		}
	}
	if n := u.messages.Load(); n != 3 {
		t.Errorf("UAS got %d MESSAGEs", n)
	}
}

// A UAS whose certificate the client domain's ca_list does not trust: the
// relay fails (no TLS connection) and the caller gets an error reply.
func TestTLSRelayUntrustedUAS(t *testing.T) {
	p := newPKI(t)
	other := newPKI(t) // the UAS's certificate is from another CA
	u := startTLSUAS(t, other)
	pp, tp := freePort(t), freePort(t)
	script := fmt.Sprintf(`
socket = udp:127.0.0.1:%d
socket = tls:127.0.0.1:%d
loadmodule "sl.so"
loadmodule "tm.so"
%s
route {
	$du = "sip:127.0.0.1:%d;transport=tls";
	if (!t_relay())
		sl_reply_error();
}`, pp, tp, p.tlsModparams(), u.port)
	startProxy(t, pp, script)
	res := udpExchange(t, pp, func(local string) string {
		return sipReq("MESSAGE", "sip:uas@127.0.0.1", "UDP", local)
	})
	if res.StatusCode < 400 {
		t.Fatalf("relayed to an untrusted UAS: %d", res.StatusCode)
	}
	if u.invites.Load()+u.messages.Load() != 0 {
		t.Error("the UAS got a request")
	}
}

// A reload with another certificate applies to new connections; a reload
// that leaves the tls socket without a certificate is refused.
func TestTLSReload(t *testing.T) {
	p := newPKI(t)
	pp, tp := freePort(t), freePort(t)
	script := func(mod string) string {
		return fmt.Sprintf("socket = udp:127.0.0.1:%d\nsocket = tls:127.0.0.1:%d\nloadmodule \"sl.so\"\n%s\nroute { sl_send_reply(200, \"OK\"); }\n", pp, tp, mod)
	}
	px := startProxy(t, pp, script(p.tlsModparams()))
	peerCN := func() string {
		c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tp), &tls.Config{RootCAs: p.ca.Pool, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatalf("TLS to the proxy: %v", err)
		}
		defer c.Close()
		if res := exchange(t, c, sipReq("OPTIONS", "sip:127.0.0.1", "TLS", c.LocalAddr().String())); res.StatusCode != 200 {
			t.Fatalf("OPTIONS: %d", res.StatusCode)
		}
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := peerCN(); cn != "proxy.sipedge.test" {
		t.Fatalf("certificate %q before the reload", cn)
	}
	dir := t.TempDir()
	cert, key := p.ca.Leaf(t, "renewed.sipedge.test", "127.0.0.1").Write(t, dir, "renewed")
	renewed := strings.NewReplacer(p.proxyCert, cert, p.proxyKy, key).Replace(p.tlsModparams())
	if err := os.WriteFile(px.path, []byte(script(renewed)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := px.srv.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if cn := peerCN(); cn != "renewed.sipedge.test" {
		t.Errorf("certificate %q after the reload", cn)
	}
	if err := os.WriteFile(px.path, []byte(script("")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := px.srv.Reload(); err == nil || !strings.Contains(err.Error(), "TLS server domain") {
		t.Errorf("reload without a certificate: %v", err)
	}
	if cn := peerCN(); cn != "renewed.sipedge.test" {
		t.Errorf("certificate %q after the refused reload", cn)
	}
}
