package syntax

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/source"
)

var update = flag.Bool("update", false, "rewrite the golden sections of testdata/*.txtar")

// Each testdata/*.txtar holds a script in "in.cfg" and either the expected
// AST dump ("ast") or the expected errors ("errors", one per line). Any other
// section is a file that in.cfg may include; archives with such files are
// parsed with ParseFile, the others with Parse.
func TestGolden(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.txtar")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txtar"), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			a := parseTxtar(data)
			gotAST, gotErrs := runArchive(t, a)
			if *update {
				a.remove("ast")
				a.remove("errors")
				if gotErrs != "" {
					a.set("errors", []byte(gotErrs))
				} else {
					a.set("ast", []byte(gotAST))
				}
				if err := os.WriteFile(path, a.format(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErrs, hasErrs := a.get("errors")
			wantAST, hasAST := a.get("ast")
			if !hasErrs && !hasAST {
				t.Fatalf("%s has neither an ast nor an errors section (run with -update)", path)
			}
			if hasErrs && string(wantErrs) != gotErrs {
				t.Errorf("errors differ\n--- want\n%s--- got\n%s", wantErrs, gotErrs)
			}
			if !hasErrs && gotErrs != "" {
				t.Errorf("unexpected errors:\n%s", gotErrs)
			}
			if hasAST && string(wantAST) != gotAST {
				t.Errorf("ast differs\n%s", diffLines(string(wantAST), gotAST))
			}
		})
	}
}

// runArchive parses the archive's in.cfg and returns the AST dump and the
// error lines.
func runArchive(t testing.TB, a *txtar) (string, string) {
	src, ok := a.get("in.cfg")
	if !ok {
		t.Fatalf("archive has no in.cfg")
	}
	extra := map[string][]byte{}
	for _, f := range a.Files {
		switch f.Name {
		case "in.cfg", "ast", "errors":
		default:
			extra[filepath.Clean(f.Name)] = f.Data
		}
	}
	var f *ast.File
	var err error
	if len(extra) == 0 {
		f, err = Parse("in.cfg", src)
	} else {
		extra["in.cfg"] = src
		f, _, err = ParseFile("in.cfg", Options{ReadFile: func(name string) ([]byte, error) {
			if b, ok := extra[filepath.Clean(name)]; ok {
				return b, nil
			}
			return nil, fmt.Errorf("open %s: %w", name, os.ErrNotExist)
		}})
	}
	var out bytes.Buffer
	ast.Fprint(&out, f)
	return out.String(), errorLines(t, err)
}

func errorLines(t testing.TB, err error) string {
	if err == nil {
		return ""
	}
	var list source.ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error is %T, not a source.ErrorList: %v", err, err)
	}
	var b strings.Builder
	for _, e := range list {
		fmt.Fprintf(&b, "%s: %s\n", e.Pos, e.Msg)
	}
	return b.String()
}

func diffLines(want, got string) string {
	w := strings.Split(want, "\n")
	g := strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("first difference at line %d:\nwant: %s\n got: %s", i+1, wl, gl)
		}
	}
	return "(no difference)"
}
