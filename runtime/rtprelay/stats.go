package rtprelay

import (
	"encoding/binary"
	"sync/atomic"
	"time"
)

// Packet classes of one datagram.
const (
	pktBad  = iota // not RTP/RTCP: dropped
	pktRTP         // RTP: forwarded, stats updated
	pktRTCP        // RTCP (also RTCP multiplexed on the RTP port, RFC 5761)
)

// classify looks at the fixed header only: version 2 and a length that
// holds the header (and its CSRC list). On an RTCP socket any version-2
// packet of at least 8 bytes passes.
func classify(p []byte, rtcpSock bool) int {
	if len(p) < 8 || p[0]>>6 != 2 {
		return pktBad
	}
	// RFC 5761: RTCP packet types 192..223 share the RTP port under
	// rtcp-mux; the second byte is then the whole packet type.
	if pt := p[1]; pt >= 192 && pt <= 223 {
		return pktRTCP
	}
	if rtcpSock {
		return pktRTCP
	}
	if len(p) < 12+4*int(p[0]&0x0f) {
		return pktBad
	}
	return pktRTP
}

// counters are one endpoint's totals, written by its reader goroutine and
// read by Stats/Sessions from others (hence atomics: no locks per packet).
type counters struct {
	packets  atomic.Uint64 // forwarded
	bytes    atomic.Uint64
	rtcp     atomic.Uint64 // of packets, how many were RTCP
	nonRTP   atomic.Uint64 // dropped: not RTP/RTCP
	wrongSrc atomic.Uint64 // dropped: from a source other than the latched one
	noTarget atomic.Uint64 // dropped: the other party has no address yet
	sendErr  atomic.Uint64
	lost     atomic.Uint64 // RTP sequence gaps (RFC 3550 A.3, cumulative)
	jitterUs atomic.Uint64 // RFC 3550 interarrival jitter, microseconds
	ssrc     atomic.Uint32
	lastSeen atomic.Int64 // monotonic ns since the relay epoch; 0 never
}

// rtpState is the reader-private part of the RTP stats (RFC 3550 A.1/A.8);
// only the endpoint's reader goroutine touches it.
type rtpState struct {
	init      bool
	ssrc      uint32
	baseSeq   uint32
	maxSeq    uint16
	cycles    uint32
	received  uint64
	lostPrior uint64 // lost before the last SSRC change or resync
	lastArr   int64  // arrival of the previous packet, in timestamp units
	lastTS    uint32 // its RTP timestamp
	jitter    int64  // in timestamp units, scaled by 16 (RFC 3550 A.8)
	haveTrans bool
}

const (
	maxDropout    = 3000
	maxMisorder   = 100
	seqModulo     = 1 << 16
	jitterScaling = 16
)

// update accounts one RTP packet received at now (ns) whose payload type
// has clock rate clock (0 when unknown: no jitter for it).
func (s *rtpState) update(p []byte, now int64, clock uint32, c *counters) {
	seq := binary.BigEndian.Uint16(p[2:4])
	ts := binary.BigEndian.Uint32(p[4:8])
	ssrc := binary.BigEndian.Uint32(p[8:12])
	if !s.init || ssrc != s.ssrc {
		if s.init {
			s.lostPrior += s.lostNow()
		}
		*s = rtpState{init: true, ssrc: ssrc, baseSeq: uint32(seq), maxSeq: seq, lostPrior: s.lostPrior}
		c.ssrc.Store(ssrc)
	} else {
		delta := seq - s.maxSeq
		switch {
		case delta < maxDropout:
			if seq < s.maxSeq {
				s.cycles += seqModulo
			}
			s.maxSeq = seq
		case delta <= seqModulo-maxMisorder:
			// a big jump: the sender restarted its sequence
			s.lostPrior += s.lostNow()
			s.baseSeq, s.maxSeq, s.cycles, s.received = uint32(seq), seq, 0, 0
		default:
			// duplicate or reordered: counted as received
		}
	}
	s.received++
	c.lost.Store(s.lostPrior + s.lostNow())
	if clock == 0 {
		return
	}
	// arrival in timestamp units, from microseconds so that months of
	// uptime times a 90 kHz clock still fit in 63 bits
	arrival := int64(uint64(now/1000) * uint64(clock) / 1_000_000)
	if s.haveTrans {
		// D(i-1,i) = (Rj - Ri) - (Sj - Si); the timestamp difference is
		// taken modulo 2^32 so a wrap does not look like a huge jump
		d := (arrival - s.lastArr) - int64(int32(ts-s.lastTS))
		if d < 0 {
			d = -d
		}
		s.jitter += d - (s.jitter+jitterScaling/2)/jitterScaling
		c.jitterUs.Store(uint64(s.jitter/jitterScaling) * 1_000_000 / uint64(clock))
	}
	s.lastArr, s.lastTS, s.haveTrans = arrival, ts, true
}

func (s *rtpState) lostNow() uint64 {
	expected := uint64(s.cycles) + uint64(s.maxSeq) - uint64(s.baseSeq) + 1
	if expected > s.received {
		return expected - s.received
	}
	return 0
}

// staticClock are the RTP clock rates of the static payload types (RFC
// 3551) that are still in use; dynamic ones come from a=rtpmap.
var staticClock = map[uint8]uint32{
	0: 8000, 3: 8000, 4: 8000, 5: 8000, 6: 16000, 7: 8000, 8: 8000, 9: 8000,
	10: 44100, 11: 44100, 12: 8000, 13: 8000, 14: 90000, 15: 8000, 16: 11025,
	17: 22050, 18: 8000, 25: 90000, 26: 90000, 28: 90000, 31: 90000, 32: 90000,
	33: 90000, 34: 90000,
}

// EndpointStats is a snapshot of what one party sent through the relay on
// one socket.
type EndpointStats struct {
	Packets   uint64 // forwarded
	Bytes     uint64
	RTCP      uint64 // of Packets, RTCP ones
	NonRTP    uint64 // dropped: not RTP/RTCP
	WrongSrc  uint64 // dropped: not from the latched source
	NoTarget  uint64 // dropped: nowhere to send yet
	SendErr   uint64
	Lost      uint64
	JitterUs  uint64
	SSRC      uint32
	LastSeen  time.Time // zero if nothing arrived
	Dropped   uint64    // NonRTP + WrongSrc + NoTarget + SendErr
	latestRaw int64
}

func (c *counters) snapshot() EndpointStats {
	s := EndpointStats{
		Packets: c.packets.Load(), Bytes: c.bytes.Load(), RTCP: c.rtcp.Load(),
		NonRTP: c.nonRTP.Load(), WrongSrc: c.wrongSrc.Load(), NoTarget: c.noTarget.Load(),
		SendErr: c.sendErr.Load(), Lost: c.lost.Load(), JitterUs: c.jitterUs.Load(),
		SSRC: c.ssrc.Load(), latestRaw: c.lastSeen.Load(),
	}
	s.Dropped = s.NonRTP + s.WrongSrc + s.NoTarget + s.SendErr
	if s.latestRaw != 0 {
		s.LastSeen = epoch.Add(time.Duration(s.latestRaw))
	}
	return s
}

func (s *EndpointStats) add(o EndpointStats) {
	s.Packets += o.Packets
	s.Bytes += o.Bytes
	s.RTCP += o.RTCP
	s.NonRTP += o.NonRTP
	s.WrongSrc += o.WrongSrc
	s.NoTarget += o.NoTarget
	s.SendErr += o.SendErr
	s.Lost += o.Lost
	s.Dropped += o.Dropped
	if o.JitterUs > s.JitterUs {
		s.JitterUs = o.JitterUs
	}
	if o.latestRaw > s.latestRaw {
		s.latestRaw, s.LastSeen = o.latestRaw, o.LastSeen
	}
}

// epoch anchors the monotonic timestamps kept in counters.
var epoch = time.Now()

func mono() int64 { return int64(time.Since(epoch)) }
