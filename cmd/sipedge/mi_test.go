package main

import (
	"bytes"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/lang/source"
	"github.com/sipedge/sipedge/runtime/mi"
	"github.com/sipedge/sipedge/runtime/stats"
)

type miTestRuntime struct{ reloadErr error }

func (r *miTestRuntime) Reload() error        { return r.reloadErr }
func (r *miTestRuntime) SocketList() []string { return []string{"udp:127.0.0.1:5060"} }
func (r *miTestRuntime) LogLevel() int        { return 2 }
func (r *miTestRuntime) SetLogLevel(int)      {}

// miServer is a real HTTP server on 127.0.0.1 (a free port) answering MI.
func miServer(t *testing.T) (*miTestRuntime, string) {
	t.Helper()
	reg := mi.NewRegistry()
	rt := &miTestRuntime{}
	reg.SetRuntime(rt)
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	return rt, srv.URL + "/mi"
}

func runMITest(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(append([]string{"mi"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestMIClient(t *testing.T) {
	rt, url := miServer(t)
	code, out, errs := runMITest("-url", url, "list_sockets")
	want := "{\n    \"Sockets\": [\n        \"udp:127.0.0.1:5060\"\n    ]\n}\n"
	if code != 0 || out != want {
		t.Errorf("list_sockets: exit %d\n%s\nstderr %s", code, out, errs)
	}

	stats.RcvRequests.Set(41)
	stats.RcvRequests.Inc()
	code, out, _ = runMITest("-url", url, "get_statistics", "rcv_requests", "nogroup:")
	if code != 0 || !strings.Contains(out, `"core:rcv_requests": 42`) {
		t.Errorf("get_statistics: exit %d\n%s", code, out)
	}
	code, out, _ = runMITest("-url", url, "get_statistics", "statistics=rcv_requests,fwd_requests")
	if code != 0 || !strings.Contains(out, `"core:fwd_requests"`) || !strings.Contains(out, `"core:rcv_requests": 42`) {
		t.Errorf("get_statistics named: exit %d\n%s", code, out)
	}
	code, out, _ = runMITest("-url", url, "log_level", "level=4")
	if code != 0 || !strings.Contains(out, `"New global log level": 4`) {
		t.Errorf("log_level level=4: exit %d\n%s", code, out)
	}
	code, out, _ = runMITest("-url", url, "which", "reload_routes")
	if code != 0 || out != "[\n    []\n]\n" {
		t.Errorf("which reload_routes: exit %d %q", code, out)
	}

	code, _, errs = runMITest("-url", url, "no_such_cmd")
	if code != 1 || !strings.Contains(errs, "error: -32601: Method not found") {
		t.Errorf("unknown command: exit %d, stderr %q", code, errs)
	}
	code, _, errs = runMITest("-url", url, "ps", "extra")
	if code != 1 || !strings.Contains(errs, "-32602: Invalid params") || !strings.Contains(errs, "Too few or too many parameters") {
		t.Errorf("bad params: exit %d, stderr %q", code, errs)
	}

	rt.reloadErr = source.ErrorList{
		{Pos: source.Pos{File: "proxy.cfg", Line: 7, Col: 3}, Msg: `unknown function "t_rely"`},
		{Pos: source.Pos{File: "proxy.cfg", Line: 9, Col: 1}, Msg: "missing ';'"},
	}
	code, _, errs = runMITest("-url", url, "reload_routes")
	wantErr := "error: 500: reload failed\nproxy.cfg:7:3: unknown function \"t_rely\"\nproxy.cfg:9:1: missing ';'\n"
	if code != 1 || errs != wantErr {
		t.Errorf("reload_routes: exit %d, stderr %q", code, errs)
	}
	rt.reloadErr = nil
	if code, out, _ = runMITest("-url", url, "reload_routes"); code != 0 || out != "\"OK\"\n" {
		t.Errorf("reload_routes ok: exit %d %q", code, out)
	}
}

func TestMIClientErrors(t *testing.T) {
	if code, _, _ := runMITest(); code != 2 {
		t.Errorf("no command: exit %d", code)
	}
	if code, _, errs := runMITest("-url", "http://127.0.0.1:8888/mi", "log_level", "level=1", "2"); code != 2 || !strings.Contains(errs, "not both") {
		t.Errorf("mixed args: exit %d %q", code, errs)
	}
	// Nothing listens there (a server closed at once).
	srv := httptest.NewServer(nil)
	url := srv.URL
	srv.Close()
	if code, _, errs := runMITest("-url", url+"/mi", "ps"); code != 1 || errs == "" {
		t.Errorf("no server: exit %d %q", code, errs)
	}
	// A server that is not mi_http.
	other := httptest.NewServer(nil)
	defer other.Close()
	if code, _, errs := runMITest("-url", other.URL+"/mi", "ps"); code != 1 || !strings.Contains(errs, "404") {
		t.Errorf("not MI: exit %d %q", code, errs)
	}
}

func TestMIParams(t *testing.T) {
	cases := []struct {
		method string
		args   []string
		want   any
	}{
		{"ps", nil, nil},
		{"log_level", []string{"4", "1234"}, []any{"4", "1234"}},
		{"log_level", []string{"level=4"}, map[string]any{"level": "4"}},
		{"get_statistics", []string{"core:", "tm:"}, []any{[]any{"core:", "tm:"}}},
		{"reset_statistics", []string{"statistics=a,b", "statistics=c"}, map[string]any{"statistics": []any{"a", "b", "c"}}},
		// A value with '=' after a ':' is positional (a SIP URI, say).
		{"cache_fetch", []string{"local", "sip:a@b;x=y"}, []any{"local", "sip:a@b;x=y"}},
	}
	for _, tc := range cases {
		got, err := miParams(tc.method, tc.args)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("miParams(%s, %q) = %#v, %v; want %#v", tc.method, tc.args, got, err, tc.want)
		}
	}
}
