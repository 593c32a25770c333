// Package vm runs compiled scripts. An Image is a Program linked to the
// runtime (pvar references and module functions resolved to their Go types);
// it is immutable and shared by all goroutines. Each run borrows a Machine
// (value stack and argument buffers) from a pool, so pure-logic routes run
// without allocating.
//
// Semantics follow OpenSIPS: a function result > 0 is true, < 0 is false and
// 0 ends the script; return(n) leaves the route with $retcode n, return(0)
// ends the script like exit; drop ends it and tells the caller to discard
// the message; a route falling off its end returns 1.
package vm

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/sipedge/sipedge/lang/bytecode"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

// Limits on a single run: OpenSIPS caps while loops (max_while_loops) and
// route recursion (100 levels); a run that exceeds them is stopped and logged.
const (
	DefaultLoopBudget = 100000
	MaxRouteDepth     = 100
)

// Outcome is how a run ended.
type Outcome uint8

const (
	Returned Outcome = iota // the route returned (or fell off its end)
	Exited                  // exit, return(0), or a function returned 0
	Dropped                 // drop
	Faulted                 // a runtime fault stopped the script (logged)
)

var outcomeNames = [...]string{"returned", "exited", "dropped", "faulted"}

func (o Outcome) String() string { return outcomeNames[o] }

type callSite struct {
	fn    *modules.Func
	name  string
	args  []bytecode.Arg
	refs  []*pvar.Ref
	rx    []*regexp.Regexp
	given []bool
	fix   any
}

// Image is a linked program.
type Image struct {
	Prog  *bytecode.Program
	pvs   []*pvar.Ref
	calls []callSite
	// Myself tells whether a host (from a URI) is one of ours; set by the
	// SIP runtime from its sockets and aliases.
	Myself func(host string, port int) bool
	// LoopBudget caps backward jumps per run (max_while_loops).
	LoopBudget int
	pool       sync.Pool
}

// Link resolves a program's opaque handles.
func Link(p *bytecode.Program) (*Image, error) {
	img := &Image{Prog: p, LoopBudget: DefaultLoopBudget}
	img.pvs = make([]*pvar.Ref, len(p.PVars))
	for i, pv := range p.PVars {
		r, ok := pv.Handle.(*pvar.Ref)
		if !ok {
			return nil, fmt.Errorf("vm: pvar %s has handle %T", pv.Text, pv.Handle)
		}
		img.pvs[i] = r
	}
	img.calls = make([]callSite, len(p.Calls))
	for i, c := range p.Calls {
		fn, ok := c.Impl.(*modules.Func)
		if !ok {
			return nil, fmt.Errorf("vm: function %s has implementation %T", c.Name, c.Impl)
		}
		cs := callSite{fn: fn, name: c.Name, args: c.Args, fix: c.Fix,
			refs: make([]*pvar.Ref, len(c.Args)), rx: make([]*regexp.Regexp, len(c.Args)), given: make([]bool, len(c.Args))}
		for j, a := range c.Args {
			cs.given[j] = a.Source != bytecode.ArgAbsent
			switch a.Source {
			case bytecode.ArgPV:
				cs.refs[j] = img.pvs[a.Index]
			case bytecode.ArgRegex:
				cs.rx[j] = p.Regexps[a.Index]
			}
		}
		img.calls[i] = cs
	}
	img.pool.New = func() any { return &machine{img: img, stack: make([]value.Value, 0, 32)} }
	return img, nil
}

// NumVars and NumAVPs size a msgctx.Msg for this image.
func (img *Image) NumVars() int { return len(img.Prog.VarNames) }
func (img *Image) NumAVPs() int { return len(img.Prog.AVPNames) }

type machine struct {
	img    *Image
	m      *msgctx.Msg
	stack  []value.Value
	args   modules.Args
	argbuf [8]value.Value
	loops  int
	depth  int
	sb     strings.Builder
}

// Run executes route number r of the program for message m and reports how
// it ended. A fault (a bug in a module, a runaway loop) is logged with the
// route and position and ends the run; it never escapes as a panic.
func (img *Image) Run(m *msgctx.Msg, r int) (out Outcome) {
	mach := img.pool.Get().(*machine)
	mach.m, mach.loops, mach.depth = m, img.LoopBudget, 0
	mach.stack = mach.stack[:0]
	defer func() {
		if p := recover(); p != nil {
			out = Faulted
			mach.fault(fmt.Sprint(p))
		}
		mach.m = nil
		img.pool.Put(mach)
	}()
	return mach.route(r, nil)
}

func (mach *machine) fault(msg string) {
	if mach.m != nil && mach.m.Host != nil {
		mach.m.Host.Log(mach.m, msgctx.LErr, "script fault: "+msg)
	}
}

func (mach *machine) faultAt(pc int, format string, args ...any) {
	p := mach.img.Prog
	where := ""
	if pc >= 0 && pc < len(p.Pos) {
		where = p.Pos[pc].String() + ": "
	}
	mach.fault(where + fmt.Sprintf(format, args...))
}

// route runs one route body; it returns Returned with m.RetCode set, or the
// outcome that ends the whole script.
func (mach *machine) route(r int, params []value.Value) Outcome {
	saved := mach.m.Params
	mach.m.Params = params
	o := mach.exec(r)
	mach.m.Params = saved
	return o
}

func (mach *machine) exec(r int) Outcome {
	img := mach.img
	prog := img.Prog
	code := prog.Code
	m := mach.m
	pc := prog.Routes[r].Entry
	base := len(mach.stack)
	for {
		in := code[pc]
		pc++
		switch in.Op {
		case bytecode.OpNop:
		case bytecode.OpConst:
			mach.stack = append(mach.stack, prog.Consts[in.A])
		case bytecode.OpLoadPV:
			v, err := img.pvs[in.A].GetErr(m)
			if err != nil {
				mach.faultAt(pc-1, "%v", err)
			}
			mach.stack = append(mach.stack, v)
		case bytecode.OpStorePV:
			v := mach.pop()
			op := "="
			if in.B == 1 {
				op = ":="
			}
			if err := img.pvs[in.A].Set(m, op, v); err != nil {
				mach.faultAt(pc-1, "assignment to %s: %v", img.pvs[in.A].Text, err)
			}
		case bytecode.OpFormat:
			mach.stack = append(mach.stack, value.S(mach.format(in.A)))
		case bytecode.OpIter:
			v, err := img.pvs[in.A].GetAt(m, mach.top().I)
			if err != nil {
				mach.faultAt(pc-1, "%v", err)
			}
			mach.stack = append(mach.stack, v)
			mach.pushBool(!v.IsNull())
		case bytecode.OpPop:
			mach.stack = mach.stack[:len(mach.stack)-1]
		case bytecode.OpDup:
			mach.stack = append(mach.stack, mach.stack[len(mach.stack)-1])
		case bytecode.OpCall:
			ret := mach.call(in.A)
			m.RetCode = ret
			if ret == 0 {
				return Exited
			}
			if in.B == 1 {
				mach.pushBool(ret > 0)
			}
		case bytecode.OpRouteCall:
			rc := prog.RouteCalls[in.A]
			if mach.depth >= MaxRouteDepth {
				mach.faultAt(pc-1, "route calls nested deeper than %d", MaxRouteDepth)
				return Faulted
			}
			n := len(mach.stack)
			args := mach.stack[n-rc.NArgs : n : n]
			mach.depth++
			o := mach.route(rc.Route, args)
			mach.depth--
			if o != Returned {
				return o
			}
			mach.stack = mach.stack[:n-rc.NArgs]
			if in.B == 1 {
				mach.pushBool(m.RetCode > 0)
			}
		case bytecode.OpJump:
			pc = int(in.A)
		case bytecode.OpLoop:
			mach.loops--
			if mach.loops < 0 {
				mach.faultAt(pc-1, "loop budget of %d iterations exhausted", img.LoopBudget)
				return Faulted
			}
			pc = int(in.A)
		case bytecode.OpJumpIfFalse:
			if !mach.pop().Truth() {
				pc = int(in.A)
			}
		case bytecode.OpJumpIfTrue:
			if mach.pop().Truth() {
				pc = int(in.A)
			}
		case bytecode.OpOrJump:
			if mach.top().Truth() {
				pc = int(in.A)
			} else {
				mach.stack = mach.stack[:len(mach.stack)-1]
			}
		case bytecode.OpAndJump:
			if !mach.top().Truth() {
				pc = int(in.A)
			} else {
				mach.stack = mach.stack[:len(mach.stack)-1]
			}
		case bytecode.OpEq:
			b, a := mach.pop(), mach.pop()
			mach.pushBool(value.Equal(a, b))
		case bytecode.OpNe:
			b, a := mach.pop(), mach.pop()
			mach.pushBool(!value.Equal(a, b))
		case bytecode.OpLt, bytecode.OpLe, bytecode.OpGt, bytecode.OpGe:
			b, a := mach.pop(), mach.pop()
			c, ok := value.Compare(a, b)
			var r bool
			if ok {
				switch in.Op {
				case bytecode.OpLt:
					r = c < 0
				case bytecode.OpLe:
					r = c <= 0
				case bytecode.OpGt:
					r = c > 0
				default:
					r = c >= 0
				}
			}
			mach.pushBool(r)
		case bytecode.OpMatch:
			a := mach.pop()
			r := !a.IsNull() && prog.Matchers[in.A].MatchString(a.AsString())
			mach.pushBool(r != (in.B == 1))
		case bytecode.OpMatchDyn:
			b, a := mach.pop(), mach.pop()
			rx, err := regexp.Compile("(?i)" + b.AsString())
			if err != nil {
				mach.faultAt(pc-1, "bad regular expression %q: %v", b.AsString(), err)
				mach.pushBool(false)
				break
			}
			r := !a.IsNull() && rx.MatchString(a.AsString())
			mach.pushBool(r != (in.B == 1))
		case bytecode.OpMyself:
			mach.pushBool(mach.myself(mach.pop()))
		case bytecode.OpAdd:
			b, a := mach.pop(), mach.pop()
			if a.IsInt() && (b.IsInt() || b.IsNull()) || a.IsNull() && b.IsInt() {
				mach.stack = append(mach.stack, value.I(a.I+b.I))
			} else {
				mach.stack = append(mach.stack, value.S(a.AsString()+b.AsString()))
			}
		case bytecode.OpSub, bytecode.OpMul, bytecode.OpDiv, bytecode.OpMod,
			bytecode.OpBitOr, bytecode.OpBitAnd, bytecode.OpBitXor, bytecode.OpShl, bytecode.OpShr:
			b, a := mach.pop(), mach.pop()
			x, _ := a.AsInt()
			y, _ := b.AsInt()
			mach.stack = append(mach.stack, value.I(mach.arith(pc-1, in.Op, x, y)))
		case bytecode.OpNeg:
			x, _ := mach.pop().AsInt()
			mach.stack = append(mach.stack, value.I(-x))
		case bytecode.OpBitNot:
			x, _ := mach.pop().AsInt()
			mach.stack = append(mach.stack, value.I(^x))
		case bytecode.OpNot:
			mach.pushBool(!mach.pop().Truth())
		case bytecode.OpReturn:
			n, _ := mach.pop().AsInt()
			mach.stack = mach.stack[:base]
			m.RetCode = n
			if n == 0 {
				return Exited
			}
			return Returned
		case bytecode.OpReturnNone:
			mach.stack = mach.stack[:base]
			m.RetCode = 1
			return Returned
		case bytecode.OpExit:
			return Exited
		case bytecode.OpDrop:
			return Dropped
		default:
			mach.faultAt(pc-1, "unknown opcode %d", in.Op)
			return Faulted
		}
	}
}

func (mach *machine) pop() value.Value {
	n := len(mach.stack) - 1
	v := mach.stack[n]
	mach.stack = mach.stack[:n]
	return v
}

func (mach *machine) top() value.Value { return mach.stack[len(mach.stack)-1] }

func (mach *machine) pushBool(b bool) {
	if b {
		mach.stack = append(mach.stack, value.I(1))
	} else {
		mach.stack = append(mach.stack, value.I(0))
	}
}

func (mach *machine) arith(pc int, op bytecode.Opcode, x, y int) int {
	switch op {
	case bytecode.OpSub:
		return x - y
	case bytecode.OpMul:
		return x * y
	case bytecode.OpDiv, bytecode.OpMod:
		if y == 0 {
			mach.faultAt(pc, "division by zero")
			return 0
		}
		if op == bytecode.OpDiv {
			return x / y
		}
		return x % y
	case bytecode.OpBitOr:
		return x | y
	case bytecode.OpBitAnd:
		return x & y
	case bytecode.OpBitXor:
		return x ^ y
	case bytecode.OpShl:
		return x << uint(y&63)
	}
	return x >> uint(y&63)
}

func (mach *machine) format(i int32) string {
	f := &mach.img.Prog.Formats[i]
	mach.sb.Reset()
	for _, s := range f.Segs {
		if s.PV < 0 {
			mach.sb.WriteString(s.Text)
			continue
		}
		v, err := mach.img.pvs[s.PV].GetErr(mach.m)
		if err != nil {
			mach.fault(err.Error())
		}
		mach.sb.WriteString(v.String())
	}
	return mach.sb.String()
}

func (mach *machine) call(i int32) int {
	cs := &mach.img.calls[i]
	prog := mach.img.Prog
	n := len(cs.args)
	vals := mach.argbuf[:0]
	if n > len(mach.argbuf) {
		vals = make([]value.Value, 0, n)
	}
	for _, a := range cs.args {
		var v value.Value
		switch a.Source {
		case bytecode.ArgConst:
			v = prog.Consts[a.Index]
		case bytecode.ArgFormat:
			v = value.S(mach.format(int32(a.Index)))
		case bytecode.ArgPV:
			if !a.ByRef {
				v = mach.img.pvs[a.Index].Get(mach.m)
			}
		case bytecode.ArgRoute:
			v = value.I(a.Index)
		}
		vals = append(vals, v)
	}
	mach.args = modules.Args{Vals: vals, Refs: cs.refs, Rx: cs.rx, Given: cs.given, Fix: cs.fix}
	return cs.fn.Call(mach.m, &mach.args)
}

func (mach *machine) myself(v value.Value) bool {
	if mach.img.Myself == nil {
		return false
	}
	host, port := HostPort(v.AsString())
	return mach.img.Myself(host, port)
}

// HostPort extracts host and port (0 when absent) from a SIP URI or a bare
// host[:port].
func HostPort(uri string) (string, int) {
	s := uri
	if i := strings.IndexByte(s, ':'); i >= 0 && (strings.HasPrefix(s, "sip:") || strings.HasPrefix(s, "sips:") || strings.HasPrefix(s, "tel:")) {
		s = s[i+1:]
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[i+1:]
	}
	if i := strings.IndexAny(s, ";?>"); i >= 0 {
		s = s[:i]
	}
	if strings.HasPrefix(s, "[") {
		if j := strings.IndexByte(s, ']'); j > 0 {
			host, rest := s[:j+1], s[j+1:]
			return host, portOf(rest)
		}
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		return s[:i], portOf(s[i:])
	}
	return s, 0
}

func portOf(s string) int {
	if !strings.HasPrefix(s, ":") {
		return 0
	}
	n := 0
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}
