package uac

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/internal/modtest"
	"github.com/sipedge/sipedge/modules"
	_ "github.com/sipedge/sipedge/modules/core"
	_ "github.com/sipedge/sipedge/modules/rr"
	_ "github.com/sipedge/sipedge/modules/sipmsgops"
	_ "github.com/sipedge/sipedge/modules/sl"
	_ "github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/scripttest"
	"github.com/sipedge/sipedge/runtime/value"
)

func apply(t *testing.T, kv ...string) {
	t.Helper()
	p := modules.Params{"restore_mode": {value.S("auto")}, "rr_from_store_param": {value.S("vsf")},
		"rr_to_store_param": {value.S("vst")}, "force_dialog": {value.I(0)}}
	for i := 0; i < len(kv); i += 2 {
		p[kv[i]] = []value.Value{value.S(kv[i+1])}
	}
	fn, err := configure(p)
	if err != nil {
		t.Fatal(err)
	}
	fn()
}

func TestEncodeDecode(t *testing.T) {
	for _, pw := range []string{"", "s3cret"} {
		for _, pair := range [][2]string{
			{"sip:alice@example.com", "sip:anonymous@anonymous.invalid"},
			{"sip:+15551234567@carrier.net;user=phone", "sip:1000@pbx"},
		} {
			enc := encode(pair[0], pair[1], pw)
			if strings.ContainsAny(enc, ";=,<> ") {
				t.Errorf("encoded value %q does not fit a URI parameter", enc)
			}
			for _, dir := range [][2]string{{pair[0], pair[1]}, {pair[1], pair[0]}} {
				got, err := decode(enc, dir[0], pw)
				if err != nil || got != dir[1] {
					t.Errorf("decode(%q on %q) = %q, %v; want %q", enc, dir[0], got, err, dir[1])
				}
			}
		}
	}
	if _, err := decode("!!", "x", ""); err == nil {
		t.Error("bad base64 accepted")
	}
}

func TestReplace(t *testing.T) {
	apply(t)
	m, _ := modtest.NewMsg(t, modtest.InviteText)
	if rc := modtest.Call(t, Name, m, "uac_replace_from", "Anonymous", "sip:anonymous@anonymous.invalid"); rc != 1 {
		t.Fatal(rc)
	}
	if got := m.Req.From().Value(); got != `"Anonymous" <sip:anonymous@anonymous.invalid>;tag=1928301774` {
		t.Errorf("From: %s", got)
	}
	want := ";vsf=" + encode("sip:bob@example.org", "sip:anonymous@anonymous.invalid", "")
	if m.RR.Params != want {
		t.Errorf("RR params %q, want %q", m.RR.Params, want)
	}
	if rc := modtest.Call(t, Name, m, "uac_replace_from", "", "sip:x@y"); rc != -1 {
		t.Error("a second replace in the same branch was accepted")
	}
	// display only, and the 2.x single-argument form on To
	m2, _ := modtest.NewMsg(t, modtest.InviteText)
	modtest.Call(t, Name, m2, "uac_replace_from", "Batman", "")
	if got := m2.Req.From().Value(); got != `"Batman" <sip:bob@example.org>;tag=1928301774` || m2.RR.Params != "" {
		t.Errorf("display only: %s, RR %q", got, m2.RR.Params)
	}
	modtest.Call(t, Name, m2, "uac_replace_to", "sip:carol@example.com")
	if got := m2.Req.To().Value(); got != `"Alice" <sip:carol@example.com>` {
		t.Errorf("To: %s", got)
	}
	apply(t, "restore_mode", "none")
	m3, _ := modtest.NewMsg(t, modtest.InviteText)
	modtest.Call(t, Name, m3, "uac_replace_from", "", "sip:x@y.z")
	if m3.RR.Params != "" {
		t.Errorf("restore_mode none stored %q", m3.RR.Params)
	}
	for _, bad := range [][]string{{"restore_mode", "sometimes"}, {"rr_from_store_param", "a;b"}, {"rr_to_store_param", "vsf"}} {
		p := modules.Params{"restore_mode": {value.S("auto")}, "rr_from_store_param": {value.S("vsf")},
			"rr_to_store_param": {value.S("vst")}, "force_dialog": {value.I(0)}}
		p[bad[0]] = []value.Value{value.S(bad[1])}
		if _, err := configure(p); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// sequential builds an in-dialog request through the proxy.
func sequential(t *testing.T, fromURI, fromTag, toURI, routeParams string) string {
	return "BYE sip:peer@192.0.2.50 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-seq\r\n" +
		"Route: <sip:127.0.0.1:5060;lr" + routeParams + ">\r\n" +
		"From: <" + fromURI + ">;tag=" + fromTag + "\r\n" +
		"To: <" + toURI + ">;tag=callee\r\n" +
		"Call-ID: c1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
}

func TestAutoRestore(t *testing.T) {
	apply(t, "restore_passwd", "pw")
	orig, repl := "sip:alice@example.com", "sip:anonymous@anonymous.invalid"
	params := ";ftag=caller;vsf=" + encode(orig, repl, "pw")
	// downstream: the caller still says From alice; the callee must see the replacement
	m, _ := modtest.NewMsg(t, sequential(t, orig, "caller", "sip:bob@example.net", params))
	autoRestore(m)
	if got := m.Req.From().Address.String(); got != repl {
		t.Errorf("downstream From %s, want %s", got, repl)
	}
	// upstream: the callee addresses the replacement in To; the caller must see alice
	m2, _ := modtest.NewMsg(t, sequential(t, "sip:bob@example.net", "callee2", repl, params))
	autoRestore(m2)
	if got := m2.Req.To().Address.String(); got != orig {
		t.Errorf("upstream To %s, want %s", got, orig)
	}
	if rc := modtest.Call(t, Name, m2, "uac_restore_to"); rc != 1 {
		t.Errorf("uac_restore_to after auto restore: %d", rc)
	}
	// manual mode leaves it to the script
	apply(t, "restore_passwd", "pw", "restore_mode", "manual")
	m3, _ := modtest.NewMsg(t, sequential(t, orig, "caller", "sip:bob@example.net", params))
	autoRestore(m3)
	if got := m3.Req.From().Address.String(); got != orig {
		t.Errorf("manual mode restored on its own: %s", got)
	}
	if rc := modtest.Call(t, Name, m3, "uac_restore_from"); rc != 1 || m3.Req.From().Address.String() != repl {
		t.Errorf("uac_restore_from: %d, From %s", rc, m3.Req.From().Address.String())
	}
}

// The manual flow through the script: loose_route() then uac_restore_from().
func TestScriptRestore(t *testing.T) {
	orig, repl := "sip:alice@example.com", "sip:anonymous@anonymous.invalid"
	msg := strings.ReplaceAll(sequential(t, orig, "caller", "sip:bob@example.net",
		";ftag=caller;vsf="+encode(orig, repl, "")), "\r\n", "\n")
	files := map[string][]byte{
		"script.cfg": []byte(`
loadmodule "rr.so"
loadmodule "tm.so"
loadmodule "sipmsgops.so"
loadmodule "uac.so"
modparam("uac", "restore_mode", "manual")
route {
	if (has_totag() && loose_route()) {
		uac_restore_from();
		xlog("L_INFO", "From now $fu\n");
		t_relay();
		exit;
	}
}
`),
		"in.sip": []byte(msg),
	}
	got, err := scripttest.Execute(files, ".", "local: udp:127.0.0.1:5060")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "log INFO From now "+repl) {
		t.Errorf("got:\n%s", got)
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
