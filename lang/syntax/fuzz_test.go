package syntax

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/source"
)

// FuzzParse checks that Parse never panics (an internal panic would show as
// an "internal parser error"), that every error is positioned inside the
// input, and that a successful parse can be printed and walked.
func FuzzParse(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*.txtar")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		a := parseTxtar(b)
		for _, file := range a.Files {
			if file.Name != "ast" && file.Name != "errors" {
				f.Add(file.Data)
			}
		}
	}
	f.Add(genConfig(200))
	f.Fuzz(func(t *testing.T, src []byte) {
		file, err := Parse("fuzz.cfg", src)
		if file == nil {
			t.Fatal("nil file")
		}
		lines := 1
		for _, c := range src {
			if c == '\n' {
				lines++
			}
		}
		if err != nil {
			var list source.ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %T is not a non-empty ErrorList: %v", err, err)
			}
			for _, e := range list {
				if e.Pos.File != "fuzz.cfg" || e.Pos.Line < 1 || e.Pos.Line > lines || e.Pos.Col < 1 {
					t.Fatalf("badly positioned error %v", e)
				}
				if len(e.Msg) >= 23 && e.Msg[:23] == "internal parser error: " {
					t.Fatalf("panic: %v", e)
				}
			}
			return
		}
		ast.Fprint(discard{}, file)
		ast.InspectFile(file, func(n ast.Node) bool {
			if n != nil && !n.Pos().IsValid() {
				t.Fatalf("node %T without a position", n)
			}
			return true
		})
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
