package syntax

import (
	"sync"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
)

// The participle grammar. These g* structs never leave the package: lower.go
// turns them into lang/ast nodes. Expressions are parsed flat (operand
// (op operand)*) and given OpenSIPS's precedence in lower.go, which is both
// faster than one struct level per precedence and lets the chained
// comparison check report at the operator.

// ---- top level ----

type gTopItem struct {
	Item gTop `parser:"@@"`
}

type gTop interface{ isTop() }

type gGlobal struct {
	Pos   lexer.Position
	Name  []string `parser:"@Ident ( '-' @Ident )*"`
	Eq    *gEqual  `parser:"@@"`
	Value *gWords  `parser:"@@ ';'?"`
}

type gEqual struct {
	Pos lexer.Position
	Op  string `parser:"@'='"`
}

type gLoadModule struct {
	Pos  lexer.Position
	Path *gStrLit `parser:"'loadmodule' @@ ';'?"`
}

type gModParam struct {
	Pos    lexer.Position
	Module *gStrLit `parser:"'modparam' '(' @@"`
	Param  *gStrLit `parser:"',' @@"`
	Value  *gArg    `parser:"',' @@ ')' ';'?"`
}

type gRouteDecl struct {
	Pos  lexer.Position
	Kind string      `parser:"@('route'|'branch_route'|'failure_route'|'onreply_route'|'local_route'|'startup_route'|'timer_route'|'error_route'|'event_route')"`
	Name *gRouteName `parser:"( '[' @@"`
	Int  *gIntLit    `parser:"  ( ',' ( @@"`
	Mode string      `parser:"        | @('async'|'sync') ) )? ']' )?"`
	Body *gBlock     `parser:"@@ ';'?"`
}

type gTopEmpty struct {
	Semi string `parser:"@';'"`
}

func (*gGlobal) isTop()     {}
func (*gLoadModule) isTop() {}
func (*gModParam) isTop()   {}
func (*gRouteDecl) isTop()  {}
func (*gTopEmpty) isTop()   {}

// ---- literals and names ----

type gStrLit struct {
	Pos  lexer.Position
	Strs []string `parser:"@(String|SQString)+"`
}

type gIntLit struct {
	Pos  lexer.Position
	Sign string `parser:"@('-'|'+')?"`
	Int  string `parser:"@Int"`
}

type gRouteName struct {
	Pos   lexer.Position
	Ident string   `parser:"  @Ident"`
	Int   string   `parser:"| @Int"`
	Strs  []string `parser:"| @(String|SQString)+"`
	PV    string   `parser:"| @PVar"`
}

// ---- statements ----

type gStmtItem struct {
	Stmt gStmt `parser:"@@"`
}

// gRecItem is what error recovery parses inside a block: a statement, or a
// switch arm label.
type gRecItem struct {
	Label *gArmLabel `parser:"  @@"`
	Stmt  gStmt      `parser:"| @@"`
}

type gStmt interface{ isStmt() }

type gBlock struct {
	Pos   lexer.Position
	Stmts []gStmt `parser:"'{' @@* '}'"`
}

type gIf struct {
	Pos  lexer.Position
	Cond *gExpr `parser:"'if' '(' @@ ')'"`
	Then gStmt  `parser:"@@"`
	Else gStmt  `parser:"( 'else' @@ )?"`
}

type gSwitch struct {
	Pos  lexer.Position
	Tag  *gExpr  `parser:"'switch' '(' @@ ')' '{'"`
	Arms []*gArm `parser:"@@* '}'"`
}

type gArm struct {
	Pos   lexer.Position
	Label *gArmLabel `parser:"@@"`
	Body  []gStmt    `parser:"@@*"`
}

type gArmLabel struct {
	Pos     lexer.Position
	Default string   `parser:"( @'default'"`
	Value   *gCaseVal `parser:"| 'case' @@ ) ':'"`
}

type gCaseVal struct {
	Pos  lexer.Position
	Strs []string `parser:"  @(String|SQString)+"`
	Sign string   `parser:"| ( @('-'|'+')?"`
	Int  string   `parser:"    @Int )"`
}

type gWhile struct {
	Pos  lexer.Position
	Cond *gExpr `parser:"'while' '(' @@ ')'"`
	Body gStmt  `parser:"@@"`
}

type gFor struct {
	Pos  lexer.Position
	Var  string `parser:"'for' '(' @PVar"`
	In   string `parser:"@'in'"`
	Over string `parser:"@PVar ')'"`
	Body gStmt  `parser:"@@"`
}

type gReturn struct {
	Pos   lexer.Position
	Empty string `parser:"'return' ( '(' ( @')'"`
	Paren *gExpr `parser:"                | @@ ')' )"`
	Value *gExpr `parser:"          | @@ )? ';'"`
}

type gExit struct {
	Pos lexer.Position
	Kw  string `parser:"@'exit' ( '(' ')' )? ';'"`
}

type gDrop struct {
	Pos lexer.Position
	Kw  string `parser:"@'drop' ( '(' ')' )? ';'"`
}

type gBreak struct {
	Pos lexer.Position
	Kw  string `parser:"@'break' ';'"`
}

type gEmpty struct {
	Pos  lexer.Position
	Semi string `parser:"@';'"`
}

type gAssign struct {
	Pos    lexer.Position
	Target string `parser:"@PVar"`
	Op     string `parser:"@('='|'+='|'-='|'*='|'/='|'%='|'|='|'&='|'^='|':=')"`
	Value  *gExpr `parser:"@@ ';'"`
}

type gCallStmt struct {
	Pos  lexer.Position
	Call *gCall `parser:"@@ ';'"`
}

type gRouteCallStmt struct {
	Pos  lexer.Position
	Call *gRouteCall `parser:"@@ ';'"`
}

type gAsync struct {
	Pos     lexer.Position
	Kind    string      `parser:"@('async'|'launch') '('"`
	Call    *gCall      `parser:"@@"`
	Resume  *gRouteName `parser:"( ',' @@"`
	Timeout *gIntLit    `parser:"  ( ',' @@ )? )? ')' ';'"`
}

type gAssert struct {
	Pos  lexer.Position
	Cond *gExpr   `parser:"'assert' '(' @@ ','"`
	Msg  *gStrLit `parser:"@@ ')' ';'"`
}

func (*gBlock) isStmt()         {}
func (*gIf) isStmt()            {}
func (*gSwitch) isStmt()        {}
func (*gWhile) isStmt()         {}
func (*gFor) isStmt()           {}
func (*gReturn) isStmt()        {}
func (*gExit) isStmt()          {}
func (*gDrop) isStmt()          {}
func (*gBreak) isStmt()         {}
func (*gEmpty) isStmt()         {}
func (*gAssign) isStmt()        {}
func (*gCallStmt) isStmt()      {}
func (*gRouteCallStmt) isStmt() {}
func (*gAsync) isStmt()         {}
func (*gAssert) isStmt()        {}

// ---- calls and arguments ----

type gCall struct {
	Pos  lexer.Position
	Name string    `parser:"@Ident"`
	Args *gArgList `parser:"@@"`
}

type gArgList struct {
	Pos   lexer.Position
	Slots []*gArgSlot `parser:"'(' ( @@ ( ',' @@ )* )? ')'"`
}

// gArgSlot is one argument position; an empty slot (f(,"x")) is a NULL
// argument, as in OpenSIPS's func_param.
type gArgSlot struct {
	Pos lexer.Position
	Arg *gArg `parser:"@@?"`
}

// gArg is a function, route or modparam argument: OpenSIPS accepts strings
// (adjacent ones are folded), numbers, pseudo-variables and NULL. Bare words
// are captured too so that the few places that allow them (2.x flag names,
// force_send_socket sockets) work and the others get a clear error.
type gArg struct {
	Pos   lexer.Position
	Strs  []string   `parser:"  @(String|SQString)+"`
	Sign  string     `parser:"| ( @('-'|'+')?"`
	Int   string     `parser:"    @Int )"`
	PV    string     `parser:"| @PVar"`
	Null  string     `parser:"| @('NULL'|'null')"`
	Words *gArgWords `parser:"| @@"`
}

type gRouteCall struct {
	Pos  lexer.Position
	Name *gRouteName `parser:"'route' '(' @@"`
	Args []*gArg     `parser:"( ',' @@ )* ')'"`
}

// ---- expressions ----

type gExpr struct {
	Pos  lexer.Position
	Head *gUnary     `parser:"@@"`
	Tail []*gBinTail `parser:"@@*"`
}

type gBinTail struct {
	Pos lexer.Position
	Op  string  `parser:"@('||'|'or'|'&&'|'and'|'=='|'!='|'=~'|'!~'|'<='|'>='|'<'|'>'|'<<'|'>>'|'|'|'&'|'^'|'+'|'-'|'*'|'/'|'%')"`
	X   *gUnary `parser:"@@"`
}

type gUnary struct {
	Pos lexer.Position
	Ops []*gPrefix `parser:"@@*"`
	X   *gOperand  `parser:"@@"`
}

type gPrefix struct {
	Pos lexer.Position
	Op  string `parser:"@('!'|'not'|'-'|'~')"`
}

type gOperand struct {
	Pos   lexer.Position
	PV    string      `parser:"  @PVar"`
	Strs  []string    `parser:"| @(String|SQString)+"`
	Int   string      `parser:"| @Int"`
	IP    string      `parser:"| @IP"`
	Null  string      `parser:"| @('NULL'|'null')"`
	Route *gRouteCall `parser:"| @@"`
	Ident *gIdentOp   `parser:"| @@"`
	Paren *gExpr      `parser:"| '(' @@ ')'"`
	Brack *gExpr      `parser:"| '[' @@ ']'"`
}

// gIdentOp is a function call used as an operand, msg:len, or a bare word
// (a legacy keyword such as myself, method, uri, src_ip).
type gIdentOp struct {
	Pos   lexer.Position
	Name  string    `parser:"@Ident"`
	Args  *gArgList `parser:"( @@"`
	Colon string    `parser:"| ':' @Ident )?"`
}

// ---- parsers ----

type parsers struct {
	top  *participle.Parser[gTopItem]
	stmt *participle.Parser[gStmtItem]
	rec  *participle.Parser[gRecItem]
}

var (
	parsersOnce sync.Once
	theParsers  parsers
)

func grammarOptions() []participle.Option {
	return []participle.Option{
		participle.Lexer(tokenDef{}),
		participle.Union[gTop](&gRouteDecl{}, &gLoadModule{}, &gModParam{}, &gGlobal{}, &gTopEmpty{}),
		participle.Union[gStmt](&gCallStmt{}, &gIf{}, &gAssign{}, &gRouteCallStmt{}, &gReturn{},
			&gExit{}, &gBlock{}, &gSwitch{}, &gWhile{}, &gDrop{}, &gBreak{}, &gEmpty{},
			&gAsync{}, &gFor{}, &gAssert{}),
		participle.UseLookahead(0),
	}
}

func getParsers() *parsers {
	parsersOnce.Do(func() {
		theParsers.top = participle.MustBuild[gTopItem](grammarOptions()...)
		theParsers.stmt = participle.MustBuild[gStmtItem](grammarOptions()...)
		theParsers.rec = participle.MustBuild[gRecItem](grammarOptions()...)
	})
	return &theParsers
}

// ---- raw word lists (hand-parsed productions) ----

// gWords is the value of a core parameter: every token up to the end of the
// line (or a ';'). A single string, number or yes/no word becomes a literal;
// anything else, such as `udp:127.0.0.1:5060 as 1.2.3.4:5060`, is kept as
// raw text.
type gWords struct {
	Toks []lexer.Token
}

func (w *gWords) Parse(lex *lexer.PeekingLexer) error {
	first := lex.Peek()
	switch {
	case first.EOF():
		return participle.NextMatch
	case first.Type == tokKeyword && first.Value != "NULL" && first.Value != "null":
		return participle.NextMatch
	case first.Type == tokPunct && (first.Value == ";" || first.Value == "{" || first.Value == "}"):
		return participle.NextMatch
	}
	w.Toks = append(w.Toks, *lex.Next())
	for {
		t := lex.Peek()
		prev := &w.Toks[len(w.Toks)-1]
		if t.EOF() || t.Pos.Filename != prev.Pos.Filename || t.Pos.Line != endLine(prev) {
			return nil
		}
		if t.Type == tokPunct && t.Value == ";" {
			return nil
		}
		w.Toks = append(w.Toks, *lex.Next())
	}
}

// gArgWords is a bare-word argument such as a 2.x flag name (setflag(NAT))
// or a socket (force_send_socket(udp:1.2.3.4:5060)): tokens up to the next
// ',' or ')' outside parentheses.
type gArgWords struct {
	Toks []lexer.Token
}

func (w *gArgWords) Parse(lex *lexer.PeekingLexer) error {
	first := lex.Peek()
	if !(first.Type == tokIdent || first.Type == tokIP || first.Type == tokPunct && (first.Value == "*" || first.Value == "[")) {
		return participle.NextMatch
	}
	depth := 0
	for {
		t := lex.Peek()
		if t.EOF() {
			return nil
		}
		if t.Type == tokPunct {
			switch t.Value {
			case "(", "[":
				depth++
			case ")", "]":
				if depth == 0 {
					return nil
				}
				depth--
			case ",":
				if depth == 0 {
					return nil
				}
			case ";", "{", "}":
				return nil
			}
		}
		if t.Type == tokKeyword || t.Type == tokString || t.Type == tokSQString {
			return nil
		}
		w.Toks = append(w.Toks, *lex.Next())
	}
}

// endLine is the line on which token t ends (strings may span lines).
func endLine(t *lexer.Token) int {
	n := t.Pos.Line
	for i := 0; i < len(t.Value); i++ {
		if t.Value[i] == '\n' {
			n++
		}
	}
	return n
}

// rawText joins tokens as written: adjacent tokens stay glued, tokens
// separated by blanks get one space.
func rawText(toks []lexer.Token) string {
	n := 0
	for _, t := range toks {
		n += len(t.Value) + 1
	}
	b := make([]byte, 0, n)
	for i, t := range toks {
		if i > 0 {
			prev := toks[i-1]
			if prev.Pos.Offset+len(prev.Value) != t.Pos.Offset || prev.Pos.Filename != t.Pos.Filename {
				b = append(b, ' ')
			}
		}
		b = append(b, t.Value...)
	}
	return string(b)
}
