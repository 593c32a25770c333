// Package tlsmgm is OpenSIPS's tls_mgm module: the TLS domains (certificate,
// private key, trusted CAs, verification policy, protocol versions) used
// by the proxy's tls and wss sockets (server domains) and by the TLS
// connections it opens (client domains), is_peer_verified() and the
// $tls_* variables of the connection a request arrived on.
//
// Domains are defined with modparams, as in OpenSIPS 3.x: server_domain /
// client_domain name a domain, and every per-domain parameter takes a
// "[name]value" form; a value without "[name]" sets the default server and
// client domains, which are used when no named domain matches. The SIP
// runtime (runtime/sipstack) builds a generation's domains with Build and
// picks one per connection with ServerDomain and ClientDomain; this package
// owns no sockets.
package tlsmgm

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "tls_mgm"

// ConnHost is what the SIP runtime's msgctx.Host adds for this module: the
// TLS state of the connection the current request arrived on (nil when it
// did not come over TLS or WSS).
type ConnHost interface {
	TLSState(m *msgctx.Msg) *tls.ConnectionState
}

func stateOf(m *msgctx.Msg) *tls.ConnectionState {
	if h, ok := m.Host.(ConnHost); ok {
		return h.TLSState(m)
	}
	return nil
}

func init() {
	var params []modules.Param
	for _, name := range append([]string{"server_domain", "client_domain"}, domainParams...) {
		params = append(params, modules.Param{Name: name, Kind: modules.ParamStr, Multi: true})
	}
	params = append(params,
		modules.Param{Name: "tls_library", Kind: modules.ParamStr, Default: value.S("auto")},
		modules.Param{Name: "client_tls_domain_avp", Kind: modules.ParamStr},
		modules.Param{Name: "client_sip_domain_avp", Kind: modules.ParamStr},
		// 2.x place of the handshake/send timeouts (3.x has them in proto_tls)
		modules.Param{Name: "tls_handshake_timeout", Kind: modules.ParamInt, Default: value.I(30)},
		modules.Param{Name: "tls_send_timeout", Kind: modules.ParamInt, Default: value.I(30)},
	)
	var pvars []*pvar.Spec
	names := make([]string, 0, len(tlsVars))
	for name := range tlsVars {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		get := tlsVars[name]
		pvars = append(pvars, &pvar.Spec{Name: name, Get: func(m *msgctx.Msg, _ any, _ pvar.Index) value.Value {
			cs := stateOf(m)
			if cs == nil {
				return value.Null
			}
			return get(cs)
		}})
	}
	modules.Register(&modules.Info{
		Name:   Name,
		Params: params,
		Funcs: []*modules.Func{
			{Name: "is_peer_verified", Routes: check.Routes(ast.RequestRoute), Call: callIsPeerVerified},
		},
		PVars: pvars,
		MI: []modules.MICommand{
			{Name: "tls_list", Help: "Params: none ; the TLS domains of the running script", Run: miList},
		},
		Configure: configure,
	})
}

// configure checks the domains (and loads their files) so that a script
// with a missing certificate or a bad parameter is refused at load time.
func configure(p modules.Params) (func(), error) {
	switch lib := strings.ToLower(p.Str("tls_library")); lib {
	case "", "auto", "openssl", "wolfssl", "none":
	default:
		return nil, fmt.Errorf("tls_library %q: auto, openssl, wolfssl or none", lib)
	}
	c, err := Build(p)
	if err != nil {
		return nil, err
	}
	return func() { live.Store(c) }, nil
}

// live is the running generation's domains (for MI).
var live atomic.Pointer[Config]

func miList(map[string]any) (any, error) {
	c := live.Load()
	if c == nil {
		return []any{}, nil
	}
	out := []any{}
	for _, d := range c.all() {
		if d.Default && d.Cert == "" && d.CAList == "" && d.CADir == "" {
			continue // an unused default domain
		}
		e := map[string]any{
			"name":             d.Name,
			"type":             map[bool]string{true: "server", false: "client"}[d.Server],
			"default":          d.Default,
			"tls_method":       d.Method,
			"verify_cert":      d.VerifyCert,
			"require_cert":     d.RequireCert,
			"certificate":      d.Cert,
			"private_key":      d.Key,
			"ca_list":          d.CAList,
			"ca_dir":           d.CADir,
			"ciphers_list":     d.Ciphers,
			"match_ip_address": strings.Join(d.MatchAddrs, ","),
			"match_sip_domain": strings.Join(d.MatchDomains, ","),
		}
		if d.cert != nil && len(d.cert.Certificate) > 0 {
			if crt, err := x509.ParseCertificate(d.cert.Certificate[0]); err == nil {
				e["subject"] = oneLine(crt.Subject)
				e["not_after"] = crt.NotAfter.UTC().Format(certTime)
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func callIsPeerVerified(m *msgctx.Msg, _ *modules.Args) int {
	if cs := stateOf(m); cs != nil && len(cs.VerifiedChains) > 0 {
		return 1
	}
	return -1
}

// ---- variables ----

func peer(cs *tls.ConnectionState) *x509.Certificate {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	return cs.PeerCertificates[0]
}

func peerStr(f func(c *x509.Certificate) string) func(cs *tls.ConnectionState) value.Value {
	return func(cs *tls.ConnectionState) value.Value {
		c := peer(cs)
		if c == nil {
			return value.Null
		}
		return value.S(f(c))
	}
}

func flag(b bool) value.Value {
	if b {
		return value.SI("1", 1)
	}
	return value.SI("0", 0)
}

// VersionName is OpenSSL's name of a TLS version ("TLSv1.2").
func VersionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLSv1"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return tls.VersionName(v)
}

// cipherName is OpenSSL's name of a suite when it has one (TLS 1.3 suites
// have the same name in both).
func cipherName(id uint16) string {
	for name, sid := range opensslSuites {
		if sid == id {
			return name
		}
	}
	return tls.CipherSuiteName(id)
}

func cipherBits(id uint16) int {
	n := tls.CipherSuiteName(id)
	switch {
	case strings.Contains(n, "AES_256"), strings.Contains(n, "CHACHA20"):
		return 256
	case strings.Contains(n, "AES_128"):
		return 128
	case strings.Contains(n, "3DES"):
		return 112
	}
	return 0
}

// oneLine is OpenSSL's one-line form of a name: /C=AT/ST=Vienna/O=x/CN=y.
func oneLine(n pkix.Name) string {
	var b strings.Builder
	add := func(key string, vals []string) {
		for _, v := range vals {
			b.WriteString("/" + key + "=" + v)
		}
	}
	add("C", n.Country)
	add("ST", n.Province)
	add("L", n.Locality)
	add("O", n.Organization)
	add("OU", n.OrganizationalUnit)
	if n.CommonName != "" {
		add("CN", []string{n.CommonName})
	}
	return b.String()
}

func first(vals []string) string {
	if len(vals) == 0 {
		return ""
	}
	return vals[0]
}

func nameVars(prefix string, name func(c *x509.Certificate) pkix.Name) map[string]func(*tls.ConnectionState) value.Value {
	return map[string]func(*tls.ConnectionState) value.Value{
		prefix:                   peerStr(func(c *x509.Certificate) string { return oneLine(name(c)) }),
		prefix + "_cn":           peerStr(func(c *x509.Certificate) string { return name(c).CommonName }),
		prefix + "_locality":     peerStr(func(c *x509.Certificate) string { return first(name(c).Locality) }),
		prefix + "_country":      peerStr(func(c *x509.Certificate) string { return first(name(c).Country) }),
		prefix + "_state":        peerStr(func(c *x509.Certificate) string { return first(name(c).Province) }),
		prefix + "_organization": peerStr(func(c *x509.Certificate) string { return first(name(c).Organization) }),
		prefix + "_unit":         peerStr(func(c *x509.Certificate) string { return first(name(c).OrganizationalUnit) }),
	}
}

// OpenSSL's certificate time format
const certTime = "Jan _2 15:04:05 2006 GMT"

// tlsVars are the $tls_* variables of the peer's side (the proxy's own
// certificate, $tls_my_*, is not exposed).
var tlsVars = func() map[string]func(*tls.ConnectionState) value.Value {
	v := map[string]func(*tls.ConnectionState) value.Value{
		"tls_version": func(cs *tls.ConnectionState) value.Value { return value.S(VersionName(cs.Version)) },
		"tls_description": func(cs *tls.ConnectionState) value.Value {
			return value.S(VersionName(cs.Version) + " " + cipherName(cs.CipherSuite))
		},
		"tls_cipher_info": func(cs *tls.ConnectionState) value.Value { return value.S(cipherName(cs.CipherSuite)) },
		"tls_cipher_bits": func(cs *tls.ConnectionState) value.Value {
			n := cipherBits(cs.CipherSuite)
			return value.SI(strconv.Itoa(n), n)
		},
		"tls_peer_version": func(cs *tls.ConnectionState) value.Value {
			c := peer(cs)
			if c == nil {
				return value.Null
			}
			return value.SI(strconv.Itoa(c.Version), c.Version)
		},
		"tls_peer_serial":       peerStr(func(c *x509.Certificate) string { return c.SerialNumber.String() }),
		"tls_peer_san_email":    peerStr(func(c *x509.Certificate) string { return first(c.EmailAddresses) }),
		"tls_peer_san_hostname": peerStr(func(c *x509.Certificate) string { return first(c.DNSNames) }),
		"tls_peer_san_uri": peerStr(func(c *x509.Certificate) string {
			if len(c.URIs) == 0 {
				return ""
			}
			return c.URIs[0].String()
		}),
		"tls_peer_san_ip": peerStr(func(c *x509.Certificate) string {
			if len(c.IPAddresses) == 0 {
				return ""
			}
			return c.IPAddresses[0].String()
		}),
		"tls_peer_verified": func(cs *tls.ConnectionState) value.Value { return flag(len(cs.VerifiedChains) > 0) },
		"tls_peer_revoked":  func(cs *tls.ConnectionState) value.Value { return flag(false) },
		"tls_peer_expired": func(cs *tls.ConnectionState) value.Value {
			c := peer(cs)
			return flag(c != nil && time.Now().After(c.NotAfter))
		},
		"tls_peer_selfsigned": func(cs *tls.ConnectionState) value.Value {
			c := peer(cs)
			return flag(c != nil && c.CheckSignatureFrom(c) == nil)
		},
		"tls_peer_notBefore": peerStr(func(c *x509.Certificate) string { return c.NotBefore.UTC().Format(certTime) }),
		"tls_peer_notAfter":  peerStr(func(c *x509.Certificate) string { return c.NotAfter.UTC().Format(certTime) }),
	}
	for k, f := range nameVars("tls_peer_subject", func(c *x509.Certificate) pkix.Name { return c.Subject }) {
		v[k] = f
	}
	for k, f := range nameVars("tls_peer_issuer", func(c *x509.Certificate) pkix.Name { return c.Issuer }) {
		v[k] = f
	}
	return v
}()
