package dispatcher

import (
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/modules/tm"
)

// Probing: every ds_ping_interval seconds the destinations in probing
// state (every destination not inactive, with ds_probing_mode 1) get
// ds_ping_method from ds_ping_from. A reply of 200 or one of
// options_reply_codes makes the destination active again; with
// ds_probing_mode 1 a timeout or another reply counts a failure, and
// ds_probing_threshold failures put it in probing state.

// sendProbe is how probes go out; tests replace it.
var sendProbe = func(req *sip.Request, done func(code int)) error {
	return tm.SendRequestWithReply(req, "", done)
}

// ProbeOnce sends one round of probes and returns how many went out.
func ProbeOnce() int {
	c := cur.Load()
	n := 0
	for _, name := range c.order {
		p := c.parts[name]
		d := p.d.Load()
		for _, id := range d.order {
			if c.probeSets != nil && !c.probeSets[id] {
				continue
			}
			s := d.sets[id]
			s.mu.Lock()
			var targets []*Dest
			for _, dst := range s.Dests {
				if dst.state&Inactive == 0 && (c.probeAll || dst.state&Probing != 0) {
					targets = append(targets, dst)
				}
			}
			s.mu.Unlock()
			for _, dst := range targets {
				if probe(c, p, dst) {
					n++
				}
			}
		}
	}
	return n
}

func probe(c *config, p *partition, dst *Dest) bool {
	req, err := tm.NewOutOfDialogRequest(c.pingMethod, c.pingFrom, dst.URI, c.pingMaxFwd)
	if err != nil {
		return false
	}
	set, uri := dst.Set, dst.URI
	err = sendProbe(req, func(code int) { probeDone(p, set, uri, code) })
	return err == nil
}

// probeDone applies a probe's outcome to the destination as it is now
// (the table may have been reloaded meanwhile).
func probeDone(p *partition, set int, uri string, code int) {
	c := cur.Load()
	s, dst := p.d.Load().find(set, uri)
	if dst == nil {
		return
	}
	if c.okCodes[code] {
		p.setState(s, dst, Active, false)
		return
	}
	if c.probeAll {
		p.setState(s, dst, Probing, true)
	}
}

var proberOnce sync.Once

// startProber runs the probe timer for the rest of the process; each round
// reads the live generation's interval.
func startProber() {
	proberOnce.Do(func() {
		go func() {
			var last time.Time
			for {
				time.Sleep(time.Second)
				c := cur.Load()
				if c.pingInterval <= 0 {
					continue
				}
				if t := time.Now(); t.Sub(last) >= c.pingInterval {
					last = t
					ProbeOnce()
				}
			}
		}()
	})
}
