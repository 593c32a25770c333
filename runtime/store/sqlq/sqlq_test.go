package sqlq

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/source"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

func newMsg(t testing.TB, fromUser string) *msgctx.Msg {
	t.Helper()
	raw := "REGISTER sip:example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 198.51.100.7:5070;branch=z9hG4bK-1\r\n" +
		"From: <sip:" + fromUser + "@example.com>;tag=1\r\n" +
		"To: <sip:" + fromUser + "@example.com>\r\n" +
		"Call-ID: c1\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return &msgctx.Msg{Req: msg.(*sip.Request), Src: msgctx.Addr{IP: "198.51.100.7", Port: 5070, Proto: "udp"}}
}

func TestCompile(t *testing.T) {
	m := newMsg(t, "alice")
	for _, tc := range []struct {
		in    string
		sql   string
		args  []any
		write bool
	}{
		{in: "select username from location where received like 'sip:$si%'",
			sql: "select username from location where received like ?", args: []any{"sip:198.51.100.7%"}},
		{in: "select username from location where contact like 'sip:%$si%'",
			sql: "select username from location where contact like ?", args: []any{"sip:%198.51.100.7%"}},
		{in: "SELECT a FROM t WHERE u=$fU AND p=$sp AND x='it''s' AND y='$fU''s'",
			sql: "SELECT a FROM t WHERE u=? AND p=? AND x='it''s' AND y=?", args: []any{"alice", int64(5070), "alice's"}},
		{in: `select "$fU" -- $si is not bound here` + "\n" + `/* nor $si */ from t`,
			sql: "select ? -- $si is not bound here\n/* nor $si */ from t", args: []any{"alice"}},
		{in: "select '$(fU{s.escape.common})'", sql: "select ?", args: []any{"alice"}},
		{in: "select '$$fU costs $$5'", sql: "select '$$fU costs $$5'", args: []any{}},
		{in: "delete from location where username='$fU'", sql: "delete from location where username=?", args: []any{"alice"}, write: true},
		{in: "  (select 1)", sql: "  (select 1)", args: []any{}},
		{in: "with x as (select 1) delete from t", sql: "with x as (select 1) delete from t", args: []any{}, write: true},
		{in: "with x as (select 'delete') select * from x", sql: "with x as (select 'delete') select * from x", args: []any{}},
		{in: "select $rm is null", sql: "select ? is null", args: []any{"REGISTER"}},
	} {
		q, err := Compile(tc.in, source.Pos{})
		if err != nil {
			t.Errorf("Compile(%q): %v", tc.in, err)
			continue
		}
		if q.SQL != tc.sql {
			t.Errorf("Compile(%q).SQL = %q, want %q", tc.in, q.SQL, tc.sql)
		}
		if got := q.Args(m); !reflect.DeepEqual(got, tc.args) {
			t.Errorf("Compile(%q).Args = %#v, want %#v", tc.in, got, tc.args)
		}
		if q.Write != tc.write {
			t.Errorf("Compile(%q).Write = %v", tc.in, q.Write)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for in, want := range map[string]string{
		"select * from t where a='$avp(x)'":   "script variables",
		"select * from t where a=$var(x)":     "script variables",
		"select * from t_$fU":                 "part of a name",
		"select * from t where a=?":           "must not contain ? parameters",
		"select * from t where a=:name":       "named parameters",
		"select * from t where a='x":          "unterminated",
		"select `$fU` from t":                 "quoted name",
		"select * from t where a=$nosuchpv":   "unknown pseudo-variable",
		"select * from t where a='$(fU{x.y})": "unknown transformation",
	} {
		_, err := Compile(in, source.Pos{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Compile(%q) error = %v, want %q", in, err, want)
		}
	}
}

// avpRef is a writable stand-in for $avp(name): it keeps values newest first.
type avpRef struct{ vals []value.Value }

func (a *avpRef) ref(name string) *pvar.Ref {
	return &pvar.Ref{Text: "$avp(" + name + ")", Spec: &pvar.Spec{
		Name: "avp", Writable: true,
		Get: func(*msgctx.Msg, any, pvar.Index) value.Value {
			if len(a.vals) == 0 {
				return value.Null
			}
			return a.vals[0]
		},
		Set: func(_ *msgctx.Msg, _ any, _ pvar.Index, _ string, v value.Value) error {
			a.vals = append([]value.Value{v}, a.vals...)
			return nil
		},
	}}
}

func testDB(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Create("sqlite://" + filepath.Join(t.TempDir(), "q.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if _, err := db.Exec(context.Background(),
			`INSERT INTO location (username, contact, received, expires) VALUES (?, ?, ?, ?)`,
			u, "sip:"+u+"@10.0.0.1", "sip:198.51.100.7:5070", 0); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func TestRunAndInjection(t *testing.T) {
	db := testDB(t)
	q, err := Compile("select username, expires, path from location where username='$fU' order by username", source.Pos{})
	if err != nil {
		t.Fatal(err)
	}
	var user, exp, path avpRef
	res, err := Run(db, q, newMsg(t, "alice"), []*pvar.Ref{user.ref("u"), exp.ref("e"), path.ref("p")}, Options{})
	if err != nil || res.Rows != 1 {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	if user.vals[0].S != "alice" || exp.vals[0] != value.I(0) || path.vals[0].S != "<null>" {
		t.Errorf("got %v %v %v", user.vals, exp.vals, path.vals)
	}

	// The classic injection changes nothing: the value is bound.
	user.vals = nil
	res, err = Run(db, q, newMsg(t, "x' OR '1'='1"), []*pvar.Ref{user.ref("u")}, Options{})
	if err != nil || res.Rows != 0 || len(user.vals) != 0 {
		t.Fatalf("injection: %+v, %v, %v", res, err, user.vals)
	}
	// Same for an unquoted pvar.
	q2, _ := Compile("select username from location where username=$fU", source.Pos{})
	res, err = Run(db, q2, newMsg(t, "x OR 1=1"), []*pvar.Ref{user.ref("u")}, Options{})
	if err != nil || res.Rows != 0 {
		t.Fatalf("unquoted injection: %+v, %v", res, err)
	}

	// Several rows: one value per row, the last row newest (OpenSIPS order).
	q3, _ := Compile("select username from location where received like 'sip:$si%' order by username", source.Pos{})
	user.vals = nil
	res, err = Run(db, q3, newMsg(t, "alice"), []*pvar.Ref{user.ref("u")}, Options{})
	if err != nil || res.Rows != 2 || len(user.vals) != 2 || user.vals[0].S != "bob" || user.vals[1].S != "alice" {
		t.Fatalf("multi-row: %+v, %v, %v", res, err, user.vals)
	}

	// Writes go to the writer.
	q4, _ := Compile("delete from location where username='$fU'", source.Pos{})
	if _, err := Run(db, q4, newMsg(t, "bob"), nil, Options{}); err != nil {
		t.Fatal(err)
	}
	res, _ = Run(db, q3, newMsg(t, "alice"), nil, Options{})
	if res.Rows != 1 {
		t.Errorf("after delete: %d rows", res.Rows)
	}
}

func BenchmarkRun(b *testing.B) {
	db := testDB(b)
	q, _ := Compile("select username from location where received like 'sip:$si%'", source.Pos{})
	m := newMsg(b, "alice")
	var u avpRef
	dest := []*pvar.Ref{u.ref("u")}
	b.ReportAllocs()
	for b.Loop() {
		u.vals = u.vals[:0]
		if _, err := Run(db, q, m, dest, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestParseDBURLs(t *testing.T) {
	got, err := ParseDBURLs([]string{"sqlite:///a.db", "2 sqlite:///b.db"})
	if err != nil || got[0] != "sqlite:///a.db" || got[2] != "sqlite:///b.db" {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := ParseDBURLs([]string{"x sqlite:///a.db"}); err == nil {
		t.Error("bad id accepted")
	}
	if _, err := ParseDBURLs([]string{"sqlite:///a.db", "0 sqlite:///b.db"}); err == nil {
		t.Error("duplicate id accepted")
	}
}

func TestFirstRowNull(t *testing.T) {
	db := testDB(t)
	q, _ := Compile("select path, username from location order by username", source.Pos{})
	var p, u avpRef
	res, err := Run(db, q, newMsg(t, "alice"), []*pvar.Ref{p.ref("p"), u.ref("u")}, Options{FirstRow: true, NullAsNull: true})
	if err != nil || res.Rows != 1 || len(p.vals) != 1 || !p.vals[0].IsNull() || u.vals[0].S != "alice" {
		t.Fatalf("%+v %v %v %v", res, err, p.vals, u.vals)
	}
}
