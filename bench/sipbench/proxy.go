package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proxyProc is the proxy under test: sipedge (one process) or Kamailio
// (a main process and its forked workers).
type proxyProc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	pids []int // the process and its descendants, refreshed per step
}

// prepareConfig copies a bench config into dir with the benchmark's ports.
func prepareConfig(src, dir string, o *options) (string, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	s := string(b)
	s = strings.ReplaceAll(s, "127.0.0.1:15060", "127.0.0.1:"+strconv.Itoa(o.proxyPort))
	s = strings.ReplaceAll(s, "127.0.0.1:15080", "127.0.0.1:"+strconv.Itoa(o.uasPort))
	dst := filepath.Join(dir, filepath.Base(src))
	return dst, os.WriteFile(dst, []byte(s), 0o644)
}

// startProxy runs the proxy and waits until its UDP port is bound.
func startProxy(name string, argv []string, env []string, dir string, port int) (*proxyProc, error) {
	if portBound(port) {
		return nil, fmt.Errorf("UDP port %d is already in use (another proxy or test running?)", port)
	}
	p := &proxyProc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		p.cmd.Wait()
		log.Close()
		close(p.done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !portBound(port) {
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited at start (see %s)", name, filepath.Join(dir, name+".log"))
		default:
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s did not bind UDP port %d within 10 s", name, port)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // Kamailio forks its workers after binding
	p.refresh()
	return p, nil
}

func (p *proxyProc) refresh() { p.pids = tree(p.cmd.Process.Pid) }

func (p *proxyProc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop ends the proxy by its PID: SIGTERM (sipedge writes its profiles,
// Kamailio stops its workers), SIGKILL after 15 s.
func (p *proxyProc) stop() {
	if !p.alive() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}
