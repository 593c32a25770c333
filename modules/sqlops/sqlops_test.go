package sqlops

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

type slots struct{}

func (slots) VarSlot(string) int { return 0 }
func (slots) AVPSlot(string) int { return 0 }

type host struct{ logs []string }

func (h *host) Log(_ *msgctx.Msg, _ int, text string) { h.logs = append(h.logs, text) }
func (h *host) Reply(*msgctx.Msg, int, string) error  { return nil }

func setup(t *testing.T) (*msgctx.Msg, *host) {
	t.Helper()
	dir := t.TempDir()
	var urls []value.Value
	for i, name := range []string{"a.db", "b.db"} {
		u := "sqlite://" + filepath.Join(dir, name)
		db, err := store.Create(u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		ctx := context.Background()
		db.Init(ctx)
		db.Exec(ctx, `INSERT INTO address (ip, grp, context_info) VALUES ('198.51.100.7', ?, NULL)`, i+1)
		if i == 0 {
			urls = append(urls, value.S(u))
		} else {
			urls = append(urls, value.S("3 "+u))
		}
	}
	apply, err := modules.Lookup(Name).Configure(modules.Params{"db_url": urls})
	if err != nil {
		t.Fatal(err)
	}
	apply()
	raw := "OPTIONS sip:x@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-1\r\n" +
		"From: <sip:alice@example.com>;tag=1\r\nTo: <sip:x@example.com>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	msg, _ := sip.ParseMessage([]byte(raw))
	h := &host{}
	m := &msgctx.Msg{Req: msg.(*sip.Request), Host: h, Src: msgctx.Addr{IP: "198.51.100.7", Port: 5060, Proto: "udp"}}
	m.Reset(1, 1)
	m.Req, m.Host, m.Src = msg.(*sip.Request), h, msgctx.Addr{IP: "198.51.100.7", Port: 5060, Proto: "udp"}
	return m, h
}

func run(t *testing.T, m *msgctx.Msg, fname, query string, dest string, dbID int) int {
	t.Helper()
	var f *modules.Func
	for _, g := range modules.Lookup(Name).Funcs {
		if g.Name == fname {
			f = g
		}
	}
	fa := []check.FixupArg{{Present: true, Const: true, Str: query}, {}, {}}
	a := &modules.Args{Vals: make([]value.Value, 3), Refs: make([]*pvar.Ref, 3), Given: []bool{true, false, false}}
	if dest != "" {
		ref, err := pvar.Compile(&ast.PVar{Name: dest, Arg: "x", HasArg: true}, slots{})
		if err != nil {
			t.Fatal(err)
		}
		a.Refs[1], a.Given[1] = ref, true
		fa[1] = check.FixupArg{Present: true, PVar: dest}
	}
	if dbID >= 0 {
		a.Vals[2], a.Given[2] = value.I(dbID), true
		fa[2] = check.FixupArg{Present: true, Const: true, Int: dbID}
	}
	fix, err := f.Fixup(fa)
	if err != nil {
		t.Fatalf("fixup %q: %v", query, err)
	}
	a.Fix = fix
	return f.Call(m, a)
}

func TestSQLQuery(t *testing.T) {
	m, h := setup(t)
	if rc := run(t, m, "sql_query", "select grp from address where ip = '$si'", "avp", -1); rc != 1 || m.AVPs[0][0] != value.I(1) {
		t.Fatalf("db 0: %d %v %v", rc, m.AVPs, h.logs)
	}
	if rc := run(t, m, "sql_query", "select grp from address where ip = $si", "avp", 3); rc != 1 || m.AVPs[0][0] != value.I(2) {
		t.Fatalf("db 3: %d %v", rc, m.AVPs)
	}
	if rc := run(t, m, "sql_query", "select grp from address where ip = '$fU'", "avp", -1); rc != -2 {
		t.Errorf("no rows: %d", rc)
	}
	if rc := run(t, m, "sql_query", "select grp from address", "", 7); rc != -1 || !strings.Contains(h.logs[len(h.logs)-1], "no db_url with id 7") {
		t.Errorf("unknown db id: %d %v", rc, h.logs)
	}
	if rc := run(t, m, "sql_query", "select nosuchcol from address", "avp", -1); rc != -1 {
		t.Errorf("bad SQL: %d", rc)
	}
	if rc := run(t, m, "sql_query", "update address set grp = 9 where ip = '$si'", "", -1); rc != 1 {
		t.Errorf("update: %d %v", rc, h.logs)
	}
	// sql_query_one: first row, NULL stays NULL, any variable.
	if rc := run(t, m, "sql_query_one", "select context_info from address", "var", -1); rc != 1 || !m.Vars[0].IsNull() {
		t.Errorf("sql_query_one: %d %v", rc, m.Vars)
	}
	if rc := run(t, m, "sql_query", "select context_info from address", "var", -1); rc != 1 || m.Vars[0].S != "<null>" {
		t.Errorf("sql_query NULL: %d %v", rc, m.Vars)
	}
}

func TestFixupErrors(t *testing.T) {
	f := modules.Lookup(Name).Funcs[0]
	if _, err := f.Fixup([]check.FixupArg{{Present: true, PVar: "var"}, {}, {}}); err == nil {
		t.Error("query in a variable accepted")
	}
	if _, err := f.Fixup([]check.FixupArg{{Present: true, Const: true, Str: "select 1"}, {}, {Present: true, Const: true, Int: -1}}); err == nil {
		t.Error("negative db_id accepted")
	}
	if _, err := modules.Lookup(Name).Configure(modules.Params{"db_url": {value.S("x sqlite:///a")}}); err == nil {
		t.Error("bad db_url accepted")
	}
}
