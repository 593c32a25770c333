package vm_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/internal/txtar"
	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/syntax"
	"github.com/sipedge/sipedge/runtime/engine"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

type faultHost struct{ faults []string }

func (h *faultHost) Log(_ *msgctx.Msg, level int, text string) {
	if strings.HasPrefix(text, "script fault: ") {
		h.faults = append(h.faults, text)
	}
}
func (h *faultHost) Reply(*msgctx.Msg, int, string) error { return nil }

// FuzzCompileRun: any script that loads must run on a real message without
// a Go panic (recovered panics show up as "runtime error" faults).
func FuzzCompileRun(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.txtar")
	for _, name := range files {
		data, _ := os.ReadFile(name)
		if src, ok := txtar.Parse(data).Get("script.cfg"); ok {
			f.Add(string(src))
		}
	}
	f.Add(scannerScript)
	f.Add(`route { $var(a) = 1 / 0; $var(b) = $(var(a){s.substr,5,9}); route(x, $var(a)); } route[x] { return($param(2)); }`)
	req := parseRequest(f, "example.com", "fuzz")
	f.Fuzz(func(t *testing.T, src string) {
		if strings.Contains(src, "sleep") {
			return // a script may legitimately sleep; that is not a hang
		}
		file, err := syntax.Parse("fuzz.cfg", []byte(src))
		if err != nil {
			return
		}
		s, err := engine.Build(file)
		if err != nil {
			return
		}
		r, ok := s.Prog.Lookup(ast.RequestRoute, "")
		if !ok {
			return
		}
		h := &faultHost{}
		m := &msgctx.Msg{}
		m.Reset(s.Image.NumVars(), s.Image.NumAVPs())
		m.Req, m.Host = req.Clone(), h
		s.Image.LoopBudget = 1000
		s.Image.Run(m, r)
		for _, fault := range h.faults {
			if strings.Contains(fault, "runtime error") || strings.Contains(fault, "panic") {
				t.Fatalf("script %q: %s", src, fault)
			}
		}
	})
}
