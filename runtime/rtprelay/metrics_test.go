package rtprelay

import (
	"testing"
	"time"

	"github.com/sipedge/sipedge/runtime/stats"
)

// The process relay's counters are statistics of group "rtprelay" (MI
// get_statistics, /metrics), and OnDefault hooks run when it is created.
func TestDefaultMetricsAndHooks(t *testing.T) {
	var hooked *Relay
	OnDefault(func(r *Relay) { hooked = r })
	r := Default()
	if hooked != r || Running() != r {
		t.Fatalf("OnDefault/Running: %p %p, Default %p", hooked, Running(), r)
	}
	ifs, err := ParseInterfaces("pub/127.0.0.1:32440-32459;lan/127.0.0.2:32440-32459", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.NewProfile(ProfileConfig{Interfaces: ifs})
	if err != nil {
		t.Fatal(err)
	}
	value := func(name string) int64 {
		t.Helper()
		c := stats.Lookup(MetricsGroup, name)
		if c == nil {
			t.Fatalf("no statistic rtprelay:%s", name)
		}
		return c.Value()
	}
	caller, callee := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.2")
	toRelayPub, _ := call(t, p, caller, callee)
	defer r.Delete("call-1", "", "")
	for i := 0; i < 10; i++ {
		sendTo(t, caller.rtp, toRelayPub, rtpPacket(t, uint16(i), uint32(160*i), 1, []byte("x")))
	}
	recvAll(callee.rtp, 200*time.Millisecond)
	time.Sleep(metricsMaxAge + 10*time.Millisecond)
	st := r.Stats()
	if value("sessions") != 1 || value("ports_in_use") != 2 || uint64(value("packets")) != st.Media.Packets ||
		value("packets") < 10 || uint64(value("bytes")) != st.Media.Bytes || value("dropped") != int64(st.Media.Dropped) {
		t.Fatalf("statistics: sessions %d ports %d packets %d (relay %+v)", value("sessions"), value("ports_in_use"), value("packets"), st)
	}
	if c := stats.Lookup(MetricsGroup, "packets"); c.Resettable() || c.Kind() != stats.KindFunc {
		t.Error("relay statistics are computed, not resettable")
	}
}
