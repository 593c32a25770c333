package dialog

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/syntax"
	_ "github.com/sipedge/sipedge/modules/cachedb_local"
	_ "github.com/sipedge/sipedge/modules/core"
	_ "github.com/sipedge/sipedge/modules/sipmsgops"
	_ "github.com/sipedge/sipedge/modules/sl"
	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/engine"
	"github.com/sipedge/sipedge/runtime/events"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/scripttest"
)

// sim drives a script through the calls of a test the way the SIP runtime
// does (request hooks, request route, route-done hooks; reply routes, then
// the response-out hooks), with scripttest's recorder as the host.
type sim struct {
	t   testing.TB
	s   *engine.Script
	rec *scripttest.Recorder
}

func newSim(t testing.TB, script string) *sim {
	t.Helper()
	s, err := engine.Load("script.cfg", syntax.Options{ReadFile: func(string) ([]byte, error) { return []byte(script), nil }})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	s.Activate()
	return &sim{t: t, s: s, rec: &scripttest.Recorder{}}
}

func (s *sim) msg(kind ast.RouteKind) *msgctx.Msg {
	m := &msgctx.Msg{}
	m.Reset(s.s.Image.NumVars(), s.s.Image.NumAVPs())
	m.Kind = kind
	m.Host = s.rec
	m.Src = msgctx.Addr{Proto: "udp", IP: "10.0.0.1", Port: 5060}
	m.Local = msgctx.Addr{Proto: "udp", IP: "127.0.0.1", Port: 5060}
	return m
}

func parse(t testing.TB, text string) sip.Message {
	t.Helper()
	msg, err := scripttest.ParseMessage([]byte(text))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, text)
	}
	return msg
}

// call is one INVITE transaction through the simulator.
type call struct {
	s   *sim
	req *sip.Request
	mod map[string]any
	m   *msgctx.Msg
	// relayed tells whether the request route relayed or replied statefully
	relayed bool
}

// request runs a request through the main route.
func (s *sim) request(text string) *call {
	s.t.Helper()
	req := parse(s.t, text).(*sip.Request)
	m := s.msg(ast.RequestRoute)
	m.Req = req
	n := len(s.rec.Lines)
	tm.RunRequestHooks(m)
	r, _ := s.s.Prog.Lookup(ast.RequestRoute, "")
	s.s.Image.Run(m, r)
	stateful := false
	for _, l := range s.rec.Lines[n:] {
		if strings.HasPrefix(l, "relay ") || strings.HasPrefix(l, "t_reply") || l == "t_newtran" {
			stateful = true
		}
	}
	tm.RunRouteDoneHooks(m, stateful)
	return &call{s: s, req: req, mod: tm.CopyMod(m.Mod), m: m, relayed: stateful}
}

// reply delivers a downstream reply: the armed onreply route, then the
// response-out hooks (as sipstack relays it upstream).
func (c *call) reply(code int, toTag string) *msgctx.Msg {
	c.s.t.Helper()
	res := sip.NewResponseFromRequest(c.req, code, "R", nil)
	if toTag != "" {
		res.To().Params.Add("tag", toTag)
	}
	res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "callee", Host: "10.0.0.9", Port: 5080}})
	m := c.s.msg(ast.OnReplyRoute)
	m.Resp = res
	m.Mod = tm.CopyMod(c.mod)
	m.OnReply = c.m.OnReply
	if c.m.OnReply > 0 {
		c.s.s.Image.Run(m, c.m.OnReply-1)
	}
	tm.RunResponseOutHooks(c.mod, c.req, code, res)
	return m
}

func invite(callID, fromTag, user string) string {
	return fmt.Sprintf("INVITE sip:%s@127.0.0.1 SIP/2.0\n"+
		"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK%s\n"+
		"From: <sip:1001@example.com>;tag=%s\n"+
		"To: <sip:%s@127.0.0.1>\n"+
		"Call-ID: %s\n"+
		"CSeq: 1 INVITE\n"+
		"Contact: <sip:1001@10.0.0.1:5060>\n"+
		"Max-Forwards: 70\n"+
		"Content-Length: 0\n\n", user, callID, fromTag, user, callID)
}

func inDialog(method, callID, fromTag, toTag string, cseq int) string {
	return fmt.Sprintf("%s sip:1001@10.0.0.1:5060 SIP/2.0\n"+
		"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK%s%s\n"+
		"From: <sip:1001@example.com>;tag=%s\n"+
		"To: <sip:x@127.0.0.1>;tag=%s\n"+
		"Call-ID: %s\n"+
		"CSeq: %d %s\n"+
		"Max-Forwards: 70\n"+
		"Content-Length: 0\n\n", method, callID, method, fromTag, toTag, callID, cseq, method)
}

// eventLog collects raised events.
type eventLog struct {
	mu  sync.Mutex
	evs []events.Event
}

func watchEvents(t testing.TB) *eventLog {
	l := &eventLog{}
	cancel := events.Subscribe(func(e events.Event) {
		l.mu.Lock()
		l.evs = append(l.evs, e)
		l.mu.Unlock()
	})
	t.Cleanup(cancel)
	return l
}

func (l *eventLog) named(name string) []events.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []events.Event
	for _, e := range l.evs {
		if e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// fresh drops every dialog before a test.
func fresh(t testing.TB) {
	ForgetAll()
	t.Cleanup(ForgetAll)
}

// fakeUAC records the requests the module sends.
type fakeUAC struct {
	mu   sync.Mutex
	reqs []*sip.Request
}

func (f *fakeUAC) SendRequest(req *sip.Request, _ string) error {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	return nil
}
