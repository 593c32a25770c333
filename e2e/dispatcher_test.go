package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/modules/dispatcher"
)

// dispatcherScript balances calls over set 1 with ds_select_dst(1, alg);
// in-dialog requests follow Record-Route. A failure_route marks a
// destination that answers 486 as probing and tries the next one.
func dispatcherScript(port int, alg int, extra string, dests ...string) string {
	mp := strings.Builder{}
	mp.WriteString(extra)
	for _, d := range dests {
		fmt.Fprintf(&mp, "modparam(\"dispatcher\", \"destination\", %q)\n", d)
	}
	return fmt.Sprintf(`
socket = udp:127.0.0.1:%d
log_level = 3
loadmodule "proto_udp.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "sl.so"
loadmodule "maxfwd.so"
loadmodule "sipmsgops.so"
loadmodule "dispatcher.so"
%s
route {
	if (!mf_process_maxfwd_header(10)) {
		sl_send_reply(483, "Too Many Hops");
		exit;
	}
	if (has_totag()) {
		if (loose_route()) {
			t_relay();
			exit;
		}
		if (is_method("ACK") && t_check_trans())
			t_relay();
		exit;
	}
	record_route();
	if (!ds_select_dst(1, %d, "f")) {
		sl_send_reply(503, "Service Unavailable");
		exit;
	}
	xlog("L_INFO", "dispatching $ci to $du\n");
	t_on_failure("next");
	t_relay();
}

failure_route[next] {
	if (t_check_status("486")) {
		ds_mark_dst("p");
		if (ds_next_dst()) {
			xlog("L_INFO", "486 from a destination, trying $du\n");
			t_on_failure("next");
			t_relay();
		}
	}
}
`, port, mp.String(), alg)
}

// Weighted round robin (algorithm 4) between two SIPp UASes: each gets
// exactly half of the calls, and ds_list counts them.
func TestDispatcherRoundRobin(t *testing.T) {
	needSipp(t)
	pp, u1, u2, up := freePort(t), freePort(t), freePort(t), freePort(t)
	p := startProxy(t, pp, dispatcherScript(pp, 4, "",
		fmt.Sprintf("1 sip:127.0.0.1:%d", u1), fmt.Sprintf("1 sip:127.0.0.1:%d", u2)))
	const calls = 10
	a := uas(t, "uas1", "uas.xml", u1, calls/2)
	b := uas(t, "uas2", "uas.xml", u2, calls/2)
	expectCalls(t, uac(t, "uac.xml", pp, up, calls, 10), calls)
	for _, s := range []*sipp{a, b} {
		if code := s.wait(t, 15*time.Second); code != 0 {
			t.Errorf("%s exit %d: it did not get exactly %d calls", s.name, code, calls/2)
		}
	}
	list, err := dispatcher.List("")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range list {
		if d.Hits != calls/2 || d.State != dispatcher.Active {
			t.Errorf("%s: first_hit_counter %d, state %s; want %d, Active", d.URI, d.Hits, d.State, calls/2)
		}
	}
	if n := strings.Count(p.logs.String(), "dispatching "); n != calls {
		t.Errorf("%d INVITEs dispatched, want %d", n, calls)
	}
}

// A destination answering 486 is marked and the call fails over to the
// next one of the set (ds_mark_dst + ds_next_dst in failure_route).
func TestDispatcherFailover(t *testing.T) {
	needSipp(t)
	pp, busy, ok, up := freePort(t), freePort(t), freePort(t), freePort(t)
	p := startProxy(t, pp, dispatcherScript(pp, 8, "",
		fmt.Sprintf("1 sip:127.0.0.1:%d", busy), fmt.Sprintf("1 sip:127.0.0.1:%d", ok)))
	const calls = 3
	b := uas(t, "busy", "uas_busy.xml", busy, calls)
	a := uas(t, "answer", "uas.xml", ok, calls)
	expectCalls(t, uac(t, "uac.xml", pp, up, calls, 5), calls)
	if code := a.wait(t, 15*time.Second); code != 0 {
		t.Errorf("answering uas exit %d", code)
	}
	if code := b.wait(t, 15*time.Second); code != 0 {
		t.Errorf("busy uas exit %d", code)
	}
	if n := strings.Count(p.logs.String(), "486 from a destination"); n != calls {
		t.Errorf("%d failovers logged, want %d", n, calls)
	}
	// three 486s reach the probing threshold (3): the busy one is probing
	for _, d := range mustDS(dispatcher.List("")) {
		want := dispatcher.Active
		if strings.HasSuffix(d.URI, fmt.Sprint(busy)) {
			want = dispatcher.Probing
		}
		if d.State != want {
			t.Errorf("%s is %s, want %s", d.URI, d.State, want)
		}
	}
}

// A destination in probing state gets OPTIONS every ds_ping_interval and
// is active again once it answers 200 (the runtime reports the probe's
// final reply to dispatcher).
func TestDispatcherProbing(t *testing.T) {
	needSipp(t)
	pp, u1 := freePort(t), freePort(t)
	startProxy(t, pp, dispatcherScript(pp, 4, "modparam(\"dispatcher\", \"ds_ping_interval\", 1)\n",
		fmt.Sprintf("1 sip:127.0.0.1:%d state=p", u1)))
	s := uas(t, "options", "uas_options.xml", u1, 1)
	if code := s.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("the destination got no OPTIONS probe (sipp exit %d)", code)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		l := mustDS(dispatcher.List(""))
		if len(l) == 1 && l[0].State == dispatcher.Active {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the probed destination is still %s", l[0].State)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mustDS[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
