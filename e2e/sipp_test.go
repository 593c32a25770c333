package e2e

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// A call over UDP through scripts/proxy.cfg: Record-Route on the INVITE,
// ACK and BYE routed back through the proxy by loose_route.
func TestCallUDP(t *testing.T) {
	needSipp(t)
	pp, u1, u2, up := freePort(t), freePort(t), freePort(t), freePort(t)
	p := startProxy(t, pp, proxyScript(t, pp, u1, u2))
	const calls = 20
	s := uas(t, "uas", "uas.xml", u1, calls)
	expectCalls(t, uac(t, "uac.xml", pp, up, calls, 20), calls)
	if code := s.wait(t, 10*time.Second); code != 0 {
		t.Errorf("sipp uas exit %d", code)
	}
	st := p.srv.Snapshot()
	// INVITE + BYE per call are stateful, ACKs stateless
	if st["UAS_transactions"] < 2*calls {
		t.Errorf("UAS_transactions = %d, want ≥ %d", st["UAS_transactions"], 2*calls)
	}
	if st["panics"] != 0 || st["script_faults"] != 0 {
		t.Errorf("panics/faults: %v", st)
	}
}

// The same call over TCP on both sides.
func TestCallTCP(t *testing.T) {
	needSipp(t)
	pp, u1, u2, up := freePort(t), freePort(t), freePort(t), freePort(t)
	startProxy(t, pp, proxyScript(t, pp, u1, u2))
	const calls = 10
	s := uas(t, "uas", "uas.xml", u1, calls, "-t", "t1")
	expectCalls(t, uac(t, "uac.xml", pp, up, calls, 10, "-t", "t1"), calls)
	if code := s.wait(t, 10*time.Second); code != 0 {
		t.Errorf("sipp uas exit %d", code)
	}
}

// UDP in, TCP out: two Record-Route headers (r2=on) and loose_route
// removing both on the way back.
func TestDoubleRecordRoute(t *testing.T) {
	needSipp(t)
	pp, u1, u2, up := freePort(t), freePort(t), freePort(t), freePort(t)
	script := proxyScript(t, pp, u1, u2)
	old := `$du = "sip:127.0.0.1:` + fmt.Sprint(u1) + `;transport=" + $pr;`
	if !strings.Contains(script, old) {
		t.Fatalf("scripts/proxy.cfg no longer has %s", old)
	}
	script = strings.Replace(script, old, `$du = "sip:127.0.0.1:`+fmt.Sprint(u1)+`;transport=tcp";`, 1)
	startProxy(t, pp, script)
	const calls = 5
	s := uas(t, "uas", "uas.xml", u1, calls, "-t", "t1")
	expectCalls(t, uac(t, "uac.xml", pp, up, calls, 10), calls)
	if code := s.wait(t, 10*time.Second); code != 0 {
		t.Errorf("sipp uas exit %d", code)
	}
}

// The UAC cancels a ringing call: the proxy answers the CANCEL and 487,
// and cancels the branch (the UAS sees CANCEL and is ACKed for its 487).
func TestCancel(t *testing.T) {
	needSipp(t)
	pp, u1, u2, up := freePort(t), freePort(t), freePort(t), freePort(t)
	startProxy(t, pp, proxyScript(t, pp, u1, u2))
	const calls = 5
	s := uas(t, "uas", "uas_cancel.xml", u1, calls)
	expectCalls(t, uac(t, "uac_cancel.xml", pp, up, calls, 10), calls)
	if code := s.wait(t, 10*time.Second); code != 0 {
		t.Errorf("sipp uas exit %d: the CANCEL did not reach it or its 487 was not ACKed", code)
	}
}

// The first UAS answers 486: failure_route forks serially to the second,
// which answers.
func TestSerialForkOn486(t *testing.T) {
	needSipp(t)
	pp, u1, u2, up := freePort(t), freePort(t), freePort(t), freePort(t)
	p := startProxy(t, pp, proxyScript(t, pp, u1, u2))
	const calls = 5
	busy := uas(t, "busy", "uas_busy.xml", u1, calls)
	answer := uas(t, "answer", "uas.xml", u2, calls)
	expectCalls(t, uac(t, "uac.xml", pp, up, calls, 10), calls)
	if code := busy.wait(t, 10*time.Second); code != 0 {
		t.Errorf("busy uas exit %d", code)
	}
	if code := answer.wait(t, 10*time.Second); code != 0 {
		t.Errorf("answering uas exit %d", code)
	}
	if n := strings.Count(p.logs.String(), "got 486, forking to"); n != calls {
		t.Errorf("failure_route logged %d forks, want %d", n, calls)
	}
}

// Stateless forward(): no transaction at all, replies relayed by Via.
func TestStatelessForward(t *testing.T) {
	needSipp(t)
	pp, u1, up := freePort(t), freePort(t), freePort(t)
	script := fmt.Sprintf(`
socket = udp:127.0.0.1:%d
log_level = 2
loadmodule "maxfwd.so"
loadmodule "sl.so"

route {
	if (!mf_process_maxfwd_header(10)) {
		sl_send_reply(483, "Too Many Hops");
		exit;
	}
	forward("udp:127.0.0.1:%d");
}
`, pp, u1)
	p := startProxy(t, pp, script)
	const calls = 20
	s := uas(t, "uas", "uas.xml", u1, calls)
	expectCalls(t, uac(t, "uac.xml", pp, up, calls, 20), calls)
	if code := s.wait(t, 10*time.Second); code != 0 {
		t.Errorf("sipp uas exit %d", code)
	}
	st := p.srv.Snapshot()
	if st["UAS_transactions"] != 0 {
		t.Errorf("stateless forward created %d transactions", st["UAS_transactions"])
	}
	// INVITE, ACK, BYE per call; 180, 200, 200 back
	if st["fwd_requests"] < 3*calls || st["fwd_replies"] < 3*calls {
		t.Errorf("forwarded %d requests and %d replies, want ≥ %d each", st["fwd_requests"], st["fwd_replies"], 3*calls)
	}
}

// Reloads while calls are running: no call fails, the generation moves on,
// and a broken script is refused without disturbing anything.
func TestReloadDuringCalls(t *testing.T) {
	needSipp(t)
	pp, u1, u2, up := freePort(t), freePort(t), freePort(t), freePort(t)
	good := proxyScript(t, pp, u1, u2)
	p := startProxy(t, pp, good)
	const calls = 60
	s := uas(t, "uas", "uas.xml", u1, calls)
	c := uac(t, "uac.xml", pp, up, calls, 30)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	var reloads, refused int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(150 * time.Millisecond):
			}
			script := strings.Replace(good, "INVITE $ru from", fmt.Sprintf("INVITE (gen %d) $ru from", i), 1)
			if i%5 == 4 {
				script = good + "\nroute[broken] { t_relayy(); }\n"
			}
			if err := os.WriteFile(p.path, []byte(script), 0o644); err != nil {
				t.Error(err)
				return
			}
			if err := p.srv.Reload(); err != nil {
				if !strings.Contains(err.Error(), "t_relayy") {
					t.Errorf("reload failed for another reason: %v", err)
				}
				refused++
			} else {
				reloads++
			}
		}
	}()
	expectCalls(t, c, calls)
	close(stop)
	wg.Wait()
	if code := s.wait(t, 10*time.Second); code != 0 {
		t.Errorf("sipp uas exit %d", code)
	}
	if reloads == 0 || refused == 0 {
		t.Errorf("%d reloads and %d refused during the run; want some of each", reloads, refused)
	}
	if g := p.srv.Generation(); g != uint64(reloads+1) {
		t.Errorf("generation %d after %d good reloads", g, reloads)
	}
	t.Logf("%d reloads, %d broken scripts refused, generation %d", reloads, refused, p.srv.Generation())
}

// The first destination never answers: fr_timeout ends its branch with a
// local 408 and failure_route forks to the second.
func TestSerialForkOnTimeout(t *testing.T) {
	needSipp(t)
	pp, dead, u2, up := freePort(t), freePort(t), freePort(t), freePort(t)
	script := proxyScript(t, pp, dead, u2)
	script = strings.Replace(script, `modparam("tm", "fr_timeout", 5)`, `modparam("tm", "fr_timeout", 1)`, 1)
	p := startProxy(t, pp, script)
	const calls = 3
	answer := uas(t, "answer", "uas.xml", u2, calls)
	expectCalls(t, uac(t, "uac.xml", pp, up, calls, 10), calls)
	if code := answer.wait(t, 10*time.Second); code != 0 {
		t.Errorf("answering uas exit %d", code)
	}
	if n := strings.Count(p.logs.String(), "got 408, forking to"); n != calls {
		t.Errorf("failure_route logged %d forks after a timeout, want %d", n, calls)
	}
}
