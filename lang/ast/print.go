package ast

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/sipedge/sipedge/lang/source"
)

// String returns the canonical OpenSIPS spelling of the pseudo-variable:
// $rU, $hdr(Via), $(hdr(Via)[0]), $(avp(x)[*]), $(rU{s.substr,0,4}{s.tolower}).
// The parenthesized form is used exactly when there is an index or a
// transformation.
func (p *PVar) String() string {
	if p == nil {
		return "<nil>"
	}
	var b strings.Builder
	p.write(&b)
	return b.String()
}

func (p *PVar) write(b *strings.Builder) {
	long := p.Index != nil || p.IndexAll || len(p.Trans) > 0
	b.WriteByte('$')
	if long {
		b.WriteByte('(')
	}
	b.WriteString(p.Name)
	if p.ArgPV != nil {
		b.WriteByte('(')
		p.ArgPV.write(b)
		b.WriteByte(')')
	} else if p.HasArg {
		b.WriteByte('(')
		b.WriteString(p.Arg)
		b.WriteByte(')')
	}
	if p.IndexAll {
		b.WriteString("[*]")
	} else if p.Index != nil {
		b.WriteByte('[')
		writeInline(b, p.Index)
		b.WriteByte(']')
	}
	for _, t := range p.Trans {
		b.WriteByte('{')
		b.WriteString(t.Class)
		b.WriteByte('.')
		b.WriteString(t.Name)
		for _, prm := range t.Params {
			b.WriteByte(',')
			writeInline(b, prm)
		}
		b.WriteByte('}')
	}
	if long {
		b.WriteByte(')')
	}
}

// writeInline spells an index or transformation parameter as it appears
// inside a pvar.
func writeInline(b *strings.Builder, e Expr) {
	switch e := e.(type) {
	case *PVar:
		e.write(b)
	case *Literal:
		switch {
		case e.Kind == IntLit && e.Str != "":
			b.WriteString(e.Str)
		case e.Kind == IntLit:
			b.WriteString(strconv.Itoa(e.Int))
		case e.Kind == NullLit:
			b.WriteString("NULL")
		default:
			b.WriteString(e.Str)
		}
	case *Unary:
		b.WriteString(e.Op)
		writeInline(b, e.X)
	default:
		fmt.Fprintf(b, "%T", e)
	}
}

// Fprint writes a deterministic, indented dump of f for golden tests. Every
// node shows its position: top-level items as file:line:col, nested nodes as
// line:col (or file:line:col when they come from another file, as with a
// statement-level include_file).
func Fprint(w io.Writer, f *File) {
	p := &printer{w: w}
	p.printf(0, "File")
	for _, g := range f.Globals {
		p.file = g.At.File
		head := "Global " + p.top(g.At) + " " + g.Name
		if g.Words != "" {
			head += " words=" + strconv.Quote(g.Words)
		}
		p.printf(1, "%s", head)
		if g.Value != nil {
			p.node(2, "", g.Value)
		}
	}
	for _, m := range f.Modules {
		p.file = m.At.File
		p.printf(1, "LoadModule %s %q name=%s", p.top(m.At), m.Path, m.Name)
	}
	for _, m := range f.Params {
		p.file = m.At.File
		p.printf(1, "ModParam %s %q %q", p.top(m.At), m.Module, m.Param)
		if m.Value != nil {
			p.node(2, "", m.Value)
		}
	}
	for _, r := range f.Routes {
		p.file = r.At.File
		head := "Route " + p.top(r.At) + " " + r.Kind.String()
		if r.Name != "" {
			head += " name=" + strconv.Quote(r.Name)
		}
		if r.Kind == TimerRoute || r.Interval != 0 {
			head += " interval=" + strconv.Itoa(r.Interval)
		}
		p.printf(1, "%s", head)
		if r.Body != nil {
			p.node(2, "", r.Body)
		}
	}
	if len(f.Includes) > 0 {
		p.printf(1, "Includes")
		for _, inc := range f.Includes {
			p.printf(2, "%q", inc)
		}
	}
}

type printer struct {
	w    io.Writer
	file string // file of the enclosing top-level item
}

func (p *printer) printf(depth int, format string, args ...any) {
	fmt.Fprintf(p.w, "%s%s\n", strings.Repeat("  ", depth), fmt.Sprintf(format, args...))
}

func (p *printer) top(pos source.Pos) string {
	if pos.File == "" {
		return fmt.Sprintf("%d:%d", pos.Line, pos.Col)
	}
	return fmt.Sprintf("%s:%d:%d", pos.File, pos.Line, pos.Col)
}

func (p *printer) pos(pos source.Pos) string {
	if pos.File != p.file && pos.File != "" {
		return p.top(pos)
	}
	return fmt.Sprintf("%d:%d", pos.Line, pos.Col)
}

func (p *printer) node(depth int, label string, n Node) {
	if label != "" {
		label += ": "
	}
	if n == nil || isNilNode(n) {
		p.printf(depth, "%s<nil>", label)
		return
	}
	switch n := n.(type) {
	case *Block:
		p.printf(depth, "%sBlock %s", label, p.pos(n.At))
		for _, s := range n.Stmts {
			p.node(depth+1, "", s)
		}
	case *If:
		p.printf(depth, "%sIf %s", label, p.pos(n.At))
		p.node(depth+1, "", n.Cond)
		p.node(depth+1, "", n.Then)
		if n.Else != nil {
			p.node(depth+1, "else", n.Else)
		}
	case *Switch:
		p.printf(depth, "%sSwitch %s", label, p.pos(n.At))
		p.node(depth+1, "", n.Tag)
		for _, c := range n.Cases {
			p.node(depth+1, "", c)
		}
	case *Case:
		if n.Value == nil {
			p.printf(depth, "%sCase %s default", label, p.pos(n.At))
		} else {
			p.printf(depth, "%sCase %s", label, p.pos(n.At))
			p.node(depth+1, "value", n.Value)
		}
		for _, s := range n.Body {
			p.node(depth+1, "", s)
		}
	case *While:
		p.printf(depth, "%sWhile %s", label, p.pos(n.At))
		p.node(depth+1, "", n.Cond)
		p.node(depth+1, "", n.Body)
	case *For:
		p.printf(depth, "%sFor %s", label, p.pos(n.At))
		p.node(depth+1, "var", n.Var)
		p.node(depth+1, "over", n.Over)
		p.node(depth+1, "", n.Body)
	case *Return:
		p.printf(depth, "%sReturn %s", label, p.pos(n.At))
		if n.Value != nil {
			p.node(depth+1, "", n.Value)
		}
	case *Exit:
		p.printf(depth, "%sExit %s", label, p.pos(n.At))
	case *Drop:
		p.printf(depth, "%sDrop %s", label, p.pos(n.At))
	case *Break:
		p.printf(depth, "%sBreak %s", label, p.pos(n.At))
	case *Assign:
		p.printf(depth, "%sAssign %s %q", label, p.pos(n.At), n.Op)
		p.node(depth+1, "", n.Target)
		p.node(depth+1, "", n.Value)
	case *ExprStmt:
		p.printf(depth, "%sExprStmt %s", label, p.pos(n.At))
		p.node(depth+1, "", n.X)
	case *Async:
		kind := "async"
		if n.Launch {
			kind = "launch"
		}
		p.printf(depth, "%sAsync %s %s resume=%q", label, p.pos(n.At), kind, n.Resume)
		if n.Call != nil {
			p.node(depth+1, "", n.Call)
		}
	case *Literal:
		switch n.Kind {
		case StringLit:
			p.printf(depth, "%sLiteral %s String %q", label, p.pos(n.At), n.Str)
		case IntLit:
			if n.Str != "" {
				p.printf(depth, "%sLiteral %s Int %d (%q)", label, p.pos(n.At), n.Int, n.Str)
			} else {
				p.printf(depth, "%sLiteral %s Int %d", label, p.pos(n.At), n.Int)
			}
		case NullLit:
			p.printf(depth, "%sLiteral %s NULL", label, p.pos(n.At))
		default:
			p.printf(depth, "%sLiteral %s kind=%d", label, p.pos(n.At), n.Kind)
		}
		for _, seg := range n.Format {
			if seg.PV != nil {
				p.node(depth+1, "fmt", seg.PV)
			} else {
				p.printf(depth+1, "fmt: text %q", seg.Text)
			}
		}
	case *PVar:
		p.printf(depth, "%sPVar %s %s", label, p.pos(n.At), n.String())
		if n.ArgPV != nil {
			p.node(depth+1, "arg", n.ArgPV)
		}
		if n.Index != nil {
			p.node(depth+1, "index", n.Index)
		}
		for _, t := range n.Trans {
			p.printf(depth+1, "trans: %s %s.%s", p.pos(t.At), t.Class, t.Name)
			for _, prm := range t.Params {
				p.node(depth+2, "", prm)
			}
		}
	case *Call:
		p.printf(depth, "%sCall %s %s", label, p.pos(n.At), n.Name)
		for _, a := range n.Args {
			p.node(depth+1, "", a)
		}
	case *RouteCall:
		p.printf(depth, "%sRouteCall %s %q", label, p.pos(n.At), n.Name)
		for _, a := range n.Args {
			p.node(depth+1, "", a)
		}
	case *Binary:
		p.printf(depth, "%sBinary %s %q", label, p.pos(n.At), n.Op)
		p.node(depth+1, "", n.X)
		p.node(depth+1, "", n.Y)
	case *Unary:
		p.printf(depth, "%sUnary %s %q", label, p.pos(n.At), n.Op)
		p.node(depth+1, "", n.X)
	case *Keyword:
		p.printf(depth, "%sKeyword %s %s", label, p.pos(n.At), n.Name)
	default:
		p.printf(depth, "%s%T %s", label, n, p.pos(n.Pos()))
	}
}

// isNilNode reports a typed nil inside a Node interface.
func isNilNode(n Node) bool {
	switch n := n.(type) {
	case *Block:
		return n == nil
	case *If:
		return n == nil
	case *Switch:
		return n == nil
	case *Case:
		return n == nil
	case *While:
		return n == nil
	case *For:
		return n == nil
	case *Return:
		return n == nil
	case *Exit:
		return n == nil
	case *Drop:
		return n == nil
	case *Break:
		return n == nil
	case *Assign:
		return n == nil
	case *ExprStmt:
		return n == nil
	case *Async:
		return n == nil
	case *Literal:
		return n == nil
	case *PVar:
		return n == nil
	case *Call:
		return n == nil
	case *RouteCall:
		return n == nil
	case *Binary:
		return n == nil
	case *Unary:
		return n == nil
	case *Keyword:
		return n == nil
	}
	return false
}
