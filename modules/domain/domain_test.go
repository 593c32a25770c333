package domain

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sipedge/sipedge/internal/modtest"
	_ "github.com/sipedge/sipedge/modules/core"
	_ "github.com/sipedge/sipedge/modules/sl"
	"github.com/sipedge/sipedge/runtime/scripttest"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"

	"github.com/sipedge/sipedge/modules"
)

func params(kv ...any) modules.Params {
	p := modules.Params{
		"db_mode": {value.I(0)}, "domain_table": {value.S("domain")}, "domain_col": {value.S("domain")},
		"attrs_col": {value.S("attrs")}, "subdomain_col": {value.S("accept_subdomain")},
	}
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		switch v := kv[i+1].(type) {
		case int:
			p[k] = []value.Value{value.I(v)}
		case string:
			p[k] = append(p[k], value.S(v))
		}
	}
	return p
}

func apply(t *testing.T, p modules.Params) {
	t.Helper()
	fn, err := configure(p)
	if err != nil {
		t.Fatal(err)
	}
	fn()
}

// newDB makes a database with the domain table and rows.
func newDB(t *testing.T, rows ...[3]any) string {
	t.Helper()
	u := "sqlite://" + filepath.Join(t.TempDir(), "sipedge.db")
	db, err := store.Create(u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	if err := db.Init(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range Schema {
		if _, err := db.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range rows {
		if _, err := db.Exec(ctx, `INSERT INTO domain (domain, attrs, accept_subdomain) VALUES (?, ?, ?)`, r[0], r[1], r[2]); err != nil {
			t.Fatal(err)
		}
	}
	return u
}

func TestStaticDomains(t *testing.T) {
	apply(t, params("local_domain", "Example.COM", "local_domain", "*.corp.example.net;tier=gold"))
	for host, want := range map[string]bool{
		"example.com": true, "EXAMPLE.com": true, "sub.example.com": false,
		"corp.example.net": true, "a.b.corp.example.net": true, "example.net": false, "": false,
	} {
		if got := IsLocal(host); got != want {
			t.Errorf("IsLocal(%q) = %v, want %v", host, got, want)
		}
	}
	e, _ := Lookup(context.Background(), "x.corp.example.net")
	if e == nil || e.Attrs != "tier=gold" || !e.HasAttrs {
		t.Errorf("attrs: %+v", e)
	}
}

func TestConfigureErrors(t *testing.T) {
	for name, p := range map[string]modules.Params{
		"nothing":    params(),
		"bad mode":   params("local_domain", "a.com", "db_mode", 2),
		"bad static": params("local_domain", "user@a.com"),
		"duplicate":  params("local_domain", "a.com", "local_domain", "A.com"),
		"bad column": params("local_domain", "a.com", "domain_col", "x;drop"),
		"no table":   params("db_url", "sqlite:///nonexistent/dir/x.db"),
	} {
		if _, err := configure(p); err == nil {
			t.Errorf("%s: configure accepted %v", name, p)
		}
	}
}

func TestDatabaseModes(t *testing.T) {
	u := newDB(t, [3]any{"example.com", nil, 0}, [3]any{"voip.example.org", "a=1;b=2", 1})
	for _, mode := range []int{0, 1} {
		apply(t, params("db_url", u, "db_mode", mode, "local_domain", "static.test"))
		for host, want := range map[string]bool{
			"example.com": true, "www.example.com": false, "voip.example.org": true,
			"x.voip.example.org": true, "example.org": false, "static.test": true,
		} {
			if got := IsLocal(host); got != want {
				t.Errorf("db_mode %d: IsLocal(%q) = %v, want %v", mode, host, got, want)
			}
		}
	}
	// a row added later: seen at once in db_mode 0, after domain_reload in 1
	db, _ := store.Open(u)
	apply(t, params("db_url", u, "db_mode", 1))
	if _, err := db.Exec(context.Background(), `INSERT INTO domain (domain) VALUES ('new.test')`); err != nil {
		t.Fatal(err)
	}
	if IsLocal("new.test") {
		t.Error("db_mode 1 saw a new row before domain_reload")
	}
	if _, err := miReload(nil); err != nil {
		t.Fatal(err)
	}
	if !IsLocal("new.test") {
		t.Error("domain_reload did not load the new row")
	}
	out, err := miDump(nil)
	if err != nil {
		t.Fatal(err)
	}
	list := out.(map[string]any)["Domains"].([]any)
	if len(list) != 3 || list[2].(map[string]any)["attributes"] != "a=1;b=2" {
		t.Errorf("domain_dump = %v", list)
	}
	apply(t, params("db_url", u, "db_mode", 0))
	if _, err := miReload(nil); err == nil {
		t.Error("domain_reload worked in db_mode 0")
	}
}

func TestFunctions(t *testing.T) {
	apply(t, params("local_domain", "example.com;x=1", "local_domain", "*.example.org"))
	m, _ := modtest.NewMsg(t, modtest.InviteText) // R-URI example.com, From example.org
	rec := &modtest.Recorder{Name: "var"}
	if rc := modtest.Call(t, Name, m, "is_uri_host_local", rec.Ref()); rc != 1 {
		t.Errorf("is_uri_host_local = %d", rc)
	}
	if len(rec.Vals) != 1 || rec.Vals[0].AsString() != "x=1" {
		t.Errorf("attrs = %v", rec.Vals)
	}
	if rc := modtest.Call(t, Name, m, "is_from_local"); rc != 1 {
		t.Errorf("is_from_local = %d (example.org accepts subdomains and is itself local)", rc)
	}
	if rc := modtest.Call(t, Name, m, "is_domain_local", "sip.example.org"); rc != 1 {
		t.Errorf("is_domain_local(sip.example.org) = %d", rc)
	}
	if rc := modtest.Call(t, Name, m, "is_domain_local", "example.net"); rc != -1 {
		t.Errorf("is_domain_local(example.net) = %d", rc)
	}
	empty, _ := modtest.NewMsg(t, "")
	if rc := modtest.Call(t, Name, empty, "is_from_local"); rc != -1 {
		t.Errorf("is_from_local without a message = %d", rc)
	}
}

func TestFixtures(t *testing.T) {
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
