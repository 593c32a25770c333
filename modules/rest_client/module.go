// Package restclient is OpenSIPS's rest_client module: blocking HTTP GET,
// POST and PUT from the script (rest_get, rest_post, rest_put), extra
// request headers (rest_append_hf) and the {rest.escape} /
// {rest.unescape} transformations, on Go's net/http instead of libcurl.
package restclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "rest_client"

// Return codes, as OpenSIPS's rest_client documents them.
const (
	RetOK              = 1
	RetConnRefused     = -1
	RetConnTimeout     = -2
	RetTransferTimeout = -3
	RetInternal        = -10
)

// DefaultCtype is the request Content-Type when rest_post/rest_put get
// none (libcurl's default for a POST body).
const DefaultCtype = "application/x-www-form-urlencoded"

// config is one generation's client.
type config struct {
	client         *http.Client
	connectTimeout time.Duration
	transferTO     time.Duration
	maxSize        int64 // bytes; 0: no limit
}

var cur atomic.Pointer[config]

func init() {
	c, _ := newConfig(defaults())
	cur.Store(c)
	str := check.ArgSpec{Kind: check.ArgStr}
	optStr := check.ArgSpec{Kind: check.ArgStr, Optional: true}
	out := check.ArgSpec{Kind: check.ArgVar, Writable: true}
	optOut := check.ArgSpec{Kind: check.ArgVar, Writable: true, Optional: true}
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "connection_timeout", Kind: modules.ParamInt, Default: value.I(20)},
			{Name: "curl_timeout", Kind: modules.ParamInt, Default: value.I(20)},
			{Name: "max_transfer_size", Kind: modules.ParamInt, Default: value.I(10240)},
			{Name: "ssl_verifypeer", Kind: modules.ParamInt, Default: value.I(1)},
			{Name: "ssl_verifyhost", Kind: modules.ParamInt, Default: value.I(1)},
			{Name: "ssl_capath", Kind: modules.ParamStr},
			// libcurl tuning without a net/http equivalent: accepted, no effect.
			{Name: "connect_poll_interval", Kind: modules.ParamInt, Default: value.I(20)},
			{Name: "max_async_transfers", Kind: modules.ParamInt, Default: value.I(100)},
			{Name: "curl_http_version", Kind: modules.ParamInt, Default: value.I(0)},
			{Name: "enable_expect_100", Kind: modules.ParamInt, Default: value.I(0)},
			{Name: "no_concurrent_connects", Kind: modules.ParamInt, Default: value.I(0)},
			{Name: "curl_conn_lifetime", Kind: modules.ParamInt, Default: value.I(0)},
		},
		Configure: configure,
		Funcs: []*modules.Func{
			{Name: "rest_get", Args: []check.ArgSpec{str, out, optOut, optOut},
				Call: func(m *msgctx.Msg, a *modules.Args) int { return callMethod(m, a, http.MethodGet) }},
			{Name: "rest_post", Args: []check.ArgSpec{str, str, optStr, out, optOut, optOut},
				Call: func(m *msgctx.Msg, a *modules.Args) int { return callMethod(m, a, http.MethodPost) }},
			{Name: "rest_put", Args: []check.ArgSpec{str, str, optStr, out, optOut, optOut},
				Call: func(m *msgctx.Msg, a *modules.Args) int { return callMethod(m, a, http.MethodPut) }},
			{Name: "rest_append_hf", Args: []check.ArgSpec{str}, Fixup: fixupAppendHF, Call: callAppendHF},
		},
	})
	pvar.RegisterTrans(&pvar.Trans{Class: "rest", Name: "escape", Fn: transEscape})
	pvar.RegisterTrans(&pvar.Trans{Class: "rest", Name: "unescape", Fn: transUnescape})
}

type settings struct {
	connectTimeout, curlTimeout, maxKB int
	verifyPeer, verifyHost             bool
	caPath                             string
}

func defaults() settings {
	return settings{connectTimeout: 20, curlTimeout: 20, maxKB: 10240, verifyPeer: true, verifyHost: true}
}

func configure(p modules.Params) (func(), error) {
	s := settings{
		connectTimeout: p.Int("connection_timeout"),
		curlTimeout:    p.Int("curl_timeout"),
		maxKB:          p.Int("max_transfer_size"),
		verifyPeer:     p.Int("ssl_verifypeer") != 0,
		verifyHost:     p.Int("ssl_verifyhost") != 0,
		caPath:         strings.TrimSpace(p.Str("ssl_capath")),
	}
	c, err := newConfig(s)
	if err != nil {
		return nil, err
	}
	return func() {
		old := cur.Swap(c)
		if old != nil && old.client != c.client {
			old.client.CloseIdleConnections()
		}
	}, nil
}

func newConfig(s settings) (*config, error) {
	switch {
	case s.connectTimeout <= 0:
		return nil, fmt.Errorf("connection_timeout must be positive (seconds), not %d", s.connectTimeout)
	case s.curlTimeout <= 0:
		return nil, fmt.Errorf("curl_timeout must be positive (seconds), not %d", s.curlTimeout)
	case s.maxKB < 0:
		return nil, fmt.Errorf("max_transfer_size must not be negative, not %d", s.maxKB)
	}
	tlsCfg, err := tlsConfig(s)
	if err != nil {
		return nil, err
	}
	c := &config{
		connectTimeout: time.Duration(s.connectTimeout) * time.Second,
		transferTO:     time.Duration(s.curlTimeout) * time.Second,
		maxSize:        int64(s.maxKB) * 1024,
	}
	dialer := &net.Dialer{Timeout: c.connectTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: c.connectTimeout,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	c.client = &http.Client{
		Transport: tr,
		// libcurl does not follow redirects unless told to: the script
		// sees the 3xx and its Location.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// tlsConfig applies ssl_verifypeer, ssl_verifyhost and ssl_capath.
func tlsConfig(s settings) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.caPath != "" {
		pool, err := loadCAs(s.caPath)
		if err != nil {
			return nil, fmt.Errorf("ssl_capath: %v", err)
		}
		cfg.RootCAs = pool
	}
	switch {
	case !s.verifyPeer:
		cfg.InsecureSkipVerify = true
	case !s.verifyHost:
		// Verify the chain, not the name.
		cfg.InsecureSkipVerify = true
		roots := cfg.RootCAs
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no peer certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			return err
		}
	}
	return cfg, nil
}

// loadCAs reads PEM certificates from a directory (every regular file in
// it, as libcurl's CAPATH holds) or from one file.
func loadCAs(path string) (*x509.CertPool, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	files := []string{path}
	if st.IsDir() {
		ents, err := os.ReadDir(path)
		if err != nil {
			return nil, err
		}
		files = files[:0]
		for _, e := range ents {
			if e.Type().IsRegular() || e.Type()&os.ModeSymlink != 0 {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	}
	pool := x509.NewCertPool()
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if pool.AppendCertsFromPEM(b) {
			n++
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("no PEM certificate in %s", path)
	}
	return pool, nil
}

func logf(m *msgctx.Msg, level int, format string, args ...any) {
	if m != nil && m.Host != nil {
		m.Host.Log(m, level, "rest_client: "+fmt.Sprintf(format, args...))
	}
}
