package sipstack

import (
	"context"
	"runtime"
	"syscall"
	"time"

	"github.com/sipedge/sipedge/runtime/msgctx"
)

// Adaptive GOMAXPROCS (Options.AdaptProcs; the sipedge binary turns it on
// unless GOMAXPROCS is in the environment).
//
// Every datagram wakes a goroutine, and sipgo starts one more per message
// (a request, then its transaction's replies). With a P idle, each of
// those wake-ups also wakes an idle thread to look for work (the
// scheduler's spinning Ms), which mostly finds none and sleeps again: two
// context switches per message, the dearest thing a proxy does on a VM.
// Measured on 2 vCPUs at 2000 calls/s, one P instead of two cut the CPU per
// call by 30% (stateless forward) and 15% (stateful), and one P kept up to
// 5000 stateful and 10000 stateless calls/s clean (bench/README.md).
//
// So the process starts with one P and adds one whenever it keeps more
// than 80% of its Ps busy (smoothed over ~1 s; or 95% for two ticks in a
// row), up to the GOMAXPROCS it started with (the CPU count, or the
// container's quota); it gives one back after a quiet spell (the load
// would keep the smaller count under half busy for 5 s).
// runtime.GOMAXPROCS stops the world for a few microseconds; with the
// hysteresis that happens a few times per load change, not continuously.

const (
	procsTick     = 250 * time.Millisecond
	procsAlpha    = 0.25 // EWMA weight of a tick's load (time constant ~1 s)
	procsUp       = 0.80 // add a P when the smoothed load passes this share of the Ps
	procsFull     = 0.95 // or when two ticks in a row pass this share (saturated)
	procsDown     = 0.50 // remove one when the load fits n-1 Ps at this share
	procsDownWait = 20   // ticks (5 s) the lower load must last
)

// processCPU is the process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procsController decides the next GOMAXPROCS from the smoothed load
// (busy cores); it holds no clock, so it can be tested step by step.
type procsController struct {
	max   int
	n     int
	load  float64 // EWMA of the busy cores
	full  bool    // the previous tick was saturated
	quiet int     // consecutive ticks the load fitted n-1 Ps
}

// next takes one tick's load (cores busy over the tick) and returns the
// GOMAXPROCS to use.
func (c *procsController) next(sample float64) int {
	c.load = (1-procsAlpha)*c.load + procsAlpha*sample
	full := sample > procsFull*float64(c.n)
	defer func() { c.full = full }()
	switch {
	case c.n < c.max && (c.load > procsUp*float64(c.n) || full && c.full):
		c.n++
		c.quiet = 0
		full = false
	case c.n > 1 && c.load < procsDown*float64(c.n-1):
		c.quiet++
		if c.quiet >= procsDownWait {
			c.n--
			c.quiet = 0
		}
	default:
		c.quiet = 0
	}
	return c.n
}

// adaptProcs runs the controller until ctx ends, then restores the
// GOMAXPROCS the process started with.
func (s *Server) adaptProcs(ctx context.Context) {
	max := runtime.GOMAXPROCS(0)
	if max <= 1 {
		return
	}
	c := &procsController{max: max, n: 1}
	runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(max)
	tk := time.NewTicker(procsTick)
	defer tk.Stop()
	lastCPU, lastAt := processCPU(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tk.C:
			cpu := processCPU()
			sample := float64(cpu-lastCPU) / float64(now.Sub(lastAt))
			lastCPU, lastAt = cpu, now
			before := c.n
			if n := c.next(sample); n != before {
				runtime.GOMAXPROCS(n)
				s.log.Logf(msgctx.LInfo, "core", "GOMAXPROCS %d -> %d (%.2f cores busy)", before, n, c.load)
			}
		}
	}
}
