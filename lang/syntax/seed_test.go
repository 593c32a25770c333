package syntax

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The seed talk's configuration snippets live, wrapped into complete
// scripts, in testdata/seed_*.txtar (and err_seed_fragments.txtar for the
// fragments as written); TestGolden parses them. This test checks, when the
// talk is at hand, that every line of every snippet is still there.
func TestSeedSnippetsCovered(t *testing.T) {
	var talk []byte
	for _, p := range []string{
		"../../../shared/seed/securing-the-network-edge-with-opensips.md",
		"/work/shared/seed/securing-the-network-edge-with-opensips.md",
	} {
		if b, err := os.ReadFile(p); err == nil {
			talk = b
			break
		}
	}
	if talk == nil {
		t.Skip("seed talk not available")
	}
	var corpus strings.Builder
	paths, _ := filepath.Glob("testdata/*seed*.txtar")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		src, _ := parseTxtar(b).get("in.cfg")
		for _, l := range strings.Split(string(src), "\n") {
			corpus.WriteString(normLine(l) + "\n")
		}
	}
	have := corpus.String()
	blocks := regexp.MustCompile("(?s)```\n(.*?)```").FindAllStringSubmatch(string(talk), -1)
	cfg := 0
	for _, blk := range blocks {
		body := blk[1]
		if !regexp.MustCompile(`xlog\(|if \(|loadmodule|modparam|route`).MatchString(body) {
			continue // log output and fail2ban files
		}
		cfg++
		for _, l := range strings.Split(body, "\n") {
			n := normLine(l)
			switch n {
			case "", "route[]", "onreply_route[]", "...":
				continue
			}
			if !strings.Contains(have, n+"\n") {
				t.Errorf("seed line not covered by testdata: %q", l)
			}
		}
	}
	if cfg < 8 {
		t.Errorf("found only %d configuration snippets in the talk", cfg)
	}
}

func normLine(l string) string {
	return strings.TrimSuffix(strings.TrimSpace(l), ";")
}
