package mififo

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/mi"
	"github.com/sipedge/sipedge/runtime/value"
)

type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.lines {
		if strings.Contains(x, s) {
			return true
		}
	}
	return false
}

func setup(t *testing.T) (Config, *logs) {
	t.Helper()
	dir := t.TempDir()
	reg := mi.NewRegistry()
	old, oldLog := Registry, Log
	l := &logs{}
	Registry = reg
	Log = func(format string, args ...any) {
		l.mu.Lock()
		l.lines = append(l.lines, fmt.Sprintf(format, args...))
		l.mu.Unlock()
	}
	t.Cleanup(func() {
		Close()
		Registry, Log = old, oldLog
	})
	cfg := Config{Path: filepath.Join(dir, "sipedge_fifo"), Mode: 0o600, UID: -1, GID: -1, ReplyDir: dir}
	if err := Start(cfg); err != nil {
		t.Fatal(err)
	}
	return cfg, l
}

// reader opens a reply FIFO for reading (blocking until the server opens
// it) and delivers what it reads.
func reader(t *testing.T, cfg Config, name string) (<-chan string, func()) {
	t.Helper()
	path := filepath.Join(cfg.ReplyDir, name)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_RDONLY, 0)
		if err != nil {
			ch <- "open: " + err.Error()
			return
		}
		b, _ := io.ReadAll(f)
		f.Close()
		ch <- string(b)
	}()
	// unblock: open as a writer ourselves so the reader sees EOF
	unblock := func() {
		if fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			syscall.Close(fd)
		}
	}
	return ch, unblock
}

func send(t *testing.T, cfg Config, text string) {
	t.Helper()
	w, err := os.OpenFile(cfg.Path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := io.WriteString(w, text); err != nil {
		t.Fatal(err)
	}
}

func wait(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no reply")
		return ""
	}
}

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("reply %q: %v", s, err)
	}
	return m
}

func TestRequestReply(t *testing.T) {
	cfg, _ := setup(t)
	st, err := os.Stat(cfg.Path)
	if err != nil || st.Mode()&os.ModeNamedPipe == 0 || st.Mode().Perm() != 0o600 {
		t.Fatal(st, err)
	}
	ch, _ := reader(t, cfg, "reply1")
	send(t, cfg, `:reply1:{"jsonrpc":"2.0","method":"version","id":"10"}`)
	r := decode(t, wait(t, ch))
	if r["id"] != "10" || r["jsonrpc"] != "2.0" {
		t.Fatal(r)
	}
	if res, _ := r["result"].(map[string]any); !strings.HasPrefix(fmt.Sprint(res["Server"]), "sipedge") {
		t.Fatal(r)
	}
	// JSON-RPC errors come back as error objects
	ch, _ = reader(t, cfg, "reply2")
	send(t, cfg, `:reply2:{"jsonrpc":"2.0","method":"no_such_cmd","id":2}`)
	r = decode(t, wait(t, ch))
	if e, _ := r["error"].(map[string]any); e["code"] != float64(mi.CodeMethodNotFound) {
		t.Fatal(r)
	}
	// positional params
	ch, _ = reader(t, cfg, "reply3")
	send(t, cfg, `:reply3:{"jsonrpc":"2.0","method":"which","params":["version"],"id":3}`)
	if r = decode(t, wait(t, ch)); r["result"] == nil {
		t.Fatal(r)
	}
}

func TestFraming(t *testing.T) {
	cfg, l := setup(t)
	// two requests in one write, the second split over two writes
	ch1, _ := reader(t, cfg, "a")
	ch2, _ := reader(t, cfg, "b")
	w, err := os.OpenFile(cfg.Path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, `:a:{"jsonrpc":"2.0","method":"pwd","id":1}`+"\n"+`:b:{"jsonrpc":"2.0",`)
	time.Sleep(50 * time.Millisecond)
	io.WriteString(w, `"method":"uptime","id":2}`+"\n")
	w.Close()
	if r := decode(t, wait(t, ch1)); r["id"] != float64(1) {
		t.Fatal(r)
	}
	if r := decode(t, wait(t, ch2)); r["id"] != float64(2) {
		t.Fatal(r)
	}
	// a notification and a request without a reply name get no answer
	ch3, unblock := reader(t, cfg, "c")
	send(t, cfg, `:c:{"jsonrpc":"2.0","method":"pwd"}`)
	send(t, cfg, `::{"jsonrpc":"2.0","method":"pwd","id":5}`)
	// garbage is dropped; the next request works
	send(t, cfg, "garbage\n")
	send(t, cfg, `:x.y:{"jsonrpc":"2.0","method":"pwd","id":6}`)
	ch4, _ := reader(t, cfg, "d")
	send(t, cfg, `:d:{"jsonrpc":"2.0","method":"pwd","id":7}`)
	if r := decode(t, wait(t, ch4)); r["id"] != float64(7) {
		t.Fatal(r)
	}
	unblock()
	if s := wait(t, ch3); s != "" {
		t.Fatalf("notification answered: %q", s)
	}
	if !l.has("must begin with ':'") || !l.has("forbidden reply file name") {
		t.Fatal(l.lines)
	}
	// a client that does not read: the server gives up and keeps serving
	path := filepath.Join(cfg.ReplyDir, "gone")
	syscall.Mkfifo(path, 0o600)
	send(t, cfg, `:gone:{"jsonrpc":"2.0","method":"pwd","id":8}`)
	ch5, _ := reader(t, cfg, "e")
	send(t, cfg, `:e:{"jsonrpc":"2.0","method":"pwd","id":9}`)
	if r := decode(t, wait(t, ch5)); r["id"] != float64(9) {
		t.Fatal(r)
	}
	if !l.has("no client reading") {
		t.Fatal(l.lines)
	}
}

func TestRecreateAndSync(t *testing.T) {
	cfg, _ := setup(t)
	// removed behind our back: the check recreates it
	os.Remove(cfg.Path)
	srv.mu.Lock()
	s := srv.cur
	srv.mu.Unlock()
	s.check()
	var st os.FileInfo
	for i := 0; i < 100; i++ {
		if st, _ = os.Stat(cfg.Path); st != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st == nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Fatal("not recreated")
	}
	ch, _ := reader(t, cfg, "r")
	send(t, cfg, `:r:{"jsonrpc":"2.0","method":"pwd","id":1}`)
	decode(t, wait(t, ch))

	// Sync: a new name moves the FIFO; not loaded removes it
	p := modules.Params{
		"fifo_name": {value.S(cfg.Path + "2")}, "fifo_mode": {value.I(0o660)},
		"reply_dir": {value.S(cfg.ReplyDir)}, "pretty_printing": {value.I(1)},
	}
	if err := Sync(map[string]modules.Params{Name: p}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cfg.Path); !os.IsNotExist(err) {
		t.Fatal("old fifo left behind", err)
	}
	cfg.Path += "2"
	if Path() != cfg.Path {
		t.Fatal(Path())
	}
	ch, _ = reader(t, cfg, "p")
	send(t, cfg, `:p:{"jsonrpc":"2.0","method":"pwd","id":1}`)
	if s := wait(t, ch); !strings.Contains(s, "\n    ") {
		t.Fatalf("not pretty: %q", s)
	}
	if err := Sync(map[string]modules.Params{Name: p}); err != nil { // unchanged: no-op
		t.Fatal(err)
	}
	if err := Sync(map[string]modules.Params{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cfg.Path); !os.IsNotExist(err) || Path() != "" {
		t.Fatal("fifo not removed", err)
	}
	// a regular file in the way is not deleted
	os.WriteFile(cfg.Path, []byte("keep"), 0o600)
	if err := Start(cfg); err == nil || !strings.Contains(err.Error(), "not a FIFO") {
		t.Fatal(err)
	}
}

func TestReadConfig(t *testing.T) {
	dir := t.TempDir()
	base := func() modules.Params {
		return modules.Params{"fifo_name": {value.S(filepath.Join(dir, "f"))}, "fifo_mode": {value.I(0o660)}, "reply_dir": {value.S(dir)}}
	}
	c, err := ReadConfig(base())
	if err != nil || c.Mode != 0o660 || c.UID != -1 || c.GID != -1 {
		t.Fatal(c, err)
	}
	p := base()
	p["fifo_mode"] = []value.Value{value.I(0)}
	if c, _ := ReadConfig(p); c.Mode != 0o600 {
		t.Fatal(c.Mode)
	}
	for name, v := range map[string]value.Value{
		"fifo_name": value.S(""), "reply_dir": value.S(filepath.Join(dir, "nope")),
		"fifo_mode": value.I(0o1777), "fifo_user": value.S("no-such-user-sipedge"),
	} {
		p := base()
		p[name] = []value.Value{v}
		if _, err := ReadConfig(p); err == nil {
			t.Errorf("%s=%v accepted", name, v)
		}
	}
	p = base()
	p["fifo_user"] = []value.Value{value.S("0")}
	p["fifo_group"] = []value.Value{value.S("0")}
	if c, err := ReadConfig(p); err != nil || c.UID != 0 || c.GID != 0 {
		t.Fatal(c, err)
	}
}
