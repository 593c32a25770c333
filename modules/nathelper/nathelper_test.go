package nathelper

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/internal/modtest"
	"github.com/sipedge/sipedge/modules"
	_ "github.com/sipedge/sipedge/modules/core"
	_ "github.com/sipedge/sipedge/modules/sipmsgops"
	_ "github.com/sipedge/sipedge/modules/sl"
	"github.com/sipedge/sipedge/modules/usrloc"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/scripttest"
	"github.com/sipedge/sipedge/runtime/value"
)

const natInvite = "INVITE sip:bob@example.com SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK776asdhds\r\n" +
	"Max-Forwards: 70\r\n" +
	"To: <sip:bob@example.com>\r\n" +
	"From: <sip:alice@example.com>;tag=1928301774\r\n" +
	"Call-ID: nat-1\r\n" +
	"CSeq: 1 INVITE\r\n" +
	"Contact: \"Alice\" <sip:alice@192.168.1.20:5060;transport=udp>;expires=60\r\n" +
	"Content-Type: application/sdp\r\n" +
	"Content-Length: 0\r\n" +
	"\r\n"

const sdpBody = "v=0\r\n" +
	"o=alice 2890844526 2890844526 IN IP4 192.168.1.20\r\n" +
	"s=-\r\n" +
	"c=IN IP4 192.168.1.20\r\n" +
	"t=0 0\r\n" +
	"m=audio 49170 RTP/AVP 0\r\n" +
	"c=IN IP4 0.0.0.0\r\n"

func natMsg(t *testing.T, body string) (*msgctx.Msg, *modtest.Host) {
	t.Helper()
	m, h := modtest.NewMsg(t, natInvite)
	if body != "" {
		m.Req.SetBody([]byte(body))
	}
	m.Src = msgctx.Addr{IP: "203.0.113.5", Port: 40123, Proto: "udp"}
	return m, h
}

func TestParseTests(t *testing.T) {
	for in, want := range map[string]Test{
		"private-contact":                  PrivateContact,
		"private-contact, diff-ip-src-via": PrivateContact | DiffIPSrcVia,
		"PRIVATE-SDP,carrier-grade-nat":    PrivateSDP | CarrierGradeNAT,
		"19":                               PrivateContact | DiffIPSrcVia | DiffPortSrcVia,
		"0x17":                             PrivateContact | DiffIPSrcVia | PrivateVia | DiffPortSrcVia,
		"diff-port-src-contact,diff-ip-src-contact": DiffPortSrcContact | DiffIPSrcContact,
	} {
		got, _, err := ParseTests(in)
		if err != nil || got != want {
			t.Errorf("ParseTests(%q) = %b, %v; want %b", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "256", "private", "private-contact,nope"} {
		if _, _, err := ParseTests(bad); err == nil {
			t.Errorf("ParseTests(%q) accepted", bad)
		}
	}
	f := modtest.Fn(t, Name, "nat_uac_test")
	if _, err := modtest.Fixup(t, f, modtest.CS("privat-contact")); err == nil {
		t.Error("fixup accepted a misspelled check")
	}
}

func TestNatUACTest(t *testing.T) {
	m, _ := natMsg(t, sdpBody)
	for flags, want := range map[string]int{
		"private-contact": 1, "diff-ip-src-via": 1, "private-via": 1, "private-sdp": 1,
		"diff-port-src-via": 1, "diff-ip-src-contact": 1, "diff-port-src-contact": 1,
		"1": 1, "23": 1,
	} {
		if rc := modtest.Call(t, Name, m, "nat_uac_test", flags); rc != want {
			t.Errorf("nat_uac_test(%q) = %d, want %d", flags, rc, want)
		}
	}
	// a client with a public address sending from it: no test fires
	pub := strings.NewReplacer("192.168.1.20:5060", "198.51.100.9:5070", "192.168.1.20", "198.51.100.9").Replace(natInvite)
	m2, _ := modtest.NewMsg(t, pub)
	m2.Req.SetBody([]byte(strings.ReplaceAll(sdpBody, "192.168.1.20", "198.51.100.9")))
	m2.Src = msgctx.Addr{IP: "198.51.100.9", Port: 5070, Proto: "udp"}
	if rc := modtest.Call(t, Name, m2, "nat_uac_test", "private-contact,diff-ip-src-via,private-via,private-sdp,diff-port-src-via,diff-ip-src-contact,diff-port-src-contact"); rc != -1 {
		t.Errorf("public client: nat_uac_test = %d", rc)
	}
	// RFC 6333 only with carrier-grade-nat
	cgn := strings.ReplaceAll(natInvite, "192.168.1.20", "192.0.0.2")
	m3, _ := modtest.NewMsg(t, cgn)
	m3.Src = msgctx.Addr{IP: "192.0.0.2", Port: 5060}
	if rc := modtest.Call(t, Name, m3, "nat_uac_test", "private-contact"); rc != -1 {
		t.Errorf("192.0.0.2 private without carrier-grade-nat")
	}
	if rc := modtest.Call(t, Name, m3, "nat_uac_test", "private-contact,carrier-grade-nat"); rc != 1 {
		t.Errorf("192.0.0.2 not private with carrier-grade-nat")
	}
	if !IsPrivate("100.64.1.1", false) || IsPrivate("100.128.0.1", false) || IsPrivate("8.8.8.8", false) || IsPrivate("fd00::1", false) {
		t.Error("IsPrivate ranges")
	}
}

func TestFixNatedContact(t *testing.T) {
	m, _ := natMsg(t, "")
	if rc := modtest.Call(t, Name, m, "fix_nated_contact", ";ata=cisco"); rc != 1 {
		t.Fatalf("fix_nated_contact = %d", rc)
	}
	got := m.Req.Contact().Value()
	want := `"Alice" <sip:alice@203.0.113.5:40123;transport=udp;ata=cisco>;expires=60`
	if got != want {
		t.Errorf("Contact = %s\n want %s", got, want)
	}
	m6, _ := natMsg(t, "")
	m6.Src = msgctx.Addr{IP: "2001:db8::7", Port: 5062}
	modtest.Call(t, Name, m6, "fix_nated_contact")
	if got := m6.Req.Contact().Address.String(); !strings.Contains(got, "@[2001:db8::7]:5062") {
		t.Errorf("IPv6 Contact = %s", got)
	}
	noContact, _ := modtest.NewMsg(t, strings.Replace(natInvite, "Contact: \"Alice\" <sip:alice@192.168.1.20:5060;transport=udp>;expires=60\r\n", "", 1))
	noContact.Src = m.Src
	if rc := modtest.Call(t, Name, noContact, "fix_nated_contact"); rc != -1 {
		t.Errorf("no Contact: %d", rc)
	}
}

func TestReplyContact(t *testing.T) {
	msg, err := sip.ParseMessage([]byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n" +
		"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: r\r\nCSeq: 1 INVITE\r\n" +
		"Contact: <sip:b@10.1.2.3:5060>\r\nContent-Length: 0\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := &msgctx.Msg{Resp: msg.(*sip.Response), Host: &modtest.Host{}, Src: msgctx.Addr{IP: "198.51.100.1", Port: 6000}}
	if rc := modtest.Call(t, Name, m, "nat_uac_test", "private-contact"); rc != 1 {
		t.Errorf("reply nat_uac_test = %d", rc)
	}
	if rc := modtest.Call(t, Name, m, "fix_nated_contact"); rc != 1 || m.Resp.Contact().Address.String() != "sip:b@198.51.100.1:6000" {
		t.Errorf("reply Contact = %v (%d)", m.Resp.Contact(), rc)
	}
}

func TestAddRcvParam(t *testing.T) {
	m, _ := natMsg(t, "")
	m.Src.Proto = "tcp"
	if rc := modtest.Call(t, Name, m, "add_rcv_param"); rc != 1 {
		t.Fatal(rc)
	}
	if got := m.Req.Contact().Value(); !strings.HasSuffix(got, `;expires=60;received="sip:203.0.113.5:40123;transport=tcp"`) {
		t.Errorf("header param: %s", got)
	}
	m2, _ := natMsg(t, "")
	if rc := modtest.Call(t, Name, m2, "add_rcv_param", 1); rc != 1 {
		t.Fatal(rc)
	}
	if got := m2.Req.Contact().Address.String(); !strings.HasSuffix(got, ";received=sip:203.0.113.5:40123") {
		t.Errorf("URI param: %s", got)
	}
	if got := uriParamEscape("sip:1.2.3.4:5;transport=tcp"); got != "sip:1.2.3.4:5%3Btransport%3Dtcp" {
		t.Errorf("escape: %s", got)
	}
}

func TestFixNatedRegister(t *testing.T) {
	m, _ := natMsg(t, "")
	if Received(m) != "" {
		t.Fatal("received before the call")
	}
	if rc := modtest.Call(t, Name, m, "fix_nated_register"); rc != 1 {
		t.Fatal(rc)
	}
	if got := Received(m); got != "sip:203.0.113.5:40123" {
		t.Errorf("Received = %q", got)
	}
}

func TestFixNatedSDP(t *testing.T) {
	apply(t, modules.Params{"nortpproxy_str": {value.S(DefaultNoRTPProxy)}})
	m, _ := natMsg(t, sdpBody)
	if rc := modtest.Call(t, Name, m, "fix_nated_sdp", "rewrite-media-ip,rewrite-origin-ip,add-no-rtpproxy,add-dir-active"); rc != 1 {
		t.Fatal(rc)
	}
	want := "v=0\r\n" +
		"o=alice 2890844526 2890844526 IN IP4 203.0.113.5\r\n" +
		"a=oldoip:192.168.1.20\r\n" +
		"s=-\r\n" +
		"c=IN IP4 203.0.113.5\r\n" +
		"a=oldcip:192.168.1.20\r\n" +
		"t=0 0\r\n" +
		"m=audio 49170 RTP/AVP 0\r\n" +
		"c=IN IP4 0.0.0.0\r\n" +
		"a=direction:active\r\n" +
		"a=nortpproxy:yes\r\n"
	if got := string(m.Req.Body()); got != want {
		t.Errorf("body:\n%s\nwant:\n%s", got, want)
	}
	if cl := m.Req.ContentLength(); cl == nil || int(*cl) != len(want) {
		t.Errorf("Content-Length %v, body %d", cl, len(want))
	}
	// legacy number, given IP (IPv6), null IPs forced, oldip_skip, extra fields
	apply(t, modules.Params{"nortpproxy_str": {value.S(DefaultNoRTPProxy)}, "oldip_skip": {value.S("oc")}})
	m2, _ := natMsg(t, sdpBody)
	if rc := modtest.Call(t, Name, m2, "fix_nated_sdp", "18", "2001:db8::1", `\r\na=x-attr1`); rc != 1 {
		t.Fatal(rc)
	}
	got := string(m2.Req.Body())
	if strings.Count(got, "c=IN IP6 2001:db8::1") != 2 || strings.Contains(got, "oldcip") || !strings.HasSuffix(got, "a=x-attr1\r\n") {
		t.Errorf("body:\n%s", got)
	}
	noSDP, _ := natMsg(t, "")
	if rc := modtest.Call(t, Name, noSDP, "fix_nated_sdp", "rewrite-media-ip"); rc != -1 {
		t.Errorf("no body: %d", rc)
	}
	f := modtest.Fn(t, Name, "fix_nated_sdp")
	if _, err := modtest.Fixup(t, f, modtest.CS("rewrite-media"), modtest.CS("")); err == nil {
		t.Error("fixup accepted a bad flag")
	}
	if _, err := modtest.Fixup(t, f, modtest.CS("3"), modtest.CS("not-an-ip")); err == nil {
		t.Error("fixup accepted a bad IP")
	}
}

func apply(t *testing.T, p modules.Params) {
	t.Helper()
	if p["sipping_method"] == nil {
		p["sipping_method"] = []value.Value{value.S("OPTIONS")}
	}
	if p["natping_partitions"] == nil {
		p["natping_partitions"] = []value.Value{value.I(1)}
	}
	fn, err := configure(p)
	if err != nil {
		t.Fatal(err)
	}
	fn()
}

func TestPingTargets(t *testing.T) {
	d := usrloc.GetDomain("nh_test_location")
	add := func(aor string, cs ...usrloc.Contact) {
		if _, err := d.Update(aor, true, func([]usrloc.Contact) ([]usrloc.Contact, error) { return cs, nil }); err != nil {
			t.Fatal(err)
		}
	}
	add("alice", usrloc.Contact{URI: "sip:alice@192.168.1.20:5060", Received: "sip:203.0.113.5:40123", Socket: "udp:127.0.0.1:5060", Q: -1})
	add("bob", usrloc.Contact{URI: "sip:bob@198.51.100.9", Socket: "udp:127.0.0.1:5060", Q: -1})
	add("carol", usrloc.Contact{URI: "sip:carol@10.0.0.9;transport=tcp", Received: "sip:203.0.113.6:1234;transport=tcp", Socket: "tcp:127.0.0.1:5060", Q: -1})
	add("dave", usrloc.Contact{URI: "sip:dave@10.0.0.10", Received: "sip:203.0.113.7:5060", Path: "<sip:edge1.example.net;lr>,<sip:edge2;lr>", Q: -1})
	t.Cleanup(func() {
		for _, a := range []string{"alice", "bob", "carol", "dave"} {
			d.RemoveAOR(a)
		}
	})

	var sent []string
	old := send
	send = func(req *sip.Request, dst string) error {
		if req.Method != sip.OPTIONS || req.From().Address.String() != "sip:pinger@example.org" {
			return errors.New("bad ping " + req.String())
		}
		routes := ""
		for _, h := range req.GetHeaders("Route") {
			routes += " " + h.Value()
		}
		sent = append(sent, req.Recipient.String()+" -> "+dst+routes)
		return nil
	}
	t.Cleanup(func() { send = old })

	apply(t, modules.Params{"natping_interval": {value.I(10)}, "ping_nated_only": {value.I(1)},
		"sipping_from": {value.S("sip:pinger@example.org")}})
	pingerOnce.Do(func() {}) // no background timer in the test
	if n := PingOnce(); n != 2 {
		t.Errorf("nated only, udp only: %d pings: %v", n, sent)
	}
	want := map[string]bool{
		"sip:alice@192.168.1.20:5060 -> sip:203.0.113.5:40123":             true,
		"sip:dave@10.0.0.10 ->  <sip:edge1.example.net;lr> <sip:edge2;lr>": true,
	}
	for _, s := range sent {
		if !want[s] {
			t.Errorf("unexpected ping %q", s)
		}
	}
	sent = nil
	apply(t, modules.Params{"natping_interval": {value.I(10)}, "natping_tcp": {value.I(1)},
		"sipping_from": {value.S("sip:pinger@example.org")}})
	if n := PingOnce(); n != 4 {
		t.Errorf("all contacts: %d pings: %v", n, sent)
	}
	if _, err := configure(modules.Params{"sipping_from": {value.S("not a uri")}, "sipping_method": {value.S("OPTIONS")}, "natping_partitions": {value.I(1)}}); err == nil {
		t.Error("bad sipping_from accepted")
	}
}

func TestEnablePingMI(t *testing.T) {
	defer pingDisabled.Store(false)
	if out, _ := miEnablePing(map[string]any{}); out.(map[string]any)["Status"] != 1 {
		t.Errorf("status %v", out)
	}
	if _, err := miEnablePing(map[string]any{"status": 0}); err != nil {
		t.Fatal(err)
	}
	if out, _ := miEnablePing(map[string]any{}); out.(map[string]any)["Status"] != 0 {
		t.Errorf("status %v after disabling", out)
	}
	if _, err := miEnablePing(map[string]any{"status": "x"}); err == nil {
		t.Error("bad status accepted")
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
