//go:build linux

package sipstack

import (
	"net"
	"syscall"
)

// setReadBuffer asks for a big receive buffer. SO_RCVBUF is capped by
// net.core.rmem_max; SO_RCVBUFFORCE (needs CAP_NET_ADMIN) is not, so try it
// first. At a few thousand calls/s the default buffer overflows (PERF.md).
func setReadBuffer(c *net.UDPConn, n int) {
	if n <= 0 {
		return
	}
	raw, err := c.SyscallConn()
	if err == nil {
		var serr error
		raw.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, n)
		})
		if serr == nil {
			return
		}
	}
	c.SetReadBuffer(n)
}
