package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/lang/source"
	"github.com/sipedge/sipedge/lang/syntax"
	_ "github.com/sipedge/sipedge/modules/all"
	"github.com/sipedge/sipedge/runtime/engine"
	"github.com/sipedge/sipedge/runtime/store"
)

var errorMark = regexp.MustCompile(`# ERROR "((?:[^"\\]|\\.)*)"`)

// TestErrors loads each bad config in testdata/errors. Every line marked
// `# ERROR "regexp"` must get an error on that line whose message matches,
// and no other line may get one (the go/parser error_test.go convention).
func TestErrors(t *testing.T) {
	files, _ := filepath.Glob("testdata/errors/*.cfg")
	if len(files) == 0 {
		t.Fatal("no error fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			want := map[int][]*regexp.Regexp{}
			for i, line := range strings.Split(string(src), "\n") {
				for _, m := range errorMark.FindAllStringSubmatch(line, -1) {
					rx, err := regexp.Compile(strings.ReplaceAll(m[1], `\"`, `"`))
					if err != nil {
						t.Fatalf("line %d: bad expectation: %v", i+1, err)
					}
					want[i+1] = append(want[i+1], rx)
				}
			}
			_, err = engine.Load(f, syntax.Options{})
			var list source.ErrorList
			if err != nil && !errors.As(err, &list) {
				t.Fatalf("not a positioned error list: %v", err)
			}
			for _, e := range list {
				if e.Pos.File != f || !e.Pos.IsValid() {
					t.Errorf("error without a position in %s: %v", f, e)
					continue
				}
				matched := false
				for i, rx := range want[e.Pos.Line] {
					if rx != nil && rx.MatchString(e.Msg) {
						want[e.Pos.Line][i] = nil
						matched = true
						break
					}
				}
				if !matched {
					t.Errorf("unexpected error %s", e.Pos.String()+": "+e.Msg)
				}
			}
			for line, rxs := range want {
				for _, rx := range rxs {
					if rx != nil {
						t.Errorf("%s:%d: missing error matching %q", f, line, rx)
					}
				}
			}
		})
	}
}

// TestErrorFormat checks the rendering an operator sees: file:line:col,
// the message, the source line and a caret under the column.
func TestErrorFormat(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.cfg")
	os.WriteFile(path, []byte("route {\n\tt_relayy();\n}\n"), 0o644)
	_, err := engine.Load(path, syntax.Options{})
	if err == nil {
		t.Fatal("no error")
	}
	want := path + ":2:2: unknown function t_relayy()"
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %q, want prefix %q", err.Error(), want)
	}
	if !strings.Contains(err.Error(), "\n\t\tt_relayy();\n\t\t^") {
		t.Errorf("no snippet with caret in %q", err.Error())
	}
}

// generateConfig writes a realistic script of about n lines: many named
// routes with conditions, switches, xlog formats and transformations.
func generateConfig(n int) string {
	var b strings.Builder
	b.WriteString("log_level = 3\nudp_workers = 4\nloadmodule \"sl.so\"\nloadmodule \"maxfwd.so\"\nloadmodule \"sipmsgops.so\"\n")
	b.WriteString("modparam(\"maxfwd\", \"max_limit\", 70)\n")
	b.WriteString("route {\n    if (!mf_process_maxfwd_header(10)) { sl_send_reply(483, \"Too Many Hops\"); exit; }\n")
	routes := 0
	for lines := 8; lines < n; routes++ {
		fmt.Fprintf(&b, "    route(r%d);\n", routes)
		lines += 30
	}
	b.WriteString("}\n")
	for i := 0; i < routes; i++ {
		fmt.Fprintf(&b, `route[r%d] {
    # route %d: classify the request
    if ($ua =~ "friendly|sipcli|VaxSIPUser|VoIP.*v1" || $fd == "1.1.1.%d") {
        xlog("L_WARN", "scanner $si:$sp ua=$ua from=$fu\n");
        exit;
    }
    $var(prefix) = $(rU{s.substr,0,4});
    $var(n) = %d;
    while ($var(n) > 0) {
        $var(n) = $var(n) - 1;
    }
    switch ($var(prefix)) {
        case "+616":
            xlog("L_INFO", "high risk $rU from $si\n");
            break;
        case "+441":
            $avp(cat) = "uk";
            break;
        default:
            $var(other) = "x" + $rU;
    }
    if (is_method("INVITE") && has_totag()) {
        xlog("L_DBG", "in-dialog $rm $ci\n");
        return(1);
    }
    if ($(hdr(Via)[0]{s.len}) > 200)
        return(-1);
    if (is_present_hf("X-Test"))
        remove_hf("X-Test");
    xlog("L_INFO", "--> $rm R-URI=$ru (Rcvd $si:$sp) Call-ID=$ci\n");
    return(2);
}
`, i, i, i%250, i%7)
	}
	return b.String()
}

func TestGeneratedConfigLoads(t *testing.T) {
	src := generateConfig(3000)
	if n := strings.Count(src, "\n"); n < 2900 {
		t.Fatalf("generated only %d lines", n)
	}
	f, err := syntax.Parse("gen.cfg", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Build(f); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkParseCompile loads a generated ~3000-line config: parse, check,
// compile and link (target ≤ 50 ms).
func BenchmarkParseCompile(b *testing.B) {
	src := []byte(generateConfig(3000))
	b.ReportMetric(float64(strings.Count(string(src), "\n")), "lines")
	b.ReportAllocs()
	for b.Loop() {
		f, err := syntax.Parse("gen.cfg", src)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := engine.Build(f); err != nil {
			b.Fatal(err)
		}
	}
}

// A module's db_url falls back to the core db_default_url, as in OpenSIPS.
func TestDBDefaultURL(t *testing.T) {
	src := `db_default_url = "sqlite:///nonexistent/default.db"
loadmodule "usrloc.so"
modparam("usrloc", "db_mode", 0)
route { exit; }
`
	f, err := syntax.Parse("db.cfg", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	s, err := engine.Build(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Params["usrloc"].Str("db_url"); got != "sqlite:///nonexistent/default.db" {
		t.Errorf("usrloc db_url = %q", got)
	}
}

// TestSeedBlocksCompile loads testdata/seed/seed.cfg: every code block of
// the seed talk, against a real sqlite file with OpenSIPS's tables.
func TestSeedBlocksCompile(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "seed.db")
	db, err := store.Create("sqlite://" + dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("testdata/seed/seed.cfg")
	if err != nil {
		t.Fatal(err)
	}
	src = []byte(strings.ReplaceAll(string(src), "/SEEDDB", dbPath))
	f, err := syntax.Parse("seed.cfg", src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Build(f); err != nil {
		t.Fatal(err)
	}
}
