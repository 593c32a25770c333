package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof" // served only with -pprof
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"syscall"

	"github.com/sipedge/sipedge/lang/syntax"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/modules/httpd"
	mififo "github.com/sipedge/sipedge/modules/mi_fifo"
	"github.com/sipedge/sipedge/runtime/engine"
	"github.com/sipedge/sipedge/runtime/mi"
	"github.com/sipedge/sipedge/runtime/sipstack"
)

// runProxy is `sipedge run -f FILE` (also `sipedge -f FILE`): serve SIP on
// the script's sockets until SIGINT/SIGTERM. SIGHUP reloads the script; a
// script with errors is refused and the running one stays.
func runProxy(args []string, stdout, stderr io.Writer) int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	return serve(args, stdout, stderr, sigs)
}

// serve runs the proxy until sigs delivers SIGINT or SIGTERM; SIGHUP reloads.
func serve(args []string, stdout, stderr io.Writer, sigs <-chan os.Signal) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "opensips.cfg", "script file")
	pre := fs.String("p", "", "preprocessor command the script is piped through (e.g. envsubst)")
	level := fs.String("l", "", "log level, overriding the script's log_level (-3..4)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to this file until the proxy stops")
	memprofile := fs.String("memprofile", "", "write an allocation profile (alloc_space/alloc_objects, inuse at exit) to this file when the proxy stops")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060) for live heap/CPU profiles")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sipedge run: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	opts := sipstack.Options{Script: *file, Syntax: syntax.Options{Preprocess: *pre}, Log: stderr,
		AdaptProcs: os.Getenv("GOMAXPROCS") == ""} // GOMAXPROCS set: the user decides
	if *level != "" {
		n, err := strconv.Atoi(*level)
		if err != nil {
			fmt.Fprintf(stderr, "sipedge run: -l wants a number, not %q\n", *level)
			return 2
		}
		opts.LogLevel = &n
	}
	opts.OnActivate = func(s *engine.Script) {
		if err := mi.Default.SetModulesFrom(s.Params); err != nil {
			fmt.Fprintf(stderr, "mi: %v\n", err)
		}
		if err := httpd.Sync(s.Params); err != nil {
			fmt.Fprintf(stderr, "httpd: %v\n", err)
		}
		if err := mififo.Sync(s.Params); err != nil {
			fmt.Fprintf(stderr, "mi_fifo: %v\n", err)
		}
	}
	tuneMemoryLimit() // gotune.go
	srv, err := sipstack.New(opts)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer httpd.Close()
	mi.Default.SetRuntime(mi.RuntimeFuncs{
		ReloadFunc: srv.Reload,
		SocketsFunc: func() []string {
			var out []string
			for _, sp := range srv.Sockets() {
				out = append(out, sp.String())
			}
			return out
		},
		LogLevelFunc:    srv.Logger().Level,
		SetLogLevelFunc: srv.Logger().SetLevel,
	})
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(stderr, err)
			srv.Close()
			return 1
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if *pprofAddr != "" {
		ln, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			fmt.Fprintln(stderr, "sipedge run: -pprof:", err)
			srv.Close()
			return 1
		}
		go http.Serve(ln, nil)
		defer ln.Close()
	}
	if *memprofile != "" {
		runtime.MemProfileRate = 64 << 10 // every 64 KiB allocated: cheap enough under load
		defer func() {
			f, err := os.Create(*memprofile)
			if err != nil {
				fmt.Fprintln(stderr, err)
				return
			}
			defer f.Close()
			pprof.Lookup("allocs").WriteTo(f, 0)
		}()
	}
	if err := srv.Start(); err != nil {
		fmt.Fprintln(stderr, err)
		srv.Close()
		return 1
	}
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			srv.Reload() // logs the outcome itself
			continue
		}
		srv.Close()
		break
	}
	// Write-back state (usrloc db_mode 2, cache snapshots) is saved last.
	if err := modules.ShutdownAll(); err != nil {
		fmt.Fprintln(stderr, "shutdown:", err)
		return 1
	}
	return 0
}
