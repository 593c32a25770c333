package avpops

import (
	"context"
	"path/filepath"
	"testing"

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

func fn(name string) *modules.Func {
	for _, f := range modules.Lookup(Name).Funcs {
		if f.Name == name {
			return f
		}
	}
	return nil
}

func TestAVPFunctions(t *testing.T) {
	u := "sqlite://" + filepath.Join(t.TempDir(), "a.db")
	db, err := store.Create(u)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	db.Init(ctx)
	db.Exec(ctx, `INSERT INTO location (username, contact, received, expires) VALUES ('alice', 'sip:alice@10.0.0.1', 'sip:198.51.100.7:5070', 0)`)
	apply, err := modules.Lookup(Name).Configure(modules.Params{"db_url": {value.S(u)}})
	if err != nil {
		t.Fatal(err)
	}
	apply()

	m := &msgctx.Msg{}
	m.Reset(0, 1)
	m.Src = msgctx.Addr{IP: "198.51.100.7", Port: 5070, Proto: "udp"}
	ref, _ := pvar.Compile(&ast.PVar{Name: "avp", Arg: "username", HasArg: true}, slots{})
	one := func(name string, args ...any) int {
		f := fn(name)
		a := &modules.Args{Vals: make([]value.Value, len(f.Args)), Refs: make([]*pvar.Ref, len(f.Args)), Given: make([]bool, len(f.Args))}
		fa := make([]check.FixupArg, len(f.Args))
		for i, v := range args {
			switch v := v.(type) {
			case string:
				a.Vals[i], fa[i] = value.S(v), check.FixupArg{Present: true, Const: true, Str: v}
			case *pvar.Ref:
				a.Refs[i], fa[i] = v, check.FixupArg{Present: true, PVar: "avp"}
			}
			a.Given[i] = true
		}
		if f.Fixup != nil {
			fix, err := f.Fixup(fa)
			if err != nil {
				t.Fatal(err)
			}
			a.Fix = fix
		}
		return f.Call(m, a)
	}
	if rc := one("is_avp_set", ref); rc != -1 {
		t.Errorf("is_avp_set before: %d", rc)
	}
	if rc := one("avp_db_query", "select username from location where received like 'sip:$si%'", ref); rc != 1 {
		t.Fatalf("avp_db_query: %d", rc)
	}
	if rc := one("is_avp_set", ref); rc != 1 || ref.Get(m).S != "alice" {
		t.Errorf("is_avp_set after: %d %v", rc, ref.Get(m))
	}
	if rc := one("avp_delete", ref); rc != 1 {
		t.Errorf("avp_delete: %d", rc)
	}
	if rc := one("is_avp_set", ref); rc != -1 {
		t.Errorf("is_avp_set after delete: %d", rc)
	}
	m.Src.IP = "203.0.113.1"
	if rc := one("avp_db_query", "select username from location where received like 'sip:$si%'", ref); rc != -2 {
		t.Errorf("unknown source: %d", rc)
	}
}
