package syntax

import (
	"errors"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/source"
)

var at = source.Pos{File: "f.cfg", Line: 3, Col: 10}

func TestParsePVarCanonical(t *testing.T) {
	tests := []struct {
		in, canon string
		n         int // bytes consumed; 0 = all
	}{
		{"$rU", "$rU", 0},
		{"$rU;", "$rU", 3},
		{"$rU.", "$rU", 3}, // "." ends a name, unlike OpenSIPS's is_pv_valid_char
		{"$T_reply_code", "$T_reply_code", 0},
		{"$hdr(Via)", "$hdr(Via)", 0},
		{"$hdr(Via)[0]", "$hdr(Via)", 9}, // an index needs $(...)
		{"$rU{s.len}", "$rU", 3},
		{"$(rU)", "$rU", 0},
		{"$(hdr(Via)[0])", "$(hdr(Via)[0])", 0},
		{"$(avp(x)[*])", "$(avp(x)[*])", 0},
		{"$(avp(x)[-1])", "$(avp(x)[-1])", 0},
		{"$( avp(x)[ 2 ])", "", -1},
		{"$(avp(x)[ 2 ])", "$(avp(x)[2])", 0},
		{"$(avp(x)[$var(i)])", "$(avp(x)[$var(i)])", 0},
		{"$hdr($var(n))", "$hdr($var(n))", 0},
		{"$hdr(X-$var(n))", "$hdr(X-$var(n))", 0},
		{"$(rU{s.substr,0,4}{s.tolower})", "$(rU{s.substr,0,4}{s.tolower})", 0},
		{"$(rU{s.substr,0,$var(len)})", "$(rU{s.substr,0,$var(len)})", 0},
		{"$(rU{s.substr, 0, 4})", "$(rU{s.substr,0,4})", 0},
		{"$(ct{param.value,tag})", "$(ct{param.value,tag})", 0},
		{"$(var(x){re.subst,/a/b/g})", "$(var(x){re.subst,/a/b/g})", 0},
		{"$(hdr(X){s.select,1,,})", "$(hdr(X){s.select,1,,})", 0},
		{"$(hdr(X){s.select,1,}})", "$(hdr(X){s.select,1,}})", 0},
		{"$(hdr(Via)[0]{via.branch} {s.len})", "$(hdr(Via)[0]{via.branch}{s.len})", 0},
		{"$(rU{s.substr,0,$(var(x){s.int})})", "$(rU{s.substr,0,$(var(x){s.int})})", 0},
	}
	for _, tt := range tests {
		pv, n, err := ParsePVar(tt.in, at)
		if tt.n < 0 {
			if err == nil {
				t.Errorf("ParsePVar(%q) = %s, want an error", tt.in, pv)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePVar(%q): %v", tt.in, err)
			continue
		}
		want := tt.n
		if want == 0 {
			want = len(tt.in)
		}
		if n != want || pv.String() != tt.canon {
			t.Errorf("ParsePVar(%q) = %s, %d; want %s, %d", tt.in, pv, n, tt.canon, want)
		}
		if pv.At != at {
			t.Errorf("ParsePVar(%q).At = %v, want %v", tt.in, pv.At, at)
		}
		// the canonical text parses back to the same thing
		back, n2, err := ParsePVar(pv.String(), at)
		if err != nil || n2 != len(pv.String()) || back.String() != pv.String() {
			t.Errorf("round trip of %s: %v, %d, %v", pv, back, n2, err)
		}
	}
}

func TestParsePVarParts(t *testing.T) {
	pv, _, err := ParsePVar("$(avp(x)[$var(i)]{s.substr,1,$var(n)})", at)
	if err != nil {
		t.Fatal(err)
	}
	if pv.Name != "avp" || pv.Arg != "x" || !pv.HasArg || pv.ArgPV != nil {
		t.Errorf("name/arg: %+v", pv)
	}
	idx, ok := pv.Index.(*ast.PVar)
	if !ok || idx.String() != "$var(i)" || idx.At.Col != at.Col+9 {
		t.Errorf("index: %#v", pv.Index)
	}
	tr := pv.Trans[0]
	if tr.Class != "s" || tr.Name != "substr" || tr.At.Col != at.Col+17 || len(tr.Params) != 2 {
		t.Fatalf("transform: %+v", tr)
	}
	if lit := tr.Params[0].(*ast.Literal); lit.Kind != ast.IntLit || lit.Int != 1 {
		t.Errorf("param 0: %+v", lit)
	}
	if p1 := tr.Params[1].(*ast.PVar); p1.String() != "$var(n)" || p1.At.Col != at.Col+29 {
		t.Errorf("param 1: %+v", p1)
	}
	inner, _, _ := ParsePVar("$hdr($var(n))", at)
	if inner.ArgPV == nil || inner.Arg != "" || inner.ArgPV.At.Col != at.Col+5 {
		t.Errorf("ArgPV: %+v", inner)
	}
}

func TestParsePVarErrors(t *testing.T) {
	tests := []struct {
		in  string
		col int // offset of the error in in
		msg string
	}{
		{"$", 1, "expected a name"},
		{"$1", 1, "invalid pseudo-variable name"},
		{"$(rU", 4, "missing ')'"},
		{"$(rU{s.len}x)", 11, "invalid character 'x'"},
		{"$(avp(x)[abc])", 9, "invalid index"},
		{"$(avp(x)[])", 8, "empty index"},
		{"$hdr()", 4, "empty name"},
		{"$(rU{nodot})", 4, "invalid transformation"},
		{"$(rU{s.len)", 4, "unterminated transformation"},
		{"$<reply>hdr(Via)", 1, "contexts"},
		{"$(rU{s.substr,0,$})", 17, "expected a name"},
		{strings.Repeat("$hdr(", 20) + "x" + strings.Repeat(")", 20), 85, "nested too deeply"},
	}
	for _, tt := range tests {
		_, _, err := ParsePVar(tt.in, at)
		var list source.ErrorList
		if !errors.As(err, &list) || len(list) == 0 {
			t.Errorf("ParsePVar(%q): error %v is not an ErrorList", tt.in, err)
			continue
		}
		e := list[0]
		if e.Pos.Line != at.Line || e.Pos.Col != at.Col+tt.col || !strings.Contains(e.Msg, tt.msg) {
			t.Errorf("ParsePVar(%q): %v, want col %d and %q", tt.in, e, at.Col+tt.col, tt.msg)
		}
	}
}

func TestParseFormat(t *testing.T) {
	dump := func(segs []ast.FormatSegment) string {
		var b strings.Builder
		for _, s := range segs {
			if s.PV != nil {
				b.WriteString("[" + s.PV.String() + "]")
			} else {
				b.WriteString("<" + s.Text + ">")
			}
		}
		return b.String()
	}
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain", "<plain>"},
		{"$rm from $si:$sp $(rU{s.substr,0,4}) x$", "[$rm]< from >[$si]<:>[$sp]< >[$(rU{s.substr,0,4})]< x$>"},
		{`^\+?[0-9]+$`, `<^\+?[0-9]+$>`},
		{"cost $$5 $1 $ $", "<cost $5 $1 $ $>"},
		{"$var(x)[0] $rU{s.len}", "[$var(x)]<[0] >[$rU]<{s.len}>"},
		{"$hdr($var(n))!", "[$hdr($var(n))]<!>"},
	}
	for _, tt := range tests {
		segs, err := ParseFormat(tt.in, at)
		if err != nil {
			t.Errorf("ParseFormat(%q): %v", tt.in, err)
			continue
		}
		if got := dump(segs); got != tt.want {
			t.Errorf("ParseFormat(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
	segs, _ := ParseFormat("ab $rU", at)
	if segs[1].PV.At.Col != at.Col+3 {
		t.Errorf("pvar position %v", segs[1].PV.At)
	}
	if _, err := ParseFormat("x $(rU", at); err == nil {
		t.Errorf("ParseFormat of a broken pvar: no error")
	}
}

func TestUnquote(t *testing.T) {
	tests := []struct{ in, want string }{
		{`"a\nb"`, "a\nb"},
		{`"\t\r\a\"\\"`, "\t\r\a\"\\"},
		{`"\x41\x4a\x4"`, "AJ\x04"},
		{`"\101\60\0"`, "A0\\0"},
		{`"\1\.\+\q"`, `\1\.\+\q`},
		{`"\xg"`, `\xg`},
		{"\"a\\\nb\"", "ab"},
		{`'a\nb'`, `a\nb`},
		{`"unterminated`, "unterminated"},
	}
	for _, tt := range tests {
		if got := unquote(tt.in); got != tt.want {
			t.Errorf("unquote(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
