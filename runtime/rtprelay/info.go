package rtprelay

import (
	"net/netip"
	"sort"
	"time"
)

// Stats are the relay's counters, for MI and (later) Prometheus. Packet
// totals include sessions already deleted.
type Stats struct {
	Sessions int // live
	Streams  int // live streams with ports
	// Port pairs (RTP+RTCP) over all pools.
	PortsInUse, PortsDraining, PortsTotal int

	SessionsCreated, SessionsDeleted, SessionsTimedOut uint64
	// BogusStreams counts SDP streams with an unusable port or address;
	// DisabledStreams port 0 ones; AllocFailures streams refused for lack
	// of ports.
	BogusStreams, DisabledStreams, AllocFailures uint64
	// Media is what the parties sent: forwarded and dropped packets.
	Media EndpointStats
	// Drained counts late packets swallowed by released ports.
	Drained uint64
}

// Stats returns the counters.
func (r *Relay) Stats() Stats {
	st := Stats{
		SessionsCreated: r.created.Load(), SessionsDeleted: r.deleted.Load(),
		SessionsTimedOut: r.timedOut.Load(), BogusStreams: r.bogus.Load(),
		DisabledStreams: r.disabled.Load(), AllocFailures: r.allocFail.Load(),
		Drained: r.drained.Load(),
	}
	r.mu.Lock()
	st.Media = r.retired
	for _, list := range r.calls {
		for _, s := range list {
			st.Sessions++
			for _, x := range s.streams {
				if !x.active {
					continue
				}
				st.Streams++
				for _, l := range x.legs {
					for _, ep := range l.ep {
						st.Media.add(ep.c.snapshot())
					}
				}
			}
		}
	}
	pools := make([]*portPool, 0, len(r.pools))
	for _, p := range r.pools {
		pools = append(pools, p)
	}
	r.mu.Unlock()
	for _, p := range pools {
		u, d, t := p.counts()
		st.PortsInUse += u
		st.PortsDraining += d
		st.PortsTotal += t
	}
	return st
}

// SessionInfo is a snapshot of one session.
type SessionInfo struct {
	CallID       string
	FromTag      string    // From tag of the dialog
	Tags         [2]string // side 0 (whose SDP created the session), side 1
	Created      time.Time
	LastActivity time.Time
	Answered     bool // both sides sent SDP
	Hold         bool // a stream is on hold or not sendrecv
	Streams      []StreamInfo
	// Sent totals what each side sent (RTP and RTCP, all streams).
	Sent [2]EndpointStats
}

// StreamInfo is one m= line of a session.
type StreamInfo struct {
	Index  int
	Media  string
	Active bool // has ports (false: disabled or rejected)
	Legs   [2]LegInfo
}

// LegInfo is a stream's socket pair facing one side.
type LegInfo struct {
	Interface string
	Local     netip.AddrPort // relay RTP socket (bind address)
	Target    netip.AddrPort // from SDP; invalid when none (hold, bogus)
	Latched   netip.AddrPort // the party's real source, once it sent
	Hold      bool
	RTP, RTCP EndpointStats // what the party sent on each socket
}

func (s *Session) info() SessionInfo {
	in := SessionInfo{
		CallID: s.callID, FromTag: s.dlgFrom, Tags: s.tags, Created: s.created,
		LastActivity: epoch.Add(time.Duration(s.lastActivity())),
		Answered:     s.answered, Hold: s.hold,
	}
	for i, st := range s.streams {
		si := StreamInfo{Index: i, Media: st.media, Active: st.active}
		if st.active {
			for k, l := range st.legs {
				li := LegInfo{
					Interface: l.ifc.Name,
					Local:     netip.AddrPortFrom(l.ifc.Bind, uint16(l.port)),
					Hold:      st.hold[k],
					RTP:       l.ep[0].c.snapshot(),
					RTCP:      l.ep[1].c.snapshot(),
				}
				if t := l.ep[0].target.Load(); t != nil {
					li.Target = *t
				}
				if a := l.ep[0].latched.Load(); a != nil {
					li.Latched = *a
				}
				in.Sent[k].add(li.RTP)
				in.Sent[k].add(li.RTCP)
				si.Legs[k] = li
			}
		}
		in.Streams = append(in.Streams, si)
	}
	return in
}

// Sessions lists every live session, by Call-ID.
func (r *Relay) Sessions() []SessionInfo {
	r.mu.Lock()
	var out []SessionInfo
	for _, list := range r.calls {
		for _, s := range list {
			out = append(out, s.info())
		}
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].CallID != out[j].CallID {
			return out[i].CallID < out[j].CallID
		}
		return out[i].Created.Before(out[j].Created)
	})
	return out
}

// Lookup finds the session of callID that has tag (any session of the
// call when tag is "").
func (r *Relay) Lookup(callID, tag string) (SessionInfo, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.calls[callID] {
		if tag == "" || s.tags[0] == tag || s.tags[1] == tag || s.dlgFrom == tag {
			return s.info(), true
		}
	}
	return SessionInfo{}, false
}
