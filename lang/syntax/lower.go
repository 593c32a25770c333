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
		mp.Value = p.modParamValue(it.Value)
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
	case len(toks) == 1 && (t.Type == tokString || t.Type == tokSQString):
		gl.Value = &ast.Literal{At: lpos(t.Pos), Kind: ast.StringLit, Str: unquote(t.Value)}
	case len(toks) == 1 && t.Type == tokInt:
		gl.Value = p.intLit(t.Pos, "", t.Value)
	case len(toks) == 2 && t.Type == tokPunct && (t.Value == "-" || t.Value == "+") && toks[1].Type == tokInt:
		gl.Value = p.intLit(t.Pos, t.Value, toks[1].Value)
	case len(toks) == 1 && t.Type == tokIdent && hasBoolWord(t.Value):
		gl.Value = &ast.Literal{At: lpos(t.Pos), Kind: ast.IntLit, Int: boolWords[t.Value]}
		gl.Words = t.Value
	case len(toks) == 1 && t.Type == tokKeyword && (t.Value == "NULL" || t.Value == "null"):
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

func (p *parser) modParamValue(a *gArg) *ast.Literal {
	switch {
	case a.Strs != nil:
		return &ast.Literal{At: lpos(a.Pos), Kind: ast.StringLit, Str: joinStrings(a.Strs)}
	case a.Int != "":
		return p.intLit(a.Pos, a.Sign, a.Int)
	case a.Words != nil && len(a.Words.Toks) == 1 && hasBoolWord(a.Words.Toks[0].Value):
		return &ast.Literal{At: lpos(a.Pos), Kind: ast.IntLit, Int: boolWords[a.Words.Toks[0].Value]}
	}
	p.errorf(lpos(a.Pos), "modparam value must be a string or a number")
	return &ast.Literal{At: lpos(a.Pos), Kind: ast.StringLit}
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
	blk := &ast.Block{At: lpos(b.Pos)}
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
		return lpos(s.Pos)
	case *gBlock:
		return lpos(s.Pos)
	case *gFor:
		return lpos(s.Pos)
	}
	return source.Pos{}
}

func (p *parser) lowerStmt(s gStmt) ast.Stmt {
	switch s := s.(type) {
	case *gBlock:
		return p.lowerBlock(s)
	case *gIf:
		st := &ast.If{At: lpos(s.Pos), Cond: p.lowerExpr(s.Cond), Then: p.asBlock(s.Then)}
		switch e := s.Else.(type) {
		case nil:
		case *gIf:
			st.Else = p.lowerStmt(e)
		default:
			st.Else = p.asBlock(e)
		}
		return st
	case *gSwitch:
		st := &ast.Switch{At: lpos(s.Pos), Tag: p.lowerExpr(s.Tag)}
		hasDefault := false
		for _, arm := range s.Arms {
			c := &ast.Case{At: lpos(arm.Pos)}
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
		return &ast.While{At: lpos(s.Pos), Cond: p.lowerExpr(s.Cond), Body: p.asBlock(s.Body)}
	case *gFor:
		p.errorf(lpos(s.Pos), "for-each loops (for ... in ...) are not supported")
		return nil
	case *gReturn:
		st := &ast.Return{At: lpos(s.Pos)}
		if s.Paren != nil {
			st.Value = p.lowerExpr(s.Paren)
		} else if s.Value != nil {
			st.Value = p.lowerExpr(s.Value)
		}
		return st
	case *gExit:
		return &ast.Exit{At: lpos(s.Pos)}
	case *gDrop:
		return &ast.Drop{At: lpos(s.Pos)}
	case *gBreak:
		return &ast.Break{At: lpos(s.Pos)}
	case *gEmpty:
		return nil
	case *gAssign:
		target := p.pvar(s.Pos, s.Target)
		if len(target.Trans) > 0 {
			p.errorf(target.At, "transformations are not allowed on the left side of an assignment")
		}
		return &ast.Assign{At: lpos(s.Pos), Target: target, Op: s.Op, Value: p.lowerExpr(s.Value)}
	case *gCallStmt:
		return &ast.ExprStmt{At: lpos(s.Pos), X: p.lowerCall(s.Call)}
	case *gRouteCallStmt:
		return &ast.ExprStmt{At: lpos(s.Pos), X: p.lowerRouteCall(s.Call)}
	case *gAsync:
		st := &ast.Async{At: lpos(s.Pos), Launch: s.Kind == "launch", Call: p.lowerCall(s.Call)}
		if s.Resume != nil {
			st.Resume = p.routeName(s.Resume)
			if s.Resume.PV != "" {
				p.errorf(lpos(s.Resume.Pos), "the resume route of %s() cannot be a variable", s.Kind)
			}
		} else if !st.Launch {
			p.errorf(st.At, "async() needs a resume route: async(%s(...), route_name)", s.Call.Name)
		}
		if s.Timeout != nil {
			p.errorf(lpos(s.Timeout.Pos), "the async timeout argument is not supported")
		}
		return st
	case *gAssert:
		msg := &ast.Literal{At: lpos(s.Msg.Pos), Kind: ast.StringLit, Str: p.strLit(s.Msg)}
		call := &ast.Call{At: lpos(s.Pos), Name: "assert", Args: []ast.Expr{p.lowerExpr(s.Cond), msg}}
		return &ast.ExprStmt{At: call.At, X: call}
	}
	return nil
}

func (p *parser) caseValue(v *gCaseVal) ast.Expr {
	if v.Strs != nil {
		return &ast.Literal{At: lpos(v.Pos), Kind: ast.StringLit, Str: joinStrings(v.Strs)}
	}
	return p.intLit(v.Pos, v.Sign, v.Int)
}

// ---- calls ----

func (p *parser) lowerCall(c *gCall) *ast.Call {
	call := &ast.Call{At: lpos(c.Pos), Name: c.Name}
	call.Args = p.lowerArgs(c.Name, c.Args)
	return call
}

func (p *parser) lowerArgs(fn string, l *gArgList) []ast.Expr {
	if len(l.Slots) == 1 && l.Slots[0].Arg == nil {
		return nil
	}
	args := make([]ast.Expr, 0, len(l.Slots))
	for _, s := range l.Slots {
		if s.Arg == nil {
			args = append(args, &ast.Literal{At: lpos(s.Pos), Kind: ast.NullLit})
			continue
		}
		args = append(args, p.lowerArg(fn, s.Arg))
	}
	return args
}

func (p *parser) lowerArg(fn string, a *gArg) ast.Expr {
	switch {
	case a.Strs != nil:
		return &ast.Literal{At: lpos(a.Pos), Kind: ast.StringLit, Str: joinStrings(a.Strs)}
	case a.Int != "":
		return p.intLit(a.Pos, a.Sign, a.Int)
	case a.PV != "":
		return p.pvar(a.Pos, a.PV)
	case a.Null != "":
		return &ast.Literal{At: lpos(a.Pos), Kind: ast.NullLit}
	case a.Words != nil:
		raw := rawText(a.Words.Toks)
		if !bareWordFuncs[fn] {
			p.errorf(lpos(a.Pos), "bare word %q as an argument of %s(): quote it", raw, fn)
		}
		return &ast.Literal{At: lpos(a.Pos), Kind: ast.StringLit, Str: raw}
	}
	return &ast.Literal{At: lpos(a.Pos), Kind: ast.NullLit}
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
	rc := &ast.RouteCall{At: lpos(c.Pos), Name: p.routeName(c.Name)}
	if rc.Name == "" {
		p.errorf(lpos(c.Name.Pos), "empty route name")
	}
	for _, a := range c.Args {
		rc.Args = append(rc.Args, p.lowerArg("route", a))
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
	units []*gUnary
	ops   []*gBinTail
	u     int // next unit
	oi    int // next prefix operator of units[u]
	depth int
	bare  map[*ast.Literal]bool // bare words still waiting for a legacy keyword to compare with
}

func (p *parser) lowerExpr(e *gExpr) ast.Expr {
	c := &exprCtx{p: p, ops: e.Tail}
	if len(e.Tail) == 0 {
		c.units = []*gUnary{e.Head}
	} else {
		c.units = make([]*gUnary, 0, len(e.Tail)+1)
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
		op := c.ops[c.u-1]
		prec := binPrec(op.Op)
		if prec < minPrec {
			break
		}
		rhs := c.parse(prec + 1)
		if prec == precCmp {
			if c.u-1 < len(c.ops) && binPrec(c.ops[c.u-1].Op) == precCmp {
				next := c.ops[c.u-1]
				c.p.errorf(lpos(next.Pos), "comparisons cannot be chained: use && or parentheses")
			}
			if _, ok := lhs.(*ast.Keyword); ok {
				if lit, ok := rhs.(*ast.Literal); ok && c.bare[lit] {
					delete(c.bare, lit) // proto == UDP, af == inet ...
				}
			}
		}
		lhs = &ast.Binary{At: lpos(op.Pos), Op: normOp(op.Op), X: lhs, Y: rhs}
	}
	return lhs
}

func (c *exprCtx) unary() ast.Expr {
	u := c.units[c.u]
	if c.oi < len(u.Ops) {
		op := u.Ops[c.oi]
		c.oi++
		c.depth++
		if c.depth > maxNesting {
			c.p.errorf(lpos(op.Pos), "too many unary operators")
			return &ast.Literal{At: lpos(op.Pos), Kind: ast.NullLit}
		}
		at := lpos(op.Pos)
		switch op.Op {
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
		default:
			return &ast.Unary{At: at, Op: op.Op, X: c.unary()}
		}
	}
	c.u++
	c.oi = 0
	return c.operand(u.X)
}

func (c *exprCtx) operand(o *gOperand) ast.Expr {
	p := c.p
	at := lpos(o.Pos)
	switch {
	case o.PV != "":
		return p.pvar(o.Pos, o.PV)
	case o.Strs != nil:
		return &ast.Literal{At: at, Kind: ast.StringLit, Str: joinStrings(o.Strs)}
	case o.Int != "":
		return p.intLit(o.Pos, "", o.Int)
	case o.IP != "":
		return &ast.Literal{At: at, Kind: ast.StringLit, Str: o.IP}
	case o.Null != "":
		return &ast.Literal{At: at, Kind: ast.NullLit}
	case o.Route != nil:
		return p.lowerRouteCall(o.Route)
	case o.Paren != nil:
		return p.lowerExpr(o.Paren)
	case o.Brack != nil:
		return p.lowerExpr(o.Brack)
	case o.Ident != nil:
		id := o.Ident
		switch {
		case id.Args != nil:
			return &ast.Call{At: at, Name: id.Name, Args: p.lowerArgs(id.Name, id.Args)}
		case id.Colon != "":
			if id.Name == "msg" && id.Colon == "len" {
				return &ast.Keyword{At: at, Name: "msg:len"}
			}
			p.errorf(at, "unknown operand %s:%s", id.Name, id.Colon)
			return &ast.Keyword{At: at, Name: id.Name + ":" + id.Colon}
		case legacyKeywords[id.Name]:
			return &ast.Keyword{At: at, Name: id.Name}
		case hasBoolWord(id.Name):
			return &ast.Literal{At: at, Kind: ast.IntLit, Int: boolWords[id.Name]}
		}
		lit := &ast.Literal{At: at, Kind: ast.StringLit, Str: id.Name}
		if c.bare == nil {
			c.bare = map[*ast.Literal]bool{}
		}
		c.bare[lit] = true
		return lit
	}
	return &ast.Literal{At: at, Kind: ast.NullLit}
}
