//go:build !linux

package sipstack

import "net"

func setReadBuffer(c *net.UDPConn, n int) {
	if n > 0 {
		c.SetReadBuffer(n)
	}
}
