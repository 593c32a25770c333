package main

import (
	"fmt"
	"io"

	"github.com/sipedge/sipedge/lang/syntax"
	"github.com/sipedge/sipedge/runtime/engine"
)

// runReport is `sipedge check --report`: one table of what the script
// needs that sipedge lacks (modules, functions, pvars, core keywords and
// parameters, syntax), with every line that uses it, then what loads but
// is written for OpenSIPS 1.x/2.x, then the remaining load errors. It
// exits 0 when the script loads as it is, 1 when it does not, 2 when it
// cannot be read.
func runReport(file string, opt syntax.Options, asJSON bool, stdout, stderr io.Writer) int {
	r, err := engine.Report(file, opt)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if asJSON {
		err = r.WriteJSON(stdout)
	} else {
		err = r.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if !r.Loads {
		return 1
	}
	return 0
}
