// Package gate is the hot-path half of the edgeban module, kept free of
// dependencies so the SIP runtime can import it: the set of banned source
// addresses that the runtime checks for every datagram (and TCP read)
// before sipgo parses it, the hook through which the runtime's alert log
// stream reaches edgeban, and the sink for edgeban's background log lines.
//
// The set is an immutable map behind an atomic pointer: edgeban builds a
// new map whenever a ban is added or removed (rare) and publishes it, so a
// lookup is one atomic load and one map probe, without locks. With no bans
// published the check is a nil test.
package gate

import (
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// Entry is one banned address.
type Entry struct {
	// Until is when the ban ends (unix nanoseconds); 0 means never.
	Until int64
	// Dropped counts the packets dropped for this ban.
	Dropped atomic.Uint64
}

// Set maps a banned address (IPv4 addresses unmapped) to its entry.
type Set map[netip.Addr]*Entry

var (
	cur     atomic.Pointer[Set]
	dropped atomic.Uint64
	clock   atomic.Pointer[func() int64] // nil: the real clock
)

func now() int64 {
	if f := clock.Load(); f != nil {
		return (*f)()
	}
	return time.Now().UnixNano()
}

// SetClock replaces the time source (unix nanoseconds) for tests; nil
// restores the real clock.
func SetClock(f func() int64) {
	if f == nil {
		clock.Store(nil)
		return
	}
	clock.Store(&f)
}

// Publish makes s the set the runtime checks; nil or empty turns the check
// off. s must not be changed afterwards (publish a new one instead).
func Publish(s Set) {
	if len(s) == 0 {
		cur.Store(nil)
		return
	}
	cur.Store(&s)
}

// Current is the published set (nil when none).
func Current() Set {
	if p := cur.Load(); p != nil {
		return *p
	}
	return nil
}

// Dropped is how many packets were dropped since the process started.
func Dropped() uint64 { return dropped.Load() }

// Banned tells whether ip is banned now.
func Banned(ip netip.Addr) bool {
	p := cur.Load()
	if p == nil {
		return false
	}
	return hit(*p, ip.Unmap())
}

func hit(s Set, ip netip.Addr) bool {
	e := s[ip]
	if e == nil {
		return false
	}
	if e.Until != 0 && now() >= e.Until {
		return false // expired; edgeban's sweeper removes it
	}
	e.Dropped.Add(1)
	dropped.Add(1)
	return true
}

// Drop is the runtime's check for a packet from a: true when its source
// is banned (the packet is then counted as dropped).
func Drop(a net.Addr) bool {
	p := cur.Load()
	if p == nil {
		return false
	}
	var ip netip.Addr
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case nil:
		return false
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return false
		}
		ip = ap.Addr()
	}
	return hit(*p, ip.Unmap())
}

// DropAddrPort is Drop for an address read with ReadFromUDPAddrPort (no
// allocation on the way: a reader can check a datagram before making the
// net.Addr sipgo wants).
func DropAddrPort(ap netip.AddrPort) bool {
	p := cur.Load()
	if p == nil {
		return false
	}
	return hit(*p, ap.Addr().Unmap())
}

// ---- the alert stream ----

var alertFn atomic.Pointer[func(text string)]

// SetAlertHandler installs the function that gets every line of the
// runtime's alert stream (script lines at L_ALERT); nil removes it.
func SetAlertHandler(f func(text string)) {
	if f == nil {
		alertFn.Store(nil)
		return
	}
	alertFn.Store(&f)
}

// Alert hands one alert line (without the timestamp) to the handler.
func Alert(text string) {
	if f := alertFn.Load(); f != nil {
		(*f)(text)
	}
}

// ---- background log lines ----

var logFn atomic.Pointer[func(level int, text string)]

// SetLogger routes edgeban's background lines (bans expiring, persistence
// errors; level in OpenSIPS numbering) to the runtime's log.
func SetLogger(f func(level int, text string)) {
	if f == nil {
		logFn.Store(nil)
		return
	}
	logFn.Store(&f)
}

// Log writes a background line; it reports false when no logger is set.
func Log(level int, text string) bool {
	if f := logFn.Load(); f != nil {
		(*f)(level, text)
		return true
	}
	return false
}
