// Package scripttest runs a script's routes offline against SIP message
// fixtures and records what the script did (log lines, replies, relays), so
// operators can unit-test routing logic before deploying it. It backs the
// `sipedge test` command and the VM's golden tests.
//
// A fixture is a txtar archive:
//
//	src: udp:203.0.113.7:5074        (optional header lines before the files)
//	local: udp:127.0.0.1:5060
//	-- script.cfg --
//	route { if ($ua =~ "friendly") exit; sl_send_reply(404, "Not here"); }
//	-- in.sip --
//	OPTIONS sip:100@127.0.0.1 SIP/2.0
//	...
//	-- want --
//	reply 404 Not here
//	outcome returned 1
//
// A startup_route, when the script has one, runs before the message and its
// outcome is recorded as "startup outcome …".
//
// Message files use LF line ends; they are sent as CRLF. Other files in the
// archive can be included by the script (include_file "x.cfg").
package scripttest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/internal/txtar"
	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/syntax"
	"github.com/sipedge/sipedge/runtime/engine"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/vm"
)

// Recorder is a msgctx.Host that writes down every action as one line.
type Recorder struct {
	Lines []string
	local msgctx.Addr // the fixture's local socket, for Myself
}

func (r *Recorder) Log(m *msgctx.Msg, level int, text string) {
	r.Lines = append(r.Lines, "log "+msgctx.LevelName(level)+" "+strings.TrimRight(text, "\n"))
}

func (r *Recorder) Reply(m *msgctx.Msg, code int, reason string) error {
	line := fmt.Sprintf("reply %d %s", code, reason)
	for _, h := range m.ReplyHeaders {
		line += " | " + h.Name() + ": " + h.Value()
	}
	r.Lines = append(r.Lines, line)
	return nil
}

// Forward records a stateless relay: "forward udp:IP:PORT METHOD R-URI".
func (r *Recorder) Forward(m *msgctx.Msg, dst string) error {
	hop, err := msgctx.NextHop(m, dst)
	if err != nil {
		return err
	}
	r.Lines = append(r.Lines, "forward "+hop.String()+" "+string(m.Req.Method)+" "+m.Req.Recipient.String()+rrSuffix(m, hop))
	return nil
}

// Relay records a stateful relay, one "relay udp:IP:PORT METHOD R-URI"
// line per branch ($ru/$du first, then append_branch branches).
func (r *Recorder) Relay(m *msgctx.Msg, dst string, _ msgctx.RelayFlags) int {
	if m.Req == nil {
		return -1
	}
	hop, err := msgctx.NextHop(m, dst)
	if err != nil {
		r.Lines = append(r.Lines, "relay failed: "+err.Error())
		return -4
	}
	r.Lines = append(r.Lines, "relay "+hop.String()+" "+string(m.Req.Method)+" "+m.Req.Recipient.String()+rrSuffix(m, hop))
	for _, b := range m.Branches {
		bh, err := msgctx.ParseHop(b.Dst)
		if b.Dst == "" {
			bh, err = msgctx.ParseHop(b.URI)
		}
		if err != nil {
			r.Lines = append(r.Lines, "relay failed: "+err.Error())
			continue
		}
		r.Lines = append(r.Lines, "relay "+bh.String()+" "+string(m.Req.Method)+" "+b.URI+rrSuffix(m, bh))
	}
	return 1
}

// rrSuffix shows the Record-Route a relay would carry, as if the request
// left on the socket it arrived on.
func rrSuffix(m *msgctx.Msg, hop msgctx.Hop) string {
	ftag := ""
	if f := m.Req.From(); f != nil {
		ftag, _ = f.Params.Get("tag")
	}
	loc := msgctx.RRAddr{Proto: m.Local.Proto, Host: m.Local.IP, Port: m.Local.Port}
	out := ""
	for _, v := range m.RR.Values(loc, loc, true, ftag, "") {
		out += " | Record-Route: " + v
	}
	return out
}

// TransReply records a stateful reply: "t_reply CODE REASON".
func (r *Recorder) TransReply(m *msgctx.Msg, code int, reason string) int {
	line := fmt.Sprintf("t_reply %d %s", code, reason)
	for _, h := range m.ReplyHeaders {
		line += " | " + h.Name() + ": " + h.Value()
	}
	r.Lines = append(r.Lines, line)
	m.T.Code = code
	return 1
}

// NewTransaction records "t_newtran".
func (r *Recorder) NewTransaction(m *msgctx.Msg) int {
	r.Lines = append(r.Lines, "t_newtran")
	return 1
}

// CheckTransaction: offline there are no transactions.
func (r *Recorder) CheckTransaction(m *msgctx.Msg) int {
	if m.Req != nil && m.Req.IsAck() {
		return -2
	}
	return -1
}

// Myself matches the fixture's local socket.
func (r *Recorder) Myself(host string, port int) bool {
	return r.local.IP != "" && host == r.local.IP && (port == 0 || port == r.local.Port)
}

var (
	_ msgctx.Host    = (*Recorder)(nil)
	_ msgctx.SIPHost = (*Recorder)(nil)
)

// ParseMessage reads a fixture message: LF lines become CRLF and the
// Content-Length is left as written.
func ParseMessage(data []byte) (sip.Message, error) {
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	head, body, _ := bytes.Cut(data, []byte("\n\n"))
	msg := bytes.ReplaceAll(head, []byte("\n"), []byte("\r\n"))
	msg = append(msg, "\r\n\r\n"...)
	msg = append(msg, body...)
	return sip.ParseMessage(msg)
}

// ParseAddr reads "udp:1.2.3.4:5060".
func ParseAddr(s string) (msgctx.Addr, error) {
	proto, rest, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return msgctx.Addr{}, fmt.Errorf("address %q: want proto:ip:port", s)
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return msgctx.Addr{}, fmt.Errorf("address %q: want proto:ip:port", s)
	}
	port, err := strconv.Atoi(rest[i+1:])
	if err != nil {
		return msgctx.Addr{}, fmt.Errorf("address %q: bad port", s)
	}
	return msgctx.Addr{Proto: strings.ToLower(proto), IP: strings.Trim(rest[:i], "[]"), Port: port}, nil
}

// Result is one fixture's outcome.
type Result struct {
	Got  string // the recorded lines
	Want string
}

func (r Result) OK() bool { return r.Got == r.Want }

// Run loads the fixture at name (its bytes in data) and runs it.
func Run(name string, data []byte) (Result, error) {
	a := txtar.Parse(data)
	files := map[string][]byte{}
	for _, f := range a.Files {
		files[f.Name] = f.Data
	}
	want, ok := a.Get("want")
	if !ok {
		return Result{}, fmt.Errorf("%s: no -- want -- section", name)
	}
	got, err := Execute(files, filepath.Dir(name), string(a.Comment))
	return Result{Got: got, Want: string(want)}, err
}

// Execute loads script.cfg from files, runs in.sip through it and returns
// the recorded action lines. header holds "src:" / "local:" lines. A file the
// script includes that is not in the archive is read from dir, so fixtures
// can test a real config (include_file "../edge.cfg").
func Execute(files map[string][]byte, dir, header string) (string, error) {
	read := func(p string) ([]byte, error) {
		if d, ok := files[path.Clean(p)]; ok {
			return d, nil
		}
		if filepath.IsAbs(p) {
			return os.ReadFile(p)
		}
		return os.ReadFile(filepath.Join(dir, p))
	}
	s, err := engine.Load("script.cfg", syntax.Options{ReadFile: read})
	if err != nil {
		return "", err
	}
	s.Activate()
	in, ok := files["in.sip"]
	if !ok {
		return "", errors.New("no -- in.sip -- section")
	}
	msg, err := ParseMessage(in)
	if err != nil {
		return "", fmt.Errorf("in.sip: %v", err)
	}
	rec := &Recorder{}
	m := &msgctx.Msg{}
	m.Reset(s.Image.NumVars(), s.Image.NumAVPs())
	m.Host = rec
	m.Src = msgctx.Addr{Proto: "udp", IP: "127.0.0.1", Port: 5060}
	m.Local = msgctx.Addr{Proto: "udp", IP: "127.0.0.1", Port: 5060}
	for _, line := range strings.Split(header, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *msgctx.Addr
		switch strings.TrimSpace(k) {
		case "src":
			dst = &m.Src
		case "local":
			dst = &m.Local
		default:
			continue
		}
		if *dst, err = ParseAddr(v); err != nil {
			return "", err
		}
	}
	kind := ast.RequestRoute
	switch msg := msg.(type) {
	case *sip.Request:
		m.Req = msg
	case *sip.Response:
		m.Resp = msg
		kind = ast.OnReplyRoute
	}
	m.Kind = kind
	rec.local = m.Local
	s.Image.Myself = func(host string, port int) bool {
		return host == m.Local.IP && (port == 0 || port == m.Local.Port)
	}
	r, ok := s.Prog.Lookup(kind, "")
	if !ok {
		return "", fmt.Errorf("script has no %s block", kind)
	}
	// startup_route runs first, once, as when the proxy starts; its lines
	// are recorded like the message's, its outcome as "startup outcome …".
	if sr, ok := s.Prog.Lookup(ast.StartupRoute, ""); ok {
		sm := &msgctx.Msg{}
		sm.Reset(s.Image.NumVars(), s.Image.NumAVPs())
		sm.Host, sm.Kind, sm.Local, sm.Src = rec, ast.StartupRoute, m.Local, m.Local
		rec.Lines = append(rec.Lines, "startup "+outcomeLine(sm, s.Image.Run(sm, sr)))
	}
	rec.Lines = append(rec.Lines, outcomeLine(m, s.Image.Run(m, r)))
	return strings.Join(rec.Lines, "\n") + "\n", nil
}

func outcomeLine(m *msgctx.Msg, out vm.Outcome) string {
	line := "outcome " + out.String()
	if out == vm.Returned {
		line += " " + strconv.Itoa(m.RetCode)
	}
	return line
}
