package restclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipedge/sipedge/internal/modtest"
	"github.com/sipedge/sipedge/modules"
	_ "github.com/sipedge/sipedge/modules/core"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/scripttest"
	"github.com/sipedge/sipedge/runtime/value"
)

func setConfig(t *testing.T, kv ...any) {
	t.Helper()
	old := cur.Load()
	t.Cleanup(func() { cur.Store(old) })
	modtest.Configure(t, Name, kv...)
}

func call(t *testing.T, m *msgctx.Msg, name string, vals ...any) int {
	t.Helper()
	return modtest.Call(t, Name, m, name, vals...)
}

// callAt calls with absent arguments as nil.
func callAt(t *testing.T, m *msgctx.Msg, name string, vals ...any) int {
	t.Helper()
	f := modtest.Fn(t, Name, name)
	a := &modules.Args{Vals: make([]value.Value, len(f.Args)), Refs: make([]*pvar.Ref, len(f.Args)), Given: make([]bool, len(f.Args))}
	for i, v := range vals {
		switch v := v.(type) {
		case nil:
			continue
		case string:
			a.Vals[i] = value.S(v)
		case *pvar.Ref:
			a.Refs[i] = v
		}
		a.Given[i] = true
	}
	return f.Call(m, a)
}

type seen struct {
	method, ctype, body, accept string
	ua                          []string
	extra                       string
}

func server(t *testing.T) (*httptest.Server, chan seen) {
	ch := make(chan seen, 10)
	mux := http.NewServeMux()
	mux.HandleFunc("/credit", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- seen{method: r.Method, ctype: r.Header.Get("Content-Type"), body: string(b),
			accept: r.Header.Get("Accept"), ua: r.Header.Values("User-Agent"), extra: r.Header.Get("X-Token")}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "  {\"account\":%q,\"credit\":12}\n\n", r.URL.Query().Get("account"))
	})
	mux.HandleFunc("/missing", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such account", http.StatusNotFound)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/credit", http.StatusFound)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 4096))
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.Header.Get("Content-Type"), b)
	})
	srv := httptest.NewServer(mux) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return srv, ch
}

func TestGet(t *testing.T) {
	setConfig(t)
	srv, ch := server(t)
	m, h := modtest.NewMsg(t, "")
	body, ct, code := &modtest.Recorder{Name: "body"}, &modtest.Recorder{Name: "ct"}, &modtest.Recorder{Name: "code"}
	if rc := call(t, m, "rest_append_hf", "X-Token: abc"); rc != 1 {
		t.Fatal(rc)
	}
	if rc := call(t, m, "rest_get", srv.URL+"/credit?account=alice", body.Ref(), ct.Ref(), code.Ref()); rc != 1 {
		t.Fatal(rc, h)
	}
	if body.Vals[0].S != `{"account":"alice","credit":12}` {
		t.Fatalf("body %q (not trimmed?)", body.Vals[0].S)
	}
	if ct.Vals[0].S != "application/json" || code.Vals[0].I != 200 || !code.Vals[0].IsInt() {
		t.Fatal(ct.Vals, code.Vals)
	}
	s := <-ch
	if s.method != "GET" || s.accept != "*/*" || len(s.ua) != 0 || s.extra != "abc" {
		t.Fatalf("%+v", s)
	}
	// appended headers go with the next request only
	call(t, m, "rest_get", srv.URL+"/credit", body.Ref())
	if s := <-ch; s.extra != "" {
		t.Fatalf("header sent twice: %+v", s)
	}
	// an HTTP error is still a transfer that worked
	if rc := call(t, m, "rest_get", srv.URL+"/missing", body.Ref(), ct.Ref(), code.Ref()); rc != 1 {
		t.Fatal(rc)
	}
	if code.Vals[len(code.Vals)-1].I != 404 || body.Vals[len(body.Vals)-1].S != "no such account" {
		t.Fatal(code.Vals, body.Vals)
	}
	// redirects are not followed
	if rc := call(t, m, "rest_get", srv.URL+"/moved", body.Ref(), ct.Ref(), code.Ref()); rc != 1 || code.Vals[len(code.Vals)-1].I != 302 {
		t.Fatal(rc, code.Vals)
	}
}

func TestPostPut(t *testing.T) {
	setConfig(t)
	srv, _ := server(t)
	m, _ := modtest.NewMsg(t, "")
	body := &modtest.Recorder{Name: "body"}
	if rc := callAt(t, m, "rest_post", srv.URL+"/echo", "user=bob", nil, body.Ref()); rc != 1 {
		t.Fatal(rc)
	}
	if got := body.Vals[0].S; got != "POST "+DefaultCtype+" user=bob" {
		t.Fatalf("%q", got)
	}
	if rc := call(t, m, "rest_post", srv.URL+"/echo", `{"a":1}`, "application/json", body.Ref()); rc != 1 {
		t.Fatal(rc)
	}
	if got := body.Vals[1].S; got != `POST application/json {"a":1}` {
		t.Fatalf("%q", got)
	}
	if rc := call(t, m, "rest_put", srv.URL+"/echo", "x", "text/plain", body.Ref()); rc != 1 {
		t.Fatal(rc)
	}
	if got := body.Vals[2].S; got != "PUT text/plain x" {
		t.Fatalf("%q", got)
	}
}

func TestErrors(t *testing.T) {
	setConfig(t, "curl_timeout", 1, "max_transfer_size", 1)
	srv, _ := server(t)
	m, h := modtest.NewMsg(t, "")
	body, code := &modtest.Recorder{Name: "body"}, &modtest.Recorder{Name: "code"}
	// connection refused: a port nobody listens on
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if rc := call(t, m, "rest_get", "http://"+addr+"/", body.Ref(), (&modtest.Recorder{Name: "ct"}).Ref(), code.Ref()); rc != RetConnRefused {
		t.Fatal(rc, h)
	}
	if len(body.Vals) != 0 || code.Vals[0].I != 0 {
		t.Fatal(body.Vals, code.Vals)
	}
	// transfer timeout: 200 and the partial body
	start := time.Now()
	if rc := call(t, m, "rest_get", srv.URL+"/slow", body.Ref(), (&modtest.Recorder{Name: "ct"}).Ref(), code.Ref()); rc != RetTransferTimeout {
		t.Fatal(rc, h)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatal(d)
	}
	if code.Vals[1].I != 200 || body.Vals[0].S != "partial" {
		t.Fatal(code.Vals, body.Vals)
	}
	// max_transfer_size (KB)
	if rc := call(t, m, "rest_get", srv.URL+"/big", body.Ref()); rc != RetInternal {
		t.Fatal(rc)
	}
	// bad URL / scheme
	if rc := call(t, m, "rest_get", "ftp://127.0.0.1/x", body.Ref()); rc != RetInternal {
		t.Fatal(rc)
	}
	if !h.HasLog(msgctx.LErr, "rest_get") {
		t.Fatal(h)
	}
	// modparams
	if _, err := modules.Lookup(Name).Configure(modules.Params{"connection_timeout": {value.I(0)}, "curl_timeout": {value.I(1)}}); err == nil {
		t.Fatal("connection_timeout 0 accepted")
	}
	if _, err := modules.Lookup(Name).Configure(modules.Params{"connection_timeout": {value.I(1)}, "curl_timeout": {value.I(1)}, "ssl_capath": {value.S(t.TempDir())}}); err == nil {
		t.Fatal("empty ssl_capath accepted")
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string { return "i/o timeout" }
func (timeoutErr) Timeout() bool { return true }

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err       error
		connected bool
		want      int
	}{
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, false, RetConnRefused},
		{&net.OpError{Op: "dial", Err: timeoutErr{}}, false, RetConnTimeout},
		{context.DeadlineExceeded, false, RetConnTimeout},
		{context.DeadlineExceeded, true, RetTransferTimeout},
		{&net.DNSError{Err: "no such host", Name: "x.invalid"}, false, RetInternal},
		{errors.New("boom"), true, RetInternal},
	} {
		if got := classify(c.err, c.connected); got != c.want {
			t.Errorf("classify(%v, %v) = %d, want %d", c.err, c.connected, got, c.want)
		}
	}
}

func TestHeaderAndEscape(t *testing.T) {
	m, _ := modtest.NewMsg(t, "")
	if rc := callAt(t, m, "rest_append_hf", "no colon"); rc != -1 {
		t.Fatal(rc)
	}
	f := modtest.Fn(t, Name, "rest_append_hf")
	if _, err := modtest.Fixup(t, f, modtest.CS("Bad Name: x")); err == nil {
		t.Fatal("bad header accepted")
	}
	for in, want := range map[string]string{"a b&c=d/é~-._": "a%20b%26c%3Dd%2F%C3%A9~-._", "": ""} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
		if got := Unescape(want); got != in {
			t.Errorf("Unescape(%q) = %q", want, got)
		}
	}
	if got := Unescape("100%+x%4"); got != "100%+x%4" {
		t.Fatal(got)
	}
}

func TestScript(t *testing.T) {
	srv, _ := server(t)
	fixture := `-- script.cfg --
loadmodule "rest_client.so"
modparam("rest_client", "connection_timeout", 5)
route {
    $var(rc) = rest_get("` + srv.URL + `/credit?account=$(fU{rest.escape})", "$var(credit)", "$var(ct)", "$var(rcode)");
    if ($var(rc) < 0) {
        xlog("L_ERR", "rest_get failed: $var(rc)\n");
        exit;
    }
    xlog("L_INFO", "$var(rcode) $var(ct) $var(credit)\n");
    if (rest_post("` + srv.URL + `/echo", "$fU", , "$var(body)"))
        xlog("L_INFO", "post: $var(body)\n");
    xlog("L_INFO", "$(var(body){rest.escape}) $(var(body){rest.escape}{rest.unescape})\n");
    exit;
}
-- in.sip --
OPTIONS sip:100@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.11:5060;branch=z9hG4bK-rest1
From: <sip:bob+1@192.0.2.11>;tag=1
To: <sip:100@192.0.2.1>
Call-ID: rest-1
CSeq: 1 OPTIONS
Max-Forwards: 70
Content-Length: 0

-- want --
log INFO 200 application/json {"account":"bob+1","credit":12}
log INFO post: POST application/x-www-form-urlencoded bob+1
log INFO POST%20application%2Fx-www-form-urlencoded%20bob%2B1 POST application/x-www-form-urlencoded bob+1
outcome exited
`
	old := cur.Load()
	t.Cleanup(func() { cur.Store(old) })
	res, err := scripttest.Run(filepath.Join(t.TempDir(), "rest.txtar"), []byte(fixture))
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("got\n%swant\n%s", res.Got, res.Want)
	}
}
