package rtprelay

import (
	"sync"
	"time"

	"github.com/sipedge/sipedge/runtime/stats"
)

// The process relay's counters as statistics of group "rtprelay", for MI
// get_statistics and the prometheus module (/metrics). They are computed
// when read (stats.NewFunc) from one Stats snapshot shared by the reads of
// a scrape, and read 0 while no script has used the relay.

// metricsMaxAge is how long one snapshot serves reads: a scrape reads
// every statistic in a row, and Stats walks every live session.
const metricsMaxAge = 100 * time.Millisecond

var metricsCache struct {
	sync.Mutex
	at time.Time
	st Stats
}

func metricsSnapshot() Stats {
	r := Running()
	if r == nil {
		return Stats{}
	}
	c := &metricsCache
	c.Lock()
	defer c.Unlock()
	if now := time.Now(); c.at.IsZero() || now.Sub(c.at) > metricsMaxAge || now.Before(c.at) {
		c.st, c.at = r.Stats(), now
	}
	return c.st
}

// MetricsGroup is the statistics group of the relay.
const MetricsGroup = "rtprelay"

func init() {
	for _, m := range []struct {
		name string
		fn   func(*Stats) uint64
	}{
		{"sessions", func(s *Stats) uint64 { return uint64(s.Sessions) }},
		{"streams", func(s *Stats) uint64 { return uint64(s.Streams) }},
		{"ports_in_use", func(s *Stats) uint64 { return uint64(s.PortsInUse) }},
		{"ports_draining", func(s *Stats) uint64 { return uint64(s.PortsDraining) }},
		{"ports_total", func(s *Stats) uint64 { return uint64(s.PortsTotal) }},
		{"sessions_created", func(s *Stats) uint64 { return s.SessionsCreated }},
		{"sessions_deleted", func(s *Stats) uint64 { return s.SessionsDeleted }},
		{"sessions_timed_out", func(s *Stats) uint64 { return s.SessionsTimedOut }},
		{"packets", func(s *Stats) uint64 { return s.Media.Packets }},
		{"bytes", func(s *Stats) uint64 { return s.Media.Bytes }},
		{"rtcp_packets", func(s *Stats) uint64 { return s.Media.RTCP }},
		{"dropped", func(s *Stats) uint64 { return s.Media.Dropped }},
		{"dropped_non_rtp", func(s *Stats) uint64 { return s.Media.NonRTP }},
		{"dropped_wrong_source", func(s *Stats) uint64 { return s.Media.WrongSrc }},
		{"dropped_no_target", func(s *Stats) uint64 { return s.Media.NoTarget }},
		{"send_errors", func(s *Stats) uint64 { return s.Media.SendErr }},
		{"lost_packets", func(s *Stats) uint64 { return s.Media.Lost }},
		{"drained_packets", func(s *Stats) uint64 { return s.Drained }},
		{"bogus_streams", func(s *Stats) uint64 { return s.BogusStreams }},
		{"disabled_streams", func(s *Stats) uint64 { return s.DisabledStreams }},
		{"alloc_failures", func(s *Stats) uint64 { return s.AllocFailures }},
	} {
		fn := m.fn
		stats.NewFunc(MetricsGroup, m.name, func() int64 {
			st := metricsSnapshot()
			return int64(fn(&st))
		})
	}
}
