package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sippProc is one SIPp process of a step (a fresh one per step: an
// overloaded SIPp stays slow afterwards, PERF.md).
type sippProc struct {
	name string
	cmd  *exec.Cmd
	dir  string
	stat string // -stf file
	done chan struct{}
}

func startSipp(name, dir string, args ...string) (*sippProc, error) {
	p := &sippProc{name: name, dir: dir, done: make(chan struct{})}
	p.stat = filepath.Join(dir, name+"_stat.csv")
	args = append(args, "-nostdin", "-trace_stat", "-stf", p.stat, "-fd", "1",
		"-trace_err", "-error_file", filepath.Join(dir, name+"_errors.log"))
	p.cmd = exec.Command("sipp", args...)
	p.cmd.Dir = dir
	out, err := os.Create(filepath.Join(dir, name+".out"))
	if err != nil {
		return nil, err
	}
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("starting sipp %s: %w", name, err)
	}
	go func() {
		p.cmd.Wait()
		out.Close()
		close(p.done)
	}()
	return p, nil
}

// wait waits for the process to exit by itself, killing it (by PID) after d.
func (p *sippProc) wait(d time.Duration) (killed bool) {
	select {
	case <-p.done:
		return false
	case <-time.After(d):
		p.kill()
		return true
	}
}

// stop asks SIPp to quit (SIGUSR1: soft exit, writes its statistics),
// then kills it if it is still there after grace.
func (p *sippProc) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGUSR1)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.kill()
	}
}

// cpuMillis is the CPU time the exited process used.
func (p *sippProc) cpuMillis() float64 {
	select {
	case <-p.done:
	default:
		return 0
	}
	if ps := p.cmd.ProcessState; ps != nil {
		return float64((ps.UserTime() + ps.SystemTime()).Microseconds()) / 1000
	}
	return 0
}

func (p *sippProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// sippStats are SIPp's cumulative counters from its -trace_stat file.
type sippStats struct {
	created, successful, failed, retrans, unexpected, timeouts int
	genSeconds                                                 float64 // elapsed when the last call was created
	elapsed                                                    float64
	ok                                                         bool
}

// readSippStats parses a -trace_stat CSV (';'-separated, one line per
// -fd period plus a final one). want is the number of calls the UAC was to
// create: the first line reaching it dates the end of call generation.
func readSippStats(path string, want int) sippStats {
	b, err := os.ReadFile(path)
	if err != nil {
		return sippStats{}
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		return sippStats{}
	}
	col := map[string]int{}
	for i, h := range strings.Split(lines[0], ";") {
		col[h] = i
	}
	get := func(f []string, name string) int {
		i, ok := col[name]
		if !ok || i >= len(f) {
			return 0
		}
		n, _ := strconv.Atoi(f[i])
		return n
	}
	// StartTime and CurrentTime are "date<TAB>time<TAB>epoch.micros"
	epoch := func(f []string, name string) float64 {
		i, ok := col[name]
		if !ok || i >= len(f) {
			return 0
		}
		v := f[i]
		if j := strings.LastIndexByte(v, '\t'); j >= 0 {
			v = v[j+1:]
		}
		t, _ := strconv.ParseFloat(v, 64)
		return t
	}
	elapsed := func(f []string) float64 {
		if t0, t1 := epoch(f, "StartTime"), epoch(f, "CurrentTime"); t0 > 0 && t1 >= t0 {
			return t1 - t0
		}
		i, ok := col["ElapsedTime(C)"]
		if !ok || i >= len(f) {
			return 0
		}
		return parseHMS(f[i])
	}
	var s sippStats
	for _, line := range lines[1:] {
		f := strings.Split(line, ";")
		if s.genSeconds == 0 && want > 0 && get(f, "TotalCallCreated") >= want {
			s.genSeconds = elapsed(f)
		}
	}
	last := strings.Split(lines[len(lines)-1], ";")
	s.created = get(last, "TotalCallCreated")
	if s.created == 0 {
		s.created = get(last, "OutgoingCall(C)") + get(last, "IncomingCall(C)")
	}
	s.successful = get(last, "SuccessfulCall(C)")
	s.failed = get(last, "FailedCall(C)")
	s.retrans = get(last, "Retransmissions(C)")
	s.unexpected = get(last, "FailedUnexpectedMessage(C)")
	s.timeouts = get(last, "FailedTimeoutOnRecv(C)") + get(last, "FailedMaxUDPRetrans(C)")
	s.elapsed = elapsed(last)
	if s.genSeconds == 0 {
		s.genSeconds = s.elapsed
	}
	s.ok = true
	return s
}

// parseHMS reads SIPp's "HH:MM:SS" (or "HH:MM:SS:uuuuuu").
func parseHMS(v string) float64 {
	parts := strings.Split(v, ":")
	if len(parts) < 3 {
		return 0
	}
	h, _ := strconv.Atoi(parts[0])
	m, _ := strconv.Atoi(parts[1])
	s, _ := strconv.Atoi(parts[2])
	t := float64(h*3600 + m*60 + s)
	if len(parts) > 3 {
		us, _ := strconv.Atoi(parts[3])
		t += float64(us) / 1e6
	}
	return t
}
