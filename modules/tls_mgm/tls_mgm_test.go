package tlsmgm

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/internal/modtest"
	"github.com/sipedge/sipedge/internal/testcert"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

// params builds a modparam set as the loader does: every registered
// default, then the given name/value pairs (multi params accumulate).
func params(kv ...string) modules.Params {
	p := modules.Params{}
	for _, spec := range modules.Lookup(Name).Params {
		if !spec.Default.IsNull() {
			p[spec.Name] = []value.Value{spec.Default}
		}
	}
	set := map[string]bool{}
	for i := 0; i+1 < len(kv); i += 2 {
		if set[kv[i]] {
			p[kv[i]] = append(p[kv[i]], value.S(kv[i+1]))
		} else {
			p[kv[i]] = []value.Value{value.S(kv[i+1])}
		}
		set[kv[i]] = true
	}
	return p
}

type files struct {
	ca          string
	cert, key   string
	cert2, key2 string
}

func testFiles(t *testing.T) files {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "test CA")
	var f files
	f.ca = ca.WriteCA(t, dir, "ca.pem")
	f.cert, f.key = ca.Leaf(t, "proxy", "127.0.0.1", "proxy.test").Write(t, dir, "proxy")
	f.cert2, f.key2 = ca.Leaf(t, "biloxi", "biloxi.test").Write(t, dir, "biloxi")
	return f
}

func TestParseMethod(t *testing.T) {
	for _, c := range []struct {
		in       string
		min, max uint16
		bad      bool
	}{
		{"SSLv23", 0, 0, false},
		{"TLSany", 0, 0, false},
		{"TLSv1_2", tls.VersionTLS12, tls.VersionTLS12, false},
		{"tlsv1", tls.VersionTLS10, tls.VersionTLS10, false},
		{"TLSv1_2-TLSv1_3", tls.VersionTLS12, tls.VersionTLS13, false},
		{"TLSv1_2-", tls.VersionTLS12, 0, false},
		{"-TLSv1_2", tls.VersionTLS10, tls.VersionTLS12, false},
		{"-", tls.VersionTLS10, 0, false},
		{"TLSv1_3-TLSv1_2", 0, 0, true},
		{"SSLv3", 0, 0, true},
		{"DTLS", 0, 0, true},
	} {
		min, max, err := ParseMethod(c.in)
		if (err != nil) != c.bad || !c.bad && (min != c.min || max != c.max) {
			t.Errorf("ParseMethod(%q) = %x %x %v", c.in, min, max, err)
		}
	}
}

func TestParseCiphers(t *testing.T) {
	ids, err := parseCiphers("ECDHE-RSA-AES128-GCM-SHA256:TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384")
	if err != nil || len(ids) != 2 || ids[0] != tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 {
		t.Errorf("names: %v %v", ids, err)
	}
	if ids, err := parseCiphers("HIGH:!aNULL:!MD5"); err != nil || ids != nil {
		t.Errorf("keywords keep the defaults: %v %v", ids, err)
	}
	if _, err := parseCiphers("NULL"); err == nil {
		t.Error("NULL accepted")
	}
	if _, err := parseCiphers("bogus-cipher"); err == nil {
		t.Error("unknown cipher accepted")
	}
}

func TestBuildDefaults(t *testing.T) {
	f := testFiles(t)
	c, err := Build(params("certificate", f.cert, "private_key", f.key, "ca_list", f.ca,
		"verify_cert", "1", "require_cert", "0", "tls_method", "TLSv1_2-"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.HasServer() {
		t.Fatal("no server domain")
	}
	d := c.ServerDomain(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5061}, "")
	if d != c.DefServer {
		t.Fatalf("server domain %v", d)
	}
	sc := d.ServerConfig()
	if sc.ClientAuth != tls.VerifyClientCertIfGiven || sc.MinVersion != tls.VersionTLS12 || sc.ClientCAs == nil {
		t.Errorf("server config: auth %v min %x cas %v", sc.ClientAuth, sc.MinVersion, sc.ClientCAs != nil)
	}
	cd := c.ClientDomain(net.IPv4(10, 0, 0, 1), 5061, "")
	if cd != c.DefClient || cd.Certificate() == nil || cd.Roots() == nil {
		t.Fatalf("client domain %v", cd)
	}
	cc := cd.ClientConfig("10.0.0.1")
	if cc.InsecureSkipVerify || cc.ServerName != "10.0.0.1" || len(cc.Certificates) != 1 {
		t.Errorf("client config %+v", cc)
	}
	// OpenSIPS defaults: verify and require the peer's certificate
	c2, err := Build(params("certificate", f.cert, "private_key", f.key))
	if err != nil {
		t.Fatal(err)
	}
	if a := c2.DefServer.ServerConfig().ClientAuth; a != tls.RequireAndVerifyClientCert {
		t.Errorf("default client auth %v", a)
	}
}

func TestBuildErrors(t *testing.T) {
	f := testFiles(t)
	for _, c := range []struct {
		kv   []string
		want string
	}{
		{[]string{"certificate", "[nodom]" + f.cert}, "not defined"},
		{[]string{"certificate", f.cert}, "without private_key"},
		{[]string{"certificate", "/nonexistent.pem", "private_key", "/nonexistent.key"}, "no such file"},
		{[]string{"ca_list", f.key}, "no PEM certificate"},
		{[]string{"tls_method", "SSLv2"}, "not supported"},
		{[]string{"verify_cert", "yes"}, "not a number"},
		{[]string{"crl_dir", "/etc/crl"}, "revocation"},
		{[]string{"match_ip_address", "1.2.3.4"}, "[domain]"},
		{[]string{"server_domain", "a", "match_ip_address", "[a]not-an-ip"}, "not an IP"},
		{[]string{"server_domain", "a", "server_domain", "a"}, "twice"},
		{[]string{"ec_curve", "brainpool"}, "unsupported"},
	} {
		_, err := Build(params(c.kv...))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.kv, err, c.want)
		}
	}
	if _, err := configure(params("tls_library", "gnutls")); err == nil {
		t.Error("tls_library gnutls accepted")
	}
}

func TestDomainMatching(t *testing.T) {
	f := testFiles(t)
	c, err := Build(params(
		"server_domain", "atlanta",
		"server_domain", "biloxi",
		"server_domain", "other",
		"client_domain", "gw",
		"client_domain", "bilcli",
		"match_ip_address", "[atlanta]127.0.0.1:5061",
		"match_ip_address", "[biloxi]127.0.0.1:5061",
		"match_ip_address", "[other]127.0.0.2:5061",
		"match_sip_domain", "[biloxi]*.biloxi.test, biloxi.test",
		"match_sip_domain", "[atlanta]none",
		"certificate", "[atlanta]"+f.cert, "private_key", "[atlanta]"+f.key,
		"certificate", "[biloxi]"+f.cert2, "private_key", "[biloxi]"+f.key2,
		"certificate", "[other]"+f.cert, "private_key", "[other]"+f.key,
		"match_ip_address", "[gw]10.0.0.9:5061",
		"verify_cert", "[gw]0",
		"match_sip_domain", "[bilcli]biloxi.test",
		"ca_list", "[bilcli]"+f.ca,
	))
	if err != nil {
		t.Fatal(err)
	}
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5061}
	if d := c.ServerDomain(local, ""); d == nil || d.Name != "atlanta" {
		t.Errorf("no SNI: %v", d)
	}
	if d := c.ServerDomain(local, "sip.biloxi.test"); d == nil || d.Name != "biloxi" {
		t.Errorf("SNI wildcard: %v", d)
	}
	if d := c.ServerDomain(local, "BILOXI.test"); d == nil || d.Name != "biloxi" {
		t.Errorf("SNI exact: %v", d)
	}
	if d := c.ServerDomain(local, "unknown.test"); d != nil {
		t.Errorf("unknown SNI without a default domain: %v", d)
	}
	if d := c.ServerDomain(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 5061}, "x.test"); d == nil || d.Name != "other" {
		t.Errorf("by address: %v", d)
	}
	if d := c.ClientDomain(net.IPv4(10, 0, 0, 9), 5061, ""); d.Name != "gw" || !d.ClientConfig("10.0.0.9").InsecureSkipVerify {
		t.Errorf("client by address: %v", d)
	}
	if d := c.ClientDomain(net.IPv4(10, 0, 0, 9), 5062, ""); d != c.DefClient {
		t.Errorf("client, other port: %v", d)
	}
	if d := c.ClientDomain(net.IPv4(192, 0, 2, 1), 5061, "biloxi.test"); d.Name != "bilcli" || d.Roots() == nil {
		t.Errorf("client by name: %v", d)
	}
}

// a Host that hands out a TLS state, as the runtime does
type tlsHost struct {
	modtest.Host
	cs *tls.ConnectionState
}

func (h *tlsHost) TLSState(*msgctx.Msg) *tls.ConnectionState { return h.cs }

func TestPeerVariables(t *testing.T) {
	ca := testcert.NewCA(t, "test CA")
	leaf := ca.Leaf(t, "alice", "alice.test", "192.0.2.7")
	crt := leaf.TLS.Leaf
	if crt == nil {
		var err error
		if crt, err = parseLeaf(leaf.TLS); err != nil {
			t.Fatal(err)
		}
	}
	h := &tlsHost{}
	m, _ := modtest.NewMsg(t, modtest.InviteText)
	m.Host = h
	if got := modtest.Call(t, Name, m, "is_peer_verified"); got != -1 {
		t.Errorf("is_peer_verified without TLS = %d", got)
	}
	if v := pvarGet(t, m, "tls_version"); !v.IsNull() {
		t.Errorf("$tls_version without TLS = %v", v)
	}
	h.cs = &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256,
		PeerCertificates: []*x509Cert{crt}, VerifiedChains: [][]*x509Cert{{crt, ca.Cert}}}
	if got := modtest.Call(t, Name, m, "is_peer_verified"); got != 1 {
		t.Errorf("is_peer_verified = %d", got)
	}
	for name, want := range map[string]string{
		"tls_version":           "TLSv1.3",
		"tls_cipher_info":       "TLS_AES_128_GCM_SHA256",
		"tls_cipher_bits":       "128",
		"tls_peer_verified":     "1",
		"tls_peer_subject_cn":   "alice",
		"tls_peer_subject":      "/C=XX/O=sipedge tests/CN=alice",
		"tls_peer_issuer_cn":    "test CA",
		"tls_peer_san_hostname": "alice.test",
		"tls_peer_san_ip":       "192.0.2.7",
		"tls_peer_selfsigned":   "0",
		"tls_peer_expired":      "0",
	} {
		if got := pvarGet(t, m, name).AsString(); got != want {
			t.Errorf("$%s = %q, want %q", name, got, want)
		}
	}
}

type x509Cert = x509.Certificate

func parseLeaf(c tls.Certificate) (*x509.Certificate, error) {
	return x509.ParseCertificate(c.Certificate[0])
}

func pvarGet(t *testing.T, m *msgctx.Msg, name string) value.Value {
	t.Helper()
	s := pvar.Lookup(name)
	if s == nil {
		t.Fatalf("$%s not registered", name)
	}
	return s.Get(m, nil, pvar.Index{})
}

func TestMIList(t *testing.T) {
	f := testFiles(t)
	apply, err := configure(params("certificate", f.cert, "private_key", f.key,
		"client_domain", "gw", "match_ip_address", "[gw]10.0.0.9:5061", "verify_cert", "[gw]0"))
	if err != nil {
		t.Fatal(err)
	}
	apply()
	out, err := miList(nil)
	if err != nil {
		t.Fatal(err)
	}
	list := out.([]any)
	if len(list) != 3 { // default server and client (certificate set), gw
		t.Fatalf("%d domains: %v", len(list), list)
	}
	gw := list[2].(map[string]any)
	if gw["name"] != "gw" || gw["type"] != "client" || gw["verify_cert"] != false || gw["match_ip_address"] != "10.0.0.9:5061" {
		t.Errorf("gw: %v", gw)
	}
	if s, _ := list[0].(map[string]any)["subject"].(string); !strings.Contains(s, "CN=proxy") {
		t.Errorf("default server subject %q", s)
	}
}
