package sipstack

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/runtime/engine"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

// SocketSpec is one `socket=` / `listen=` line: proto:host:port with an
// optional advertised address (` as host:port`).
type SocketSpec struct {
	Proto   string // "udp" or "tcp"
	Host    string
	Port    int
	AdvHost string // "" = Host
	AdvPort int    // 0 = Port
}

func (s SocketSpec) String() string {
	out := s.Proto + ":" + net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	if s.AdvHost != "" || s.AdvPort != 0 {
		out += " as " + net.JoinHostPort(s.advHost(), strconv.Itoa(s.advPort()))
	}
	return out
}

func (s SocketSpec) advHost() string {
	if s.AdvHost != "" {
		return s.AdvHost
	}
	return s.Host
}

func (s SocketSpec) advPort() int {
	if s.AdvPort != 0 {
		return s.AdvPort
	}
	return s.Port
}

// ParseSocket reads "udp:127.0.0.1:5060", "tcp:host:port as 1.2.3.4:5060",
// "127.0.0.1" (udp, port 5060) or "udp:*:5060" (all addresses).
func ParseSocket(spec string) (SocketSpec, error) {
	spec = strings.TrimSpace(strings.Trim(strings.TrimSpace(spec), `"`))
	main, adv, hasAdv := strings.Cut(spec, " as ")
	main = strings.TrimSpace(main)
	s := SocketSpec{Proto: "udp", Port: 5060}
	if i := strings.IndexByte(main, ':'); i > 0 {
		switch p := strings.ToLower(main[:i]); p {
		case "udp", "tcp":
			s.Proto, main = p, main[i+1:]
		case "tls", "ws", "wss", "sctp", "hep_udp", "hep_tcp", "bin":
			return s, fmt.Errorf("socket %q: protocol %s is not supported yet (udp and tcp are)", spec, p)
		}
	}
	host, port, err := hostPort(main)
	if err != nil {
		return s, fmt.Errorf("socket %q: %v", spec, err)
	}
	if host == "*" || host == "" {
		host = "0.0.0.0"
	}
	s.Host = host
	if port != 0 {
		s.Port = port
	}
	if hasAdv {
		ah, ap, err := hostPort(strings.TrimSpace(adv))
		if err != nil {
			return s, fmt.Errorf("socket %q: advertised address: %v", spec, err)
		}
		s.AdvHost, s.AdvPort = ah, ap
	}
	return s, nil
}

func hostPort(s string) (string, int, error) {
	if s == "" {
		return "", 0, fmt.Errorf("missing host")
	}
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", 0, fmt.Errorf("unclosed [")
		}
		host, rest := s[1:end], s[end+1:]
		if rest == "" {
			return host, 0, nil
		}
		p, err := strconv.Atoi(strings.TrimPrefix(rest, ":"))
		if err != nil || p < 0 || p > 65535 {
			return "", 0, fmt.Errorf("bad port %q", rest)
		}
		return host, p, nil
	}
	if strings.Count(s, ":") > 1 {
		return s, 0, nil
	}
	host, ps, ok := strings.Cut(s, ":")
	if !ok {
		return host, 0, nil
	}
	p, err := strconv.Atoi(ps)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	return host, p, nil
}

// ScriptSockets lists the sockets a script's socket=/listen= lines ask for.
func ScriptSockets(s *engine.Script) ([]SocketSpec, error) {
	var out []SocketSpec
	for _, g := range s.File.Globals {
		if g.Name != "socket" && g.Name != "listen" {
			continue
		}
		text := g.Words
		if text == "" && g.Value != nil {
			text = g.Value.Str
		}
		spec, err := ParseSocket(text)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", g.At, err)
		}
		out = append(out, spec)
	}
	return out, nil
}

// Socket is one listener the process owns (never a script generation's).
type Socket struct {
	SocketSpec
	udp   *net.UDPConn
	tcp   *net.TCPListener
	laddr sip.Addr // for sipgo's Request.Laddr (UDP: send from this socket)
	ip    net.IP
}

// Addr is the socket as a msgctx.Addr ($Ri, $Rp, proto).
func (s *Socket) Addr() msgctx.Addr {
	return msgctx.Addr{IP: s.Host, Port: s.Port, Proto: s.Proto}
}

// RRAddr is the address Record-Route and Via name for this socket.
func (s *Socket) RRAddr() msgctx.RRAddr {
	return msgctx.RRAddr{Proto: s.Proto, Host: s.advHost(), Port: s.advPort()}
}

func (s *Socket) bind(readBuf int) error {
	addr := net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	switch s.Proto {
	case "udp":
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return err
		}
		c, err := net.ListenUDP("udp", ua)
		if err != nil {
			return err
		}
		setReadBuffer(c, readBuf)
		s.udp = c
		la := c.LocalAddr().(*net.UDPAddr)
		s.Port, s.ip = la.Port, la.IP
		s.laddr = sip.Addr{IP: la.IP, Port: la.Port}
	case "tcp":
		ta, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			return err
		}
		l, err := net.ListenTCP("tcp", ta)
		if err != nil {
			return err
		}
		s.tcp = l
		la := l.Addr().(*net.TCPAddr)
		s.Port, s.ip = la.Port, la.IP
	default:
		return fmt.Errorf("unsupported protocol %s", s.Proto)
	}
	return nil
}

func (s *Socket) close() {
	if s.udp != nil {
		s.udp.Close()
	}
	if s.tcp != nil {
		s.tcp.Close()
	}
}

// matches tells whether host:port names this socket (bound or advertised
// address; port 0 matches any port). A socket bound to all addresses
// matches any local interface address.
func (s *Socket) matches(host string, port int) bool {
	if port != 0 && port != s.Port && port != s.advPort() {
		return false
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, s.Host) || strings.EqualFold(host, s.advHost()) {
		return true
	}
	if s.ip != nil && s.ip.IsUnspecified() {
		if ip := net.ParseIP(host); ip != nil && (ip.IsLoopback() || isLocalIP(ip)) {
			return true
		}
	}
	return false
}

func isLocalIP(ip net.IP) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}
