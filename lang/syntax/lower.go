package syntax

import (
	"path"
	"strconv"
	"strings"

	"github.com/alecthomas/participle/v2/lexer"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/source"
)

func lpos(p lexer.Position) source.Pos {
	return source.Pos{File: p.Filename, Line: p.Line, Col: p.Column}
}

var routeKinds = map[string]ast.RouteKind{
	"route":         ast.RequestRoute,
	"branch_route":  ast.BranchRoute,
	"failure_route": ast.FailureRoute,
	"onreply_route": ast.OnReplyRoute,
	"local_route":   ast.LocalRoute,
	"startup_route": ast.StartupRoute,
	"timer_route":   ast.TimerRoute,
	"error_route":   ast.ErrorRoute,
	"event_route":   ast.EventRoute,
}

// legacyKeywords are the bare operands of OpenSIPS 1.x/2.x conditions.
var legacyKeywords = map[string]bool{
	"myself": true, "method": true, "uri": true, "status": true,
	"src_ip": true, "src_port": true, "dst_ip": true, "dst_port": true,
	"proto": true, "af": true, "from_uri": true, "to_uri": true,
}

// boolWords are cfg.lex's YES/NO spellings, which it turns into 1 and 0.
var boolWords = map[string]int{
	"yes": 1, "true": 1, "on": 1, "enable": 1,
	"no": 0, "false": 0, "off": 0, "disable": 0,
}

// bareWordFuncs may take unquoted words: flag names in OpenSIPS 2.x
// (setflag(NAT_FLAG)) and the socket of force_send_socket(udp:1.2.3.4:5060).
var bareWordFuncs = map[string]bool{
	"setflag": true, "resetflag": true, "isflagset": true,
	"setbflag": true, "resetbflag": true, "isbflagset": true,
	"setbranchflag": true, "resetbranchflag": true, "isbranchflagset": true,
	"setsflag": true, "resetsflag": true, "issflagset": true,
	"setscriptflag": true, "resetscriptflag": true, "isscriptflagset": true,
	"force_send_socket": true,
}

// ---- top level ----

func (p *parser) lowerTop(item gTop) {
	switch it := item.(type) {
	case *gGlobal:
		p.lowerGlobal(it)
	case *gLoadModule:
		lm := &ast.LoadModule{At: lpos(it.Pos), Path: p.strLit(it.Path)}
		name := path.Base(lm.Path)
		name = strings.TrimSuffix(name, ".so")
		lm.Name = name
		if lm.Path == "" {
			p.errorf(lpos(it.Path.Pos), "loadmodule needs a module file name")
		}
		p.file.Modules = append(p.file.Modules, lm)
	case *gModParam:
		mp := &ast.ModParam{At: lpos(it.Pos), Module: p.strLit(it.Module), Param: p.strLit(it.Param)}
		mp.Value = p.modParamValue(it.Value, mp.At)
		p.file.Params = append(p.file.Params, mp)
	case *gRouteDecl:
		if r := p.lowerRoute(it); r != nil {
			p.file.Routes = append(p.file.Routes, r)
		}
	case *gTopEmpty:
	}
}

func (p *parser) lowerGlobal(g *gGlobal) {
	gl := &ast.Global{At: lpos(g.Pos), Name: strings.Join(g.Name, "-")}
	toks := g.Value.Toks
	if toks[0].Pos.Filename == g.Eq.Pos.Filename && toks[0].Pos.Line != g.Eq.Pos.Line {
		p.errorf(tokEnd(&lexer.Token{Value: "=", Pos: g.Eq.Pos}), "missing value for %s", gl.Name)
		return
	}
	t := &toks[0]
	switch {
	case len(toks) == 1 && t.Type == tokString:
		gl.Value = &ast.Literal{At: lpos(t.Pos), Kind: ast.StringLit, Str: unquote(t.Value)}
	case len(toks) == 1 && t.Type == tokInt:
		gl.Value = p.intLit(t.Pos, "", t.Value)
	case len(toks) == 2 && (t.Value == "-" || t.Value == "+") && t.Type == tokOp && toks[1].Type == tokInt:
		gl.Value = p.intLit(t.Pos, t.Value, toks[1].Value)
	case len(toks) == 1 && t.Type == tokIdent && hasBoolWord(t.Value):
		gl.Value = &ast.Literal{At: lpos(t.Pos), Kind: ast.IntLit, Int: boolWords[t.Value]}
		gl.Words = t.Value
	case len(toks) == 1 && t.Type == tokNull:
		gl.Value = &ast.Literal{At: lpos(t.Pos), Kind: ast.NullLit}
	default:
		for i := range toks {
			if toks[i].Type == tokPVar {
				p.errorf(lpos(toks[i].Pos), "unexpected variable %s in the value of %s", toks[i].Value, gl.Name)
				return
			}
		}
		gl.Words = rawText(toks)
	}
	p.file.Globals = append(p.file.Globals, gl)
}

func hasBoolWord(w string) bool {
	_, ok := boolWords[w]
	return ok
}

func (p *parser) modParamValue(a *gArg, at source.Pos) *ast.Literal {
	switch {
	case a.Leaf != nil && (a.Leaf.Tok.Type == tokString || a.Leaf.Tok.Type == tokInt):
		return p.leaf(a.Leaf).(*ast.Literal)
	case a.Words != nil && len(a.Words.Toks) == 1 && hasBoolWord(a.Words.Toks[0].Value):
		return &ast.Literal{At: tokPos(a.Words.Toks[0]), Kind: ast.IntLit, Int: boolWords[a.Words.Toks[0].Value]}
	}
	at = argPos(a, at)
	p.errorf(at, "modparam value must be a string or a number")
	return &ast.Literal{At: at, Kind: ast.StringLit}
}

func (p *parser) lowerRoute(d *gRouteDecl) *ast.Route {
	kind := routeKinds[d.Kind]
	r := &ast.Route{At: lpos(d.Pos), Kind: kind}
	at := r.At
	ok := true
	if d.Name != nil {
		switch {
		case d.Name.PV != "":
			p.errorf(lpos(d.Name.Pos), "a route name cannot be a variable")
			ok = false
		case d.Name.Int != "":
			r.Name = d.Name.Int
			if kind == ast.RequestRoute {
				if v, err := strconv.Atoi(d.Name.Int); err == nil && v == 0 {
					r.Name = "" // route[0] is the main route (cfg.y)
				}
			}
		case d.Name.Strs != nil:
			r.Name = joinStrings(d.Name.Strs)
			if r.Name == "" {
				p.errorf(lpos(d.Name.Pos), "empty route name")
				ok = false
			}
		default:
			r.Name = d.Name.Ident
		}
	}
	switch kind {
	case ast.BranchRoute, ast.FailureRoute, ast.EventRoute, ast.TimerRoute:
		if d.Name == nil {
			p.errorf(at, "%s needs a name: %s[name]", d.Kind, d.Kind)
			ok = false
		}
	case ast.LocalRoute, ast.StartupRoute, ast.ErrorRoute:
		if d.Name != nil {
			p.errorf(lpos(d.Name.Pos), "%s takes no name", d.Kind)
			ok = false
		}
	}
	if kind == ast.TimerRoute {
		if d.Int == nil {
			if d.Name != nil {
				p.errorf(at, "timer_route needs an interval: timer_route[%s, seconds]", r.Name)
			}
			ok = false
		} else {
			v := p.intLit(d.Int.Pos, d.Int.Sign, d.Int.Int)
			if v.Int <= 0 {
				p.errorf(lpos(d.Int.Pos), "timer_route interval must be positive")
				ok = false
			}
			r.Interval = v.Int
		}
	} else if d.Int != nil {
		p.errorf(lpos(d.Int.Pos), "only timer_route takes an interval")
		ok = false
	}
	if d.Mode != "" && kind != ast.EventRoute {
		p.errorf(at, "only event_route takes a %s mode", d.Mode)
		ok = false
	}
	r.Body = p.lowerBlock(d.Body)
	if !ok {
		return nil
	}
	return r
}

// ---- statements ----

func (p *parser) lowerBlock(b *gBlock) *ast.Block {
	blk := &ast.Block{At: tokPos(b.Open)}
	blk.Stmts = p.lowerStmts(b.Stmts)
	return blk
}

func (p *parser) lowerStmts(list []gStmt) []ast.Stmt {
	var out []ast.Stmt
	for _, s := range list {
		if st := p.lowerStmt(s); st != nil {
			out = append(out, st)
		}
	}
	return out
}

// asBlock makes the body of an if/else/while a block.
func (p *parser) asBlock(s gStmt) *ast.Block {
	st := p.lowerStmt(s)
	switch st := st.(type) {
	case *ast.Block:
		return st
	case nil:
		return &ast.Block{At: gStmtPos(s)}
	default:
		return &ast.Block{At: st.Pos(), Stmts: []ast.Stmt{st}}
	}
}

func gStmtPos(s gStmt) source.Pos {
	switch s := s.(type) {
	case *gEmpty:
		return tokPos(s.Semi)
	case *gBlock:
		return tokPos(s.Open)
	case *gFor:
		return tokPos(s.Kw)
	}
	return source.Pos{}
}

func (p *parser) lowerStmt(s gStmt) ast.Stmt {
	switch s := s.(type) {
	case *gBlock:
		return p.lowerBlock(s)
	case *gIf:
		st := &ast.If{At: tokPos(s.Kw), Cond: p.lowerExpr(s.Cond), Then: p.asBlock(s.Then)}
		switch e := s.Else.(type) {
		case nil:
		case *gIf:
			st.Else = p.lowerStmt(e)
		default:
			st.Else = p.asBlock(e)
		}
		return st
	case *gSwitch:
		st := &ast.Switch{At: tokPos(s.Kw), Tag: p.lowerExpr(s.Tag)}
		hasDefault := false
		for _, arm := range s.Arms {
			c := &ast.Case{At: tokPos(arm.Label.Kw)}
			if arm.Label.Value != nil {
				c.Value = p.caseValue(arm.Label.Value)
			} else {
				if hasDefault {
					p.errorf(c.At, "more than one default in switch")
				}
				hasDefault = true
			}
			c.Body = p.lowerStmts(arm.Body)
			st.Cases = append(st.Cases, c)
		}
		return st
	case *gWhile:
		return &ast.While{At: tokPos(s.Kw), Cond: p.lowerExpr(s.Cond), Body: p.asBlock(s.Body)}
	case *gFor:
		return &ast.For{At: tokPos(s.Kw), Var: p.pvar(s.Kw.Pos, s.Var), Over: p.pvar(s.Kw.Pos, s.Over), Body: p.asBlock(s.Body)}
	case *gReturn:
		st := &ast.Return{At: tokPos(s.Kw)}
		if s.Paren != nil {
			st.Value = p.lowerExpr(s.Paren)
		} else if s.Value != nil {
			st.Value = p.lowerExpr(s.Value)
		}
		return st
	case *gExit:
		return &ast.Exit{At: tokPos(s.Kw)}
	case *gDrop:
		return &ast.Drop{At: tokPos(s.Kw)}
	case *gBreak:
		return &ast.Break{At: tokPos(s.Kw)}
	case *gEmpty:
		return nil
	case *gAssign:
		target := p.pvar(s.Target.Pos, s.Target.Value)
		if len(target.Trans) > 0 {
			p.errorf(target.At, "transformations are not allowed on the left side of an assignment")
		}
		return &ast.Assign{At: tokPos(s.Target), Target: target, Op: s.Op, Value: p.lowerExpr(s.Value)}
	case *gCallStmt:
		return &ast.ExprStmt{At: tokPos(s.Call.Name), X: p.lowerCall(s.Call)}
	case *gRouteCallStmt:
		return &ast.ExprStmt{At: tokPos(s.Call.Kw), X: p.lowerRouteCall(s.Call)}
	case *gAsync:
		st := &ast.Async{At: tokPos(s.Kw), Launch: s.Kw.Value == "launch", Call: p.lowerCall(s.Call)}
		if s.Resume != nil {
			st.Resume = p.routeName(s.Resume)
			if s.Resume.PV != "" {
				p.errorf(lpos(s.Resume.Pos), "the resume route of %s() cannot be a variable", s.Kw.Value)
			}
		} else if !st.Launch {
			p.errorf(st.At, "async() needs a resume route: async(%s(...), route_name)", s.Call.Name.Value)
		}
		if s.Timeout != nil {
			p.errorf(lpos(s.Timeout.Pos), "the async timeout argument is not supported")
		}
		return st
	case *gAssert:
		msg := &ast.Literal{At: lpos(s.Msg.Pos), Kind: ast.StringLit, Str: p.strLit(s.Msg)}
		call := &ast.Call{At: tokPos(s.Kw), Name: "assert", Args: []ast.Expr{p.lowerExpr(s.Cond), msg}}
		return &ast.ExprStmt{At: call.At, X: call}
	}
	return nil
}

func (p *parser) caseValue(v *gCaseVal) ast.Expr {
	x := p.leaf(v.Leaf)
	if t := v.Leaf.Tok.Type; t != tokString && t != tokInt {
		p.errorf(x.Pos(), "a case value must be a string or a number")
	}
	return x
}

// ---- calls ----

func (p *parser) lowerCall(c *gCall) *ast.Call {
	call := &ast.Call{At: tokPos(c.Name), Name: c.Name.Value}
	call.Args = p.lowerArgs(call.Name, call.At, c.Args)
	return call
}

func (p *parser) lowerArgs(fn string, at source.Pos, l *gArgList) []ast.Expr {
	if len(l.Slots) == 1 && l.Slots[0].empty() {
		return nil
	}
	args := make([]ast.Expr, 0, len(l.Slots))
	for k, a := range l.Slots {
		slotAt := at
		if a.empty() {
			slotAt = lpos(l.slotPos(k))
		}
		args = append(args, p.lowerArg(fn, slotAt, a))
	}
	return args
}

// leaf converts a literal operand or argument.
func (p *parser) leaf(l *gLeaf) ast.Expr {
	t := &l.Tok
	at := lpos(t.Pos)
	switch t.Type {
	case tokPVar:
		return p.pvar(t.Pos, t.Value)
	case tokString:
		str := unquote(t.Value)
		for _, m := range l.More {
			str += unquote(m)
		}
		return &ast.Literal{At: at, Kind: ast.StringLit, Str: str}
	case tokInt:
		lit := p.intLit(t.Pos, l.Sign, t.Value)
		if l.Sign != "" {
			lit.At = lpos(l.SignPos) // at the sign, as for a folded unary minus
		}
		return lit
	case tokIP:
		return &ast.Literal{At: at, Kind: ast.StringLit, Str: t.Value}
	}
	return &ast.Literal{At: at, Kind: ast.NullLit}
}

// argPos is the position of an argument; an empty one (f(,"x")) has none of
// its own and gets at.
func argPos(a *gArg, at source.Pos) source.Pos {
	switch {
	case a.Leaf != nil && a.Leaf.Sign != "":
		return lpos(a.Leaf.SignPos)
	case a.Leaf != nil:
		return tokPos(a.Leaf.Tok)
	case a.Words != nil:
		return tokPos(a.Words.Toks[0])
	}
	return at
}

func (p *parser) lowerArg(fn string, at source.Pos, a *gArg) ast.Expr {
	switch {
	case a.Leaf != nil:
		if a.Leaf.Tok.Type == tokIP {
			p.errorf(argPos(a, at), "an address as an argument of %s() must be quoted", fn)
		}
		return p.leaf(a.Leaf)
	case a.Words != nil:
		raw := rawText(a.Words.Toks)
		if !bareWordFuncs[fn] {
			p.errorf(argPos(a, at), "bare word %q as an argument of %s(): quote it", raw, fn)
		}
		return &ast.Literal{At: argPos(a, at), Kind: ast.StringLit, Str: raw}
	}
	return &ast.Literal{At: at, Kind: ast.NullLit}
}

func (p *parser) routeName(n *gRouteName) string {
	switch {
	case n.Ident != "":
		return n.Ident
	case n.Int != "":
		return n.Int
	case n.Strs != nil:
		return joinStrings(n.Strs)
	case n.PV != "":
		pv := p.pvar(n.Pos, n.PV)
		return pv.String()
	}
	return ""
}

func (p *parser) lowerRouteCall(c *gRouteCall) *ast.RouteCall {
	rc := &ast.RouteCall{At: tokPos(c.Kw), Name: p.routeName(c.Name)}
	if rc.Name == "" {
		p.errorf(lpos(c.Name.Pos), "empty route name")
	}
	for _, a := range c.Args {
		if a.empty() {
			p.errorf(rc.At, "missing route argument")
		}
		rc.Args = append(rc.Args, p.lowerArg("route", rc.At, a))
	}
	return rc
}

// ---- leaves ----

func joinStrings(raws []string) string {
	if len(raws) == 1 {
		return unquote(raws[0])
	}
	var b strings.Builder
	for _, r := range raws {
		b.WriteString(unquote(r))
	}
	return b.String()
}

func (p *parser) strLit(s *gStrLit) string { return joinStrings(s.Strs) }

// intLit converts decimal, 0x hexadecimal and 0-prefixed octal numbers, as
// cfg.lex does.
func (p *parser) intLit(at lexer.Position, sign, digits string) *ast.Literal {
	lit := &ast.Literal{At: lpos(at), Kind: ast.IntLit}
	var v int64
	var err error
	switch {
	case len(digits) > 2 && (digits[:2] == "0x" || digits[:2] == "0X"):
		v, err = strconv.ParseInt(digits[2:], 16, 64)
	case len(digits) > 1 && digits[0] == '0':
		v, err = strconv.ParseInt(digits[1:], 8, 64)
	default:
		v, err = strconv.ParseInt(digits, 10, 64)
	}
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			p.errorf(lit.At, "number %s out of range", digits)
		} else {
			p.errorf(lit.At, "invalid number %q", digits)
		}
		return lit
	}
	if sign == "-" {
		v = -v
	}
	lit.Int = int(v)
	return lit
}

// pvar converts a PVar token.
func (p *parser) pvar(at lexer.Position, text string) *ast.PVar {
	pos := lpos(at)
	pv, n, err := ParsePVar(text, pos)
	if err != nil {
		if el, ok := err.(source.ErrorList); ok && len(el) > 0 {
			p.errorf(el[0].Pos, "%s", el[0].Msg)
		} else {
			p.errorf(pos, "%v", err)
		}
		return &ast.PVar{At: pos, Name: "?"}
	}
	if n < len(text) {
		bad := pos
		bad.Col += n
		what := "an index"
		if text[n] == '{' {
			what = "a transformation"
		}
		p.errorf(bad, "%s needs the parenthesized form: $(%s%s)", what, text[1:n], text[n:])
	}
	return pv
}

// ---- expressions ----

// Precedence, from OpenSIPS's cfg.y: && and || share the lowest level and
// associate left (a || b && c is (a || b) && c); then '!'; the comparisons,
// which do not chain; the bitwise operators | & ^ << >>, all on one level;
// the arithmetic operators + - * / %, all on one level (so 1 + 2 * 3 is 9,
// as in OpenSIPS); and the unary - and ~.
const (
	precLogic = 1
	precNot   = 2
	precCmp   = 3
	precBit   = 4
	precArith = 5
)

func binPrec(op string) int {
	switch op {
	case "||", "&&", "or", "and":
		return precLogic
	case "==", "!=", "=~", "!~", "<", "<=", ">", ">=":
		return precCmp
	case "|", "&", "^", "<<", ">>":
		return precBit
	}
	return precArith
}

func normOp(op string) string {
	switch op {
	case "or":
		return "||"
	case "and":
		return "&&"
	case "not":
		return "!"
	}
	return op
}

type exprCtx struct {
	p     *parser
	units []*gOperand
	ops   []*gBinTail
	u     int       // next unit
	cur   *gOperand // what is left of units[u] after prefix operators, or nil
	depth int
	bare  map[*ast.Literal]bool // bare words still waiting for a legacy keyword to compare with
}

func (p *parser) lowerExpr(e *gExpr) ast.Expr {
	c := &exprCtx{p: p, ops: e.Tail}
	if len(e.Tail) == 0 {
		c.units = []*gOperand{e.Head}
	} else {
		c.units = make([]*gOperand, 0, len(e.Tail)+1)
		c.units = append(c.units, e.Head)
		for _, t := range e.Tail {
			c.units = append(c.units, t.X)
		}
	}
	x := c.parse(precLogic)
	for lit := range c.bare {
		p.errorf(lit.At, "bare word %q: function calls need '()' and strings need quotes", lit.Str)
	}
	return x
}

func (c *exprCtx) parse(minPrec int) ast.Expr {
	lhs := c.unary()
	for c.u-1 < len(c.ops) {
		op := &c.ops[c.u-1].Op
		prec := binPrec(op.Value)
		if prec < minPrec {
			break
		}
		if op.Value == "!" || op.Value == "~" || op.Value == "not" {
			c.p.errorf(lpos(op.Pos), "unexpected '%s' between operands, expected a binary operator", op.Value)
		}
		rhs := c.parse(prec + 1)
		if prec == precCmp {
			if c.u-1 < len(c.ops) && binPrec(c.ops[c.u-1].Op.Value) == precCmp {
				next := &c.ops[c.u-1].Op
				c.p.errorf(lpos(next.Pos), "comparisons cannot be chained: use && or parentheses")
			}
			if _, ok := lhs.(*ast.Keyword); ok {
				if lit, ok := rhs.(*ast.Literal); ok && c.bare[lit] {
					delete(c.bare, lit) // proto == UDP, af == inet ...
				}
			}
		}
		lhs = &ast.Binary{At: lpos(op.Pos), Op: normOp(op.Value), X: lhs, Y: rhs}
	}
	return lhs
}

func (c *exprCtx) unary() ast.Expr {
	o := c.cur
	if o == nil {
		o = c.units[c.u]
	}
	if pre := o.Prefix; pre != nil {
		c.cur = pre.X
		op := &pre.Op
		c.depth++
		at := lpos(op.Pos)
		if c.depth > maxNesting {
			c.p.errorf(at, "too many unary operators")
			return &ast.Literal{At: at, Kind: ast.NullLit}
		}
		switch op.Value {
		case "!", "not":
			return &ast.Unary{At: at, Op: "!", X: c.parse(precCmp)}
		case "-":
			x := c.unary()
			if lit, ok := x.(*ast.Literal); ok && lit.Kind == ast.IntLit && !c.bare[lit] {
				lit.Int = -lit.Int
				lit.At = at
				return lit
			}
			return &ast.Unary{At: at, Op: "-", X: x}
		case "~":
			return &ast.Unary{At: at, Op: "~", X: c.unary()}
		default:
			c.p.errorf(at, "unexpected '%s', expected an expression", op.Value)
			return c.unary()
		}
	}
	c.u++
	c.cur = nil
	return c.operand(o)
}

func (c *exprCtx) operand(o *gOperand) ast.Expr {
	p := c.p
	switch {
	case o.Leaf != nil:
		return p.leaf(o.Leaf)
	case o.Route != nil:
		return p.lowerRouteCall(o.Route)
	case o.Paren != nil:
		return p.lowerExpr(o.Paren)
	case o.Brack != nil:
		return p.lowerExpr(o.Brack)
	case o.Ident != nil:
		id := o.Ident
		at := tokPos(id.Name)
		name := id.Name.Value
		switch {
		case id.Args != nil:
			return &ast.Call{At: at, Name: name, Args: p.lowerArgs(name, at, id.Args)}
		case id.Colon != "":
			if name == "msg" && id.Colon == "len" {
				return &ast.Keyword{At: at, Name: "msg:len"}
			}
			p.errorf(at, "unknown operand %s:%s", name, id.Colon)
			return &ast.Keyword{At: at, Name: name + ":" + id.Colon}
		case legacyKeywords[name]:
			return &ast.Keyword{At: at, Name: name}
		case hasBoolWord(name):
			return &ast.Literal{At: at, Kind: ast.IntLit, Int: boolWords[name]}
		}
		lit := &ast.Literal{At: at, Kind: ast.StringLit, Str: name}
		if c.bare == nil {
			c.bare = map[*ast.Literal]bool{}
		}
		c.bare[lit] = true
		return lit
	}
	return &ast.Literal{Kind: ast.NullLit}
}
