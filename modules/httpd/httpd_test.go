package httpd

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/mi"
	"github.com/sipedge/sipedge/runtime/value"
)

// params builds a module's modparams as the engine does: defaults, then
// the given values.
func params(t *testing.T, module string, set map[string]any) modules.Params {
	t.Helper()
	p := modules.Params{}
	if info := modules.Lookup(module); info != nil {
		for _, spec := range info.Params {
			if !spec.Default.IsNull() {
				p[spec.Name] = []value.Value{spec.Default}
			}
		}
	}
	for k, v := range set {
		switch v := v.(type) {
		case string:
			p[k] = []value.Value{value.S(v)}
		case int:
			p[k] = []value.Value{value.I(v)}
		default:
			t.Fatalf("param %s: %T", k, v)
		}
	}
	return p
}

func configure(p modules.Params) error {
	_, err := modules.Lookup(Name).Configure(p)
	return err
}

var testRoot = "hello"

func init() {
	RegisterRoot("httpdtest", func(p modules.Params) (string, http.Handler, error) {
		return testRoot, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello %s %s", p.Str("who"), r.URL.Path)
		}), nil
	})
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestConfigureValidates(t *testing.T) {
	for _, bad := range []map[string]any{
		{"port": 80},
		{"port": 70000},
		{"ip": "localhost"},
		{"post_buf_size": 100},
		{"conn_timeout": -1},
		{"tls_cert_file": "/nonexistent.pem"},
		{"tls_cert_file": "/nonexistent.pem", "tls_key_file": "/nonexistent.key"},
	} {
		if configure(params(t, Name, bad)) == nil {
			t.Errorf("Configure accepted %v", bad)
		}
	}
	for _, good := range []map[string]any{nil, {"ip": "*"}, {"ip": "127.0.0.1", "port": 8000}, {"ip": "::1"}, {"port": 0}} {
		if err := configure(params(t, Name, good)); err != nil {
			t.Errorf("Configure refused %v: %v", good, err)
		}
	}
	if err := ValidRoot("mi"); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"", "a/b", "m-i", "mi "} {
		if ValidRoot(bad) == nil {
			t.Errorf("ValidRoot(%q) accepted", bad)
		}
	}
}

func TestSyncLifecycle(t *testing.T) {
	defer Close()
	hp := params(t, Name, map[string]any{"ip": "127.0.0.1", "port": 0})
	all := map[string]modules.Params{"core": {}, Name: hp, "httpdtest": {"who": {value.S("world")}}}
	if err := Sync(all); err != nil {
		t.Fatal(err)
	}
	addr := Addr()
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("Addr = %q", addr)
	}
	if code, body := get(t, "http://"+addr+"/hello/x"); code != 200 || body != "hello world /hello/x" {
		t.Errorf("GET /hello/x = %d %q", code, body)
	}
	if code, _ := get(t, "http://"+addr+"/helloworld"); code != 404 {
		t.Errorf("GET /helloworld = %d", code)
	}
	if code, _ := get(t, "http://"+addr+"/"); code != 404 {
		t.Errorf("GET / = %d", code)
	}
	roots, _ := miListRootPath(nil)
	if fmt.Sprint(roots) != "[map[http_root:hello module:httpdtest]]" {
		t.Errorf("httpd_list_root_path = %v", roots)
	}
	procs, _ := mi.Default.Call("ps", nil)
	if !strings.Contains(fmt.Sprint(procs), "HTTPD "+addr) {
		t.Errorf("ps = %v", procs)
	}

	// Same config: same listener, new routes.
	all["httpdtest"] = modules.Params{"who": {value.S("again")}}
	if err := Sync(all); err != nil {
		t.Fatal(err)
	}
	if Addr() != addr {
		t.Errorf("rebound without a change: %s -> %s", addr, Addr())
	}
	if _, body := get(t, "http://"+addr+"/hello"); body != "hello again /hello" {
		t.Errorf("routes not swapped: %q", body)
	}

	// A generation without the route module drops the root, keeps the server.
	delete(all, "httpdtest")
	if err := Sync(all); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, "http://"+addr+"/hello"); code != 404 {
		t.Errorf("dropped root still served: %d", code)
	}

	// A new address rebinds; the old one stops listening.
	all[Name] = params(t, Name, map[string]any{"ip": "127.0.0.1", "port": 0, "conn_timeout": 5})
	all["httpdtest"] = modules.Params{}
	if err := Sync(all); err != nil {
		t.Fatal(err)
	}
	if Addr() == addr || Addr() == "" {
		t.Fatalf("no rebind: %q", Addr())
	}
	if _, err := freshClient().Get("http://" + addr + "/hello"); err == nil {
		t.Error("old address still answers")
	}
	if code, _ := get(t, "http://"+Addr()+"/hello"); code != 200 {
		t.Errorf("new address: %d", code)
	}

	// httpd no longer loaded: the server stops; a module that needs it says so.
	newAddr := Addr()
	delete(all, Name)
	err := Sync(all)
	if err == nil || !strings.Contains(err.Error(), "httpdtest needs the httpd module") {
		t.Errorf("Sync without httpd = %v", err)
	}
	if Addr() != "" {
		t.Errorf("still listening on %s", Addr())
	}
	if _, err := freshClient().Get("http://" + newAddr + "/hello"); err == nil {
		t.Error("stopped server still answers")
	}
}

func TestSyncDuplicateRootAndBindFailure(t *testing.T) {
	defer Close()
	RegisterRoot("httpdtest2", func(modules.Params) (string, http.Handler, error) {
		return "hello", http.NotFoundHandler(), nil
	})
	hp := params(t, Name, map[string]any{"ip": "127.0.0.1", "port": 0})
	err := Sync(map[string]modules.Params{Name: hp, "httpdtest": {}, "httpdtest2": {}})
	if err == nil || !strings.Contains(err.Error(), "both serve /hello") {
		t.Errorf("duplicate root: %v", err)
	}
	addr := Addr()
	if addr == "" {
		t.Fatal("not listening")
	}
	// Bind failure (port taken by someone else): the old listener stays.
	ln, lerr := listenAny()
	if lerr != nil {
		t.Fatal(lerr)
	}
	defer ln.Close()
	_, port, _ := strings.Cut(ln.Addr().String(), ":")
	var n int
	fmt.Sscan(port, &n)
	err = Sync(map[string]modules.Params{Name: params(t, Name, map[string]any{"ip": "127.0.0.1", "port": n}), "httpdtest": {}})
	if err == nil {
		t.Fatal("bind on a taken port succeeded")
	}
	if Addr() != addr {
		t.Errorf("after a failed bind Addr = %q, want %q", Addr(), addr)
	}
	if code, _ := get(t, "http://"+addr+"/hello"); code != 200 {
		t.Errorf("old listener: %d", code)
	}
}

func TestTLS(t *testing.T) {
	defer Close()
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	hp := params(t, Name, map[string]any{"ip": "127.0.0.1", "port": 0, "tls_cert_file": cert, "tls_key_file": key})
	if err := configure(hp); err != nil {
		t.Fatal(err)
	}
	if err := Sync(map[string]modules.Params{Name: hp, "httpdtest": {}}); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get("https://" + Addr() + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("https: %d", resp.StatusCode)
	}
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	certFile, keyFile = filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

func listenAny() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// freshClient dials a new connection for every request: the default
// transport would reuse a kept-alive connection, which a stopped server
// still drains in the background, and the check would test nothing.
func freshClient() *http.Client {
	return &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}
