package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestDBCommand(t *testing.T) {
	url := "sqlite://" + filepath.Join(t.TempDir(), "sipedge.db")
	runOK := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if rc := run(args, &out, &errb); rc != 0 {
			t.Fatalf("%v: rc %d: %s%s", args, rc, out.String(), errb.String())
		}
		return out.String()
	}
	if out := runOK("db", "init", "-url", url); !strings.Contains(out, "table subscriber version 8") {
		t.Errorf("init: %s", out)
	}
	runOK("db", "init", "-url", url) // again: nothing breaks
	runOK("db", "add-subscriber", "-url", url, "-email", "alice@example.com", "alice@example.com", "secret")
	runOK("db", "add-subscriber", "-url", url, "-plain", "-email", "alice@example.com", "alice@example.com", "secret2") // update
	out := runOK("db", "list", "-url", url)
	if !strings.Contains(out, "alice  example.com  alice@example.com  yes    yes") || strings.Count(out, "alice") != 2 {
		t.Errorf("list:\n%s", out)
	}
	if out := runOK("db", "list", "-url", url, "location"); !strings.HasPrefix(out, "USER") {
		t.Errorf("list location:\n%s", out)
	}
	for _, bad := range [][]string{
		{"db", "add-subscriber", "-url", url, "alice", "pw"},
		{"db", "list", "-url", url, "nosuch"},
		{"db", "list", "-url", "sqlite://" + filepath.Join(t.TempDir(), "none.db")},
		{"db", "init"},
		{"db", "frobnicate", "-url", url},
	} {
		var o, e bytes.Buffer
		if rc := run(bad, &o, &e); rc == 0 {
			t.Errorf("%v succeeded", bad)
		}
	}
}
