package gate

import (
	"net"
	"net/netip"
	"testing"
)

type strAddr string

func (a strAddr) Network() string { return "ws" }
func (a strAddr) String() string  { return string(a) }

func TestDrop(t *testing.T) {
	if Drop(&net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5060}) {
		t.Fatal("dropped with no set")
	}
	var cur int64 = 100
	SetClock(func() int64 { return cur })
	defer SetClock(nil)
	Publish(Set{
		netip.MustParseAddr("192.0.2.1"):   &Entry{},
		netip.MustParseAddr("2001:db8::1"): &Entry{Until: 200},
	})
	defer Publish(nil)
	before := Dropped()
	for _, a := range []net.Addr{
		&net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5060},
		&net.UDPAddr{IP: net.ParseIP("192.0.2.1").To4(), Port: 5060},
		&net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5061},
		&net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 5060},
		strAddr("[2001:db8::1]:443"),
	} {
		if !Drop(a) {
			t.Errorf("%v not dropped", a)
		}
	}
	for _, a := range []net.Addr{nil, &net.UDPAddr{IP: net.IPv4(192, 0, 2, 2)}, strAddr("garbage")} {
		if Drop(a) {
			t.Errorf("%v dropped", a)
		}
	}
	if !DropAddrPort(netip.MustParseAddrPort("[::ffff:192.0.2.1]:5060")) || DropAddrPort(netip.MustParseAddrPort("192.0.2.9:5060")) {
		t.Fatal("DropAddrPort")
	}
	if Dropped()-before != 6 {
		t.Fatal(Dropped() - before)
	}
	if Current()[netip.MustParseAddr("192.0.2.1")].Dropped.Load() != 4 {
		t.Fatal("per-ban count")
	}
	cur = 200 // the IPv6 ban ends
	if Banned(netip.MustParseAddr("2001:db8::1")) || !Banned(netip.MustParseAddr("::ffff:192.0.2.1")) {
		t.Fatal("expiry or unmapping")
	}
	Publish(Set{})
	if Current() != nil {
		t.Fatal("an empty set is published")
	}
}

func TestHooks(t *testing.T) {
	var got []string
	SetAlertHandler(func(s string) { got = append(got, s) })
	Alert("a")
	SetAlertHandler(nil)
	Alert("b")
	if len(got) != 1 || got[0] != "a" {
		t.Fatal(got)
	}
	if Log(1, "x") {
		t.Fatal("logged without a logger")
	}
	var lines []string
	SetLogger(func(_ int, s string) { lines = append(lines, s) })
	defer SetLogger(nil)
	if !Log(1, "y") || len(lines) != 1 {
		t.Fatal(lines)
	}
}
