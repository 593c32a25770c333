package pvar

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCatalog checks every core pvar registered here against OpenSIPS 3.6's
// catalog (shared/spec/opensips-3.6-pvars.tsv): the name must exist as a core
// pvar and be writable exactly when OpenSIPS lets scripts assign to it.
func TestCatalog(t *testing.T) {
	// 2.x names that 3.x replaced by $socket_in(...) but real configs still use
	legacy := map[string]bool{"Ri": true, "Rp": true, "pr": true, "proto": true}
	var f *os.File
	for _, p := range []string{"../../../shared/spec/opensips-3.6-pvars.tsv", "../../shared/spec/opensips-3.6-pvars.tsv"} {
		if fh, err := os.Open(filepath.FromSlash(p)); err == nil {
			f = fh
			break
		}
	}
	if f == nil {
		t.Skip("OpenSIPS pvar catalog not found")
	}
	defer f.Close()
	core := map[string]bool{} // name -> writable
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) == 3 && cols[0] == "core" {
			core[strings.TrimPrefix(cols[1], "$")] = cols[2] == "rw"
		}
	}
	for _, n := range Names() {
		s := Lookup(n)
		if s.Module != "core" {
			continue
		}
		rw, ok := core[n]
		if legacy[n] {
			continue
		}
		if !ok {
			t.Errorf("$%s is not a core pvar of OpenSIPS 3.6", n)
			continue
		}
		if rw != s.Writable {
			t.Errorf("$%s: writable=%v, OpenSIPS says %v", n, s.Writable, rw)
		}
	}
}
