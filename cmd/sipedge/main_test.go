package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckShippedScripts checks every config in scripts/, with the paths
// they write to (/var/lib/sipedge, /var/log) moved into a temporary folder.
func TestCheckShippedScripts(t *testing.T) {
	files, _ := filepath.Glob("../../scripts/*.cfg")
	if len(files) == 0 {
		t.Fatal("no scripts")
	}
	tmp := t.TempDir()
	relocate := "sed -e s#/var/lib/sipedge#" + tmp + "#g -e s#/var/log#" + tmp + "#g"
	for _, f := range files {
		var out, errb bytes.Buffer
		if code := run([]string{"check", "-p", relocate, "-f", f}, &out, &errb); code != 0 {
			t.Errorf("check %s: exit %d\n%s", f, code, errb.String())
		}
	}
}

func TestCheckBadScript(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.cfg")
	os.WriteFile(path, []byte("route {\n  if ($ru == ) { exit; }\n}\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"check", "-f", path}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.HasPrefix(errb.String(), path+":2:") {
		t.Errorf("error not positioned at line 2: %q", errb.String())
	}
}

func TestPreprocessor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "env.cfg")
	os.WriteFile(path, []byte("log_level = ${LEVEL}\nroute { exit; }\n"), 0o644)
	t.Setenv("LEVEL", "2")
	var out, errb bytes.Buffer
	if code := run([]string{"check", "-p", "envsubst", "-f", path}, &out, &errb); code != 0 {
		if strings.Contains(errb.String(), "executable file not found") {
			t.Skip("envsubst not installed")
		}
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

func TestFixtures(t *testing.T) {
	files, _ := filepath.Glob("../../scripts/testdata/*.txtar")
	vmFiles, _ := filepath.Glob("../../runtime/vm/testdata/*.txtar")
	files = append(files, vmFiles...)
	var out, errb bytes.Buffer
	if code := run(append([]string{"test"}, files...), &out, &errb); code != 0 {
		t.Fatalf("sipedge test: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if n := strings.Count(out.String(), "ok   "); n != len(files) {
		t.Errorf("%d ok lines for %d fixtures", n, len(files))
	}
}

func TestDisasm(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"disasm", "-f", "../../scripts/edge-checks.cfg"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), `match        "(?i)friendly|sipcli|VaxSIPUser|VoIP.*v1"`) {
		t.Errorf("disassembly lacks the scanner match:\n%s", out.String())
	}
}
