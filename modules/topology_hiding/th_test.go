package topologyhiding

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/syntax"
	_ "github.com/sipedge/sipedge/modules/core"
	"github.com/sipedge/sipedge/modules/dialog"
	_ "github.com/sipedge/sipedge/modules/sipmsgops"
	_ "github.com/sipedge/sipedge/modules/sl"
	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/engine"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/scripttest"
)

const script = `
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "dialog.so"
loadmodule "topology_hiding.so"
modparam("topology_hiding", "th_passed_contact_uri_params", "keepme")

route {
	if (has_totag()) {
		if (topology_hiding_match()) {
			xlog("matched $rm to $ru du=$du cid=$ci callee_cid=$TH_callee_callid\n");
			t_relay();
			exit;
		}
		sl_send_reply(404, "Not here");
		exit;
	}
	topology_hiding("$var(flags)");
	t_relay();
}
`

type sim struct {
	t   *testing.T
	s   *engine.Script
	rec *scripttest.Recorder
}

func newSim(t *testing.T, flags string) *sim {
	dialog.ForgetAll()
	t.Cleanup(dialog.ForgetAll)
	src := strings.Replace(script, `"$var(flags)"`, `"`+flags+`"`, 1)
	s, err := engine.Load("s.cfg", syntax.Options{ReadFile: func(string) ([]byte, error) { return []byte(src), nil }})
	if err != nil {
		t.Fatal(err)
	}
	s.Activate()
	return &sim{t: t, s: s, rec: &scripttest.Recorder{}}
}

func parse(t *testing.T, text string) sip.Message {
	t.Helper()
	msg, err := scripttest.ParseMessage([]byte(text))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, text)
	}
	return msg
}

// request runs a request as the runtime does and returns the message and
// what the runtime would send on (with our Via on top), after the hooks.
func (s *sim) request(text string, src msgctx.Addr) (*msgctx.Msg, *sip.Request) {
	s.t.Helper()
	req := parse(s.t, text).(*sip.Request)
	m := &msgctx.Msg{}
	m.Reset(s.s.Image.NumVars(), s.s.Image.NumAVPs())
	m.Kind, m.Host, m.Req = ast.RequestRoute, s.rec, req
	m.Src = src
	m.Local = msgctx.Addr{Proto: "udp", IP: "192.0.2.1", Port: 5060}
	tm.RunRequestHooks(m)
	r, _ := s.s.Prog.Lookup(ast.RequestRoute, "")
	s.s.Image.Run(m, r)
	tm.RunRouteDoneHooks(m, true)
	out := req.Clone()
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "198.51.100.1", Port: 5060, Params: sip.NewParams()}
	via.Params.Add("branch", "z9hG4bKproxy")
	out.PrependHeader(via)
	tm.RunRequestOutHooks(m.Mod, out)
	return m, out
}

// reply relays a reply to out back upstream as the runtime does.
func reply(m *msgctx.Msg, out *sip.Request, code int, toTag string, extra ...sip.Header) *sip.Response {
	res := sip.NewResponseFromRequest(out, code, "OK", nil)
	if toTag != "" && res.To() != nil {
		// sipgo makes up a tag: use the test's
		res.To().Params.Remove("tag")
		res.To().Params.Add("tag", toTag)
	}
	for _, h := range extra {
		res.AppendHeader(h)
	}
	mod := tm.CopyMod(m.Mod)
	res.RemoveHeader("Via")
	tm.RunResponseRelayHooks(mod, m.Req, res)
	tm.RunResponseOutHooks(mod, m.Req, code, res)
	return res
}

const invite = "INVITE sip:bob@192.0.2.1 SIP/2.0\n" +
	"Via: SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKcaller\n" +
	"Via: SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKfirst\n" +
	"Record-Route: <sip:10.1.1.1;lr>\n" +
	"From: <sip:alice@a.example>;tag=ftag\n" +
	"To: <sip:bob@b.example>\n" +
	"Call-ID: secret-call@10.9.9.9\n" +
	"CSeq: 1 INVITE\n" +
	"Contact: <sip:alice@10.9.9.9:5070;keepme=1;dropme=2>\n" +
	"Max-Forwards: 70\n" +
	"Content-Length: 0\n\n"

func header(msg sip.Message, name string) string {
	var vals []string
	for _, h := range msg.GetHeaders(name) {
		vals = append(vals, h.Value())
	}
	return strings.Join(vals, " | ")
}

func TestHideBothSides(t *testing.T) {
	s := newSim(t, "UC")
	caller := msgctx.Addr{Proto: "udp", IP: "10.1.1.1", Port: 5060}
	m, out := s.request(invite, caller)
	d := dialog.Current(m)
	if d == nil {
		t.Fatal("no dialog")
	}
	did := d.DID()
	// towards the callee: our Via only, no Record-Route, our Contact with
	// the user (U) and the passed param, an encoded Call-ID (C)
	if got := header(out, "Via"); got != "SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKproxy" {
		t.Errorf("Via: %s", got)
	}
	if got := header(out, "Record-Route"); got != "" {
		t.Errorf("Record-Route: %s", got)
	}
	if got := header(out, "Contact"); got != "<sip:alice@198.51.100.1:5060;did="+did+";keepme=1>" {
		t.Errorf("Contact: %s", got)
	}
	calleeCID := out.CallID().Value()
	if !strings.HasPrefix(calleeCID, "DLGCH_") || strings.Contains(calleeCID, "10.9.9.9") {
		t.Errorf("Call-ID towards the callee: %s", calleeCID)
	}
	if m.Req.CallID().Value() != "secret-call@10.9.9.9" {
		t.Errorf("the script's Call-ID changed: %s", m.Req.CallID().Value())
	}

	// the callee answers through its own proxy
	res := reply(m, out, 200, "ttag",
		sip.NewHeader("Record-Route", "<sip:10.2.2.2;lr>"),
		&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: "10.8.8.8", Port: 5080}})
	// towards the caller: its own Vias back, no Record-Route, our Contact,
	// the caller's Call-ID
	if got := header(res, "Via"); got != "SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKcaller | SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKfirst" {
		t.Errorf("reply Via: %s", got)
	}
	if got := header(res, "Record-Route"); got != "" {
		t.Errorf("reply Record-Route: %s", got)
	}
	if got := header(res, "Contact"); got != "<sip:bob@192.0.2.1:5060;did="+did+">" {
		t.Errorf("reply Contact: %s", got)
	}
	if got := res.CallID().Value(); got != "secret-call@10.9.9.9" {
		t.Errorf("reply Call-ID: %s", got)
	}

	// the caller's BYE, sent to our Contact, goes to the callee's Contact
	// through the callee's route set
	bye := "BYE sip:bob@192.0.2.1:5060;did=" + did + " SIP/2.0\n" +
		"Via: SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKbye\n" +
		"From: <sip:alice@a.example>;tag=ftag\n" +
		"To: <sip:bob@b.example>;tag=ttag\n" +
		"Call-ID: secret-call@10.9.9.9\n" +
		"CSeq: 2 BYE\n" +
		"Max-Forwards: 70\n" +
		"Content-Length: 0\n\n"
	n := len(s.rec.Lines)
	bm, bout := s.request(bye, caller)
	if got := strings.Join(s.rec.Lines[n:], "\n"); !strings.Contains(got, "matched BYE to sip:bob@10.8.8.8:5080 du=sip:10.2.2.2;lr cid=secret-call@10.9.9.9 callee_cid=DLGCH_") {
		t.Errorf("script saw:\n%s", got)
	}
	if got := header(bout, "Route"); got != "<sip:10.2.2.2;lr>" {
		t.Errorf("BYE Route: %s", got)
	}
	if got := bout.CallID().Value(); got != calleeCID {
		t.Errorf("BYE Call-ID %s, want %s", got, calleeCID)
	}
	if got := header(bout, "Via"); got != "SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKproxy" {
		t.Errorf("BYE Via: %s", got)
	}
	_ = bm
}

func TestCalleeRequest(t *testing.T) {
	s := newSim(t, "C")
	caller := msgctx.Addr{Proto: "udp", IP: "10.1.1.1", Port: 5060}
	m, out := s.request(invite, caller)
	did := dialog.Current(m).DID()
	calleeCID := out.CallID().Value()
	if got := header(out, "Contact"); got != "<sip:198.51.100.1:5060;did="+did+";keepme=1>" {
		t.Errorf("Contact without U: %s", got)
	}
	reply(m, out, 200, "ttag", &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: "10.8.8.8", Port: 5080}})

	// a re-INVITE from the callee carries the encoded Call-ID; it goes to
	// the caller's Contact through the caller's route set, with the
	// caller's Call-ID, and our Contact
	reinv := "INVITE sip:192.0.2.1:5060;did=" + did + " SIP/2.0\n" +
		"Via: SIP/2.0/UDP 10.8.8.8:5080;branch=z9hG4bKre\n" +
		"From: <sip:bob@b.example>;tag=ttag\n" +
		"To: <sip:alice@a.example>;tag=ftag\n" +
		"Call-ID: " + calleeCID + "\n" +
		"CSeq: 7 INVITE\n" +
		"Contact: <sip:bob@10.8.8.8:5080>\n" +
		"Max-Forwards: 70\n" +
		"Content-Length: 0\n\n"
	rm, rout := s.request(reinv, msgctx.Addr{Proto: "udp", IP: "10.8.8.8", Port: 5080})
	if got := rout.Recipient.String(); got != "sip:alice@10.9.9.9:5070;keepme=1;dropme=2" {
		t.Errorf("re-INVITE R-URI %s", got)
	}
	if rm.DstURI != "sip:10.1.1.1;lr" || header(rout, "Route") != "<sip:10.1.1.1;lr>" {
		t.Errorf("re-INVITE $du %q Route %q", rm.DstURI, header(rout, "Route"))
	}
	if got := rout.CallID().Value(); got != "secret-call@10.9.9.9" {
		t.Errorf("re-INVITE Call-ID towards the caller: %s", got)
	}
	if got := header(rout, "Contact"); got != "<sip:198.51.100.1:5060;did="+did+">" {
		t.Errorf("re-INVITE Contact: %s", got)
	}
	// its reply goes back to the callee with the encoded Call-ID and our
	// Contact on the callee side
	res := reply(rm, rout, 200, "", &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "10.9.9.9", Port: 5070}})
	if got := res.CallID().Value(); got != calleeCID {
		t.Errorf("reply Call-ID towards the callee: %s", got)
	}
	if got := header(res, "Via"); got != "SIP/2.0/UDP 10.8.8.8:5080;branch=z9hG4bKre" {
		t.Errorf("reply Via: %s", got)
	}

	// an in-dialog request of an unknown dialog is not matched
	n := len(s.rec.Lines)
	s.request(strings.Replace(strings.Replace(reinv, calleeCID, "other", 1), "tag=ttag", "tag=zz", 1), msgctx.Addr{IP: "10.8.8.8", Port: 5080})
	if got := strings.Join(s.rec.Lines[n:], "\n"); !strings.Contains(got, "reply 404 Not here") {
		t.Errorf("unknown dialog:\n%s", got)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, src := range []string{
		`loadmodule "topology_hiding.so"
route { topology_hiding("X"); }`,
		`loadmodule "topology_hiding.so"
route { topology_hiding("U", "x"); }`,
		`loadmodule "topology_hiding.so"
failure_route[f] { topology_hiding(); }
route { t_on_failure("f"); }`,
	} {
		if _, err := engine.Load("s.cfg", syntax.Options{ReadFile: func(string) ([]byte, error) { return []byte(src), nil }}); err == nil {
			t.Errorf("loaded:\n%s", src)
		}
	}
	if got, ok := decodeCallID(liveCfg(), encodeCallID(liveCfg(), "abc@host")); !ok || got != "abc@host" {
		t.Errorf("round trip %q %v", got, ok)
	}
}
