package dialog

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sipedge/sipedge/runtime/scripttest"
)

// TestFixtures runs testdata/*.txtar through `sipedge test`'s runner.
func TestFixtures(t *testing.T) {
	fresh(t)
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
			res, err := scripttest.Run(f, data)
			if err != nil {
				t.Fatal(err)
			}
			if !res.OK() {
				t.Errorf("--- want\n%s--- got\n%s", res.Want, res.Got)
			}
		})
	}
}
