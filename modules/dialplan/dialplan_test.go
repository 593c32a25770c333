package dialplan

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/internal/modtest"
	"github.com/sipedge/sipedge/lang/syntax"
	"github.com/sipedge/sipedge/modules"
	_ "github.com/sipedge/sipedge/modules/core"
	"github.com/sipedge/sipedge/runtime/engine"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

// newDB creates a database with the schema and the given rules:
// dpid, pr, match_op, match_exp, match_flags, subst_exp, repl_exp, attrs
// (NULL for ""), timerec, disabled.
func newDB(t testing.TB, rules ...string) string {
	t.Helper()
	url := "sqlite://" + filepath.Join(t.TempDir(), "dp.db")
	db, err := store.Create(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	if err := db.Init(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if _, err := db.Exec(ctx, `INSERT INTO dialplan (dpid, pr, match_op, match_exp, match_flags, subst_exp, repl_exp, attrs, timerec, disabled) VALUES (`+r+`)`); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
	}
	return url
}

func setup(t testing.TB, params map[string][]string) {
	t.Helper()
	info := modules.Lookup(Name)
	p := modules.Params{}
	for _, spec := range info.Params {
		if !spec.Default.IsNull() {
			p[spec.Name] = []value.Value{spec.Default}
		}
	}
	for k, vs := range params {
		p[k] = nil
		for _, v := range vs {
			p[k] = append(p[k], value.S(v))
		}
	}
	apply, err := info.Configure(p)
	if err != nil {
		t.Fatalf("configure: %v", err)
	}
	apply()
	t.Cleanup(func() { live.Store(nil); pending.Store(nil) })
}

func translate(t testing.TB, dpid int, in string, part ...string) (rc int, out, attrs string) {
	t.Helper()
	m, _ := modtest.NewMsg(t, "")
	o, a := &modtest.Recorder{Name: "var"}, &modtest.Recorder{Name: "var"}
	args := []any{dpid, in, o.Ref(), a.Ref()}
	if len(part) > 0 {
		args = append(args, part[0])
	}
	rc = modtest.Call(t, Name, m, "dp_translate", args...)
	if len(o.Vals) > 0 {
		out = o.Vals[len(o.Vals)-1].AsString()
	}
	if len(a.Vals) > 0 {
		attrs = a.Vals[len(a.Vals)-1].AsString()
	}
	return
}

func TestTranslate(t *testing.T) {
	url := newDB(t,
		// national to E.164 (the doc's example)
		`10, 1, 1, '^(0040|\+40|0|40)21[0-9]+', 0, '^(0040|\+40|0|40)(.+)', '40\2', 'ro', NULL, 0`,
		// exact match, case-insensitive, replacement
		`10, 5, 0, 'SIP server', 1, NULL, 'OpenSIPS', NULL, NULL, 0`,
		// detection only: attributes, no output
		`10, 0, 1, '^021456[0-9]{5}$', 0, NULL, NULL, 'serviceX', NULL, 0`,
		// disabled rules are not loaded
		`10, 0, 0, '112', 0, NULL, 'never', NULL, NULL, 1`,
		// an equal rule and a regex rule both match: the lower priority wins
		`20, 3, 0, '911', 0, NULL, 'equal', NULL, NULL, 0`,
		`20, 2, 1, '^9', 0, NULL, 'regex', NULL, NULL, 0`,
		// equal priorities: the rule loaded first wins
		`21, 1, 1, '^9', 0, NULL, 'regex', NULL, NULL, 0`,
		`21, 1, 0, '911', 0, NULL, 'equal', NULL, NULL, 0`,
		// a bad regex is skipped, the others load
		`30, 1, 1, '([', 0, NULL, 'x', NULL, NULL, 0`,
		`30, 2, 1, '^(\d+)$', 1, '^(\d+)$', 'n:\1', NULL, NULL, 0`,
		// a reference to a group the subst_exp lacks: skipped
		`31, 1, 1, '.', 0, '(.)', '\2', NULL, NULL, 0`,
	)
	setup(t, map[string][]string{"db_url": {url}})
	cases := []struct {
		dpid             int
		in               string
		rc               int
		out, attrs, note string
	}{
		{10, "0040211234567", 1, "40211234567", "ro", "subst"},
		{10, "+40211234567", 1, "40211234567", "ro", "subst +40"},
		{10, "sip SERVER", 1, "OpenSIPS", "", "case-insensitive equal"},
		{10, "sip SERVERS", -1, "", "", "equal is full length"},
		{10, "02145612345", 1, "", "serviceX", "attrs only"},
		{10, "112", -1, "", "", "disabled"},
		{10, "", -1, "", "", "empty input"},
		{20, "911", 1, "regex", "", "lower pr wins"},
		{21, "911", 1, "regex", "", "tie: first loaded"},
		{30, "123", 1, "n:123", "", "bad regex skipped"},
		{31, "1", -1, "", "", "bad repl skipped"},
		{99, "1", -1, "", "", "no such dpid"},
	}
	for _, c := range cases {
		rc, out, attrs := translate(t, c.dpid, c.in)
		if rc != c.rc || out != c.out || attrs != c.attrs {
			t.Errorf("%s: dp_translate(%d, %q) = %d %q %q, want %d %q %q", c.note, c.dpid, c.in, rc, out, attrs, c.rc, c.out, c.attrs)
		}
	}
}

func TestTimerecAndReload(t *testing.T) {
	url := newDB(t,
		`1, 1, 0, '100', 0, NULL, 'office', NULL, '20240101T080000|PT10H|weekly|||MO,TU,WE,TH,FR', 0`,
		`1, 2, 0, '100', 0, NULL, 'voicemail', NULL, NULL, 0`,
	)
	setup(t, map[string][]string{"db_url": {url}})
	old := clock
	t.Cleanup(func() { clock = old })
	clock = func() time.Time { return time.Date(2024, 3, 5, 9, 0, 0, 0, time.Local) } // Tuesday 09:00
	if _, out, _ := translate(t, 1, "100"); out != "office" {
		t.Errorf("office hours: %q", out)
	}
	clock = func() time.Time { return time.Date(2024, 3, 9, 9, 0, 0, 0, time.Local) } // Saturday
	if _, out, _ := translate(t, 1, "100"); out != "voicemail" {
		t.Errorf("weekend: %q", out)
	}

	// MI: a new rule shows after dp_reload, not before
	db, _ := store.Open(url)
	db.Exec(context.Background(), `INSERT INTO dialplan (dpid, pr, match_op, match_exp, match_flags, repl_exp) VALUES (2, 1, 0, 'x', 0, 'y')`)
	if rc, _, _ := translate(t, 2, "x"); rc != -1 {
		t.Errorf("cached rules changed without a reload")
	}
	cmd := findMI(t, "dp_reload")
	if _, err := cmd(map[string]any{}); err != nil {
		t.Fatal(err)
	}
	if rc, out, _ := translate(t, 2, "x"); rc != 1 || out != "y" {
		t.Errorf("after dp_reload: %d %q", rc, out)
	}
	res, err := findMI(t, "dp_translate")(map[string]any{"dpid": "2", "input": "x"})
	if err != nil || fmt.Sprint(res) != "map[ATTRIBUTES: Output:y]" {
		t.Errorf("MI dp_translate: %v %v", res, err)
	}
	if _, err := findMI(t, "dp_translate")(map[string]any{"dpid": "2", "input": "nope"}); err == nil || !strings.Contains(err.Error(), "No translation") {
		t.Errorf("MI dp_translate without a match: %v", err)
	}
	if _, err := findMI(t, "dp_reload")(map[string]any{"partition": "nope"}); err == nil {
		t.Errorf("dp_reload of an unknown partition succeeded")
	}
}

func TestPartitions(t *testing.T) {
	url := newDB(t, `1, 1, 0, 'a', 0, NULL, 'from-default', NULL, NULL, 0`)
	url2 := newDB(t, `1, 1, 0, 'a', 0, NULL, 'from-pstn', NULL, NULL, 0`)
	setup(t, map[string][]string{
		"db_url":    {url},
		"partition": {"pstn: db_url = " + url2 + "; table_name = dialplan"},
	})
	if _, out, _ := translate(t, 1, "a"); out != "from-default" {
		t.Errorf("default: %q", out)
	}
	if _, out, _ := translate(t, 1, "a", "pstn"); out != "from-pstn" {
		t.Errorf("pstn: %q", out)
	}
	// "default: pstn" makes pstn the default partition
	setup(t, map[string][]string{
		"partition": {"pstn: db_url = " + url2, "default: pstn"},
	})
	if _, out, _ := translate(t, 1, "a"); out != "from-pstn" {
		t.Errorf("default pstn: %q", out)
	}
	res, _ := findMI(t, "dp_show_partition")(map[string]any{})
	if !strings.Contains(fmt.Sprint(res), "name:pstn") {
		t.Errorf("dp_show_partition: %v", res)
	}
}

func TestScriptLoad(t *testing.T) {
	url := newDB(t, `1, 1, 1, '^0(.*)$', 0, '^0(.*)$', '+49\1', NULL, NULL, 0`)
	load := func(script string) error {
		_, err := engine.Load("s.cfg", syntax.Options{ReadFile: func(string) ([]byte, error) {
			return []byte(`loadmodule "dialplan.so"
modparam("dialplan", "db_url", "` + url + `")
` + script), nil
		}})
		return err
	}
	if err := load(`route { dp_translate(1, "$rU", $var(out), $avp(attrs)); xlog("$var(out)"); }`); err != nil {
		t.Errorf("load: %v", err)
	}
	if err := load(`route { dp_translate(1, "$rU", $var(out), , "nope"); }`); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown partition: %v", err)
	}
	if err := load(`route { dp_translate(1, "$rU", $rU); }`); err != nil {
		t.Errorf("$rU output: %v", err)
	}
}

func findMI(t testing.TB, name string) func(map[string]any) (any, error) {
	for _, c := range modules.Lookup(Name).MI {
		if c.Name == name {
			return c.Run
		}
	}
	t.Fatalf("no MI %s", name)
	return nil
}
