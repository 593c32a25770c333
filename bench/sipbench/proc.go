package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// clockTick is USER_HZ, the unit of utime/stime in /proc/<pid>/stat. It is
// 100 on every Linux architecture Go supports.
const clockTick = 100

// procStat is what the benchmark reads about one process.
type procStat struct {
	ppid    int
	cpuTick uint64 // utime + stime, in clock ticks
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// comm may hold spaces and parentheses: the fields start after the
	// last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return procStat{ppid: ppid, cpuTick: ut + st}, nil
}

// tree lists root and all its descendants (Kamailio forks its workers;
// sipedge is one process).
func tree(root int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []int{root}
	}
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue
		}
		children[st.ppid] = append(children[st.ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// cpuMillis is the CPU time (user + system) used so far by pids.
func cpuMillis(pids []int) float64 {
	var ticks uint64
	for _, p := range pids {
		if st, err := readStat(p); err == nil {
			ticks += st.cpuTick
		}
	}
	return float64(ticks) * 1000 / clockTick
}

// runMillis is the CPU time pids have run, summed over all their threads
// from /proc/<pid>/task/<tid>/schedstat (the scheduler's nanosecond
// runtime). utime/stime in /proc/<pid>/stat are sampled at each timer tick
// (CONFIG_TICK_CPU_ACCOUNTING): on the VMs measured they charged sipedge
// about twice its schedstat runtime (its threads wake in step with the
// tick); both figures are printed.
func runMillis(pids []int) float64 {
	var ns uint64
	for _, p := range pids {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p))
		if err != nil {
			continue
		}
		for _, t := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", p, t.Name()))
			if err != nil {
				continue
			}
			f := strings.Fields(string(b))
			if len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				ns += n
			}
		}
	}
	return float64(ns) / 1e6
}

// memKB sums VmRSS (/proc/<pid>/status) and Pss (/proc/<pid>/smaps_rollup)
// over pids. RSS counts shared memory once per process, so for Kamailio's
// workers sharing one shm segment PSS is the fair figure.
func memKB(pids []int) (rss, pss uint64) {
	for _, p := range pids {
		rss += fieldKB(fmt.Sprintf("/proc/%d/status", p), "VmRSS:")
		pss += fieldKB(fmt.Sprintf("/proc/%d/smaps_rollup", p), "Pss:")
	}
	return rss, pss
}

func fieldKB(path, key string) uint64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, key) {
			f := strings.Fields(line[len(key):])
			if len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// udpDrops reads the drops column of /proc/net/udp and /proc/net/udp6,
// summed per local port.
func udpDrops() map[int]uint64 {
	out := map[int]uint64{}
	for _, path := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 13 {
				continue
			}
			local := fs[1]
			i := strings.LastIndexByte(local, ':')
			if i < 0 {
				continue
			}
			port, err := strconv.ParseUint(local[i+1:], 16, 32)
			if err != nil {
				continue
			}
			drops, _ := strconv.ParseUint(fs[len(fs)-1], 10, 64)
			out[int(port)] += drops
		}
		f.Close()
	}
	return out
}

// portBound tells whether some UDP socket is bound to port.
func portBound(port int) bool {
	_, ok := udpDrops()[port]
	return ok
}

// allCPU is the CPU time (clock ticks) of every process now running.
// Two snapshots give what other processes used meanwhile (the benchmark
// machine may be shared): /proc/stat's totals proved unreliable in VMs.
func allCPU() map[int]uint64 {
	out := map[int]uint64{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			out[pid] = st.cpuTick
		}
	}
	return out
}

// othersMillis is the CPU used between two allCPU snapshots by processes
// not in skip (processes that started meanwhile count in full; those that
// ended are lost).
func othersMillis(before, after map[int]uint64, skip map[int]bool) float64 {
	var ticks uint64
	for pid, t1 := range after {
		if skip[pid] {
			continue
		}
		if t0, ok := before[pid]; ok {
			if t1 > t0 {
				ticks += t1 - t0
			}
		} else {
			ticks += t1
		}
	}
	return float64(ticks) * 1000 / clockTick
}

// raiseNoFile lifts RLIMIT_NOFILE to its hard limit; the SIPp processes
// inherit it (SIPp warns when open calls may exceed it).
func raiseNoFile() {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) == nil && r.Cur < r.Max {
		r.Cur = r.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
}

// exeExists reports whether path names a file (for -sipedge).
func exeExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}

func absPath(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}
