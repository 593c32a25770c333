package bytecode

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Disassemble prints every route's code, one instruction per line with its
// operands spelled out and its source position.
func (p *Program) Disassemble(w io.Writer) {
	for ri, r := range p.Routes {
		name := r.Kind.String()
		if r.Name != "" {
			name += "[" + r.Name + "]"
		}
		end := len(p.Code)
		for _, other := range p.Routes[ri+1:] {
			if other.Entry > r.Entry && other.Entry < end {
				end = other.Entry
			}
		}
		for _, other := range p.Routes[:ri] {
			if other.Entry > r.Entry && other.Entry < end {
				end = other.Entry
			}
		}
		fmt.Fprintf(w, "%s:\n", name)
		for pc := r.Entry; pc < end; pc++ {
			in := p.Code[pc]
			fmt.Fprintf(w, "  %4d  %-12s %-36s # %s\n", pc, in.Op, p.operands(in), p.Pos[pc])
		}
	}
}

func (p *Program) operands(in Instr) string {
	switch in.Op {
	case OpConst:
		v := p.Consts[in.A]
		if v.IsNull() {
			return "NULL"
		}
		if v.IsStr() {
			return strconv.Quote(v.S)
		}
		return strconv.Itoa(v.I)
	case OpLoadPV, OpIter:
		return p.PVars[in.A].Text
	case OpStorePV:
		if in.B == 1 {
			return p.PVars[in.A].Text + " :="
		}
		return p.PVars[in.A].Text
	case OpFormat:
		return p.formatText(int(in.A))
	case OpCall:
		c := p.Calls[in.A]
		args := make([]string, len(c.Args))
		for i, a := range c.Args {
			args[i] = p.argText(a)
		}
		s := c.Name + "(" + strings.Join(args, ", ") + ")"
		if in.B == 1 {
			s += " -> bool"
		}
		return s
	case OpRouteCall:
		rc := p.RouteCalls[in.A]
		s := fmt.Sprintf("route[%s] args=%d", p.Routes[rc.Route].Name, rc.NArgs)
		if in.B == 1 {
			s += " -> bool"
		}
		return s
	case OpJump, OpLoop, OpJumpIfFalse, OpJumpIfTrue, OpOrJump, OpAndJump:
		return "-> " + strconv.Itoa(int(in.A))
	case OpMatch:
		s := strconv.Quote(p.Matchers[in.A].Re.String())
		if in.B == 1 {
			s = "not " + s
		}
		return s
	case OpMatchDyn:
		if in.B == 1 {
			return "not"
		}
	}
	return ""
}

func (p *Program) formatText(i int) string {
	var b strings.Builder
	for _, s := range p.Formats[i].Segs {
		if s.PV < 0 {
			b.WriteString(s.Text)
		} else {
			b.WriteString(p.PVars[s.PV].Text)
		}
	}
	return strconv.Quote(b.String())
}

func (p *Program) argText(a Arg) string {
	switch a.Source {
	case ArgAbsent:
		return "-"
	case ArgConst:
		v := p.Consts[a.Index]
		if v.IsStr() {
			return strconv.Quote(v.S)
		}
		return strconv.Itoa(v.I)
	case ArgFormat:
		return "fmt " + p.formatText(a.Index)
	case ArgPV:
		if a.ByRef {
			return "&" + p.PVars[a.Index].Text
		}
		return p.PVars[a.Index].Text
	case ArgRegex:
		return "re " + strconv.Quote(p.Regexps[a.Index].String())
	case ArgRoute:
		r := p.Routes[a.Index]
		return r.Kind.String() + "[" + r.Name + "]"
	}
	return "?"
}
