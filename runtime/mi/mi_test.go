package mi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/sipedge/sipedge/lang/source"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/stats"
)

// fakeRuntime stands in for the SIP runtime.
type fakeRuntime struct {
	mu        sync.Mutex
	level     int
	reloads   int
	reloadErr error
}

func (f *fakeRuntime) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	return f.reloadErr
}
func (f *fakeRuntime) SocketList() []string {
	return []string{"udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"}
}
func (f *fakeRuntime) LogLevel() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.level
}
func (f *fakeRuntime) SetLogLevel(l int) {
	f.mu.Lock()
	f.level = l
	f.mu.Unlock()
}

// server serves a fresh registry on 127.0.0.1 (a free port).
func server(t *testing.T) (*Registry, *fakeRuntime, string) {
	t.Helper()
	r := NewRegistry()
	rt := &fakeRuntime{level: 2}
	r.SetRuntime(rt)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, rt, srv.URL + "/mi"
}

type answer struct {
	Status int
	Body   string
	Result any
	Error  *Error
	ID     any
}

func post(t *testing.T, url, body string) answer {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	a := answer{Status: resp.StatusCode, Body: string(data)}
	if resp.StatusCode == http.StatusOK {
		var m struct {
			JSONRPC string          `json:"jsonrpc"`
			Result  any             `json:"result"`
			Error   *Error          `json:"error"`
			ID      json.RawMessage `json:"id"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("answer %q: %v", data, err)
		}
		if m.JSONRPC != "2.0" {
			t.Errorf("jsonrpc = %q", m.JSONRPC)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		a.Result, a.Error = m.Result, m.Error
		json.Unmarshal(m.ID, &a.ID)
	}
	return a
}

// call runs method with params (nil, []any or map) and wants a result.
func call(t *testing.T, url, method string, params any) any {
	t.Helper()
	a := callRaw(t, url, method, params)
	if a.Error != nil {
		t.Fatalf("%s: error %+v", method, a.Error)
	}
	return a.Result
}

func callRaw(t *testing.T, url, method string, params any) answer {
	t.Helper()
	req := map[string]any{"jsonrpc": "2.0", "method": method, "id": 7}
	if params != nil {
		req["params"] = params
	}
	b, _ := json.Marshal(req)
	a := post(t, url, string(b))
	if a.Status != http.StatusOK {
		t.Fatalf("%s: HTTP %d %s", method, a.Status, a.Body)
	}
	if a.ID != float64(7) {
		t.Errorf("%s: id %v", method, a.ID)
	}
	return a
}

func wantError(t *testing.T, a answer, code int, data string) {
	t.Helper()
	if a.Error == nil {
		t.Fatalf("want error %d, got result %v", code, a.Result)
	}
	if a.Error.Code != code {
		t.Errorf("code = %d (%s), want %d", a.Error.Code, a.Error.Message, code)
	}
	if data != "" && a.Error.Data != data {
		t.Errorf("data = %v, want %q", a.Error.Data, data)
	}
}

func TestUptimeVersionPwdArg(t *testing.T) {
	_, _, url := server(t)
	up := call(t, url, "uptime", nil).(map[string]any)
	for _, k := range []string{"Now", "Up since", "Up time"} {
		if _, ok := up[k].(string); !ok {
			t.Errorf("uptime lacks %q: %v", k, up)
		}
	}
	if !strings.HasSuffix(up["Up time"].(string), " [sec]") {
		t.Errorf("Up time = %q", up["Up time"])
	}
	v := call(t, url, "version", nil).(map[string]any)
	if s, _ := v["Server"].(string); !strings.HasPrefix(s, "sipedge (") {
		t.Errorf("version = %v", v)
	}
	if _, ok := v["Revision"]; ok {
		t.Error("Revision without the revision parameter")
	}
	v = call(t, url, "version", map[string]any{"revision": ""}).(map[string]any)
	if _, ok := v["Revision"]; !ok {
		t.Errorf("version revision = %v", v)
	}
	wd, _ := os.Getwd()
	if got := call(t, url, "pwd", nil).(map[string]any)["WD"]; got != wd {
		t.Errorf("pwd = %v", got)
	}
	if args := call(t, url, "arg", nil).([]any); len(args) != len(os.Args) {
		t.Errorf("arg = %v", args)
	}
}

func TestWhichAndHelp(t *testing.T) {
	_, _, url := server(t)
	names := call(t, url, "which", nil).([]any)
	for _, want := range []string{"ps", "uptime", "version", "which", "log_level", "reload_routes",
		"get_statistics", "reset_statistics", "list_statistics", "list_sockets", "help"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("which lacks %s: %v", want, names)
		}
	}
	got := call(t, url, "which", map[string]any{"command": "log_level"})
	want := []any{[]any{}, []any{"level"}, []any{"level", "pid"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("which log_level = %v", got)
	}
	wantError(t, callRaw(t, url, "which", []any{"nope"}), 404, "")
	if s, _ := call(t, url, "help", nil).(string); !strings.Contains(s, "mi_cmd") {
		t.Errorf("help = %v", s)
	}
	h := call(t, url, "help", []any{"ps"}).(map[string]any)
	if h["Exported by"] != "core" || h["Help"] == "" {
		t.Errorf("help ps = %v", h)
	}
	wantError(t, callRaw(t, url, "help", []any{"nope"}), 404, "")
}

func TestPsAndSockets(t *testing.T) {
	r, _, url := server(t)
	r.AddProcesses(func() []string { return []string{"HTTPD 127.0.0.1:8888"} })
	ps := call(t, url, "ps", nil).(map[string]any)["Processes"].([]any)
	var types []string
	for i, p := range ps {
		m := p.(map[string]any)
		if m["ID"] != float64(i) || m["PID"] != float64(os.Getpid()) {
			t.Errorf("ps[%d] = %v", i, m)
		}
		types = append(types, m["Type"].(string))
	}
	want := []string{"attendant", "SIP receiver udp:127.0.0.1:5060", "SIP receiver tcp:127.0.0.1:5060", "HTTPD 127.0.0.1:8888"}
	if !reflect.DeepEqual(types, want) {
		t.Errorf("ps types = %q", types)
	}
	socks := call(t, url, "list_sockets", nil).(map[string]any)["Sockets"]
	if !reflect.DeepEqual(socks, []any{"udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"}) {
		t.Errorf("list_sockets = %v", socks)
	}
}

func TestLogLevel(t *testing.T) {
	_, rt, url := server(t)
	procs := call(t, url, "log_level", nil).(map[string]any)["Processes"].([]any)
	if len(procs) == 0 || procs[0].(map[string]any)["Log level"] != float64(2) {
		t.Errorf("log_level = %v", procs)
	}
	got := call(t, url, "log_level", []any{4})
	if !reflect.DeepEqual(got, map[string]any{"New global log level": float64(4)}) || rt.LogLevel() != 4 {
		t.Errorf("log_level 4 = %v (runtime %d)", got, rt.LogLevel())
	}
	got = call(t, url, "log_level", map[string]any{"level": "-1", "pid": os.Getpid()})
	if !reflect.DeepEqual(got, map[string]any{"Log level": float64(-1)}) || rt.LogLevel() != -1 {
		t.Errorf("log_level -1 pid = %v", got)
	}
	wantError(t, callRaw(t, url, "log_level", []any{3, os.Getpid() + 1}), CodeInvalidParams, "Bad PID")
	wantError(t, callRaw(t, url, "log_level", []any{"loud"}), CodeInvalidParams, "Bad type for parameter 'level'")
	if rt.LogLevel() != -1 {
		t.Error("a refused call changed the level")
	}
}

func TestReloadRoutes(t *testing.T) {
	_, rt, url := server(t)
	if got := call(t, url, "reload_routes", nil); got != "OK" || rt.reloads != 1 {
		t.Fatalf("reload_routes = %v (%d reloads)", got, rt.reloads)
	}
	rt.reloadErr = source.ErrorList{
		{Pos: source.Pos{File: "proxy.cfg", Line: 12, Col: 5}, Msg: "unknown function \"t_rely\" (did you mean \"t_relay\"?)"},
		{Pos: source.Pos{File: "inc/acl.cfg", Line: 3, Col: 1}, Msg: "missing ';'"},
	}
	a := callRaw(t, url, "reload_routes", nil)
	wantError(t, a, 500, "")
	if a.Error.Message != "reload failed" {
		t.Errorf("message = %q", a.Error.Message)
	}
	want := []any{
		"proxy.cfg:12:5: unknown function \"t_rely\" (did you mean \"t_relay\"?)",
		"inc/acl.cfg:3:1: missing ';'",
	}
	if !reflect.DeepEqual(a.Error.Data, want) {
		t.Errorf("data = %#v", a.Error.Data)
	}
	rt.reloadErr = errors.New("open proxy.cfg: no such file or directory")
	a = callRaw(t, url, "reload_routes", nil)
	if !reflect.DeepEqual(a.Error.Data, []any{"open proxy.cfg: no such file or directory"}) {
		t.Errorf("data = %#v", a.Error.Data)
	}
}

func TestNoRuntime(t *testing.T) {
	srv := httptest.NewServer(NewRegistry())
	defer srv.Close()
	wantError(t, callRaw(t, srv.URL, "reload_routes", nil), 500, "")
	wantError(t, callRaw(t, srv.URL, "log_level", nil), 500, "")
	if got := call(t, srv.URL, "list_sockets", nil); !reflect.DeepEqual(got, map[string]any{"Sockets": []any{}}) {
		t.Errorf("list_sockets = %v", got)
	}
}

func TestStatistics(t *testing.T) {
	_, _, url := server(t)
	before := stats.RcvRequests.Value()
	stats.RcvRequests.Add(3)
	stats.ErrReplies.Inc()
	inuse := stats.NewGauge("mitest", "inuse_things")
	inuse.Set(5)
	got := call(t, url, "get_statistics", []any{[]any{"rcv_requests", "mitest:"}}).(map[string]any)
	want := map[string]any{"core:rcv_requests": float64(before + 3), "mitest:inuse_things": float64(5)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("get_statistics = %v, want %v", got, want)
	}
	all := call(t, url, "get_statistics", map[string]any{"statistics": []any{"all"}}).(map[string]any)
	if all["core:err_replies"] == nil || all["mitest:inuse_things"] != float64(5) || all["core:timestamp"] == nil {
		t.Errorf("get_statistics all = %v", all)
	}
	core := call(t, url, "get_statistics", []any{[]any{"core:"}}).(map[string]any)
	if len(core) != len(stats.Group("core")) {
		t.Errorf("core: has %d, want %d", len(core), len(stats.Group("core")))
	}
	wantError(t, callRaw(t, url, "get_statistics", []any{[]any{"nope", "nogroup:"}}), 404, "")
	wantError(t, callRaw(t, url, "get_statistics", []any{"rcv_requests"}), CodeInvalidParams, "Bad type for parameter 'statistics'")
	wantError(t, callRaw(t, url, "get_statistics", nil), CodeInvalidParams, "Too few or too many parameters")

	list := call(t, url, "list_statistics", []any{[]any{"mitest:", "rcv_requests"}}).(map[string]any)
	if !reflect.DeepEqual(list, map[string]any{"mitest:inuse_things": "non-incremental", "rcv_requests": "incremental"}) {
		t.Errorf("list_statistics = %v", list)
	}
	if l := call(t, url, "list_statistics", nil).(map[string]any); l["core:timestamp"] != "non-incremental" {
		t.Errorf("list_statistics all = %v", l)
	}

	if got := call(t, url, "reset_statistics", []any{[]any{"rcv_requests", "inuse_things"}}); got != "OK" {
		t.Errorf("reset_statistics = %v", got)
	}
	if stats.RcvRequests.Value() != 0 || inuse.Value() != 5 {
		t.Errorf("after reset: rcv_requests %d (want 0), inuse_things %d (want 5: not resettable)",
			stats.RcvRequests.Value(), inuse.Value())
	}
	wantError(t, callRaw(t, url, "reset_statistics", []any{[]any{"nope"}}), 404, "")
}

func TestProtocolErrors(t *testing.T) {
	_, _, url := server(t)
	a := post(t, url, `{"jsonrpc":"2.0","method":"nope","id":"x1"}`)
	wantError(t, a, CodeMethodNotFound, "")
	if a.Error.Message != "Method not found" || a.ID != "x1" {
		t.Errorf("not found = %+v id %v", a.Error, a.ID)
	}
	a = post(t, url, `{"jsonrpc":"2.0","method":`)
	wantError(t, a, CodeParseError, "")
	if a.ID != nil {
		t.Errorf("parse error id = %v", a.ID)
	}
	for _, body := range []string{
		`{"jsonrpc":"1.0","method":"ps","id":1}`,
		`{"method":"ps","id":1}`,
		`{"jsonrpc":"2.0","method":5,"id":1}`,
		`{"jsonrpc":"2.0","method":"ps","params":"x","id":1}`,
		`{"jsonrpc":"2.0","method":"ps","id":{}}`,
		`[{"jsonrpc":"2.0","method":"ps","id":1}]`,
		`"ps"`,
	} {
		wantError(t, post(t, url, body), CodeInvalidRequest, "")
	}
	// A notification runs but gets no answer.
	a = post(t, url, `{"jsonrpc":"2.0","method":"ps"}`)
	if a.Status != http.StatusAccepted || a.Body != "" {
		t.Errorf("notification: %d %q", a.Status, a.Body)
	}
	// …unless the request is unreadable.
	wantError(t, post(t, url, `{"jsonrpc":"2.0"}`), CodeInvalidRequest, "")
	// An explicit null id is a call, answered with a null id.
	a = post(t, url, `{"jsonrpc":"2.0","method":"ps","id":null}`)
	if a.Status != http.StatusOK || a.Error != nil || a.ID != nil {
		t.Errorf("null id: %+v", a)
	}
	if a := post(t, url, "  "); a.Status != http.StatusBadRequest {
		t.Errorf("empty body: %d", a.Status)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
}

func TestBadParams(t *testing.T) {
	_, _, url := server(t)
	wantError(t, callRaw(t, url, "ps", []any{1}), CodeInvalidParams, "Too few or too many parameters")
	wantError(t, callRaw(t, url, "uptime", map[string]any{"x": 1}), CodeInvalidParams, "Too few or too many parameters")
	wantError(t, callRaw(t, url, "log_level", map[string]any{"lvl": 1}), CodeInvalidParams, "Named parameters do not match")
	wantError(t, callRaw(t, url, "log_level", []any{1, 2, 3}), CodeInvalidParams, "Too few or too many parameters")
	// Empty params are no params.
	if call(t, url, "ps", []any{}) == nil || call(t, url, "ps", map[string]any{}) == nil {
		t.Error("empty params refused")
	}
}

func TestAmbiguousPositional(t *testing.T) {
	r := NewRegistry()
	if err := r.Register(Command{Name: "two_ways", Recipes: [][]string{{"a"}, {"b"}},
		Run: func(p map[string]any) (any, error) { return p, nil }}); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(Command{Name: "two_ways", Run: func(map[string]any) (any, error) { return nil, nil }}); err == nil {
		t.Error("duplicate command accepted")
	}
	_, err := r.Call("two_ways", []any{1})
	var e *Error
	if !errors.As(err, &e) || e.Data != detailAmbiguous {
		t.Errorf("ambiguous = %v", err)
	}
	got, err := r.Call("two_ways", map[string]any{"b": 2})
	if err != nil || !reflect.DeepEqual(got, map[string]any{"b": 2}) {
		t.Errorf("named = %v %v", got, err)
	}
}

type codedErr struct{}

func (codedErr) Error() string { return "no such entry" }
func (codedErr) MICode() int   { return 404 }

func TestModuleCommands(t *testing.T) {
	modules.Register(&modules.Info{Name: "mitest_mod", MI: []modules.MICommand{
		{Name: "mitest_echo", Help: "echoes", Run: func(p map[string]any) (any, error) { return p, nil }},
		{Name: "mitest_nil", Run: func(map[string]any) (any, error) { return nil, nil }},
		{Name: "mitest_fail", Run: func(map[string]any) (any, error) { return nil, errors.New("it broke") }},
		{Name: "mitest_404", Run: func(map[string]any) (any, error) { return nil, codedErr{} }},
		{Name: "ps", Run: func(map[string]any) (any, error) { return "shadow", nil }},
	}})
	r, _, url := server(t)
	wantError(t, callRaw(t, url, "mitest_echo", nil), CodeMethodNotFound, "")
	err := r.SetModules("core", "mitest_mod", "not_a_module")
	if err == nil || !strings.Contains(err.Error(), `"ps" is a core command`) {
		t.Errorf("SetModules error = %v", err)
	}
	got := call(t, url, "mitest_echo", map[string]any{"n": 3, "f": 1.5, "s": "x", "a": []any{1}})
	if !reflect.DeepEqual(got, map[string]any{"n": float64(3), "f": 1.5, "s": "x", "a": []any{float64(1)}}) {
		t.Errorf("echo = %v", got)
	}
	// Whole numbers reach the command as int.
	res, _ := r.Call("mitest_echo", map[string]any{"n": 3})
	if res.(map[string]any)["n"] != 3 {
		t.Errorf("in-process call = %#v", res)
	}
	var seen map[string]any
	r.mods["mitest_echo"].Run = func(p map[string]any) (any, error) { seen = p; return "ok", nil }
	post(t, url, `{"jsonrpc":"2.0","method":"mitest_echo","params":{"n":3,"big":1e300,"neg":-2},"id":1}`)
	if seen["n"] != 3 || seen["neg"] != -2 || seen["big"] != 1e300 {
		t.Errorf("params = %#v", seen)
	}
	if got := call(t, url, "mitest_nil", nil); got != "OK" {
		t.Errorf("nil result = %v", got)
	}
	a := callRaw(t, url, "mitest_fail", nil)
	wantError(t, a, 500, "")
	if a.Error.Message != "it broke" {
		t.Errorf("message = %q", a.Error.Message)
	}
	wantError(t, callRaw(t, url, "mitest_404", nil), 404, "")
	if got := call(t, url, "ps", nil); got == "shadow" {
		t.Error("a module command shadowed a core one")
	}
	wantError(t, callRaw(t, url, "mitest_echo", []any{1}), CodeInvalidParams, detailNamedOnly)
	if h := call(t, url, "help", []any{"mitest_echo"}).(map[string]any); h["Exported by"] != "mitest_mod" {
		t.Errorf("help = %v", h)
	}

	// Declared parameter sets make positional calls work.
	DeclareParams("mitest_echo", []string{"a"}, []string{"a", "b"})
	r.SetModules("mitest_mod")
	if got := call(t, url, "mitest_echo", []any{"x", "y"}); !reflect.DeepEqual(got, map[string]any{"a": "x", "b": "y"}) {
		t.Errorf("positional = %v", got)
	}
	if got := call(t, url, "which", []any{"mitest_echo"}); !reflect.DeepEqual(got, []any{[]any{"a"}, []any{"a", "b"}}) {
		t.Errorf("which = %v", got)
	}

	// A generation without the module drops its commands.
	r.SetModules("core")
	wantError(t, callRaw(t, url, "mitest_echo", nil), CodeMethodNotFound, "")
}

func TestErrorString(t *testing.T) {
	e := &Error{Code: 500, Message: "reload failed", Data: []string{"a.cfg:1:1: x", "a.cfg:2:1: y"}}
	if got := e.Error(); got != "500 reload failed:\na.cfg:1:1: x\na.cfg:2:1: y" {
		t.Errorf("Error() = %q", got)
	}
	if got := InvalidParams("Bad PID").Error(); got != "-32602 Invalid params: Bad PID" {
		t.Errorf("Error() = %q", got)
	}
}
