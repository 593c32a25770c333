// Package engine loads a script into a runnable form: parse, check against
// the modules the script loads, compile, fix up module parameters and link
// the VM image. A failed load changes nothing, so a reload that fails leaves
// the running script in place.
package engine

import (
	_ "embed"
	"fmt"
	"sort"
	"strings"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/pvar"
)

// The OpenSIPS 3.6 catalogs tell a function or pvar sipedge lacks apart from
// a typo, so the error can name the module it belongs to.
var (
	//go:embed opensips-3.6-functions.tsv
	opensipsFuncsTSV string
	//go:embed opensips-3.6-pvars.tsv
	opensipsPVarsTSV string

	opensipsFuncs = catalog(opensipsFuncsTSV)
	opensipsPVars = catalog(opensipsPVarsTSV)
)

// catalog maps a name (column 2) to its module (column 1).
func catalog(tsv string) map[string]string {
	out := map[string]string{}
	for i, line := range strings.Split(tsv, "\n") {
		f := strings.Split(line, "\t")
		if i == 0 || len(f) < 2 {
			continue
		}
		name := strings.TrimPrefix(f[1], "$")
		if _, seen := out[name]; !seen {
			out[name] = f[0]
		}
	}
	return out
}

// legacyModules are 2.x module names real configs still load, mapped to the
// 3.x module sipedge implements them in.
var legacyModules = map[string]string{"cached_local": "cachedb_local"}

// Env implements check.Env for one script: the core module plus the modules
// its loadmodule lines name.
type Env struct {
	loaded map[string]*modules.Info
	funcs  map[string]*check.FuncSig
}

// NewEnv builds the environment for a parsed file. Modules sipedge does not
// have are left out; the checker reports them through Module.
func NewEnv(f *ast.File) *Env {
	e := &Env{loaded: map[string]*modules.Info{}, funcs: map[string]*check.FuncSig{}}
	e.add("core")
	for _, m := range f.Modules {
		e.add(canonicalModule(m.Name))
	}
	return e
}

func canonicalModule(name string) string {
	if n, ok := legacyModules[name]; ok {
		return n
	}
	return name
}

func (e *Env) add(name string) {
	info := modules.Lookup(name)
	if info == nil {
		return
	}
	e.loaded[name] = info
	for _, f := range info.Funcs {
		e.funcs[f.Name] = f.Signature(name)
	}
}

func (e *Env) Func(name string) (*check.FuncSig, string) {
	if sig, ok := e.funcs[name]; ok {
		return sig, ""
	}
	for _, n := range modules.Names() {
		for _, f := range modules.Lookup(n).Funcs {
			if f.Name == name {
				return nil, fmt.Sprintf("%s() belongs to module %q, which is not loaded (add loadmodule \"%s.so\")", name, n, n)
			}
		}
	}
	if mod, ok := opensipsFuncs[name]; ok {
		if mod == "core" {
			return nil, fmt.Sprintf("sipedge does not implement the OpenSIPS core function %s() yet", name)
		}
		return nil, fmt.Sprintf("sipedge does not implement %s() of OpenSIPS module %q yet", name, mod)
	}
	return nil, ""
}

func (e *Env) PVar(name string) (*check.PVarSig, string) {
	if s := pvar.Lookup(name); s != nil {
		if s.Module != "core" && e.loaded[s.Module] == nil {
			return nil, fmt.Sprintf("$%s belongs to module %q, which is not loaded", name, s.Module)
		}
		return &check.PVarSig{Name: name, Module: s.Module, Writable: s.Writable && s.Set != nil}, ""
	}
	if mod, ok := opensipsPVars[name]; ok {
		return nil, fmt.Sprintf("sipedge does not implement $%s (OpenSIPS %s) yet", name, mod)
	}
	return nil, ""
}

func (e *Env) CompilePVar(p *ast.PVar, slots check.Slots) (any, error) {
	return pvar.Compile(p, slots)
}

func (e *Env) FuncNames() []string {
	out := make([]string, 0, len(e.funcs))
	for n := range e.funcs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (e *Env) PVarNames() []string { return pvar.Names() }

func (e *Env) Module(name string) (string, string) {
	if c := canonicalModule(name); modules.Lookup(c) != nil {
		return c, ""
	}
	return "", fmt.Sprintf("sipedge does not implement module %q yet", name)
}

func (e *Env) ModParam(module, param string) (bool, error) {
	info := modules.Lookup(canonicalModule(module))
	if info == nil {
		return false, fmt.Errorf("sipedge does not implement module %q yet", module)
	}
	p, err := info.ParamSpec(param)
	if err != nil {
		names := make([]string, len(info.Params))
		for i, p := range info.Params {
			names[i] = p.Name
		}
		return false, fmt.Errorf("%v%s", err, suggest(param, names))
	}
	return p.Kind == modules.ParamInt, nil
}

var _ check.Env = (*Env)(nil)
