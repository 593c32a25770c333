package mi

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/sipedge/sipedge/lang/source"
	"github.com/sipedge/sipedge/runtime/stats"
)

// Runtime is what the core commands need from the SIP runtime. The runtime
// attaches itself with SetRuntime once it has loaded the script; until
// then reload_routes and log_level fail and ps/list_sockets show no SIP
// sockets.
type Runtime interface {
	// Reload loads the script again; on error the running one stays and
	// the error (a source.ErrorList for script errors) is returned.
	Reload() error
	// SocketList describes the SIP sockets, "udp:127.0.0.1:5060" style.
	SocketList() []string
	// LogLevel is the current log level (OpenSIPS -3..4).
	LogLevel() int
	// SetLogLevel changes it until the next reload.
	SetLogLevel(level int)
}

// RuntimeFuncs adapts functions to Runtime, so a runtime whose methods are
// named otherwise can attach without an adapter type:
//
//	mi.Default.SetRuntime(mi.RuntimeFuncs{ReloadFunc: srv.Reload, …})
//
// A nil function makes that part unavailable.
type RuntimeFuncs struct {
	ReloadFunc      func() error
	SocketsFunc     func() []string
	LogLevelFunc    func() int
	SetLogLevelFunc func(int)
}

func (f RuntimeFuncs) Reload() error {
	if f.ReloadFunc == nil {
		return errors.New("reload is not available")
	}
	return f.ReloadFunc()
}

func (f RuntimeFuncs) SocketList() []string {
	if f.SocketsFunc == nil {
		return nil
	}
	return f.SocketsFunc()
}

func (f RuntimeFuncs) LogLevel() int {
	if f.LogLevelFunc == nil {
		return 0
	}
	return f.LogLevelFunc()
}

func (f RuntimeFuncs) SetLogLevel(l int) {
	if f.SetLogLevelFunc != nil {
		f.SetLogLevelFunc(l)
	}
}

// SetRuntime attaches (or, with nil, detaches) the SIP runtime.
func (r *Registry) SetRuntime(rt Runtime) {
	r.mu.Lock()
	r.rt = rt
	r.mu.Unlock()
}

func (r *Registry) runtime() Runtime {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.rt
}

// AddProcesses registers a function listing extra "process" descriptions
// for ps and log_level (the httpd module adds "HTTPD 127.0.0.1:8888").
func (r *Registry) AddProcesses(f func() []string) {
	r.mu.Lock()
	r.procs = append(r.procs, f)
	r.mu.Unlock()
}

// Version is sipedge's version as `version` reports it; the build may set
// it with -ldflags "-X github.com/sipedge/sipedge/runtime/mi.Version=1.2.3".
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

func revision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// ServerString is what `version` reports as "Server", after OpenSIPS's
// Server header ("OpenSIPS (3.4.0 (x86_64/linux))").
func ServerString() string {
	return fmt.Sprintf("sipedge (%s (%s/%s))", version(), runtime.GOARCH, runtime.GOOS)
}

// processes is what ps and log_level list. sipedge is one process: the
// entries describe its parts, all with the same PID.
func (r *Registry) processes() []string {
	out := []string{"attendant"}
	if rt := r.runtime(); rt != nil {
		for _, s := range rt.SocketList() {
			out = append(out, "SIP receiver "+s)
		}
	}
	r.mu.RLock()
	procs := append([]func() []string(nil), r.procs...)
	r.mu.RUnlock()
	for _, f := range procs {
		out = append(out, f()...)
	}
	return out
}

// intParam reads an integer parameter given as a number or a numeric
// string (OpenSIPS accepts both).
func intParam(p map[string]any, name string) (int, *Error) {
	switch v := p[name].(type) {
	case int:
		return v, nil
	case float64:
		if v == float64(int(v)) {
			return int(v), nil
		}
	case string:
		if n, err := strconv.Atoi(v); err == nil {
			return n, nil
		}
	}
	return 0, InvalidParams(fmt.Sprintf("Bad type for parameter '%s'", name))
}

func stringParam(p map[string]any, name string) (string, *Error) {
	switch v := p[name].(type) {
	case string:
		return v, nil
	case int:
		return strconv.Itoa(v), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	}
	return "", InvalidParams(fmt.Sprintf("Bad type for parameter '%s'", name))
}

// arrayParam reads a non-empty array of strings (get_statistics'
// "statistics").
func arrayParam(p map[string]any, name string) ([]string, *Error) {
	arr, ok := p[name].([]any)
	if !ok {
		return nil, InvalidParams(fmt.Sprintf("Bad type for parameter '%s'", name))
	}
	if len(arr) == 0 {
		return nil, InvalidParams(fmt.Sprintf("Empty array in parameter '%s'", name))
	}
	out := make([]string, len(arr))
	for i, v := range arr {
		switch v := v.(type) {
		case string:
			out[i] = v
		case int:
			out[i] = strconv.Itoa(v)
		default:
			return nil, InvalidParams(fmt.Sprintf("Bad type for array item in parameter '%s'", name))
		}
	}
	return out, nil
}

// ErrorLines turns a reload error into "file:line:col: message" lines.
func ErrorLines(err error) []string {
	var list source.ErrorList
	if errors.As(err, &list) {
		out := make([]string, len(list))
		for i, e := range list {
			out[i] = e.Pos.String() + ": " + e.Msg
		}
		return out
	}
	var one *source.Error
	if errors.As(err, &one) {
		return []string{one.Pos.String() + ": " + one.Msg}
	}
	return []string{err.Error()}
}

func (r *Registry) coreCommands() []Command {
	none := []string{}
	return []Command{
		{Name: "uptime", Help: "when sipedge started and for how long it has run", Recipes: [][]string{none}, Run: miUptime},
		{Name: "version", Help: "the version of the running sipedge", Recipes: [][]string{none, {"revision"}}, Run: miVersion},
		{Name: "pwd", Help: "the working directory of sipedge", Recipes: [][]string{none}, Run: miPwd},
		{Name: "arg", Help: "the command line sipedge was started with", Recipes: [][]string{none}, Run: miArg},
		{Name: "which", Help: "lists the MI commands, or the parameter sets of one command", Recipes: [][]string{none, {"command"}}, Run: r.miWhich},
		{Name: "ps", Help: "lists sipedge's parts (one process: same PID for all)", Recipes: [][]string{none}, Run: r.miPs},
		{Name: "log_level", Help: "shows the log level, or sets it (-3..4) until the next reload", Recipes: [][]string{none, {"level"}, {"level", "pid"}}, Run: r.miLogLevel},
		{Name: "reload_routes", Help: "reloads the script; a script with errors is refused and the running one stays", Recipes: [][]string{none}, Run: r.miReloadRoutes},
		{Name: "list_sockets", Help: "lists the SIP listening sockets (sipedge command)", Recipes: [][]string{none}, Run: r.miListSockets},
		{Name: "help", Help: "describes an MI command", Recipes: [][]string{none, {"mi_cmd"}}, Run: r.miHelp},
		{Name: "get_statistics", Help: "values of statistics: \"all\", \"group:\" or names", Recipes: [][]string{{"statistics"}}, Run: miGetStatistics},
		{Name: "list_statistics", Help: "lists statistics and whether they are incremental", Recipes: [][]string{none, {"statistics"}}, Run: miListStatistics},
		{Name: "reset_statistics", Help: "resets incremental statistics, by name", Recipes: [][]string{{"statistics"}}, Run: miResetStatistics},
	}
}

// ctime formats like C's ctime() without the newline, as OpenSIPS prints.
func ctime(t time.Time) string { return t.Format("Mon Jan _2 15:04:05 2006") }

func miUptime(map[string]any) (any, error) {
	now := time.Now()
	start := stats.Started()
	return map[string]any{
		"Now":      ctime(now),
		"Up since": ctime(start),
		"Up time":  fmt.Sprintf("%d [sec]", int64(now.Sub(start)/time.Second)),
	}, nil
}

func miVersion(p map[string]any) (any, error) {
	out := map[string]any{"Server": ServerString()}
	if _, ok := p["revision"]; ok {
		out["Revision"] = revision()
	}
	return out, nil
}

func miPwd(map[string]any) (any, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, Errorf(500, "getcwd failed: %v", err)
	}
	return map[string]any{"WD": wd}, nil
}

func miArg(map[string]any) (any, error) {
	return append([]string(nil), os.Args...), nil
}

func (r *Registry) miWhich(p map[string]any) (any, error) {
	if _, ok := p["command"]; !ok {
		return r.Names(), nil
	}
	name, perr := stringParam(p, "command")
	if perr != nil {
		return nil, perr
	}
	cmd := r.Lookup(name)
	if cmd == nil {
		return nil, Errorf(404, "unknown MI command")
	}
	out := make([][]string, 0, len(cmd.Recipes))
	for _, rc := range cmd.Recipes {
		out = append(out, append([]string{}, rc...))
	}
	return out, nil
}

func (r *Registry) miPs(map[string]any) (any, error) {
	pid := os.Getpid()
	var procs []map[string]any
	for i, desc := range r.processes() {
		procs = append(procs, map[string]any{"ID": i, "PID": pid, "Type": desc})
	}
	return map[string]any{"Processes": procs}, nil
}

func (r *Registry) miLogLevel(p map[string]any) (any, error) {
	rt := r.runtime()
	if rt == nil {
		return nil, Errorf(500, "no SIP runtime is running")
	}
	if _, ok := p["level"]; !ok {
		pid, level := os.Getpid(), rt.LogLevel()
		var procs []map[string]any
		for _, desc := range r.processes() {
			procs = append(procs, map[string]any{"PID": pid, "Log level": level, "Type": desc})
		}
		return map[string]any{"Processes": procs}, nil
	}
	level, perr := intParam(p, "level")
	if perr != nil {
		return nil, perr
	}
	if _, ok := p["pid"]; ok {
		pid, perr := intParam(p, "pid")
		if perr != nil {
			return nil, perr
		}
		if pid != os.Getpid() {
			return nil, InvalidParams("Bad PID")
		}
		rt.SetLogLevel(level)
		return map[string]any{"Log level": level}, nil
	}
	rt.SetLogLevel(level)
	return map[string]any{"New global log level": level}, nil
}

func (r *Registry) miReloadRoutes(map[string]any) (any, error) {
	rt := r.runtime()
	if rt == nil {
		return nil, Errorf(500, "reload failed: no SIP runtime is running")
	}
	if err := rt.Reload(); err != nil {
		return nil, &Error{Code: 500, Message: "reload failed", Data: ErrorLines(err)}
	}
	return "OK", nil
}

func (r *Registry) miListSockets(map[string]any) (any, error) {
	socks := []string{}
	if rt := r.runtime(); rt != nil {
		socks = append(socks, rt.SocketList()...)
	}
	return map[string]any{"Sockets": socks}, nil
}

func (r *Registry) miHelp(p map[string]any) (any, error) {
	if _, ok := p["mi_cmd"]; !ok {
		return "usage: help mi_cmd - describes the MI command mi_cmd", nil
	}
	name, perr := stringParam(p, "mi_cmd")
	if perr != nil {
		return nil, perr
	}
	cmd := r.Lookup(name)
	if cmd == nil {
		return nil, Errorf(404, "unknown MI command")
	}
	help := cmd.Help
	if help == "" {
		help = "not available for this command"
	}
	return map[string]any{"Help": help, "Exported by": cmd.Module}, nil
}

func miGetStatistics(p map[string]any) (any, error) {
	specs, perr := arrayParam(p, "statistics")
	if perr != nil {
		return nil, perr
	}
	cs, found := stats.Select(specs)
	if !found {
		return nil, Errorf(404, "Statistics Not Found")
	}
	out := make(map[string]any, len(cs))
	for _, c := range cs {
		out[c.FullName()] = c.Value()
	}
	return out, nil
}

func incremental(c *stats.Counter) string {
	if c.Incremental() {
		return "incremental"
	}
	return "non-incremental"
}

func miListStatistics(p map[string]any) (any, error) {
	out := map[string]any{}
	if _, ok := p["statistics"]; !ok {
		stats.Each(func(c *stats.Counter) { out[c.FullName()] = incremental(c) })
		return out, nil
	}
	specs, perr := arrayParam(p, "statistics")
	if perr != nil {
		return nil, perr
	}
	found := false
	for _, s := range specs {
		if len(s) > 1 && s[len(s)-1] == ':' {
			cs := stats.Group(s[:len(s)-1])
			if cs == nil {
				continue
			}
			found = true
			for _, c := range cs {
				out[c.FullName()] = incremental(c)
			}
			continue
		}
		// A statistic named alone is listed without its group, as
		// OpenSIPS does.
		if c := stats.Find(s); c != nil {
			found = true
			out[c.Name()] = incremental(c)
		}
	}
	if !found {
		return nil, Errorf(404, "Statistics Not Found")
	}
	return out, nil
}

func miResetStatistics(p map[string]any) (any, error) {
	specs, perr := arrayParam(p, "statistics")
	if perr != nil {
		return nil, perr
	}
	found := false
	for _, s := range specs {
		if c := stats.Find(s); c != nil {
			c.Reset() // gauges and func statistics stay, as in OpenSIPS
			found = true
		}
	}
	if !found {
		return nil, Errorf(404, "Statistics Not Found")
	}
	return "OK", nil
}
