//go:build linux

package sipstack

import (
	"net"
	"net/netip"
	"os"
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
// to another thread, and stayed awake at a 20µs period: runtime.sysmon
// was 8–12% of the proxy's CPU (perf, bench/README.md), all of it thread
// wake-ups. Everything else (LocalAddr, Close, deadlines, buffers) is the
// *net.UDPConn's.
type rawUDP struct {
	*net.UDPConn
	rc    syscall.RawConn
	inet6 bool // AF_INET6 socket (IPv4 peers are addressed v4-mapped)
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

func (c *rawUDP) ReadFrom(b []byte) (int, net.Addr, error) {
	var (
		n     int
		errno syscall.Errno
		sa    syscall.RawSockaddrAny
	)
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			salen := uint32(syscall.SizeofSockaddrAny)
			r, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(p), uintptr(len(b)), 0,
				uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&salen)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait in the netpoller, then again
			}
			n, errno = int(r), e
			return true
		}
	})
	if err != nil {
		return 0, nil, err
	}
	if errno != 0 {
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: os.NewSyscallError("recvfrom", errno)}
	}
	return n, udpAddrOf(&sa), nil
}

func udpAddrOf(sa *syscall.RawSockaddrAny) *net.UDPAddr {
	switch sa.Addr.Family {
	case syscall.AF_INET:
		s4 := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		return &net.UDPAddr{IP: net.IPv4(s4.Addr[0], s4.Addr[1], s4.Addr[2], s4.Addr[3]), Port: ntohs(s4.Port)}
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
	var (
		sa4   syscall.RawSockaddrInet4
		sa6   syscall.RawSockaddrInet6
		sa    unsafe.Pointer
		salen uintptr
	)
	ip := ap.Addr()
	switch {
	case !c.inet6:
		if !ip.Unmap().Is4() {
			return c.UDPConn.WriteToUDPAddrPort(b, ap) // the net package's error
		}
		sa4.Family = syscall.AF_INET
		sa4.Port = htons(ap.Port())
		sa4.Addr = ip.Unmap().As4()
		sa, salen = unsafe.Pointer(&sa4), syscall.SizeofSockaddrInet4
	default:
		sa6.Family = syscall.AF_INET6
		sa6.Port = htons(ap.Port())
		sa6.Addr = ip.As16() // IPv4 addresses come out v4-mapped
		sa, salen = unsafe.Pointer(&sa6), syscall.SizeofSockaddrInet6
	}
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	var (
		n     int
		errno syscall.Errno
	)
	err := c.rc.Write(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(p), uintptr(len(b)), 0, uintptr(sa), salen)
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			}
			n, errno = int(r), e
			return true
		}
	})
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
