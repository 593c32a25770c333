// Package compile turns a checked script into bytecode. Everything that can
// be decided once is decided here, as OpenSIPS fixups do: regexes are
// compiled, format strings are split into text and pvar segments, pvar
// references are fixed up, constant arguments are converted, and each
// module function's Fixup runs with its constant arguments.
package compile

import (
	"errors"
	"regexp"
	"strconv"
	"strings"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/bytecode"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/lang/source"
	"github.com/sipedge/sipedge/lang/syntax"
	"github.com/sipedge/sipedge/runtime/value"
)

// Compile builds the program for f, which Check has accepted.
func Compile(f *ast.File, env check.Env) (*bytecode.Program, source.ErrorList) {
	c := &compiler{
		env:     env,
		prog:    &bytecode.Program{},
		consts:  map[value.Value]int{},
		pvars:   map[string]int{},
		regexps: map[string]int{},
		vars:    map[string]int{},
		avps:    map[string]int{},
	}
	for k := range c.prog.Index {
		c.prog.Index[k] = map[string]int{}
	}
	for _, r := range f.Routes {
		if _, dup := c.prog.Index[r.Kind][r.Name]; dup {
			continue // reported by the checker
		}
		c.prog.Index[r.Kind][r.Name] = len(c.prog.Routes)
		c.prog.Routes = append(c.prog.Routes, bytecode.Route{Kind: r.Kind, Name: r.Name, Interval: r.Interval})
	}
	compiled := make([]bool, len(c.prog.Routes))
	for _, r := range f.Routes {
		i := c.prog.Index[r.Kind][r.Name]
		if compiled[i] {
			continue
		}
		compiled[i] = true
		c.prog.Routes[i].Entry = len(c.prog.Code)
		c.block(r.Body)
		c.emit(bytecode.OpReturnNone, 0, 0, endPos(r))
	}
	c.errs.Sort()
	return c.prog, c.errs
}

func endPos(r *ast.Route) source.Pos { return r.At }

type compiler struct {
	env     check.Env
	prog    *bytecode.Program
	errs    source.ErrorList
	consts  map[value.Value]int
	pvars   map[string]int
	regexps map[string]int
	vars    map[string]int
	avps    map[string]int
	// breaks holds, per enclosing switch/while, the jumps a break makes.
	breaks [][]int
}

// VarSlot and AVPSlot implement check.Slots.
func (c *compiler) VarSlot(name string) int {
	if i, ok := c.vars[name]; ok {
		return i
	}
	i := len(c.prog.VarNames)
	c.vars[name] = i
	c.prog.VarNames = append(c.prog.VarNames, name)
	return i
}

func (c *compiler) AVPSlot(name string) int {
	if i, ok := c.avps[name]; ok {
		return i
	}
	i := len(c.prog.AVPNames)
	c.avps[name] = i
	c.prog.AVPNames = append(c.prog.AVPNames, name)
	return i
}

func (c *compiler) emit(op bytecode.Opcode, a, b int, pos source.Pos) int {
	c.prog.Code = append(c.prog.Code, bytecode.Instr{Op: op, A: int32(a), B: int32(b)})
	c.prog.Pos = append(c.prog.Pos, pos)
	return len(c.prog.Code) - 1
}

// patch points the jump at pc to the current end of code.
func (c *compiler) patch(pc int) { c.prog.Code[pc].A = int32(len(c.prog.Code)) }

func (c *compiler) constant(v value.Value) int {
	if i, ok := c.consts[v]; ok {
		return i
	}
	i := len(c.prog.Consts)
	c.consts[v] = i
	c.prog.Consts = append(c.prog.Consts, v)
	return i
}

func (c *compiler) pvar(p *ast.PVar) (int, bool) {
	text := p.String()
	if i, ok := c.pvars[text]; ok {
		return i, true
	}
	h, err := c.env.CompilePVar(p, c)
	if err != nil {
		c.errs.Add(p.At, "%v", err)
		return 0, false
	}
	i := len(c.prog.PVars)
	c.pvars[text] = i
	c.prog.PVars = append(c.prog.PVars, bytecode.PVar{Text: text, Handle: h})
	return i, true
}

func (c *compiler) regex(pat string, pos source.Pos) (int, bool) {
	if i, ok := c.regexps[pat]; ok {
		return i, true
	}
	// Module regex parameters are POSIX extended, case-insensitive and
	// line-oriented in OpenSIPS (REG_EXTENDED|REG_ICASE|REG_NEWLINE).
	rx, err := regexp.Compile("(?im)" + pat)
	if err != nil {
		c.errs.Add(pos, "bad regular expression %q: %v", pat, unwrapRegexErr(err))
		return 0, false
	}
	i := len(c.prog.Regexps)
	c.regexps[pat] = i
	c.prog.Regexps = append(c.prog.Regexps, rx)
	return i, true
}

func unwrapRegexErr(err error) string {
	s := err.Error()
	if i := strings.Index(s, ": "); i >= 0 && strings.HasPrefix(s, "error parsing regexp") {
		return s[i+2:]
	}
	return s
}

// format compiles a string with pvars; ok=false when it has none (use a
// constant instead).
func (c *compiler) format(lit *ast.Literal) (idx int, hasPV bool) {
	if !strings.Contains(lit.Str, "$") {
		return 0, false
	}
	segs, err := syntax.ParseFormat(lit.Str, lit.At)
	if err != nil {
		c.errs.Add(lit.At, "%v", err)
		return 0, false
	}
	var f bytecode.Format
	for _, s := range segs {
		if s.PV == nil {
			f.Segs = append(f.Segs, bytecode.Segment{Text: s.Text, PV: -1})
			continue
		}
		pi, ok := c.pvar(s.PV)
		if !ok {
			return 0, false
		}
		hasPV = true
		f.Segs = append(f.Segs, bytecode.Segment{PV: pi})
	}
	if !hasPV {
		return 0, false
	}
	c.prog.Formats = append(c.prog.Formats, f)
	return len(c.prog.Formats) - 1, true
}

func (c *compiler) block(b *ast.Block) {
	if b == nil {
		return
	}
	for _, s := range b.Stmts {
		c.stmt(s)
	}
}

func (c *compiler) stmt(s ast.Stmt) {
	switch s := s.(type) {
	case *ast.Block:
		c.block(s)
	case *ast.If:
		c.expr(s.Cond)
		jf := c.emit(bytecode.OpJumpIfFalse, 0, 0, s.At)
		c.block(s.Then)
		if s.Else == nil {
			c.patch(jf)
			return
		}
		j := c.emit(bytecode.OpJump, 0, 0, s.At)
		c.patch(jf)
		c.stmt(s.Else)
		c.patch(j)
	case *ast.While:
		top := len(c.prog.Code)
		c.expr(s.Cond)
		jf := c.emit(bytecode.OpJumpIfFalse, 0, 0, s.At)
		c.breaks = append(c.breaks, nil)
		c.block(s.Body)
		c.emit(bytecode.OpLoop, top, 0, s.At)
		c.patch(jf)
		c.patchBreaks()
	case *ast.For:
		c.forEach(s)
	case *ast.Switch:
		c.switchStmt(s)
	case *ast.Break:
		if n := len(c.breaks); n > 0 {
			c.breaks[n-1] = append(c.breaks[n-1], c.emit(bytecode.OpJump, 0, 0, s.At))
		}
	case *ast.Return:
		if s.Value == nil {
			c.emit(bytecode.OpReturnNone, 0, 0, s.At)
			return
		}
		c.expr(s.Value)
		c.emit(bytecode.OpReturn, 0, 0, s.At)
	case *ast.Exit:
		c.emit(bytecode.OpExit, 0, 0, s.At)
	case *ast.Drop:
		c.emit(bytecode.OpDrop, 0, 0, s.At)
	case *ast.Assign:
		c.assign(s)
	case *ast.ExprStmt:
		switch x := s.X.(type) {
		case *ast.Call:
			c.call(x, false)
		case *ast.RouteCall:
			c.routeCall(x, false)
		default:
			c.expr(x)
			c.emit(bytecode.OpPop, 0, 0, s.At)
		}
	case *ast.Async:
		// Async I/O is not available yet: the call runs synchronously and
		// the resume route follows it, which is what OpenSIPS does when a
		// function has no async form.
		c.call(s.Call, false)
		if s.Resume != "" {
			c.routeCall(&ast.RouteCall{At: s.At, Name: s.Resume}, false)
			c.emit(bytecode.OpExit, 0, 0, s.At)
		}
	}
}

// forEach keeps the index on the stack:
//
//	    const 0
//	L:  iter Over        i → i v ok
//	    jumpiffalse E    i v
//	    storepv Var      i
//	    body             (break → B, with i on the stack)
//	    const 1; add; loop L
//	E:  pop              drop the NULL v
//	B:  pop              drop i
func (c *compiler) forEach(s *ast.For) {
	over, ok1 := c.pvar(s.Over)
	v, ok2 := c.pvar(s.Var)
	if !ok1 || !ok2 {
		return
	}
	c.emit(bytecode.OpConst, c.constant(value.I(0)), 0, s.At)
	top := c.emit(bytecode.OpIter, over, 0, s.At)
	jf := c.emit(bytecode.OpJumpIfFalse, 0, 0, s.At)
	c.emit(bytecode.OpStorePV, v, 0, s.At)
	c.breaks = append(c.breaks, nil)
	c.block(s.Body)
	c.emit(bytecode.OpConst, c.constant(value.I(1)), 0, s.At)
	c.emit(bytecode.OpAdd, 0, 0, s.At)
	c.emit(bytecode.OpLoop, top, 0, s.At)
	c.patch(jf)
	c.emit(bytecode.OpPop, 0, 0, s.At)
	c.patchBreaks()
	c.emit(bytecode.OpPop, 0, 0, s.At)
}

func (c *compiler) patchBreaks() {
	n := len(c.breaks) - 1
	for _, pc := range c.breaks[n] {
		c.patch(pc)
	}
	c.breaks = c.breaks[:n]
}

// switchStmt keeps the tag on the stack while cases compare against it, then
// runs the bodies in source order so control falls through until a break.
func (c *compiler) switchStmt(s *ast.Switch) {
	c.expr(s.Tag)
	tests := make([]int, len(s.Cases))
	def := -1
	for i, cs := range s.Cases {
		if cs.Value == nil {
			def = i
			continue
		}
		c.emit(bytecode.OpDup, 0, 0, cs.At)
		c.expr(cs.Value)
		c.emit(bytecode.OpEq, 0, 0, cs.At)
		tests[i] = c.emit(bytecode.OpJumpIfTrue, 0, 0, cs.At)
	}
	c.breaks = append(c.breaks, nil)
	miss := c.emit(bytecode.OpJump, 0, 0, s.At)
	for i, cs := range s.Cases {
		if i == def {
			c.patch(miss)
		} else {
			c.patch(tests[i])
		}
		for _, st := range cs.Body {
			c.stmt(st)
		}
	}
	if def < 0 {
		c.patch(miss)
	}
	c.patchBreaks()
	c.emit(bytecode.OpPop, 0, 0, s.At)
}

var compoundOps = map[string]bytecode.Opcode{
	"+=": bytecode.OpAdd, "-=": bytecode.OpSub, "*=": bytecode.OpMul, "/=": bytecode.OpDiv,
	"%=": bytecode.OpMod, "|=": bytecode.OpBitOr, "&=": bytecode.OpBitAnd,
}

func (c *compiler) assign(s *ast.Assign) {
	target, ok := c.pvar(s.Target)
	if !ok {
		return
	}
	if op, compound := compoundOps[s.Op]; compound {
		c.emit(bytecode.OpLoadPV, target, 0, s.At)
		c.expr(s.Value)
		c.emit(op, 0, 0, s.At)
	} else {
		c.expr(s.Value)
	}
	replace := 0
	if s.Op == ":=" {
		replace = 1
	}
	c.emit(bytecode.OpStorePV, target, replace, s.At)
}

var binaryOps = map[string]bytecode.Opcode{
	"==": bytecode.OpEq, "!=": bytecode.OpNe, "<": bytecode.OpLt, "<=": bytecode.OpLe,
	">": bytecode.OpGt, ">=": bytecode.OpGe, "+": bytecode.OpAdd, "-": bytecode.OpSub,
	"*": bytecode.OpMul, "/": bytecode.OpDiv, "%": bytecode.OpMod, "|": bytecode.OpBitOr,
	"&": bytecode.OpBitAnd, "^": bytecode.OpBitXor, "<<": bytecode.OpShl, ">>": bytecode.OpShr,
}

// keywordPVars maps the legacy bare operands to the pvar they read.
var keywordPVars = map[string]string{
	"method": "rm", "uri": "ru", "status": "rs", "src_ip": "si", "src_port": "sp",
	"dst_ip": "Ri", "dst_port": "Rp", "proto": "pr", "from_uri": "fu", "to_uri": "tu",
	"msg:len": "ml",
}

func (c *compiler) expr(e ast.Expr) {
	switch e := e.(type) {
	case *ast.Literal:
		switch e.Kind {
		case ast.IntLit:
			c.emit(bytecode.OpConst, c.constant(value.I(e.Int)), 0, e.At)
		case ast.NullLit:
			c.emit(bytecode.OpConst, c.constant(value.Null), 0, e.At)
		default:
			c.emit(bytecode.OpConst, c.constant(value.S(e.Str)), 0, e.At)
		}
	case *ast.PVar:
		if i, ok := c.pvar(e); ok {
			c.emit(bytecode.OpLoadPV, i, 0, e.At)
		}
	case *ast.Keyword:
		switch e.Name {
		case "myself":
			c.errs.Add(e.At, "myself can only be compared with == or !=")
		case "af":
			c.emit(bytecode.OpConst, c.constant(value.S("INET")), 0, e.At)
		default:
			name, ok := keywordPVars[e.Name]
			if !ok {
				c.errs.Add(e.At, "unknown keyword %s", e.Name)
				return
			}
			if i, ok := c.pvar(&ast.PVar{At: e.At, Name: name}); ok {
				c.emit(bytecode.OpLoadPV, i, 0, e.At)
			}
		}
	case *ast.Call:
		c.call(e, true)
	case *ast.RouteCall:
		c.routeCall(e, true)
	case *ast.Unary:
		c.expr(e.X)
		switch e.Op {
		case "!":
			c.emit(bytecode.OpNot, 0, 0, e.At)
		case "-":
			c.emit(bytecode.OpNeg, 0, 0, e.At)
		case "~":
			c.emit(bytecode.OpBitNot, 0, 0, e.At)
		}
	case *ast.Binary:
		c.binary(e)
	}
}

func (c *compiler) binary(e *ast.Binary) {
	switch e.Op {
	case "&&", "||":
		c.expr(e.X)
		op := bytecode.OpAndJump
		if e.Op == "||" {
			op = bytecode.OpOrJump
		}
		j := c.emit(op, 0, 0, e.At)
		c.expr(e.Y)
		c.patch(j)
		return
	case "=~", "!~":
		c.expr(e.X)
		neg := 0
		if e.Op == "!~" {
			neg = 1
		}
		if lit, ok := e.Y.(*ast.Literal); ok && lit.Kind == ast.StringLit {
			// OpenSIPS compiles script regexes case-insensitively (REG_ICASE).
			m, err := bytecode.NewMatcher(lit.Str, true)
			if err != nil {
				c.errs.Add(lit.At, "bad regular expression %q: %v", lit.Str, unwrapRegexErr(err))
				return
			}
			c.prog.Matchers = append(c.prog.Matchers, m)
			c.emit(bytecode.OpMatch, len(c.prog.Matchers)-1, neg, e.At)
			return
		}
		c.expr(e.Y)
		c.emit(bytecode.OpMatchDyn, 0, neg, e.At)
		return
	}
	if kw, ok := e.Y.(*ast.Keyword); ok && kw.Name == "myself" {
		c.expr(e.X)
		c.emit(bytecode.OpMyself, 0, 0, e.At)
		if e.Op == "!=" {
			c.emit(bytecode.OpNot, 0, 0, e.At)
		}
		return
	}
	op, ok := binaryOps[e.Op]
	if !ok {
		c.errs.Add(e.At, "unknown operator %s", e.Op)
		return
	}
	c.expr(e.X)
	c.expr(e.Y)
	c.emit(op, 0, 0, e.At)
}

// isEmptyArg is an empty slot such as the middle of f("a", , $var(x)): the
// optional parameter is left out.
func isEmptyArg(e ast.Expr) bool {
	lit, ok := e.(*ast.Literal)
	return ok && lit.Kind == ast.NullLit
}

func (c *compiler) routeCall(rc *ast.RouteCall, push bool) {
	idx, ok := c.prog.Index[ast.RequestRoute][rc.Name]
	if !ok {
		return // reported by the checker
	}
	for _, a := range rc.Args {
		c.expr(a)
	}
	c.prog.RouteCalls = append(c.prog.RouteCalls, bytecode.RouteCall{Route: idx, NArgs: len(rc.Args)})
	c.emit(bytecode.OpRouteCall, len(c.prog.RouteCalls)-1, b2i(push), rc.At)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (c *compiler) call(call *ast.Call, push bool) {
	sig, _ := c.env.Func(call.Name)
	if sig == nil {
		return // reported by the checker
	}
	site := bytecode.CallSite{Name: call.Name, Module: sig.Module, Impl: sig.Impl}
	fix := make([]check.FixupArg, len(sig.Args))
	for i, spec := range sig.Args {
		fix[i].Pos, fix[i].Slots = call.At, c
		if i >= len(call.Args) || isEmptyArg(call.Args[i]) {
			site.Args = append(site.Args, bytecode.Arg{Source: bytecode.ArgAbsent})
			continue
		}
		a, fa, ok := c.arg(call, spec, call.Args[i])
		if !ok {
			return
		}
		fa.Slots = c
		fix[i] = fa
		site.Args = append(site.Args, a)
	}
	if sig.Fixup != nil {
		v, err := sig.Fixup(fix)
		if err != nil {
			pos := call.At
			var fe *check.FixupError
			if errors.As(err, &fe) && fe.Arg < len(call.Args) {
				pos = call.Args[fe.Arg].Pos()
			}
			c.errs.Add(pos, "%s(): %v", call.Name, err)
			return
		}
		site.Fix = v
	}
	c.prog.Calls = append(c.prog.Calls, site)
	c.emit(bytecode.OpCall, len(c.prog.Calls)-1, b2i(push), call.At)
}

// arg compiles one call argument for its declared kind.
func (c *compiler) arg(call *ast.Call, spec check.ArgSpec, e ast.Expr) (bytecode.Arg, check.FixupArg, bool) {
	fa := check.FixupArg{Pos: e.Pos(), Present: true}
	switch e := e.(type) {
	case *ast.PVar:
		i, ok := c.pvar(e)
		fa.PVar = e.Name
		return bytecode.Arg{Source: bytecode.ArgPV, Index: i, ByRef: spec.Kind == check.ArgVar}, fa, ok
	case *ast.Literal:
		s := e.Str
		if e.Kind == ast.IntLit {
			s = strconv.Itoa(e.Int)
		}
		switch spec.Kind {
		case check.ArgVar:
			pv, n, err := syntax.ParsePVar(strings.TrimSpace(s), e.At)
			if err != nil || n != len(strings.TrimSpace(s)) {
				c.errs.Add(e.At, "%s(): %q is not a variable", call.Name, s)
				return bytecode.Arg{}, fa, false
			}
			i, ok := c.pvar(pv)
			fa.PVar = pv.Name
			return bytecode.Arg{Source: bytecode.ArgPV, Index: i, ByRef: true}, fa, ok
		case check.ArgRegex:
			i, ok := c.regex(s, e.At)
			if ok {
				fa.Regex = c.prog.Regexps[i]
			}
			fa.Const, fa.Str = true, s
			return bytecode.Arg{Source: bytecode.ArgRegex, Index: i}, fa, ok
		case check.ArgRoute:
			idx, ok := c.prog.Index[spec.Route][s]
			fa.Const, fa.Str, fa.Int = true, s, idx
			return bytecode.Arg{Source: bytecode.ArgRoute, Index: idx}, fa, ok
		case check.ArgInt:
			if e.Kind == ast.IntLit {
				fa.Const, fa.Int, fa.Str = true, e.Int, s
				return bytecode.Arg{Source: bytecode.ArgConst, Index: c.constant(value.SI(s, e.Int))}, fa, true
			}
			if fi, ok := c.format(e); ok {
				return bytecode.Arg{Source: bytecode.ArgFormat, Index: fi}, fa, true
			}
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				return bytecode.Arg{}, fa, false // reported by the checker
			}
			fa.Const, fa.Int, fa.Str = true, n, s
			return bytecode.Arg{Source: bytecode.ArgConst, Index: c.constant(value.SI(s, n))}, fa, true
		default:
			if !spec.NoExpand {
				if fi, ok := c.format(e); ok {
					return bytecode.Arg{Source: bytecode.ArgFormat, Index: fi}, fa, true
				}
			}
			fa.Const, fa.Str = true, s
			if n, err := strconv.Atoi(s); err == nil {
				fa.Int = n
				return bytecode.Arg{Source: bytecode.ArgConst, Index: c.constant(value.SI(s, n))}, fa, true
			}
			return bytecode.Arg{Source: bytecode.ArgConst, Index: c.constant(value.S(s))}, fa, true
		}
	}
	return bytecode.Arg{}, fa, false
}
