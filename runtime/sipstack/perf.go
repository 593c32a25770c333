package sipstack

import (
	"net"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/runtime/engine"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

// Receive path and scheduling (measured with bench/sipbench; figures in
// bench/README.md).
//
// sipgo reads a UDP socket with one goroutine that also parses every
// datagram before handing it on (sip/transport_udp.go
// readListenerConnection). Under load that goroutine falls behind and the
// kernel drops datagrams while the process is far from using its CPUs, so
// each UDP socket gets several readers (what OpenSIPS calls udp_workers):
// sipgo's Serve is simply run several times on the same socket.
//
// sipgo then runs every message in a new goroutine (sip/transaction_layer.go
// handleMessage). The request route is deep (VM, tm, the client
// transaction, serialisation), so each of those goroutines grew its stack
// two or three times: runtime.copystack was ~11% of the proxy's CPU. A
// request (and a reply that matches no transaction, which is relayed
// statelessly) is therefore handed to a long-lived worker whose stack has
// already grown, when one is idle; otherwise it runs where it is, as
// before, so a slow script run (DNS, a database) never delays others.

// maxUDPReaders caps the readers per UDP socket.
const maxUDPReaders = 64

// udpReaders is the number of goroutines reading each UDP socket:
// Options.UDPReaders, else the script's udp_workers (or the older
// children), else GOMAXPROCS but at least 2.
func udpReaders(opts Options, sc *engine.Script) int {
	n := opts.UDPReaders
	if n <= 0 && sc != nil {
		for _, name := range []string{"udp_workers", "children"} {
			if g, ok := sc.Global(name); ok && g.Value != nil && g.Value.Int > 0 {
				n = g.Value.Int
				break
			}
		}
	}
	if n <= 0 {
		n = max(2, runtime.GOMAXPROCS(0))
	}
	return min(n, maxUDPReaders)
}

// reqJob is a message handed to a worker: a request with its server
// transaction, or a reply that matched no client transaction.
type reqJob struct {
	req *sip.Request
	stx *sip.ServerTx
	res *sip.Response
}

// startWorkers starts n request workers; they stop with the server.
func (s *Server) startWorkers(n int) {
	s.reqJobs = make(chan reqJob) // unbuffered: a job only goes to an idle worker
	for range n {
		s.wg.Add(1)
		go s.worker()
	}
}

func (s *Server) worker() {
	defer s.wg.Done()
	for {
		select {
		case j := <-s.reqJobs:
			if j.res != nil {
				s.handleStrayResponse(j.res)
			} else {
				s.handleRequest(j.req, j.stx)
			}
		case <-s.ctx.Done():
			return
		}
	}
}

// onRequest is the transaction layer's request handler (sipgo calls it in
// a goroutine of its own): the request goes to an idle worker, or is
// handled right here when none is idle.
func (s *Server) onRequest(req *sip.Request, stx *sip.ServerTx) {
	if s.replayFinal(req, stx) { // a retransmission answered statelessly (slcache.go)
		return
	}
	if s.reqJobs != nil {
		select {
		case s.reqJobs <- reqJob{req: req, stx: stx}:
			return
		default:
		}
	}
	s.handleRequest(req, stx)
}

// onStrayResponse is the transaction layer's handler for replies that
// match no client transaction (replies to forward(), late
// retransmissions); like onRequest it hands them to an idle worker.
func (s *Server) onStrayResponse(res *sip.Response) {
	if s.reqJobs != nil {
		select {
		case s.reqJobs <- reqJob{res: res}:
			return
		default:
		}
	}
	s.handleStrayResponse(res)
}

// upperProto and lowerProto change a transport name's case without
// allocating for the usual ones (strings.ToUpper allocates every time).
func upperProto(p string) string {
	switch p {
	case "udp", "UDP":
		return "UDP"
	case "tcp", "TCP":
		return "TCP"
	case "tls", "TLS":
		return "TLS"
	case "ws", "WS":
		return "WS"
	case "wss", "WSS":
		return "WSS"
	}
	return strings.ToUpper(p)
}

func lowerProto(p string) string {
	switch p {
	case "udp", "UDP":
		return "udp"
	case "tcp", "TCP":
		return "tcp"
	case "tls", "TLS":
		return "tls"
	case "ws", "WS":
		return "ws"
	case "wss", "WSS":
		return "wss"
	}
	return strings.ToLower(p)
}

// socketOf is the socket a request's connection belongs to. A UDP
// listener is recognised by its socket; anything else by its local
// address (socketByLocal), which costs a String and a parse.
func (s *Server) socketOf(proto string, conn sip.Connection) *Socket {
	if uc, ok := conn.(*sip.UDPConnection); ok && uc.PacketConn != nil {
		if r, ok := uc.PacketConn.(*udpReader); ok { // badmsg.go
			return r.sock
		}
		for _, sock := range s.sockets {
			if sock.udp != nil && (uc.PacketConn == net.PacketConn(sock.pc) || uc.PacketConn == net.PacketConn(sock.udp)) {
				return sock
			}
		}
	}
	return s.socketByLocal(proto, conn.LocalAddr().String())
}

// shallowCopy copies req for a stateless send (forward()): the copy has its
// own start line, header list and top Via (prepareRequest changes those);
// every other header and the body are shared with req, so the copy must be
// sent at once and never changed beyond that. sipgo's Clone copies every
// header (about a third of forward()'s cost).
func shallowCopy(req *sip.Request) *sip.Request {
	out := sip.NewRequest(req.Method, req.Recipient) // clones the URI's parameters
	out.SipVersion = req.SipVersion
	top := req.Via()
	for _, h := range req.Headers() {
		if v, ok := h.(*sip.ViaHeader); ok && v == top {
			out.AppendHeader(v.Clone())
			continue
		}
		out.AppendHeader(h)
	}
	out.SetBody(req.Body())
	out.SetTransport(req.Transport())
	out.SetSource(req.Source())
	out.SetDestination(req.Destination())
	out.Laddr = req.Laddr
	return out
}

// txTimers records the wt_timer applied to sipgo's timers (0: none).
var txTimers struct {
	sync.Mutex
	wt int
}

// applyWtTimer makes tm's wt_timer, when the script sets it, how long a
// completed transaction waits for retransmissions: sipgo's timers J
// (non-INVITE server), L (INVITE server after a 2xx), M (INVITE client
// after a 2xx) and D (INVITE client after a failure), 64*T1 = 32 s each
// by RFC 3261/6026; OpenSIPS and Kamailio keep transactions 5 s. At a few
// thousand calls/s this wait holds most of the process's memory.
//
// The timers are sipgo globals that its goroutines read while transactions
// run, so they are set once, at the start of the first server whose script
// sets wt_timer; a reload (or another server) asking for a different value
// is reported and needs a restart.
func (s *Server) applyWtTimer(gen *generation, atStart bool) {
	wt := gen.tm.WtTimer
	txTimers.Lock()
	defer txTimers.Unlock()
	switch {
	case wt <= 0 || wt == txTimers.wt:
	case txTimers.wt == 0 && atStart:
		d := time.Duration(wt) * time.Second
		sip.Timer_J, sip.Timer_L, sip.Timer_M, sip.Timer_D = d, d, d, d
		txTimers.wt = wt
	default:
		s.log.Logf(msgctx.LWarn, "tm", "wt_timer %d needs a restart to take effect (transactions wait %s)", wt, sip.Timer_J)
	}
}

// maxIdleGoroutines caps the goroutines parked in spawn's pool.
const maxIdleGoroutines = 1024

// spawn runs f in a pooled goroutine: a parked one when there is one, else
// a new one, which parks afterwards for the next f (at most
// maxIdleGoroutines park; they end with the server). A transaction's
// branch reader (readBranch) runs the reply routes and relays the replies,
// which grows a new goroutine's stack two or three times; a pooled one has
// grown already.
func (s *Server) spawn(f func()) {
	select {
	case s.spawnq <- f:
	default:
		go s.pooled(f)
	}
}

func (s *Server) pooled(f func()) {
	for {
		f()
		if s.spawnIdle.Add(1) > maxIdleGoroutines {
			s.spawnIdle.Add(-1)
			return
		}
		select {
		case f = <-s.spawnq:
			s.spawnIdle.Add(-1)
		case <-s.ctx.Done():
			s.spawnIdle.Add(-1)
			return
		}
	}
}
