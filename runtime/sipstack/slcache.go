package sipstack

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/runtime/msgctx"
)

// Final replies to non-INVITE requests that the script answered statelessly
// (sl_send_reply, save() …) over UDP.
//
// Retransmissions of such a request must get the same reply again without
// running the script (README: the server transaction absorbs them, as
// OpenSIPS's sl does by To-tag). sipgo's server transaction does that by
// staying alive for timer J (32 s, or wt_timer) with the parsed request,
// the reply and a timer: about 3.7 KB per request, which at 8000 OPTIONS/s
// was 150 MB of live heap (and its GC work). Instead the transaction is
// ended at once and the reply's bytes are kept here, keyed by the
// transaction key, for timer J: a retransmission opens a new transaction,
// finds its reply here, gets the very bytes sipgo would have resent, and
// the transaction is ended again; the script does not run. About 500 bytes
// per request.

// slReplies is the cache; entries expire with timer J, a bucket at a time.
type slReplies struct {
	inUse   atomic.Bool // something was kept (requests skip the lookup until then)
	mu      sync.Mutex
	buckets [slBuckets]map[string]slReply
	cur     int
	rotated time.Time
}

const slBuckets = 8

type slReply struct {
	data []byte
	to   netip.AddrPort
	sock *Socket
}

// slTTL is how long a reply is kept: timer J, as the transaction would
// have stayed.
func slTTL() time.Duration { return sip.Timer_J }

// rotateLocked moves to a new bucket every TTL/(slBuckets-1), dropping the
// oldest: an entry lives between TTL and TTL·slBuckets/(slBuckets-1).
func (c *slReplies) rotateLocked(now time.Time) {
	step := slTTL() / (slBuckets - 1)
	if c.rotated.IsZero() {
		c.rotated = now
	}
	for n := 0; now.Sub(c.rotated) >= step && n < slBuckets; n++ {
		c.cur = (c.cur + 1) % slBuckets
		c.buckets[c.cur] = nil
		c.rotated = c.rotated.Add(step)
	}
	if now.Sub(c.rotated) >= step {
		c.rotated = now // idle for longer than the TTL
	}
}

func (c *slReplies) put(key string, r slReply) {
	c.inUse.Store(true)
	now := time.Now()
	c.mu.Lock()
	c.rotateLocked(now)
	b := c.buckets[c.cur]
	if b == nil {
		b = make(map[string]slReply)
		c.buckets[c.cur] = b
	}
	b[key] = r
	c.mu.Unlock()
}

func (c *slReplies) get(key string) (slReply, bool) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rotateLocked(now)
	for i := 0; i < slBuckets; i++ {
		if b := c.buckets[(c.cur-i+slBuckets)%slBuckets]; b != nil {
			if r, ok := b[key]; ok {
				return r, true
			}
		}
	}
	return slReply{}, false
}

// keepFinal, at the end of a request route that answered statelessly,
// keeps the final reply for retransmissions and ends the transaction; it
// reports false when it does not apply (INVITE: the transaction must
// absorb the ACK of a negative reply; TCP; no final reply through the
// transaction), and the caller keeps the transaction instead.
func (c *call) keepFinal() bool {
	res, req, stx := c.stxFinal, c.m.Req, c.stx
	if res == nil || req == nil || stx == nil || req.IsInvite() || c.sock == nil || c.sock.Proto != "udp" {
		return false
	}
	to, err := netip.ParseAddrPort(upstreamDest(req, c.m.Src))
	if err != nil {
		return false
	}
	c.s.slCache.put(stx.Key(), slReply{data: []byte(res.String()), to: netip.AddrPortFrom(to.Addr().Unmap(), to.Port()), sock: c.sock})
	stx.Terminate()
	return true
}

// replayFinal answers a retransmission of a request kept by keepFinal with
// the same bytes, and ends its new transaction. It reports whether it did.
func (s *Server) replayFinal(req *sip.Request, stx *sip.ServerTx) bool {
	if !s.slCache.inUse.Load() || req.IsInvite() || req.IsAck() || req.IsCancel() {
		return false
	}
	r, ok := s.slCache.get(stx.Key())
	if !ok {
		return false
	}
	if _, err := r.sock.pc.WriteToUDPAddrPort(r.data, r.to); err != nil {
		s.log.Logf(msgctx.LDbg, "core", "resending a reply: %v", err)
	}
	stx.Terminate()
	return true
}
