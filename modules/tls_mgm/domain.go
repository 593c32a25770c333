package tlsmgm

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sipedge/sipedge/modules"
)

// Domain is one TLS domain: the certificate and policy used on a
// connection. Server domains apply to connections accepted on tls/wss
// sockets, client domains to connections the proxy opens.
type Domain struct {
	Name    string // "" for the default domains
	Server  bool
	Default bool // the implicit domain the unprefixed modparams set

	Cert, Key     string
	CAList, CADir string
	Method        string // tls_method as given
	MinVersion    uint16 // 0: Go's default minimum (TLS 1.2)
	MaxVersion    uint16 // 0: the highest Go supports
	VerifyCert    bool
	RequireCert   bool
	Ciphers       string
	Curve         string
	MatchAddrs    []string // "*" or "ip[:port]"
	MatchDomains  []string // "*", "none" or FQDNs with shell wildcards

	cert    *tls.Certificate
	pool    *x509.CertPool // nil: the system roots
	suites  []uint16
	curves  []tls.CurveID
	srvConf *tls.Config // server domains: the handshake config
}

// Certificate is the domain's own certificate (nil: none).
func (d *Domain) Certificate() *tls.Certificate { return d.cert }

// Roots is the CA pool peers are verified against (nil: the system roots).
func (d *Domain) Roots() *x509.CertPool { return d.pool }

// ServerConfig is the handshake configuration of a server domain.
func (d *Domain) ServerConfig() *tls.Config { return d.srvConf }

func (d *Domain) String() string {
	kind := "client"
	if d.Server {
		kind = "server"
	}
	if d.Default {
		return "default " + kind + " domain"
	}
	return kind + " domain [" + d.Name + "]"
}

// Config is a script generation's TLS domains.
type Config struct {
	Servers []*Domain // named server domains, in definition order
	Clients []*Domain // named client domains
	// DefServer and DefClient take the modparams given without [domain].
	DefServer, DefClient *Domain
	// SetParams is true when the script set any domain parameter.
	SetParams bool
}

// per-domain string parameters ("[dom]value" or "value")
var domainParams = []string{
	"tls_method", "certificate", "private_key", "ca_list", "ca_dir",
	"crl_dir", "crl_check_all", "ciphers_list", "dh_params", "ec_curve",
	"verify_cert", "require_cert", "match_ip_address", "match_sip_domain",
}

// splitDomain reads "[dom]value" (dom alphanumeric, as OpenSIPS's parser
// wants) or "value".
func splitDomain(s string) (dom, val string, ok bool) {
	t := strings.TrimSpace(s)
	if !strings.HasPrefix(t, "[") {
		return "", t, false
	}
	end := strings.IndexByte(t, ']')
	if end < 0 {
		return "", t, false
	}
	name := strings.TrimSpace(t[1:end])
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return "", t, false
		}
	}
	if name == "" {
		return "", t, false
	}
	return name, strings.TrimSpace(t[end+1:]), true
}

func newDomain(name string, server, def bool) *Domain {
	return &Domain{Name: name, Server: server, Default: def, VerifyCert: true, RequireCert: true,
		MatchAddrs: []string{"*"}, MatchDomains: []string{"*"}}
}

// Build reads a generation's tls_mgm modparams and loads every domain's
// files. p nil (tls_mgm not loaded) gives a Config with empty default
// domains.
func Build(p modules.Params) (*Config, error) {
	c := &Config{DefServer: newDomain("", true, true), DefClient: newDomain("", false, true)}
	if p == nil {
		if err := c.load(); err != nil {
			return nil, err
		}
		return c, nil
	}
	byName := map[string][]*Domain{}
	for _, kind := range []string{"server_domain", "client_domain"} {
		for _, v := range p.All(kind) {
			name := strings.TrimSpace(v.AsString())
			if name == "" {
				continue
			}
			if strings.ContainsAny(name, "=[]") {
				return nil, fmt.Errorf("%s %q: give the domain's name only and its addresses with match_ip_address", kind, name)
			}
			server := kind == "server_domain"
			for _, d := range byName[name] {
				if d.Server == server {
					return nil, fmt.Errorf("%s %q is defined twice", kind, name)
				}
			}
			d := newDomain(name, server, false)
			byName[name] = append(byName[name], d)
			if server {
				c.Servers = append(c.Servers, d)
			} else {
				c.Clients = append(c.Clients, d)
			}
		}
	}
	for _, param := range domainParams {
		for _, v := range p.All(param) {
			c.SetParams = true
			dom, val, named := splitDomain(v.AsString())
			targets := []*Domain{c.DefServer, c.DefClient}
			if named {
				targets = byName[dom]
				if len(targets) == 0 {
					return nil, fmt.Errorf("%s: TLS domain [%s] is not defined (server_domain or client_domain)", param, dom)
				}
			}
			for _, d := range targets {
				if err := d.set(param, val); err != nil {
					where := ""
					if named {
						where = " [" + dom + "]"
					}
					return nil, fmt.Errorf("%s%s: %v", param, where, err)
				}
			}
		}
	}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func parseBool(v string) (bool, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return false, fmt.Errorf("%q is not a number", v)
	}
	return n != 0, nil
}

func splitList(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func (d *Domain) set(param, v string) error {
	var err error
	switch param {
	case "tls_method":
		d.Method = v
		d.MinVersion, d.MaxVersion, err = ParseMethod(v)
	case "certificate":
		d.Cert = v
	case "private_key":
		d.Key = v
	case "ca_list":
		d.CAList = v
	case "ca_dir":
		d.CADir = v
	case "crl_dir":
		if v != "" {
			return errors.New("certificate revocation lists are not supported")
		}
	case "crl_check_all", "dh_params":
		// crl_check_all only matters with crl_dir; Go has no finite-field
		// DHE cipher suites (ECDHE is always used), so dh_params is moot
	case "ciphers_list":
		d.Ciphers = v
		d.suites, err = parseCiphers(v)
	case "ec_curve":
		d.Curve = v
		d.curves, err = parseCurve(v)
	case "verify_cert":
		d.VerifyCert, err = parseBool(v)
	case "require_cert":
		d.RequireCert, err = parseBool(v)
	case "match_ip_address":
		if d.Default {
			return errors.New("needs a [domain] prefix")
		}
		d.MatchAddrs = splitList(v)
		for _, a := range d.MatchAddrs {
			if a == "*" {
				continue
			}
			if _, _, perr := splitAddr(a); perr != nil {
				return perr
			}
		}
	case "match_sip_domain":
		if d.Default {
			return errors.New("needs a [domain] prefix")
		}
		d.MatchDomains = splitList(strings.ToLower(v))
	}
	return err
}

// ParseMethod reads a tls_method value: SSLv23/TLSany (any version Go
// enables by default), TLSv1, TLSv1_1, TLSv1_2, TLSv1_3 (exactly that
// version) or a range "[LOW]-[HIGH]".
func ParseMethod(v string) (min, max uint16, err error) {
	v = strings.TrimSpace(v)
	if lo, hi, isRange := strings.Cut(v, "-"); isRange {
		if lo != "" {
			if min, err = tlsVersion(lo); err != nil {
				return 0, 0, err
			}
		} else {
			min = tls.VersionTLS10
		}
		if hi != "" {
			if max, err = tlsVersion(hi); err != nil {
				return 0, 0, err
			}
		}
		if max != 0 && min > max {
			return 0, 0, fmt.Errorf("range %q: low above high", v)
		}
		return min, max, nil
	}
	switch strings.ToLower(v) {
	case "", "sslv23", "tlsany":
		return 0, 0, nil
	}
	ver, err := tlsVersion(v)
	return ver, ver, err
}

func tlsVersion(s string) (uint16, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "tlsv1", "tlsv1_0":
		return tls.VersionTLS10, nil
	case "tlsv1_1":
		return tls.VersionTLS11, nil
	case "tlsv1_2":
		return tls.VersionTLS12, nil
	case "tlsv1_3":
		return tls.VersionTLS13, nil
	case "sslv2", "sslv3":
		return 0, fmt.Errorf("%s is not supported (TLSv1 and later are)", s)
	}
	return 0, fmt.Errorf("unknown TLS method %q (SSLv23, TLSv1, TLSv1_1, TLSv1_2, TLSv1_3 or a LOW-HIGH range)", s)
}

// opensslSuites maps OpenSSL's names of the TLS 1.2 cipher suites Go
// implements to their ids (Go also takes the IANA names).
var opensslSuites = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	"ECDHE-ECDSA-AES128-SHA256":     tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
	"ECDHE-RSA-AES128-SHA256":       tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	"AES128-GCM-SHA256":             tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES256-GCM-SHA384":             tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	"AES128-SHA":                    tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	"AES256-SHA":                    tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	"AES128-SHA256":                 tls.TLS_RSA_WITH_AES_128_CBC_SHA256,
}

// parseCiphers reads an OpenSSL cipher list. Lists of suite names
// (OpenSSL's or IANA's, ':' or ',' separated) restrict the TLS 1.2 suites;
// OpenSSL's selection keywords (DEFAULT, HIGH, !aNULL …) keep Go's secure
// defaults, which is what they ask for in practice. TLS 1.3 suites are not
// configurable in Go.
func parseCiphers(v string) ([]uint16, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	iana := map[string]uint16{}
	for _, cs := range tls.CipherSuites() {
		iana[cs.Name] = cs.ID
	}
	var out []uint16
	keywords := false
	for _, tok := range strings.FieldsFunc(v, func(r rune) bool { return r == ':' || r == ',' || r == ' ' }) {
		if strings.EqualFold(tok, "NULL") || strings.EqualFold(tok, "eNULL") {
			return nil, errors.New("NULL (unencrypted) cipher suites are not supported")
		}
		if id, ok := opensslSuites[strings.ToUpper(tok)]; ok {
			out = append(out, id)
			continue
		}
		if id, ok := iana[strings.ToUpper(tok)]; ok {
			out = append(out, id)
			continue
		}
		if strings.ContainsAny(tok[:1], "!-+@") || strings.ToUpper(tok) == tok {
			keywords = true // ALL, HIGH, DEFAULT, !aNULL, @STRENGTH …
			continue
		}
		return nil, fmt.Errorf("unknown or unsupported cipher %q", tok)
	}
	if keywords && len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func parseCurve(v string) ([]tls.CurveID, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "":
		return nil, nil
	case "prime256v1", "secp256r1", "p-256":
		return []tls.CurveID{tls.CurveP256}, nil
	case "secp384r1", "p-384":
		return []tls.CurveID{tls.CurveP384}, nil
	case "secp521r1", "p-521":
		return []tls.CurveID{tls.CurveP521}, nil
	case "x25519":
		return []tls.CurveID{tls.X25519}, nil
	}
	return nil, fmt.Errorf("unsupported elliptic curve %q (prime256v1, secp384r1, secp521r1, X25519)", v)
}

// load reads every domain's certificate, key and CA files.
func (c *Config) load() error {
	for _, d := range c.all() {
		if err := d.load(); err != nil {
			return fmt.Errorf("%s: %w", d, err)
		}
	}
	return nil
}

func (c *Config) all() []*Domain {
	out := []*Domain{c.DefServer, c.DefClient}
	out = append(out, c.Servers...)
	return append(out, c.Clients...)
}

func (d *Domain) load() error {
	switch {
	case d.Cert != "" && d.Key == "":
		return fmt.Errorf("certificate %s without private_key", d.Cert)
	case d.Cert == "" && d.Key != "":
		return fmt.Errorf("private_key %s without certificate", d.Key)
	case d.Cert != "":
		crt, err := tls.LoadX509KeyPair(d.Cert, d.Key)
		if err != nil {
			return err
		}
		d.cert = &crt
	}
	if d.CAList != "" || d.CADir != "" {
		d.pool = x509.NewCertPool()
		if d.CAList != "" {
			data, err := os.ReadFile(d.CAList)
			if err != nil {
				return fmt.Errorf("ca_list: %w", err)
			}
			if !d.pool.AppendCertsFromPEM(data) {
				return fmt.Errorf("ca_list %s: no PEM certificate in it", d.CAList)
			}
		}
		if d.CADir != "" {
			if err := appendDir(d.pool, d.CADir); err != nil {
				return fmt.Errorf("ca_dir: %w", err)
			}
		}
	}
	if d.Server && d.cert != nil {
		d.srvConf = d.serverConfig()
	}
	return nil
}

// appendDir adds every PEM certificate of the files in dir (OpenSSL's
// hashed directories hold them under <hash>.0 links).
func appendDir(pool *x509.CertPool, dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil || !pemHasCert(data) {
			continue
		}
		pool.AppendCertsFromPEM(data)
	}
	return nil
}

func pemHasCert(data []byte) bool {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return false
		}
		if b.Type == "CERTIFICATE" {
			return true
		}
	}
}

func (d *Domain) serverConfig() *tls.Config {
	cfg := &tls.Config{
		Certificates:     []tls.Certificate{*d.cert},
		MinVersion:       d.MinVersion,
		MaxVersion:       d.MaxVersion,
		CipherSuites:     d.suites,
		CurvePreferences: d.curves,
		ClientCAs:        d.pool,
	}
	switch {
	case !d.VerifyCert:
		cfg.ClientAuth = tls.NoClientCert
	case d.RequireCert:
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg
}

// ---- matching ----

func splitAddr(a string) (net.IP, int, error) {
	host, port := a, 0
	if h, p, err := net.SplitHostPort(a); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return nil, 0, fmt.Errorf("bad port in %q", a)
		}
		host, port = h, n
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	if ip == nil {
		return nil, 0, fmt.Errorf("%q is not an IP address (or \"*\")", a)
	}
	return ip, port, nil
}

// addrScore: 0 no match, 1 "*", 2 the IP, 3 IP and port.
func (d *Domain) addrScore(ip net.IP, port int) int {
	best := 0
	for _, a := range d.MatchAddrs {
		if a == "*" {
			best = max(best, 1)
			continue
		}
		mip, mport, err := splitAddr(a)
		if err != nil || ip == nil || !mip.Equal(ip) {
			continue
		}
		switch {
		case mport == 0:
			best = max(best, 2)
		case mport == port:
			best = max(best, 3)
		case port == 0: // port unknown (client side: the name dialled)
			best = max(best, 2)
		}
	}
	return best
}

// domainScore: 0 no match, 1 "*", 2+len a wildcard pattern, 1000 the name
// itself or "none" without one.
func (d *Domain) domainScore(name string) int {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	best := 0
	for _, p := range d.MatchDomains {
		switch {
		case p == "*":
			best = max(best, 1)
		case p == "none":
			if name == "" {
				best = max(best, 1000)
			}
		case name == "":
		case p == name:
			best = max(best, 1000)
		case strings.ContainsAny(p, "*?["):
			if ok, _ := path.Match(p, name); ok {
				best = max(best, 2+len(p))
			}
		}
	}
	return best
}

func pick(doms []*Domain, ip net.IP, port int, name string) *Domain {
	var best *Domain
	bestScore := 0
	for _, d := range doms {
		a := d.addrScore(ip, port)
		if a == 0 {
			continue
		}
		n := d.domainScore(name)
		if n == 0 {
			continue
		}
		if score := n*4 + a; score > bestScore {
			best, bestScore = d, score
		}
	}
	return best
}

// ServerDomain is the server domain of a connection accepted on local
// (its socket) with SNI name sni ("" when the client sent none): the
// named domain whose match_sip_domain and match_ip_address fit best, else
// the default server domain. Nil when none has a certificate.
func (c *Config) ServerDomain(local net.Addr, sni string) *Domain {
	ip, port := addrOf(local)
	if d := pick(c.Servers, ip, port, sni); d != nil && d.srvConf != nil {
		return d
	}
	if c.DefServer.srvConf != nil {
		return c.DefServer
	}
	return nil
}

// ClientDomain is the client domain of a connection the proxy opens to
// ip:port, for SIP domain name ("" when the destination is an IP): the
// named domain whose match_ip_address and match_sip_domain fit best, else
// the default client domain.
func (c *Config) ClientDomain(ip net.IP, port int, name string) *Domain {
	if net.ParseIP(name) != nil {
		name = ""
	}
	if d := pick(c.Clients, ip, port, name); d != nil {
		return d
	}
	return c.DefClient
}

// HasServer tells whether some server domain has a certificate (a tls or
// wss socket needs one).
func (c *Config) HasServer() bool {
	if c.DefServer.srvConf != nil {
		return true
	}
	for _, d := range c.Servers {
		if d.srvConf != nil {
			return true
		}
	}
	return false
}

func addrOf(a net.Addr) (net.IP, int) {
	switch v := a.(type) {
	case *net.TCPAddr:
		return v.IP, v.Port
	case *net.UDPAddr:
		return v.IP, v.Port
	case nil:
		return nil, 0
	}
	ip, port, err := splitAddr(a.String())
	if err != nil {
		return nil, 0
	}
	return ip, port
}

// ClientConfig is the handshake configuration for a connection of client
// domain d to serverName (a host name or an IP: the certificate must name
// it, unless verify_cert is 0). An empty serverName leaves it to the
// dialler.
func (d *Domain) ClientConfig(serverName string) *tls.Config {
	cfg := &tls.Config{
		ServerName:         strings.Trim(serverName, "[]"),
		RootCAs:            d.pool,
		InsecureSkipVerify: !d.VerifyCert,
		MinVersion:         d.MinVersion,
		MaxVersion:         d.MaxVersion,
		CipherSuites:       d.suites,
		CurvePreferences:   d.curves,
	}
	if d.cert != nil {
		cfg.Certificates = []tls.Certificate{*d.cert}
	}
	return cfg
}
