// Package ast is sipedge's syntax tree for OpenSIPS scripts. The parser's own
// grammar structs never leave lang/syntax; they are lowered to these nodes, so
// every later phase (check, compile, disasm) works on one stable shape.
package ast

import "github.com/sipedge/sipedge/lang/source"

// Node is implemented by every syntax node.
type Node interface {
	Pos() source.Pos
}

// Expr and Stmt close the node sum types (go/ast style marker methods).
type Expr interface {
	Node
	exprNode()
}

type Stmt interface {
	Node
	stmtNode()
}

// File is one whole script after include_file/import_file were expanded.
type File struct {
	Globals  []*Global
	Modules  []*LoadModule
	Params   []*ModParam
	Routes   []*Route
	Includes []string // files read, in order, for reload change detection
}

// Global is a core parameter such as `log_level = 3` or
// `socket = udp:127.0.0.1:5060 as 1.2.3.4:5060`. Values keep their literal
// kinds; a socket spec is an unquoted word list kept as Words.
type Global struct {
	At    source.Pos
	Name  string
	Value *Literal // set for string/int/bool values
	Words string   // raw unquoted value (socket specs, identifiers)
}

type LoadModule struct {
	At   source.Pos
	Path string // as written: "tm.so" or "/usr/lib/.../tm.so"
	Name string // module name: base name without .so
}

type ModParam struct {
	At     source.Pos
	Module string
	Param  string
	Value  *Literal
}

type RouteKind uint8

const (
	RequestRoute RouteKind = iota
	BranchRoute
	FailureRoute
	OnReplyRoute
	LocalRoute
	StartupRoute
	TimerRoute
	ErrorRoute
	EventRoute
	NumRouteKinds
)

var routeKindNames = [...]string{"route", "branch_route", "failure_route", "onreply_route",
	"local_route", "startup_route", "timer_route", "error_route", "event_route"}

func (k RouteKind) String() string { return routeKindNames[k] }

// Route is a route block. Name is "" for the main request route and for the
// unnamed onreply_route; a bare number such as route[1] keeps its digits.
type Route struct {
	At       source.Pos
	Kind     RouteKind
	Name     string
	Interval int // timer_route[name, Interval]
	Body     *Block
}

// ---- statements ----

type Block struct {
	At    source.Pos
	Stmts []Stmt
}

type If struct {
	At   source.Pos
	Cond Expr
	Then *Block
	Else Stmt // nil, *Block or *If
}

type Switch struct {
	At    source.Pos
	Tag   Expr
	Cases []*Case
}

// Case is one `case V:` arm; Value is nil for `default:`. As in C and
// OpenSIPS, control falls through to the next arm unless a break ends it.
type Case struct {
	At    source.Pos
	Value Expr
	Body  []Stmt
}

type While struct {
	At   source.Pos
	Cond Expr
	Body *Block
}

// For is OpenSIPS 3's for-each loop, `for ($var(v) in $(avp(list)[*]))`:
// Var takes each value of Over in index order.
type For struct {
	At   source.Pos
	Var  *PVar
	Over *PVar
	Body *Block
}

// Return is `return;` or `return(expr)`; Value is nil for the bare form.
type Return struct {
	At    source.Pos
	Value Expr
}

type Exit struct{ At source.Pos }
type Drop struct{ At source.Pos }
type Break struct{ At source.Pos }

// Assign is `target op value`: Op is one of = += -= *= /= %= |= &= := .
// `$x = NULL` deletes, and `:=` overwrites every AVP value instead of adding one.
type Assign struct {
	At     source.Pos
	Target *PVar
	Op     string
	Value  Expr
}

// ExprStmt is a function call or route call used as a statement.
type ExprStmt struct {
	At source.Pos
	X  Expr
}

// Async is `async(func(args), resume_route)` / `launch(func(args), route)`.
type Async struct {
	At     source.Pos
	Launch bool
	Call   *Call
	Resume string // resume route name, may be ""
}

func (s *Block) Pos() source.Pos    { return s.At }
func (s *If) Pos() source.Pos       { return s.At }
func (s *Switch) Pos() source.Pos   { return s.At }
func (s *Case) Pos() source.Pos     { return s.At }
func (s *While) Pos() source.Pos    { return s.At }
func (s *For) Pos() source.Pos      { return s.At }
func (s *Return) Pos() source.Pos   { return s.At }
func (s *Exit) Pos() source.Pos     { return s.At }
func (s *Drop) Pos() source.Pos     { return s.At }
func (s *Break) Pos() source.Pos    { return s.At }
func (s *Assign) Pos() source.Pos   { return s.At }
func (s *ExprStmt) Pos() source.Pos { return s.At }
func (s *Async) Pos() source.Pos    { return s.At }

func (*Block) stmtNode()    {}
func (*If) stmtNode()       {}
func (*Switch) stmtNode()   {}
func (*While) stmtNode()    {}
func (*For) stmtNode()      {}
func (*Return) stmtNode()   {}
func (*Exit) stmtNode()     {}
func (*Drop) stmtNode()     {}
func (*Break) stmtNode()    {}
func (*Assign) stmtNode()   {}
func (*ExprStmt) stmtNode() {}
func (*Async) stmtNode()    {}

// ---- expressions ----

type LitKind uint8

const (
	StringLit LitKind = iota
	IntLit
	NullLit // the NULL keyword ($x = NULL)
)

// Literal is a constant. A string literal that contains pseudo-variables is
// still a Literal here: Format is its pre-split form (see FormatSegment) and
// is nil when the string has no `$`. Str is the unescaped text.
type Literal struct {
	At     source.Pos
	Kind   LitKind
	Str    string
	Int    int
	Format []FormatSegment
}

// FormatSegment is a literal run or one pvar inside a string such as
// "$rm from $si:$sp\n". Exactly one of Text or PV is set.
type FormatSegment struct {
	Text string
	PV   *PVar
}

// PVar is a pseudo-variable reference: $rU, $hdr(Via), $(hdr(Via)[1]),
// $avp(x), $var(n), $(rU{s.substr,0,4}{s.tolower}), $param(1).
type PVar struct {
	At source.Pos
	// Name is the class: "rU", "hdr", "avp", "var", "T_reply_code" ...
	Name string
	// Arg is the text inside the parentheses after the name ("Via" in
	// $hdr(Via)), or "" when there are none. ArgPV is set instead when the
	// inner name is itself a pvar ($hdr($var(name))).
	Arg    string
	HasArg bool
	ArgPV  *PVar
	// Index: nil = no index; IndexAll for [*]; otherwise an Expr (int literal,
	// possibly negative, or a pvar).
	Index    Expr
	IndexAll bool
	Trans    []*Transform
}

// Transform is one `{class.name,param,...}` step.
type Transform struct {
	At     source.Pos
	Class  string // "s", "uri", "param", "nameaddr", "via", "re", "csv" ...
	Name   string // "substr", "user", "tolower" ...
	Params []Expr // *Literal or *PVar
}

// Call is a function call `name(args)`, including core functions and xlog.
type Call struct {
	At   source.Pos
	Name string
	Args []Expr
}

// RouteCall is `route(name)` or `route(name, arg, ...)`.
type RouteCall struct {
	At   source.Pos
	Name string
	Args []Expr
}

// Binary operators use OpenSIPS spellings: == != =~ !~ < <= > >= && || + - *
// / % | & ^ << >> and "==" for `uri == myself`.
type Binary struct {
	At source.Pos
	Op string
	X  Expr
	Y  Expr
}

// Unary is ! (logical not), ~ (bitwise not) or - (negation).
type Unary struct {
	At source.Pos
	Op string
	X  Expr
}

// Keyword is a bare legacy operand: myself, method, uri, status, src_ip,
// src_port, dst_ip, dst_port, proto, af, from_uri, to_uri, msg:len.
type Keyword struct {
	At   source.Pos
	Name string
}

func (e *Literal) Pos() source.Pos   { return e.At }
func (e *PVar) Pos() source.Pos      { return e.At }
func (e *Call) Pos() source.Pos      { return e.At }
func (e *RouteCall) Pos() source.Pos { return e.At }
func (e *Binary) Pos() source.Pos    { return e.At }
func (e *Unary) Pos() source.Pos     { return e.At }
func (e *Keyword) Pos() source.Pos   { return e.At }

func (*Literal) exprNode()   {}
func (*PVar) exprNode()      {}
func (*Call) exprNode()      {}
func (*RouteCall) exprNode() {}
func (*Binary) exprNode()    {}
func (*Unary) exprNode()     {}
func (*Keyword) exprNode()   {}
