package engine_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/lang/syntax"
	"github.com/sipedge/sipedge/runtime/engine"
)

var update = flag.Bool("update", false, "rewrite the porting report golden files")

// TestPortingReports runs `sipedge check --report` on the configs in
// testdata/porting and compares each with its .report golden file. The
// configs are read from their own directory (list_file paths are relative
// to it). The reports follow what sipedge implements: when it gains a
// module these configs use, check the difference and run with -update.
func TestPortingReports(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("..", "..", "testdata", "porting"))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.cfg"))
	var cfgs []string
	for _, f := range files {
		if !strings.HasSuffix(f, "_inc.cfg") {
			cfgs = append(cfgs, filepath.Base(f))
		}
	}
	if len(cfgs) < 3 {
		t.Fatalf("only %d porting configs", len(cfgs))
	}
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	for _, name := range cfgs {
		t.Run(name, func(t *testing.T) {
			r, err := engine.Report(name, syntax.Options{})
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := r.WriteText(&out); err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(name, ".cfg") + ".report"
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if out.String() != string(want) {
				t.Errorf("report differs from %s (run with -update after checking):\n--- got\n%s--- want\n%s", golden, out.String(), want)
			}
			// the JSON form carries the same rows
			var js bytes.Buffer
			if err := r.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			var back engine.PortReport
			if err := json.Unmarshal(js.Bytes(), &back); err != nil {
				t.Fatal(err)
			}
			if len(back.Missing) != len(r.Missing) || len(back.Legacy) != len(r.Legacy) || back.Loads != r.Loads {
				t.Errorf("JSON report differs: %+v", back)
			}
		})
	}
}

// Every line of a missing item is listed, including the uses in included
// files and modparam lines of a missing module.
func TestReportLines(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("inc.cfg", "route[x] {\n\tsend_reply(404, \"x\");\n}\n")
	write("main.cfg", `loadmodule "signaling.so"
modparam("signaling", "x", 1)
include_file "inc.cfg"
route {
	send_reply(403, "no");
	route(x);
	if (method == "INVITE")
		send_reply(488, "no");
}
`)
	r, err := engine.Report(filepath.Join(dir, "main.cfg"), syntax.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Loads {
		t.Fatal("a script using a missing module loads")
	}
	rows := map[string]engine.ReportItem{}
	for _, it := range r.Missing {
		rows[it.Kind+" "+it.Name] = it
	}
	if got := strings.Join(rows["module signaling"].Lines, ","); got != "1,2" {
		t.Errorf("module lines %q", got)
	}
	inc := filepath.Join(dir, "inc.cfg")
	if got := strings.Join(rows["function send_reply()"].Lines, ","); got != inc+":2,5,8" && got != "5,8,"+inc+":2" {
		t.Errorf("function lines %q", got)
	}
	if it := rows["function send_reply()"]; it.Module != "signaling" || !strings.Contains(it.Note, "sl_send_reply") {
		t.Errorf("send_reply row %+v", it)
	}
	if len(r.Legacy) != 1 || r.Legacy[0].Kind != "core keyword" || r.Legacy[0].Name != "method" || r.Legacy[0].Lines[0] != "7" {
		t.Errorf("legacy rows %+v", r.Legacy)
	}
	if _, err := engine.Report(filepath.Join(dir, "nope.cfg"), syntax.Options{}); err == nil {
		t.Error("a missing file gave a report")
	}
}
