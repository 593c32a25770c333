package sipstack

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/vm"
)

// statelessBranch is the Via branch for a statelessly forwarded request. It
// is derived from the upstream top Via, so a retransmission, the CANCEL and
// the hop-by-hop ACK of a forwarded INVITE get the branch the INVITE got
// (what a stateless proxy must do, RFC 3261 16.11).
func statelessBranch(req *sip.Request) string {
	h := fnv.New128a()
	if v := req.Via(); v != nil {
		br, _ := v.Params.Get("branch")
		h.Write([]byte(br))
		h.Write([]byte(v.Host))
		h.Write([]byte(strconv.Itoa(v.Port)))
		if br == "" || !strings.HasPrefix(br, "z9hG4bK") {
			// RFC 2543 peer: hash the transaction identifiers instead
			if c := req.CallID(); c != nil {
				h.Write([]byte(c.Value()))
			}
			if cs := req.CSeq(); cs != nil {
				h.Write([]byte(strconv.Itoa(int(cs.SeqNo))))
			}
			if f := req.From(); f != nil {
				tag, _ := f.Params.Get("tag")
				h.Write([]byte(tag))
			}
		}
	}
	var sum [16]byte
	return "z9hG4bKsl" + hex.EncodeToString(h.Sum(sum[:0]))
}

// prepareRequest turns a copy of a received request into the one we send:
// received/rport on the sender's Via (RFC 3261 18.2.1, RFC 3581), the
// Record-Route the script asked for, and our Via on top.
func (s *Server) prepareRequest(out *sip.Request, src msgctx.Addr, forceRport bool, rrSpec msgctx.RecordRoute, gen *generation, in, sock *Socket, branch string) {
	if v := out.Via(); v != nil && src.IP != "" {
		if strings.Trim(v.Host, "[]") != src.IP {
			v.Params.Add("received", src.IP)
		}
		if rp, ok := v.Params.Get("rport"); (ok && rp == "") || forceRport {
			v.Params.Add("rport", strconv.Itoa(src.Port))
		}
	}
	if rrSpec.On {
		insertRecordRoute(out, rrSpec, gen, in, sock)
	}
	via := &sip.ViaHeader{
		ProtocolName:    "SIP",
		ProtocolVersion: "2.0",
		Transport:       upperProto(sock.Proto),
		Host:            sock.advHost(),
		Port:            sock.advPort(),
		Params:          sip.NewParams(),
	}
	via.Params.Add("branch", branch)
	out.PrependHeader(via)
}

// insertRecordRoute writes the Record-Route value(s) above any existing
// ones (right after the Via block).
func insertRecordRoute(out *sip.Request, rrSpec msgctx.RecordRoute, gen *generation, in, sock *Socket) {
	ftag, user := "", ""
	if gen.rr.AppendFromTag {
		if f := out.From(); f != nil {
			ftag, _ = f.Params.Get("tag")
		}
	}
	if gen.rr.AddUsername {
		user = out.Recipient.User
	}
	inAddr := sock.RRAddr()
	if in != nil {
		inAddr = in.RRAddr()
	}
	vals := rrSpec.Values(inAddr, sock.RRAddr(), gen.rr.DoubleRR, ftag, user)
	for i := len(vals) - 1; i >= 0; i-- {
		h := sip.NewHeader("Record-Route", vals[i])
		if out.GetHeader("Via") != nil {
			out.AppendHeaderAfter(h, "Via")
		} else {
			out.PrependHeader(h)
		}
	}
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// resolve turns a hop into an address. Names are looked up (A/AAAA,
// IPv4 first); SRV/NAPTR are not done.
func resolve(ctx context.Context, host string, port int) (*net.UDPAddr, error) {
	if ip := net.ParseIP(host); ip != nil {
		return &net.UDPAddr{IP: ip, Port: port}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	for _, ip := range ips {
		if ip.IP.To4() != nil {
			return &net.UDPAddr{IP: ip.IP, Port: port}, nil
		}
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("%s has no address", host)
	}
	return &net.UDPAddr{IP: ips[0].IP, Port: port}, nil
}

// resolveUDP is resolve for a datagram we send ourselves: an IP literal
// (the usual $du, Via received=) costs neither a parse allocation nor a
// net.UDPAddr (writeUDP sends with WriteToUDPAddrPort).
func resolveUDP(ctx context.Context, host string, port int) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(host); err == nil && a.Zone() == "" {
		return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
	}
	addr, err := resolve(ctx, host, port)
	if err != nil {
		return netip.AddrPort{}, err
	}
	a, ok := netip.AddrFromSlice(addr.IP)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("bad address %s", addr.IP)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
}

// sendRequest sends a request without a transaction (stateless forward,
// ACK for 2xx): UDP straight from our socket, TCP through sipgo's
// connection pool.
func (s *Server) sendRequest(out *sip.Request, hop msgctx.Hop, sock *Socket) error {
	if sock.Proto == "udp" {
		ap, err := resolveUDP(s.ctx, hop.Host, hop.PortOrDefault())
		if err != nil {
			return fmt.Errorf("resolving %s: %w", hop.Host, err)
		}
		if err := checkDestAddr(ap.Addr()); err != nil {
			return err
		}
		return s.writeUDP(sock, out, ap)
	}
	addr, err := resolve(s.ctx, hop.Host, hop.PortOrDefault())
	if err != nil {
		return fmt.Errorf("resolving %s: %w", hop.Host, err)
	}
	if err := checkDest(addr.IP); err != nil {
		return err
	}
	switch sock.Proto {
	default:
		if err := s.dialTLS(s.ctx, s.cur.Load(), sock, hop, addr); err != nil { // outbound TLS (tls.go)
			return err
		}
		out.SetTransport(upperProto(sock.Proto))
		out.SetDestination(addr.String())
		out.Laddr = sip.Addr{}
		return s.tpl.WriteMsg(out)
	}
}

// checkDest refuses destinations a proxy must never send to.
func checkDest(ip net.IP) error {
	if ip.IsUnspecified() || ip.IsMulticast() || ip.Equal(net.IPv4bcast) {
		return fmt.Errorf("refusing to send to %s", ip)
	}
	return nil
}

// checkDestAddr is checkDest for a netip address.
func checkDestAddr(a netip.Addr) error {
	if a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return fmt.Errorf("refusing to send to %s", a)
	}
	return nil
}

func (s *Server) writeUDP(sock *Socket, msg sip.Message, addr netip.AddrPort) error {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	msg.StringWrite(buf)
	_, err := sock.pc.WriteToUDPAddrPort(buf.Bytes(), addr)
	bufPool.Put(buf)
	return err
}

// sendResponse sends a response without a transaction to the address its
// top Via names (received/rport honoured).
func (s *Server) sendResponse(res *sip.Response, prefer *Socket) error {
	via := res.Via()
	if via == nil {
		return fmt.Errorf("response without Via")
	}
	proto := lowerProto(via.Transport)
	host := via.Host
	port := via.Port
	if r, ok := via.Params.Get("received"); ok && r != "" {
		host = r
	}
	if rp, ok := via.Params.Get("rport"); ok && rp != "" {
		if p, err := strconv.Atoi(rp); err == nil {
			port = p
		}
	}
	if port == 0 {
		port = msgctx.Hop{Proto: proto}.PortOrDefault()
	}
	host = strings.Trim(host, "[]")
	switch proto {
	case "udp":
		sock := s.socketFor("udp", prefer)
		if sock == nil {
			return fmt.Errorf("no udp socket")
		}
		ap, err := resolveUDP(s.ctx, host, port)
		if err != nil {
			return err
		}
		if err := checkDestAddr(ap.Addr()); err != nil {
			return err
		}
		return s.writeUDP(sock, res, ap)
	default:
		dst := net.JoinHostPort(host, strconv.Itoa(port))
		res.SetTransport(upperProto(proto))
		res.SetDestination(dst)
		conn, err := s.tpl.GetConnection(proto, dst)
		if err != nil {
			return fmt.Errorf("no %s connection to %s: %w", proto, dst, err)
		}
		defer conn.TryClose()
		return conn.WriteMsg(res)
	}
}

// handleStrayResponse handles replies that match no client transaction:
// replies to statelessly forwarded requests and late retransmissions. They
// run the global onreply_route and are relayed to the next Via, as OpenSIPS
// does. (onStrayResponse, perf.go, decides where it runs.)
func (s *Server) handleStrayResponse(res *sip.Response) {
	s.stats.RcvReplies.Add(1)
	defer func() {
		if p := recover(); p != nil {
			s.stats.Panics.Add(1)
			s.log.Logf(msgctx.LCrit, "core", "panic relaying a %d reply from %s: %v", res.StatusCode, res.Source(), p)
		}
	}()
	if res.StatusCode < 100 || res.StatusCode > 699 || res.Via() == nil || res.CSeq() == nil {
		s.stats.ErrReplies.Add(1)
		s.stats.DropReplies.Add(1)
		return
	}
	via := res.Via()
	if !s.Myself(via.Host, via.Port) {
		// not sent by us: never relay (RFC 3261 18.1.2)
		s.stats.DropReplies.Add(1)
		s.log.Logf(msgctx.LDbg, "core", "dropping %d reply from %s: top Via %s is not ours", res.StatusCode, res.Source(), via.SentBy())
		return
	}
	gen := s.cur.Load()
	if gen.onreply >= 0 {
		c := s.newCall(gen, ast.OnReplyRoute)
		c.m.Resp = res
		c.m.Src = srcAddr(res)
		c.m.T.Code = res.StatusCode
		out := c.run(gen.onreply)
		s.putCall(c)
		if out == vm.Dropped {
			s.stats.DropReplies.Add(1)
			return
		}
	}
	res.RemoveHeader("Via")
	if res.Via() == nil {
		s.stats.DropReplies.Add(1)
		return
	}
	if err := s.sendResponse(res, nil); err != nil {
		s.stats.DropReplies.Add(1)
		s.log.Logf(msgctx.LWarn, "core", "cannot relay %d reply: %v", res.StatusCode, err)
		return
	}
	s.stats.FwdReplies.Add(1)
}
