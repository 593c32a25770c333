package edgeban

import (
	"net/netip"
	"sort"

	"github.com/sipedge/sipedge/modules/usrloc"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

// registered tells whether a live binding in one of the configured usrloc
// tables uses ip: its received address (a device behind NAT) or its
// Contact host (a device with a public address) — the seed's two
// location-table queries. usrloc has no lookup by address, so this reads
// the tables' bindings (usrloc's All); it runs only when an address
// reaches the threshold or a script bans one, never per packet.
func registered(c *config, ip netip.Addr) bool {
	want := map[string]bool{}
	for _, t := range c.locations {
		want[t] = true
	}
	for _, d := range usrloc.Domains() {
		if !want[d.Name] {
			continue
		}
		all, err := d.All()
		if err != nil {
			logBackground(msgctx.LErr, "edgeban: reading usrloc table "+d.Name+": "+err.Error())
			continue
		}
		for _, cs := range all {
			for i := range cs {
				if uriHost(cs[i].Received) == ip || uriHost(cs[i].URI) == ip {
					return true
				}
			}
		}
	}
	return false
}

// uriHost is the address a contact or received URI names (invalid when
// it names a host name or nothing).
func uriHost(uri string) netip.Addr {
	if uri == "" {
		return netip.Addr{}
	}
	h, err := msgctx.ParseHop(uri)
	if err != nil {
		return netip.Addr{}
	}
	a, ok := parseIP(h.Host)
	if !ok {
		return netip.Addr{}
	}
	return a
}

func sortAddrs(ips []netip.Addr) {
	sort.Slice(ips, func(i, j int) bool { return ips[i].Less(ips[j]) })
}
