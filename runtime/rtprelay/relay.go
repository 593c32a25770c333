package rtprelay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options tune a Relay itself; per-script settings live in a Profile.
type Options struct {
	// Tick is how often inactivity timeouts are checked (default 1s).
	Tick time.Duration
}

// Relay is the process-lifetime media relay: port pools, sessions and the
// goroutines that forward packets. Script reloads create new Profiles on
// the same Relay and never touch its sessions.
type Relay struct {
	tick time.Duration

	mu      sync.Mutex
	pools   map[poolKey]*portPool
	calls   map[string][]*Session
	retired EndpointStats // totals of endpoints already released

	onTimeout atomic.Pointer[func(callID, fromTag string)]

	created, deleted, timedOut atomic.Uint64
	bogus, disabled, allocFail atomic.Uint64
	drained                    atomic.Uint64

	stop      chan struct{}
	closeOnce sync.Once
}

type poolKey struct {
	bind     netip.Addr
	min, max int
}

// New starts a relay (its timeout goroutine); Close stops it.
func New(o Options) *Relay {
	if o.Tick <= 0 {
		o.Tick = time.Second
	}
	r := &Relay{
		tick:  o.Tick,
		pools: map[poolKey]*portPool{},
		calls: map[string][]*Session{},
		stop:  make(chan struct{}),
	}
	go r.janitor()
	return r
}

var defaultRelay = sync.OnceValue(newDefault) // default.go

// Default is the relay of the process, shared by the rtpproxy and
// rtpengine modules; it is created on first use and never closed.
func Default() *Relay { return defaultRelay() }

// SetOnTimeout installs the hook called (outside the relay's lock, from
// its timer goroutine) when a session timed out for lack of media. The
// session is already deleted when it runs; fromTag is the From tag of the
// dialog's initial INVITE, so the dialog module can find and end the call.
// The hook must not block (it runs on the timeout goroutine): hand the work
// to another goroutine if ending the call takes time. Nil removes it.
func (r *Relay) SetOnTimeout(f func(callID, fromTag string)) {
	if f == nil {
		r.onTimeout.Store(nil)
		return
	}
	r.onTimeout.Store(&f)
}

// Close stops the relay and releases every session's ports at once.
func (r *Relay) Close() {
	r.closeOnce.Do(func() {
		close(r.stop)
		r.mu.Lock()
		for _, list := range r.calls {
			for _, s := range list {
				s.drain = 0
				r.removeLocked(s)
			}
		}
		r.mu.Unlock()
	})
}

// ProfileConfig is one script generation's relay settings (the modparams).
type ProfileConfig struct {
	Interfaces []Interface // the first one is the default
	// Timeout ends a session whose media stopped for this long (0: never).
	Timeout time.Duration
	// HoldTimeout replaces Timeout while a stream is on hold or not
	// sendrecv (one-way or no media is expected then).
	HoldTimeout time.Duration
	// SetupTimeout drops a session that never got an answer.
	SetupTimeout time.Duration
	// DrainTime keeps released ports bound, swallowing late packets,
	// before they can be handed out again.
	DrainTime time.Duration
}

// Default timeouts (rtpengine's timeout and silent-timeout, rtpproxy's -W).
const (
	DefaultTimeout      = 60 * time.Second
	DefaultHoldTimeout  = time.Hour
	DefaultSetupTimeout = 180 * time.Second
	DefaultDrainTime    = 5 * time.Second
)

// CheckProfile validates a configuration without touching the relay, for a
// module's Configure (a rejected reload must change nothing).
func CheckProfile(cfg ProfileConfig) error {
	if err := CheckInterfaces(cfg.Interfaces); err != nil {
		return err
	}
	if cfg.Timeout < 0 || cfg.HoldTimeout < 0 || cfg.SetupTimeout < 0 || cfg.DrainTime < 0 {
		return errors.New("timeouts cannot be negative")
	}
	return nil
}

// Profile is a set of named interfaces and timeouts, as one script
// generation configured them. Sessions keep the profile they were created
// with, so a reload that changes the modparams affects new calls only.
type Profile struct {
	relay  *Relay
	cfg    ProfileConfig
	ifaces map[string]*iface
	def    *iface
}

type iface struct {
	Interface
	pool *portPool
}

// NewProfile checks cfg and binds it to the relay's port pools: an
// interface whose address and range a live pool already has shares that
// pool (and the ports in use), which is how sessions survive reloads.
func (r *Relay) NewProfile(cfg ProfileConfig) (*Profile, error) {
	if err := CheckProfile(cfg); err != nil {
		return nil, err
	}
	p := &Profile{relay: r, cfg: cfg, ifaces: map[string]*iface{}}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, in := range cfg.Interfaces {
		k := poolKey{in.Bind, in.MinPort, in.MaxPort}
		pool := r.pools[k]
		if pool == nil {
			pool = newPool(in.Bind, in.MinPort, in.MaxPort)
			r.pools[k] = pool
		}
		ifc := &iface{Interface: in, pool: pool}
		p.ifaces[in.Name] = ifc
		if p.def == nil {
			p.def = ifc
		}
	}
	return p, nil
}

// Relay is the relay the profile belongs to.
func (p *Profile) Relay() *Relay { return p.relay }

// Config is what the profile was made from.
func (p *Profile) Config() ProfileConfig { return p.cfg }

// HasInterface tells whether name is defined.
func (p *Profile) HasInterface(name string) bool { return p.ifaces[name] != nil }

func (p *Profile) lookup(name string) (*iface, error) {
	if name == "" {
		return p.def, nil
	}
	if ifc := p.ifaces[name]; ifc != nil {
		return ifc, nil
	}
	names := make([]string, 0, len(p.ifaces))
	for n := range p.ifaces {
		names = append(names, n)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("no media interface named %q (have %s)", name, strings.Join(names, ", "))
}

// Op is what an SDP body is in the offer/answer exchange.
type Op uint8

const (
	Offer Op = iota + 1
	Answer
)

func (o Op) String() string {
	if o == Answer {
		return "answer"
	}
	return "offer"
}

// Request asks the relay to take an SDP offer or answer through it.
type Request struct {
	Op     Op
	CallID string
	// FromTag and ToTag are the message's From and To tags. Reply says the
	// SDP is in a reply, whose sender is the To side.
	FromTag, ToTag string
	Reply          bool
	Body           []byte

	// InIface is the interface facing the sender of this SDP, OutIface the
	// one facing its recipient ("" = the first interface). They are used
	// when the session is created; later offers keep the session's.
	InIface, OutIface string

	// TrustAddress sends media to the SDP's address; otherwise to the SIP
	// source address (SIPSource) with the SDP's ports.
	TrustAddress bool
	SIPSource    netip.Addr
	// MediaAddress, when valid, is written into the SDP instead of the
	// interface's advertised address.
	MediaAddress netip.Addr

	ReplaceOrigin      bool   // rewrite o= too
	ReplaceSessionConn bool   // rewrite session-level c= even when every m= has its own
	Profile            string // new transport profile for m= lines ("RTP/AVP"…), "" keeps
	Asymmetric         bool   // the sender does not do symmetric RTP: no latching on its side
	Handover           bool   // re-latch when the sender's source moves (rtpengine media-handover)
	LookupOnly         bool   // only act on an existing session (rtpproxy l, rtpengine force-answer)
	KeepBody           bool   // create/update the session, return the body unchanged (rtpproxy k)
	// Marker is an SDP line (without line end) added to the rewritten body
	// and whose presence in an incoming body means it already went through
	// a relay; Force ignores it.
	Marker string
	Force  bool
	// Timeout, when positive, replaces the profile's media timeout for
	// this session (rtpproxy tNN).
	Timeout time.Duration
}

// Result is what a Process call did.
type Result struct {
	Body     []byte
	Created  bool           // a new session was made
	Streams  int            // m= lines seen
	Relayed  int            // streams going through the relay
	Disabled int            // port 0 streams
	Bogus    int            // streams with an unusable port or address
	Addr     netip.AddrPort // address of the first relayed stream as written in the SDP
}

// Errors of Process.
var (
	ErrNoSession      = errors.New("no relay session for this call")
	ErrAlreadyRelayed = errors.New("SDP already went through a media relay (marker present)")
	ErrNoPorts        = errNoPorts
)

// Session is the relay state of one call leg pair: side 0 is the party
// whose SDP created it (the caller for an offer in the INVITE), side 1 the
// other. Each side has a tag, an interface and, per stream, an RTP+RTCP
// socket pair facing that party.
type Session struct {
	callID   string
	dlgFrom  string // From tag of the dialog
	tags     [2]string
	sides    [2]sideState
	streams  []*stream
	created  time.Time
	touched  int64 // mono() of the last offer/answer
	answered bool
	pending  int // side+1 whose offer awaits an answer, 0 none
	answerBy int // side+1 that sent the last answer, 0 after an offer
	hold     bool
	timeout  time.Duration
	holdTO   time.Duration
	setupTO  time.Duration
	drain    time.Duration
	gone     bool
}

type sideState struct {
	ifc       *iface
	asym      bool
	handover  bool
	sentSDP   bool
	mediaAddr netip.Addr
}

type stream struct {
	media  string
	legs   [2]*leg
	clock  atomic.Pointer[[128]uint32]
	hold   [2]bool
	active bool
}

// leg is the socket pair of one stream facing one party.
type leg struct {
	ifc  *iface
	port int
	ep   [2]*endpoint // RTP, RTCP
}

// endpoint is one socket and what the relay knows of the party it faces.
// Its reader goroutine forwards what arrives to the peer endpoint (same
// stream and kind, other side), which sends it from its own socket.
type endpoint struct {
	relay   *Relay
	conn    *net.UDPConn
	rtcp    bool
	peer    *endpoint
	str     *stream
	target  atomic.Pointer[netip.AddrPort] // from SDP
	latched atomic.Pointer[netip.AddrPort] // learnt from the first packet
	mode    atomic.Uint32
	c       counters
	rs      rtpState // reader goroutine only
}

const (
	modeAsym uint32 = 1 << iota
	modeHandover
	modeDetached
)

// maxDatagram is the read buffer of each socket; a datagram that fills it
// may have been truncated and is dropped.
const maxDatagram = 2048

// Process takes an SDP offer or answer through the relay: it finds or
// creates the session, allocates ports for new streams, records where the
// sender wants media and rewrites the body to point at the relay.
func (p *Profile) Process(req *Request) (*Result, error) {
	doc, err := parseSDP(req.Body, req.Marker)
	if err != nil {
		return nil, err
	}
	if len(doc.marker) > 0 && !req.Force {
		return nil, ErrAlreadyRelayed
	}
	if err := checkProfiles(doc, req.Profile); err != nil {
		return nil, err
	}
	sender, recipient := req.FromTag, req.ToTag
	if req.Reply {
		sender, recipient = recipient, sender
	}
	r := p.relay
	r.mu.Lock()
	defer r.mu.Unlock()
	s, sd := r.findLocked(req.CallID, sender, recipient)
	res := &Result{Streams: len(doc.media)}
	if s == nil {
		if req.Op == Answer || req.LookupOnly {
			return nil, ErrNoSession
		}
		in, err := p.lookup(req.InIface)
		if err != nil {
			return nil, err
		}
		out, err := p.lookup(req.OutIface)
		if err != nil {
			return nil, err
		}
		s = &Session{
			callID: req.CallID, dlgFrom: req.FromTag, tags: [2]string{sender, recipient},
			created: time.Now(), touched: mono(),
		}
		s.sides[0].ifc, s.sides[1].ifc = in, out
		sd = 0
		r.calls[req.CallID] = append(r.calls[req.CallID], s)
		r.created.Add(1)
		res.Created = true
	}
	s.timeout, s.holdTO, s.setupTO, s.drain = p.cfg.Timeout, p.cfg.HoldTimeout, p.cfg.SetupTimeout, p.cfg.DrainTime
	if req.Timeout > 0 {
		s.timeout = req.Timeout
	}
	rc := 1 - sd
	side := &s.sides[sd]
	side.asym, side.handover, side.sentSDP = req.Asymmetric, req.Handover, true
	if req.MediaAddress.IsValid() {
		s.sides[rc].mediaAddr = req.MediaAddress
	}
	edit := &sdpEdit{removeICE: true, dropMarkers: req.Force}
	if !req.KeepBody && req.Marker != "" {
		edit.addMarker = req.Marker
	}
	hold := false
	relayedNoConn := false
	for i, m := range doc.media {
		var st *stream
		switch {
		case i < len(s.streams):
			st = s.streams[i]
		case req.Op == Offer:
			st = &stream{media: m.typ}
			s.streams = append(s.streams, st)
		default:
			// an answer with more m= lines than the offer
			edit.media = append(edit.media, mediaEdit{reject: true})
			res.Bogus++
			r.bogus.Add(1)
			continue
		}
		me := mediaEdit{}
		switch {
		case m.port == 0:
			res.Disabled++
			r.disabled.Add(1)
			r.stopStreamLocked(s, st)
		case m.port < 0 || m.port+1 > 65535:
			me.reject = true
			res.Bogus++
			r.bogus.Add(1)
			r.stopStreamLocked(s, st)
		default:
			if !st.active {
				if err := r.startStreamLocked(s, st); err != nil {
					if res.Created {
						r.removeLocked(s) // a half-made session would only linger
					}
					return nil, err
				}
			}
			bogus, held := r.setTargets(s, st, sd, doc, m, req)
			if bogus {
				res.Bogus++
				r.bogus.Add(1)
			}
			if held || doc.direction(m) != "sendrecv" {
				hold = true
			}
			st.media = m.typ
			st.mergeClock(m)
			addr := s.advertise(rc)
			me.relay, me.port, me.addr = true, st.legs[rc].port, addr
			me.keepC = held && m.conn >= 0
			me.addConn = m.conn < 0 && doc.conn < 0
			if m.conn < 0 {
				relayedNoConn = true
			}
			if req.Profile != "" {
				me.proto = req.Profile
			}
			res.Relayed++
			if !res.Addr.IsValid() {
				res.Addr = netip.AddrPortFrom(addr, uint16(me.port))
			}
		}
		edit.media = append(edit.media, me)
	}
	if doc.conn >= 0 && (relayedNoConn || req.ReplaceSessionConn) && res.Relayed > 0 &&
		!(doc.connIP.valid && doc.connIP.addr.IsUnspecified()) {
		edit.sessConn = s.advertise(rc)
	}
	if req.ReplaceOrigin {
		edit.origin = s.advertise(rc)
	}
	s.answered = s.sides[0].sentSDP && s.sides[1].sentSDP
	if req.Op == Offer {
		s.pending, s.answerBy = sd+1, 0
	} else {
		s.pending, s.answerBy = 0, sd+1
	}
	s.hold = hold
	s.touched = mono()
	if req.KeepBody {
		res.Body = req.Body
	} else {
		res.Body = doc.render(edit)
	}
	return res, nil
}

// checkProfiles refuses transport changes that need SRTP, which the relay
// does not terminate: only AVP <-> AVPF renames are possible.
func checkProfiles(doc *sdpDoc, want string) error {
	if want == "" {
		return nil
	}
	secure := func(p string) bool { return strings.Contains(p, "SAVP") }
	for _, m := range doc.media {
		if m.port <= 0 || !strings.Contains(m.proto, "RTP/") {
			continue
		}
		if secure(m.proto) != secure(want) || strings.Contains(m.proto, "TLS") {
			return fmt.Errorf("cannot turn %s into %s: the relay forwards packets as they are and does not do SRTP/DTLS", m.proto, want)
		}
	}
	return nil
}

func (s *Session) advertise(side int) netip.Addr {
	if a := s.sides[side].mediaAddr; a.IsValid() {
		return a
	}
	return s.sides[side].ifc.Advertise
}

// findLocked finds the session of a call from the tags of an SDP's sender
// and recipient, and which side the sender is. An answer from an unknown
// tag to side 0 makes that tag side 1 (the first answer, or a later fork's:
// the latest answer wins).
func (r *Relay) findLocked(callID, sender, recipient string) (*Session, int) {
	list := r.calls[callID]
	for _, s := range list {
		if s.tags[0] == sender {
			return s, 0
		}
		if s.tags[1] != "" && s.tags[1] == sender {
			return s, 1
		}
	}
	for _, s := range list {
		if recipient != "" && s.tags[0] == recipient {
			s.tags[1] = sender
			return s, 1
		}
	}
	return nil, 0
}

// Expecting tells what an SDP sent by this message's sender would be in
// the call's offer/answer exchange: Answer when the other party has an
// offer outstanding, Offer otherwise (no session, or nothing pending). It
// lets rtpengine_manage and rtpproxy_engage tell an answer in a 200 from a
// late offer without asking the transaction layer.
func (r *Relay) Expecting(callID, fromTag, toTag string, reply bool) Op {
	sender, recipient := fromTag, toTag
	if reply {
		sender, recipient = recipient, sender
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.calls[callID] {
		sd := -1
		switch {
		case s.tags[0] == sender:
			sd = 0
		case s.tags[1] != "" && s.tags[1] == sender:
			sd = 1
		case recipient != "" && s.tags[0] == recipient:
			sd = 1
		}
		if sd < 0 {
			continue
		}
		// the other side's offer is outstanding, or this side answered and
		// repeats its answer in a later reply (183 then 200)
		if s.pending == 2-sd || (reply && s.pending == 0 && s.answerBy == sd+1) {
			return Answer
		}
		return Offer
	}
	return Offer
}

// Teardown deletes every session of a call and, if any was deleted, calls
// the end-call hook (SetOnTimeout) as a media timeout would: the MI
// "teardown" command. It returns how many sessions went and whether a
// hook was there to end the call.
func (r *Relay) Teardown(callID string) (int, bool) {
	r.mu.Lock()
	list := append([]*Session(nil), r.calls[callID]...)
	for _, s := range list {
		r.removeLocked(s)
	}
	r.mu.Unlock()
	f := r.onTimeout.Load()
	if len(list) > 0 && f != nil {
		(*f)(callID, list[0].dlgFrom)
	}
	return len(list), f != nil
}

// startStreamLocked binds a socket pair on each side's interface.
func (r *Relay) startStreamLocked(s *Session, st *stream) error {
	var legs [2]*leg
	for k := range legs {
		ifc := s.sides[k].ifc
		port, c1, c2, err := ifc.pool.alloc()
		if err != nil {
			r.allocFail.Add(1)
			if k == 1 {
				r.releaseLegLocked(legs[0], 0)
			}
			return fmt.Errorf("interface %s: %w", ifc.Name, err)
		}
		l := &leg{ifc: ifc, port: port}
		l.ep[0] = &endpoint{relay: r, conn: c1, str: st}
		l.ep[1] = &endpoint{relay: r, conn: c2, rtcp: true, str: st}
		legs[k] = l
	}
	for kind := 0; kind < 2; kind++ {
		legs[0].ep[kind].peer = legs[1].ep[kind]
		legs[1].ep[kind].peer = legs[0].ep[kind]
	}
	for k := range legs {
		for _, ep := range legs[k].ep {
			go ep.serve()
		}
	}
	st.legs = legs
	st.active = true
	st.hold = [2]bool{}
	return nil
}

// stopStreamLocked releases a stream's ports (a disabled or rejected one).
func (r *Relay) stopStreamLocked(s *Session, st *stream) {
	if !st.active {
		return
	}
	for k, l := range st.legs {
		r.releaseLegLocked(l, s.drain)
		st.legs[k] = nil
	}
	st.active = false
}

func (r *Relay) releaseLegLocked(l *leg, drain time.Duration) {
	if l == nil {
		return
	}
	for _, ep := range l.ep {
		ep.mode.Or(modeDetached)
		r.retired.add(ep.c.snapshot())
	}
	l.ifc.pool.release(l.port, [2]*net.UDPConn{l.ep[0].conn, l.ep[1].conn}, drain)
}

// setTargets records where the sender of the SDP wants stream st's media.
// It reports a bogus (unusable) address and hold (c=0.0.0.0).
func (r *Relay) setTargets(s *Session, st *stream, sd int, doc *sdpDoc, m *sdpMedia, req *Request) (bogus, hold bool) {
	l := st.legs[sd]
	ca, has := doc.effectiveConn(m)
	var ip netip.Addr
	switch {
	case has && ca.valid && ca.addr.IsUnspecified():
		hold = true
	case has && ca.valid:
		ip = ca.addr
	default:
		bogus = true
	}
	if !hold && !req.TrustAddress && req.SIPSource.IsValid() {
		ip, bogus = req.SIPSource.Unmap(), false
	}
	if !hold && !bogus && (!targetOK(ip, l.ifc.Bind) || r.ownLocked(s, ip, m.port)) {
		bogus = true
	}
	mode := uint32(0)
	if s.sides[sd].asym {
		mode |= modeAsym
	}
	if s.sides[sd].handover {
		mode |= modeHandover
	}
	for _, ep := range l.ep {
		ep.mode.Store(mode)
	}
	st.hold[sd] = hold
	if hold || bogus {
		l.ep[0].setTarget(netip.AddrPort{})
		l.ep[1].setTarget(netip.AddrPort{})
		return bogus, hold
	}
	l.ep[0].setTarget(netip.AddrPortFrom(ip, uint16(m.port)))
	rtcpIP, rtcpPort := ip, m.port+1
	if m.rtcpPort > 0 {
		rtcpPort = m.rtcpPort
	}
	if m.rtcpIP.valid && req.TrustAddress && targetOK(m.rtcpIP.addr, l.ifc.Bind) {
		rtcpIP = m.rtcpIP.addr
	}
	l.ep[1].setTarget(netip.AddrPortFrom(rtcpIP, uint16(rtcpPort)))
	return false, false
}

// targetOK refuses addresses media must never be sent to from a socket
// bound to bind: unspecified, multicast, broadcast, the other address
// family, and loopback unless the interface itself is loopback.
func targetOK(ip, bind netip.Addr) bool {
	switch {
	case !ip.IsValid(), ip.IsUnspecified(), ip.IsMulticast(), ip.Is4() != bind.Is4():
		return false
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return false
	case ip.IsLoopback() && !bind.IsLoopback():
		return false
	}
	return true
}

// ownLocked tells a target that is one of the relay's own ports (an SDP
// that already went through it, as on a spiral): relaying to it would loop.
func (r *Relay) ownLocked(s *Session, ip netip.Addr, port int) bool {
	for k := range r.pools {
		if k.bind == ip && port >= k.min && port <= k.max {
			return true
		}
	}
	for _, sd := range s.sides {
		if sd.ifc != nil && sd.ifc.Advertise == ip && port >= sd.ifc.MinPort && port <= sd.ifc.MaxPort {
			return true
		}
	}
	return false
}

// setTarget changes where the party is sent media; a new address forgets
// the latched source (the party may have moved, as on a re-INVITE).
func (e *endpoint) setTarget(t netip.AddrPort) {
	old := e.target.Load()
	if t.IsValid() {
		if old != nil && *old == t {
			return
		}
		e.target.Store(&t)
	} else {
		if old == nil {
			e.latched.Store(nil)
			return
		}
		e.target.Store(nil)
	}
	e.latched.Store(nil)
}

func (st *stream) mergeClock(m *sdpMedia) {
	tbl := new([128]uint32)
	if old := st.clock.Load(); old != nil {
		*tbl = *old
	} else {
		for pt, rate := range staticClock {
			tbl[pt] = rate
		}
	}
	for _, pr := range m.rtpmap {
		tbl[pr.pt] = pr.rate
	}
	st.clock.Store(tbl)
}

// serve is the reader goroutine of one socket. It reads into one buffer
// for the socket's whole life: no allocation per packet.
func (e *endpoint) serve() {
	buf := make([]byte, maxDatagram)
	for {
		n, src, err := e.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		e.handle(buf[:n], netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), n == len(buf))
	}
}

// handle validates, latches, accounts and forwards one datagram.
func (e *endpoint) handle(p []byte, src netip.AddrPort, truncated bool) {
	mode := e.mode.Load()
	if mode&modeDetached != 0 {
		e.relay.drained.Add(1)
		return
	}
	kind := pktBad
	if !truncated {
		kind = classify(p, e.rtcp)
	}
	if kind == pktBad {
		e.c.nonRTP.Add(1)
		return
	}
	if mode&modeAsym == 0 {
		if l := e.latched.Load(); l == nil {
			v := src
			e.latched.Store(&v)
		} else if *l != src {
			if mode&modeHandover == 0 {
				e.c.wrongSrc.Add(1)
				return
			}
			v := src
			e.latched.Store(&v)
		}
	}
	now := mono()
	e.c.lastSeen.Store(now)
	if kind == pktRTP {
		var clock uint32
		if tbl := e.str.clock.Load(); tbl != nil {
			clock = tbl[p[1]&0x7f]
		}
		e.rs.update(p, now, clock, &e.c)
	}
	out := e.peer
	var dst netip.AddrPort
	if out.mode.Load()&modeAsym == 0 {
		if l := out.latched.Load(); l != nil {
			dst = *l
		}
	}
	if !dst.IsValid() {
		if t := out.target.Load(); t != nil {
			dst = *t
		}
	}
	if !dst.IsValid() {
		e.c.noTarget.Add(1)
		return
	}
	if _, err := out.conn.WriteToUDPAddrPort(p, dst); err != nil {
		e.c.sendErr.Add(1)
		return
	}
	e.c.packets.Add(1)
	e.c.bytes.Add(uint64(len(p)))
	if kind == pktRTCP {
		e.c.rtcp.Add(1)
	}
}

// Delete removes the sessions of a call and releases their ports (after
// draining). An empty fromTag deletes every session of the Call-ID;
// otherwise a session matches when one of its tags is fromTag and, if
// toTag is given, the other is toTag. It returns how many were deleted.
func (r *Relay) Delete(callID, fromTag, toTag string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var doomed []*Session
	for _, s := range r.calls[callID] {
		if fromTag == "" || s.matches(fromTag, toTag) {
			doomed = append(doomed, s)
		}
	}
	for _, s := range doomed {
		r.removeLocked(s)
	}
	return len(doomed)
}

func (s *Session) matches(a, b string) bool {
	for k := 0; k < 2; k++ {
		if s.tags[k] == a && (b == "" || s.tags[1-k] == b || s.tags[1-k] == "") {
			return true
		}
	}
	return a == s.dlgFrom && b == ""
}

func (r *Relay) removeLocked(s *Session) {
	if s.gone {
		return
	}
	s.gone = true
	for _, st := range s.streams {
		r.stopStreamLocked(s, st)
	}
	list := r.calls[s.callID]
	for i, x := range list {
		if x == s {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(r.calls, s.callID)
	} else {
		r.calls[s.callID] = list
	}
	r.deleted.Add(1)
}

func (r *Relay) janitor() {
	t := time.NewTicker(r.tick)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.expire(mono())
		}
	}
}

// expire deletes sessions idle past their limit, then calls the hook.
func (r *Relay) expire(now int64) {
	type ended struct{ callID, fromTag string }
	var fired []ended
	r.mu.Lock()
	var doomed []*Session
	for _, list := range r.calls {
		for _, s := range list {
			limit := s.limit()
			if limit > 0 && now-s.lastActivity() > int64(limit) {
				doomed = append(doomed, s)
			}
		}
	}
	for _, s := range doomed {
		r.removeLocked(s)
		r.timedOut.Add(1)
		fired = append(fired, ended{s.callID, s.dlgFrom})
	}
	r.mu.Unlock()
	if f := r.onTimeout.Load(); f != nil {
		for _, e := range fired {
			(*f)(e.callID, e.fromTag)
		}
	}
}

func (s *Session) limit() time.Duration {
	switch {
	case !s.answered:
		return s.setupTO
	case s.hold:
		return s.holdTO
	}
	return s.timeout
}

func (s *Session) lastActivity() int64 {
	last := s.touched
	for _, st := range s.streams {
		if !st.active {
			continue
		}
		for _, l := range st.legs {
			for _, ep := range l.ep {
				if t := ep.c.lastSeen.Load(); t > last {
					last = t
				}
			}
		}
	}
	return last
}
