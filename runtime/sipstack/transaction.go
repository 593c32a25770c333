package sipstack

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/modules/core"
	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
	"github.com/sipedge/sipedge/runtime/vm"
)

// transaction is tm's view of one stateful request: sipgo's server
// transaction upstream, one sipgo client transaction per branch
// downstream, and the script state (armed routes, flags, AVPs) the
// transaction's routes see. It keeps the generation that created it.
type transaction struct {
	s      *Server
	gen    *generation
	id     string
	stx    *sip.ServerTx
	in     *Socket
	src    msgctx.Addr
	invite bool
	upDest string // where UDP replies go upstream

	mu        sync.Mutex
	req       *sip.Request // template for failure_route (nil: use the origin)
	branches  []*branch
	nbr       int // branch indexes handed out
	first     int // first branch of the latest t_relay
	onReply   int
	onFailure int
	onBranch  int
	flags     uint64
	avps      [][]value.Value
	rr        msgctx.RecordRoute
	frTimeout time.Duration
	frInv     time.Duration
	lastCode  int  // last reply sent upstream
	final     bool // a final reply went upstream
	got2xx    bool
	cancelled bool
	received  bool // some branch got a reply from the network
	busy      int  // script runs in progress (t_relay, failure_route)
	released  bool
	mod       map[string]any // the request route's module data (hooks.go)
}

// branch is one outgoing copy of the request.
type branch struct {
	idx          int
	uri          string
	target       sip.Uri
	req          *sip.Request
	ctx          *sip.ClientTx
	sock         *Socket
	onReply      int
	bflags       uint64
	timer        *time.Timer
	provisional  bool
	code         int
	final        *sip.Response // final reply from the network
	localCode    int           // final code generated here (timeout, transport error)
	done         bool
	cancelWanted bool // CANCEL as soon as a provisional reply arrives
	cancelSent   bool
}

func (b *branch) finalCode() int {
	if b.final != nil {
		return b.final.StatusCode
	}
	return b.localCode
}

func newTxID() string {
	return strconv.FormatUint(rand.Uint64(), 36)
}

// upstreamDest is where replies to req go over UDP: the source address and
// the Via port, or the source port when the Via asks for rport (RFC 3581).
func upstreamDest(req *sip.Request, src msgctx.Addr) string {
	via := req.Via()
	port := 0
	if via != nil {
		port = via.Port
		if via.Params.Has("rport") {
			port = src.Port
		}
	}
	if port == 0 {
		port = 5060
	}
	host := src.IP
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(port)
}

func (s *Server) newTransaction(c *call) *transaction {
	req := c.m.Req
	t := &transaction{
		s: s, gen: c.gen, id: newTxID(), stx: c.stx, in: c.sock, src: c.m.Src,
		invite: req.IsInvite(),
	}
	t.upDest = upstreamDest(req, c.m.Src)
	t.frTimeout = time.Duration(c.gen.tm.FrTimeout) * time.Second
	t.frInv = time.Duration(c.gen.tm.FrInvTimeout) * time.Second
	c.m.T.ID = t.id
	s.stats.UASTransactions.Add(1)
	s.stats.InUse.Add(1)
	stx := c.stx
	if !stx.OnTerminate(func(string, error) { t.release() }) {
		t.release()
	}
	stx.OnCancel(func(*sip.Request) { go t.onCancel() })
	if t.invite && c.gen.tm.Auto100 {
		trying := sip.NewResponseFromRequest(req, 100, "Trying", nil)
		stx.Respond(trying)
	}
	return t
}

func (t *transaction) release() {
	t.mu.Lock()
	r := t.released
	t.released = true
	t.mu.Unlock()
	if !r {
		t.s.stats.InUse.Add(-1)
	}
}

func (t *transaction) logf(level int, format string, args ...any) {
	t.s.log.Logf(level, "tm", format, args...)
}

// scriptDone is called when the request route that created the
// transaction has ended.
func (t *transaction) scriptDone(c *call) {
	t.mu.Lock()
	idle := len(t.branches) == 0 && !t.final
	t.mu.Unlock()
	if idle {
		t.logf(msgctx.LWarn, "%s %s: transaction created but neither relayed nor answered; replying 500",
			c.m.Req.Method, c.m.Req.Recipient.String())
		res := t.s.buildReply(t.stx.Origin(), nil, 500, "Server Internal Error")
		t.sendLocal(res)
	}
}

type target struct {
	uri    sip.Uri
	dst    string
	bflags uint64
}

func snapshotAVPs(avps [][]value.Value) [][]value.Value {
	out := make([][]value.Value, len(avps))
	for i, s := range avps {
		if len(s) > 0 {
			out[i] = append([]value.Value(nil), s...)
		}
	}
	return out
}

// relay is t_relay: send one branch per destination of the message.
func (t *transaction) relay(c *call, dst string, flags msgctx.RelayFlags) int {
	m := &c.m
	s := t.s
	t.keepMod(m)
	t.mu.Lock()
	if t.final {
		t.mu.Unlock()
		t.logf(msgctx.LErr, "t_relay: the transaction was already answered")
		return -1
	}
	if t.cancelled {
		t.mu.Unlock()
		return -3
	}
	t.busy++
	t.onReply, t.onFailure, t.onBranch = m.OnReply, m.OnFailure, m.OnBranch
	t.flags = m.Flags
	t.avps = snapshotAVPs(m.AVPs)
	t.rr = m.RR
	if m.T.FrTimeout > 0 {
		t.frTimeout = time.Duration(m.T.FrTimeout) * time.Second
	}
	if m.T.FrInvTimeout > 0 {
		t.frInv = time.Duration(m.T.FrInvTimeout) * time.Second
	}
	if t.onFailure > 0 || m.Kind == ast.FailureRoute {
		t.req = m.Req.Clone()
	}
	t.first = len(t.branches)
	onBranch := t.onBranch
	t.mu.Unlock()

	targets := make([]target, 0, 1+len(m.Branches))
	targets = append(targets, target{uri: *m.Req.Recipient.Clone(), dst: m.DstURI, bflags: m.BranchFlags})
	for _, b := range m.Branches {
		var u sip.Uri
		if err := sip.ParseUri(b.URI, &u); err != nil {
			t.logf(msgctx.LErr, "t_relay: skipping branch %q: %v", b.URI, err)
			continue
		}
		targets = append(targets, target{uri: u, dst: b.Dst, bflags: b.Flags})
	}
	m.Branches = m.Branches[:0]

	sent, code := 0, -3
	forceRport := core.ForceRport(m)
	for _, tg := range targets {
		breq := m.Req.Clone()
		breq.Recipient = tg.uri
		dstURI, rrSpec, bflags, onReply := tg.dst, m.RR, tg.bflags, 0
		t.mu.Lock()
		idx := t.nbr
		t.nbr++
		t.mu.Unlock()
		if onBranch > 0 {
			bc := s.newCall(t.gen, ast.BranchRoute)
			bc.t, bc.sock = t, t.in
			bc.m.Req, bc.m.DstURI = breq, dstURI
			bc.m.Src, bc.m.Local = t.src, c.m.Local
			bc.m.Flags, bc.m.BranchFlags = m.Flags, bflags
			bc.m.RR = rrSpec
			bc.m.T = m.T
			bc.m.T.ID, bc.m.T.Branch = t.id, idx+1
			bc.m.Mod = t.modCopy()
			for i := range bc.m.AVPs {
				if i < len(m.AVPs) {
					bc.m.AVPs[i] = append(bc.m.AVPs[i], m.AVPs[i]...)
				}
			}
			out := bc.run(onBranch - 1)
			dstURI, rrSpec, bflags, onReply = bc.m.DstURI, bc.m.RR, bc.m.BranchFlags, bc.m.OnReply
			s.putCall(bc)
			if out == vm.Dropped {
				continue
			}
		}
		hopMsg := msgctx.Msg{Req: breq, DstURI: dstURI}
		hop, err := msgctx.NextHop(&hopMsg, dst)
		if err != nil {
			t.logf(msgctx.LErr, "t_relay: %s: %v", breq.Recipient.String(), err)
			code = -4
			continue
		}
		sock := s.socketFor(hop.Proto, t.in)
		if sock == nil {
			t.logf(msgctx.LErr, "t_relay: no %s socket to reach %s", hop.Proto, hop)
			code = -6
			continue
		}
		addr, err := resolve(s.ctx, hop.Host, hop.PortOrDefault())
		if err == nil {
			err = checkDest(addr.IP)
		}
		if err != nil {
			t.logf(msgctx.LErr, "t_relay: %s: %v", hop, err)
			code = -4
			continue
		}
		if err := s.dialTLS(s.ctx, t.gen, sock, hop, addr); err != nil { // outbound TLS (tls.go)
			t.logf(msgctx.LErr, "t_relay: %s: %v", hop, err)
			code = -6
			continue
		}
		s.prepareRequest(breq, t.src, forceRport, rrSpec, t.gen, t.in, sock, "z9hG4bK"+t.id+"."+strconv.Itoa(idx))
		tm.RunRequestOutHooks(m.Mod, breq)
		breq.SetTransport(upperProto(sock.Proto))
		breq.SetDestination(addr.String())
		if sock.Proto == "udp" {
			breq.Laddr = sock.laddr
		} else {
			breq.Laddr = sip.Addr{}
		}
		// the branch route may have rewritten the R-URI
		b := &branch{idx: idx, uri: breq.Recipient.String(), target: breq.Recipient, req: breq, sock: sock, onReply: onReply, bflags: bflags}
		ctx, err := s.txl.Request(s.ctx, breq)
		if err != nil {
			t.logf(msgctx.LErr, "t_relay: sending to %s: %v", hop, err)
			code = -6
			continue
		}
		b.ctx = ctx
		ctx.OnRetransmission(func(r *sip.Response) { t.on2xxRetransmission(r) })
		t.mu.Lock()
		t.branches = append(t.branches, b)
		b.timer = time.AfterFunc(t.frTimeout, func() { t.frExpired(b) })
		t.mu.Unlock()
		s.spawn(func() { t.readBranch(b) }) // a pooled goroutine (perf.go)
		s.stats.FwdRequests.Add(1)
		sent++
	}

	t.mu.Lock()
	t.busy--
	t.mu.Unlock()
	if sent == 0 {
		if m.Kind == ast.RequestRoute && flags&msgctx.RelayNoAuto477 == 0 {
			t.sendLocal(s.buildReply(t.stx.Origin(), nil, 477, "Send failed (477/TM)"))
		}
		return code
	}
	t.maybeComplete()
	return 1
}

func (t *transaction) readBranch(b *branch) {
	for {
		select {
		case res := <-b.ctx.Responses():
			if t.onResponse(b, res) {
				return
			}
		case <-b.ctx.Done():
			t.branchGone(b)
			return
		}
	}
}

// onResponse handles a reply on a branch; it reports whether the branch
// is finished.
func (t *transaction) onResponse(b *branch, res *sip.Response) bool {
	s := t.s
	s.stats.RcvReplies.Add(1)
	code := res.StatusCode
	t.mu.Lock()
	if b.done {
		// finished here already (fr timer): late replies are dropped
		t.mu.Unlock()
		return code >= 200
	}
	t.received = true
	b.code = code
	var cancel bool
	if code < 200 {
		first := !b.provisional
		b.provisional = true
		if t.invite && (first || t.gen.tm.RestartFr) && b.timer != nil {
			b.timer.Reset(t.frInv)
		}
		if b.cancelWanted && !b.cancelSent {
			b.cancelSent, cancel = true, true
		}
	} else if b.timer != nil {
		b.timer.Stop()
	}
	t.mu.Unlock()
	if cancel {
		t.cancelBranch(b)
	}

	dropped := t.runReplyRoutes(b, res)
	if code < 200 {
		if code > 100 && !dropped {
			t.relayUpstream(res, false)
		}
		return false
	}

	t.mu.Lock()
	b.final, b.done = res, true
	var toCancel []*branch
	if code < 300 || (code >= 600 && !t.gen.tm.Disable6xxBlock) {
		for _, ob := range t.branches {
			if ob == b || ob.done {
				continue
			}
			if ob.provisional && !ob.cancelSent {
				ob.cancelSent = true
				toCancel = append(toCancel, ob)
			} else if !ob.provisional {
				ob.cancelWanted = true
			}
		}
	}
	if code < 300 {
		t.final, t.got2xx, t.lastCode = true, true, code
	}
	t.mu.Unlock()
	if code < 300 {
		t.relayUpstream(res, true)
	}
	for _, ob := range toCancel {
		t.cancelBranch(ob)
	}
	if code >= 300 {
		t.maybeComplete()
	}
	return true
}

// runReplyRoutes runs the global onreply_route, then the armed one (the
// branch's, else the transaction's). It reports a drop.
func (t *transaction) runReplyRoutes(b *branch, res *sip.Response) bool {
	gen := t.gen
	t.mu.Lock()
	armed := b.onReply
	if armed == 0 {
		armed = t.onReply
	}
	t.mu.Unlock()
	routes := [2]int{-1, -1}
	if gen.onreply >= 0 {
		routes[0] = gen.onreply
	}
	if armed > 0 {
		routes[1] = armed - 1
	}
	for _, idx := range routes {
		if idx < 0 {
			continue
		}
		c := t.s.newCall(gen, ast.OnReplyRoute)
		c.t, c.br, c.sock = t, b, b.sock
		c.m.Resp = res
		c.m.Src = srcAddr(res)
		c.m.Local = b.sock.Addr()
		c.m.Mod = t.modCopy()
		t.mu.Lock()
		c.m.Flags, c.m.BranchFlags = t.flags, b.bflags
		c.m.OnReply, c.m.OnFailure, c.m.OnBranch = t.onReply, t.onFailure, t.onBranch
		c.m.T = msgctx.TransInfo{ID: t.id, Code: res.StatusCode, Branch: b.idx + 1, Cancelled: t.cancelled,
			RURI: b.uri, FrTimeout: int(t.frTimeout / time.Second), FrInvTimeout: int(t.frInv / time.Second)}
		t.mu.Unlock()
		out := c.run(idx)
		t.mergeMod(c.m.Mod)
		t.mu.Lock()
		t.flags = c.m.Flags
		t.onReply, t.onFailure, t.onBranch = c.m.OnReply, c.m.OnFailure, c.m.OnBranch
		if c.m.T.FrInvTimeout > 0 {
			t.frInv = time.Duration(c.m.T.FrInvTimeout) * time.Second
		}
		t.mu.Unlock()
		t.s.putCall(c)
		if out == vm.Dropped {
			if res.StatusCode < 200 {
				return true
			}
			// a final reply cannot be dropped (OpenSIPS ignores drop there)
		}
	}
	return false
}

// relayUpstream sends a downstream reply to the UAC through the server
// transaction, without our Via.
func (t *transaction) relayUpstream(res *sip.Response, final bool) {
	t.mu.Lock()
	if t.final && !final {
		t.mu.Unlock()
		return
	}
	if res.StatusCode > t.lastCode || res.StatusCode < 200 {
		t.lastCode = res.StatusCode
	}
	t.mu.Unlock()
	t.stripAndSend(res)
}

func (t *transaction) stripAndSend(res *sip.Response) {
	res.RemoveHeader("Via")
	t.responseRelay(res)
	if res.Via() == nil {
		t.s.stats.DropReplies.Add(1)
		return
	}
	origin := t.stx.Origin()
	res.SetTransport(origin.Transport())
	res.SetDestination(t.upDest)
	// hooks first: the dialog is confirmed before the UAC can ACK the 2xx
	t.responseOut(res.StatusCode, res)
	if err := t.stx.Respond(res); err != nil {
		t.logf(msgctx.LWarn, "relaying %d upstream: %v", res.StatusCode, err)
		t.s.stats.DropReplies.Add(1)
		return
	}
	t.s.stats.FwdReplies.Add(1)
	t.s.stats.RelayedReplies.Add(1)
}

// on2xxRetransmission relays a retransmitted 2xx (the UAS did not get
// the ACK yet): the server transaction passes it on (RFC 6026).
func (t *transaction) on2xxRetransmission(r *sip.Response) {
	t.mu.Lock()
	ok := t.got2xx
	t.mu.Unlock()
	if ok {
		t.stripAndSend(r)
	}
}

// sendLocal sends a reply generated here (t_reply, sl_send_reply after
// t_newtran, 408/477/500).
func (t *transaction) sendLocal(res *sip.Response) error {
	code := res.StatusCode
	t.mu.Lock()
	if t.final && code >= 200 {
		t.mu.Unlock()
		return errors.New("a final reply was already sent")
	}
	if code >= 200 {
		t.final = true
	}
	t.lastCode = code
	t.mu.Unlock()
	t.s.stats.LocalReplies.Add(1)
	res.SetDestination(t.upDest)
	t.responseOut(code, res)
	return t.stx.Respond(res)
}

// maybeComplete picks the winning reply once every branch of the latest
// t_relay is finished: failure_route gets the first chance (serial
// forking), then the best reply goes upstream.
func (t *transaction) maybeComplete() {
	t.mu.Lock()
	if t.final || t.busy > 0 || t.first >= len(t.branches) {
		t.mu.Unlock()
		return
	}
	batch := t.branches[t.first:]
	for _, b := range batch {
		if !b.done {
			t.mu.Unlock()
			return
		}
	}
	best := pickBest(batch)
	if onf := t.onFailure; onf > 0 && !t.cancelled {
		t.onFailure = 0
		t.busy++
		nBefore := len(t.branches)
		t.mu.Unlock()
		t.runFailure(onf-1, best)
		t.mu.Lock()
		t.busy--
		if t.final {
			t.mu.Unlock()
			return
		}
		if len(t.branches) != nBefore {
			t.mu.Unlock()
			t.maybeComplete()
			return
		}
	}
	if t.final {
		t.mu.Unlock()
		return
	}
	t.final = true
	t.mu.Unlock()
	t.sendBest(best)
}

// pickBest chooses the reply to send upstream (RFC 3261 16.7): any 6xx,
// else the lowest class, the first received within it.
func pickBest(batch []*branch) *branch {
	var best *branch
	for _, b := range batch {
		code := b.finalCode()
		if code >= 600 {
			return b
		}
		if best == nil || code/100 < best.finalCode()/100 {
			best = b
		}
	}
	return best
}

func (t *transaction) sendBest(b *branch) {
	if b.final != nil {
		t.mu.Lock()
		t.lastCode = b.final.StatusCode
		t.mu.Unlock()
		t.stripAndSend(b.final)
		return
	}
	reason := "Request Timeout"
	if b.localCode == 503 {
		reason = "Service Unavailable"
	}
	res := t.s.buildReply(t.stx.Origin(), nil, b.localCode, reason)
	t.mu.Lock()
	t.lastCode = b.localCode
	t.mu.Unlock()
	t.s.stats.LocalReplies.Add(1)
	res.SetDestination(t.upDest)
	t.responseOut(b.localCode, res)
	t.stx.Respond(res)
}

// runFailure runs failure_route[idx] on a copy of the transaction's
// request with the winning branch's R-URI.
func (t *transaction) runFailure(idx int, best *branch) {
	s := t.s
	c := s.newCall(t.gen, ast.FailureRoute)
	defer s.putCall(c)
	t.mu.Lock()
	tmpl := t.req
	if tmpl == nil {
		tmpl = t.stx.Origin()
	}
	req := tmpl.Clone()
	req.Recipient = *best.target.Clone()
	c.t, c.sock = t, t.in
	c.m.Req = req
	c.m.Src = t.src
	if t.in != nil {
		c.m.Local = t.in.Addr()
	}
	c.m.Flags, c.m.BranchFlags = t.flags, best.bflags
	for i := range c.m.AVPs {
		if i < len(t.avps) {
			c.m.AVPs[i] = append(c.m.AVPs[i], t.avps[i]...)
		}
	}
	c.m.RR = t.rr
	c.m.Mod = tm.CopyMod(t.mod)
	c.m.OnReply, c.m.OnBranch = t.onReply, t.onBranch
	c.m.T = msgctx.TransInfo{ID: t.id, Code: best.finalCode(), Branch: best.idx + 1, Cancelled: t.cancelled,
		LastLocal: best.final == nil, AllLocal: !t.received, RURI: best.uri,
		FrTimeout: int(t.frTimeout / time.Second), FrInvTimeout: int(t.frInv / time.Second)}
	t.mu.Unlock()
	tm.RunFailureHooks(c.m.Mod, t.stx.Origin(), best.finalCode(), best.final)
	c.run(idx)
	t.mergeMod(c.m.Mod)
}

// frExpired is fr_timeout / fr_inv_timeout on a branch: the branch ends
// with a local 408 (a CANCEL goes out if it had a provisional reply).
func (t *transaction) frExpired(b *branch) {
	t.mu.Lock()
	if b.done {
		t.mu.Unlock()
		return
	}
	b.done, b.localCode = true, 408
	cancel := b.provisional && !b.cancelSent
	if cancel {
		b.cancelSent = true
	}
	t.mu.Unlock()
	if cancel {
		t.cancelBranch(b)
	} else {
		b.ctx.Terminate()
	}
	t.maybeComplete()
}

// branchGone: the client transaction ended without a final reply (timer B/F
// or a transport error).
func (t *transaction) branchGone(b *branch) {
	t.mu.Lock()
	if b.done {
		t.mu.Unlock()
		return
	}
	b.done = true
	b.localCode = 408
	if err := b.ctx.Err(); err != nil && errors.Is(err, sip.ErrTransactionTransport) {
		b.localCode = 503
	}
	if b.timer != nil {
		b.timer.Stop()
	}
	t.mu.Unlock()
	t.maybeComplete()
}

// onCancel runs when the UAC's CANCEL matched the server transaction;
// sipgo has already answered it 200 and the INVITE 487.
func (t *transaction) onCancel() {
	t.mu.Lock()
	t.cancelled = true
	answered := t.final
	if !t.final {
		t.final, t.lastCode = true, 487
	}
	var now []*branch
	for _, b := range t.branches {
		if b.done {
			continue
		}
		if b.provisional && !b.cancelSent {
			b.cancelSent = true
			now = append(now, b)
		} else if !b.provisional {
			b.cancelWanted = true
		}
	}
	t.mu.Unlock()
	if !answered {
		t.responseOut(487, nil) // sipgo answered the INVITE 487
	}
	for _, b := range now {
		t.cancelBranch(b)
	}
}

// cancelBranch sends a CANCEL for a branch (RFC 3261 9.1): same R-URI,
// our Via with the branch's branch parameter, Route, From, To, Call-ID
// and CSeq number.
func (t *transaction) cancelBranch(b *branch) {
	r := b.req
	cr := sip.NewRequest(sip.CANCEL, *r.Recipient.Clone())
	cr.AppendHeader(r.Via().Clone())
	for _, h := range r.GetHeaders("Route") {
		cr.AppendHeader(sip.HeaderClone(h))
	}
	mf := sip.MaxForwardsHeader(70)
	cr.AppendHeader(&mf)
	for _, h := range []sip.Header{r.From(), r.To(), r.CallID()} {
		cr.AppendHeader(sip.HeaderClone(h))
	}
	cseq := &sip.CSeqHeader{SeqNo: r.CSeq().SeqNo, MethodName: sip.CANCEL}
	cr.AppendHeader(cseq)
	cl := sip.ContentLengthHeader(0)
	cr.AppendHeader(&cl)
	cr.SetTransport(r.Transport())
	cr.SetDestination(r.Destination())
	cr.Laddr = r.Laddr
	ctx, err := t.s.txl.Request(t.s.ctx, cr)
	if err != nil {
		t.logf(msgctx.LWarn, "CANCEL to %s: %v", r.Destination(), err)
		return
	}
	go func() {
		for {
			select {
			case <-ctx.Responses():
			case <-ctx.Done():
				return
			}
		}
	}()
}
