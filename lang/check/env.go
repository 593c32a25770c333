package check

import (
	"fmt"
	"regexp"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/source"
)

// ArgKind is what a function parameter accepts, after OpenSIPS's fixup kinds.
type ArgKind uint8

const (
	// ArgStr is a string; pvars inside it are expanded per message unless
	// the spec says NoExpand.
	ArgStr ArgKind = iota
	// ArgInt is an integer constant or a pvar holding one.
	ArgInt
	// ArgVar is a pvar the function reads or writes by reference.
	ArgVar
	// ArgRegex is a regular expression, compiled at load time.
	ArgRegex
	// ArgRoute names a route of kind Route (t_on_failure("x")).
	ArgRoute
)

var argKindNames = [...]string{"string", "integer", "variable", "regex", "route name"}

func (k ArgKind) String() string { return argKindNames[k] }

type ArgSpec struct {
	Kind     ArgKind
	Optional bool
	NoExpand bool          // ArgStr taken verbatim, no pvar expansion
	Writable bool          // ArgVar that the function writes
	Route    ast.RouteKind // for ArgRoute
}

// RouteMask is a set of route kinds a function may be called from.
type RouteMask uint16

const AllRoutes RouteMask = 1<<ast.NumRouteKinds - 1

func Routes(kinds ...ast.RouteKind) RouteMask {
	var m RouteMask
	for _, k := range kinds {
		m |= 1 << k
	}
	return m
}

func (m RouteMask) Has(k ast.RouteKind) bool { return m&(1<<k) != 0 }

// FixupArg is the load-time view of one call argument, given to a
// function's Fixup so it can validate and precompute (OpenSIPS fixups).
type FixupArg struct {
	Pos     source.Pos
	Present bool
	// Const is true when the argument is a literal without pvars; Str/Int
	// then hold it.
	Const bool
	Str   string
	Int   int
	Regex *regexp.Regexp
	// PVar is the argument's pvar name for ArgVar ("var", "avp" …).
	PVar string
	// Slots lets a fixup compile pvars of its own (in a query text, a
	// replacement) that use $var/$avp storage.
	Slots Slots
}

// FuncSig is a script function as the checker and compiler see it. Impl is
// opaque to lang/: the VM knows its type.
type FuncSig struct {
	Name   string
	Module string
	Args   []ArgSpec
	Routes RouteMask
	// Fixup validates constant arguments at load time and returns data the
	// call gets back at run time.
	Fixup func(args []FixupArg) (any, error)
	Impl  any
}

// PVarSig is a pseudo-variable class as the checker sees it.
type PVarSig struct {
	Name     string
	Module   string
	Writable bool
}

// Env is what the checker and compiler know of the runtime: the functions and
// pvars of the loaded modules, and why a name is missing when it is.
type Env interface {
	// Func finds a function by name. When it is missing, why says so in
	// words for the error ("module \"tm\" is not loaded", "sipedge does not
	// implement rtpproxy's rtpproxy_offer yet"); why is "" for an unknown name.
	Func(name string) (sig *FuncSig, why string)
	// PVar finds a pvar class, with the same why convention as Func.
	PVar(name string) (sig *PVarSig, why string)
	// CompilePVar fixes up one pvar reference (inner name, index,
	// transformations) and returns the handle the VM reads and writes.
	CompilePVar(p *ast.PVar, slots Slots) (any, error)
	// FuncNames and PVarNames feed "did you mean" suggestions.
	FuncNames() []string
	PVarNames() []string
	// Module resolves a loadmodule/modparam module name (2.x names map to
	// their 3.x module) to the module sipedge implements; when there is
	// none, canonical is "" and why says so.
	Module(name string) (canonical string, why string)
	// ModParam finds a module parameter: isInt tells its type.
	ModParam(module, param string) (isInt bool, err error)
}

// Slots hands out per-program storage slots for $var and $avp names.
type Slots interface {
	VarSlot(name string) int
	AVPSlot(name string) int
}

// FixupError lets a module's Fixup blame one argument, so the error points at
// it rather than at the function name.
type FixupError struct {
	Arg int
	Err error
}

func (e *FixupError) Error() string { return e.Err.Error() }
func (e *FixupError) Unwrap() error { return e.Err }

// ArgError is how a Fixup reports a bad argument i (0-based).
func ArgError(i int, format string, args ...any) error {
	return &FixupError{Arg: i, Err: fmt.Errorf(format, args...)}
}
