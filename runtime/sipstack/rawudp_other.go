//go:build !linux

package sipstack

import "net"

// newRawUDP: raw datagram system calls are Linux-only (rawudp_linux.go).
func newRawUDP(c *net.UDPConn) net.PacketConn { return c }
