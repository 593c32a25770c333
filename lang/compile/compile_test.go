package compile_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/sipedge/sipedge/internal/txtar"
	"github.com/sipedge/sipedge/lang/syntax"
	_ "github.com/sipedge/sipedge/modules/all"
	"github.com/sipedge/sipedge/runtime/engine"
)

var update = flag.Bool("update", false, "rewrite the disasm sections of testdata/*.txtar")

// TestDisassembly compiles each testdata/*.txtar `in.cfg` and compares the
// disassembly (opcodes, operands and one source position per instruction)
// with its `disasm` section.
func TestDisassembly(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txtar")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			a := txtar.Parse(data)
			src, _ := a.Get("in.cfg")
			want, _ := a.Get("disasm")
			file, err := syntax.Parse("in.cfg", src)
			if err != nil {
				t.Fatal(err)
			}
			s, err := engine.Build(file)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			s.Prog.Disassemble(&got)
			if bytes.Equal(got.Bytes(), want) {
				return
			}
			if *update {
				a.Set("disasm", got.Bytes())
				if err := os.WriteFile(f, txtar.Format(a), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			t.Errorf("disassembly differs\nwant:\n%s\ngot:\n%s", want, got.Bytes())
		})
	}
}

// TestConstantsDeduplicated checks a constant used many times is stored once.
func TestConstantsDeduplicated(t *testing.T) {
	src := `route { $var(a) = "x"; $var(b) = "x"; $var(c) = 5; $var(d) = 5; if ($var(a) == "x") exit; }`
	file, err := syntax.Parse("in.cfg", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	s, err := engine.Build(file)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.Prog.Consts); n != 2 {
		t.Errorf("%d constants, want 2: %v", n, s.Prog.Consts)
	}
	if n := len(s.Prog.PVars); n != 4 {
		t.Errorf("%d pvar slots, want 4", n)
	}
}
