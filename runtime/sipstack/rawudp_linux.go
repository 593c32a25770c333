//go:build linux

package sipstack

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// rawUDP is a UDP socket whose datagram reads and writes (sipgo's and the
// runtime's own) are made as raw recvfrom/sendto system calls on the
// non-blocking socket, inside syscall.RawConn's Read/Write: a read with
// nothing queued (or a write to a full buffer) still waits in Go's
// netpoller. They are not blocking calls, so they need not go through the
// scheduler's system-call bookkeeping: with it, a sendto on loopback
// (which delivers the datagram, and wakes its reader, inside the call)
// often outlasted sysmon's 20µs tick, sysmon took the P away and handed it
// to another thread, and stayed awake at a 20µs period (perf: runtime.sysmon
// 8–12% of the proxy's CPU, nearly all of it context switches). Measured at
// 2000 calls/s: −15% CPU per stateless call, −12% per stateful call
// (bench/README.md). Everything else (LocalAddr, Close, deadlines,
// buffers) is the *net.UDPConn's.
//
// The system calls run in callbacks bound once to pooled rawOps, so a
// datagram costs no allocation here; source addresses come from a small
// cache (a proxy hears the same few peers over and over).
type rawUDP struct {
	*net.UDPConn
	rc    syscall.RawConn
	inet6 bool // AF_INET6 socket (IPv4 peers are addressed v4-mapped)
	addrs [256]atomic.Pointer[cachedAddr]
}

// newRawUDP wraps c, or returns it as it is when its descriptor is not
// reachable.
func newRawUDP(c *net.UDPConn) net.PacketConn {
	rc, err := c.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawUDP{UDPConn: c, rc: rc}
	var serr error
	cerr := rc.Control(func(fd uintptr) {
		var sa syscall.Sockaddr
		sa, serr = syscall.Getsockname(int(fd))
		_, r.inet6 = sa.(*syscall.SockaddrInet6)
	})
	if cerr != nil || serr != nil {
		return c
	}
	return r
}

// rawOp is one recvfrom or sendto: arguments, results and the callbacks
// (bound to the op when it is made) that RawConn.Read/Write run.
type rawOp struct {
	buf   unsafe.Pointer
	len   uintptr
	sa    syscall.RawSockaddrAny // source (read) or destination (write)
	salen uint32
	n     int
	errno syscall.Errno
	read  func(fd uintptr) bool
	write func(fd uintptr) bool
}

var rawOps = sync.Pool{New: func() any {
	op := new(rawOp)
	op.read, op.write = op.recvfrom, op.sendto
	return op
}}

func (op *rawOp) recvfrom(fd uintptr) bool {
	for {
		op.salen = syscall.SizeofSockaddrAny
		r, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(op.buf), op.len, 0,
			uintptr(unsafe.Pointer(&op.sa)), uintptr(unsafe.Pointer(&op.salen)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait in the netpoller, then again
		}
		op.n, op.errno = int(r), e
		return true
	}
}

func (op *rawOp) sendto(fd uintptr) bool {
	for {
		r, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(op.buf), op.len, 0,
			uintptr(unsafe.Pointer(&op.sa)), uintptr(op.salen))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		op.n, op.errno = int(r), e
		return true
	}
}

func bufPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func (c *rawUDP) ReadFrom(b []byte) (int, net.Addr, error) {
	op := rawOps.Get().(*rawOp)
	op.buf, op.len = bufPtr(b), uintptr(len(b))
	err := c.rc.Read(op.read)
	n, errno := op.n, op.errno
	var addr *net.UDPAddr
	if err == nil && errno == 0 {
		addr = c.addrOf(&op.sa)
	}
	op.buf = nil
	rawOps.Put(op)
	if err != nil {
		return 0, nil, err
	}
	if errno != 0 {
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: os.NewSyscallError("recvfrom", errno)}
	}
	return n, addr, nil
}

// cachedAddr is a source address as ReadFrom returns it; shared by every
// datagram from that source, so never changed.
type cachedAddr struct {
	key  [18]byte // IPv6 (or v4-mapped) address and port
	addr *net.UDPAddr
}

// addrOf is the *net.UDPAddr for a source, from the cache when it holds
// it (the datagram's readers only read it).
func (c *rawUDP) addrOf(sa *syscall.RawSockaddrAny) *net.UDPAddr {
	var key [18]byte
	switch sa.Addr.Family {
	case syscall.AF_INET:
		s4 := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		key[10], key[11] = 0xff, 0xff
		copy(key[12:16], s4.Addr[:])
		*(*uint16)(unsafe.Pointer(&key[16])) = s4.Port
	case syscall.AF_INET6:
		s6 := (*syscall.RawSockaddrInet6)(unsafe.Pointer(sa))
		if s6.Scope_id != 0 {
			return udpAddrOf(sa) // zoned: not cached
		}
		copy(key[:16], s6.Addr[:])
		*(*uint16)(unsafe.Pointer(&key[16])) = s6.Port
	default:
		return udpAddrOf(sa)
	}
	h := uint32(2166136261)
	for _, b := range key {
		h = (h ^ uint32(b)) * 16777619
	}
	slot := &c.addrs[h&uint32(len(c.addrs)-1)]
	if e := slot.Load(); e != nil && e.key == key {
		return e.addr
	}
	a := udpAddrOf(sa)
	slot.Store(&cachedAddr{key: key, addr: a})
	return a
}

// udpAddrOf decodes a source address the way the net package does (an
// IPv4 source has a 4-byte IP).
func udpAddrOf(sa *syscall.RawSockaddrAny) *net.UDPAddr {
	switch sa.Addr.Family {
	case syscall.AF_INET:
		s4 := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		ip := make(net.IP, net.IPv4len)
		copy(ip, s4.Addr[:])
		return &net.UDPAddr{IP: ip, Port: ntohs(s4.Port)}
	case syscall.AF_INET6:
		s6 := (*syscall.RawSockaddrInet6)(unsafe.Pointer(sa))
		ip := make(net.IP, net.IPv6len)
		copy(ip, s6.Addr[:])
		a := &net.UDPAddr{IP: ip, Port: ntohs(s6.Port)}
		if s6.Scope_id != 0 {
			if ifi, err := net.InterfaceByIndex(int(s6.Scope_id)); err == nil {
				a.Zone = ifi.Name
			}
		}
		return a
	}
	return &net.UDPAddr{}
}

func ntohs(p uint16) int {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return int(b[0])<<8 | int(b[1])
}

func htons(port uint16) uint16 {
	var p uint16
	b := (*[2]byte)(unsafe.Pointer(&p))
	b[0], b[1] = byte(port>>8), byte(port)
	return p
}

func (c *rawUDP) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || ua == nil || ua.Zone != "" {
		return c.UDPConn.WriteTo(b, addr)
	}
	return c.writeToAddrPort(b, ua.AddrPort(), addr)
}

// WriteToUDPAddrPort is the runtime's own send (writeUDP).
func (c *rawUDP) WriteToUDPAddrPort(b []byte, ap netip.AddrPort) (int, error) {
	if ap.Addr().Zone() != "" {
		return c.UDPConn.WriteToUDPAddrPort(b, ap)
	}
	return c.writeToAddrPort(b, ap, nil)
}

func (c *rawUDP) writeToAddrPort(b []byte, ap netip.AddrPort, addr net.Addr) (int, error) {
	ip := ap.Addr()
	if !c.inet6 && !ip.Unmap().Is4() {
		return c.UDPConn.WriteToUDPAddrPort(b, ap) // the net package's error
	}
	op := rawOps.Get().(*rawOp)
	op.buf, op.len = bufPtr(b), uintptr(len(b))
	if c.inet6 {
		sa6 := (*syscall.RawSockaddrInet6)(unsafe.Pointer(&op.sa))
		*sa6 = syscall.RawSockaddrInet6{Family: syscall.AF_INET6, Port: htons(ap.Port()), Addr: ip.As16()} // IPv4 comes out v4-mapped
		op.salen = syscall.SizeofSockaddrInet6
	} else {
		sa4 := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&op.sa))
		*sa4 = syscall.RawSockaddrInet4{Family: syscall.AF_INET, Port: htons(ap.Port()), Addr: ip.Unmap().As4()}
		op.salen = syscall.SizeofSockaddrInet4
	}
	err := c.rc.Write(op.write)
	n, errno := op.n, op.errno
	op.buf = nil
	rawOps.Put(op)
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		if addr == nil {
			addr = net.UDPAddrFromAddrPort(ap)
		}
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: addr, Err: os.NewSyscallError("sendto", errno)}
	}
	return n, nil
}
