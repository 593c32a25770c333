package mihttp

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/lang/source"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/modules/httpd"
	"github.com/sipedge/sipedge/runtime/mi"
	"github.com/sipedge/sipedge/runtime/value"
)

func params(module string, set map[string]string) modules.Params {
	p := modules.Params{}
	for _, spec := range modules.Lookup(module).Params {
		if !spec.Default.IsNull() {
			p[spec.Name] = []value.Value{spec.Default}
		}
	}
	for k, v := range set {
		p[k] = []value.Value{value.S(v)}
	}
	return p
}

func httpdParams() modules.Params {
	p := params(httpd.Name, map[string]string{"ip": "127.0.0.1"})
	p["port"] = []value.Value{value.I(0)}
	return p
}

type rt struct{ err error }

func (r rt) Reload() error        { return r.err }
func (r rt) SocketList() []string { return []string{"udp:127.0.0.1:5060"} }
func (r rt) LogLevel() int        { return 3 }
func (r rt) SetLogLevel(int)      {}

func rpc(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func TestServesMIOverHTTP(t *testing.T) {
	defer httpd.Close()
	defer mi.Default.SetRuntime(nil)
	mi.Default.SetRuntime(rt{err: source.ErrorList{{Pos: source.Pos{File: "proxy.cfg", Line: 4, Col: 9}, Msg: "unknown module \"tmm\""}}})
	if err := httpd.Sync(map[string]modules.Params{httpd.Name: httpdParams(), Name: params(Name, nil)}); err != nil {
		t.Fatal(err)
	}
	url := "http://" + httpd.Addr() + "/mi"
	code, m := rpc(t, url, `{"jsonrpc":"2.0","method":"list_sockets","id":1}`)
	if code != 200 || !reflect.DeepEqual(m["result"], map[string]any{"Sockets": []any{"udp:127.0.0.1:5060"}}) {
		t.Errorf("list_sockets: %d %v", code, m)
	}
	code, m = rpc(t, url, `{"jsonrpc":"2.0","method":"reload_routes","id":2}`)
	want := map[string]any{"code": float64(500), "message": "reload failed", "data": []any{"proxy.cfg:4:9: unknown module \"tmm\""}}
	if code != 200 || !reflect.DeepEqual(m["error"], want) || m["id"] != float64(2) {
		t.Errorf("reload_routes: %d %v", code, m)
	}
	// httpd's own MI command is there when the runtime installs httpd's commands.
	mi.Default.SetModules("core", httpd.Name, Name)
	defer mi.Default.SetModules()
	_, m = rpc(t, url+"/", `{"jsonrpc":"2.0","method":"httpd_list_root_path","id":3}`)
	if !reflect.DeepEqual(m["result"], []any{map[string]any{"http_root": "mi", "module": "mi_http"}}) {
		t.Errorf("httpd_list_root_path: %v", m)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /mi: %d", resp.StatusCode)
	}
}

func TestRootParam(t *testing.T) {
	defer httpd.Close()
	if err := httpd.Sync(map[string]modules.Params{httpd.Name: httpdParams(), Name: params(Name, map[string]string{"root": "opensips_mi"})}); err != nil {
		t.Fatal(err)
	}
	base := "http://" + httpd.Addr()
	if code, m := rpc(t, base+"/opensips_mi", `{"jsonrpc":"2.0","method":"uptime","id":1}`); code != 200 || m["result"] == nil {
		t.Errorf("uptime at /opensips_mi: %d %v", code, m)
	}
	if code, _ := rpc(t, base+"/mi", `{"jsonrpc":"2.0","method":"uptime","id":1}`); code != 404 {
		t.Errorf("/mi still served: %d", code)
	}
	if _, err := modules.Lookup(Name).Configure(params(Name, map[string]string{"root": "mi/x"})); err == nil {
		t.Error("bad root accepted")
	}
}

func TestNeedsHTTPD(t *testing.T) {
	err := httpd.Sync(map[string]modules.Params{Name: params(Name, nil)})
	if err == nil || !strings.Contains(err.Error(), "mi_http needs the httpd module") {
		t.Errorf("Sync = %v", err)
	}
}
