package sipstack

import (
	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/modules/edgeban/gate"
)

// dropBanned is the transport layer's read filter (set in New): a datagram
// or TCP read whose source address the edgeban module has banned is
// dropped here, before sipgo parses it, makes a transaction or the script
// runs. With no bans it costs one atomic load; a banned packet one map
// lookup (BenchmarkDropBanned). Drops are counted by edgeban (MI
// edgeban_list), not in drop_requests. A banned TCP peer's connection
// stays open, but everything it sends is discarded.
func dropBanned(p sip.TransportReadProps, data []byte) ([]byte, error) {
	if gate.Drop(p.RemoteAddr) {
		return nil, nil
	}
	return data, nil
}
