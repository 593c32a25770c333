package nathelper

import (
	"fmt"

	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/modules/usrloc"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

// NAT pinging: every natping_interval seconds each registered contact
// (only those behind a NAT with ping_nated_only) gets a SIP request
// (sipping_method, OPTIONS by default) from sipping_from, sent to the
// address the REGISTER came from. OpenSIPS sends 4-byte UDP packets to the
// contacts without sipping_bflag; sipedge cannot write raw packets on its
// SIP sockets, so every ping is a SIP request. A contact is behind a NAT
// when usrloc recorded a received address for it (sipedge's registrar does
// so when the REGISTER's source differs from the Contact).

// DefaultPingFrom is the From of pings when sipping_from is not set.
const DefaultPingFrom = "sip:pinger@localhost"

type pingConfig struct {
	interval  time.Duration
	natedOnly bool
	tcp       bool
	from      string
	method    sip.RequestMethod
}

func readPingConfig(p modules.Params) (pingConfig, error) {
	c := pingConfig{
		interval:  time.Duration(p.Int("natping_interval")) * time.Second,
		natedOnly: p.Int("ping_nated_only") != 0,
		tcp:       p.Int("natping_tcp") != 0,
		from:      strings.TrimSpace(p.Str("sipping_from")),
		method:    sip.RequestMethod(strings.ToUpper(strings.TrimSpace(p.Str("sipping_method")))),
	}
	if c.interval < 0 {
		return c, fmt.Errorf("natping_interval must not be negative")
	}
	if c.from == "" {
		c.from = DefaultPingFrom
	}
	var u sip.Uri
	if err := sip.ParseUri(c.from, &u); err != nil {
		return c, fmt.Errorf("sipping_from %q is not a SIP URI: %v", c.from, err)
	}
	if c.method == "" || strings.ContainsAny(string(c.method), " \t\r\n:;") {
		return c, fmt.Errorf("sipping_method %q is not a SIP method", p.Str("sipping_method"))
	}
	if n := p.Int("natping_partitions"); n < 1 {
		return c, fmt.Errorf("natping_partitions must be at least 1")
	}
	return c, nil
}

// Target is one contact to ping.
type Target struct {
	AOR   string
	URI   string // R-URI and To
	Dst   string // where to send it ("" for the URI or Route)
	Route []string
}

// contactProto is the transport a contact is reached over.
func contactProto(ct *usrloc.Contact) string {
	if proto, _, ok := strings.Cut(ct.Socket, ":"); ok && proto != "" {
		return strings.ToLower(proto)
	}
	for _, u := range []string{ct.Received, ct.URI} {
		if i := strings.Index(strings.ToLower(u), ";transport="); i >= 0 {
			t := u[i+len(";transport="):]
			if j := strings.IndexAny(t, ";>"); j >= 0 {
				t = t[:j]
			}
			return strings.ToLower(t)
		}
	}
	return "udp"
}

// Targets lists the contacts a ping round covers.
func Targets(c pingConfig) []Target {
	var out []Target
	for _, d := range usrloc.Domains() {
		all, err := d.All()
		if err != nil {
			continue
		}
		for aor, cs := range all {
			for i := range cs {
				ct := &cs[i]
				if c.natedOnly && ct.Received == "" {
					continue
				}
				if p := contactProto(ct); p != "udp" && !c.tcp {
					continue
				}
				t := Target{AOR: aor, URI: ct.URI, Dst: ct.Received}
				if ct.Path != "" {
					t.Route = msgctx.SplitRouteList(ct.Path)
					t.Dst = ""
				}
				out = append(out, t)
			}
		}
	}
	return out
}

// Stats of the pinger, for tests and logs.
var (
	pingsSent   atomic.Int64
	pingsFailed atomic.Int64
)

// send is how a ping goes out; tests replace it.
var send = func(req *sip.Request, dst string) error { return tm.SendRequest(req, dst) }

// PingOnce sends one round of pings and returns how many went out.
func PingOnce() int {
	c := cur.Load().ping
	n := 0
	for _, t := range Targets(c) {
		req, err := tm.NewOutOfDialogRequest(c.method, c.from, t.URI, -1)
		if err != nil {
			pingsFailed.Add(1)
			continue
		}
		for i := len(t.Route) - 1; i >= 0; i-- {
			req.PrependHeader(sip.NewHeader("Route", t.Route[i]))
		}
		if err := send(req, t.Dst); err != nil {
			pingsFailed.Add(1)
			continue
		}
		pingsSent.Add(1)
		n++
	}
	return n
}

var pingerOnce sync.Once

// startPinger runs the ping timer for the rest of the process; each round
// reads the live generation's interval, so a reload can change or stop it.
func startPinger() {
	pingerOnce.Do(func() {
		go func() {
			var last time.Time
			for {
				time.Sleep(time.Second)
				c := cur.Load().ping
				if c.interval <= 0 || pingDisabled.Load() {
					continue
				}
				if t := now(); t.Sub(last) >= c.interval {
					last = t
					PingOnce()
				}
			}
		}()
	})
}

// PingStats are the pings sent and failed so far.
func PingStats() (sent, failed int64) { return pingsSent.Load(), pingsFailed.Load() }
