package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"syscall"

	"github.com/sipedge/sipedge/lang/syntax"
	"github.com/sipedge/sipedge/runtime/sipstack"
)

// runProxy is `sipedge run -f FILE` (also `sipedge -f FILE`): serve SIP on
// the script's sockets until SIGINT/SIGTERM. SIGHUP reloads the script; a
// script with errors is refused and the running one stays.
func runProxy(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "opensips.cfg", "script file")
	pre := fs.String("p", "", "preprocessor command the script is piped through (e.g. envsubst)")
	level := fs.String("l", "", "log level, overriding the script's log_level (-3..4)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to this file until the proxy stops")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sipedge run: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	opts := sipstack.Options{Script: *file, Syntax: syntax.Options{Preprocess: *pre}, Log: stderr}
	if *level != "" {
		n, err := strconv.Atoi(*level)
		if err != nil {
			fmt.Fprintf(stderr, "sipedge run: -l wants a number, not %q\n", *level)
			return 2
		}
		opts.LogLevel = &n
	}
	srv, err := sipstack.New(opts)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
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
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
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
		return 0
	}
	return 0
}
