// Package bytecode is the compiled form of a script, shared by the compiler
// (which writes it) and the VM (which runs it). A Program is immutable once
// built and is shared by every goroutine running the script.
//
// The machine is a stack machine over value.Value. Each instruction has an
// opcode and up to two operands; Pos[i] is the source position of Code[i].
// Stack pictures below read "before → after".
package bytecode

import (
	"regexp"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/source"
	"github.com/sipedge/sipedge/runtime/value"
)

type Opcode uint8

const (
	OpNop Opcode = iota

	OpConst   // - → Consts[A]
	OpLoadPV  // - → PVars[A].Get
	OpStorePV // v → -    PVars[A] = v (B=1: ":=" replace all)
	OpFormat  // - → Formats[A] expanded to a string
	OpIter    // i → i v ok   v = value i of PVars[A] (for-each), ok = v is not NULL
	OpPop     // v → -
	OpDup     // v → v v

	// Function and route calls. A call's result sets $retcode; 0 ends the
	// script like exit. With B=1 the truth of the result (ret > 0) is pushed.
	OpCall      // - → [bool]        Calls[A]
	OpRouteCall // args… → [bool]    RouteCalls[A] (B=1 pushes the truth)

	OpJump        // - → -     goto A (forward)
	OpLoop        // - → -     goto A (backward, spends step budget)
	OpJumpIfFalse // v → -     goto A if !truth(v)
	OpJumpIfTrue  // v → -     goto A if truth(v)
	OpOrJump      // v → v|-   if truth(v) goto A keeping v, else pop
	OpAndJump     // v → v|-   if !truth(v) goto A keeping v, else pop

	OpEq       // a b → a==b
	OpNe       // a b → a!=b
	OpLt       // a b → a<b
	OpLe       // a b → a<=b
	OpGt       // a b → a>b
	OpGe       // a b → a>=b
	OpMatch    // a → a =~ Matchers[A] (B=1 negates: !~)
	OpMatchDyn // a b → a =~ b, b compiled at run time (B=1 negates)
	OpMyself   // a → is_myself(a)

	OpAdd    // a b → a+b (ints add; otherwise string concatenation)
	OpSub    // a b → a-b
	OpMul    // a b → a*b
	OpDiv    // a b → a/b
	OpMod    // a b → a%b
	OpBitOr  // a b → a|b
	OpBitAnd // a b → a&b
	OpBitXor // a b → a^b
	OpShl    // a b → a<<b
	OpShr    // a b → a>>b
	OpNeg    // a → -a
	OpBitNot // a → ^a
	OpNot    // a → !a

	OpReturn     // v → (leave route, $retcode = int(v))
	OpReturnNone // leave route, $retcode = 1 (bare return, end of route)
	OpExit       // stop the script
	OpDrop       // stop the script and drop the message/reply

	NumOpcodes
)

var opNames = [...]string{
	OpNop: "nop", OpConst: "const", OpLoadPV: "loadpv", OpStorePV: "storepv", OpFormat: "format", OpIter: "iter",
	OpPop: "pop", OpDup: "dup", OpCall: "call", OpRouteCall: "routecall", OpJump: "jump",
	OpLoop: "loop", OpJumpIfFalse: "jumpiffalse", OpJumpIfTrue: "jumpiftrue", OpOrJump: "orjump",
	OpAndJump: "andjump", OpEq: "eq", OpNe: "ne", OpLt: "lt", OpLe: "le", OpGt: "gt", OpGe: "ge",
	OpMatch: "match", OpMatchDyn: "matchdyn", OpMyself: "myself", OpAdd: "add", OpSub: "sub",
	OpMul: "mul", OpDiv: "div", OpMod: "mod", OpBitOr: "bitor", OpBitAnd: "bitand",
	OpBitXor: "bitxor", OpShl: "shl", OpShr: "shr", OpNeg: "neg", OpBitNot: "bitnot", OpNot: "not",
	OpReturn: "return", OpReturnNone: "return1", OpExit: "exit", OpDrop: "drop",
}

func (op Opcode) String() string {
	if int(op) < len(opNames) && opNames[op] != "" {
		return opNames[op]
	}
	return "op?"
}

// Instr is one instruction.
type Instr struct {
	Op Opcode
	B  int32
	A  int32
}

// ArgSource says where a call argument's value comes from.
type ArgSource uint8

const (
	ArgAbsent ArgSource = iota // optional argument not given
	ArgConst                   // Consts[Index]
	ArgFormat                  // Formats[Index], expanded per call
	ArgPV                      // PVars[Index], read (or passed by reference for var args)
	ArgRegex                   // Regexps[Index]
	ArgRoute                   // route index into Routes
)

type Arg struct {
	Source ArgSource
	Index  int
	ByRef  bool // var argument: the function gets the reference itself
}

// CallSite is one call of a module function with its fixed-up arguments.
type CallSite struct {
	Name   string
	Module string
	Impl   any // the module's function; opaque to lang/
	Fix    any // what the function's Fixup returned
	Args   []Arg
}

// RouteCall is one route(name, args…) call: the arguments are on the stack.
type RouteCall struct {
	Route int
	NArgs int
}

// Segment of a format string: literal text, or PVars[PV] when PV >= 0.
type Segment struct {
	Text string
	PV   int
}

type Format struct {
	Segs []Segment
}

// PVar is a fixed-up pvar reference; Handle's type is the runtime's.
type PVar struct {
	Text   string
	Handle any
}

// Route is one compiled route block; its code starts at Entry and always
// ends with a return or exit.
type Route struct {
	Kind     ast.RouteKind
	Name     string
	Entry    int
	Interval int // timer_route seconds
}

type Program struct {
	Code       []Instr
	Pos        []source.Pos
	Consts     []value.Value
	Regexps    []*regexp.Regexp // regex arguments of module functions
	Matchers   []*Matcher       // right-hand sides of =~ and !~
	PVars      []PVar
	Formats    []Format
	Calls      []CallSite
	RouteCalls []RouteCall
	Routes     []Route
	// Index maps a route kind and name to its position in Routes.
	Index    [ast.NumRouteKinds]map[string]int
	VarNames []string // $var slot names
	AVPNames []string // $avp slot names
}

// Lookup finds a route by kind and name.
func (p *Program) Lookup(kind ast.RouteKind, name string) (int, bool) {
	i, ok := p.Index[kind][name]
	return i, ok
}
