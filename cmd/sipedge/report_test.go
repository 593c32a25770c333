package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckReport(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.cfg")
	os.WriteFile(good, []byte("socket=udp:127.0.0.1:5060\nloadmodule \"sl.so\"\nroute { sl_send_reply(200, \"OK\"); }\n"), 0o644)
	bad := filepath.Join(dir, "bad.cfg")
	os.WriteFile(bad, []byte("children=4\nloadmodule \"signaling.so\"\nroute {\n\tsend_reply(404, \"x\");\n\trewritehost(\"a.b\");\n}\n"), 0o644)

	var out, errb bytes.Buffer
	if code := run([]string{"check", "--report", "-f", good}, &out, &errb); code != 0 {
		t.Fatalf("good: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "loads in sipedge: yes") {
		t.Errorf("good:\n%s", out.String())
	}

	out.Reset()
	if code := run([]string{"check", "--report", "-f", bad}, &out, &errb); code != 1 {
		t.Fatalf("bad: exit %d", code)
	}
	for _, want := range []string{"loads in sipedge: no (3 missing", "module    signaling", "send_reply()", "rewritehost()", "sethost()", "children", "udp_workers"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	if code := run([]string{"check", "--report", "--json", "-f", bad}, &out, &errb); code != 1 {
		t.Fatalf("json: exit %d", code)
	}
	var r struct {
		Loads   bool
		Missing []struct{ Kind, Name string }
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || r.Loads || len(r.Missing) != 3 {
		t.Errorf("json report %+v, %v:\n%s", r, err, out.String())
	}

	if code := run([]string{"check", "--report", "-f", filepath.Join(dir, "none.cfg")}, &out, &errb); code != 2 {
		t.Errorf("missing file: exit %d", code)
	}
	if code := run([]string{"disasm", "--report", "-f", good}, &out, &errb); code != 2 {
		t.Errorf("disasm accepted --report: exit %d", code)
	}
}
