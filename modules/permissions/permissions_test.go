package permissions

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/internal/modtest"
	"github.com/sipedge/sipedge/modules"
	_ "github.com/sipedge/sipedge/modules/core"
	_ "github.com/sipedge/sipedge/modules/sl"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/scripttest"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

// row is one address table row (nil pattern/info: NULL).
type row struct {
	grp   int
	ip    string
	mask  int
	port  int
	proto string
	pat   any
	info  any
}

// newDB creates a database with OpenSIPS's schema and the given rows.
func newDB(t *testing.T, rows ...row) (string, *store.DB) {
	t.Helper()
	url := "sqlite://" + filepath.Join(t.TempDir(), "perm.db")
	db, err := store.Create(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	insert(t, db, "address", rows...)
	return url, db
}

func insert(t *testing.T, db *store.DB, tbl string, rows ...row) {
	t.Helper()
	for _, r := range rows {
		if _, err := db.Exec(context.Background(),
			"INSERT INTO "+tbl+" (grp, ip, mask, port, proto, pattern, context_info) VALUES (?, ?, ?, ?, ?, ?, ?)",
			r.grp, r.ip, r.mask, r.port, r.proto, r.pat, r.info); err != nil {
			t.Fatal(err)
		}
	}
}

// params are the module's defaults plus kv (name, value pairs).
func params(kv ...any) modules.Params {
	p := modules.Params{}
	for _, spec := range modules.Lookup(Name).Params {
		if !spec.Default.IsNull() {
			p[spec.Name] = []value.Value{spec.Default}
		}
	}
	for i := 0; i < len(kv); i += 2 {
		name := kv[i].(string)
		var v value.Value
		switch x := kv[i+1].(type) {
		case string:
			v = value.S(x)
		case int:
			v = value.I(x)
		}
		p[name] = append(p[name], v)
	}
	return p
}

// setup configures the module and restores an empty config afterwards.
func setup(t *testing.T, p modules.Params) {
	t.Helper()
	apply, err := modules.Lookup(Name).Configure(p)
	if err != nil {
		t.Fatal(err)
	}
	old := cur.Load()
	apply()
	t.Cleanup(func() { cur.Store(old) })
}

func msgFrom(t *testing.T, proto, ip string, port int) (*msgctx.Msg, *modtest.Host) {
	m, h := modtest.NewMsg(t, modtest.InviteText)
	m.Src = msgctx.Addr{IP: ip, Port: port, Proto: proto}
	return m, h
}

var baseRows = []row{
	{grp: 1, ip: "192.0.2.10", mask: 32, port: 0, proto: "any"},
	{grp: 1, ip: "192.0.2.11", mask: 32, port: 5060, proto: "udp", info: "pbx-11"},
	{grp: 2, ip: "198.51.100.0", mask: 24, port: 0, proto: "tcp", info: "carrier"},
	{grp: 3, ip: "2001:db8::", mask: 32, port: 0, proto: "any", info: "v6net"},
	{grp: 4, ip: "203.0.113.5", mask: 32, port: 0, proto: "any", pat: "sip:*@example.com", info: "patterned"},
	{grp: 5, ip: "2001:db8:1::7", mask: 128, port: 0, proto: "any"},
	// rows OpenSIPS skips
	{grp: 6, ip: "not-an-ip", mask: 32, port: 0, proto: "any"},
	{grp: 6, ip: "192.0.2.99", mask: 33, port: 0, proto: "any"},
	{grp: 6, ip: "192.0.2.98", mask: 32, port: 0, proto: "none"},
	{grp: 6, ip: "192.0.2.97", mask: 32, port: 0, proto: "carrier-pigeon"},
}

func TestCheckAddress(t *testing.T) {
	url, _ := newDB(t, baseRows...)
	setup(t, params("db_url", url))
	m, _ := msgFrom(t, "udp", "10.0.0.1", 5060)
	ctx := &modtest.Recorder{Name: "avp(ctx)"}
	cases := []struct {
		args []any
		want int
	}{
		{[]any{1, "192.0.2.10", 5080, "udp"}, 1},         // port 0 in the table: any port
		{[]any{1, "192.0.2.10", 0, "any"}, 1},            // any/any
		{[]any{0, "192.0.2.10", 1, "tcp"}, 1},            // group 0: any group
		{[]any{2, "192.0.2.10", 0, "any"}, -1},           // other group (it exists): no match
		{[]any{9, "192.0.2.10", 0, "any"}, -2},           // group not in any table
		{[]any{1, "192.0.2.11", 5060, "udp"}, 1},         // exact port/proto
		{[]any{1, "192.0.2.11", 5061, "udp"}, -1},        // wrong port
		{[]any{1, "192.0.2.11", 0, "udp"}, 1},            // port 0 asked: any port
		{[]any{1, "192.0.2.11", 5060, "tcp"}, -1},        // wrong proto
		{[]any{1, "192.0.2.11", 5060, "ANY"}, 1},         // proto any asked
		{[]any{2, "198.51.100.77", 5060, "tcp"}, 1},      // in the /24
		{[]any{2, "198.51.101.77", 5060, "tcp"}, -1},     // outside
		{[]any{2, "198.51.100.77", 5060, "udp"}, -1},     // subnet rule is tcp only
		{[]any{3, "2001:db8:ffff::1", 0, "any"}, 1},      // IPv6 subnet
		{[]any{3, "2001:db9::1", 0, "any"}, -1},          // outside it
		{[]any{5, "2001:db8:1::7", 0, "any"}, 1},         // IPv6 single address
		{[]any{5, "[2001:db8:1::7]", 0, "any"}, 1},       // brackets allowed
		{[]any{1, "::ffff:192.0.2.10", 0, "any"}, 1},     // v4-mapped is the v4 address
		{[]any{6, "192.0.2.98", 0, "any"}, -2},           // proto "none" rows are ignored
		{[]any{0, "192.0.2.99", 0, "any"}, -1},           // mask 33 ignored
		{[]any{0, "192.0.2.10", 0, "any", ctx.Ref()}, 1}, // ctx var: "" (NULL info)
	}
	for _, c := range cases {
		if got := modtest.Call(t, Name, m, "check_address", c.args...); got != c.want {
			t.Errorf("check_address%v = %d, want %d", c.args, got, c.want)
		}
	}
	// a bad IP from a variable: an error (a constant one fails at load time)
	f := modtest.Fn(t, Name, "check_address")
	a := &modules.Args{Vals: []value.Value{value.I(1), value.S("192.0.2.300"), value.I(0), value.S("any"), value.Null, value.Null, value.Null},
		Given: []bool{true, true, true, true, false, false, false}}
	if rc := f.Call(m, a); rc != -1 {
		t.Fatal(rc)
	}
	if len(ctx.Vals) != 1 || ctx.Vals[0].AsString() != "" {
		t.Fatalf("context info %v", ctx.Vals)
	}
	if got := modtest.Call(t, Name, m, "check_address", 1, "192.0.2.11", 5060, "udp", ctx.Ref()); got != 1 {
		t.Fatal(got)
	}
	if ctx.Vals[len(ctx.Vals)-1].AsString() != "pbx-11" {
		t.Fatalf("context info %v", ctx.Vals)
	}
}

func TestPattern(t *testing.T) {
	url, _ := newDB(t, baseRows...)
	setup(t, params("db_url", url))
	m, _ := msgFrom(t, "udp", "203.0.113.5", 5060)
	ctx := &modtest.Recorder{Name: "avp(ctx)"}
	if rc := modtest.Call(t, Name, m, "check_address", 4, "203.0.113.5", 0, "any", ctx.Ref(), "sip:alice@example.com"); rc != 1 {
		t.Fatal(rc)
	}
	if ctx.Vals[0].AsString() != "patterned" {
		t.Fatal(ctx.Vals)
	}
	if rc := modtest.Call(t, Name, m, "check_address", 4, "203.0.113.5", 0, "any", ctx.Ref(), "sip:alice@example.org"); rc != -1 {
		t.Fatal(rc)
	}
	// no pattern given: the row's pattern is not checked
	if rc := modtest.Call(t, Name, m, "check_address", 4, "203.0.113.5", 0, "any"); rc != 1 {
		t.Fatal(rc)
	}
	if rc := modtest.Call(t, Name, m, "check_source_address", 4, ctx.Ref(), "sip:bob@example.com"); rc != 1 {
		t.Fatal(rc)
	}
}

func TestCheckSourceAddress(t *testing.T) {
	url, _ := newDB(t, baseRows...)
	setup(t, params("db_url", url))
	for _, c := range []struct {
		proto, ip string
		port      int
		grp       int
		want      int
	}{
		{"udp", "192.0.2.11", 5060, 1, 1},
		{"tcp", "192.0.2.11", 5060, 1, -1},
		{"udp", "192.0.2.11", 5062, 1, -1},
		{"tcp", "198.51.100.1", 40000, 2, 1},
		{"udp", "198.51.100.1", 40000, 2, -1},
		{"udp", "198.51.100.1", 40000, 0, -1},
		{"udp", "192.0.2.10", 1234, 0, 1},
		{"udp", "192.0.2.10", 1234, 7, -2},
	} {
		m, _ := msgFrom(t, c.proto, c.ip, c.port)
		if got := modtest.Call(t, Name, m, "check_source_address", c.grp); got != c.want {
			t.Errorf("%s:%s:%d group %d: %d, want %d", c.proto, c.ip, c.port, c.grp, got, c.want)
		}
	}
}

func TestGetSourceGroup(t *testing.T) {
	url, _ := newDB(t, baseRows...)
	setup(t, params("db_url", url))
	out := &modtest.Recorder{Name: "var(g)"}
	m, _ := msgFrom(t, "tcp", "198.51.100.9", 5060)
	if rc := modtest.Call(t, Name, m, "get_source_group", out.Ref()); rc != 1 || out.Vals[0].AsString() != "2" {
		t.Fatal(rc, out.Vals)
	}
	m, _ = msgFrom(t, "udp", "10.1.1.1", 5060)
	if rc := modtest.Call(t, Name, m, "get_source_group", out.Ref()); rc != -1 {
		t.Fatal(rc)
	}
}

func TestEmptyTable(t *testing.T) {
	url, _ := newDB(t)
	setup(t, params("db_url", url))
	m, _ := msgFrom(t, "udp", "192.0.2.1", 5060)
	if rc := modtest.Call(t, Name, m, "check_source_address", 1); rc != -2 {
		t.Fatal(rc)
	}
	if rc := modtest.Call(t, Name, m, "check_source_address", 0); rc != -1 {
		t.Fatal(rc)
	}
}

func TestNoDatabase(t *testing.T) {
	setup(t, params())
	m, h := msgFrom(t, "udp", "192.0.2.1", 5060)
	if rc := modtest.Call(t, Name, m, "check_source_address", 1); rc != -1 {
		t.Fatal(rc)
	}
	if !h.HasLog(msgctx.LErr, "no address table") {
		t.Fatal(h)
	}
}

func TestPartitions(t *testing.T) {
	url, _ := newDB(t, baseRows...)
	url2, db2 := newDB(t)
	if _, err := db2.Exec(context.Background(), strings.Replace(addressDDL(t), "address", "gw", 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := db2.Exec(context.Background(), `INSERT INTO version VALUES ('gw', 5)`); err != nil {
		t.Fatal(err)
	}
	insert(t, db2, "gw", row{grp: 1, ip: "10.9.9.9", mask: 32, proto: "any", info: "gw1"})
	setup(t, params("db_url", url, "partition", "gws: db_url="+url2+"; table_name=gw"))
	m, h := msgFrom(t, "udp", "10.9.9.9", 5060)
	if rc := modtest.Call(t, Name, m, "check_source_address", 1, (&modtest.Recorder{Name: "x"}).Ref(), "", "gws"); rc != 1 {
		// an empty pattern argument matches rows without a pattern
		t.Fatal(rc)
	}
	if rc := modtest.Call(t, Name, m, "check_source_address", 1); rc != -1 {
		t.Fatal("found in the default partition", rc)
	}
	if rc := modtest.Call(t, Name, m, "check_address", 1, "10.9.9.9", 0, "any", (&modtest.Recorder{Name: "x"}).Ref(), "", "gws"); rc != 1 {
		t.Fatal(rc)
	}
	if rc := modtest.Call(t, Name, m, "check_source_address", 1, (&modtest.Recorder{Name: "x"}).Ref(), "", "nope"); rc != -1 {
		t.Fatal(rc)
	}
	if !h.HasLog(msgctx.LErr, `partition "nope" is not defined`) {
		t.Fatal(h)
	}
	if got := fmt.Sprint(Partitions()); got != "[default gws]" {
		t.Fatal(got)
	}
}

func addressDDL(t *testing.T) string {
	for _, tb := range store.Tables {
		if tb.Name == "address" {
			return tb.Create[0]
		}
	}
	t.Fatal("no address table in the schema")
	return ""
}

func TestParsePartition(t *testing.T) {
	d, err := parsePartition("p1: db_url=sqlite:///x/y.db; table_name=addr")
	if err != nil || d.name != "p1" || d.url != "sqlite:///x/y.db" || d.table != "addr" {
		t.Fatal(d, err)
	}
	d, err = parsePartition(" p2 : db_url = sqlite:///z.db ;")
	if err != nil || d.name != "p2" || d.url != "sqlite:///z.db" || d.table != "address" {
		t.Fatal(d, err)
	}
	for _, bad := range []string{"nocolon", ": db_url=x", "p: table_name=t", "p: db_url=x; color=red", "p: junk"} {
		if _, err := parsePartition(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestConfigureErrors(t *testing.T) {
	info := modules.Lookup(Name)
	if _, err := info.Configure(params("db_url", "sqlite:///nonexistent/dir/x.db")); err == nil {
		t.Fatal("missing database accepted")
	}
	url, _ := newDB(t)
	if _, err := info.Configure(params("db_url", url, "ip_col", "ip; drop")); err == nil {
		t.Fatal("bad column accepted")
	}
	if _, err := info.Configure(params("db_url", url, "address_table", "nosuch")); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Fatal(err)
	}
	if _, err := info.Configure(params("db_url", url, "partition", "default: db_url="+url)); err == nil {
		t.Fatal("default partition defined twice")
	}
}

func TestMIReloadAndDump(t *testing.T) {
	url, db := newDB(t, baseRows[:3]...)
	setup(t, params("db_url", url))
	info := modules.Lookup(Name)
	run := func(name string, p map[string]any) (string, error) {
		for _, c := range info.MI {
			if c.Name == name {
				out, err := c.Run(p)
				b, _ := json.Marshal(out)
				return string(b), err
			}
		}
		t.Fatalf("no MI command %s", name)
		return "", nil
	}
	m, _ := msgFrom(t, "udp", "192.0.2.50", 5060)
	if rc := modtest.Call(t, Name, m, "check_source_address", 1); rc != -1 {
		t.Fatal(rc)
	}
	insert(t, db, "address", row{grp: 1, ip: "192.0.2.50", mask: 32, proto: "any", info: "new"})
	if rc := modtest.Call(t, Name, m, "check_source_address", 1); rc != -1 {
		t.Fatal("the cache changed before address_reload")
	}
	if out, err := run("address_reload", map[string]any{}); err != nil || out != `"OK"` {
		t.Fatal(out, err)
	}
	if rc := modtest.Call(t, Name, m, "check_source_address", 1); rc != 1 {
		t.Fatal("not reloaded", rc)
	}
	out, err := run("address_dump", map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Partitions":[{"Destinations":[` +
		`{"context_info":"","grp":1,"ip":"192.0.2.10","mask":"32","pattern":"","port":0,"proto":"any"},` +
		`{"context_info":"pbx-11","grp":1,"ip":"192.0.2.11","mask":"32","pattern":"","port":5060,"proto":"udp"},` +
		`{"context_info":"new","grp":1,"ip":"192.0.2.50","mask":"32","pattern":"","port":0,"proto":"any"}],"name":"default"}]}`
	if out != want {
		t.Fatalf("address_dump\n got %s\nwant %s", out, want)
	}
	out, err = run("subnet_dump", map[string]any{"partition": "default"})
	want = `{"Destinations":[{"context_info":"carrier","grp":2,"ip":"198.51.100.0","mask":"255.255.255.0","pattern":"","port":0,"proto":"tcp"}],"part":"default"}`
	if err != nil || out != want {
		t.Fatalf("subnet_dump\n got %s\nwant %s (%v)", out, want, err)
	}
	if _, err := run("address_dump", map[string]any{"partition": "x"}); err == nil || err.(interface{ MICode() int }).MICode() != 404 {
		t.Fatal(err)
	}
	if _, err := run("address_reload", map[string]any{"partition": "x"}); err == nil || err.(interface{ MICode() int }).MICode() != 400 {
		t.Fatal(err)
	}
	if out, err := run("address_reload", map[string]any{"partition": "default"}); err != nil || out != `"OK"` {
		t.Fatal(out, err)
	}
}

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"*", "anything/at all", true},
		{"sip:*@example.com", "sip:a@example.com", true},
		{"sip:*@example.com", "sip:a@example.co", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"[a-c]x", "bx", true},
		{"[!a-c]x", "bx", false},
		{"[^a-c]x", "dx", true},
		{"[]]", "]", true},
		{`\*`, "*", true},
		{`\*`, "a", false},
		{"*.cfg", ".cfg", false}, // FNM_PERIOD: a leading '.' needs a literal one
		{".*", ".cfg", true},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"[abc", "[abc", true}, // unclosed bracket: literal
		{"", "", true},
		{"", "x", false},
	} {
		if got := globMatch(c.p, c.s); got != c.want {
			t.Errorf("glob(%q, %q) = %v", c.p, c.s, got)
		}
	}
}

// A script using the functions loads, and routes on the result.
func TestScript(t *testing.T) {
	url, _ := newDB(t, baseRows...)
	fixture := `src: udp:192.0.2.11:5060
-- script.cfg --
loadmodule "permissions.so"
loadmodule "sl.so"
modparam("permissions", "db_url", "` + url + `")
route {
    if (check_source_address("1", "$avp(ctx)")) {
        xlog("L_INFO", "trusted $si ($avp(ctx))\n");
    }
    if (!check_address(2, "$si", "$sp", "$proto")) {
        xlog("L_INFO", "not in group 2: rc=$rc\n");
    }
    if (get_source_group("$var(g)"))
        xlog("L_INFO", "group $var(g)\n");
    sl_send_reply(403, "Forbidden");
}
-- in.sip --
OPTIONS sip:100@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.11:5060;branch=z9hG4bK-perm1
From: <sip:a@192.0.2.11>;tag=1
To: <sip:100@192.0.2.1>
Call-ID: perm-1
CSeq: 1 OPTIONS
Max-Forwards: 70
Content-Length: 0

-- want --
log INFO trusted 192.0.2.11 (pbx-11)
log INFO not in group 2: rc=-1
log INFO group 1
reply 403 Forbidden
outcome returned 1
`
	old := cur.Load()
	t.Cleanup(func() { cur.Store(old) })
	res, err := scripttest.Run(filepath.Join(t.TempDir(), "perm.txtar"), []byte(fixture))
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("got\n%swant\n%s", res.Got, res.Want)
	}
	// a bad constant protocol is refused at load time
	bad := strings.Replace(fixture, `"$proto"`, `"carrier-pigeon"`, 1)
	if _, err := scripttest.Run("bad.txtar", []byte(bad)); err == nil || !strings.Contains(err.Error(), "unknown protocol") {
		t.Fatal(err)
	}
}
