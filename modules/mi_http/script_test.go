package mihttp_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipedge/sipedge/lang/syntax"
	"github.com/sipedge/sipedge/modules/httpd"
	_ "github.com/sipedge/sipedge/modules/mi_http"
	_ "github.com/sipedge/sipedge/modules/prometheus"
	"github.com/sipedge/sipedge/runtime/engine"
	"github.com/sipedge/sipedge/runtime/mi"
	"github.com/sipedge/sipedge/runtime/stats"
)

// scriptRuntime does what the SIP runtime is asked to do: load the
// script, and each time a generation goes live, install its modules' MI
// commands and sync the HTTP server to its modparams.
type scriptRuntime struct {
	mu    sync.Mutex
	path  string
	level int
}

func (r *scriptRuntime) load() error {
	s, err := engine.Load(r.path, syntax.Options{})
	if err != nil {
		return err
	}
	s.Activate()
	mi.Default.SetModulesFrom(s.Params)
	return httpd.Sync(s.Params)
}

func (r *scriptRuntime) Reload() error        { r.mu.Lock(); defer r.mu.Unlock(); return r.load() }
func (r *scriptRuntime) SocketList() []string { return []string{"udp:127.0.0.1:5060"} }
func (r *scriptRuntime) LogLevel() int        { return r.level }
func (r *scriptRuntime) SetLogLevel(l int)    { r.level = l }

const goodScript = `
loadmodule "httpd.so"
loadmodule "mi_http.so"
loadmodule "prometheus.so"
modparam("httpd", "ip", "127.0.0.1")
modparam("httpd", "port", 0)
modparam("prometheus", "statistics", "core:")
modparam("prometheus", "group_mode", 1)
route {
	exit;
}
`

func TestScriptDrivenMIAndMetrics(t *testing.T) {
	defer httpd.Close()
	defer mi.Default.SetRuntime(nil)
	defer mi.Default.SetModules()
	path := filepath.Join(t.TempDir(), "opensips.cfg")
	os.WriteFile(path, []byte(goodScript), 0o644)
	rt := &scriptRuntime{path: path, level: 2}
	if err := rt.load(); err != nil {
		t.Fatal(err)
	}
	mi.Default.SetRuntime(rt)
	base := "http://" + httpd.Addr()

	stats.RcvRequests.Set(5)
	res := post(t, base+"/mi", `{"jsonrpc":"2.0","method":"get_statistics","params":[["rcv_requests"]],"id":1}`)
	if !reflect.DeepEqual(res["result"], map[string]any{"core:rcv_requests": float64(5)}) {
		t.Errorf("get_statistics = %v", res)
	}
	if body := get(t, base+"/metrics"); !strings.Contains(body, "\nopensips_core_rcv_requests 5\n") {
		t.Errorf("metrics:\n%s", body)
	}
	res = post(t, base+"/mi", `{"jsonrpc":"2.0","method":"httpd_list_root_path","id":2}`)
	if n := len(res["result"].([]any)); n != 2 {
		t.Errorf("httpd_list_root_path = %v", res)
	}

	// A broken script is refused with its positioned errors; everything
	// keeps serving.
	os.WriteFile(path, []byte(strings.Replace(goodScript, "exit;", "exit\n}\nroute[x] { xlog(;", 1)), 0o644)
	res = post(t, base+"/mi", `{"jsonrpc":"2.0","method":"reload_routes","id":3}`)
	e, _ := res["error"].(map[string]any)
	if e == nil || e["code"] != float64(500) || e["message"] != "reload failed" {
		t.Fatalf("reload_routes = %v", res)
	}
	lines, _ := e["data"].([]any)
	t.Logf("reload errors: %q", lines)
	if len(lines) == 0 || !strings.HasPrefix(lines[0].(string), path+":") {
		t.Errorf("data = %v", e["data"])
	}
	if body := get(t, base+"/metrics"); !strings.Contains(body, "opensips_core_rcv_requests") {
		t.Error("metrics gone after a refused reload")
	}

	// A good reload without prometheus drops /metrics; the server stays.
	os.WriteFile(path, []byte(strings.Join(withoutLines(goodScript, "prometheus"), "\n")), 0o644)
	res = post(t, base+"/mi", `{"jsonrpc":"2.0","method":"reload_routes","id":4}`)
	if res["result"] != "OK" {
		t.Fatalf("reload_routes = %v", res)
	}
	if code := status(t, base+"/metrics"); code != 404 {
		t.Errorf("/metrics after unloading prometheus: %d", code)
	}
	if "http://"+httpd.Addr() != base {
		t.Errorf("the server moved: %s", httpd.Addr())
	}

	// A reload that moves the server still answers on the old connection,
	// then the server listens on the new address only.
	moved := strings.Replace(goodScript, `modparam("httpd", "ip", "127.0.0.1")`, `modparam("httpd", "ip", "127.0.0.2")`, 1)
	os.WriteFile(path, []byte(moved), 0o644)
	res = post(t, base+"/mi", `{"jsonrpc":"2.0","method":"reload_routes","id":5}`)
	if res["result"] != "OK" {
		t.Fatalf("reload_routes (move) = %v", res)
	}
	if !strings.HasPrefix(httpd.Addr(), "127.0.0.2:") {
		t.Fatalf("server at %q after the move", httpd.Addr())
	}
	res = post(t, "http://"+httpd.Addr()+"/mi", `{"jsonrpc":"2.0","method":"uptime","id":6}`)
	if res["result"] == nil {
		t.Errorf("uptime at the new address = %v", res)
	}
	if _, err := (&http.Client{Timeout: time.Second}).Get(base + "/metrics"); err == nil {
		t.Error("the old address still answers")
	}
}

func withoutLines(s, sub string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

func post(t *testing.T, url, body string) map[string]any {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %d %q", url, resp.StatusCode, b)
	}
	return m
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
