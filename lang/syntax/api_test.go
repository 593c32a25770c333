package syntax

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/source"
)

func TestInspectVisitsNestedPVars(t *testing.T) {
	f, err := Parse("x.cfg", []byte(`route {
	if ($(avp(a)[$var(i)]{s.substr,0,$var(n)}) == $hdr($var(h))) {
		xlog("L_INFO", "x");
	} else if (uri == myself) { route(r, $var(arg)); }
	switch ($rU) { case 1: $var(z) = -$var(y); }
	while (!f($var(w))) { async(g($var(g)), r); }
	return($var(ret));
}`))
	if err != nil {
		t.Fatal(err)
	}
	var pvars []string
	kinds := map[string]int{}
	ast.InspectFile(f, func(n ast.Node) bool {
		if n == nil {
			return true
		}
		kinds[fmt.Sprintf("%T", n)]++
		if pv, ok := n.(*ast.PVar); ok {
			pvars = append(pvars, pv.String())
		}
		return true
	})
	want := "$(avp(a)[$var(i)]{s.substr,0,$var(n)}) $var(i) $var(n) $hdr($var(h)) $var(h) $var(arg) $rU $var(z) $var(y) $var(w) $var(g) $var(ret)"
	if got := strings.Join(pvars, " "); got != want {
		t.Errorf("pvars visited:\n got %s\nwant %s", got, want)
	}
	for _, k := range []string{"*ast.If", "*ast.Switch", "*ast.Case", "*ast.While", "*ast.Async", "*ast.Return",
		"*ast.RouteCall", "*ast.Keyword", "*ast.Unary", "*ast.Binary", "*ast.Call", "*ast.Assign", "*ast.Block"} {
		if kinds[k] == 0 {
			t.Errorf("Inspect never visited a %s", k)
		}
	}
	// returning false prunes
	count := 0
	ast.InspectFile(f, func(n ast.Node) bool {
		if n != nil {
			count++
		}
		_, isBlock := n.(*ast.Block)
		return !isBlock
	})
	if count != 1 {
		t.Errorf("pruned walk visited %d nodes, want 1", count)
	}
}

func TestErrorsBind(t *testing.T) {
	src := []byte("route {\n\txlog(\"a\")\n\texit;\n}\n")
	_, err := Parse("b.cfg", src)
	var list source.ErrorList
	if !errors.As(err, &list) || len(list) != 1 {
		t.Fatalf("want one error, got %v", err)
	}
	list.Bind(map[string][]byte{"b.cfg": src})
	want := "b.cfg:2:11: missing ';' before 'exit'\n\t\txlog(\"a\")\n\t\t         ^"
	if got := list.Error(); got != want {
		t.Errorf("bound error:\n%s\nwant:\n%s", got, want)
	}
}

func TestParseFileFromDisk(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("main.cfg", "route { include_file \"inc/b.cfg\" }\ninclude_file \"inc/a.cfg\"\n")
	write("inc/a.cfg", "log_level = 3\nimport_file \"b.cfg\"\n")
	write("inc/b.cfg", "exit;\n")
	main := filepath.Join(dir, "main.cfg")
	f, files, err := ParseFile(main, Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantIncl := []string{main, filepath.Join(dir, "inc/b.cfg"), filepath.Join(dir, "inc/a.cfg")}
	if fmt.Sprint(f.Includes) != fmt.Sprint(wantIncl) {
		t.Errorf("Includes = %v, want %v", f.Includes, wantIncl)
	}
	if len(files) != 3 {
		t.Errorf("files read: %d", len(files))
	}
	// b.cfg was read inside the route, so a.cfg's import_file skips it (its
	// "exit;" would be an error at the top level)
	if len(f.Routes) != 1 || len(f.Routes[0].Body.Stmts) != 1 {
		t.Fatalf("routes: %+v", f.Routes)
	}
	if got := f.Routes[0].Body.Stmts[0].Pos().File; got != filepath.Join(dir, "inc/b.cfg") {
		t.Errorf("statement position file %q", got)
	}
	if _, _, err := ParseFile(filepath.Join(dir, "nope.cfg"), Options{}); err == nil || !strings.Contains(err.Error(), "nope.cfg") {
		t.Errorf("missing main file: %v", err)
	}
}

func TestParseFilePreprocess(t *testing.T) {
	if _, err := exec.LookPath("sed"); err != nil {
		t.Skip("no sed")
	}
	files := map[string]string{
		"m.cfg": "log_level = LEVEL\ninclude_file \"i.cfg\"\n",
		"i.cfg": "children = LEVEL\n",
	}
	read := func(name string) ([]byte, error) {
		if s, ok := files[name]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	}
	f, got, err := ParseFile("m.cfg", Options{Preprocess: "sed s/LEVEL/4/", ReadFile: read})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Globals) != 2 || f.Globals[0].Value.Int != 4 || f.Globals[1].Value.Int != 4 {
		t.Errorf("globals: %+v %+v", f.Globals[0], f.Globals[1])
	}
	if string(got["i.cfg"]) != "children = 4\n" {
		t.Errorf("files keep the preprocessed text: %q", got["i.cfg"])
	}
	_, _, err = ParseFile("m.cfg", Options{Preprocess: "exit 3", ReadFile: read})
	if err == nil || !strings.Contains(err.Error(), "preprocessor") {
		t.Errorf("failing preprocessor: %v", err)
	}
}

func TestParseRejectsIncludes(t *testing.T) {
	_, err := Parse("p.cfg", []byte("include_file \"x.cfg\"\n"))
	if err == nil || !strings.Contains(err.Error(), "p.cfg:1:1: include_file \"x.cfg\": including files needs ParseFile") {
		t.Errorf("got %v", err)
	}
}

func TestDeepNestingIsAnError(t *testing.T) {
	for _, src := range []string{
		"route {" + strings.Repeat("if (1) {", 5000) + "}",
		"route {" + strings.Repeat("if (1) ", 5000) + "exit; }",
		"route { if (1) {} " + strings.Repeat("else if (1) {} ", 5000) + "}",
		"route { $x = " + strings.Repeat("(", 5000) + "1; }",
		"route { $x = " + strings.Repeat("-", 5000) + "1; }",
	} {
		_, err := Parse("d.cfg", []byte(src))
		if err == nil || !strings.Contains(err.Error(), "too") {
			t.Errorf("%.30s...: %v", src, err)
		}
	}
}
