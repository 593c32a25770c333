//go:build linux

package sipstack

import (
	"errors"
	"net"
	"net/netip"
	"testing"
)

// rawUDP reads and writes datagrams like the *net.UDPConn it wraps, and
// hands out one address object per source.
func TestRawUDP(t *testing.T) {
	for _, network := range []string{"udp4", "udp6"} {
		t.Run(network, func(t *testing.T) {
			loop := "127.0.0.1"
			if network == "udp6" {
				loop = "::1"
			}
			c, err := net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(loop)})
			if err != nil {
				t.Skip(err)
			}
			defer c.Close()
			pc, ok := newRawUDP(c).(*rawUDP)
			if !ok {
				t.Fatal("not wrapped")
			}
			peer, err := net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(loop)})
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			me := c.LocalAddr().(*net.UDPAddr)

			var addrs []net.Addr
			buf := make([]byte, 2048)
			for _, msg := range []string{"one", "two"} {
				if _, err := peer.WriteToUDP([]byte(msg), me); err != nil {
					t.Fatal(err)
				}
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					t.Fatal(err)
				}
				if string(buf[:n]) != msg || from.String() != peer.LocalAddr().String() {
					t.Fatalf("read %q from %v, want %q from %v", buf[:n], from, msg, peer.LocalAddr())
				}
				addrs = append(addrs, from)
			}
			if addrs[0] != addrs[1] {
				t.Errorf("two datagrams from one source got two address objects")
			}
			// writes: sipgo's WriteTo and the runtime's WriteToUDPAddrPort
			pa := peer.LocalAddr().(*net.UDPAddr)
			if _, err := pc.WriteTo([]byte("three"), pa); err != nil {
				t.Fatal(err)
			}
			if _, err := pc.WriteToUDPAddrPort([]byte("four"), pa.AddrPort()); err != nil {
				t.Fatal(err)
			}
			if network == "udp6" {
				// an IPv4 destination on an IPv6 socket is refused like net does
				_, err := pc.WriteToUDPAddrPort([]byte("x"), netip.MustParseAddrPort("127.0.0.1:9"))
				_, nerr := c.WriteToUDPAddrPort([]byte("x"), netip.MustParseAddrPort("127.0.0.1:9"))
				if (err == nil) != (nerr == nil) {
					t.Errorf("v4 to a v6 socket: %v, net says %v", err, nerr)
				}
			}
			for _, want := range []string{"three", "four"} {
				n, _, err := peer.ReadFromUDP(buf)
				if err != nil || string(buf[:n]) != want {
					t.Fatalf("peer read %q, %v; want %q", buf[:n], err, want)
				}
			}
			c.Close()
			if _, _, err := pc.ReadFrom(buf); !errors.Is(err, net.ErrClosed) {
				t.Errorf("read after close: %v, want net.ErrClosed", err)
			}
		})
	}
}
