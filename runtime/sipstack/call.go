package sipstack

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/modules/core"
	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/vm"
)

// call is one script run: the message state plus what the SIP runtime
// needs to carry out the script's requests. It is the run's msgctx.Host.
type call struct {
	s    *Server
	gen  *generation
	m    msgctx.Msg
	stx  *sip.ServerTx // the request's server transaction (request route)
	sock *Socket       // the socket the message came in on
	t    *transaction  // the transaction the run belongs to or created
	br   *branch       // the branch, in branch and reply routes
	// what the run did
	stxFinal  *sip.Response // the final reply sent through stx (slcache.go)
	replied   bool          // a reply went upstream (stateless or stateful)
	forwarded bool          // the request was forwarded statelessly
}

var callPool = sync.Pool{New: func() any { return new(call) }}

func (s *Server) newCall(gen *generation, kind ast.RouteKind) *call {
	c := callPool.Get().(*call)
	c.s, c.gen = s, gen
	c.stx, c.sock, c.t, c.br, c.stxFinal = nil, nil, nil, nil, nil
	c.replied, c.forwarded = false, false
	c.m.Reset(gen.nvars, gen.navps)
	c.m.Kind = kind
	c.m.Host = c
	c.m.T.FrTimeout = gen.tm.FrTimeout
	c.m.T.FrInvTimeout = gen.tm.FrInvTimeout
	return c
}

func (s *Server) putCall(c *call) {
	c.m.Req, c.m.Resp, c.m.Host, c.m.Mod = nil, nil, nil, nil
	c.stx, c.t, c.br, c.gen, c.sock, c.stxFinal = nil, nil, nil, nil, nil, nil
	callPool.Put(c)
}

func (c *call) run(idx int) vm.Outcome {
	out := c.gen.img.Run(&c.m, idx)
	if out == vm.Faulted {
		c.s.stats.Faults.Add(1)
	}
	return out
}

// ---- msgctx.Host ----

func (c *call) Log(m *msgctx.Msg, level int, text string) {
	c.s.log.Log(level, "script", text)
}

// Reply sends sl_send_reply's reply. In the request route it goes through
// the request's server transaction, which absorbs retransmissions and the
// ACK of a negative reply (what OpenSIPS's sl module does by To-tag).
func (c *call) Reply(m *msgctx.Msg, code int, reason string) error {
	req := m.Req
	if req == nil {
		return fmt.Errorf("no request to reply to")
	}
	res := c.s.buildReply(req, m, code, reason)
	c.replied = true
	if c.t == nil {
		c.s.stats.LocalReplies.Add(1) // sendLocal counts the others
	}
	switch {
	case c.t != nil:
		if m.Kind == ast.RequestRoute { // the reply's hooks (acc) see what the route set up
			c.t.keepMod(m)
		} else {
			c.t.mergeMod(m.Mod)
		}
		if err := c.t.sendLocal(res); err != nil {
			// t_relay already answered (477) or the call was answered:
			// one final reply per transaction
			c.s.log.Logf(msgctx.LDbg, "sl", "reply %d not sent: %v", code, err)
		}
		return nil
	case c.stx != nil && req == c.stx.Origin():
		if err := c.stx.Respond(res); err == nil {
			if code >= 200 && c.stxFinal == nil {
				c.stxFinal = res
			}
			return nil
		}
	}
	return c.s.sendResponse(res, c.sock)
}

// buildReply makes a local reply to req with append_to_reply's headers and
// body.
func (s *Server) buildReply(req *sip.Request, m *msgctx.Msg, code int, reason string) *sip.Response {
	var body []byte
	if m != nil && len(m.ReplyBody) > 0 {
		body = append([]byte(nil), m.ReplyBody...)
	}
	res := sip.NewResponseFromRequest(req, code, reason, body)
	res.SipVersion = "SIP/2.0" // not the request's (505 to SIP/7.0)
	if m != nil {
		for _, h := range m.ReplyHeaders {
			res.AppendHeader(sip.NewHeader(h.Name(), h.Value()))
		}
	}
	if res.ContentLength() == nil {
		cl := sip.ContentLengthHeader(len(body))
		res.AppendHeader(&cl)
	}
	if ua := s.serverHeader(); ua != "" && res.GetHeader("Server") == nil {
		res.AppendHeader(sip.NewHeader("Server", ua))
	}
	return res
}

func (s *Server) serverHeader() string { return s.cur.Load().serverHdr }

// scriptServerHeader reads server_header once per generation (load).
func scriptServerHeader(gen *generation) string {
	if g, ok := gen.script.Global("server_header"); ok {
		v := g.Words
		if g.Value != nil {
			v = g.Value.Str
		}
		return strings.TrimPrefix(strings.TrimSpace(v), "Server: ")
	}
	return ""
}

// ---- msgctx.SIPHost ----

func (c *call) Myself(host string, port int) bool { return c.s.Myself(host, port) }

// Forward is core forward(): a stateless relay of the request.
func (c *call) Forward(m *msgctx.Msg, dst string) error {
	req := m.Req
	if req == nil {
		return fmt.Errorf("no request")
	}
	hop, err := msgctx.NextHop(m, dst)
	if err != nil {
		return err
	}
	sock := c.s.socketFor(hop.Proto, c.sock)
	if sock == nil {
		return fmt.Errorf("no %s socket to send from", hop.Proto)
	}
	out := shallowCopy(req) // sent at once: shares all but the top Via
	c.s.prepareRequest(out, m.Src, core.ForceRport(m), m.RR, c.gen, c.sock, sock, statelessBranch(req))
	tm.RunRequestOutHooks(m.Mod, out)
	if err := c.s.sendRequest(out, hop, sock); err != nil {
		return err
	}
	c.forwarded = true
	c.s.stats.FwdRequests.Add(1)
	return nil
}

// Relay is t_relay().
func (c *call) Relay(m *msgctx.Msg, dst string, flags msgctx.RelayFlags) int {
	req := m.Req
	if req == nil {
		return -1
	}
	if req.IsAck() || (req.IsCancel() && c.t == nil) {
		// An ACK to a 2xx (or any ACK/CANCEL without a transaction here)
		// is relayed statelessly, as OpenSIPS's t_relay does.
		if err := c.Forward(m, dst); err != nil {
			c.s.log.Logf(msgctx.LErr, "tm", "t_relay: %s %s: %v", req.Method, req.Recipient.String(), err)
			return -6
		}
		return 1
	}
	switch m.Kind {
	case ast.RequestRoute:
		t, code := c.ensureTransaction()
		if t == nil {
			return code
		}
		return t.relay(c, dst, flags)
	case ast.FailureRoute:
		if c.t == nil {
			return -1
		}
		return c.t.relay(c, dst, flags)
	}
	c.s.log.Logf(msgctx.LErr, "tm", "t_relay: not allowed in %s", m.Kind)
	return -1
}

// TransReply is t_reply().
func (c *call) TransReply(m *msgctx.Msg, code int, reason string) int {
	if m.Req == nil {
		return -1
	}
	t := c.t
	if t == nil {
		if m.Kind != ast.RequestRoute {
			return -1
		}
		var rc int
		if t, rc = c.ensureTransaction(); t == nil {
			return rc
		}
	}
	res := c.s.buildReply(t.stx.Origin(), m, code, reason)
	if m.Kind == ast.RequestRoute {
		t.keepMod(m) // the reply's hooks (acc) see what the route set up
	} else {
		t.mergeMod(m.Mod)
	}
	if err := t.sendLocal(res); err != nil {
		c.s.log.Logf(msgctx.LErr, "tm", "t_reply %d: %v", code, err)
		return -1
	}
	m.T.Code = code
	c.replied = true
	return 1
}

// NewTransaction is t_newtran().
func (c *call) NewTransaction(m *msgctx.Msg) int {
	if c.t != nil {
		return 1
	}
	if m.Kind != ast.RequestRoute || m.Req == nil || m.Req.IsAck() {
		return -1
	}
	t, code := c.ensureTransaction()
	if t == nil {
		return code
	}
	return 1
}

// CheckTransaction is t_check_trans(). sipgo matches retransmissions,
// hop-by-hop ACKs and CANCELs to their transactions before the script runs
// (absorbing retransmissions and answering CANCEL), so a request that
// reaches the script has no transaction unless this run created one.
func (c *call) CheckTransaction(m *msgctx.Msg) int {
	if c.t != nil {
		return 1
	}
	if m.Req != nil && m.Req.IsAck() {
		return -2
	}
	return -1
}

// ensureTransaction creates the transaction of the request route's request
// (t_newtran), sending 100 Trying for an INVITE when auto_100trying is on.
func (c *call) ensureTransaction() (*transaction, int) {
	if c.t != nil {
		return c.t, 1
	}
	if c.stx == nil || c.m.Req == nil {
		return nil, -1
	}
	t := c.s.newTransaction(c)
	c.t = t
	return t, 1
}

// finishRequest settles the server transaction after the request route.
func (c *call) finishRequest(out vm.Outcome) {
	if out == vm.Dropped {
		c.s.stats.DropRequests.Add(1)
	}
	if c.t != nil {
		c.t.keepMod(&c.m)
	}
	tm.RunRouteDoneHooks(&c.m, c.t != nil)
	switch {
	case c.t != nil:
		c.t.scriptDone(c)
	case c.replied:
		// keep it to absorb retransmissions (and the ACK of a negative
		// reply); over UDP a non-INVITE's final reply is kept instead
		if !c.keepFinal() { // slcache.go
			c.stx.TerminateGracefully()
		}
	default:
		// Nothing was answered: stateless behaviour, a retransmission runs
		// the script again.
		c.stx.Terminate()
	}
}

// ---- inbound requests ----

func srcAddr(msg sip.Message) msgctx.Addr {
	host, port, _ := netSplit(msg.Source())
	p, _ := strconv.Atoi(port)
	return msgctx.Addr{IP: host, Port: p, Proto: lowerProto(msg.Transport())}
}

func netSplit(hp string) (string, string, error) {
	h, p, err := net.SplitHostPort(hp)
	return h, p, err
}

func parseIP(s string) net.IP { return net.ParseIP(strings.Trim(s, "[]")) }

// handleRequest runs the request route for a request that opened a
// server transaction (onRequest, perf.go, decides where it runs).
func (s *Server) handleRequest(req *sip.Request, stx *sip.ServerTx) {
	s.stats.RcvRequests.Add(1)
	gen := s.cur.Load()
	c := s.newCall(gen, ast.RequestRoute)
	c.stx = stx
	c.m.Req = req
	c.m.Src = srcAddr(req)
	if conn := stx.Connection(); conn != nil {
		c.sock = s.socketOf(c.m.Src.Proto, conn)
	}
	if c.sock != nil {
		c.m.Local = c.sock.Addr()
	}
	defer func() {
		if p := recover(); p != nil {
			s.stats.Panics.Add(1)
			s.log.Logf(msgctx.LCrit, "core", "panic handling %s from %s: %v", req.Method, req.Source(), p)
			stx.Terminate()
		}
		s.putCall(c)
	}()
	if code, why := validateRequest(req); code != 0 {
		s.stats.ErrRequests.Add(1)
		s.log.Logf(msgctx.LWarn, "core", "bad %s request from %s: %s", req.Method, req.Source(), why)
		c.badRequest(code, why)
		return
	}
	if gen.main < 0 {
		stx.Terminate()
		return
	}
	tm.RunRequestHooks(&c.m)
	out := c.run(gen.main)
	c.finishRequest(out)
}

// badRequest runs error_route for a malformed request, or answers it with
// code when the script has none.
func (c *call) badRequest(code int, why string) {
	gen := c.gen
	if gen.errRoute >= 0 {
		c.m.Kind = ast.ErrorRoute
		c.run(gen.errRoute)
		if c.replied {
			c.stx.TerminateGracefully()
		} else {
			c.stx.Terminate()
		}
		return
	}
	if c.m.Req.IsAck() || c.m.Req.Via() == nil {
		c.stx.Terminate()
		return
	}
	reason := "Bad Request"
	if code == 505 {
		reason = "Version Not Supported"
	}
	res := c.s.buildReply(c.m.Req, nil, code, reason)
	res.AppendHeader(sip.NewHeader("Warning", `399 sipedge "`+strings.ReplaceAll(why, `"`, `'`)+`"`))
	if err := c.stx.Respond(res); err != nil {
		c.s.sendResponse(res, c.sock)
	}
	c.s.stats.LocalReplies.Add(1)
	c.stx.TerminateGracefully()
}

// validateRequest checks what sipgo's parser lets through but a proxy must
// not route (RFC 3261 16.3, RFC 4475): it returns a reply code and reason.
func validateRequest(req *sip.Request) (int, string) {
	if req.SipVersion != "SIP/2.0" {
		return 505, "unsupported SIP version " + req.SipVersion
	}
	if req.Via() == nil {
		return 400, "missing Via"
	}
	cseq := req.CSeq()
	switch {
	case cseq == nil:
		return 400, "missing CSeq"
	case req.From() == nil:
		return 400, "missing From"
	case req.To() == nil:
		return 400, "missing To"
	case req.CallID() == nil:
		return 400, "missing Call-ID"
	}
	// sipgo upper-cases the request method (sip/parser.go ParseLine), so
	// compare without case; methods are case-sensitive on the wire
	if !strings.EqualFold(string(cseq.MethodName), string(req.Method)) {
		return 400, "CSeq method " + string(cseq.MethodName) + " does not match " + string(req.Method)
	}
	if req.Recipient.Host == "" && (req.Recipient.Scheme == "sip" || req.Recipient.Scheme == "sips") {
		return 400, "Request-URI without a host"
	}
	var from, to, callid, cs, cl, mf int
	for _, h := range req.Headers() {
		switch h.(type) {
		case *sip.FromHeader:
			from++
		case *sip.ToHeader:
			to++
		case *sip.CallIDHeader:
			callid++
		case *sip.CSeqHeader:
			cs++
		case *sip.ContentLengthHeader:
			cl++
		case *sip.MaxForwardsHeader:
			mf++
		}
	}
	if from > 1 || to > 1 || callid > 1 || cs > 1 || mf > 1 {
		return 400, "a single-value header appears more than once"
	}
	if cl > 1 {
		return 400, "more than one Content-Length"
	}
	if h := req.ContentLength(); h != nil && int(*h) != len(req.Body()) {
		return 400, fmt.Sprintf("Content-Length %d but the body has %d bytes", int(*h), len(req.Body()))
	}
	return 0, ""
}
