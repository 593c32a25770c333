package syntax

import (
	"os"
	"testing"

	"github.com/sipedge/sipedge/lang/ast"
)

func TestScratch(t *testing.T) {
	src, err := os.ReadFile("/tmp/scratch/in.cfg")
	if err != nil {
		t.Skip()
	}
	f, err := Parse("in.cfg", src)
	ast.Fprint(os.Stdout, f)
	if err != nil {
		os.Stdout.WriteString("ERRORS:\n" + err.Error() + "\n")
	}
}
