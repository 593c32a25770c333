package sipstack

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// Listeners for the tls, ws and wss sockets.
//
// sipgo serves them from a net.Listener (TransportLayer.ServeTLS, ServeWS,
// ServeWSS): TLS connections are handshaken lazily by the connection's
// reader, and WebSocket connections are upgraded inside sipgo's accept
// loop, so one client that connects and then stays silent would stall
// every later WebSocket client of the socket. streamListener therefore
// prepares each accepted connection in a goroutine of its own, under a
// deadline (acceptTimeout), before sipgo sees it: the TLS handshake (tls,
// wss) and the HTTP upgrade request's headers (ws, wss), which are then
// replayed to sipgo's upgrader.

// acceptTimeout bounds the TLS handshake and the WebSocket upgrade request
// of an accepted connection.
const acceptTimeout = 10 * time.Second

// maxUpgradeRequest caps the HTTP upgrade request of a WebSocket client.
const maxUpgradeRequest = 16 << 10

type streamListener struct {
	net.Listener // the bound TCP listener
	tls          *tls.Config
	ws           bool
	log          func(format string, args ...any)

	conns   chan net.Conn
	done    chan struct{}
	closeMu sync.Once
	err     error // why the accept loop stopped (set before done closes)
}

func newStreamListener(l net.Listener, tlsConf *tls.Config, ws bool, log func(string, ...any)) *streamListener {
	sl := &streamListener{Listener: l, tls: tlsConf, ws: ws, log: log,
		conns: make(chan net.Conn), done: make(chan struct{})}
	go sl.acceptLoop()
	return sl
}

func (l *streamListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.err = err
			l.Close()
			return
		}
		go l.prepare(c)
	}
}

func (l *streamListener) prepare(c net.Conn) {
	c.SetDeadline(time.Now().Add(acceptTimeout))
	conn := c
	if l.tls != nil {
		tc := tls.Server(c, l.tls)
		if err := tc.Handshake(); err != nil {
			l.log("TLS handshake with %s failed: %v", c.RemoteAddr(), err)
			c.Close()
			return
		}
		conn = tc
	}
	if l.ws {
		head, err := readUpgradeRequest(conn)
		if err != nil {
			l.log("WebSocket upgrade request from %s: %v", c.RemoteAddr(), err)
			conn.Close()
			return
		}
		conn = &prefixConn{Conn: conn, buf: head}
	}
	c.SetDeadline(time.Time{})
	select {
	case l.conns <- conn:
	case <-l.done:
		conn.Close()
	}
}

// readUpgradeRequest reads up to the end of the HTTP request headers.
func readUpgradeRequest(c net.Conn) ([]byte, error) {
	buf := make([]byte, 0, 1024)
	tmp := make([]byte, 1024)
	for {
		n, err := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if bytes.Contains(buf, []byte("\r\n\r\n")) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
		if len(buf) > maxUpgradeRequest {
			return nil, errors.New("request headers too long")
		}
	}
}

func (l *streamListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		if l.err != nil {
			return nil, l.err
		}
		return nil, net.ErrClosed
	}
}

func (l *streamListener) Close() error {
	var err error
	l.closeMu.Do(func() {
		close(l.done)
		err = l.Listener.Close()
	})
	return err
}

// prefixConn replays bytes already read from Conn before reading it.
type prefixConn struct {
	net.Conn
	buf []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// dialListener hands connections the proxy opened itself (outbound TLS,
// see tls.go) to sipgo's TLS transport as if they had been accepted, so
// that sipgo reads them and finds them in its connection pool by remote
// address. push returns once sipgo has taken the connection in (its serve
// loop asks for the next one only after registering the previous).
type dialListener struct {
	addr    net.Addr
	conns   chan dialed
	done    chan struct{}
	closeMu sync.Once
	pending chan struct{} // ack of the connection handed out last
}

type dialed struct {
	conn net.Conn
	ack  chan struct{}
}

func newDialListener(addr net.Addr) *dialListener {
	return &dialListener{addr: addr, conns: make(chan dialed), done: make(chan struct{})}
}

func (l *dialListener) Accept() (net.Conn, error) {
	if l.pending != nil {
		close(l.pending)
		l.pending = nil
	}
	select {
	case d := <-l.conns:
		l.pending = d.ack
		return d.conn, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// push gives c to sipgo and waits until it is registered.
func (l *dialListener) push(ctx context.Context, c net.Conn) error {
	d := dialed{conn: c, ack: make(chan struct{})}
	select {
	case l.conns <- d:
	case <-l.done:
		return net.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-d.ack:
		return nil
	case <-l.done:
		return net.ErrClosed
	}
}

func (l *dialListener) Close() error {
	l.closeMu.Do(func() { close(l.done) })
	return nil
}

func (l *dialListener) Addr() net.Addr { return l.addr }
