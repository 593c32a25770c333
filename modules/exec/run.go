package exec

import (
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
)

// Shell is the shell commands run through, as in OpenSIPS.
var Shell = "/bin/sh"

// killGrace is how long a process gets after SIGTERM (time_to_kill) before
// sipedge sends SIGKILL.
const killGrace = 2 * time.Second

var lookupEnv = os.LookupEnv

// job is one command to run.
type job struct {
	command string
	input   string   // written to stdin, which is then closed ("": /dev/null)
	env     []string // added to sipedge's environment
	wantOut bool     // capture stdout (else /dev/null)
	wantErr bool     // capture stderr (else /dev/null)
	wait    bool     // wait for the exit status
	cfg     *config
}

type result struct {
	out, err []byte
	exitCode int // when wait
}

// run starts the command and returns once the captured streams reach EOF
// (or at once when nothing is captured and the exit status is not
// wanted). The process is reaped in the background; time_to_kill applies
// to it whether or not run still waits.
func (j *job) run() (result, error) {
	var res result
	cmd := osexec.Command(Shell, "-c", j.command)
	if len(j.env) > 0 {
		cmd.Env = append(os.Environ(), j.env...)
	}
	// Its own process group, so time_to_kill and timeout reach the
	// command's children too, not only the shell.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	var childEnds []*os.File
	closeAll := func(fs ...*os.File) {
		for _, f := range fs {
			if f != nil {
				f.Close()
			}
		}
	}
	var stdinW, outR, errR *os.File
	if j.input != "" {
		r, w, err := os.Pipe()
		if err != nil {
			return res, err
		}
		cmd.Stdin, stdinW = r, w
		childEnds = append(childEnds, r)
	}
	if j.wantOut {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll(append(childEnds, stdinW)...)
			return res, err
		}
		cmd.Stdout, outR = w, r
		childEnds = append(childEnds, w)
	}
	if j.wantErr {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll(append(childEnds, stdinW, outR)...)
			return res, err
		}
		cmd.Stderr, errR = w, r
		childEnds = append(childEnds, w)
	}
	if err := cmd.Start(); err != nil {
		closeAll(append(childEnds, stdinW, outR, errR)...)
		return res, err
	}
	closeAll(childEnds...)
	pid := cmd.Process.Pid
	done := make(chan struct{})
	var exitCode int
	go func() {
		err := cmd.Wait()
		exitCode = 0
		var ee *osexec.ExitError
		if errors.As(err, &ee) {
			exitCode = ee.ExitCode()
		} else if err != nil {
			exitCode = -1
		}
		close(done)
	}()
	if ttk := j.cfg.timeToKill; ttk > 0 {
		go func() {
			t := time.NewTimer(ttk)
			defer t.Stop()
			select {
			case <-done:
				return
			case <-t.C:
			}
			syscall.Kill(-pid, syscall.SIGTERM)
			g := time.NewTimer(killGrace)
			defer g.Stop()
			select {
			case <-done:
			case <-g.C:
				syscall.Kill(-pid, syscall.SIGKILL)
			}
		}()
	}
	var deadline time.Time
	if j.cfg.timeout > 0 {
		deadline = time.Now().Add(j.cfg.timeout)
	}
	fail := func(err error) (result, error) {
		closeAll(stdinW, outR, errR)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			syscall.Kill(-pid, syscall.SIGKILL)
			err = errTimeout
		}
		return res, err
	}

	// Read while writing, so a command that answers before it has read
	// all its input cannot deadlock us (OpenSIPS writes first).
	type readRes struct {
		data []byte
		err  error
	}
	read := func(f *os.File, ch chan<- readRes) {
		if !deadline.IsZero() {
			f.SetReadDeadline(deadline)
		}
		data, err := readCapped(f, MaxOutput)
		f.Close()
		ch <- readRes{data, err}
	}
	var outCh, errCh chan readRes
	if outR != nil {
		outCh = make(chan readRes, 1)
		go read(outR, outCh)
	}
	if errR != nil {
		errCh = make(chan readRes, 1)
		go read(errR, errCh)
	}
	outR, errR = nil, nil // closed by the readers
	if stdinW != nil {
		if !deadline.IsZero() {
			stdinW.SetWriteDeadline(deadline)
		}
		_, err := io.WriteString(stdinW, j.input)
		stdinW.Close()
		stdinW = nil
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return fail(err)
			}
			return fail(fmt.Errorf("writing the input: %w", err))
		}
	}
	var firstErr error
	if outCh != nil {
		r := <-outCh
		res.out = r.data
		firstErr = r.err
	}
	if errCh != nil {
		r := <-errCh
		res.err = r.data
		if firstErr == nil {
			firstErr = r.err
		}
	}
	if firstErr != nil {
		return fail(firstErr)
	}
	if j.wait {
		var timer <-chan time.Time
		if !deadline.IsZero() {
			t := time.NewTimer(time.Until(deadline))
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-done:
			res.exitCode = exitCode
		case <-timer:
			return fail(os.ErrDeadlineExceeded)
		}
	}
	return res, nil
}

// readCapped reads f to EOF, keeping at most max bytes; past the cap it
// stops reading (the command then gets EPIPE/SIGPIPE, as with OpenSIPS).
func readCapped(f *os.File, max int) ([]byte, error) {
	var buf []byte
	chunk := make([]byte, 4096)
	for {
		n, err := f.Read(chunk)
		if n > 0 {
			if len(buf)+n > max {
				buf = append(buf, chunk[:max-len(buf)]...)
				return buf, nil
			}
			buf = append(buf, chunk[:n]...)
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// sipVars are the environment variables setvars adds: SIP_HF_<NAME> for
// every header (several of one name joined with ","), and SIP_SRCIP,
// SIP_RURI, SIP_USER, SIP_ORURI, SIP_OUSER, SIP_TID, SIP_DID.
func sipVars(m *msgctx.Msg) []string {
	var order []string
	vals := map[string][]string{}
	for _, h := range m.Headers() {
		name := envName(h.Name())
		if _, seen := vals[name]; !seen {
			order = append(order, name)
		}
		vals[name] = append(vals[name], h.Value())
	}
	out := make([]string, 0, len(order)+7)
	for _, n := range order {
		out = append(out, "SIP_HF_"+n+"="+strings.Join(vals[n], ","))
	}
	out = append(out, "SIP_SRCIP="+m.Src.IP)
	if m.Req != nil {
		out = append(out,
			"SIP_RURI="+pv(m, "ru"), "SIP_USER="+pv(m, "rU"),
			"SIP_ORURI="+pv(m, "ou"), "SIP_OUSER="+pv(m, "oU"))
	}
	out = append(out, "SIP_TID="+firstBranch(m), "SIP_DID="+pv(m, "tt"))
	return out
}

// firstBranch is the branch of the top Via (sipedge's SIP_TID; OpenSIPS
// uses an MD5 of the transaction's identifying values).
func firstBranch(m *msgctx.Msg) string {
	for _, h := range m.Headers() {
		if strings.EqualFold(h.Name(), "Via") || h.Name() == "v" {
			v := h.Value()
			for _, p := range strings.Split(v, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(k, "branch") {
					if i := strings.IndexByte(val, ','); i >= 0 {
						val = val[:i]
					}
					return strings.TrimSpace(val)
				}
			}
			return ""
		}
	}
	return ""
}

// envName is a header name as OpenSIPS's exec puts it in a variable name:
// upper case, symbols as '_'; compact forms become their full name.
func envName(h string) string {
	if full, ok := compact[strings.ToLower(h)]; ok {
		h = full
	}
	b := []byte(strings.ToUpper(h))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

var compact = map[string]string{
	"v": "Via", "c": "Content-Type", "f": "From", "i": "Call-ID", "k": "Supported",
	"l": "Content-Length", "m": "Contact", "t": "To", "o": "Event",
}

// pv reads a core pvar without a name ($ru, $tt …) as a string.
func pv(m *msgctx.Msg, name string) string {
	s := pvar.Lookup(name)
	if s == nil {
		return ""
	}
	return s.Get(m, nil, pvar.Index{}).AsString()
}
