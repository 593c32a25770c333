// Package httpd is OpenSIPS's httpd module: the process's embedded HTTP
// server, on which other modules (mi_http, prometheus) mount a root path.
//
// The server belongs to the process, not to a script generation. The SIP
// runtime calls Sync with the live script's modparams whenever a generation
// goes live (at start and after every successful reload):
//
//   - httpd not loaded: the server is stopped (if it ran);
//   - the listening address (ip, port), TLS files or conn_timeout changed,
//     or nothing is listening yet: a new listener is bound, the old one is
//     closed at once and its open connections drain in the background (so
//     a reload_routes request served by the old listener still gets its
//     answer);
//   - otherwise the listener stays and only the routes (which module serves
//     which root) are swapped, atomically.
//
// A rejected reload calls nothing, so the running server keeps serving.
package httpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/mi"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module's name.
const Name = "httpd"

// Defaults, as OpenSIPS 3.x documents them.
const (
	DefaultPort        = 8888
	DefaultConnTimeout = 30
	DefaultPostBufSize = 1024
	MinPostBufSize     = 256
)

func init() {
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "ip", Kind: modules.ParamStr, Default: value.S("")},
			{Name: "port", Kind: modules.ParamInt, Default: value.I(DefaultPort)},
			{Name: "conn_timeout", Kind: modules.ParamInt, Default: value.I(DefaultConnTimeout)},
			{Name: "buf_size", Kind: modules.ParamInt, Default: value.I(0)},
			{Name: "post_buf_size", Kind: modules.ParamInt, Default: value.I(DefaultPostBufSize)},
			{Name: "receive_buf_size", Kind: modules.ParamInt, Default: value.I(1024)},
			{Name: "tls_cert_file", Kind: modules.ParamStr, Default: value.S("")},
			{Name: "tls_key_file", Kind: modules.ParamStr, Default: value.S("")},
			{Name: "tls_ciphers", Kind: modules.ParamStr, Default: value.S("")},
		},
		Configure: func(p modules.Params) (func(), error) {
			_, err := readConfig(p)
			return nil, err // Sync applies it; Configure only validates
		},
		MI: []modules.MICommand{
			{Name: "httpd_list_root_path", Help: "lists the root paths the HTTP server serves and the module behind each", Run: miListRootPath},
		},
	})
	mi.Default.AddProcesses(func() []string {
		if a := Addr(); a != "" {
			return []string{"HTTPD " + a}
		}
		return nil
	})
}

// Config is where and how the server listens.
type Config struct {
	IP          string // "" = every address
	Port        int    // 0 = any free port (a sipedge extension, for tests)
	ConnTimeout time.Duration
	TLSCert     string
	TLSKey      string
}

// Addr is the host:port to listen on.
func (c Config) Addr() string { return net.JoinHostPort(c.IP, strconv.Itoa(c.Port)) }

func readConfig(p modules.Params) (Config, error) {
	c := Config{IP: strings.TrimSpace(p.Str("ip")), Port: p.Int("port"),
		ConnTimeout: time.Duration(p.Int("conn_timeout")) * time.Second,
		TLSCert:     p.Str("tls_cert_file"), TLSKey: p.Str("tls_key_file")}
	if c.IP == "*" {
		c.IP = ""
	}
	if c.IP != "" && net.ParseIP(c.IP) == nil {
		return c, fmt.Errorf("invalid IP %q", c.IP)
	}
	if c.Port < 0 || c.Port > 65535 || (c.Port > 0 && c.Port < 1024) {
		return c, fmt.Errorf("port %d is not accepted (1024..65535)", c.Port)
	}
	if n := p.Int("conn_timeout"); n < 0 {
		return c, fmt.Errorf("conn_timeout %d is negative", n)
	}
	if n := p.Int("post_buf_size"); n < MinPostBufSize {
		return c, fmt.Errorf("post_buf_size should be at least %d", MinPostBufSize)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return c, errors.New("tls_cert_file and tls_key_file go together")
	}
	if c.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			return c, fmt.Errorf("TLS certificate: %v", err)
		}
	}
	return c, nil
}

// ValidRoot checks a root path as OpenSIPS does: letters, digits and '_'.
func ValidRoot(root string) error {
	if root == "" {
		return errors.New("empty root path")
	}
	for _, r := range root {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return fmt.Errorf("bad root path %q: use only letters, digits and '_'", root)
		}
	}
	return nil
}

// RouteFunc builds what a module serves for one generation's modparams:
// the root (first path segment) and its handler.
type RouteFunc func(p modules.Params) (root string, h http.Handler, err error)

var providers struct {
	sync.Mutex
	m map[string]RouteFunc
}

// RegisterRoot declares that a module serves a root on the HTTP server
// when a script loads it (OpenSIPS's register_httpdcb). Call it from the
// module's init.
func RegisterRoot(module string, f RouteFunc) {
	providers.Lock()
	defer providers.Unlock()
	if providers.m == nil {
		providers.m = map[string]RouteFunc{}
	}
	if _, dup := providers.m[module]; dup {
		panic("httpd: module " + module + " registered twice")
	}
	providers.m[module] = f
}

type route struct {
	module string
	h      http.Handler
}

// routes maps a root to its handler; swapped whole by Sync.
var routes atomic.Pointer[map[string]route]

var srv struct {
	mu   sync.Mutex
	cfg  Config
	s    *http.Server
	ln   net.Listener
	addr atomic.Value // string
}

// handler dispatches on the first path segment.
var handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	seg := strings.TrimPrefix(r.URL.Path, "/")
	if i := strings.IndexByte(seg, '/'); i >= 0 {
		seg = seg[:i]
	}
	if m := routes.Load(); m != nil {
		if rt, ok := (*m)[seg]; ok {
			rt.h.ServeHTTP(w, r)
			return
		}
	}
	http.NotFound(w, r)
})

// Sync makes the server match a live script: params are the script's
// modparams by module (engine.Script.Params; a module is loaded when it
// has an entry). Call it whenever a generation goes live. It returns an
// error for a module that needs httpd without it, two modules on one
// root, or a failed bind (the previous listener then keeps serving).
func Sync(params map[string]modules.Params) error {
	hp, loaded := params[Name]
	table := map[string]route{}
	var errs []string
	providers.Lock()
	names := make([]string, 0, len(providers.m))
	for name := range providers.m {
		names = append(names, name)
	}
	sort.Strings(names)
	fns := make(map[string]RouteFunc, len(names))
	for _, n := range names {
		fns[n] = providers.m[n]
	}
	providers.Unlock()
	for _, name := range names {
		p, ok := params[name]
		if !ok {
			continue
		}
		if !loaded {
			errs = append(errs, fmt.Sprintf("module %s needs the httpd module, which the script does not load", name))
			continue
		}
		root, h, err := fns[name](p)
		if err != nil {
			errs = append(errs, fmt.Sprintf("module %s: %v", name, err))
			continue
		}
		if prev, dup := table[root]; dup {
			errs = append(errs, fmt.Sprintf("modules %s and %s both serve /%s", prev.module, name, root))
			continue
		}
		table[root] = route{module: name, h: h}
	}
	routes.Store(&table)
	if !loaded {
		stop(false) // the request that asked for the reload may be ours
	} else {
		cfg, err := readConfig(hp)
		if err == nil {
			err = listen(cfg)
		}
		if err != nil {
			errs = append(errs, "httpd: "+err.Error())
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// listen binds cfg unless the server already listens with it.
func listen(cfg Config) error {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.s != nil && srv.cfg == cfg {
		return nil
	}
	var tlsCfg *tls.Config
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("TLS certificate: %v", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	oldS, oldLn, oldAddr := srv.s, srv.ln, Addr()
	ln, err := net.Listen("tcp", cfg.Addr())
	if err != nil && oldLn != nil && cfg.Port != 0 && samePort(oldAddr, cfg.Port) {
		// The old listener (a wildcard one, say) may hold the port the
		// new one wants: free it and try again; put it back on failure.
		oldLn.Close()
		if ln, err = net.Listen("tcp", cfg.Addr()); err != nil {
			if back, berr := net.Listen("tcp", oldAddr); berr == nil {
				srv.ln = back
				go serve(oldS, back, srv.cfg)
			} else {
				srv.s, srv.ln, srv.cfg = nil, nil, Config{}
				srv.addr.Store("")
				go drain(oldS)
			}
		}
	}
	if err != nil {
		return err
	}
	if oldLn != nil {
		oldLn.Close()
	}
	s := &http.Server{
		Handler:           handler,
		IdleTimeout:       cfg.ConnTimeout,
		ReadHeaderTimeout: 30 * time.Second,
		TLSConfig:         tlsCfg,
	}
	srv.s, srv.ln, srv.cfg = s, ln, cfg
	srv.addr.Store(ln.Addr().String())
	go serve(s, ln, cfg)
	if oldS != nil {
		go drain(oldS)
	}
	return nil
}

func samePort(addr string, port int) bool {
	_, p, err := net.SplitHostPort(addr)
	return err == nil && p == strconv.Itoa(port)
}

func serve(s *http.Server, ln net.Listener, cfg Config) {
	if cfg.TLSCert != "" {
		s.ServeTLS(ln, "", "")
		return
	}
	s.Serve(ln)
}

func drain(s *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s.Shutdown(ctx) != nil {
		s.Close()
	}
}

// Addr is the address the server listens on ("" when it does not).
func Addr() string {
	a, _ := srv.addr.Load().(string)
	return a
}

// Close stops the server: the listener closes at once, open requests get
// up to 10 seconds to finish. Call it when the process stops.
func Close() error { return stop(true) }

// stop closes the listener; wait tells whether to wait for open requests
// or let them drain in the background.
func stop(wait bool) error {
	srv.mu.Lock()
	s := srv.s
	if srv.ln != nil {
		srv.ln.Close()
	}
	srv.s, srv.ln, srv.cfg = nil, nil, Config{}
	srv.addr.Store("")
	srv.mu.Unlock()
	if s == nil {
		return nil
	}
	if !wait {
		go drain(s)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Shutdown(ctx)
}

func miListRootPath(map[string]any) (any, error) {
	out := []map[string]any{}
	if m := routes.Load(); m != nil {
		roots := make([]string, 0, len(*m))
		for r := range *m {
			roots = append(roots, r)
		}
		sort.Strings(roots)
		for _, r := range roots {
			out = append(out, map[string]any{"http_root": r, "module": (*m)[r].module})
		}
	}
	return out, nil
}
