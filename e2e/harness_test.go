// Package e2e drives a sipedge proxy (started in-process on free ports)
// with SIPp call generators: SIPp UAC → sipedge → SIPp UAS. Pass/fail is
// SIPp's exit code (0: every call succeeded) plus the proxy's counters.
// The tests skip when `sipp` (Debian package sip-tester) is not on PATH.
package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/sipedge/sipedge/modules/all"
	"github.com/sipedge/sipedge/runtime/sipstack"
)

// repoRoot is the repository root, computed from this file's location.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func scenario(name string) string {
	return filepath.Join(repoRoot(), "testdata", "sipp", name)
}

func needSipp(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("sipp"); err != nil {
		t.Skip("sipp is not on PATH (install the Debian package sip-tester)")
	}
}

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

var portMu sync.Mutex
var handedOut = map[int]bool{}

// freePort finds a port free for both UDP and TCP on 127.0.0.1, never
// handing the same one out twice in a test binary.
func freePort(t *testing.T) int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for range 100 {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		u.Close()
		if err != nil || handedOut[port] {
			if l != nil {
				l.Close()
			}
			continue
		}
		l.Close()
		handedOut[port] = true
		return port
	}
	t.Fatal("no free port")
	return 0
}

// proxy is a sipedge server under test.
type proxy struct {
	srv  *sipstack.Server
	port int
	path string
	logs *syncBuffer
}

// startProxy serves script (written to a temp file) and stops it at the
// end of the test, printing its log if the test failed.
func startProxy(t *testing.T, port int, script string) *proxy {
	t.Helper()
	path := filepath.Join(t.TempDir(), "proxy.cfg")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv, err := sipstack.New(sipstack.Options{Script: path, Log: logs, UDPReadBuffer: 4 << 20})
	if err != nil {
		t.Fatalf("starting the proxy: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proxy{srv: srv, port: port, path: path, logs: logs}
	t.Cleanup(func() {
		srv.Close()
		if t.Failed() {
			t.Logf("proxy log:\n%s", tail(logs.String(), 60))
		}
	})
	return p
}

// proxyScript is scripts/proxy.cfg with its ports moved to the test's.
func proxyScript(t *testing.T, port, uas1, uas2 int) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(), "scripts", "proxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	s = strings.ReplaceAll(s, "127.0.0.1:5060", fmt.Sprintf("127.0.0.1:%d", port))
	s = strings.ReplaceAll(s, "127.0.0.1:5080", fmt.Sprintf("127.0.0.1:%d", uas1))
	s = strings.ReplaceAll(s, "127.0.0.1:5082", fmt.Sprintf("127.0.0.1:%d", uas2))
	return s
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("… %d lines before", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// sipp is one SIPp process.
type sipp struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// startSipp runs sipp with args (plus -nostdin) in a temp dir; it is killed
// by PID at the end of the test if still running.
func startSipp(t *testing.T, name string, args ...string) *sipp {
	t.Helper()
	p := &sipp{name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command("sipp", append(args, "-nostdin")...)
	p.cmd.Dir = t.TempDir()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting sipp %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			t.Logf("sipp %s (%s) output:\n%s", name, strings.Join(args, " "), tail(p.out.String(), 40))
			for _, f := range globErrors(p.cmd.Dir) {
				t.Logf("sipp %s %s:\n%s", name, filepath.Base(f), tail(readFile(f), 40))
			}
		}
	})
	return p
}

func globErrors(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "*errors.log"))
	return m
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// wait returns sipp's exit code, killing it after d.
func (p *sipp) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		t.Errorf("sipp %s did not finish within %v", p.name, d)
		return -1
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// counter reads a line of SIPp's final statistics screen, e.g.
// "Successful call" → its cumulative value.
func (p *sipp) counter(name string) string {
	for _, line := range strings.Split(p.out.String(), "\n") {
		if strings.Contains(line, name) {
			f := strings.Split(line, "|")
			if len(f) >= 3 {
				return strings.TrimSpace(f[2])
			}
		}
	}
	return "?"
}

// uas starts a SIPp UAS scenario on port for calls calls.
func uas(t *testing.T, name, xml string, port, calls int, extra ...string) *sipp {
	args := []string{"-sf", scenario(xml), "-i", "127.0.0.1", "-p", fmt.Sprint(port),
		"-m", fmt.Sprint(calls), "-timeout", "60s", "-trace_err", "-buff_size", "1048576"}
	p := startSipp(t, name, append(args, extra...)...)
	time.Sleep(300 * time.Millisecond) // let it bind
	return p
}

// uac runs a SIPp UAC scenario against the proxy.
func uac(t *testing.T, xml string, proxyPort, port, calls, rate int, extra ...string) *sipp {
	args := []string{"-sf", scenario(xml), "-s", "bob", fmt.Sprintf("127.0.0.1:%d", proxyPort),
		"-i", "127.0.0.1", "-p", fmt.Sprint(port), "-m", fmt.Sprint(calls), "-r", fmt.Sprint(rate), "-rp", "1000",
		"-timeout", "60s", "-timeout_error", "-recv_timeout", "10000", "-trace_err", "-buff_size", "1048576"}
	return startSipp(t, "uac", append(args, extra...)...)
}

// expectCalls waits for the UAC and checks every call succeeded.
func expectCalls(t *testing.T, c *sipp, calls int) {
	t.Helper()
	if code := c.wait(t, 90*time.Second); code != 0 {
		t.Fatalf("sipp uac exit %d (successful %s, failed %s of %d calls)", code, c.counter("Successful call"), c.counter("Failed call"), calls)
	}
	if got := c.counter("Successful call"); got != fmt.Sprint(calls) {
		t.Fatalf("sipp uac: %s successful calls, want %d", got, calls)
	}
}
