package sipstack

import (
	"fmt"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

// SendRequestWithReply implements tm.ReplyUAC: a request generated here
// (dispatcher's OPTIONS probes, nathelper's pings) sent statefully like
// SendRequest, with its final status code reported to done: the first
// final reply's, or 408 when the client transaction ends without one.
func (s *Server) SendRequestWithReply(req *sip.Request, dst string, done func(code int)) error {
	ctx, err := s.sendUAC(req, dst)
	if err != nil {
		return err
	}
	var once sync.Once
	report := func(code int) {
		once.Do(func() {
			if done != nil {
				done(code)
			}
		})
	}
	go func() {
		for {
			select {
			case res := <-ctx.Responses():
				if res != nil && res.StatusCode >= 200 {
					report(res.StatusCode)
				}
			case <-ctx.Done():
				report(408)
				return
			}
		}
	}()
	return nil
}

// sendUAC sends a locally generated request statefully, with our Via on
// top, to uacHop's destination, and returns its client transaction.
func (s *Server) sendUAC(req *sip.Request, dst string) (*sip.ClientTx, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("server closed")
	}
	hop, err := uacHop(req, dst)
	if err != nil {
		return nil, err
	}
	sock := s.socketFor(hop.Proto, nil)
	if sock == nil {
		return nil, fmt.Errorf("no %s socket to reach %s", hop.Proto, hop)
	}
	addr, err := resolve(s.ctx, hop.Host, hop.PortOrDefault())
	if err != nil {
		return nil, err
	}
	gen := s.cur.Load()
	s.prepareRequest(req, msgctx.Addr{}, false, msgctx.RecordRoute{}, gen, nil, sock, "z9hG4bK"+newTxID()+".uac")
	req.SetTransport(strings.ToUpper(sock.Proto))
	req.SetDestination(addr.String())
	if sock.Proto == "udp" {
		req.Laddr = sock.laddr
	} else {
		req.Laddr = sip.Addr{}
	}
	if req.ContentLength() == nil {
		cl := sip.ContentLengthHeader(len(req.Body()))
		req.AppendHeader(&cl)
	}
	ctx, err := s.txl.Request(s.ctx, req)
	if err != nil {
		return nil, err
	}
	s.stats.FwdRequests.Add(1)
	return ctx, nil
}

// uacHop is where a locally generated request goes: dst when given, else
// its first Route, else its Request-URI.
func uacHop(req *sip.Request, dst string) (msgctx.Hop, error) {
	if dst != "" {
		return msgctx.ParseHop(dst)
	}
	if r := req.GetHeader("Route"); r != nil {
		v := r.Value()
		if i := strings.IndexByte(v, ','); i > 0 {
			v = v[:i]
		}
		return msgctx.ParseHop(strings.Trim(strings.TrimSpace(v), "<>"))
	}
	return msgctx.URIHop(&req.Recipient)
}

var _ tm.ReplyUAC = (*Server)(nil)
