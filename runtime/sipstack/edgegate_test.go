package sipstack

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/modules/edgeban"
	"github.com/sipedge/sipedge/modules/edgeban/gate"
)

// optionsFrom sends an OPTIONS from a UDP socket bound to ip and returns
// the reply's first line, or "" when nothing comes back within wait.
func optionsFrom(t testing.TB, ip string, port int, ua string, wait time.Duration) string {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lp := c.LocalAddr().(*net.UDPAddr).Port
	msg := fmt.Sprintf("OPTIONS sip:100@127.0.0.1:%d SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK-%d\r\n"+
		"From: <sip:100@1.1.1.1>;tag=%d\r\nTo: <sip:100@1.1.1.1>\r\n"+
		"Call-ID: edge-%d@%s\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"+
		"User-Agent: %s\r\nContent-Length: 0\r\n\r\n", port, ip, lp, time.Now().UnixNano(), lp, time.Now().UnixNano(), ip, ua)
	if _, err := c.WriteToUDP([]byte(msg), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4096)
	n, _, err := c.ReadFromUDP(buf)
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
	return line
}

const edgeScript = `
socket = udp:127.0.0.1:PORT
log_alert_file = "ALERTS"
loadmodule "sl.so"
loadmodule "edgeban.so"
modparam("edgeban", "threshold", 2)
modparam("edgeban", "count_alerts", 1)
route {
    if ($ua =~ "friendly-scanner") {
        xlog("L_ALERT", "$si:$sp Scanner UA=$ua From=$fu\n");
        exit;
    }
    sl_send_reply(200, "OK");
}
`

func TestAlertLogAndBan(t *testing.T) {
	alerts := filepath.Join(t.TempDir(), "alert.log")
	srv, port, logs := startServer(t, strings.ReplaceAll(edgeScript, "ALERTS", alerts))
	if srv.Logger().AlertFile() != alerts {
		t.Fatal(srv.Logger().AlertFile())
	}
	t.Cleanup(func() { edgeban.Unban("127.0.0.55") })
	// two scanner requests: logged to the alert file, counted, banned
	for range 2 {
		if got := optionsFrom(t, "127.0.0.55", port, "friendly-scanner", 300*time.Millisecond); got != "" {
			t.Fatalf("scanner answered: %q", got)
		}
	}
	data, err := os.ReadFile(alerts)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	re := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d 127\.0\.0\.55:\d+ Scanner UA=friendly-scanner From=sip:100@1\.1\.1\.1$`)
	if len(lines) != 2 || !re.MatchString(lines[0]) || !re.MatchString(lines[1]) {
		t.Fatalf("alert file:\n%s", data)
	}
	if !edgeban.Banned("127.0.0.55") {
		t.Fatalf("not banned; log:\n%s", logs)
	}
	// the banned address gets nothing, even for a clean request; the
	// script never sees it (no third alert line)
	dropped := gate.Dropped()
	if got := optionsFrom(t, "127.0.0.55", port, "Linphone", 300*time.Millisecond); got != "" {
		t.Fatalf("banned source answered: %q", got)
	}
	if gate.Dropped() != dropped+1 {
		t.Fatal("drop not counted")
	}
	// another address is served
	if got := optionsFrom(t, "127.0.0.56", port, "Linphone", 2*time.Second); got != "SIP/2.0 200 OK" {
		t.Fatalf("clean source: %q", got)
	}
	if !strings.Contains(logs.String(), "edgeban: banned 127.0.0.55") {
		t.Fatalf("no ban line in the log:\n%s", logs)
	}
	// lifting the ban lets it through again
	edgeban.Unban("127.0.0.55")
	if got := optionsFrom(t, "127.0.0.55", port, "Linphone", 2*time.Second); got != "SIP/2.0 200 OK" {
		t.Fatalf("unbanned source: %q", got)
	}
	// a reload reopens the file (logrotate moved it away)
	os.Rename(alerts, alerts+".1")
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	optionsFrom(t, "127.0.0.57", port, "friendly-scanner", 300*time.Millisecond)
	if data, err := os.ReadFile(alerts); err != nil || !strings.Contains(string(data), "127.0.0.57:") {
		t.Fatalf("not reopened: %v %q", err, data)
	}
	edgeban.Unban("127.0.0.57")
}

func TestAlertFileError(t *testing.T) {
	port := freePort(t)
	path := filepath.Join(t.TempDir(), "x.cfg")
	script := strings.ReplaceAll(strings.ReplaceAll(edgeScript, "ALERTS", "/nonexistent/dir/alert.log"), "PORT", fmt.Sprint(port))
	os.WriteFile(path, []byte(script), 0o644)
	if _, err := New(Options{Script: path, Log: &syncBuffer{}}); err == nil || !strings.Contains(err.Error(), "log_alert_file") {
		t.Fatal(err)
	}
}

// BenchmarkDropBanned is the read filter's cost for a packet from a banned
// source (10 000 bans published).
func BenchmarkDropBanned(b *testing.B) {
	for i := range 10000 {
		edgeban.Ban(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), time.Hour, "bench")
	}
	defer func() {
		for i := range 10000 {
			edgeban.Unban(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
		}
	}()
	props := sip.TransportReadProps{Transport: "udp", RemoteAddr: &net.UDPAddr{IP: net.IPv4(10, 0, 1, 2), Port: 5060}}
	data := []byte("OPTIONS sip:x SIP/2.0\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if out, _ := dropBanned(props, data); out != nil {
			b.Fatal("not dropped")
		}
	}
}

// BenchmarkBannedPacket is what a banned source's datagram costs the
// proxy end to end: a real UDP socket, sipgo's read loop and the filter
// ("banned"), next to a scanner's datagram that the script drops at once
// with exit ("scanner-exit": parsed, transaction, script). The datagrams
// come from a helper process (this test binary running TestEdgeBlaster),
// so the proxy process's CPU time per datagram (server-ns/pkt) is the
// proxy's cost alone; ns/op is wall time.
func BenchmarkBannedPacket(b *testing.B) {
	port := freePort(b)
	path := filepath.Join(b.TempDir(), "bench.cfg")
	os.WriteFile(path, []byte(fmt.Sprintf(`
socket = udp:127.0.0.1:%d
loadmodule "sl.so"
route {
    if ($ua =~ "friendly-scanner") exit;
    sl_send_reply(200, "OK");
}
`, port)), 0o644)
	srv, err := New(Options{Script: path, Log: &syncBuffer{}, UDPReadBuffer: 16 << 20})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	edgeban.Ban("127.0.0.66", time.Hour, "bench")
	defer edgeban.Unban("127.0.0.66")
	run := func(b *testing.B, src string, done func() uint64) {
		start := done()
		cpu0 := cpuTime()
		b.ResetTimer()
		cmd := exec.Command(os.Args[0], "-test.run=^TestEdgeBlaster$", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("SIPEDGE_BLAST=%s>127.0.0.1:%d:%d", src, port, b.N))
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("blaster: %v\n%s", err, out)
		}
		for last, idle := done(), 0; done()-start < uint64(b.N) && idle < 100; {
			time.Sleep(time.Millisecond)
			if n := done(); n == last {
				idle++ // nothing more is coming: the kernel dropped the rest
			} else {
				last, idle = n, 0
			}
		}
		b.StopTimer()
		got := done() - start
		if got < uint64(b.N)*8/10 {
			b.Fatalf("%d of %d datagrams handled", got, b.N)
		}
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(got), "server-ns/pkt")
	}
	b.Run("banned", func(b *testing.B) { run(b, "127.0.0.66", gate.Dropped) })
	b.Run("scanner-exit", func(b *testing.B) { run(b, "127.0.0.67", srv.stats.RcvRequests.Load) })
	// the floor: a bare Go loop reading the same datagrams off a socket
	raw, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port + 1})
	if err != nil {
		b.Skip(err)
	}
	defer raw.Close()
	raw.SetReadBuffer(16 << 20)
	var reads atomic.Uint64
	go func() {
		buf := make([]byte, 65535)
		for {
			if _, _, err := raw.ReadFrom(buf); err != nil {
				return
			}
			reads.Add(1)
		}
	}()
	port++
	b.Run("bare-read-loop", func(b *testing.B) { run(b, "127.0.0.68", reads.Load) })
	// what a gate inside the socket's ReadFrom (before sipgo allocates the
	// net.Addr and the address string) would cost: ReadFromUDPAddrPort and
	// gate.DropAddrPort, no allocation
	raw2, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port + 1})
	if err != nil {
		b.Skip(err)
	}
	defer raw2.Close()
	raw2.SetReadBuffer(16 << 20)
	go func() {
		buf := make([]byte, 65535)
		for {
			_, ap, err := raw2.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			gate.DropAddrPort(ap)
		}
	}()
	port++
	b.Run("readfrom-gate-loop", func(b *testing.B) { run(b, "127.0.0.66", gate.Dropped) })
}

// cpuTime is the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// TestEdgeBlaster is BenchmarkBannedPacket's sender, run as a separate
// process: SIPEDGE_BLAST=SRC>DSTIP:PORT:N sends N scanner OPTIONS
// datagrams from SRC, in bursts of 128 so the proxy's socket keeps up.
func TestEdgeBlaster(t *testing.T) {
	spec := os.Getenv("SIPEDGE_BLAST")
	if spec == "" {
		t.Skip("helper process for BenchmarkBannedPacket")
	}
	src, rest, _ := strings.Cut(spec, ">")
	f := strings.Split(rest, ":")
	var port, n int
	fmt.Sscan(f[1], &port)
	fmt.Sscan(f[2], &n)
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dst := &net.UDPAddr{IP: net.ParseIP(f[0]), Port: port}
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("OPTIONS sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP %s:5060;branch=z9hG4bK-b%d\r\n"+
			"From: <sip:100@1.1.1.1>;tag=1\r\nTo: <sip:100@1.1.1.1>\r\nCall-ID: bench-%d\r\nCSeq: 1 OPTIONS\r\n"+
			"Max-Forwards: 70\r\nUser-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n", src, i, i)
		if _, err := c.WriteToUDP([]byte(msg), dst); err != nil {
			t.Fatal(err)
		}
		if i%128 == 127 {
			time.Sleep(100 * time.Microsecond)
		}
	}
}
