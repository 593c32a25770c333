package json

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/internal/modtest"
	"github.com/sipedge/sipedge/lang/source"
	"github.com/sipedge/sipedge/lang/syntax"
	"github.com/sipedge/sipedge/modules"
	_ "github.com/sipedge/sipedge/modules/core"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/scripttest"
	"github.com/sipedge/sipedge/runtime/value"
)

type slots struct{ names map[string]int }

func (s *slots) slot(n string) int {
	if s.names == nil {
		s.names = map[string]int{}
	}
	if i, ok := s.names[n]; ok {
		return i
	}
	s.names[n] = len(s.names)
	return s.names[n]
}
func (s *slots) VarSlot(n string) int { return s.slot("var:" + n) }
func (s *slots) AVPSlot(n string) int { return s.slot("avp:" + n) }

type env struct {
	t  *testing.T
	sl *slots
	m  *msgctx.Msg
	h  *modtest.Host
}

func newEnv(t *testing.T) *env {
	h := &modtest.Host{}
	m := &msgctx.Msg{}
	m.Reset(16, 16)
	m.Host = h
	return &env{t: t, sl: &slots{}, m: m, h: h}
}

func (e *env) ref(text string) *pvar.Ref {
	e.t.Helper()
	pv, n, err := syntax.ParsePVar(text, source.Pos{})
	if err != nil || n != len(text) {
		e.t.Fatalf("parse %s: %v", text, err)
	}
	r, err := pvar.Compile(pv, e.sl)
	if err != nil {
		e.t.Fatalf("compile %s: %v", text, err)
	}
	return r
}

func (e *env) set(text, op string, v value.Value) error {
	e.t.Helper()
	return e.ref(text).Set(e.m, op, v)
}

func (e *env) must(text, op string, v value.Value) {
	e.t.Helper()
	if err := e.set(text, op, v); err != nil {
		e.t.Fatalf("%s %s %v: %v", text, op, v, err)
	}
}

func (e *env) get(text string) value.Value {
	e.t.Helper()
	return e.ref(text).Get(e.m)
}

func (e *env) want(text, want string) {
	e.t.Helper()
	if got := e.get(text); got.String() != want {
		e.t.Errorf("%s = %q, want %q", text, got.String(), want)
	}
}

func TestPrintFormats(t *testing.T) {
	n, err := parse(`{"ana":"are","ar":[2,3],"e":{},"a":[],"u":"x/y\n\u0001é","f":1.50,"b":true,"z":null}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		flags int
		want  string
	}{
		{fSpaced, `{ "ana": "are", "ar": [ 2, 3 ], "e": { }, "a": [ ], "u": "x\/y\n\u0001é", "f": 1.50, "b": true, "z": null }`},
		{fPlain, `{"ana":"are","ar":[2,3],"e":{},"a":[],"u":"x\/y\n\u0001é","f":1.50,"b":true,"z":null}`},
		{fSpaced | fNoSlash, `{ "ana": "are", "ar": [ 2, 3 ], "e": { }, "a": [ ], "u": "x/y\n\u0001é", "f": 1.50, "b": true, "z": null }`},
		{fPretty, "{\n  \"ana\":\"are\",\n  \"ar\":[\n    2,\n    3\n  ],\n  \"e\":{},\n  \"a\":[],\n  \"u\":\"x\\/y\\n\\u0001é\",\n  \"f\":1.50,\n  \"b\":true,\n  \"z\":null\n}"},
	} {
		got, err := n.print(c.flags)
		if err != nil || got != c.want {
			t.Errorf("flags %d:\ngot  %s\nwant %s (%v)", c.flags, got, c.want, err)
		}
	}
	for _, bad := range []string{``, `{`, `{"a"}`, `[1,]`, `{"a":1}x`, `"\q"`, `01x`, `tru`} {
		if _, err := parse(bad); err == nil {
			t.Errorf("parse(%q) accepted", bad)
		}
	}
	// duplicate keys replace in place; surrogate pairs
	n, _ = parse(`{"a":1,"b":2,"a":3,"s":"\ud83d\ude00"}`)
	if got, _ := n.print(fPlain); got != `{"a":3,"b":2,"s":"😀"}` {
		t.Fatal(got)
	}
}

// The examples of OpenSIPS's json module documentation.
func TestDocExamples(t *testing.T) {
	e := newEnv(t)
	e.must("$json(obj1)", ":=", value.S("{}"))
	e.must("$json(obj1/key)", "=", value.S("value"))
	e.want("$json(obj1)", `{ "key": "value" }`)
	e.must("$json(matrix1)", ":=", value.S("[[1,2,3],[4,5,6]]"))
	e.must("$json(matrix1[1][2])", "=", value.I(1))
	e.want("$json(matrix1)", `[ [ 1, 2, 3 ], [ 4, 5, 1 ] ]`)
	e.want("$json(matrix1[-1][0])", "4")
	if v := e.get("$json(matrix1[0][1])"); !v.IsInt() || v.I != 2 {
		t.Fatalf("%+v", v)
	}
	// iterating with a $var index, incrementing each value
	e.must("$json(ar1)", ":=", value.S("[1,2,3,4]"))
	e.must("$var(i)", "=", value.I(0))
	for i := 0; e.get("$json(ar1[$var(i)])").Truth(); i++ {
		cur := e.get("$json(ar1[$var(i)])")
		e.must("$json(ar1[$var(i)])", "=", value.I(cur.I+1))
		e.must("$var(i)", "=", value.I(i+1))
	}
	e.want("$json(ar1)", "[ 2, 3, 4, 5 ]")
	// = appends and deletes; := parses
	e.must("$json(array1)", ":=", value.S("[]"))
	e.must("$json(array1[])", "=", value.I(1))
	e.must("$json(array1[])", ":=", value.S("null"))
	e.must("$json(array1[])", ":=", value.S("true"))
	e.must("$json(array1[])", "=", value.S("s"))
	e.want("$json(array1)", `[ 1, null, true, "s" ]`)
	e.must("$json(array1[-1])", "=", value.Null)
	e.want("$json(array1)", `[ 1, null, true ]`)
	e.want("$json(array1[1])", "<null>") // JSON null reads as NULL
	// copy a document into another
	e.must("$json(array)", ":=", value.S("[1,2,3]"))
	e.must("$json(object)", ":=", value.S("{}"))
	e.must("$json(object/array)", ":=", e.get("$json(array)"))
	e.must("$json(array[0])", "=", value.I(9)) // a copy: object is unchanged
	e.want("$json(object)", `{ "array": [ 1, 2, 3 ] }`)
	e.want("$json_compact(object)", `{"array":[1,2,3]}`)
	e.want("$json_pretty(object)", "{\n  \"array\":[\n    1,\n    2,\n    3\n  ]\n}")
	// keys from variables, keys with spaces
	e.must("$var(k)", "=", value.S("my key"))
	e.must("$json(object/$var(k))", "=", value.S("v"))
	e.want("$json(object/my key)", "v")
	// missing paths read as NULL
	for _, p := range []string{"$json(nope)", "$json(object/none)", "$json(object/array[7])", "$json(object/array/x)", "$json(array[0][0])"} {
		e.want(p, "<null>")
	}
}

func TestSetErrors(t *testing.T) {
	e := newEnv(t)
	if err := e.set("$json(x/a)", "=", value.S("v")); err == nil || !strings.Contains(err.Error(), "not initialized") {
		t.Fatal(err)
	}
	e.must("$json(x)", ":=", value.S(`{"a":[1]}`))
	for _, c := range []struct{ path, op string }{
		{"$json(x/a[5])", "="},      // replace out of range
		{"$json(x/b/c)", "="},       // missing intermediate
		{"$json(x/a/k)", "="},       // key into an array
		{"$json(x[0])", "="},        // index into an object
		{"$json(x/a[])", "delete"},  // delete with []
		{"$json(x/a)", ":=bad"},     // bad JSON
		{"$json(x/a)", ":=integer"}, // := of a non-string
	} {
		var err error
		switch c.op {
		case "delete":
			err = e.set(c.path, "=", value.Null)
		case ":=bad":
			err = e.set(c.path, ":=", value.S("{oops"))
		case ":=integer":
			err = e.set(c.path, ":=", value.I(3))
		default:
			err = e.set(c.path, c.op, value.S("v"))
		}
		if err == nil {
			t.Errorf("%s %s accepted", c.path, c.op)
		}
	}
	// a parse error deletes the target, as in OpenSIPS
	e.want("$json(x)", `{ }`)
	// a non-integer index variable
	e.must("$var(i)", "=", value.S("one"))
	if err := e.set("$json(x/a[$var(i)])", "=", value.I(1)); err == nil {
		t.Fatal("string index accepted")
	}
	// bad names
	for _, bad := range []string{"", "/a", "a[1", "a.size", "a[x]", "a/$nope("} {
		if _, err := parsePath(bad, e.sl); err == nil {
			t.Errorf("parsePath(%q) accepted", bad)
		}
	}
}

func TestIntegers(t *testing.T) {
	e := newEnv(t)
	e.must("$json(n)", ":=", value.S(`{"big":4294967296,"neg":-4294967296,"f":2.5}`))
	e.want("$json(n/big)", "2147483647")
	e.want("$json(n/neg)", "-2147483648")
	e.want("$json(n/f)", "2.5")
	old := cur.Load()
	defer cur.Store(old)
	cur.Store(&config{longQuoting: true})
	if v := e.get("$json(n/big)"); v.IsInt() || v.S != "4294967296" {
		t.Fatalf("%+v", v)
	}
	e.want("$json(n)", `{ "big": 4294967296, "neg": -4294967296, "f": 2.5 }`)
}

func TestIteration(t *testing.T) {
	e := newEnv(t)
	e.must("$json(foo)", ":=", value.S(`{"a": 1, "b": [2], "c": null}`))
	r := e.ref("$(json(foo.keys)[*])")
	var keys, vals []string
	for i := 0; ; i++ {
		v, _ := r.GetAt(e.m, i)
		if v.IsNull() {
			break
		}
		keys = append(keys, v.String())
	}
	r = e.ref("$(json(foo)[*])")
	for i := 0; ; i++ {
		v, _ := r.GetAt(e.m, i)
		if v.IsNull() {
			break
		}
		vals = append(vals, v.String())
	}
	if strings.Join(keys, ",") != "a,b,c" || strings.Join(vals, ",") != "1,[ 2 ],null" {
		t.Fatal(keys, vals)
	}
	if v := r.Get(e.m); !v.IsNull() || !e.h.HasLog(msgctx.LErr, "[*]") {
		t.Fatal(v, e.h)
	}
}

func TestLinkAndMerge(t *testing.T) {
	e := newEnv(t)
	e.must("$json(b)", ":=", value.S("[{},{},{}]"))
	call := func(name string, args ...any) int {
		return modtest.Call(t, Name, e.m, name, args...)
	}
	if rc := call("json_link", e.ref("$json(stub)"), e.ref("$json(b[0])")); rc != 1 {
		t.Fatal(rc, e.h)
	}
	e.must("$json(stub/ana)", "=", value.S("are"))
	e.must("$json(stub/ar)", ":=", value.S("[]"))
	for i := 1; i <= 3; i++ {
		e.must("$json(stub/ar[])", "=", value.I(i))
	}
	e.must("$json(b[0]/ar[0])", "=", value.Null)
	e.want("$json(stub)", `{ "ana": "are", "ar": [ 2, 3 ] }`)
	e.want("$json(b)", `[ { "ana": "are", "ar": [ 2, 3 ] }, { }, { } ]`)
	e.must("$json(stub)", "=", value.Null)
	e.want("$json(stub)", "<null>")
	e.want("$json(b)", `[ { "ana": "are", "ar": [ 2, 3 ] }, { }, { } ]`)
	// a circular reference is an error, not a crash
	e.must("$json(c)", ":=", value.S("[1]"))
	if rc := call("json_link", e.ref("$json(c[0])"), e.ref("$json(c)")); rc != 1 {
		t.Fatal(rc)
	}
	if v := e.get("$json(c)"); !v.IsNull() || !e.h.HasLog(msgctx.LErr, "circular") {
		t.Fatal(v)
	}
	// a missing source
	if rc := call("json_link", e.ref("$json(d)"), e.ref("$json(nothing/here)")); rc != -1 {
		t.Fatal(rc)
	}
	// only $json arguments
	if _, err := modtest.Fixup(t, modtest.Fn(t, Name, "json_link"), modtest.DynVar("var"), modtest.DynVar("json")); err == nil {
		t.Fatal("$var accepted")
	}
	// json_merge: RFC 7396
	out := &modtest.Recorder{Name: "out"}
	if rc := call("json_merge", `{"a":"b","c":{"d":"e","f":"g"}}`, `{"a":"z","c":{"f":null},"n":[1]}`, out.Ref()); rc != 1 {
		t.Fatal(rc)
	}
	if got := out.Vals[0].S; got != `{ "a": "z", "c": { "d": "e" }, "n": [ 1 ] }` {
		t.Fatal(got)
	}
	if rc := call("json_merge", `{`, `{}`, out.Ref()); rc != -1 {
		t.Fatal(rc)
	}
}

func TestParams(t *testing.T) {
	old := cur.Load()
	defer cur.Store(old)
	apply, err := modules.Lookup(Name).Configure(modules.Params{"disable_escape_forward_slash": {value.I(1)}})
	if err != nil {
		t.Fatal(err)
	}
	apply()
	e := newEnv(t)
	e.must("$json(u)", ":=", value.S(`["a/b"]`))
	e.want("$json(u)", `[ "a/b" ]`)
	e.want("$json_compact(u)", `["a\/b"]`)
}

func TestScript(t *testing.T) {
	fixture := `-- script.cfg --
loadmodule "json.so"
route {
    $json(body) := "{\"account\": \"alice\", \"gw\": [\"a\", \"b\"], \"credit\": 12}";
    xlog("L_INFO", "account=$json(body/account) credit=$json(body/credit) gw1=$json(body/gw[1])\n");
    for ($var(k) in $(json(body.keys)[*]))
        xlog("L_INFO", "key $var(k)\n");
    $var(i) = 0;
    while ($json(body/gw[$var(i)])) {
        xlog("L_INFO", "gw $json(body/gw[$var(i)])\n");
        $var(i) = $var(i) + 1;
    }
    $json(reply) := "{}";
    $json(reply/caller) = $fU;
    $json(reply/n) = $json(body/credit) + 1;
    xlog("L_INFO", "$json(reply) $json_compact(reply)\n");
    exit;
}
-- in.sip --
OPTIONS sip:100@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.11:5060;branch=z9hG4bK-json1
From: <sip:carol@192.0.2.11>;tag=1
To: <sip:100@192.0.2.1>
Call-ID: json-1
CSeq: 1 OPTIONS
Max-Forwards: 70
Content-Length: 0

-- want --
log INFO account=alice credit=12 gw1=b
log INFO key account
log INFO key gw
log INFO key credit
log INFO gw a
log INFO gw b
log INFO { "caller": "carol", "n": 13 } {"caller":"carol","n":13}
outcome exited
`
	res, err := scripttest.Run(filepath.Join(t.TempDir(), "json.txtar"), []byte(fixture))
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("got\n%swant\n%s", res.Got, res.Want)
	}
	bad := strings.Replace(fixture, "$json(body/gw[1])", "$json(body/gw[x])", 1)
	if _, err := scripttest.Run("bad.txtar", []byte(bad)); err == nil || !strings.Contains(err.Error(), "not an integer") {
		t.Fatal(err)
	}
}
