package rtprelay

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Benchmark interfaces: wide enough for 1000 streams (2000 port pairs).
const benchIfaces = "pub/127.0.0.1:24000-27999;lan/127.0.0.2:28000-31999"

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkForward pushes RTP packets caller -> relay -> callee over
// loopback, with up to 32 packets in flight. "direct" is the same client
// without the relay, so relay cost = relay - direct. allocs/op counts the
// whole process: relay goroutines included.
func BenchmarkForward(b *testing.B) {
	for _, via := range []string{"relay", "direct"} {
		b.Run(via, func(b *testing.B) {
			_, p := newTestRelay(b, benchIfaces, nil)
			caller, callee := newParty(b, "127.0.0.1"), newParty(b, "127.0.0.2")
			dst := callee.addr()
			if via == "relay" {
				dst, _ = call(b, p, caller, callee)
				// latch both sides first
				sendTo(b, caller.rtp, dst, rtpPacket(b, 0, 0, 1, make([]byte, 160)))
				recvAll(callee.rtp, 50*time.Millisecond)
			}
			pkt := rtpPacket(b, 1, 0, 1, make([]byte, 160))
			const window = 32
			credits := make(chan struct{}, window)
			for i := 0; i < window; i++ {
				credits <- struct{}{}
			}
			done := make(chan int)
			n := b.N
			go func() {
				buf := make([]byte, 2048)
				got := 0
				callee.rtp.SetReadDeadline(time.Now().Add(time.Hour))
				for got < n {
					if _, _, err := callee.rtp.ReadFromUDPAddrPort(buf); err != nil {
						break
					}
					got++
					credits <- struct{}{}
				}
				close(credits) // unblock the sender if packets were lost
				done <- got
			}()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0, t0 := cpuTime(), time.Now()
			// a watchdog ends the reader if packets were lost
			watchdog := time.AfterFunc(time.Minute, func() { callee.rtp.SetReadDeadline(time.Now()) })
			defer watchdog.Stop()
			for i := 0; i < n; i++ {
				<-credits
				binary.BigEndian.PutUint16(pkt[2:], uint16(i))
				caller.rtp.WriteToUDPAddrPort(pkt, dst)
			}
			got := <-done
			b.StopTimer()
			el, cpu := time.Since(t0), cpuTime()-cpu0
			b.ReportMetric(float64(got)/el.Seconds(), "pkt/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(got), "cpu-ns/pkt")
			if got < n*99/100 {
				b.Fatalf("received %d of %d", got, n)
			}
		})
	}
}

// BenchmarkLatency runs N concurrent streams (N/2 calls, both directions)
// of 50 packets/s through the relay for a few seconds and reports the
// one-way latency percentiles as the receivers measure it (send time is in
// the payload), the same load sent directly for comparison, and the CPU
// the whole process used. It ignores b.N: one bounded run per size.
func BenchmarkLatency(b *testing.B) {
	for _, n := range []int{200, 1000} {
		for _, via := range []string{"relay", "direct"} {
			b.Run(fmt.Sprintf("streams=%d/%s", n, via), func(b *testing.B) {
				lat, loss, cpu := latencyRun(b, n, via == "relay", 4*time.Second)
				b.ReportMetric(lat[0], "p50-us")
				b.ReportMetric(lat[1], "p99-us")
				b.ReportMetric(lat[2], "max-us")
				b.ReportMetric(loss, "loss-%")
				b.ReportMetric(cpu, "cpu-%")
			})
		}
	}
}

func latencyRun(b *testing.B, streams int, viaRelay bool, dur time.Duration) (pct [3]float64, lossPct, cpuPct float64) {
	b.Helper()
	r, p := newTestRelay(b, benchIfaces, func(c *ProfileConfig) { c.DrainTime = 0 })
	type flow struct {
		from *net.UDPConn
		to   netip.AddrPort
		recv *net.UDPConn
	}
	var flows []flow
	for i := 0; i < streams/2; i++ {
		caller, callee := newParty(b, "127.0.0.1"), newParty(b, "127.0.0.2")
		toCallee, toCaller := callee.addr(), caller.addr()
		if viaRelay {
			id := fmt.Sprintf("call-%d", i)
			res, err := p.Process(&Request{Op: Offer, CallID: id, FromTag: "a", Body: offerFor(caller), InIface: "pub", OutIface: "lan", TrustAddress: true})
			if err != nil {
				b.Fatal(err)
			}
			toCaller = relayAddr(b, res.Body) // where the callee sends
			res, err = p.Process(&Request{Op: Answer, Reply: true, CallID: id, FromTag: "a", ToTag: "b", Body: offerFor(callee), TrustAddress: true})
			if err != nil {
				b.Fatal(err)
			}
			toCallee = relayAddr(b, res.Body) // where the caller sends
		}
		flows = append(flows, flow{caller.rtp, toCallee, callee.rtp}, flow{callee.rtp, toCaller, caller.rtp})
	}
	runtime.GC()
	base := time.Now()
	// packets sent in the first half second (goroutines waking up for the
	// first time) are not measured
	const warmup = 500 * time.Millisecond
	warm := int64(warmup)
	var wg sync.WaitGroup
	samples := make([][]int64, len(flows))
	stop := make(chan struct{})
	for i, f := range flows {
		wg.Add(1)
		go func(i int, c *net.UDPConn) {
			defer wg.Done()
			buf := make([]byte, 2048)
			s := make([]int64, 0, int(dur/(20*time.Millisecond))+10)
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
					sent := int64(binary.BigEndian.Uint64(buf[12:20]))
					if sent >= warm {
						s = append(s, int64(time.Since(base))-sent)
					}

				}
			}
		}(i, f.recv)
	}
	// senders: each goroutine owns a slice of flows and spreads their
	// packets evenly over every 20 ms period
	senders := runtime.GOMAXPROCS(0) * 2
	const period = 20 * time.Millisecond
	sent := make([]int, senders)
	t0 := time.Now()
	dur += warmup
	cpu0, cpuAt := cpuTime(), t0.Add(warmup)
	go func() { time.Sleep(time.Until(cpuAt)); cpu0 = cpuTime() }()
	var swg sync.WaitGroup
	for g := 0; g < senders; g++ {
		swg.Add(1)
		go func(g int) {
			defer swg.Done()
			pkt := rtpPacket(b, 0, 0, uint32(g), make([]byte, 160))
			var mine []flow
			for i := g; i < len(flows); i += senders {
				mine = append(mine, flows[i])
			}
			slot := period / time.Duration(len(mine)+1)
			for tick := 0; time.Since(t0) < dur; tick++ {
				start := t0.Add(time.Duration(tick) * period)
				for j, f := range mine {
					if d := time.Until(start.Add(time.Duration(j) * slot)); d > 0 {
						time.Sleep(d)
					}
					binary.BigEndian.PutUint16(pkt[2:], uint16(tick))
					ts := int64(time.Since(base))
					binary.BigEndian.PutUint64(pkt[12:], uint64(ts))
					f.from.WriteToUDPAddrPort(pkt, f.to)
					if ts >= warm {
						sent[g]++
					}
				}
			}
		}(g)
	}
	swg.Wait()
	el := time.Since(t0)
	time.Sleep(200 * time.Millisecond)
	cpu := cpuTime() - cpu0
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
	pct = [3]float64{at(0.50), at(0.99), at(1)}
	lossPct = 100 * float64(total-len(all)) / float64(total)
	cpuPct = 100 * cpu.Seconds() / (el - warmup + 200*time.Millisecond).Seconds()
	if viaRelay {
		if st := r.Stats(); st.Media.Packets < uint64(len(all)) {
			b.Fatalf("relay forwarded %d < received %d", st.Media.Packets, len(all))
		}
	}
	b.Logf("%d streams via relay=%v: sent %d received %d in %v (%.0f pkt/s)", streams, viaRelay, total, len(all), el-warmup, float64(total)/(el-warmup).Seconds())
	return pct, lossPct, cpuPct
}
