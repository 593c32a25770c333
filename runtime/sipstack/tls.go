package sipstack

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	tlsmgm "github.com/sipedge/sipedge/modules/tls_mgm"
	"github.com/sipedge/sipedge/runtime/engine"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

// TLS and WebSocket sockets.
//
// tls, ws and wss sockets are TCP listeners (socket.go) served by sipgo's
// TLS, WS and WSS transports through a streamListener (stream.go). The TLS
// domains come from the tls_mgm modparams of the live generation
// (generation.tls), so a reload changes certificates and policies for new
// connections:
//
//   - accepted connections: the server domain is picked per handshake by
//     the socket and the client's SNI (GetConfigForClient);
//   - outbound TLS: the proxy dials the connection itself with the client
//     domain that matches the destination (address, port and host name),
//     verifying the server's certificate for the name or IP it dialled, and
//     hands it to sipgo's TLS transport (dialListener), which then reads it
//     and reuses it like an accepted one. Outbound WSS is left to sipgo's
//     own dialler, with the default client domain of the first generation.

// tlsRuntime is the Server's TLS state that outlives generations.
type tlsRuntime struct {
	dialOnce sync.Once
	dialL    *dialListener // nil until a tls socket is served

	mu      sync.Mutex
	dialing map[string]*dialCall // outbound dials in progress, by address
}

type dialCall struct {
	done chan struct{}
	err  error
}

// outboundHandshakeTimeout bounds an outbound TCP connect plus TLS
// handshake.
const outboundHandshakeTimeout = 10 * time.Second

func isStream(proto string) bool { return proto == "tls" || proto == "ws" || proto == "wss" }

func isTLS(proto string) bool { return proto == "tls" || proto == "wss" }

// loadTLS builds a generation's TLS domains and checks that every tls/wss
// socket has a server domain with a certificate.
func (s *Server) loadTLS(sc *engine.Script) (*tlsmgm.Config, error) {
	cfg, err := tlsmgm.Build(sc.Params[tlsmgm.Name])
	if err != nil {
		return nil, fmt.Errorf("tls_mgm: %w", err)
	}
	if cfg.HasServer() {
		return cfg, nil
	}
	var specs []SocketSpec
	switch {
	case s.sockets != nil:
		specs = s.Sockets()
	case s.opts.Sockets != nil:
		specs = s.opts.Sockets
	default:
		specs, _ = ScriptSockets(sc) // errors are New's to report
	}
	for _, sp := range specs {
		if isTLS(sp.Proto) {
			return nil, fmt.Errorf("socket %s needs a TLS server domain with a certificate: loadmodule \"tls_mgm.so\" and set its \"certificate\" and \"private_key\" modparams", sp)
		}
	}
	return cfg, nil
}

// serverTLSConfig is the handshake configuration of the tls and wss
// sockets: the live generation's server domain for the socket and SNI.
func (s *Server) serverTLSConfig() *tls.Config {
	return &tls.Config{
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			var local net.Addr
			if hello.Conn != nil {
				local = hello.Conn.LocalAddr()
			}
			d := s.cur.Load().tls.ServerDomain(local, hello.ServerName)
			if d == nil {
				return nil, fmt.Errorf("no TLS server domain for %v (SNI %q)", local, hello.ServerName)
			}
			return d.ServerConfig(), nil
		},
	}
}

// uaTLSConfig is the configuration sipgo dials with itself (outbound WSS):
// gen's default client domain.
func uaTLSConfig(gen *generation) *tls.Config {
	return gen.tls.DefClient.ClientConfig("")
}

// serveStream serves a tls, ws or wss socket (it returns when the socket
// is closed).
func (s *Server) serveStream(sock *Socket) error {
	logf := func(format string, args ...any) {
		s.log.Logf(msgctx.LDbg, "core", "%s: "+format, append([]any{sock.SocketSpec}, args...)...)
	}
	var conf *tls.Config
	if isTLS(sock.Proto) {
		conf = s.serverTLSConfig()
	}
	l := newStreamListener(sock.tcp, conf, sock.Proto != "tls", logf)
	switch sock.Proto {
	case "tls":
		return s.tpl.ServeTLS(l)
	case "ws":
		return s.tpl.ServeWS(l)
	case "wss":
		return s.tpl.ServeWSS(l)
	}
	return fmt.Errorf("unsupported protocol %s", sock.Proto)
}

// startDialListener serves the outbound TLS connections (once per server).
func (s *Server) startDialListener(sock *Socket) {
	s.tlsrt.dialOnce.Do(func() {
		l := newDialListener(&net.TCPAddr{IP: sock.ip, Port: 0})
		s.tlsrt.mu.Lock()
		s.tlsrt.dialL = l
		s.tlsrt.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			<-s.ctx.Done()
			l.Close()
		}()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.tpl.ServeTLS(l); err != nil && !s.closed.Load() && !errors.Is(err, net.ErrClosed) {
				s.log.Logf(msgctx.LErr, "core", "outbound TLS connections stopped: %v", err)
			}
		}()
	})
}

// dialTLS makes sure a TLS connection to addr exists before a request is
// sent there on sock (a no-op for other protocols): an existing one (an
// accepted connection from that address or an earlier dial) is reused,
// otherwise the proxy connects with the matching client domain. hop names
// the destination as routed (its host is the name the certificate must
// carry).
func (s *Server) dialTLS(ctx context.Context, gen *generation, sock *Socket, hop msgctx.Hop, addr *net.UDPAddr) error {
	if sock.Proto != "tls" {
		return nil
	}
	key := net.JoinHostPort(addr.IP.String(), strconv.Itoa(addr.Port))
	pool := s.tpl.Pool("tls")
	if c := pool.Get(key); c != nil {
		c.TryClose()
		return nil
	}
	s.tlsrt.mu.Lock()
	dl := s.tlsrt.dialL
	if dl == nil {
		s.tlsrt.mu.Unlock()
		return errors.New("the tls socket is not served yet")
	}
	if s.tlsrt.dialing == nil {
		s.tlsrt.dialing = map[string]*dialCall{}
	}
	if dc := s.tlsrt.dialing[key]; dc != nil {
		s.tlsrt.mu.Unlock()
		select {
		case <-dc.done:
			return dc.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	dc := &dialCall{done: make(chan struct{})}
	s.tlsrt.dialing[key] = dc
	s.tlsrt.mu.Unlock()

	dc.err = s.dialTLSConn(ctx, gen, sock, hop, addr, dl)

	s.tlsrt.mu.Lock()
	delete(s.tlsrt.dialing, key)
	s.tlsrt.mu.Unlock()
	close(dc.done)
	return dc.err
}

func (s *Server) dialTLSConn(ctx context.Context, gen *generation, sock *Socket, hop msgctx.Hop, addr *net.UDPAddr, dl *dialListener) error {
	ctx, cancel := context.WithTimeout(ctx, outboundHandshakeTimeout)
	defer cancel()
	d := net.Dialer{}
	if sock.ip != nil && !sock.ip.IsUnspecified() && sock.ip.IsLoopback() == addr.IP.IsLoopback() {
		d.LocalAddr = &net.TCPAddr{IP: sock.ip} // leave from the socket's address
	}
	raw, err := d.DialContext(ctx, "tcp", net.JoinHostPort(addr.IP.String(), strconv.Itoa(addr.Port)))
	if err != nil {
		return err
	}
	name := hop.Host
	dom := gen.tls.ClientDomain(addr.IP, addr.Port, name)
	tc := tls.Client(raw, dom.ClientConfig(name))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return fmt.Errorf("TLS handshake with %s (%s): %w", hop, dom, err)
	}
	if err := dl.push(ctx, tc); err != nil {
		tc.Close()
		return err
	}
	cs := tc.ConnectionState()
	s.log.Logf(msgctx.LDbg, "core", "TLS connection to %s (%s, %s, %s)", hop, dom, tlsmgm.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))
	return nil
}

// TLSState is the TLS state of the connection the request arrived on
// (tlsmgm.ConnHost: is_peer_verified, $tls_*).
func (c *call) TLSState(*msgctx.Msg) *tls.ConnectionState {
	if c.stx == nil {
		return nil
	}
	return connTLSState(c.stx.Connection())
}

func connTLSState(conn sip.Connection) *tls.ConnectionState {
	var nc net.Conn
	switch v := conn.(type) {
	case *sip.TCPConnection:
		nc = v.Conn
	case *sip.WSConnection:
		nc = v.Conn
	}
	for nc != nil {
		switch v := nc.(type) {
		case *tls.Conn:
			cs := v.ConnectionState()
			return &cs
		case *prefixConn:
			nc = v.Conn
		default:
			return nil
		}
	}
	return nil
}
