package rtprelay

import (
	"bytes"
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// The SDP code is line based on purpose: every line the relay does not
// need to change is written back byte for byte, in its place, and values a
// strict parser would refuse (a port above 65535, an address that does not
// parse) are kept as text so the relay can count them and refuse to relay
// them instead of failing the whole body.

// sdpDoc is a parsed body: its lines and where the interesting ones are.
type sdpDoc struct {
	lines  []string
	eol    string // "\r\n" or "\n", as the body used
	origin int    // index of o=, -1 if none
	conn   int    // index of the session-level c=, -1 if none
	connIP connAddr
	dir    string // session-level direction attribute, "" if none
	marker []int  // indexes of marker lines (a=nortpproxy:…)
	media  []*sdpMedia
}

// connAddr is the address of a c= line.
type connAddr struct {
	addr  netip.Addr
	valid bool   // the address parsed
	raw   string // as written
}

// sdpMedia is one m= section: lines[start:end] of the doc.
type sdpMedia struct {
	start, end int
	typ        string
	port       int // -1 when the port field is not a number in 0..65535
	nports     int // from "port/n"; 1 when absent
	portRaw    string
	proto      string
	conn       int // index of the media-level c=, -1 if none
	connIP     connAddr
	rtcp       int // index of a=rtcp:, -1 if none
	rtcpPort   int
	rtcpIP     connAddr // address given in a=rtcp, if any
	dir        string
	mux        bool
	rtpmap     []ptRate
}

type ptRate struct {
	pt   uint8
	rate uint32
}

// errNotSDP is returned for bodies that are not SDP at all.
var errNotSDP = errors.New("body is not SDP (no v= line)")

// parseSDP splits a body into lines and finds the connection, origin,
// media and attribute lines the relay rewrites.
func parseSDP(body []byte, marker string) (*sdpDoc, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errors.New("empty SDP body")
	}
	d := &sdpDoc{eol: "\n", origin: -1, conn: -1}
	if bytes.Contains(body, []byte("\r\n")) {
		d.eol = "\r\n"
	}
	text := strings.ReplaceAll(string(body), "\r\n", "\n")
	text = strings.TrimRight(text, "\n")
	d.lines = strings.Split(text, "\n")
	if !strings.HasPrefix(strings.TrimSpace(d.lines[0]), "v=") {
		return nil, errNotSDP
	}
	var cur *sdpMedia
	for i, raw := range d.lines {
		l := strings.TrimRight(raw, " \t\r")
		if len(l) < 2 || l[1] != '=' {
			continue
		}
		val := l[2:]
		switch l[0] {
		case 'm':
			if cur != nil {
				cur.end = i
			}
			cur = parseMediaLine(i, val)
			d.media = append(d.media, cur)
		case 'o':
			if cur == nil && d.origin < 0 {
				d.origin = i
			}
		case 'c':
			ca := parseConn(val)
			if cur == nil {
				if d.conn < 0 {
					d.conn, d.connIP = i, ca
				}
			} else if cur.conn < 0 {
				cur.conn, cur.connIP = i, ca
			}
		case 'a':
			name, arg, _ := strings.Cut(val, ":")
			if marker != "" && l == marker {
				d.marker = append(d.marker, i)
				continue
			}
			switch name {
			case "sendrecv", "sendonly", "recvonly", "inactive":
				if cur == nil {
					d.dir = name
				} else {
					cur.dir = name
				}
			}
			if cur == nil {
				continue
			}
			switch name {
			case "rtcp":
				if cur.rtcp < 0 {
					cur.rtcp = i
					f := strings.Fields(arg)
					cur.rtcpPort = -1
					if len(f) > 0 {
						if p, err := strconv.Atoi(f[0]); err == nil && p > 0 && p <= 65535 {
							cur.rtcpPort = p
						}
					}
					if len(f) >= 4 {
						cur.rtcpIP = parseConn(strings.Join(f[1:], " "))
					}
				}
			case "rtcp-mux":
				cur.mux = true
			case "rtpmap":
				f := strings.Fields(arg)
				if len(f) == 2 {
					pt, err := strconv.Atoi(f[0])
					enc := strings.Split(f[1], "/")
					if err == nil && pt >= 0 && pt < 128 && len(enc) >= 2 {
						if rate, err := strconv.ParseUint(enc[1], 10, 32); err == nil {
							cur.rtpmap = append(cur.rtpmap, ptRate{uint8(pt), uint32(rate)})
						}
					}
				}
			}
		}
	}
	if cur != nil {
		cur.end = len(d.lines)
	}
	return d, nil
}

func parseMediaLine(i int, val string) *sdpMedia {
	m := &sdpMedia{start: i, conn: -1, rtcp: -1, port: -1, nports: 1}
	f := strings.Fields(val)
	if len(f) > 0 {
		m.typ = f[0]
	}
	if len(f) > 1 {
		m.portRaw = f[1]
		ps, ns, hasN := strings.Cut(f[1], "/")
		if p, err := strconv.Atoi(ps); err == nil && p >= 0 && p <= 65535 && ps != "" && ps[0] != '+' {
			m.port = p
		}
		if hasN {
			if n, err := strconv.Atoi(ns); err == nil && n > 0 {
				m.nports = n
			}
		}
	}
	if len(f) > 2 {
		m.proto = f[2]
	}
	return m
}

// parseConn reads "IN IP4 1.2.3.4[/ttl[/n]]".
func parseConn(val string) connAddr {
	f := strings.Fields(val)
	ca := connAddr{}
	if len(f) < 3 {
		return ca
	}
	ca.raw = f[2]
	host, _, _ := strings.Cut(f[2], "/")
	if f[0] != "IN" || (f[1] != "IP4" && f[1] != "IP6") {
		return ca
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return ca
	}
	if (f[1] == "IP4") != a.Unmap().Is4() {
		return ca
	}
	ca.addr, ca.valid = a.Unmap(), true
	return ca
}

// effectiveConn is the address that applies to a media section.
func (d *sdpDoc) effectiveConn(m *sdpMedia) (connAddr, bool) {
	if m.conn >= 0 {
		return m.connIP, true
	}
	if d.conn >= 0 {
		return d.connIP, true
	}
	return connAddr{}, false
}

// direction is the media's direction attribute, session level as fallback.
func (d *sdpDoc) direction(m *sdpMedia) string {
	if m.dir != "" {
		return m.dir
	}
	if d.dir != "" {
		return d.dir
	}
	return "sendrecv"
}

// iceAttr tells the ICE attributes the relay strips: it has no ICE agent,
// so candidates would let endpoints bypass it (and leak their addresses).
func iceAttr(line string) bool {
	if !strings.HasPrefix(line, "a=") {
		return false
	}
	name, _, _ := strings.Cut(line[2:], ":")
	switch strings.ToLower(name) {
	case "candidate", "ice-ufrag", "ice-pwd", "ice-options", "ice-lite",
		"remote-candidates", "end-of-candidates", "ice-mismatch", "ice-pacing":
		return true
	}
	return false
}

func addrType(a netip.Addr) string {
	if a.Is4() {
		return "IP4"
	}
	return "IP6"
}

// mediaEdit is what the relay decided for one media section.
type mediaEdit struct {
	relay   bool // rewrite port and address
	reject  bool // write port 0 (bogus port, refused stream)
	port    int  // relay RTP port
	addr    netip.Addr
	keepC   bool   // the stream is on hold (c=0.0.0.0): keep its address
	proto   string // new transport profile, "" to keep
	addConn bool   // insert a media-level c= (the SDP had none at all)
}

// sdpEdit is the whole rewrite.
type sdpEdit struct {
	media       []mediaEdit
	origin      netip.Addr // replace o= address when valid
	sessConn    netip.Addr // replace session c= when valid
	removeICE   bool
	dropMarkers bool
	addMarker   string
}

// render writes the rewritten body.
func (d *sdpDoc) render(e *sdpEdit) []byte {
	var b strings.Builder
	b.Grow(len(d.lines) * 40)
	mi := -1
	skipMarker := map[int]bool{}
	if e.dropMarkers {
		for _, i := range d.marker {
			skipMarker[i] = true
		}
	}
	for i, line := range d.lines {
		for mi+1 < len(d.media) && d.media[mi+1].start == i {
			mi++
		}
		if skipMarker[i] || (e.removeICE && iceAttr(line)) {
			continue
		}
		var me *mediaEdit
		var m *sdpMedia
		if mi >= 0 && mi < len(e.media) {
			me, m = &e.media[mi], d.media[mi]
		}
		switch {
		case i == d.origin && e.origin.IsValid():
			line = rewriteOrigin(line, e.origin)
		case i == d.conn && e.sessConn.IsValid():
			line = "c=IN " + addrType(e.sessConn) + " " + e.sessConn.String()
		case me != nil && i == m.start:
			line = rewriteMediaLine(line, me)
		case me != nil && me.relay && i == m.conn && !me.keepC:
			line = "c=IN " + addrType(me.addr) + " " + me.addr.String()
		case me != nil && me.relay && i == m.rtcp:
			line = "a=rtcp:" + strconv.Itoa(me.port+1)
			if m.rtcpIP.raw != "" {
				line += " IN " + addrType(me.addr) + " " + me.addr.String()
			}
		}
		b.WriteString(line)
		b.WriteString(d.eol)
		if me != nil && i == m.start && me.relay && me.addConn {
			b.WriteString("c=IN " + addrType(me.addr) + " " + me.addr.String())
			b.WriteString(d.eol)
		}
	}
	if e.addMarker != "" {
		b.WriteString(e.addMarker)
		b.WriteString(d.eol)
	}
	return []byte(b.String())
}

func rewriteOrigin(line string, a netip.Addr) string {
	f := strings.Fields(line[2:])
	if len(f) < 6 {
		return line
	}
	f[4], f[5] = addrType(a), a.String()
	return "o=" + strings.Join(f, " ")
}

func rewriteMediaLine(line string, me *mediaEdit) string {
	if !me.relay && !me.reject && me.proto == "" {
		return line
	}
	f := strings.Fields(line[2:])
	if len(f) < 3 {
		if me.reject && len(f) >= 2 {
			f[1] = "0"
			return "m=" + strings.Join(f, " ")
		}
		return line
	}
	switch {
	case me.reject:
		f[1] = "0"
	case me.relay:
		f[1] = strconv.Itoa(me.port)
	}
	if me.proto != "" {
		f[2] = me.proto
	}
	return "m=" + strings.Join(f, " ")
}
