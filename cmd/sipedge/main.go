// Command sipedge is a SIP edge proxy driven by OpenSIPS-compatible scripts.
//
//	sipedge check  -f FILE [-p CMD]   check a script (like opensips -c); exit 1 with positioned errors
//	sipedge check  --report [--json] -f FILE   porting report: what the script needs that sipedge lacks
//	sipedge disasm -f FILE [-p CMD]   print the compiled bytecode of every route
//	sipedge test   FIXTURE.txtar…     run routes offline against SIP message fixtures
//	sipedge [run] -f FILE [-p CMD]    run the proxy (SIGHUP reloads the script)
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/sipedge/sipedge/lang/syntax"
	_ "github.com/sipedge/sipedge/modules/all"
	"github.com/sipedge/sipedge/runtime/engine"
	"github.com/sipedge/sipedge/runtime/scripttest"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprintln(w, `usage:
  sipedge check  -f FILE [-p CMD]   check a script; exit 1 with file:line:col errors
  sipedge check  --report [--json] -f FILE
                                    porting report: what the script needs that sipedge lacks
  sipedge disasm -f FILE [-p CMD]   print the bytecode of every route
  sipedge test   FIXTURE.txtar...   run routes offline against SIP message fixtures
  sipedge [run] -f FILE [-p CMD] [-l LEVEL]
                                    run the proxy; SIGHUP reloads the script`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "check", "disasm":
		fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
		fs.SetOutput(stderr)
		file := fs.String("f", "opensips.cfg", "script file")
		pre := fs.String("p", "", "preprocessor command the script is piped through (e.g. envsubst)")
		var report, reportJSON *bool
		if args[0] == "check" {
			report = fs.Bool("report", false, "print a porting report: everything the script needs that sipedge lacks")
			reportJSON = fs.Bool("json", false, "with --report: print the report as JSON")
		}
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if report != nil && (*report || *reportJSON) {
			return runReport(*file, syntax.Options{Preprocess: *pre}, *reportJSON, stdout, stderr)
		}
		s, err := engine.Load(*file, syntax.Options{Preprocess: *pre})
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if args[0] == "disasm" {
			s.Prog.Disassemble(stdout)
		} else {
			fmt.Fprintf(stdout, "%s: ok (%d routes, %d instructions)\n", *file, len(s.Prog.Routes), len(s.Prog.Code))
		}
		return 0
	case "test":
		return runTests(args[1:], stdout, stderr)
	case "db":
		return runDB(args[1:], stdout, stderr)
	case "run":
		return runProxy(args[1:], stdout, stderr)
	case "mi":
		return runMI(args[1:], stdout, stderr)
	case "-h", "help", "--help":
		usage(stdout)
		return 0
	}
	if len(args[0]) > 1 && args[0][0] == '-' {
		return runProxy(args, stdout, stderr) // `sipedge -f FILE` runs the proxy
	}
	usage(stderr)
	return 2
}

func runTests(files []string, stdout, stderr io.Writer) int {
	if len(files) == 0 {
		fmt.Fprintln(stderr, "sipedge test: name at least one fixture file")
		return 2
	}
	failed := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(stderr, err)
			failed++
			continue
		}
		res, err := scripttest.Run(f, data)
		switch {
		case err != nil:
			fmt.Fprintf(stdout, "FAIL %s\n%v\n", f, err)
			failed++
		case !res.OK():
			fmt.Fprintf(stdout, "FAIL %s\n--- want\n%s--- got\n%s", f, res.Want, res.Got)
			failed++
		default:
			fmt.Fprintf(stdout, "ok   %s\n", f)
		}
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "%d of %d fixtures failed\n", failed, len(files))
		return 1
	}
	return 0
}
