package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/lang/compile"
	"github.com/sipedge/sipedge/lang/source"
	"github.com/sipedge/sipedge/lang/syntax"
	"github.com/sipedge/sipedge/modules"
)

// FuncOrigin and PVarOrigin implement check.Origins from the OpenSIPS 3.6
// catalogs.
func (e *Env) FuncOrigin(name string) string { return opensipsFuncs[name] }
func (e *Env) PVarOrigin(name string) string { return opensipsPVars[name] }

var _ check.Origins = (*Env)(nil)

// PortReport is `sipedge check --report`: everything a script needs that
// sipedge lacks, in one table, so an operator sees the porting effort.
type PortReport struct {
	File string `json:"file"`
	// Loads tells whether the script loads in sipedge as it is.
	Loads bool `json:"loads"`
	// Missing are what stops it loading; Legacy what loads but is written
	// for OpenSIPS 1.x/2.x (or accepted with a caveat).
	Missing []ReportItem `json:"missing"`
	Legacy  []ReportItem `json:"legacy"`
	// Errors are the other load errors (typos, wrong arguments, modules
	// whose configuration fails), with file:line:col.
	Errors []string `json:"errors"`
}

// ReportItem is one row of the report.
type ReportItem struct {
	Kind   string   `json:"kind"`
	Name   string   `json:"name"`
	Module string   `json:"module,omitempty"`
	Lines  []string `json:"lines"` // "12", or "other.cfg:12" for an included file
	Note   string   `json:"note,omitempty"`
}

// Report builds the porting report of the script at path. The error is
// for a script that cannot be read at all.
func Report(path string, opt syntax.Options) (*PortReport, error) {
	f, files, perr := syntax.ParseFile(path, opt)
	var syntaxErrs source.ErrorList
	if perr != nil && !errors.As(perr, &syntaxErrs) {
		return nil, perr
	}
	if len(files) == 0 && len(syntaxErrs) > 0 && len(f.Routes) == 0 && len(f.Globals) == 0 {
		return nil, perr // nothing was read
	}
	main := filepath.Clean(path)
	r := &PortReport{File: path, Missing: []ReportItem{}, Legacy: []ReportItem{}, Errors: []string{}}
	var missing []check.Missing

	// syntax: one row per distinct message
	seenMsg := map[string]int{}
	for _, e := range syntaxErrs {
		if i, ok := seenMsg[e.Msg]; ok {
			missing[i].At = append(missing[i].At, e.Pos)
			continue
		}
		seenMsg[e.Msg] = len(missing)
		missing = append(missing, check.Missing{Kind: check.KindSyntax, Name: e.Msg, At: []source.Pos{e.Pos}})
	}

	env := NewEnv(f)
	errs, items := check.CheckReport(f, env)
	missing = append(missing, items...)
	// the modules' Configure, as a load runs it (no side effects)
	s := &Script{File: f, Params: map[string]modules.Params{}}
	errs = append(errs, s.modparams(f)...)
	_, cerrs := compile.Compile(f, env)
	seen := map[source.Pos]bool{}
	for _, e := range errs {
		seen[e.Pos] = true
	}
	for _, e := range cerrs {
		if !seen[e.Pos] {
			errs = append(errs, e)
		}
	}
	errs.Sort()

	// errors already told by a Missing row are not repeated
	told := map[source.Pos]bool{}
	for _, m := range missing {
		if !m.Legacy {
			for _, p := range m.At {
				told[p] = true
			}
		}
	}
	for _, e := range errs {
		if !told[e.Pos] {
			r.Errors = append(r.Errors, e.Pos.String()+": "+e.Msg)
		}
	}
	check.SortMissing(missing)
	for _, m := range missing {
		it := ReportItem{Kind: string(m.Kind), Name: m.Name, Module: m.Module, Note: m.Note}
		for _, p := range m.At {
			it.Lines = append(it.Lines, lineRef(p, main))
		}
		if m.Legacy {
			r.Legacy = append(r.Legacy, it)
		} else {
			r.Missing = append(r.Missing, it)
		}
	}
	r.Loads = len(r.Missing) == 0 && len(r.Errors) == 0
	return r, nil
}

func lineRef(p source.Pos, main string) string {
	if !p.IsValid() {
		return "-"
	}
	if p.File == "" || filepath.Clean(p.File) == main {
		return strconv.Itoa(p.Line)
	}
	return p.File + ":" + strconv.Itoa(p.Line)
}

// WriteText prints the report as tables.
func (r *PortReport) WriteText(w io.Writer) error {
	status := "yes"
	if !r.Loads {
		status = fmt.Sprintf("no (%d missing, %d other errors)", len(r.Missing), len(r.Errors))
	}
	fmt.Fprintf(w, "sipedge porting report for %s\nloads in sipedge: %s\n", r.File, status)
	table := func(title string, items []ReportItem) {
		if len(items) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s\n", title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tNAME\tOPENSIPS MODULE\tLINES\tNOTE")
		for _, it := range items {
			mod := it.Module
			if mod == "" {
				mod = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", it.Kind, it.Name, mod, strings.Join(it.Lines, ","), it.Note)
		}
		tw.Flush()
	}
	table(fmt.Sprintf("MISSING (%d): what sipedge does not have", len(r.Missing)), r.Missing)
	table(fmt.Sprintf("OLDER OPENSIPS (%d): loads, but written for OpenSIPS 1.x/2.x or accepted with a caveat", len(r.Legacy)), r.Legacy)
	if len(r.Errors) > 0 {
		fmt.Fprintf(w, "\nOTHER ERRORS (%d)\n", len(r.Errors))
		for _, e := range r.Errors {
			fmt.Fprintln(w, e)
		}
	}
	return nil
}

// WriteJSON prints the report as JSON.
func (r *PortReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
