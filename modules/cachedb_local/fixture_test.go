package cachedblocal

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/sipedge/sipedge/internal/txtar"
	_ "github.com/sipedge/sipedge/modules/sl"
	"github.com/sipedge/sipedge/runtime/scripttest"
)

var update = flag.Bool("update", false, "rewrite the want sections of testdata/*.txtar")

// TestFixtures runs testdata/*.txtar (runtime/scripttest's format); the
// cache is typically filled by the startup_route, which scripttest runs first.
func TestFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txtar")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			reset(t)
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			a := txtar.Parse(data)
			res, err := scripttest.Run(f, data)
			if err != nil {
				t.Fatal(err)
			}
			got, want := res.Got, res.Want
			if res.OK() {
				return
			}
			if *update {
				for i := range a.Files {
					if a.Files[i].Name == "want" {
						a.Files[i].Data = []byte(got)
					}
				}
				os.WriteFile(f, txtar.Format(a), 0o644)
				return
			}
			t.Errorf("got:\n%s\nwant:\n%s", got, want)
		})
	}
}
