package sipstack

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/runtime/msgctx"
)

// Unparseable requests over UDP are answered 400.
//
// sipgo parses a datagram in the goroutine that read it and, when that
// fails, only logs "failed to parse" (with the datagram, without its
// source) and reads the next one. Parsing every datagram a second time to
// catch those would double the receive path's biggest cost, so the
// failure is caught where it surfaces instead:
//
//   - each UDP reader reads through a udpReader, which remembers the last
//     datagram it returned (sipgo's read buffer is untouched until the
//     same reader's next read) and its source;
//   - the slog bridge (log.go) notes the failing datagram's text;
//   - the reader's next ReadFrom, on the same goroutine, finds its previous
//     datagram among the noted ones and answers it.
//
// On the path of a parseable datagram this costs one atomic load and two
// field stores per read (BenchmarkUDPReader). The 400 is built from the raw
// text: it copies the Via, From, To, Call-ID and CSeq lines and goes to the
// datagram's source address. Only what looks like a request with a Via is
// answered; error_route does not run (there is no message for it).

// udpReader is the net.PacketConn a UDP socket's reader serves.
type udpReader struct {
	net.PacketConn // the socket's *net.UDPConn
	s              *Server
	sock           *Socket
	last           []byte // the datagram returned by the previous ReadFrom
	lastAddr       net.Addr
}

func (s *Server) newUDPReader(sock *Socket) *udpReader {
	return &udpReader{PacketConn: sock.pc, s: s, sock: sock} // sock.pc: rawudp_linux.go
}

func (r *udpReader) ReadFrom(b []byte) (int, net.Addr, error) {
	if r.last != nil && r.s.bad.pending.Load() > 0 {
		r.claimBad()
	}
	n, addr, err := r.PacketConn.ReadFrom(b)
	if err != nil {
		r.last, r.lastAddr = nil, nil
		return n, addr, err
	}
	r.last, r.lastAddr = b[:n], addr
	return n, addr, err
}

// badMsgs are the datagrams sipgo failed to parse, not yet claimed by the
// reader that read them.
type badMsgs struct {
	pending atomic.Int32
	mu      sync.Mutex
	list    []badMsg
}

type badMsg struct {
	data string
	why  string
	at   time.Time
}

const (
	maxBadPending = 32
	badMsgTTL     = 2 * time.Second
)

// note records a datagram sipgo's UDP transport could not parse (log.go).
func (b *badMsgs) note(data, why string) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pruneLocked(now)
	if len(b.list) >= maxBadPending {
		b.list = b.list[1:]
		b.pending.Add(-1)
	}
	b.list = append(b.list, badMsg{data: data, why: why, at: now})
	b.pending.Add(1)
}

func (b *badMsgs) pruneLocked(now time.Time) {
	i := 0
	for i < len(b.list) && now.Sub(b.list[i].at) > badMsgTTL {
		i++
	}
	if i > 0 {
		b.list = append(b.list[:0], b.list[i:]...)
		b.pending.Add(int32(-i))
	}
}

// take removes and returns the noted failure for data.
func (b *badMsgs) take(data []byte) (badMsg, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, m := range b.list {
		if m.data == string(data) {
			b.list = append(b.list[:i], b.list[i+1:]...)
			b.pending.Add(-1)
			return m, true
		}
	}
	b.pruneLocked(time.Now())
	return badMsg{}, false
}

func (r *udpReader) claimBad() {
	m, ok := r.s.bad.take(r.last)
	if !ok {
		return
	}
	res := badRequestReply(r.last, m.why, r.s.serverHeader())
	if res == nil {
		return
	}
	if _, err := r.PacketConn.WriteTo(res, r.lastAddr); err != nil {
		r.s.log.Logf(msgctx.LDbg, "core", "400 to the unparseable request from %s: %v", r.lastAddr, err)
		return
	}
	r.s.stats.LocalReplies.Add(1)
	r.s.log.Logf(msgctx.LInfo, "core", "unparseable request from %s answered 400", r.lastAddr)
}

// badRequestReply is the 400 to a request sipgo could not parse, built
// from its text, or nil when the text does not look like a request with a
// Via (a reply, or garbage, is dropped).
func badRequestReply(data []byte, why, server string) []byte {
	head := data
	if i := bytes.Index(head, []byte("\r\n\r\n")); i >= 0 {
		head = head[:i]
	} else if i := bytes.Index(head, []byte("\n\n")); i >= 0 {
		head = head[:i]
	}
	lines := strings.Split(strings.ReplaceAll(string(head), "\r\n", "\n"), "\n")
	if len(lines) == 0 || !looksLikeRequestLine(lines[0]) {
		return nil
	}
	// unfold continuation lines
	var hdrs []string
	for _, l := range lines[1:] {
		if l != "" && (l[0] == ' ' || l[0] == '\t') && len(hdrs) > 0 {
			hdrs[len(hdrs)-1] += " " + strings.TrimSpace(l)
			continue
		}
		hdrs = append(hdrs, l)
	}
	var b strings.Builder
	b.WriteString("SIP/2.0 400 Bad Request\r\n")
	vias := 0
	for _, want := range []string{"via", "from", "to", "call-id", "cseq"} {
		for _, h := range hdrs {
			name, val, ok := strings.Cut(h, ":")
			if !ok || headerName(name) != want {
				continue
			}
			val = strings.TrimSpace(val)
			if want == "to" && !strings.Contains(strings.ToLower(val), ";tag=") {
				val += ";tag=" + newTxID()
			}
			b.WriteString(canonicalName(want) + ": " + val + "\r\n")
			if want == "via" {
				vias++
			}
		}
	}
	if vias == 0 {
		return nil
	}
	if server != "" {
		b.WriteString("Server: " + server + "\r\n")
	}
	if len(why) > 200 {
		why = why[:200]
	}
	why = strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < ' ' {
			return '\''
		}
		return r
	}, why)
	b.WriteString(`Warning: 399 sipedge "unparseable request: ` + why + "\"\r\n")
	b.WriteString("Content-Length: 0\r\n\r\n")
	return []byte(b.String())
}

// looksLikeRequestLine: "METHOD SP something SP SIP/x.y".
func looksLikeRequestLine(l string) bool {
	f := strings.Fields(l)
	if len(f) < 3 || !strings.HasPrefix(strings.ToUpper(f[len(f)-1]), "SIP/") {
		return false
	}
	for _, r := range f[0] {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("-.!%*_+`'~", r)) {
			return false
		}
	}
	return !strings.HasPrefix(strings.ToUpper(f[0]), "SIP/")
}

// headerName is a header's canonical lower-case long name (compact forms
// expanded).
func headerName(n string) string {
	n = strings.ToLower(strings.TrimSpace(n))
	switch n {
	case "v":
		return "via"
	case "f":
		return "from"
	case "t":
		return "to"
	case "i":
		return "call-id"
	}
	return n
}

func canonicalName(n string) string {
	switch n {
	case "via":
		return "Via"
	case "from":
		return "From"
	case "to":
		return "To"
	case "call-id":
		return "Call-ID"
	case "cseq":
		return "CSeq"
	}
	return n
}

// noteBadUDP notes the datagram of a "failed to parse" record of sipgo's
// UDP transport.
func (h *slogHandler) noteBadUDP(r slog.Record) {
	caller, data, why := "", "", ""
	for _, a := range h.attrs {
		if a.Key == "caller" {
			caller = a.Value.String()
		}
	}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "caller":
			caller = a.Value.String()
		case "data":
			data = a.Value.String()
		case "error":
			why = a.Value.String()
		}
		return true
	})
	if caller == "Transport<UDP>" && data != "" {
		h.s.bad.note(data, why)
	}
}
