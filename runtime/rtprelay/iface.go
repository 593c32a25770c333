package rtprelay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Interface is a named media interface: the relay binds its sockets to
// Bind and writes Advertise into SDP (they differ behind a 1:1 NAT). Ports
// come from MinPort..MaxPort: RTP on an even port, RTCP on the next one.
type Interface struct {
	Name      string
	Bind      netip.Addr
	Advertise netip.Addr
	MinPort   int
	MaxPort   int
}

func (i Interface) String() string {
	s := i.Name + "/" + hostString(i.Bind)
	if i.Advertise != i.Bind {
		s = i.Name + "/" + hostString(i.Bind) + "!" + i.Advertise.String()
	}
	return s + ":" + strconv.Itoa(i.MinPort) + "-" + strconv.Itoa(i.MaxPort)
}

func hostString(a netip.Addr) string {
	if a.Is6() {
		return "[" + a.String() + "]"
	}
	return a.String()
}

// Default port range when an interface does not name one (rtpengine's).
const (
	DefaultMinPort = 30000
	DefaultMaxPort = 40000
)

// ParseInterfaces reads an interface list, rtpengine-daemon style:
//
//	name/bind[!advertise][:min-max][;name/…]
//
// e.g. "external/203.0.113.5:30000-30999;internal/10.0.0.1!10.0.0.1:31000-31999".
// IPv6 addresses go in brackets: "v6/[2001:db8::1]:30000-30999". Entries
// may also be separated by whitespace or commas. Interfaces without a range
// use defMin..defMax.
func ParseInterfaces(spec string, defMin, defMax int) ([]Interface, error) {
	var out []Interface
	for _, item := range strings.FieldsFunc(spec, func(r rune) bool {
		return r == ';' || r == ',' || r == ' ' || r == '\t' || r == '\n'
	}) {
		ifc, err := parseInterface(item, defMin, defMax)
		if err != nil {
			return nil, err
		}
		out = append(out, ifc)
	}
	return out, nil
}

func parseInterface(item string, defMin, defMax int) (Interface, error) {
	name, rest, ok := strings.Cut(item, "/")
	if !ok || name == "" {
		return Interface{}, fmt.Errorf("interface %q: want name/address[:min-max]", item)
	}
	for _, r := range name {
		if !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return Interface{}, fmt.Errorf("interface %q: bad name %q", item, name)
		}
	}
	ifc := Interface{Name: name, MinPort: defMin, MaxPort: defMax}
	// split the port range off the end
	addrs := rest
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && strings.Contains(rest[i+1:], "-") &&
		(!strings.Contains(rest[:i], ":") || strings.HasSuffix(rest[:i], "]")) {
		lo, hi, _ := strings.Cut(rest[i+1:], "-")
		var err1, err2 error
		ifc.MinPort, err1 = strconv.Atoi(lo)
		ifc.MaxPort, err2 = strconv.Atoi(hi)
		if err1 != nil || err2 != nil {
			return Interface{}, fmt.Errorf("interface %q: bad port range %q", item, rest[i+1:])
		}
		addrs = rest[:i]
	}
	bind, adv, hasAdv := strings.Cut(addrs, "!")
	var err error
	if ifc.Bind, err = parseHost(bind); err != nil {
		return Interface{}, fmt.Errorf("interface %q: %v", item, err)
	}
	ifc.Advertise = ifc.Bind
	if hasAdv {
		if ifc.Advertise, err = parseHost(adv); err != nil {
			return Interface{}, fmt.Errorf("interface %q: advertised %v", item, err)
		}
	}
	if err := ifc.validate(); err != nil {
		return Interface{}, fmt.Errorf("interface %q: %v", item, err)
	}
	return ifc, nil
}

func parseHost(s string) (netip.Addr, error) {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("address %q is not an IP address", s)
	}
	return a.Unmap(), nil
}

func (i Interface) validate() error {
	switch {
	case !i.Bind.IsValid() || i.Bind.IsUnspecified() || i.Bind.IsMulticast():
		return fmt.Errorf("bind address %v: need a unicast address of this host", i.Bind)
	case !i.Advertise.IsValid() || i.Advertise.IsUnspecified() || i.Advertise.IsMulticast():
		return fmt.Errorf("advertised address %v is not a unicast address", i.Advertise)
	case i.Bind.Is4() != i.Advertise.Is4():
		return errors.New("bind and advertised addresses are of different families")
	case i.MinPort < 1024 || i.MaxPort > 65535 || i.MinPort > i.MaxPort:
		return fmt.Errorf("port range %d-%d: want 1024 <= min <= max <= 65535", i.MinPort, i.MaxPort)
	case pairsIn(i.MinPort, i.MaxPort) < 1:
		return fmt.Errorf("port range %d-%d holds no even RTP port with RTCP on the next one", i.MinPort, i.MaxPort)
	}
	return nil
}

// pairsIn counts the RTP/RTCP pairs (even, even+1) inside min..max.
func pairsIn(min, max int) int {
	first := min + min%2
	if first+1 > max {
		return 0
	}
	return (max-first-1)/2 + 1
}

// CheckInterfaces validates a set: names unique, at least one interface,
// no two ranges overlapping on one address.
func CheckInterfaces(ifs []Interface) error {
	if len(ifs) == 0 {
		return errors.New("no media interface defined")
	}
	for i, a := range ifs {
		if err := a.validate(); err != nil {
			return fmt.Errorf("interface %s: %v", a.Name, err)
		}
		for _, b := range ifs[:i] {
			if a.Name == b.Name {
				return fmt.Errorf("interface %s defined twice", a.Name)
			}
			if a.Bind == b.Bind && a.MinPort <= b.MaxPort && b.MinPort <= a.MaxPort &&
				(a.MinPort != b.MinPort || a.MaxPort != b.MaxPort) {
				return fmt.Errorf("interfaces %s and %s: port ranges %d-%d and %d-%d overlap on %v",
					b.Name, a.Name, b.MinPort, b.MaxPort, a.MinPort, a.MaxPort, a.Bind)
			}
		}
	}
	return nil
}

// Port pair states in a pool.
const (
	pairFree uint8 = iota
	pairUsed
	pairDraining
)

// portPool hands out RTP/RTCP socket pairs of one address and range. Pools
// belong to the Relay and live as long as the process, so a script reload
// that keeps an interface keeps its pool and the ports in use.
type portPool struct {
	bind  netip.Addr
	first int // first even port
	mu    sync.Mutex
	state []uint8
	next  int
	used  int
	drain int
}

func newPool(bind netip.Addr, min, max int) *portPool {
	first := min + min%2
	return &portPool{bind: bind, first: first, state: make([]uint8, pairsIn(min, max))}
}

// errNoPorts is returned when every pair of a range is in use or draining.
var errNoPorts = errors.New("no free RTP port pair")

// alloc binds the next free pair. A port some other process holds is
// skipped (and tried again on a later round).
func (p *portPool) alloc() (port int, rtp, rtcp *net.UDPConn, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.state)
	if p.used == 0 && p.drain == 0 {
		// an idle pool has nothing in flight: start from the bottom again
		// (round robin only keeps just-released ports from coming back)
		p.next = 0
	}
	for tries := 0; tries < n; tries++ {
		idx := p.next
		p.next = (p.next + 1) % n
		if p.state[idx] != pairFree {
			continue
		}
		port = p.first + 2*idx
		ip := p.bind.AsSlice()
		rtp, err = net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
		if err != nil {
			continue
		}
		rtcp, err = net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port + 1})
		if err != nil {
			rtp.Close()
			continue
		}
		p.state[idx] = pairUsed
		p.used++
		return port, rtp, rtcp, nil
	}
	return 0, nil, nil, errNoPorts
}

// release keeps the pair bound for drain (its readers swallow late
// packets), then closes the sockets and frees the pair. A zero drain closes
// at once.
func (p *portPool) release(port int, conns [2]*net.UDPConn, drain time.Duration) {
	idx := (port - p.first) / 2
	p.mu.Lock()
	if idx < 0 || idx >= len(p.state) || p.state[idx] != pairUsed {
		p.mu.Unlock()
		conns[0].Close()
		conns[1].Close()
		return
	}
	p.state[idx] = pairDraining
	p.used--
	p.drain++
	p.mu.Unlock()
	done := func() {
		conns[0].Close()
		conns[1].Close()
		p.mu.Lock()
		p.state[idx] = pairFree
		p.drain--
		p.mu.Unlock()
	}
	if drain <= 0 {
		done()
		return
	}
	time.AfterFunc(drain, done)
}

func (p *portPool) counts() (used, draining, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used, p.drain, len(p.state)
}
