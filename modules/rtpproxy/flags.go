package rtpproxy

import (
	"fmt"
	"strconv"
	"time"
)

// Interface names the i and e flags stand for.
const (
	InternalIface = "internal"
	ExternalIface = "external"
)

// flags are rtpproxy_offer/answer/engage's one-letter flags.
type flags struct {
	asym     bool // a
	lookup   bool // l
	keep     bool // k
	force    bool // f
	trust    bool // r
	origin   bool // o
	sessConn bool // c
	in, out  string
	ttl      time.Duration // tNN (caller) / TNN (callee): the session's media timeout
}

// parseFlags reads a flags string. i and e come in pairs: the first is the
// network the message comes from, the second the one it goes to, so an
// INVITE from the Internet to a LAN server is "ei" and its answer "ie".
func parseFlags(s string) (flags, error) {
	var f flags
	var dirs []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case 'a', 'A':
			f.asym = true
		case 'l', 'L':
			f.lookup = true
		case 'k', 'K':
			f.keep = true
		case 'f', 'F':
			f.force = true
		case 'r', 'R':
			f.trust = true
		case 'o', 'O':
			f.origin = true
		case 'c', 'C':
			f.sessConn = true
		case 's', 'S', 'w', 'W':
			f.asym = false // symmetric: the default
		case 'n', 'N':
			// timeout notification: the relay always reports timeouts
		case 'i', 'I', 'e', 'E':
			dirs = append(dirs, c|0x20)
		case 't', 'T', 'z', 'Z':
			j := i + 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			n, err := strconv.Atoi(s[i+1 : j])
			if err != nil {
				return f, fmt.Errorf("flag %c needs a number", c)
			}
			if c == 't' || c == 'T' {
				if d := time.Duration(n) * time.Second; d > f.ttl {
					f.ttl = d
				}
			}
			// zNN (repacketization) is accepted and ignored: the relay
			// forwards packets as they are
			i = j - 1
		case ' ', '\t':
		default:
			return f, fmt.Errorf("unknown flag %q", c)
		}
	}
	switch len(dirs) {
	case 0:
	case 2:
		f.in, f.out = ifaceOf(dirs[0]), ifaceOf(dirs[1])
	default:
		return f, fmt.Errorf("the i/e flags come in pairs (ei: from external to internal), got %q", string(dirs))
	}
	return f, nil
}

func ifaceOf(c byte) string {
	if c == 'i' {
		return InternalIface
	}
	return ExternalIface
}
