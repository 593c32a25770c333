// Package rtpbench compares sipedge's built-in relay with Debian's
// rtpengine daemon (userspace forwarding, no kernel module) under the same
// load: N concurrent streams (N/2 calls, both directions) of 50 packets/s
// over loopback, caller on 127.0.0.1, callee on 127.0.0.2. It needs the
// rtpengine binary (apt-get install rtpengine-daemon) and is skipped
// without it. Run:
//
//	go test -run XXX -bench . ./bench/rtp/
package rtpbench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sipedge/sipedge/bench/rtp/ng"
	"github.com/sipedge/sipedge/runtime/rtprelay"
)

// signaller creates one call on a relay and returns where each side sends.
type signaller interface {
	call(id string, caller, callee netip.AddrPort) (toCallee, toCaller netip.AddrPort, err error)
	cpu() time.Duration // CPU the relay used so far; -1 if it runs in this process
}

func sdpOf(a netip.AddrPort) string {
	ip := a.Addr().String()
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=sendrecv\r\n", ip, ip, a.Port())
}

func mediaAddr(body string) (netip.AddrPort, error) {
	var ip string
	port := -1
	for _, l := range strings.Split(body, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "c=IN IP4 ") && ip == "" {
			ip = strings.TrimPrefix(l, "c=IN IP4 ")
		}
		if strings.HasPrefix(l, "m=audio ") && port < 0 {
			port, _ = strconv.Atoi(strings.Fields(l)[1])
		}
	}
	a, err := netip.ParseAddr(ip)
	if err != nil || port <= 0 {
		return netip.AddrPort{}, fmt.Errorf("no media address in\n%s", body)
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}

// --- sipedge, in process ---

type builtin struct{ p *rtprelay.Profile }

func (b builtin) call(id string, caller, callee netip.AddrPort) (netip.AddrPort, netip.AddrPort, error) {
	res, err := b.p.Process(&rtprelay.Request{Op: rtprelay.Offer, CallID: id, FromTag: "a", Body: []byte(sdpOf(caller)),
		InIface: "pub", OutIface: "lan", TrustAddress: true})
	if err != nil {
		return netip.AddrPort{}, netip.AddrPort{}, err
	}
	toCaller, err := mediaAddr(string(res.Body))
	if err != nil {
		return netip.AddrPort{}, netip.AddrPort{}, err
	}
	res, err = b.p.Process(&rtprelay.Request{Op: rtprelay.Answer, Reply: true, CallID: id, FromTag: "a", ToTag: "b",
		Body: []byte(sdpOf(callee)), TrustAddress: true})
	if err != nil {
		return netip.AddrPort{}, netip.AddrPort{}, err
	}
	toCallee, err := mediaAddr(string(res.Body))
	return toCallee, toCaller, err
}

func (builtin) cpu() time.Duration { return -1 }

// --- rtpengine over the NG protocol (bencode over UDP) ---

type ngClient struct {
	conn *net.UDPConn
	pid  int
	seq  int
}

func (c *ngClient) cmd(dict map[string]any) (map[string]any, error) {
	c.seq++
	cookie := strconv.Itoa(c.seq)
	var b bytes.Buffer
	b.WriteString(cookie + " ")
	ng.Encode(&b, dict)
	if _, err := c.conn.Write(b.Bytes()); err != nil {
		return nil, err
	}
	buf := make([]byte, 65536)
	c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := c.conn.Read(buf)
	if err != nil {
		return nil, err
	}
	reply := buf[:n]
	if !bytes.HasPrefix(reply, []byte(cookie+" ")) {
		return nil, fmt.Errorf("bad cookie in %q", reply)
	}
	v, _, err := ng.Decode(reply[len(cookie)+1:])
	if err != nil {
		return nil, err
	}
	d, _ := v.(map[string]any)
	if d["result"] != "ok" && d["result"] != "pong" {
		return nil, fmt.Errorf("rtpengine: %v", d)
	}
	return d, nil
}

func (c *ngClient) call(id string, caller, callee netip.AddrPort) (netip.AddrPort, netip.AddrPort, error) {
	r, err := c.cmd(map[string]any{"command": "offer", "call-id": id, "from-tag": "a", "sdp": sdpOf(caller),
		"direction": []any{"pub", "lan"}, "flags": []any{"trust-address"}})
	if err != nil {
		return netip.AddrPort{}, netip.AddrPort{}, err
	}
	toCaller, err := mediaAddr(r["sdp"].(string))
	if err != nil {
		return netip.AddrPort{}, netip.AddrPort{}, err
	}
	r, err = c.cmd(map[string]any{"command": "answer", "call-id": id, "from-tag": "a", "to-tag": "b",
		"sdp": sdpOf(callee), "flags": []any{"trust-address"}})
	if err != nil {
		return netip.AddrPort{}, netip.AddrPort{}, err
	}
	toCallee, err := mediaAddr(r["sdp"].(string))
	return toCallee, toCaller, err
}

func (c *ngClient) cpu() time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
}

func startRtpengine(b *testing.B) *ngClient {
	bin, err := exec.LookPath("rtpengine")
	if err != nil {
		b.Skip("rtpengine not installed (apt-get install rtpengine-daemon)")
	}
	return startDaemon(b, 22299, bin, "--config-file=none", "-f", "-E", "-L", "3", "-t", "-1",
		"-i", "pub/127.0.0.1", "-i", "lan/127.0.0.2", "-n", "127.0.0.1:22299",
		"-m", "24000", "-M", "31999", "--num-threads="+strconv.Itoa(runtime.NumCPU()), "--pidfile=/dev/null")
}

var (
	relaydOnce sync.Once
	relaydBin  string
	relaydErr  error
)

// startRelayd builds and starts bench/rtp/relayd: sipedge's relay in a
// process of its own behind the same NG protocol.
func startRelayd(b *testing.B) *ngClient {
	relaydOnce.Do(func() {
		dir, err := os.MkdirTemp("", "relayd")
		if err != nil {
			relaydErr = err
			return
		}
		relaydBin = dir + "/relayd"
		out, err := exec.Command("go", "build", "-o", relaydBin, "./relayd").CombinedOutput()
		if err != nil {
			relaydErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	if relaydErr != nil {
		b.Fatal(relaydErr)
	}
	return startDaemon(b, 22298, relaydBin, "-ng", "127.0.0.1:22298", "-interfaces", "pub/127.0.0.1:24000-27999;lan/127.0.0.2:28000-31999")
}

func startDaemon(b *testing.B, port int, bin string, args ...string) *ngClient {
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	conn, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		b.Fatal(err)
	}
	c := &ngClient{conn: conn, pid: cmd.Process.Pid}
	for i := 0; i < 50; i++ {
		if _, err := c.cmd(map[string]any{"command": "ping"}); err == nil {
			return c
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatalf("%s does not answer ping", bin)
	return nil
}

// --- load ---

func procCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type result struct {
	p50, p99, max    float64 // µs
	loss             float64 // %
	relayCPU, cliCPU float64 // % of one core
}

// run sends streams of 50 packets/s through sig (nil: straight to the
// other party) for dur after a 500 ms warm-up.
func run(b *testing.B, sig signaller, streams int, dur time.Duration) result {
	type flow struct {
		from *net.UDPConn
		to   netip.AddrPort
		recv *net.UDPConn
	}
	var flows []flow
	listen := func(ip string) *net.UDPConn {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	for i := 0; i < streams/2; i++ {
		caller, callee := listen("127.0.0.1"), listen("127.0.0.2")
		ca, cb := caller.LocalAddr().(*net.UDPAddr).AddrPort(), callee.LocalAddr().(*net.UDPAddr).AddrPort()
		toCallee, toCaller := cb, ca
		if sig != nil {
			var err error
			toCallee, toCaller, err = sig.call(fmt.Sprintf("bench-%d-%d", streams, i), ca, cb)
			if err != nil {
				b.Fatal(err)
			}
		}
		flows = append(flows, flow{caller, toCallee, callee}, flow{callee, toCaller, caller})
	}
	runtime.GC()
	const warmup = 500 * time.Millisecond
	base := time.Now()
	samples := make([][]int64, len(flows))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, f := range flows {
		wg.Add(1)
		go func(i int, c *net.UDPConn) {
			defer wg.Done()
			buf := make([]byte, 2048)
			s := make([]int64, 0, int((dur+warmup)/(20*time.Millisecond))+50) // no GC during the run
			for {
				c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				n, _, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					select {
					case <-stop:
						samples[i] = s
						return
					default:
						continue
					}
				}
				if n >= 20 {
					if sent := int64(binary.BigEndian.Uint64(buf[12:20])); sent >= int64(warmup) {
						s = append(s, int64(time.Since(base))-sent)
					}
				}
			}
		}(i, f.recv)
	}
	senders := runtime.GOMAXPROCS(0) * 2
	sent := make([]int, senders)
	var cpu0, rcpu0 time.Duration
	go func() {
		time.Sleep(time.Until(base.Add(warmup)))
		cpu0 = procCPU()
		if sig != nil {
			rcpu0 = sig.cpu()
		}
	}()
	var swg sync.WaitGroup
	for g := 0; g < senders; g++ {
		swg.Add(1)
		go func(g int) {
			defer swg.Done()
			pkt := make([]byte, 172)
			pkt[0], pkt[11] = 0x80, byte(g)
			var mine []flow
			for i := g; i < len(flows); i += senders {
				mine = append(mine, flows[i])
			}
			slot := 20 * time.Millisecond / time.Duration(len(mine)+1)
			for tick := 0; time.Since(base) < dur+warmup; tick++ {
				start := base.Add(time.Duration(tick) * 20 * time.Millisecond)
				for j, f := range mine {
					if d := time.Until(start.Add(time.Duration(j) * slot)); d > 0 {
						time.Sleep(d)
					}
					ts := int64(time.Since(base))
					binary.BigEndian.PutUint16(pkt[2:], uint16(tick))
					binary.BigEndian.PutUint64(pkt[12:], uint64(ts))
					f.from.WriteToUDPAddrPort(pkt, f.to)
					if ts >= int64(warmup) {
						sent[g]++
					}
				}
			}
		}(g)
	}
	swg.Wait()
	time.Sleep(200 * time.Millisecond)
	wall := time.Since(base) - warmup
	cpu := procCPU() - cpu0
	var rcpu time.Duration
	if sig != nil {
		rcpu = sig.cpu() - rcpu0
	}
	close(stop)
	wg.Wait()
	var all []int64
	for _, s := range samples {
		all = append(all, s...)
	}
	total := 0
	for _, n := range sent {
		total += n
	}
	if len(all) == 0 {
		b.Fatal("nothing received")
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	at := func(q float64) float64 { return float64(all[int(q*float64(len(all)-1))]) / 1e3 }
	r := result{p50: at(0.5), p99: at(0.99), max: at(1), loss: 100 * float64(total-len(all)) / float64(total)}
	r.cliCPU = 100 * cpu.Seconds() / wall.Seconds()
	if rcpu >= 0 && sig != nil {
		r.relayCPU = 100 * rcpu.Seconds() / wall.Seconds()
	}
	return r
}

// BenchmarkCompare reports one-way latency through each relay and the CPU
// the relay used: rtpengine and sipedge-relayd (sipedge's relay in its own
// process) by their process's CPU; "sipedge" (the relay inside this test
// process, sharing its scheduler with the load) by this process's CPU
// minus the same load sent directly, measured first.
func BenchmarkCompare(b *testing.B) {
	const dur = 4 * time.Second
	for _, n := range []int{200, 1000} {
		var direct result
		b.Run(fmt.Sprintf("streams=%d/direct", n), func(b *testing.B) {
			direct = run(b, nil, n, dur)
			report(b, direct, direct.cliCPU)
		})
		b.Run(fmt.Sprintf("streams=%d/sipedge", n), func(b *testing.B) {
			r := rtprelay.New(rtprelay.Options{})
			defer r.Close()
			ifs, _ := rtprelay.ParseInterfaces("pub/127.0.0.1:24000-27999;lan/127.0.0.2:28000-31999", 0, 0)
			p, err := r.NewProfile(rtprelay.ProfileConfig{Interfaces: ifs})
			if err != nil {
				b.Fatal(err)
			}
			res := run(b, builtin{p}, n, dur)
			report(b, res, res.cliCPU-direct.cliCPU)
		})
		b.Run(fmt.Sprintf("streams=%d/sipedge-relayd", n), func(b *testing.B) {
			c := startRelayd(b)
			res := run(b, c, n, dur)
			report(b, res, res.relayCPU)
		})
		b.Run(fmt.Sprintf("streams=%d/rtpengine", n), func(b *testing.B) {
			c := startRtpengine(b)
			res := run(b, c, n, dur)
			report(b, res, res.relayCPU)
		})
	}
}

func report(b *testing.B, r result, relayCPU float64) {
	b.ReportMetric(r.p50, "p50-us")
	b.ReportMetric(r.p99, "p99-us")
	b.ReportMetric(r.max, "max-us")
	b.ReportMetric(r.loss, "loss-%")
	b.ReportMetric(relayCPU, "relay-cpu-%")
}
