package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/modules/httpd"
	"github.com/sipedge/sipedge/runtime/engine"
	"github.com/sipedge/sipedge/runtime/mi"
	"github.com/sipedge/sipedge/runtime/rtprelay"
	"github.com/sipedge/sipedge/runtime/sipstack"
	"github.com/sipedge/sipedge/runtime/stats"
)

// The built-in RTP relay end to end: a SIPp caller on 127.0.0.1 (the
// "public" side) calls a SIPp callee on 127.0.0.2 (the "LAN") through
// sipedge listening on both addresses, with media interfaces on both. The
// caller streams a generated PCMU file with rtp_stream; the callee echoes
// it (-rtp_echo), so what the relay counts in each direction proves the
// media reached the callee through the relay's ports and came back the
// same way. Every SIPp run is bounded (-m 1, -timeout) and killed by PID
// at the end of the test (harness_test.go).

const (
	toneSeconds = 4
	// tonePackets is what rtp_stream sends for the tone: PCMU, 160 bytes
	// (20 ms) a packet.
	tonePackets = toneSeconds * 8000 / 160
)

// rtpScript is the proxy: record-routing, dialogs, the relay modules, and
// the MI/Prometheus endpoints on httpd (any free port). %[1]d is the SIP
// port (both addresses), %[2]d the callee's port, %[3]s the modparams of
// the relay module, %[4]s what an in-dialog request does before t_relay,
// %[5]s what the initial INVITE does, %[6]s the onreply_route's body.
const rtpScript = `
socket = udp:127.0.0.1:%[1]d
socket = udp:127.0.0.2:%[1]d
log_level = 3

loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "dialog.so"
loadmodule "rtpproxy.so"
loadmodule "rtpengine.so"
loadmodule "httpd.so"
loadmodule "mi_http.so"
loadmodule "prometheus.so"

modparam("httpd", "ip", "127.0.0.1")
modparam("httpd", "port", 0)
modparam("prometheus", "statistics", "rtprelay:")
modparam("prometheus", "group_mode", 1)
%[3]s

route {
	if (has_totag()) {
		if (loose_route()) {
			%[4]s
			t_relay();
			exit;
		}
		if (is_method("ACK") && t_check_trans())
			t_relay();
		exit;
	}
	t_check_trans();
	create_dialog();
	record_route();
	%[5]s
	t_on_reply("media");
	$du = "sip:127.0.0.2:%[2]d";
	t_relay();
}

onreply_route[media] {
	%[6]s
}
`

// rtpSetup is one way of driving the relay from the script.
type rtpSetup struct {
	name                              string
	params, inDialog, invite, onReply string
}

const (
	// the dual-interface edge of the seed: flags e (external, the caller's
	// side) and i (internal, the LAN)
	rtpproxyParams = `modparam("rtpproxy", "interfaces", "external/127.0.0.1:32200-32219")
modparam("rtpproxy", "interfaces", "internal/127.0.0.2:32200-32219")
modparam("rtpproxy", "drain_time", 0)
modparam("rtpproxy", "media_timeout", %d)`
	rtpengineParams = `modparam("rtpengine", "interfaces", "public/127.0.0.1:32240-32259;lan/127.0.0.2:32240-32259")
modparam("rtpengine", "drain_time", 0)`
	// the other module still needs an interface to load
	rtpengineIdle = `modparam("rtpengine", "interfaces", "idle/127.0.0.1:32280-32289")`
	rtpproxyIdle  = `modparam("rtpproxy", "interfaces", "idle/127.0.0.1:32290-32299")`
)

var rtpSetups = []rtpSetup{
	{
		name:     "rtpproxy_offer_answer",
		params:   fmt.Sprintf(rtpproxyParams, 60) + "\n" + rtpengineIdle,
		inDialog: `if (is_method("BYE")) rtpproxy_unforce();`,
		invite:   `if (!rtpproxy_offer("ei")) { sl_send_reply(488, "No media relay"); exit; }`,
		onReply:  `if (has_body("application/sdp")) rtpproxy_answer("ie");`,
	},
	{
		// the SIP runtime and the dialog finish the job (engage_hooks.go)
		name:   "rtpproxy_engage",
		params: fmt.Sprintf(rtpproxyParams, 60) + "\n" + rtpengineIdle,
		invite: `if (!rtpproxy_engage("ei")) { sl_send_reply(488, "No media relay"); exit; }`,
	},
	{
		// no delete in the script: the dialog's end releases the media
		name:    "rtpengine_direction",
		params:  rtpengineParams + "\n" + rtpproxyIdle,
		invite:  `if (!rtpengine_offer("direction=public direction=lan replace-origin")) { sl_send_reply(488, "No media relay"); exit; }`,
		onReply: `if (has_body("application/sdp")) rtpengine_answer("direction=lan direction=public replace-origin");`,
	},
}

// startRTPProxy serves script with MI and httpd wired as cmd/sipedge does.
func startRTPProxy(t *testing.T, script string) *proxy {
	t.Helper()
	path := filepath.Join(t.TempDir(), "proxy.cfg")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv, err := sipstack.New(sipstack.Options{Script: path, Log: logs, UDPReadBuffer: 4 << 20,
		OnActivate: func(s *engine.Script) {
			if err := mi.Default.SetModulesFrom(s.Params); err != nil {
				t.Errorf("mi: %v", err)
			}
			if err := httpd.Sync(s.Params); err != nil {
				t.Errorf("httpd: %v", err)
			}
		}})
	if err != nil {
		t.Fatalf("starting the proxy: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proxy{srv: srv, path: path, logs: logs}
	t.Cleanup(func() {
		srv.Close()
		httpd.Close()
		if t.Failed() {
			t.Logf("proxy log:\n%s", tail(logs.String(), 80))
		}
	})
	return p
}

// toneScenario writes a PCMU tone of toneSeconds (or secs) and a copy of
// the scenario that streams it from its absolute path.
func toneScenario(t *testing.T, xml string, secs int) string {
	t.Helper()
	dir := t.TempDir()
	pcm := make([]byte, secs*8000)
	for i := range pcm {
		// a 400 Hz square wave in G.711 µ-law: ±8031 (0x80 / 0x00 are
		// the extremes, 0xff silence)
		if math.Sin(2*math.Pi*400*float64(i)/8000) >= 0 {
			pcm[i] = 0x8f
		} else {
			pcm[i] = 0x0f
		}
	}
	tone := filepath.Join(dir, "rtp_tone.pcmu")
	if err := os.WriteFile(tone, pcm, 0o644); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(scenario(xml))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(data), `rtp_stream="rtp_tone.pcmu,`, `rtp_stream="`+tone+`,`, 1)
	out := filepath.Join(dir, xml)
	if err := os.WriteFile(out, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

type rtpCall struct {
	caller, callee *sipp
	calleeMedia    int
}

// startRTPCall starts the callee (echoing RTP on 127.0.0.2) and the caller
// (streaming the tone from 127.0.0.1) through the proxy on sipPort.
func startRTPCall(t *testing.T, sipPort, uasPort int, uacXML string, holdMs, toneSecs int) *rtpCall {
	t.Helper()
	c := &rtpCall{calleeMedia: freePort(t)}
	c.callee = startSipp(t, "uas", "-sf", scenario("rtp_uas.xml"), "-i", "127.0.0.2", "-p", fmt.Sprint(uasPort),
		"-mi", "127.0.0.2", "-mp", fmt.Sprint(c.calleeMedia), "-rtp_echo",
		"-m", "1", "-timeout", "60s", "-trace_err", "-trace_logs")
	time.Sleep(300 * time.Millisecond) // let it bind
	args := []string{"-sf", toneScenario(t, uacXML, toneSecs), "-s", "bob", fmt.Sprintf("127.0.0.1:%d", sipPort),
		"-i", "127.0.0.1", "-p", fmt.Sprint(freePort(t)), "-mi", "127.0.0.1", "-mp", fmt.Sprint(freePort(t)),
		"-m", "1", "-timeout", "60s", "-timeout_error", "-recv_timeout", "15000", "-trace_err", "-trace_logs"}
	if holdMs > 0 {
		args = append(args, "-d", fmt.Sprint(holdMs))
	}
	c.caller = startSipp(t, "uac", args...)
	return c
}

// expectDone waits for both SIPp processes and checks they succeeded.
func (c *rtpCall) expectDone(t *testing.T) {
	t.Helper()
	if code := c.caller.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("sipp uac exit %d (successful %s, failed %s)", code, c.caller.counter("Successful call"), c.caller.counter("Failed call"))
	}
	if code := c.callee.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("sipp uas exit %d (successful %s, failed %s)", code, c.callee.counter("Successful call"), c.callee.counter("Failed call"))
	}
}

var sdpLog = regexp.MustCompile(`sdp ([0-9.]+) ([0-9]+)`)

// sdpSeen is the "sdp IP PORT" line the scenario logged (-trace_logs).
func sdpSeen(t *testing.T, p *sipp) netip.AddrPort {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(p.cmd.Dir, "*_logs.log"))
	for _, f := range logs {
		if m := sdpLog.FindStringSubmatch(readFile(f)); m != nil {
			port, _ := strconv.Atoi(m[2])
			return netip.AddrPortFrom(netip.MustParseAddr(m[1]), uint16(port))
		}
	}
	t.Fatalf("sipp %s logged no SDP (logs %v)", p.name, logs)
	return netip.AddrPort{}
}

// waitSession polls the relay until it has one session that cond accepts.
func waitSession(t *testing.T, what string, d time.Duration, cond func(rtprelay.SessionInfo) bool) rtprelay.SessionInfo {
	t.Helper()
	deadline := time.Now().Add(d)
	var last []rtprelay.SessionInfo
	for time.Now().Before(deadline) {
		last = rtprelay.Default().Sessions()
		if len(last) == 1 && cond(last[0]) {
			return last[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("relay: no session with %s within %v; sessions: %+v", what, d, last)
	return rtprelay.SessionInfo{}
}

// waitNoSessions polls until the relay has no session and no port in use.
func waitNoSessions(t *testing.T, d time.Duration) rtprelay.Stats {
	t.Helper()
	deadline := time.Now().Add(d)
	var st rtprelay.Stats
	for time.Now().Before(deadline) {
		st = rtprelay.Default().Stats()
		if st.Sessions == 0 && st.PortsInUse == 0 {
			return st
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("relay still holds %d sessions, %d ports: %+v", st.Sessions, st.PortsInUse, rtprelay.Default().Sessions())
	return st
}

func rtpPackets(l rtprelay.LegInfo) uint64 { return l.RTP.Packets - l.RTP.RTCP }

// miCall runs an MI command over mi_http (JSON-RPC) and returns "result".
func miCall(t *testing.T, method string, params any) any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method, "params": params, "id": 1})
	resp, err := http.Post("http://"+httpd.Addr()+"/mi", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Result any `json:"result"`
		Error  any `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.Error != nil {
		t.Fatalf("MI %s: %v", method, out.Error)
	}
	return out.Result
}

func scrapeMetrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + httpd.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func metric(text, name string) (float64, bool) {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` ([0-9.e+]+)$`).FindStringSubmatch(text)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

// TestRTPBridge: media through the relay between the public and the LAN
// side, driven by rtpproxy_offer/answer with e/i flags, by rtpproxy_engage
// (the runtime's hooks do the rest) and by rtpengine_offer/answer with
// direction= flags; a reload mid-call keeps it flowing, the hang-up
// releases the ports, and the counters show in MI and /metrics.
func TestRTPBridge(t *testing.T) {
	needSipp(t)
	for _, setup := range rtpSetups {
		t.Run(setup.name, func(t *testing.T) {
			if n := len(rtprelay.Default().Sessions()); n != 0 {
				t.Fatalf("%d relay sessions before the call", n)
			}
			port, uasPort := freePort(t), freePort(t)
			p := startRTPProxy(t, fmt.Sprintf(rtpScript, port, uasPort, setup.params, setup.inDialog, setup.invite, setup.onReply))
			before := rtprelay.Default().Stats()
			call := startRTPCall(t, port, uasPort, "rtp_uac.xml", (toneSeconds+2)*1000, toneSeconds)

			// the media flows: caller -> relay (public) -> relay (LAN) ->
			// callee, echoed back the same way
			si := waitSession(t, "media both ways", 10*time.Second, func(si rtprelay.SessionInfo) bool {
				return len(si.Streams) == 1 && si.Streams[0].Active &&
					rtpPackets(si.Streams[0].Legs[0]) >= 10 && rtpPackets(si.Streams[0].Legs[1]) >= 10
			})
			legs := si.Streams[0].Legs
			if legs[0].Local.Addr().String() != "127.0.0.1" || legs[1].Local.Addr().String() != "127.0.0.2" {
				t.Fatalf("relay sockets: caller side %v, callee side %v", legs[0].Local, legs[1].Local)
			}
			if legs[0].Latched.Addr().String() != "127.0.0.1" || legs[1].Latched != netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), uint16(call.calleeMedia)) {
				t.Fatalf("media sources: caller %v, callee %v (its port %d)", legs[0].Latched, legs[1].Latched, call.calleeMedia)
			}
			// each party saw only the relay's port on its own side
			if got := sdpSeen(t, call.callee); got != legs[1].Local {
				t.Fatalf("the callee's SDP points at %v, the relay's LAN socket is %v", got, legs[1].Local)
			}
			if got := sdpSeen(t, call.caller); got != legs[0].Local {
				t.Fatalf("the caller's SDP points at %v, the relay's public socket is %v", got, legs[0].Local)
			}

			// a reload mid-call keeps the session and its media
			up, down := rtpPackets(legs[0]), rtpPackets(legs[1])
			if err := p.srv.Reload(); err != nil {
				t.Fatalf("reload: %v", err)
			}
			waitSession(t, "media after the reload", 5*time.Second, func(si rtprelay.SessionInfo) bool {
				l := si.Streams[0].Legs
				return l[0].Local == legs[0].Local &&
					rtpPackets(l[0]) >= up+10 && rtpPackets(l[1]) >= down+10
			})

			// the whole tone went through, and every packet came back
			si = waitSession(t, "the whole tone echoed", (toneSeconds+2)*time.Second, func(si rtprelay.SessionInfo) bool {
				l := si.Streams[0].Legs
				return rtpPackets(l[0]) == tonePackets && rtpPackets(l[1]) == tonePackets
			})
			for k, l := range si.Streams[0].Legs {
				if l.RTP.Dropped != 0 || l.RTCP.Dropped != 0 {
					t.Errorf("side %d dropped packets: RTP %+v RTCP %+v", k, l.RTP, l.RTCP)
				}
			}

			call.expectDone(t)
			after := waitNoSessions(t, 5*time.Second)
			if got := after.Media.Packets - before.Media.Packets; got != 2*tonePackets {
				t.Errorf("relay forwarded %d packets, SIPp sent %d and echoed %d", got, tonePackets, tonePackets)
			}
			if got := after.Media.Dropped - before.Media.Dropped; got != 0 {
				t.Errorf("relay dropped %d packets", got)
			}
			if after.SessionsDeleted-before.SessionsDeleted != 1 || after.SessionsCreated-before.SessionsCreated != 1 {
				t.Errorf("sessions created %d, deleted %d during the call", after.SessionsCreated-before.SessionsCreated, after.SessionsDeleted-before.SessionsDeleted)
			}

			// the counters as statistics: runtime/stats, MI, Prometheus
			time.Sleep(150 * time.Millisecond) // past the statistics' snapshot
			if v := stats.Lookup("rtprelay", "packets").Value(); uint64(v) != after.Media.Packets {
				t.Errorf("rtprelay:packets = %d, relay %d", v, after.Media.Packets)
			}
			res, _ := miCall(t, "get_statistics", map[string]any{"statistics": []string{"rtprelay:"}}).(map[string]any)
			if v, _ := res["rtprelay:packets"].(float64); uint64(v) != after.Media.Packets {
				t.Errorf("MI get_statistics rtprelay:packets = %v, relay %d (%v)", res["rtprelay:packets"], after.Media.Packets, res)
			}
			if v, _ := res["rtprelay:sessions"].(float64); v != 0 {
				t.Errorf("MI rtprelay:sessions = %v", res["rtprelay:sessions"])
			}
			text := scrapeMetrics(t)
			for name, want := range map[string]uint64{
				"opensips_rtprelay_packets": after.Media.Packets, "opensips_rtprelay_bytes": after.Media.Bytes,
				"opensips_rtprelay_dropped": after.Media.Dropped, "opensips_rtprelay_sessions": 0,
			} {
				if v, ok := metric(text, name); !ok || uint64(v) != want {
					t.Errorf("/metrics %s = %v (found %v), want %d", name, v, ok, want)
				}
			}
		})
	}
}

// TestRTPDialogEnd: a call the proxy ends itself — its media stopped for
// media_timeout (the relay's timeout hook ends the dialog), or MI
// dlg_end_dlg — gets a BYE on both sides and its relay ports released.
func TestRTPDialogEnd(t *testing.T) {
	needSipp(t)
	t.Run("media_timeout", func(t *testing.T) {
		port, uasPort := freePort(t), freePort(t)
		p := startRTPProxy(t, fmt.Sprintf(rtpScript, port, uasPort, fmt.Sprintf(rtpproxyParams, 2)+"\n"+rtpengineIdle,
			"", `rtpproxy_engage("ei");`, ""))
		before := rtprelay.Default().Stats()
		call := startRTPCall(t, port, uasPort, "rtp_uac_bye.xml", 0, 1)
		waitSession(t, "media both ways", 10*time.Second, func(si rtprelay.SessionInfo) bool {
			return len(si.Streams) == 1 && rtpPackets(si.Streams[0].Legs[1]) > 0
		})
		start := time.Now()
		// the tone lasts a second, then nothing: ~2 s later the relay
		// times the call out and the dialog module hangs up both sides
		call.expectDone(t)
		after := waitNoSessions(t, 5*time.Second)
		if after.SessionsTimedOut-before.SessionsTimedOut != 1 {
			t.Errorf("timed out sessions: %d", after.SessionsTimedOut-before.SessionsTimedOut)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("the call ended %v after media started", d)
		}
		if !strings.Contains(p.logs.String(), "ended: its media stopped") {
			t.Errorf("no log line for the media timeout")
		}
	})
	t.Run("dlg_end_dlg", func(t *testing.T) {
		port, uasPort := freePort(t), freePort(t)
		startRTPProxy(t, fmt.Sprintf(rtpScript, port, uasPort, fmt.Sprintf(rtpproxyParams, 60)+"\n"+rtpengineIdle,
			"", `rtpproxy_engage("ei");`, ""))
		call := startRTPCall(t, port, uasPort, "rtp_uac_bye.xml", 0, toneSeconds)
		si := waitSession(t, "media both ways", 10*time.Second, func(si rtprelay.SessionInfo) bool {
			return len(si.Streams) == 1 && rtpPackets(si.Streams[0].Legs[1]) > 10
		})
		if res := miCall(t, "dlg_end_dlg", map[string]any{"dialog_id": si.CallID}); res != "OK" {
			t.Fatalf("dlg_end_dlg: %v", res)
		}
		// the dialog's end released the media at once
		if _, ok := rtprelay.Default().Lookup(si.CallID, ""); ok {
			t.Fatal("relay session left after dlg_end_dlg")
		}
		call.expectDone(t)
		waitNoSessions(t, 5*time.Second)
	})
}
