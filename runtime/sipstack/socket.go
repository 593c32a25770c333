package sipstack

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/runtime/engine"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

// SocketSpec is one `socket=` / `listen=` line: proto:host:port with an
// optional advertised address (` as host:port`).
type SocketSpec struct {
	Proto   string // "udp", "tcp", "tls", "ws" or "wss"
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
// "127.0.0.1" (udp, port 5060), "udp:*:5060" (all addresses) or
// "tls:127.0.0.1" (a protocol's default port: 5061 for tls, 80 for ws,
// 443 for wss).
func ParseSocket(spec string) (SocketSpec, error) {
	return parseSocket(spec, nil)
}

// parseSocket is ParseSocket with the default port of each protocol given
// by defPort (nil or 0: the well-known port).
func parseSocket(spec string, defPort func(proto string) int) (SocketSpec, error) {
	spec = strings.TrimSpace(strings.Trim(strings.TrimSpace(spec), `"`))
	main, adv, hasAdv := strings.Cut(spec, " as ")
	main = strings.TrimSpace(main)
	s := SocketSpec{Proto: "udp"}
	if i := strings.IndexByte(main, ':'); i > 0 {
		switch p := strings.ToLower(main[:i]); p {
		case "udp", "tcp", "tls", "ws", "wss":
			s.Proto, main = p, main[i+1:]
		case "sctp", "hep_udp", "hep_tcp", "bin", "bins", "smpp", "msrp", "msrps":
			return s, fmt.Errorf("socket %q: protocol %s is not supported (udp, tcp, tls, ws and wss are)", spec, p)
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
	s.Port = port
	if port == 0 && defPort != nil {
		s.Port = defPort(s.Proto)
	}
	if s.Port == 0 {
		s.Port = msgctx.Hop{Proto: s.Proto}.PortOrDefault()
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

// protoPort is the default port of each protocol in s: the <proto>_port
// modparam of a loaded proto_<proto> module (OpenSIPS's), else 0.
func protoPort(s *engine.Script) func(proto string) int {
	return func(proto string) int {
		if p := s.Params["proto_"+proto]; p != nil {
			return p.Int(proto + "_port")
		}
		return 0
	}
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
		spec, err := parseSocket(text, protoPort(s))
		if err != nil {
			return nil, fmt.Errorf("%s: %v", g.At, err)
		}
		out = append(out, spec)
	}
	return out, nil
}

// udpConn is a UDP socket as it is read and written: the *net.UDPConn,
// or the raw-syscall wrapper around it (rawudp_linux.go).
type udpConn interface {
	net.PacketConn
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

// Socket is one listener the process owns (never a script generation's).
type Socket struct {
	SocketSpec
	udp   *net.UDPConn
	pc    udpConn // udp as sipgo and the runtime read and write it (rawudp_linux.go)
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
		s.pc = newRawUDP(c).(udpConn)
		la := c.LocalAddr().(*net.UDPAddr)
		s.Port, s.ip = la.Port, la.IP
		s.laddr = sip.Addr{IP: la.IP, Port: la.Port}
	case "tcp", "tls", "ws", "wss": // tls/ws/wss: stream.go
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
