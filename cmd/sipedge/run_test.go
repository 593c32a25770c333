package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a bytes.Buffer safe to write from the proxy while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunWithMI runs the proxy as `sipedge run` does, then drives it with
// the `sipedge mi` client: a good reload, a broken one (refused with its
// position, the old script still live), and statistics.
func TestRunWithMI(t *testing.T) {
	dir := t.TempDir()
	sipPort, miPort := freeTCPPort(t), freeTCPPort(t)
	cfg := filepath.Join(dir, "proxy.cfg")
	script := fmt.Sprintf(`socket = udp:127.0.0.1:%d
loadmodule "httpd.so"
loadmodule "mi_http.so"
modparam("httpd", "ip", "127.0.0.1")
modparam("httpd", "port", %d)
route { exit; }
`, sipPort, miPort)
	if err := os.WriteFile(cfg, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan os.Signal, 1)
	var logs syncBuffer
	done := make(chan int)
	go func() { done <- serve([]string{"-f", cfg}, &logs, &logs, sigs) }()
	defer func() {
		sigs <- syscall.SIGTERM
		if code := <-done; code != 0 {
			t.Errorf("proxy exit %d; log:\n%s", code, logs.String())
		}
	}()
	url := fmt.Sprintf("http://127.0.0.1:%d/mi", miPort)
	mi := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"mi", "-url", url}, args...), &out, &errb)
		return code, out.String() + errb.String()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if code, _ := mi("uptime"); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("MI never answered; log:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, out := mi("reload_routes"); code != 0 {
		t.Fatalf("reload_routes: exit %d: %s", code, out)
	}
	broken := strings.Replace(script, "route { exit; }", "route {\n  t_relayy();\n}", 1)
	os.WriteFile(cfg, []byte(broken), 0o644)
	code, out := mi("reload_routes")
	if code == 0 || !strings.Contains(out, cfg+":7:3") {
		t.Fatalf("broken reload: exit %d, want a positioned error: %s", code, out)
	}
	if code, out := mi("get_statistics", "sipedge:"); code != 0 || !strings.Contains(out, "reloads_failed") {
		t.Fatalf("get_statistics: exit %d: %s", code, out)
	}
}
