// Command sipbench load-tests sipedge (and, for comparison, Kamailio) with
// SIPp on 127.0.0.1: SIPp UAC → proxy → SIPp UAS, the call rate ramped in
// steps with fresh SIPp processes per step. Per step it prints the rates
// attempted and completed, failures, retransmissions, the proxy's CPU% and
// memory, CPU milliseconds per completed call, kernel UDP drops per socket,
// and per scenario the highest clean rate (< 0.1% of calls failed).
//
//	go run ./bench/sipbench -quick            a short smoke run (~1 min)
//	go run ./bench/sipbench                   the full ramp (see bench/README.md)
//
// Every process it starts is stopped by PID; every step stops by itself.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

type options struct {
	repo       string
	configs    string
	out        string
	sipedge    string
	kamailio   string
	scenarios  []string
	targets    []string
	rates      []int
	duration   time.Duration
	settle     time.Duration
	proxyPort  int
	uacPort    int
	uasPort    int
	buffSize   int
	kamShm     int
	env        []string
	extraArgs  []string
	cpuprofile bool
	memprofile bool
	quick      bool
	maxUnclean int
}

// scenario is one kind of traffic with its configs and default ramp.
type scenario struct {
	name     string
	unit     string // what one SIPp "call" is
	uac, uas string // SIPp scenario files (uas "" = the proxy answers)
	sipedge  string // bench/configs file
	kamailio string
	rates    []int
	quick    []int
	hold     float64 // seconds a call stays open in the UAC (for -l)
}

var allScenarios = []scenario{
	{name: "stateful", unit: "call", uac: "uac_call.xml", uas: "uas_call.xml",
		sipedge: "stateful.cfg", kamailio: "kamailio-stateful.cfg",
		rates: []int{500, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000}, quick: []int{200, 1000}, hold: 1.5},
	{name: "stateless", unit: "call", uac: "uac_call.xml", uas: "uas_call.xml",
		sipedge: "stateless.cfg", kamailio: "kamailio-stateless.cfg",
		rates: []int{1000, 2000, 4000, 6000, 8000, 10000, 12000, 16000}, quick: []int{1000}, hold: 1.5},
	{name: "options", unit: "OPTIONS", uac: "uac_options.xml",
		sipedge: "options.cfg", kamailio: "kamailio-options.cfg",
		rates: []int{2000, 4000, 8000, 12000, 16000, 24000, 32000}, quick: []int{2000}, hold: 0.1},
	{name: "register", unit: "REGISTER", uac: "uac_register.xml",
		sipedge: "register.cfg", kamailio: "kamailio-register.cfg",
		rates: []int{2000, 4000, 8000, 12000, 16000, 24000, 28000}, quick: []int{2000}, hold: 0.1},
}

// step is one rate step's measurements.
type step struct {
	Target      string  `json:"target"`
	Scenario    string  `json:"scenario"`
	Rate        int     `json:"rate"`
	Attempted   float64 `json:"attempted_per_s"`
	Completed   float64 `json:"completed_per_s"`
	Created     int     `json:"created"`
	Successful  int     `json:"successful"`
	Failed      int     `json:"failed"`
	UASFailed   int     `json:"uas_failed"`
	Retrans     int     `json:"retransmissions"`
	CPUPercent  float64 `json:"cpu_percent"`
	CPUMsPerOp  float64 `json:"cpu_ms_per_call"`
	RunMsPerOp  float64 `json:"schedstat_ms_per_call"`
	SippCPU     float64 `json:"sipp_cpu_percent"`
	OthersCPU   float64 `json:"others_cpu_percent"`
	RSSMB       float64 `json:"rss_mb"`
	PSSMB       float64 `json:"pss_mb"`
	DropsProxy  uint64  `json:"drops_proxy"`
	DropsUAC    uint64  `json:"drops_uac"`
	DropsUAS    uint64  `json:"drops_uas"`
	Clean       bool    `json:"clean"`
	Note        string  `json:"note,omitempty"`
	WallSeconds float64 `json:"wall_s"`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "sipbench:", err)
		return 2
	}
	raiseNoFile()
	if _, err := exec.LookPath("sipp"); err != nil {
		fmt.Fprintln(stderr, "sipbench: sipp is not on PATH (Debian package sip-tester)")
		return 1
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		fmt.Fprintln(stderr, "sipbench:", err)
		return 1
	}
	if o.sipedge == "" && contains(o.targets, "sipedge") {
		o.sipedge = filepath.Join(o.out, "sipedge")
		fmt.Fprintf(stdout, "building sipedge → %s\n", o.sipedge)
		cmd := exec.Command("go", "build", "-o", o.sipedge, "./cmd/sipedge")
		cmd.Dir = o.repo
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(stderr, "sipbench: go build:", err)
			return 1
		}
	}
	if contains(o.targets, "kamailio") {
		if p, err := exec.LookPath(o.kamailio); err != nil {
			fmt.Fprintf(stdout, "kamailio not found (%v): comparing nothing (apt-get install -y kamailio)\n", err)
			o.targets = remove(o.targets, "kamailio")
		} else {
			o.kamailio = p
		}
	}
	fmt.Fprintf(stdout, "run dir %s; steps of %s (+%s settle); ports proxy %d, uac %d, uas %d; %s\n",
		o.out, o.duration, o.settle, o.proxyPort, o.uacPort, o.uasPort, strings.Join(o.env, " "))

	var all []step
	for _, sc := range selected(o) {
		if contains(o.targets, "sipedge") {
			if msg, ok := sipedgeAccepts(o, sc); !ok {
				fmt.Fprintf(stdout, "\n## %s: skipped — sipedge refuses %s:\n%s\n", sc.name, filepath.Join(o.configs, sc.sipedge), msg)
				continue
			}
		}
		fmt.Fprintf(stdout, "\n## %s (%s per SIPp call)\n", sc.name, sc.unit)
		printHeader(stdout)
		var res []step
		for _, tg := range o.targets {
			res = append(res, runTarget(o, sc, tg, stdout)...)
		}
		summarize(stdout, sc, res, o.targets)
		all = append(all, res...)
	}
	if len(all) > 0 {
		fmt.Fprintln(stdout, "\n## summary")
		summaryTable(stdout, all, o.targets)
		if b, err := json.MarshalIndent(all, "", "  "); err == nil {
			os.WriteFile(filepath.Join(o.out, "results.json"), b, 0o644)
			fmt.Fprintf(stdout, "\nresults: %s\n", filepath.Join(o.out, "results.json"))
		}
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("sipbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	var scen, targets, rates, env string
	fs.StringVar(&o.repo, "repo", "", "sipedge repository root (default: found from the working directory)")
	fs.StringVar(&o.configs, "configs", "", "directory of the proxy configs (default: bench/configs)")
	fs.StringVar(&o.out, "out", "", "run directory for configs, logs, SIPp stats, profiles (default: a new /tmp/sipbench-*)")
	fs.StringVar(&o.sipedge, "sipedge", "", "sipedge binary (default: go build ./cmd/sipedge into the run directory)")
	fs.StringVar(&o.kamailio, "kamailio", "kamailio", "Kamailio binary")
	fs.StringVar(&scen, "scenarios", "stateful,stateless,options,register", "scenarios to run")
	fs.StringVar(&targets, "targets", "sipedge,kamailio", "proxies to measure")
	fs.StringVar(&rates, "rates", "", "comma-separated rates (calls/s) for every scenario, instead of the default ramps")
	fs.DurationVar(&o.duration, "duration", 8*time.Second, "call generation time per step")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "time after the UAC finished that still counts for the step's CPU")
	fs.IntVar(&o.proxyPort, "proxy-port", 47060, "proxy UDP port")
	fs.IntVar(&o.uacPort, "uac-port", 47070, "SIPp UAC UDP port")
	fs.IntVar(&o.uasPort, "uas-port", 47080, "SIPp UAS UDP port")
	fs.IntVar(&o.buffSize, "buff-size", 16<<20, "SIPp -buff_size (socket buffers), bytes")
	fs.IntVar(&o.kamShm, "kamailio-shm", 1024, "Kamailio shared memory, MB (-m)")
	fs.StringVar(&env, "env", "", "extra environment for sipedge, e.g. GOGC=200,GOMEMLIMIT=512MiB")
	var extra string
	fs.StringVar(&extra, "sipedge-args", "", "extra `sipedge run` arguments, space-separated (e.g. \"-pprof 127.0.0.1:6060\")")
	fs.BoolVar(&o.cpuprofile, "cpuprofile", false, "run sipedge with -cpuprofile (one profile per scenario in the run directory)")
	fs.BoolVar(&o.memprofile, "memprofile", false, "run sipedge with -memprofile (allocation profile written at exit)")
	fs.BoolVar(&o.quick, "quick", false, "smoke run: 1–2 low steps per scenario, 3 s each")
	fs.IntVar(&o.maxUnclean, "max-unclean", 2, "stop a ramp after this many unclean steps in a row")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.scenarios = splitList(scen)
	o.targets = splitList(targets)
	for _, t := range o.targets {
		if t != "sipedge" && t != "kamailio" {
			return nil, fmt.Errorf("-targets: unknown proxy %q (sipedge, kamailio)", t)
		}
	}
	for _, s := range o.scenarios {
		if findScenario(s) == nil {
			return nil, fmt.Errorf("-scenarios: unknown scenario %q", s)
		}
	}
	for _, r := range splitList(rates) {
		n, err := strconv.Atoi(r)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-rates: bad rate %q", r)
		}
		o.rates = append(o.rates, n)
	}
	o.env = splitList(env)
	o.extraArgs = strings.Fields(extra)
	if o.quick {
		if !flagSet(fs, "duration") {
			o.duration = 3 * time.Second
		}
		if !flagSet(fs, "settle") {
			o.settle = time.Second
		}
	}
	if o.repo == "" {
		r, err := findRepo()
		if err != nil {
			return nil, err
		}
		o.repo = r
	}
	o.repo = absPath(o.repo)
	if o.configs == "" {
		o.configs = filepath.Join(o.repo, "bench", "configs")
	}
	o.configs = absPath(o.configs)
	if o.out == "" {
		d, err := os.MkdirTemp("", "sipbench-")
		if err != nil {
			return nil, err
		}
		o.out = d
	}
	o.out = absPath(o.out)
	if o.sipedge != "" {
		o.sipedge = absPath(o.sipedge)
		if !exeExists(o.sipedge) {
			return nil, fmt.Errorf("-sipedge %s: no such file", o.sipedge)
		}
	}
	return o, nil
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

// findRepo walks up from the working directory to the directory holding
// bench/configs and cmd/sipedge.
func findRepo() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if exeExists(filepath.Join(d, "go.mod")) && exeExists(filepath.Join(d, "bench", "configs", "stateful.cfg")) {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("cannot find the sipedge repository (run from it or pass -repo)")
		}
		d = parent
	}
}

func selected(o *options) []scenario {
	var out []scenario
	for _, name := range o.scenarios {
		sc := *findScenario(name)
		switch {
		case len(o.rates) > 0:
			sc.rates = o.rates
		case o.quick:
			sc.rates = sc.quick
		}
		out = append(out, sc)
	}
	return out
}

func findScenario(name string) *scenario {
	for i := range allScenarios {
		if allScenarios[i].name == name {
			return &allScenarios[i]
		}
	}
	return nil
}

// sipedgeAccepts runs `sipedge check` on the scenario's config: the
// REGISTER scenario needs a registrar module the tree may not have yet.
func sipedgeAccepts(o *options, sc scenario) (string, bool) {
	cmd := exec.Command(o.sipedge, "check", "-f", filepath.Join(o.configs, sc.sipedge))
	out, err := cmd.CombinedOutput()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) > 6 {
			lines = append(lines[:6], "…")
		}
		return "  " + strings.Join(lines, "\n  "), false
	}
	return "", true
}

// runTarget ramps one proxy through a scenario's rates.
func runTarget(o *options, sc scenario, tg string, w io.Writer) []step {
	dir := filepath.Join(o.out, sc.name, tg)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(w, "%-8s %v\n", tg, err)
		return nil
	}
	cfgSrc := filepath.Join(o.configs, sc.sipedge)
	if tg == "kamailio" {
		cfgSrc = filepath.Join(o.configs, sc.kamailio)
	}
	cfg, err := prepareConfig(cfgSrc, dir, o)
	if err != nil {
		fmt.Fprintf(w, "%-8s %v\n", tg, err)
		return nil
	}
	var argv, env []string
	switch tg {
	case "sipedge":
		argv = []string{o.sipedge, "run", "-f", cfg}
		if o.cpuprofile {
			argv = append(argv, "-cpuprofile", filepath.Join(dir, "cpu.pprof"))
		}
		if o.memprofile {
			argv = append(argv, "-memprofile", filepath.Join(dir, "mem.pprof"))
		}
		argv = append(argv, o.extraArgs...)
		env = o.env
	case "kamailio":
		argv = []string{o.kamailio, "-f", cfg, "-DD", "-E", "-m", strconv.Itoa(o.kamShm), "-M", "16", "-w", dir, "-Y", dir}
	}
	px, err := startProxy(tg, argv, env, dir, o.proxyPort)
	if err != nil {
		fmt.Fprintf(w, "%-8s %v\n", tg, err)
		return nil
	}
	defer px.stop()
	var res []step
	unclean := 0
	for _, rate := range sc.rates {
		if !px.alive() {
			fmt.Fprintf(w, "%-8s the proxy died (see %s)\n", tg, filepath.Join(dir, tg+".log"))
			break
		}
		st := runStep(o, sc, px, rate, filepath.Join(dir, strconv.Itoa(rate)))
		st.Target, st.Scenario = tg, sc.name
		printStep(w, st)
		res = append(res, st)
		if st.Clean {
			unclean = 0
		} else {
			unclean++
		}
		if unclean >= o.maxUnclean || (st.Created > 0 && float64(st.Failed)/float64(st.Created) > 0.05) {
			break
		}
	}
	return res
}

// runStep runs one rate step with fresh SIPp processes.
func runStep(o *options, sc scenario, px *proxyProc, rate int, dir string) step {
	st := step{Rate: rate}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		st.Note = err.Error()
		return st
	}
	px.refresh()
	calls := int(math.Round(float64(rate) * o.duration.Seconds()))
	if calls < 1 {
		calls = 1
	}
	limit := int(float64(rate)*(sc.hold+4)) + 1000
	buff := strconv.Itoa(o.buffSize)

	for _, port := range []int{o.uacPort, o.uasPort} {
		for deadline := time.Now().Add(5 * time.Second); portBound(port); {
			if time.Now().After(deadline) {
				st.Note = fmt.Sprintf("UDP port %d is busy (another SIPp?)", port)
				return st
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	drops0 := udpDrops()
	all0 := allCPU()
	cpu0, t0 := cpuMillis(px.pids), time.Now()
	run0 := runMillis(px.pids)

	var uas *sippProc
	if sc.uas != "" {
		var err error
		uas, err = startSipp("uas", dir, "-sf", filepath.Join(o.repo, "bench", "scenarios", sc.uas),
			"-i", "127.0.0.1", "-p", strconv.Itoa(o.uasPort), "-buff_size", buff, "-l", strconv.Itoa(limit*2))
		if err != nil {
			st.Note = err.Error()
			return st
		}
		defer uas.stop(3 * time.Second)
		for deadline := time.Now().Add(3 * time.Second); !portBound(o.uasPort) && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
	}
	timeout := o.duration + 40*time.Second
	uac, err := startSipp("uac", dir, fmt.Sprintf("127.0.0.1:%d", o.proxyPort),
		"-sf", filepath.Join(o.repo, "bench", "scenarios", sc.uac), "-s", "bench",
		"-i", "127.0.0.1", "-p", strconv.Itoa(o.uacPort), "-buff_size", buff,
		"-r", strconv.Itoa(rate), "-rp", "1000", "-m", strconv.Itoa(calls), "-l", strconv.Itoa(limit),
		"-recv_timeout", "10000", "-timeout", fmt.Sprintf("%ds", int(timeout.Seconds())))
	if err != nil {
		st.Note = err.Error()
		return st
	}
	// memory: the peak over the step, sampled
	var peakRSS, peakPSS uint64
	tick := time.NewTicker(500 * time.Millisecond)
	deadline := time.After(timeout + 10*time.Second)
	killed := false
wait:
	for {
		select {
		case <-uac.done:
			break wait
		case <-tick.C:
			rss, pss := memKB(px.pids)
			peakRSS, peakPSS = max(peakRSS, rss), max(peakPSS, pss)
		case <-deadline:
			uac.kill()
			killed = true
			break wait
		}
	}
	tick.Stop()
	time.Sleep(o.settle)
	rss, pss := memKB(px.pids)
	peakRSS, peakPSS = max(peakRSS, rss), max(peakPSS, pss)
	cpu1, t1 := cpuMillis(px.pids), time.Now()
	run1 := runMillis(px.pids)
	all1 := allCPU()
	drops1 := udpDrops()
	sippCPU := uac.cpuMillis()
	if uas != nil {
		uas.stop(3 * time.Second)
		sippCPU += uas.cpuMillis()
	}
	skip := map[int]bool{os.Getpid(): true, uac.cmd.Process.Pid: true}
	for _, p := range px.pids {
		skip[p] = true
	}
	if uas != nil {
		skip[uas.cmd.Process.Pid] = true
	}

	s := readSippStats(uac.stat, calls)
	st.Created, st.Successful, st.Failed, st.Retrans = s.created, s.successful, s.failed, s.retrans
	if uas != nil {
		us := readSippStats(uas.stat, 0)
		st.UASFailed = us.failed
		st.Retrans += us.retrans
	}
	gen := o.duration.Seconds()
	if s.genSeconds > gen+1.5 {
		gen = s.genSeconds // SIPp could not keep the rate
	}
	st.Attempted = float64(s.created) / gen
	st.Completed = float64(s.successful) / gen
	wall := t1.Sub(t0).Seconds()
	st.WallSeconds = wall
	st.CPUPercent = (cpu1 - cpu0) / 10 / wall
	st.SippCPU = sippCPU / 10 / wall
	st.OthersCPU = othersMillis(all0, all1, skip) / 10 / wall
	if s.successful > 0 {
		st.CPUMsPerOp = (cpu1 - cpu0) / float64(s.successful)
		st.RunMsPerOp = (run1 - run0) / float64(s.successful)
	}
	st.RSSMB, st.PSSMB = float64(peakRSS)/1024, float64(peakPSS)/1024
	st.DropsProxy = drops1[o.proxyPort] - drops0[o.proxyPort]
	st.DropsUAC = drops1[o.uacPort] - drops0[o.uacPort]
	if sc.uas != "" {
		st.DropsUAS = drops1[o.uasPort] - drops0[o.uasPort]
	}
	switch {
	case killed:
		st.Note = "UAC killed at the deadline"
	case !s.ok:
		st.Note = "no SIPp statistics (see " + dir + ")"
	case s.created < calls:
		st.Note = fmt.Sprintf("SIPp created %d of %d calls", s.created, calls)
	case st.Attempted < 0.97*float64(rate):
		st.Note = "rate not reached (SIPp throttled: calls piled up)"
	case st.UASFailed > 0:
		st.Note = fmt.Sprintf("UAS aborted %d", st.UASFailed)
	}
	st.Clean = s.ok && !killed && s.created >= calls && st.Failed*1000 < s.created &&
		st.Attempted >= 0.97*float64(rate)
	return st
}

func printHeader(w io.Writer) {
	fmt.Fprintf(w, "%-8s %6s %7s %7s %7s %6s %6s %7s %5s %7s %7s %6s %6s %16s %5s %5s %s\n",
		"proxy", "rate", "att/s", "done/s", "calls", "failed", "fail%", "retrans", "cpu%", "ms/call", "(sched)", "RSS MB", "PSS MB", "drops px/uac/uas", "sipp%", "other", "clean")
}

func printStep(w io.Writer, s step) {
	clean := "yes"
	if !s.Clean {
		clean = "NO"
	}
	if s.Note != "" {
		clean += " (" + s.Note + ")"
	}
	fmt.Fprintf(w, "%-8s %6d %7.0f %7.0f %7d %6d %6.2f %7d %5.0f %7.3f %7.3f %6.0f %6.0f %16s %5.0f %5.0f %s\n",
		s.Target, s.Rate, s.Attempted, s.Completed, s.Created, s.Failed, failPct(s), s.Retrans,
		s.CPUPercent, s.CPUMsPerOp, s.RunMsPerOp, s.RSSMB, s.PSSMB,
		fmt.Sprintf("%d/%d/%d", s.DropsProxy, s.DropsUAC, s.DropsUAS), s.SippCPU, s.OthersCPU, clean)
}

func failPct(s step) float64 {
	if s.Created == 0 {
		return 0
	}
	return 100 * float64(s.Failed) / float64(s.Created)
}

// figures summarises one proxy's ramp.
type figures struct {
	steps    int
	medianMs float64 // CPU ms per call, median over clean steps
	minMs    float64
	maxMs    float64
	topClean int // highest clean rate, 0 = none
	topRSS   float64
	topPSS   float64
	topMs    float64
}

func summarizeTarget(res []step, tg, scen string) figures {
	var f figures
	var ms []float64
	for _, s := range res {
		if s.Target != tg || s.Scenario != scen {
			continue
		}
		f.steps++
		if !s.Clean {
			continue
		}
		ms = append(ms, s.CPUMsPerOp)
		if s.Rate > f.topClean {
			f.topClean, f.topRSS, f.topPSS, f.topMs = s.Rate, s.RSSMB, s.PSSMB, s.CPUMsPerOp
		}
	}
	if len(ms) > 0 {
		sort.Float64s(ms)
		f.minMs, f.maxMs = ms[0], ms[len(ms)-1]
		f.medianMs = ms[len(ms)/2]
		if len(ms)%2 == 0 {
			f.medianMs = (ms[len(ms)/2-1] + ms[len(ms)/2]) / 2
		}
	}
	return f
}

func summarize(w io.Writer, sc scenario, res []step, targets []string) {
	fmt.Fprintln(w)
	fig := map[string]figures{}
	for _, tg := range targets {
		f := summarizeTarget(res, tg, sc.name)
		fig[tg] = f
		if f.steps == 0 {
			continue
		}
		if f.topClean == 0 {
			fmt.Fprintf(w, "%-8s no clean step\n", tg)
			continue
		}
		fmt.Fprintf(w, "%-8s CPU %.3f ms/%s (median of clean steps, %.3f–%.3f); highest clean rate %d/s at %.3f ms, RSS %.0f MB, PSS %.0f MB\n",
			tg, f.medianMs, sc.unit, f.minMs, f.maxMs, f.topClean, f.topMs, f.topRSS, f.topPSS)
	}
	se, ka := fig["sipedge"], fig["kamailio"]
	if se.topClean > 0 && ka.topClean > 0 && ka.medianMs > 0 {
		fmt.Fprintf(w, "ratio sipedge/kamailio: CPU per %s ×%.2f, highest clean rate ×%.2f\n",
			sc.unit, se.medianMs/ka.medianMs, float64(se.topClean)/float64(ka.topClean))
	}
}

func summaryTable(w io.Writer, all []step, targets []string) {
	fmt.Fprintf(w, "%-10s %-8s %14s %13s %9s %9s %12s\n", "scenario", "proxy", "CPU ms/op", "range", "top rate", "RSS MB", "PSS MB")
	seen := map[string]bool{}
	for _, s := range all {
		if seen[s.Scenario] {
			continue
		}
		seen[s.Scenario] = true
		for _, tg := range targets {
			f := summarizeTarget(all, tg, s.Scenario)
			if f.steps == 0 {
				continue
			}
			if f.topClean == 0 {
				fmt.Fprintf(w, "%-10s %-8s %14s\n", s.Scenario, tg, "no clean step")
				continue
			}
			fmt.Fprintf(w, "%-10s %-8s %14.3f %13s %9d %9.0f %12.0f\n", s.Scenario, tg, f.medianMs,
				fmt.Sprintf("%.3f–%.3f", f.minMs, f.maxMs), f.topClean, f.topRSS, f.topPSS)
		}
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func remove(list []string, s string) []string {
	var out []string
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
