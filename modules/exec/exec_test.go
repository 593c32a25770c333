package exec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/internal/modtest"
	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	_ "github.com/sipedge/sipedge/modules/core"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/scripttest"
	"github.com/sipedge/sipedge/runtime/value"
)

func setConfig(t *testing.T, kv ...any) {
	t.Helper()
	old := cur.Load()
	t.Cleanup(func() { cur.Store(old) })
	modtest.Configure(t, Name, kv...)
}

func call(t *testing.T, m *msgctx.Msg, name string, vals ...any) int {
	t.Helper()
	return modtest.Call(t, Name, m, name, vals...)
}

// slots gives every $var/$avp its own slot.
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

func avp(t *testing.T, sl *slots, name string) *pvar.Ref {
	t.Helper()
	r, err := pvar.Compile(&ast.PVar{Name: "avp", Arg: name, HasArg: true}, sl)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestExecOutput(t *testing.T) {
	setConfig(t)
	m, h := modtest.NewMsg(t, "")
	out, errs := &modtest.Recorder{Name: "out"}, &modtest.Recorder{Name: "err"}
	if rc := call(t, m, "exec", "echo hello; echo oops >&2; echo world", "", out.Ref(), errs.Ref()); rc != 1 {
		t.Fatalf("rc %d %v", rc, h)
	}
	if len(out.Vals) != 1 || out.Vals[0].S != "hello\nworld\n" {
		t.Fatalf("out %q", out.Vals)
	}
	if len(errs.Vals) != 1 || errs.Vals[0].S != "oops\n" {
		t.Fatalf("err %q", errs.Vals)
	}
	// stdin
	out = &modtest.Recorder{Name: "out"}
	if rc := call(t, m, "exec", "tr a-z A-Z", "this is my input\n", out.Ref()); rc != 1 {
		t.Fatal(rc)
	}
	if out.Vals[0].S != "THIS IS MY INPUT\n" {
		t.Fatalf("%q", out.Vals)
	}
	// no output: the variable is left alone
	out = &modtest.Recorder{Name: "out"}
	if rc := call(t, m, "exec", "true", "", out.Ref()); rc != 1 || len(out.Vals) != 0 {
		t.Fatal(rc, out.Vals)
	}
	// the exit status does not matter (OpenSIPS 3.x)
	if rc := call(t, m, "exec", "exit 3", "", out.Ref()); rc != 1 {
		t.Fatal(rc)
	}
}

func TestExecFireAndForget(t *testing.T) {
	setConfig(t)
	m, _ := modtest.NewMsg(t, "")
	mark := filepath.Join(t.TempDir(), "mark")
	start := time.Now()
	if rc := call(t, m, "exec", "sleep 0.3; echo done > "+mark); rc != 1 {
		t.Fatal(rc)
	}
	if time.Since(start) > 200*time.Millisecond {
		t.Fatal("exec without output variables waited for the command")
	}
	waitFile(t, mark, "done\n")
	// with input only: returns once the input is written
	if rc := call(t, m, "exec", "cat > "+mark, "piped\n"); rc != 1 {
		t.Fatal(rc)
	}
	waitFile(t, mark, "piped\n")
}

func waitFile(t *testing.T, path, want string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if b, err := os.ReadFile(path); err == nil && string(b) == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("%s = %q, want %q", path, b, want)
}

func TestExecEnv(t *testing.T) {
	setConfig(t)
	sl := &slots{}
	env := avp(t, sl, "env")
	m := &msgctx.Msg{}
	m.Reset(0, 4)
	m.Host = &modtest.Host{}
	env.Set(m, "=", value.S("b"))
	env.Set(m, "=", value.S("a")) // newest: OSIPS_EXEC_0
	out := &modtest.Recorder{Name: "out"}
	if rc := call(t, m, "exec", `echo "$OSIPS_EXEC_0,$OSIPS_EXEC_1"`, "", out.Ref(), "", env); rc != 1 {
		t.Fatal(rc)
	}
	// modtest passes "" for the skipped err argument as a string; the
	// function only looks at Refs, so it is ignored.
	if out.Vals[0].S != "a,b\n" {
		t.Fatalf("%q", out.Vals)
	}
	// an empty env AVP is an error, as in OpenSIPS
	empty := avp(t, sl, "none")
	if rc := call(t, m, "exec", "true", "", out.Ref(), "", empty); rc != -1 {
		t.Fatal(rc)
	}
	// the env argument must be an AVP
	f := modtest.Fn(t, Name, "exec")
	if _, err := modtest.Fixup(t, f, modtest.CS("ls"), check.FixupArg{}, check.FixupArg{}, check.FixupArg{}, modtest.DynVar("var")); err == nil {
		t.Fatal("a $var env was accepted")
	}
	if _, err := modtest.Fixup(t, f, modtest.CS(" ")); err == nil {
		t.Fatal("an empty command was accepted")
	}
}

func TestExecSetvars(t *testing.T) {
	setConfig(t, "setvars", 1)
	m, _ := modtest.NewMsg(t, modtest.InviteText)
	m.Src = msgctx.Addr{IP: "10.0.0.1", Port: 5060, Proto: "udp"}
	out := &modtest.Recorder{Name: "out"}
	if rc := call(t, m, "exec", `echo "$SIP_HF_CALL_ID|$SIP_SRCIP|$SIP_USER|$SIP_RURI|$SIP_TID|$SIP_HF_MAX_FORWARDS"`, "", out.Ref()); rc != 1 {
		t.Fatal(rc)
	}
	want := "a84b4c76e66710@pc33.example.org|10.0.0.1|alice|sip:alice@example.com:5060;transport=udp|z9hG4bK776asdhds|70\n"
	if out.Vals[0].S != want {
		t.Fatalf("got  %q\nwant %q", out.Vals[0].S, want)
	}
}

func TestExecTimeouts(t *testing.T) {
	m, h := modtest.NewMsg(t, "")
	out := &modtest.Recorder{Name: "out"}
	// sipedge's timeout: exec() gives up waiting and kills the command
	setConfig(t, "timeout", 200)
	start := time.Now()
	if rc := call(t, m, "exec", "echo partial; sleep 5", "", out.Ref()); rc != -1 {
		t.Fatal(rc)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("waited %v", d)
	}
	if !h.HasLog(msgctx.LErr, "timed out") {
		t.Fatal(h)
	}
	// time_to_kill: the command is terminated, exec() sees EOF
	setConfig(t, "time_to_kill", 1)
	start = time.Now()
	if rc := call(t, m, "exec", "echo before; sleep 10; echo after", "", out.Ref()); rc != 1 {
		t.Fatal(rc)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("waited %v", d)
	}
	if got := out.Vals[len(out.Vals)-1].S; got != "before\n" {
		t.Fatalf("%q", got)
	}
	// bad modparams
	if _, err := modules.Lookup(Name).Configure(modules.Params{"timeout": {value.I(-1)}}); err == nil {
		t.Fatal("negative timeout accepted")
	}
}

func TestExecOutputCap(t *testing.T) {
	setConfig(t)
	m, _ := modtest.NewMsg(t, "")
	out := &modtest.Recorder{Name: "out"}
	if rc := call(t, m, "exec", "head -c 100000 /dev/zero | tr '\\0' x", "", out.Ref()); rc != 1 {
		t.Fatal(rc)
	}
	if n := len(out.Vals[0].S); n != MaxOutput {
		t.Fatalf("kept %d bytes", n)
	}
}

func TestLegacy(t *testing.T) {
	setConfig(t)
	sl := &slots{}
	m := &msgctx.Msg{}
	m.Reset(0, 40)
	m.Host = &modtest.Host{}
	// exec_avp with a list: one line per AVP
	f := modtest.Fn(t, Name, "exec_avp")
	fix, err := f.Fixup([]check.FixupArg{{Present: true, Const: true, Str: "printf 'a\\nb\\nc\\n'", Slots: sl},
		{Present: true, Const: true, Str: "$avp(x), $avp(y)", Slots: sl}})
	if err != nil {
		t.Fatal(err)
	}
	a := &modules.Args{Vals: []value.Value{value.S("printf 'a\\nb\\nc\\n'"), value.S("")}, Given: []bool{true, true}, Fix: fix}
	if rc := f.Call(m, a); rc != 1 {
		t.Fatal(rc)
	}
	for name, want := range map[string]string{"x": "a", "y": "b", "3": "c"} {
		if got := avp(t, sl, name).Get(m).AsString(); got != want {
			t.Errorf("$avp(%s) = %q, want %q", name, got, want)
		}
	}
	if _, err := f.Fixup([]check.FixupArg{{Present: true, Const: true, Str: "true", Slots: sl},
		{Present: true, Const: true, Str: "$var(x)", Slots: sl}}); err == nil {
		t.Fatal("$var accepted in the AVP list")
	}
	// exec_getenv
	os.Setenv("SIPEDGE_EXEC_TEST", "v1")
	defer os.Unsetenv("SIPEDGE_EXEC_TEST")
	out := &modtest.Recorder{Name: "out"}
	if rc := call(t, m, "exec_getenv", "SIPEDGE_EXEC_TEST", out.Ref()); rc != 1 || out.Vals[0].S != "v1" {
		t.Fatal(rc, out.Vals)
	}
	if rc := call(t, m, "exec_getenv", "SIPEDGE_EXEC_NOPE", out.Ref()); rc != -1 {
		t.Fatal(rc)
	}
	// exec_msg: the message on stdin, false on a non-zero exit
	m2, _ := modtest.NewMsg(t, modtest.InviteText)
	dump := filepath.Join(t.TempDir(), "msg")
	if rc := call(t, m2, "exec_msg", "cat > "+dump); rc != 1 {
		t.Fatal(rc)
	}
	b, _ := os.ReadFile(dump)
	if !strings.HasPrefix(string(b), "INVITE sip:alice@example.com") || !strings.Contains(string(b), "Call-ID: a84b4c76e66710@pc33.example.org") {
		t.Fatalf("%q", b)
	}
	if rc := call(t, m2, "exec_msg", "cat >/dev/null; exit 1"); rc != -1 {
		t.Fatal(rc)
	}
}

func TestScript(t *testing.T) {
	fixture := `-- script.cfg --
loadmodule "exec.so"
modparam("exec", "timeout", 5000)
route {
    $avp(env) = "world";
    exec("echo \"hello $$OSIPS_EXEC_0 from $rU\"", , "$var(out)", , "$avp(env)");
    xlog("L_INFO", "out=$var(out)");
    if (exec("cat", "$fU\n", "$var(in)"))
        xlog("L_INFO", "in=$var(in)");
    exec_avp("printf 'one\\ntwo\\nthree\\n'", "$avp(first), $avp(second)");
    xlog("L_INFO", "$avp(first) $avp(second) $avp(3)");
    exit;
}
-- in.sip --
OPTIONS sip:100@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.11:5060;branch=z9hG4bK-exec1
From: <sip:carol@192.0.2.11>;tag=1
To: <sip:100@192.0.2.1>
Call-ID: exec-1
CSeq: 1 OPTIONS
Max-Forwards: 70
Content-Length: 0

-- want --
log INFO out=hello world from 100
log INFO in=carol
log INFO one two three
outcome exited
`
	old := cur.Load()
	t.Cleanup(func() { cur.Store(old) })
	res, err := scripttest.Run(filepath.Join(t.TempDir(), "exec.txtar"), []byte(fixture))
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("got\n%swant\n%s", res.Got, res.Want)
	}
	bad := strings.Replace(fixture, `"$avp(env)"`, `"$var(env)"`, 1)
	if _, err := scripttest.Run("bad.txtar", []byte(bad)); err == nil || !strings.Contains(err.Error(), "must be an AVP") {
		t.Fatal(err)
	}
}
