package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// Go runtime defaults of `sipedge run` (bench/README.md has the
// measurements behind them):
//
//   - GOMAXPROCS follows the load (runtime/sipstack/procs.go) unless the
//     environment sets it.
//   - GOGC stays at Go's 100. At 3000 stateful calls/s, GOGC=200 cut the
//     CPU per call ~13% for ~35% more memory, GOGC=50 cost ~15% more CPU
//     for ~25% less; set it in the environment to trade one for the other.
//   - GOMEMLIMIT, unless the environment sets it, is 90% of the cgroup's
//     memory limit when the process runs under one: near the limit the
//     collector works harder instead of the kernel killing the proxy.
func tuneMemoryLimit() (limit int64) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	if limit = cgroupMemoryLimit(); limit > 0 {
		limit = limit / 10 * 9
		debug.SetMemoryLimit(limit)
	}
	return limit
}

// cgroupMemoryLimit reads the memory limit of the process's cgroup (v2
// memory.max, else v1 memory.limit_in_bytes); 0 when there is none.
func cgroupMemoryLimit() int64 {
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n >= 1<<60 { // v1 "unlimited" is a huge number
			return 0
		}
		return n
	}
	return 0
}
