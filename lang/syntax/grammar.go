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
	Strs []string `parser:"@String+"`
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
	Strs  []string `parser:"| @String+"`
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

// Statement structs capture their first token (lexer.Token) for its
// position instead of using a Pos field: participle fills Pos on every
// attempt, even the failed alternatives of a union, which costs an
// allocation each time on the hottest path.

type gBlock struct {
	Open  lexer.Token `parser:"@'{'"`
	Stmts []gStmt     `parser:"@@* '}'"`
}

type gIf struct {
	Kw   lexer.Token `parser:"@'if'"`
	Cond *gExpr      `parser:"'(' @@ ')'"`
	Then gStmt       `parser:"@@"`
	Else gStmt       `parser:"( 'else' @@ )?"`
}

type gSwitch struct {
	Kw   lexer.Token `parser:"@'switch'"`
	Tag  *gExpr      `parser:"'(' @@ ')' '{'"`
	Arms []*gArm     `parser:"@@* '}'"`
}

type gArm struct {
	Label *gArmLabel `parser:"@@"`
	Body  []gStmt    `parser:"@@*"`
}

type gArmLabel struct {
	Kw    lexer.Token `parser:"( @'default' | @'case'"`
	Value *gCaseVal   `parser:"@@ ) ':'"`
}

type gCaseVal struct {
	Pos  lexer.Position
	Leaf *gLeaf `parser:"@@"`
}

type gWhile struct {
	Kw   lexer.Token `parser:"@'while'"`
	Cond *gExpr      `parser:"'(' @@ ')'"`
	Body gStmt       `parser:"@@"`
}

type gFor struct {
	Kw   lexer.Token `parser:"@'for'"`
	Var  string      `parser:"'(' @PVar"`
	In   string      `parser:"@'in'"`
	Over string      `parser:"@PVar ')'"`
	Body gStmt       `parser:"@@"`
}

type gReturn struct {
	Kw    lexer.Token `parser:"@'return'"`
	Empty string      `parser:"( '(' ( @')'"`
	Paren *gExpr      `parser:"      | @@ ')' )"`
	Value *gExpr      `parser:"| @@ )? ';'"`
}

type gExit struct {
	Kw lexer.Token `parser:"@'exit' ( '(' ')' )? ';'"`
}

type gDrop struct {
	Kw lexer.Token `parser:"@'drop' ( '(' ')' )? ';'"`
}

type gBreak struct {
	Kw lexer.Token `parser:"@'break' ';'"`
}

type gEmpty struct {
	Semi lexer.Token `parser:"@';'"`
}

type gAssign struct {
	Target lexer.Token `parser:"@PVar"`
	Op     string      `parser:"@Assign"`
	Value  *gExpr      `parser:"@@ ';'"`
}

type gCallStmt struct {
	Call *gCall `parser:"@@ ';'"`
}

type gRouteCallStmt struct {
	Call *gRouteCall `parser:"@@ ';'"`
}

type gAsync struct {
	Kw      lexer.Token `parser:"@('async'|'launch') '('"`
	Call    *gCall      `parser:"@@"`
	Resume  *gRouteName `parser:"( ',' @@"`
	Timeout *gIntLit    `parser:"  ( ',' @@ )? )? ')' ';'"`
}

type gAssert struct {
	Kw   lexer.Token `parser:"@'assert'"`
	Cond *gExpr      `parser:"'(' @@ ','"`
	Msg  *gStrLit    `parser:"@@ ')' ';'"`
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
	Name lexer.Token `parser:"@Ident"`
	Args *gArgList   `parser:"@@"`
}

type gArgList struct {
	Slots  []*gArg `parser:"'(' ( @@ ( ',' @@ )* )? ')'"`
	Tokens []lexer.Token
}

// slotPos is the position of the token that starts argument slot k, which
// for an empty slot is the ',' or ')' after it.
func (l *gArgList) slotPos(k int) lexer.Position {
	depth := 0
	slot := 0
	for i := range l.Tokens {
		t := &l.Tokens[i]
		if t.Type == tokPunct {
			switch t.Value {
			case "(", "[":
				depth++
				if depth == 1 {
					if slot == k && i+1 < len(l.Tokens) {
						return l.Tokens[i+1].Pos
					}
					continue
				}
			case ")", "]":
				depth--
			case ",":
				if depth == 1 {
					slot++
					if slot == k && i+1 < len(l.Tokens) {
						return l.Tokens[i+1].Pos
					}
				}
			}
		}
	}
	if len(l.Tokens) > 0 {
		return l.Tokens[0].Pos
	}
	return lexer.Position{}
}

// gArg is a function, route or modparam argument: OpenSIPS accepts strings
// (adjacent ones are folded), numbers, pseudo-variables and NULL; an empty
// slot (f(,"x")) is a NULL argument, as in OpenSIPS's func_param. Bare words
// are captured too so that the few places that allow them (2.x flag names,
// force_send_socket sockets) work and the others get a clear error.
type gArg struct {
	Leaf  *gLeaf     `parser:"( @@"`
	Words *gArgWords `parser:"| @@ )?"`
}

func (a *gArg) empty() bool { return a.Leaf == nil && a.Words == nil }

type gRouteCall struct {
	Kw   lexer.Token `parser:"@'route'"`
	Name *gRouteName `parser:"'(' @@"`
	Args []*gArg     `parser:"( ',' @@ )* ')'"`
}

// ---- expressions ----

type gExpr struct {
	Head *gOperand   `parser:"@@"`
	Tail []*gBinTail `parser:"@@*"`
}

type gBinTail struct {
	Op lexer.Token `parser:"@Op"`
	X  *gOperand   `parser:"@@"`
}

// gPrefixed is a prefix operator (! - ~ not) applied to an operand.
type gPrefixed struct {
	Op lexer.Token `parser:"@Op"`
	X  *gOperand   `parser:"@@"`
}

type gOperand struct {
	Leaf   *gLeaf      `parser:"  @@"`
	Ident  *gIdentOp   `parser:"| @@"`
	Paren  *gExpr      `parser:"| '(' @@ ')'"`
	Route  *gRouteCall `parser:"| @@"`
	Brack  *gExpr      `parser:"| '[' @@ ']'"`
	Prefix *gPrefixed  `parser:"| @@"`
}

// gIdentOp is a function call used as an operand, msg:len, or a bare word
// (a legacy keyword such as myself, method, uri, src_ip).
type gIdentOp struct {
	Name  lexer.Token `parser:"@Ident"`
	Args  *gArgList   `parser:"( @@"`
	Colon string      `parser:"| ':' @Ident )?"`
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
	case first.Type == tokKeyword:
		return participle.NextMatch
	case isPunct(first, ";") || isPunct(first, "{") || isPunct(first, "}"):
		return participle.NextMatch
	}
	w.Toks = append(w.Toks, *lex.Next())
	for {
		t := lex.Peek()
		prev := &w.Toks[len(w.Toks)-1]
		if t.EOF() || t.Pos.Filename != prev.Pos.Filename || t.Pos.Line != endLine(prev) {
			return nil
		}
		if isPunct(t, ";") {
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
	if !(first.Type == tokIdent || first.Type == tokIP || isPunct(first, "*") || isPunct(first, "[")) {
		return participle.NextMatch
	}
	depth := 0
	for {
		t := lex.Peek()
		if t.EOF() {
			return nil
		}
		if t.Type == tokPunct || t.Type == tokOp {
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
		if t.Type == tokKeyword || t.Type == tokString || t.Type == tokAssign {
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

// gLeaf is one literal operand or argument: a pseudo-variable, one or more
// adjacent strings (folded into one, as cfg.y's folded_string), an integer
// with an optional sign, an IP address or network, or NULL. It is a
// token-class matcher: trying these token types as separate grammar
// alternatives costs participle a branch each, on the hottest path.
type gLeaf struct {
	Tok     lexer.Token    // the first token (after the sign)
	Sign    string         // "-" or "+" before an integer
	SignPos lexer.Position // position of Sign
	More    []string       // further adjacent strings
}

func (l *gLeaf) Parse(lex *lexer.PeekingLexer) error {
	t := lex.Peek()
	switch t.Type {
	case tokPVar, tokInt, tokIP, tokNull:
		l.Tok = *lex.Next()
	case tokString:
		l.Tok = *lex.Next()
		for lex.Peek().Type == tokString {
			l.More = append(l.More, lex.Next().Value)
		}
	case tokOp:
		if t.Value != "-" && t.Value != "+" {
			return participle.NextMatch
		}
		cp := lex.MakeCheckpoint()
		l.SignPos = lex.Next().Pos
		if lex.Peek().Type != tokInt {
			lex.LoadCheckpoint(cp)
			return participle.NextMatch
		}
		l.Sign = t.Value
		l.Tok = *lex.Next()
	default:
		return participle.NextMatch
	}
	return nil
}
