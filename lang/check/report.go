package check

import (
	"fmt"
	"sort"
	"strings"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/source"
)

// The porting report: what a script uses that sipedge lacks, kept as
// structured items next to the checker's errors, so `sipedge check
// --report` can show an operator the whole porting effort at once.

// MissingKind classifies a Missing item.
type MissingKind string

const (
	KindModule    MissingKind = "module"
	KindFunction  MissingKind = "function"
	KindPVar      MissingKind = "pvar"
	KindKeyword   MissingKind = "core keyword"
	KindParam     MissingKind = "core param"
	KindModParam  MissingKind = "modparam"
	KindSyntax    MissingKind = "syntax"
	kindSortOrder             = "module function pvar core keyword core param modparam syntax"
)

// Missing is one thing a script uses that sipedge does not have, or (with
// Legacy) still accepts but OpenSIPS 3.x spells differently.
type Missing struct {
	Kind MissingKind
	// Name as the script writes it: "rtpproxy", "rtpproxy_offer()",
	// "$rtpstat", "children", "rr.enable_full_lr", or a syntax error's text.
	Name string
	// Module is the OpenSIPS module it belongs to ("core" for the core),
	// "" when unknown.
	Module string
	// At lists every place the script uses it, in source order.
	At []source.Pos
	// Note says what to write instead, or why it is missing.
	Note string
	// Legacy marks an item sipedge accepts (the script loads) that is
	// written for OpenSIPS 1.x/2.x.
	Legacy bool
}

// Origins may be implemented by an Env to tell which OpenSIPS module owns
// a name sipedge lacks (from the OpenSIPS catalogs), for CheckReport.
type Origins interface {
	FuncOrigin(name string) string // "" when unknown
	PVarOrigin(name string) string
}

// reporter collects Missing items by kind and name.
type reporter struct {
	items map[string]*Missing
	order []*Missing
}

func (r *reporter) add(kind MissingKind, name, module string, at source.Pos, note string, legacy bool) {
	if r == nil {
		return
	}
	key := string(kind) + "\x00" + name
	if legacy {
		key += "\x00" + note // one row per suggested rewrite
	}
	m := r.items[key]
	if m == nil {
		m = &Missing{Kind: kind, Name: name, Module: module, Note: note, Legacy: legacy}
		r.items[key] = m
		r.order = append(r.order, m)
	}
	if m.Note == "" {
		m.Note = note
	}
	if m.Module == "" {
		m.Module = module
	}
	m.At = append(m.At, at)
}

// CheckReport checks f like Check and also returns what is missing or
// written for older OpenSIPS releases, grouped by kind and name, each with
// every position that uses it.
func CheckReport(f *ast.File, env Env) (source.ErrorList, []Missing) {
	c := &checker{env: env, file: f, rep: &reporter{items: map[string]*Missing{}}}
	c.globals()
	c.modules()
	c.routes()
	c.errs.Sort()
	return c.errs, c.rep.list()
}

func (r *reporter) list() []Missing {
	out := make([]Missing, 0, len(r.order))
	for _, m := range r.order {
		cp := *m
		sort.SliceStable(cp.At, func(i, j int) bool { return posLess(cp.At[i], cp.At[j]) })
		cp.At = dedupPos(cp.At)
		out = append(out, cp)
	}
	SortMissing(out)
	return out
}

func posLess(a, b source.Pos) bool {
	if a.File != b.File {
		return a.File < b.File
	}
	if a.Line != b.Line {
		return a.Line < b.Line
	}
	return a.Col < b.Col
}

func dedupPos(ps []source.Pos) []source.Pos {
	out := ps[:0]
	for i, p := range ps {
		if i > 0 && p == ps[i-1] {
			continue
		}
		out = append(out, p)
	}
	return out
}

// SortMissing orders items: missing before legacy, then by kind (modules
// first), then by first use.
func SortMissing(ms []Missing) {
	rank := func(k MissingKind) int { return strings.Index(kindSortOrder, string(k)) }
	sort.SliceStable(ms, func(i, j int) bool {
		a, b := ms[i], ms[j]
		if a.Legacy != b.Legacy {
			return !a.Legacy
		}
		if a.Kind != b.Kind {
			return rank(a.Kind) < rank(b.Kind)
		}
		if len(a.At) > 0 && len(b.At) > 0 && a.At[0] != b.At[0] {
			return posLess(a.At[0], b.At[0])
		}
		return a.Name < b.Name
	})
}

// The checker's side of the report.

func (c *checker) funcOrigin(name string) string {
	if o, ok := c.env.(Origins); ok {
		return o.FuncOrigin(name)
	}
	return ""
}

func (c *checker) pvarOrigin(name string) string {
	if o, ok := c.env.(Origins); ok {
		return o.PVarOrigin(name)
	}
	return ""
}

// missingFunc classifies a function the env does not have; why is the
// env's explanation. It returns the error message to report.
func (c *checker) missingFunc(name string, at source.Pos, why string) string {
	if l, ok := legacyFuncs[name]; ok && why == "" {
		msg := fmt.Sprintf("%s() is gone from OpenSIPS 3.x: write %s", name, l[1])
		c.rep.add(KindFunction, name+"()", l[0], at, "gone in OpenSIPS 3.x: write "+l[1], false)
		return msg
	}
	if why == "" {
		why = fmt.Sprintf("unknown function %s()%s", name, didYouMean(name, c.env.FuncNames()))
	}
	if !strings.Contains(why, "is not loaded") {
		note, ok := funcNotes[name]
		if !ok {
			note = moduleNotes[c.funcOrigin(name)]
		}
		c.rep.add(KindFunction, name+"()", c.funcOrigin(name), at, note, false)
	}
	return why
}

// missingPVar classifies a pvar the env does not have.
func (c *checker) missingPVar(name string, at source.Pos, why string) string {
	if why == "" {
		why = fmt.Sprintf("unknown pseudo-variable $%s%s", name, didYouMean(name, c.env.PVarNames()))
	}
	if !strings.Contains(why, "is not loaded") {
		c.rep.add(KindPVar, "$"+name, c.pvarOrigin(name), at, "", false)
	}
	return why
}

// legacyKeyword notes a 1.x/2.x bare operand (method, src_ip, myself …).
func (c *checker) legacyKeyword(k *ast.Keyword) {
	if w, ok := keywordNotes[k.Name]; ok {
		c.rep.add(KindKeyword, k.Name, "core", k.At, "removed in OpenSIPS 2.4: write "+w, true)
	}
}

// legacyPVar notes OpenSIPS 1.x AVP names ($avp(s:name), $avp(i:12)).
func (c *checker) legacyPVar(p *ast.PVar) {
	if p.Name == "avp" && (strings.HasPrefix(p.Arg, "s:") || strings.HasPrefix(p.Arg, "i:")) {
		c.rep.add(KindPVar, "$avp("+p.Arg+")", "core", p.At, "OpenSIPS 1.x AVP name: write $avp("+p.Arg[2:]+")", true)
	}
}

// legacyCall notes a call sipedge accepts in an older form.
func (c *checker) legacyCall(call *ast.Call, sig *FuncSig) {
	if c.rep == nil {
		return
	}
	if l, ok := legacyFuncs[call.Name]; ok {
		c.rep.add(KindFunction, call.Name+"()", sig.Module, call.At, "gone in OpenSIPS 3.x: write "+l[1], true)
	}
	if f := legacyArgs[call.Name]; f != nil {
		if note := f(call.Args); note != "" {
			c.rep.add(KindFunction, call.Name+"()", sig.Module, call.At, note, true)
		}
	}
}
