package ast

import (
	"strings"
	"testing"

	"github.com/sipedge/sipedge/lang/source"
)

func TestPVarString(t *testing.T) {
	v := func(name, arg string) *PVar { return &PVar{Name: name, Arg: arg, HasArg: arg != ""} }
	idx := v("avp", "x")
	idx.IndexAll = true
	tr := v("rU", "")
	tr.Trans = []*Transform{
		{Class: "s", Name: "substr", Params: []Expr{&Literal{Kind: IntLit, Int: 0}, &Literal{Kind: IntLit, Int: 4}}},
		{Class: "s", Name: "tolower"},
	}
	inner := v("hdr", "")
	inner.HasArg, inner.ArgPV = true, v("var", "n")
	neg := v("hdr", "Via")
	neg.Index = &Literal{Kind: IntLit, Int: -1}
	for pv, want := range map[*PVar]string{
		v("rU", ""): "$rU", v("hdr", "Via"): "$hdr(Via)", idx: "$(avp(x)[*])",
		tr: "$(rU{s.substr,0,4}{s.tolower})", inner: "$hdr($var(n))", neg: "$(hdr(Via)[-1])",
	} {
		if got := pv.String(); got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

func TestFprint(t *testing.T) {
	at := func(l, c int) source.Pos { return source.Pos{File: "a.cfg", Line: l, Col: c} }
	f := &File{Routes: []*Route{{At: at(1, 1), Kind: FailureRoute, Name: "x", Body: &Block{At: at(1, 19), Stmts: []Stmt{
		&ExprStmt{At: source.Pos{File: "b.cfg", Line: 2, Col: 3}, X: &Call{At: source.Pos{File: "b.cfg", Line: 2, Col: 3}, Name: "t_relay"}},
	}}}}}
	var b strings.Builder
	Fprint(&b, f)
	want := "File\n  Route a.cfg:1:1 failure_route name=\"x\"\n    Block 1:19\n      ExprStmt b.cfg:2:3\n        Call b.cfg:2:3 t_relay\n"
	if b.String() != want {
		t.Errorf("got:\n%swant:\n%s", b.String(), want)
	}
}
