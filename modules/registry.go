// Package modules is the registry of sipedge's OpenSIPS-compatible modules.
// Each module package registers itself in init() (caddy style) with its
// name, typed modparams, script functions, pseudo-variables and MI commands;
// a script's loadmodule lines choose which registered modules are active.
package modules

import (
	"errors"
	"fmt"
	"regexp"
	"sort"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

// ParamKind is a modparam's type: OpenSIPS modparams are strings or ints.
type ParamKind uint8

const (
	ParamStr ParamKind = iota
	ParamInt
)

// Param is one modparam a module accepts. Multi params may be given several
// times (modparam("dialog", "profiles_with_value", "a") twice).
type Param struct {
	Name    string
	Kind    ParamKind
	Default value.Value
	Multi   bool
}

// Params are the modparam values a script set for one module, by name;
// unset params hold their Default. Multi params keep every value in order.
type Params map[string][]value.Value

func (p Params) Str(name string) string { return p.last(name).AsString() }

func (p Params) Int(name string) int { n, _ := p.last(name).AsInt(); return n }

func (p Params) All(name string) []value.Value { return p[name] }

func (p Params) last(name string) value.Value {
	vs := p[name]
	if len(vs) == 0 {
		return value.Null
	}
	return vs[len(vs)-1]
}

// Func is a script function a module exports.
type Func struct {
	Name   string
	Args   []check.ArgSpec
	Routes check.RouteMask // zero means every route kind
	// Fixup validates constant arguments at load time (optional).
	Fixup func(args []check.FixupArg) (any, error)
	// Call runs the function; its result is the OpenSIPS return code
	// (>0 true, <0 false, 0 stop the script).
	Call func(m *msgctx.Msg, a *Args) int
}

// Args is how a function reads its arguments at run time. Strings are
// already expanded; var arguments are references to read or write.
type Args struct {
	Vals  []value.Value
	Refs  []*pvar.Ref // set for ArgVar arguments
	Rx    []*regexp.Regexp
	Given []bool
	Fix   any // what Fixup returned
}

func (a *Args) Has(i int) bool             { return i < len(a.Given) && a.Given[i] }
func (a *Args) Str(i int) string           { return a.Vals[i].AsString() }
func (a *Args) Int(i int) int              { n, _ := a.Vals[i].AsInt(); return n }
func (a *Args) Val(i int) value.Value      { return a.Vals[i] }
func (a *Args) Ref(i int) *pvar.Ref        { return a.Refs[i] }
func (a *Args) Regex(i int) *regexp.Regexp { return a.Rx[i] }

// MICommand is a management command (served over mi_http / `sipedge mi`).
type MICommand struct {
	Name string
	Help string
	Run  func(params map[string]any) (any, error)
}

// Info is what a module registers.
type Info struct {
	Name   string
	Params []Param
	Funcs  []*Func
	PVars  []*pvar.Spec
	MI     []MICommand
	// Configure validates a generation's modparams without side effects and
	// returns the function that applies them when that generation goes live
	// (so a rejected reload changes nothing). Optional.
	Configure func(p Params) (apply func(), err error)
	// Shutdown saves what must outlive the process (write-back caches,
	// snapshots) when sipedge stops. Optional.
	Shutdown func() error
}

// ShutdownAll runs every module's Shutdown hook, in name order, and
// returns what failed.
func ShutdownAll() error {
	var errs []error
	for _, name := range Names() {
		if info := registry[name]; info.Shutdown != nil {
			if err := info.Shutdown(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

var (
	registry = map[string]*Info{}
	// coreExtra holds core functions registered from other packages
	// (RegisterCore) before or after the core module itself registers.
	coreExtra []*Func
)

// CoreName is the name of the module that holds OpenSIPS's core functions;
// scripts use them without a loadmodule line.
const CoreName = "core"

// RegisterCore adds functions to the core module from another package (the
// SIP runtime's forward(), for one), so they work without a loadmodule line.
// It works whichever init runs first: functions registered before the core
// module are merged when it registers. It panics on a duplicate name.
func RegisterCore(funcs ...*Func) {
	for _, f := range funcs {
		if f == nil || f.Name == "" {
			panic("modules: RegisterCore without a name")
		}
		if hasFunc(coreExtra, f.Name) {
			panic("modules: duplicate core function " + f.Name)
		}
		if info := registry[CoreName]; info != nil {
			if hasFunc(info.Funcs, f.Name) {
				panic("modules: duplicate core function " + f.Name)
			}
			info.Funcs = append(info.Funcs, f)
		}
		coreExtra = append(coreExtra, f)
	}
}

func hasFunc(fs []*Func, name string) bool {
	for _, f := range fs {
		if f.Name == name {
			return true
		}
	}
	return false
}

// Register adds a module. It panics on an empty or duplicate name, so a
// mistake shows when the binary starts, not on the first message.
func Register(info *Info) {
	if info.Name == "" {
		panic("modules: Register without a name")
	}
	if _, dup := registry[info.Name]; dup {
		panic("modules: duplicate module " + info.Name)
	}
	for _, s := range info.PVars {
		s.Module = info.Name
		pvar.Register(s)
	}
	if info.Name == CoreName {
		for _, f := range coreExtra {
			if hasFunc(info.Funcs, f.Name) {
				panic("modules: duplicate core function " + f.Name)
			}
		}
		// Copy so the module's own slice literal is not appended to in place.
		info.Funcs = append(append([]*Func(nil), info.Funcs...), coreExtra...)
	}
	registry[info.Name] = info
}

// Lookup returns a registered module.
func Lookup(name string) *Info { return registry[name] }

// Names lists registered modules, sorted.
func Names() []string {
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Signature converts a Func into what the checker needs.
func (f *Func) Signature(module string) *check.FuncSig {
	routes := f.Routes
	if routes == 0 {
		routes = check.AllRoutes
	}
	return &check.FuncSig{Name: f.Name, Module: module, Args: f.Args, Routes: routes, Fixup: f.Fixup, Impl: f}
}

// ParamSpec finds a module's modparam by name.
func (info *Info) ParamSpec(name string) (*Param, error) {
	for i := range info.Params {
		if info.Params[i].Name == name {
			return &info.Params[i], nil
		}
	}
	return nil, fmt.Errorf("module %q has no parameter %q", info.Name, name)
}
