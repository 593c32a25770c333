// Package syntax parses OpenSIPS routing scripts (opensips.cfg) into
// lang/ast trees.
//
// The pipeline is: a hand-written scanner (scan.go) turns each file into
// participle tokens; include_file/import_file are spliced in at the token
// level (include.go), as OpenSIPS's preprocessor does textually; the
// participle grammar (grammar.go) parses one top-level item at a time; and
// lower.go turns the grammar structs into ast nodes. Participle stops at the
// first error, so this file drives it item by item and, after an error,
// re-parses the statements of the enclosing blocks one by one to report the
// other errors too.
package syntax

import (
	"errors"
	"fmt"
	"strings"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/source"
)

const (
	maxErrors  = 50  // stop reporting after this many errors
	maxNesting = 200 // deepest bracket / if-else nesting the parser accepts

	maxRecoveryDepth = 8 // nested blocks re-parsed after an error
)

// Parse parses one script. The error, if any, is a sorted source.ErrorList
// whose entries are positioned at the offending token. The returned file
// holds whatever parsed cleanly. include_file/import_file need ParseFile.
func Parse(filename string, src []byte) (*ast.File, error) {
	var errs source.ErrorList
	toks := scan(filename, src, &errs)
	in := &includer{errs: &errs}
	toks = in.splice(toks, filename)
	f := parseTokens(toks, &errs)
	errs.Sort()
	return f, errs.Err()
}

// parseTokens parses a fully expanded token stream (ending in EOF).
func parseTokens(toks []lexer.Token, errs *source.ErrorList) (file *ast.File) {
	file = &ast.File{}
	p := &parser{toks: toks, errs: errs, file: file, lexErrs: len(*errs)}
	defer func() {
		if r := recover(); r != nil {
			at := source.Pos{Line: 1, Col: 1}
			if len(toks) > 0 {
				at = tokPos(toks[0])
			}
			errs.Add(at, "internal parser error: %v", r)
		}
	}()
	for _, e := range (*errs)[:p.lexErrs] {
		if strings.HasPrefix(e.Msg, "unterminated") {
			// the rest of that file was swallowed: anything the parser
			// would say now is a consequence
			return file
		}
	}
	if !p.structure() {
		return file
	}
	p.parsers = getParsers()
	p.run()
	return file
}

type parser struct {
	toks    []lexer.Token
	lex     *lexer.PeekingLexer
	parsers *parsers
	errs    *source.ErrorList
	file    *ast.File
	lexErrs int

	match      []int // for '{' and '}' tokens: index of the partner, else -1
	unbalanced bool  // some brace has no partner
	seen       map[source.Pos]bool
	nerrs      int
	recDepth   int

	// Each top-level item is parsed from its own PeekingLexer over
	// toks[chunk:chunkEnd] (participle copies the tokens it is given into a
	// slice it grows one token at a time, which is costly for a whole file).
	chunk, chunkEnd int
	base            lexer.Checkpoint   // lexer at the chunk's first token
	cps             []lexer.Checkpoint // lexer at each token of the chunk, built on the first recovery
}

func tokPos(t lexer.Token) source.Pos {
	return source.Pos{File: t.Pos.Filename, Line: t.Pos.Line, Col: t.Pos.Column}
}

func (p *parser) errorf(at source.Pos, format string, args ...any) {
	if p.seen == nil {
		p.seen = map[source.Pos]bool{}
	}
	if p.seen[at] {
		return
	}
	p.seen[at] = true
	p.nerrs++
	if p.nerrs == maxErrors+1 {
		p.errs.Add(at, "too many errors")
		return
	}
	if p.nerrs > maxErrors {
		return
	}
	p.errs.Add(at, format, args...)
}

func (p *parser) tooMany() bool { return p.nerrs > maxErrors }

// isPunct reports whether t is the punctuation or operator v (not a string
// or name that happens to spell it).
func isPunct(t *lexer.Token, v string) bool {
	return (t.Type == tokPunct || t.Type == tokOp || t.Type == tokAssign) && t.Value == v
}

// structure matches braces and bounds nesting before participle runs, so
// that brace errors are reported where they are and deeply nested input
// cannot exhaust the stack. It returns false when parsing must not go on.
func (p *parser) structure() bool {
	toks := p.toks
	p.match = make([]int, len(toks))
	var stack []int
	depth := 0
	chain := make([]int, 1, 16) // if/while/else nesting without braces, per brace depth
	for i := range toks {
		p.match[i] = -1
		t := &toks[i]
		switch t.Type {
		case tokPunct:
			switch t.Value {
			case "{":
				stack = append(stack, i)
				chain = append(chain, 0)
			case "}":
				if len(stack) == 0 {
					p.errorf(tokPos(*t), "unexpected '}': no block to close")
					p.unbalanced = true
					continue
				}
				o := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				chain = chain[:len(chain)-1]
				p.match[o], p.match[i] = i, o
				if i+1 < len(toks) && !(toks[i+1].Type == tokKeyword && toks[i+1].Value == "else") {
					chain[len(chain)-1] = 0
				}
			case "(", "[":
				depth++
			case ")", "]":
				if depth > 0 {
					depth--
				}
			case ";":
				chain[len(chain)-1] = 0
			}
		case tokKeyword:
			switch t.Value {
			case "if", "while", "else", "for", "switch":
				chain[len(chain)-1]++
			}
		}
		if len(stack)+depth > maxNesting || chain[len(chain)-1] > maxNesting {
			p.errorf(tokPos(*t), "nesting too deep (more than %d levels)", maxNesting)
			return false
		}
	}
	if len(stack) > 0 {
		eof := tokPos(toks[len(toks)-1])
		for _, o := range stack {
			open := tokPos(toks[o])
			where := fmt.Sprintf("%d:%d", open.Line, open.Col)
			if open.File != eof.File {
				where = open.String()
			}
			p.errs.Add(eof, "missing '}' to close the '{' at %s", where)
		}
		p.unbalanced = true
	}
	return true
}

// run parses the top-level items one at a time.
func (p *parser) run() {
	top := p.parsers.top
	last := len(p.toks) - 1 // EOF
	for i := 0; i < last && !p.tooMany(); {
		end := p.topEnd(i)
		p.openChunk(i, end)
		item, err := top.ParseFromLexer(p.lex)
		if err == nil && item != nil && item.Item != nil {
			p.lowerTop(item.Item)
			i = end
			continue
		}
		if err == nil {
			err = &participle.UnexpectedTokenError{Unexpected: p.toks[i]}
		}
		p.parseError(err, i, ctxTop)
		if p.unbalanced {
			// without a sound block structure, resynchronizing would only
			// produce follow-on errors
			return
		}
		p.recoverTop(i, end)
		i = end
	}
}

// openChunk points p.lex at toks[lo:hi], followed by an EOF token placed
// where the next item starts.
func (p *parser) openChunk(lo, hi int) {
	eof := lexer.Token{Type: lexer.EOF, Pos: p.toks[hi].Pos}
	lex, err := lexer.Upgrade(&sliceLexer{toks: p.toks[lo:hi], eof: eof})
	if err != nil {
		panic(err) // sliceLexer never fails
	}
	p.lex = lex
	p.chunk, p.chunkEnd = lo, hi
	p.base = lex.MakeCheckpoint()
	p.cps = nil
}

// cursor is the index in p.toks of the lexer's next token.
func (p *parser) cursor() int { return p.chunk + p.lex.Cursor() }

// seekTo moves the lexer to token index k of the current chunk. Participle
// leaves the lexer wherever a failed parse stopped, so error recovery needs
// to jump back; the table of checkpoints that allows it is only built when
// that first happens.
func (p *parser) seekTo(k int) {
	if p.cps == nil {
		p.cps = make([]lexer.Checkpoint, p.chunkEnd-p.chunk+1)
		p.lex.LoadCheckpoint(p.base)
		for i := range p.cps {
			p.cps[i] = p.lex.MakeCheckpoint()
			p.lex.Next()
		}
	}
	k -= p.chunk
	if k >= len(p.cps) {
		k = len(p.cps) - 1
	}
	p.lex.LoadCheckpoint(p.cps[k])
}

func (p *parser) isTopStarter(i int) bool {
	t := &p.toks[i]
	switch t.Type {
	case tokKeyword:
		switch t.Value {
		case "route", "branch_route", "failure_route", "onreply_route", "local_route",
			"startup_route", "timer_route", "error_route", "event_route", "loadmodule", "modparam":
			return true
		}
	case tokIdent:
		return i+1 < len(p.toks) && (isPunct(&p.toks[i+1], "=") || isPunct(&p.toks[i+1], "-"))
	}
	return false
}

func (p *parser) isRouteKind(t *lexer.Token) bool {
	return t.Type == tokKeyword && hintMissingBrace(t) != "" && t.Value != "loadmodule" && t.Value != "modparam"
}

// topEnd returns where the top-level item starting at toks[start] ends,
// judged by structure: a route block ends with the '}' matching its '{'
// (and an optional ';'); anything else at the end of its line or at a ';',
// outside brackets.
func (p *parser) topEnd(start int) int {
	toks := p.toks
	last := len(toks) - 1
	route := p.isRouteKind(&toks[start])
	depth := 0
	for i := start; i < last; i++ {
		t := &toks[i]
		if i > start && depth == 0 {
			prev := &toks[i-1]
			newLine := t.Pos.Filename != prev.Pos.Filename || t.Pos.Line != endLine(prev)
			if newLine && (!route || p.isTopStarter(i)) {
				return i
			}
		}
		if t.Type != tokPunct {
			continue
		}
		switch t.Value {
		case "(", "[":
			depth++
		case ")", "]":
			if depth > 0 {
				depth--
			}
		case ";":
			if depth == 0 {
				return i + 1
			}
		case "{":
			if !route {
				depth++
				continue
			}
			m := p.match[i]
			if m < 0 {
				return last
			}
			end := m + 1
			if end < last && isPunct(&toks[end], ";") {
				end++
			}
			return end
		case "}":
			if depth == 0 {
				return i + 1
			}
			depth--
		}
	}
	return last
}

// recoverTop re-parses, statement by statement, the body of a route block
// that failed to parse, to report its other errors.
func (p *parser) recoverTop(start, end int) {
	if !p.isRouteKind(&p.toks[start]) {
		return
	}
	for i := start; i < end; i++ {
		if isPunct(&p.toks[i], "{") {
			if m := p.match[i]; m > i && m < end {
				p.recoverBlock(i+1, m)
			}
			return
		}
	}
}

// recoverBlock parses the items of the block whose contents are
// toks[lo:hi] (toks[hi] is its '}') one by one, reporting each bad one.
func (p *parser) recoverBlock(lo, hi int) {
	// Each level of recovery re-parses what is nested in it; past a few
	// levels that only costs time (quadratic in the nesting).
	if p.recDepth >= maxRecoveryDepth {
		return
	}
	p.recDepth++
	defer func() { p.recDepth-- }()
	rec := p.parsers.rec
	i := lo
	for i < hi && !p.tooMany() {
		p.seekTo(i)
		item, err := rec.ParseFromLexer(p.lex, participle.AllowTrailing(true))
		if err == nil {
			if c := p.cursor(); c > i && c <= hi {
				if item.Stmt != nil {
					p.lowerStmt(item.Stmt) // for its conversion errors only
				}
				i = c
				continue
			}
			err = &participle.UnexpectedTokenError{Unexpected: p.toks[i]}
		}
		e, semi := p.parseError(err, i, ctxStmt)
		if semi && e > i && e < hi && p.flatBetween(i, e) && p.startsStmt(e) {
			i = e // as if the ';' were there
			continue
		}
		end := p.stmtEnd(i, hi)
		p.recoverInner(i, end)
		i = end
	}
}

// recoverInner re-parses the blocks nested directly in toks[lo:hi].
func (p *parser) recoverInner(lo, hi int) {
	for k := lo; k < hi; k++ {
		if isPunct(&p.toks[k], "{") {
			m := p.match[k]
			if m < 0 || m > hi {
				return
			}
			p.recoverBlock(k+1, m)
			k = m
		}
	}
}

// flatBetween reports whether toks[lo:hi] contains no unclosed bracket, i.e.
// toks[hi] is at the statement's own level.
func (p *parser) flatBetween(lo, hi int) bool {
	depth := 0
	for k := lo; k < hi; k++ {
		t := &p.toks[k]
		if t.Type != tokPunct {
			continue
		}
		switch t.Value {
		case "(", "[", "{":
			depth++
		case ")", "]", "}":
			depth--
		}
	}
	return depth == 0
}

func (p *parser) startsStmt(i int) bool {
	t := &p.toks[i]
	switch t.Type {
	case tokIdent, tokPVar:
		return true
	case tokKeyword:
		switch t.Value {
		case "if", "switch", "while", "for", "return", "exit", "drop", "break",
			"route", "async", "launch", "assert", "case", "default":
			return true
		}
	case tokPunct:
		return t.Value == "{" || t.Value == "}"
	}
	return false
}

// stmtEnd returns the index just past the statement starting at toks[lo],
// judged by structure alone: a ';' or a closing '}' at its level, not
// followed by 'else'.
func (p *parser) stmtEnd(lo, hi int) int {
	toks := p.toks
	depth := 0
	for i := lo; i < hi; i++ {
		t := &toks[i]
		switch t.Type {
		case tokKeyword:
			if depth == 0 && i > lo && (t.Value == "case" || t.Value == "default") {
				return i
			}
		case tokPunct:
			switch t.Value {
			case "(", "[":
				depth++
			case ")", "]":
				if depth > 0 {
					depth--
				}
			case ";":
				if depth == 0 && !p.elseAt(i+1) {
					return i + 1
				}
			case "{":
				m := p.match[i]
				if m < 0 || m >= hi {
					return hi
				}
				i = m
				if depth == 0 && !p.elseAt(m+1) {
					return m + 1
				}
			case "}":
				return max(i, lo+1)
			}
		}
	}
	return hi
}

func (p *parser) elseAt(i int) bool {
	return i < len(p.toks) && p.toks[i].Type == tokKeyword && p.toks[i].Value == "else"
}

const (
	ctxTop = iota
	ctxStmt
)

// findTok returns the index of the token at position pos, searching from
// index from.
func (p *parser) findTok(pos lexer.Position, from int) int {
	for i := from; i < len(p.toks); i++ {
		t := &p.toks[i].Pos
		if t.Offset == pos.Offset && t.Filename == pos.Filename {
			return i
		}
	}
	for i := 0; i < from && i < len(p.toks); i++ {
		t := &p.toks[i].Pos
		if t.Offset == pos.Offset && t.Filename == pos.Filename {
			return i
		}
	}
	return from
}

// tokEnd is the position just after token t.
func tokEnd(t *lexer.Token) source.Pos {
	pos := tokPos(*t)
	v := t.Value
	if k := strings.LastIndexByte(v, '\n'); k >= 0 {
		pos.Line += strings.Count(v, "\n")
		pos.Col = len(v) - k
		return pos
	}
	pos.Col += len(v)
	return pos
}

// parseError reports a participle error as a positioned diagnostic and
// returns the index of the offending token and whether the problem is a
// missing ';'.
func (p *parser) parseError(err error, start, ctx int) (int, bool) {
	var perr participle.Error
	if !errors.As(err, &perr) {
		p.errorf(tokPos(p.toks[start]), "%v", err)
		return start, false
	}
	idx := p.findTok(perr.Position(), start)
	tok := &p.toks[idx]
	expected := ""
	msg := perr.Message()
	var ute *participle.UnexpectedTokenError
	if errors.As(err, &ute) {
		if j := strings.Index(msg, " (expected "); j >= 0 {
			expected = friendlyExpected(strings.TrimSuffix(msg[j+len(" (expected "):], ")"))
		}
	} else if !strings.HasPrefix(msg, "unexpected token") {
		p.errorf(tokPos(*tok), "%s", msg)
		return idx, false
	}
	var prev *lexer.Token
	if idx > 0 {
		prev = &p.toks[idx-1]
	}
	what := describe(tok)
	if tok.EOF() && p.unbalanced {
		return idx, false // already reported as a missing '}'
	}
	first := &p.toks[start]
	switch {
	case ctx == ctxTop && first.Type == tokIdent && idx == start+1 && isPunct(tok, "("):
		p.errorf(tokPos(*first), "call of %s() outside of a route block", first.Value)
	case ctx == ctxTop && first.Type == tokIdent && idx <= start+2 && expected == "'='":
		p.errorf(tokPos(*tok), "unexpected %s after %s, expected '=' (core parameters are name = value)", what, first.Value)
	case expected == "a value" && prev != nil:
		p.errorf(tokEnd(prev), "missing value after '='")
	case prev != nil && idx-1 > start && hintMissingBrace(prev) != "" && (isPunct(tok, "[") || isPunct(tok, "{")):
		p.errorf(tokPos(*prev), "%s block inside a route block: is a '}' missing before it?", prev.Value)
	case ctx == ctxStmt && first.Type == tokKeyword && hintMissingBrace(first) != "" && idx == start+1 && (isPunct(tok, "[") || isPunct(tok, "{")):
		p.errorf(tokPos(*first), "%s block inside a route block: is a '}' missing before it?", first.Value)
	case expected == "';'" && prev != nil && idx > start:
		p.errorf(tokEnd(prev), "missing ';' before %s", what)
		return idx, true
	case expected == "'('" && prev != nil && prev.Type == tokIdent && idx > start:
		p.errorf(tokPos(*prev), "bare word %q: function calls need '()'", prev.Value)
	case expected == "'('" && prev != nil && prev.Type == tokKeyword:
		p.errorf(tokPos(*tok), "missing '(' after '%s'", prev.Value)
	case idx == start && ctx == ctxTop && !tok.EOF():
		if isPunct(tok, "}") {
			p.errorf(tokPos(*tok), "unexpected '}'")
		} else {
			p.errorf(tokPos(*tok), "unexpected %s at top level: expected a parameter (name = value), loadmodule, modparam or a route block", what)
		}
	case expected == "" && idx == start:
		p.errorf(tokPos(*tok), "unexpected %s, expected a statement%s", what, hintMissingBrace(tok))
	case prev != nil && prev.Type == tokKeyword && prev.Value == "case" && ctx == ctxStmt:
		p.errorf(tokPos(*tok), "unexpected %s, expected a string or a number after 'case'", what)
	case expected != "":
		p.errorf(tokPos(*tok), "unexpected %s, expected %s%s", what, expected, hintMissingBrace(tok))
	default:
		p.errorf(tokPos(*tok), "unexpected %s%s", what, hintMissingBrace(tok))
	}
	return idx, false
}

func hintMissingBrace(t *lexer.Token) string {
	if t.Type != tokKeyword {
		return ""
	}
	switch t.Value {
	case "route", "branch_route", "failure_route", "onreply_route", "local_route",
		"startup_route", "timer_route", "error_route", "event_route", "loadmodule", "modparam":
		return " (is a '}' missing before it?)"
	}
	return ""
}

func describe(t *lexer.Token) string {
	switch t.Type {
	case lexer.EOF:
		return "end of file"
	case tokPunct, tokKeyword, tokOp, tokAssign, tokNull:
		return "'" + t.Value + "'"
	case tokIdent:
		return "name " + t.Value
	case tokInt:
		return "number " + t.Value
	case tokString:
		v := t.Value
		if len(v) > 24 {
			v = v[:20] + "..."
		}
		return "string " + v
	case tokPVar:
		return "variable " + t.Value
	case tokIP:
		return "address " + t.Value
	}
	return fmt.Sprintf("%q", t.Value)
}

var productionNames = map[string]string{
	"GExpr":      "an expression",
	"GUnary":     "an expression",
	"GOperand":   "an expression",
	"GStmt":      "a statement",
	"GBlock":     "'{'",
	"GArgList":   "'('",
	"GRouteName": "a route name",
	"GStrLit":    "a string",
	"GIntLit":    "a number",
	"GCaseVal":   "a string or a number",
	"GArmLabel":  "'case' or 'default'",
	"GWords":     "a value",
	"GArg":       "an argument",
	"GArgSlot":   "an argument",
	"GCall":      "a function call",
	"GEqual":     "'='",
	"GRouteCall": "route(...)",
}

// friendlyExpected turns participle's EBNF for what it expected into words.
func friendlyExpected(x string) string {
	x = strings.TrimLeft(x, "@(")
	switch {
	case x == "":
		return ""
	case x[0] == '"':
		if j := strings.IndexByte(x[1:], '"'); j >= 0 {
			lit := x[1 : 1+j]
			if strings.Contains(x, `"+="`) {
				return "an assignment operator"
			}
			return "'" + lit + "'"
		}
	case x[0] == '<':
		switch {
		case strings.HasPrefix(x, "<ident>"):
			return "a name"
		case strings.HasPrefix(x, "<int>"):
			return "a number"
		case strings.HasPrefix(x, "<string>"):
			return "a string"
		case strings.HasPrefix(x, "<assign>"):
			return "an assignment operator"
		case strings.HasPrefix(x, "<op>"):
			return "an operator"
		case strings.HasPrefix(x, "<pvar>"):
			return "a pseudo-variable"
		}
	}
	name := x
	if j := strings.IndexAny(name, " =.\n*+?)|"); j >= 0 {
		name = name[:j]
	}
	if strings.HasPrefix(name, "g") {
		name = "G" + name[1:]
	}
	if f, ok := productionNames[name]; ok {
		return f
	}
	return ""
}
