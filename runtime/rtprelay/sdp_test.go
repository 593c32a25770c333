package rtprelay

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Test interfaces: "pub" faces the caller on 127.0.0.1, "lan" the callee on
// 127.0.0.2. Ranges sit below Linux's ephemeral range, so test clients
// (bound to port 0) never collide with relay ports.
const testIfaces = "pub/127.0.0.1:20000-20099;lan/127.0.0.2:21000-21099"

func newTestRelay(t testing.TB, spec string, tune func(*ProfileConfig)) (*Relay, *Profile) {
	t.Helper()
	r := New(Options{Tick: 10 * time.Millisecond})
	t.Cleanup(r.Close)
	ifs, err := ParseInterfaces(spec, DefaultMinPort, DefaultMaxPort)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ProfileConfig{Interfaces: ifs, Timeout: time.Minute, HoldTimeout: time.Hour, SetupTimeout: time.Hour}
	if tune != nil {
		tune(&cfg)
	}
	p, err := r.NewProfile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, p
}

// sdp joins lines with CRLF.
func sdp(lines ...string) string { return strings.Join(lines, "\r\n") + "\r\n" }

const (
	aliceO = "o=alice 2890844526 2890844526 IN IP4 203.0.113.10"
	bobO   = "o=bob 2808844564 2808844564 IN IP4 10.0.0.20"
)

var aliceOffer = sdp("v=0", aliceO, "s=-", "c=IN IP4 203.0.113.10", "t=0 0",
	"m=audio 49170 RTP/AVP 0 8 101", "a=rtpmap:101 telephone-event/8000", "a=rtcp:49171", "a=sendrecv")

var bobAnswer = sdp("v=0", bobO, "s=-", "c=IN IP4 10.0.0.20", "t=0 0",
	"m=audio 3456 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000")

// step is one Process call of a scenario.
type step struct {
	op      Op
	reply   bool   // the SDP is in a reply (sender = To tag)
	from    string // From tag of the message
	to      string // To tag
	body    string
	mod     func(*Request)
	want    string // rewritten body ("" = don't check)
	wantErr error
	anyErr  bool // some error
	check   func(t *testing.T, r *Relay, res *Result)
}

func runSteps(t *testing.T, p *Profile, steps []step) {
	t.Helper()
	for i, s := range steps {
		req := &Request{Op: s.op, CallID: "call-1", FromTag: s.from, ToTag: s.to, Reply: s.reply,
			Body: []byte(s.body), InIface: "pub", OutIface: "lan", TrustAddress: true}
		if s.mod != nil {
			s.mod(req)
		}
		res, err := p.Process(req)
		if s.anyErr {
			if err == nil {
				t.Fatalf("step %d: no error", i)
			}
			continue
		}
		if s.wantErr != nil {
			if !errors.Is(err, s.wantErr) {
				t.Fatalf("step %d: err = %v, want %v", i, err, s.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if s.want != "" && string(res.Body) != s.want {
			t.Fatalf("step %d: body\n%s\nwant\n%s", i, show(res.Body), show([]byte(s.want)))
		}
		if s.check != nil {
			s.check(t, p.relay, res)
		}
	}
}

func show(b []byte) string { return strings.ReplaceAll(string(b), "\r\n", "⏎\n") }

func TestSDPRewrite(t *testing.T) {
	cases := []struct {
		name  string
		steps []step
	}{
		{"offer", []step{{op: Offer, from: "a", body: aliceOffer,
			want: sdp("v=0", aliceO, "s=-", "c=IN IP4 127.0.0.2", "t=0 0",
				"m=audio 21000 RTP/AVP 0 8 101", "a=rtpmap:101 telephone-event/8000", "a=rtcp:21001", "a=sendrecv"),
			check: func(t *testing.T, r *Relay, res *Result) {
				if res.Relayed != 1 || !res.Created || res.Addr != netip.MustParseAddrPort("127.0.0.2:21000") {
					t.Fatalf("result %+v", res)
				}
				si, _ := r.Lookup("call-1", "a")
				if si.Streams[0].Legs[0].Target != netip.MustParseAddrPort("203.0.113.10:49170") {
					t.Fatalf("caller target %v", si.Streams[0].Legs[0].Target)
				}
			}}}},
		{"offer then answer", []step{
			{op: Offer, from: "a", body: aliceOffer},
			{op: Answer, reply: true, from: "a", to: "b", body: bobAnswer,
				want: sdp("v=0", bobO, "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
					"m=audio 20000 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000"),
				check: func(t *testing.T, r *Relay, res *Result) {
					si, _ := r.Lookup("call-1", "b")
					if si.Tags != [2]string{"a", "b"} || !si.Answered {
						t.Fatalf("session %+v", si)
					}
					if si.Streams[0].Legs[1].Target != netip.MustParseAddrPort("10.0.0.20:3456") {
						t.Fatalf("callee target %v", si.Streams[0].Legs[1].Target)
					}
					if got := si.Streams[0].Legs[1].Local; got != netip.MustParseAddrPort("127.0.0.2:21000") {
						t.Fatalf("callee-facing socket %v", got)
					}
				}},
		}},
		{"answer without offer", []step{{op: Answer, reply: true, from: "a", to: "b", body: bobAnswer, wantErr: ErrNoSession}}},
		{"replace origin and session c= even when media have their own", []step{{op: Offer, from: "a",
			body: sdp("v=0", aliceO, "s=-", "c=IN IP4 203.0.113.10", "t=0 0",
				"m=audio 49170 RTP/AVP 0", "c=IN IP4 203.0.113.11"),
			mod: func(r *Request) { r.ReplaceOrigin, r.ReplaceSessionConn = true, true },
			want: sdp("v=0", "o=alice 2890844526 2890844526 IN IP4 127.0.0.2", "s=-", "c=IN IP4 127.0.0.2", "t=0 0",
				"m=audio 21000 RTP/AVP 0", "c=IN IP4 127.0.0.2")}}},
		{"session c= unused by media is left without the flag", []step{{op: Offer, from: "a",
			body: sdp("v=0", aliceO, "s=-", "c=IN IP4 203.0.113.10", "t=0 0",
				"m=audio 49170 RTP/AVP 0", "c=IN IP4 203.0.113.11"),
			want: sdp("v=0", aliceO, "s=-", "c=IN IP4 203.0.113.10", "t=0 0",
				"m=audio 21000 RTP/AVP 0", "c=IN IP4 127.0.0.2"),
			check: func(t *testing.T, r *Relay, _ *Result) {
				si, _ := r.Lookup("call-1", "")
				if si.Streams[0].Legs[0].Target != netip.MustParseAddrPort("203.0.113.11:49170") {
					t.Fatalf("media-level c= must win: %v", si.Streams[0].Legs[0].Target)
				}
			}}}},
		{"several streams", []step{{op: Offer, from: "a",
			body: sdp("v=0", aliceO, "s=-", "c=IN IP4 203.0.113.10", "t=0 0",
				"m=audio 49170 RTP/AVP 0", "a=rtcp:49171 IN IP4 203.0.113.10",
				"m=video 51372 RTP/AVP 96", "c=IN IP4 203.0.113.12", "a=rtpmap:96 H264/90000",
				"m=text 0 RTP/AVP 98"),
			want: sdp("v=0", aliceO, "s=-", "c=IN IP4 127.0.0.2", "t=0 0",
				"m=audio 21000 RTP/AVP 0", "a=rtcp:21001 IN IP4 127.0.0.2",
				"m=video 21002 RTP/AVP 96", "c=IN IP4 127.0.0.2", "a=rtpmap:96 H264/90000",
				"m=text 0 RTP/AVP 98"),
			check: func(t *testing.T, r *Relay, res *Result) {
				if res.Streams != 3 || res.Relayed != 2 || res.Disabled != 1 {
					t.Fatalf("result %+v", res)
				}
				if st := r.Stats(); st.Streams != 2 || st.PortsInUse != 4 {
					t.Fatalf("stats %+v", st)
				}
			}}}},
		{"hold with c=0.0.0.0 keeps it and sets no target", []step{
			{op: Offer, from: "a", body: aliceOffer},
			{op: Answer, reply: true, from: "a", to: "b", body: bobAnswer},
			{op: Offer, from: "a", to: "b",
				body: sdp("v=0", aliceO, "s=-", "c=IN IP4 0.0.0.0", "t=0 0", "m=audio 49170 RTP/AVP 0", "a=sendonly"),
				want: sdp("v=0", aliceO, "s=-", "c=IN IP4 0.0.0.0", "t=0 0", "m=audio 21000 RTP/AVP 0", "a=sendonly"),
				check: func(t *testing.T, r *Relay, res *Result) {
					si, _ := r.Lookup("call-1", "a")
					l := si.Streams[0].Legs[0]
					if l.Target.IsValid() || !l.Hold || !si.Hold || res.Bogus != 0 {
						t.Fatalf("hold leg %+v session hold %v", l, si.Hold)
					}
				}},
			// resume: same ports, target back
			{op: Offer, from: "a", to: "b", body: aliceOffer,
				check: func(t *testing.T, r *Relay, _ *Result) {
					si, _ := r.Lookup("call-1", "a")
					if si.Streams[0].Legs[0].Target != netip.MustParseAddrPort("203.0.113.10:49170") || si.Hold {
						t.Fatalf("resume %+v", si.Streams[0].Legs[0])
					}
				}},
		}},
		{"media-level hold", []step{{op: Offer, from: "a",
			body: sdp("v=0", aliceO, "s=-", "t=0 0", "m=audio 49170 RTP/AVP 0", "c=IN IP4 0.0.0.0"),
			want: sdp("v=0", aliceO, "s=-", "t=0 0", "m=audio 21000 RTP/AVP 0", "c=IN IP4 0.0.0.0")}}},
		{"sendonly with a real address is relayed", []step{{op: Offer, from: "a",
			body: strings.Replace(aliceOffer, "a=sendrecv", "a=sendonly", 1),
			want: sdp("v=0", aliceO, "s=-", "c=IN IP4 127.0.0.2", "t=0 0",
				"m=audio 21000 RTP/AVP 0 8 101", "a=rtpmap:101 telephone-event/8000", "a=rtcp:21001", "a=sendonly"),
			check: func(t *testing.T, r *Relay, _ *Result) {
				si, _ := r.Lookup("call-1", "a")
				if !si.Streams[0].Legs[0].Target.IsValid() || !si.Hold {
					t.Fatalf("%+v", si)
				}
			}}}},
		{"re-INVITE: same ports, moved target, added stream", []step{
			{op: Offer, from: "a", body: aliceOffer},
			{op: Answer, reply: true, from: "a", to: "b", body: bobAnswer},
			{op: Offer, from: "a", to: "b",
				body: sdp("v=0", aliceO, "s=-", "c=IN IP4 203.0.113.99", "t=0 0",
					"m=audio 40000 RTP/AVP 0", "m=video 40002 RTP/AVP 31"),
				want: sdp("v=0", aliceO, "s=-", "c=IN IP4 127.0.0.2", "t=0 0",
					"m=audio 21000 RTP/AVP 0", "m=video 21002 RTP/AVP 31"),
				check: func(t *testing.T, r *Relay, res *Result) {
					if res.Created {
						t.Fatal("re-INVITE made a new session")
					}
					si, _ := r.Lookup("call-1", "a")
					if len(si.Streams) != 2 || si.Streams[0].Legs[0].Target != netip.MustParseAddrPort("203.0.113.99:40000") {
						t.Fatalf("%+v", si.Streams)
					}
				}},
			{op: Answer, reply: true, from: "a", to: "b",
				body: sdp("v=0", bobO, "s=-", "c=IN IP4 10.0.0.20", "t=0 0", "m=audio 3456 RTP/AVP 0", "m=video 3458 RTP/AVP 31"),
				want: sdp("v=0", bobO, "s=-", "c=IN IP4 127.0.0.1", "t=0 0", "m=audio 20000 RTP/AVP 0", "m=video 20002 RTP/AVP 31")},
		}},
		{"re-INVITE from the callee goes the other way", []step{
			{op: Offer, from: "a", body: aliceOffer},
			{op: Answer, reply: true, from: "a", to: "b", body: bobAnswer},
			{op: Offer, from: "b", to: "a", body: strings.Replace(bobAnswer, "3456", "3460", 1),
				want: sdp("v=0", bobO, "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
					"m=audio 20000 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000"),
				check: func(t *testing.T, r *Relay, _ *Result) {
					si, _ := r.Lookup("call-1", "b")
					if si.Streams[0].Legs[1].Target != netip.MustParseAddrPort("10.0.0.20:3460") {
						t.Fatalf("%+v", si.Streams[0].Legs[1])
					}
				}},
			{op: Answer, reply: true, from: "b", to: "a", body: aliceOffer,
				want: sdp("v=0", aliceO, "s=-", "c=IN IP4 127.0.0.2", "t=0 0",
					"m=audio 21000 RTP/AVP 0 8 101", "a=rtpmap:101 telephone-event/8000", "a=rtcp:21001", "a=sendrecv")},
		}},
		{"late offer: offer in the 200, answer in the ACK", []step{
			{op: Offer, reply: true, from: "a", to: "b", body: bobAnswer,
				mod: func(r *Request) { r.InIface, r.OutIface = "lan", "pub" },
				want: sdp("v=0", bobO, "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
					"m=audio 20000 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000")},
			{op: Answer, from: "a", to: "b", body: aliceOffer,
				want: sdp("v=0", aliceO, "s=-", "c=IN IP4 127.0.0.2", "t=0 0",
					"m=audio 21000 RTP/AVP 0 8 101", "a=rtpmap:101 telephone-event/8000", "a=rtcp:21001", "a=sendrecv"),
				check: func(t *testing.T, r *Relay, _ *Result) {
					si, _ := r.Lookup("call-1", "a")
					if si.Tags != [2]string{"b", "a"} || si.FromTag != "a" || !si.Answered {
						t.Fatalf("%+v", si)
					}
				}},
		}},
		{"bogus port is rejected, never relayed", []step{{op: Offer, from: "a",
			body: sdp("v=0", aliceO, "s=-", "c=IN IP4 203.0.113.10", "t=0 0", "m=audio 70000 RTP/AVP 0", "m=audio x RTP/AVP 0"),
			want: sdp("v=0", aliceO, "s=-", "c=IN IP4 203.0.113.10", "t=0 0", "m=audio 0 RTP/AVP 0", "m=audio 0 RTP/AVP 0"),
			check: func(t *testing.T, r *Relay, res *Result) {
				if res.Bogus != 2 || res.Relayed != 0 || r.Stats().PortsInUse != 0 || r.Stats().BogusStreams != 2 {
					t.Fatalf("%+v %+v", res, r.Stats())
				}
			}}}},
		{"bogus addresses: relayed latch-only, no target", []step{{op: Offer, from: "a",
			body: sdp("v=0", aliceO, "s=-", "t=0 0",
				"m=audio 49170 RTP/AVP 0", "c=IN IP4 999.1.1.1",
				"m=audio 49172 RTP/AVP 0", "c=IN IP4 224.0.0.1",
				"m=audio 49174 RTP/AVP 0", "c=IN IP6 ::1",
				"m=audio 20010 RTP/AVP 0", "c=IN IP4 127.0.0.1",
				"m=audio 49178 RTP/AVP 0"),
			check: func(t *testing.T, r *Relay, res *Result) {
				if res.Bogus != 5 || res.Relayed != 5 {
					t.Fatalf("%+v", res)
				}
				si, _ := r.Lookup("call-1", "a")
				for i, st := range si.Streams {
					if st.Legs[0].Target.IsValid() {
						t.Errorf("stream %d has target %v", i, st.Legs[0].Target)
					}
				}
			}}}},
		{"SIP source instead of SDP address without trust-address", []step{{op: Offer, from: "a", body: aliceOffer,
			mod: func(r *Request) { r.TrustAddress, r.SIPSource = false, netip.MustParseAddr("198.51.100.7") },
			check: func(t *testing.T, r *Relay, _ *Result) {
				si, _ := r.Lookup("call-1", "a")
				if si.Streams[0].Legs[0].Target != netip.MustParseAddrPort("198.51.100.7:49170") {
					t.Fatalf("%v", si.Streams[0].Legs[0].Target)
				}
			}}}},
		{"ICE attributes removed, media-address used", []step{{op: Offer, from: "a",
			body: sdp("v=0", aliceO, "s=-", "c=IN IP4 203.0.113.10", "t=0 0", "a=ice-lite",
				"m=audio 49170 RTP/AVP 0", "a=ice-ufrag:F7gI", "a=ice-pwd:x9cml",
				"a=candidate:1 1 UDP 2130706431 203.0.113.10 49170 typ host", "a=end-of-candidates"),
			mod:  func(r *Request) { r.MediaAddress = netip.MustParseAddr("192.0.2.1") },
			want: sdp("v=0", aliceO, "s=-", "c=IN IP4 192.0.2.1", "t=0 0", "m=audio 21000 RTP/AVP 0")}}},
		{"no c= anywhere: one is added", []step{{op: Offer, from: "a",
			body: sdp("v=0", aliceO, "s=-", "t=0 0", "m=audio 49170 RTP/AVP 0", "a=sendrecv"),
			want: sdp("v=0", aliceO, "s=-", "t=0 0", "m=audio 21000 RTP/AVP 0", "c=IN IP4 127.0.0.2", "a=sendrecv")}}},
		{"profile rename AVPF to AVP", []step{{op: Offer, from: "a",
			body: sdp("v=0", aliceO, "s=-", "c=IN IP4 203.0.113.10", "t=0 0", "m=audio 49170 RTP/AVPF 0"),
			mod:  func(r *Request) { r.Profile = "RTP/AVP" },
			want: sdp("v=0", aliceO, "s=-", "c=IN IP4 127.0.0.2", "t=0 0", "m=audio 21000 RTP/AVP 0")}}},
		{"SRTP to RTP is refused", []step{{op: Offer, from: "a",
			body: sdp("v=0", aliceO, "s=-", "c=IN IP4 203.0.113.10", "t=0 0", "m=audio 49170 RTP/SAVP 0"),
			mod:  func(r *Request) { r.Profile = "RTP/AVP" }, anyErr: true}}},
		{"marker: added, then refused, then forced", []step{
			{op: Offer, from: "a", body: aliceOffer, mod: func(r *Request) { r.Marker = "a=nortpproxy:yes" },
				want: aliceOfferRelayed + "a=nortpproxy:yes\r\n"},
			{op: Offer, from: "x", body: aliceOfferRelayed + "a=nortpproxy:yes\r\n",
				mod: func(r *Request) { r.Marker = "a=nortpproxy:yes"; r.CallID = "call-2" }, wantErr: ErrAlreadyRelayed},
			{op: Offer, from: "x", body: aliceOffer + "a=nortpproxy:yes\r\n",
				mod:  func(r *Request) { r.Marker, r.Force, r.CallID = "a=nortpproxy:yes", true, "call-2" },
				want: strings.NewReplacer("21000", "21002", "21001", "21003").Replace(aliceOfferRelayed) + "a=nortpproxy:yes\r\n"},
		}},
		{"LF line ends are kept", []step{{op: Offer, from: "a",
			body: "v=0\n" + aliceO + "\ns=-\nc=IN IP4 203.0.113.10\nt=0 0\nm=audio 49170 RTP/AVP 0\n",
			want: "v=0\n" + aliceO + "\ns=-\nc=IN IP4 127.0.0.2\nt=0 0\nm=audio 21000 RTP/AVP 0\n"}}},
		{"not SDP", []step{{op: Offer, from: "a", body: "hello\r\n", wantErr: errNotSDP}}},
		{"lookup only needs a session", []step{{op: Offer, from: "a", body: aliceOffer,
			mod: func(r *Request) { r.LookupOnly = true }, wantErr: ErrNoSession}}},
		{"keep body", []step{{op: Offer, from: "a", body: aliceOffer,
			mod: func(r *Request) { r.KeepBody = true }, want: aliceOffer}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, p := newTestRelay(t, testIfaces, func(c *ProfileConfig) { c.DrainTime = 0 })
			runSteps(t, p, c.steps)
		})
	}
}

var aliceOfferRelayed = sdp("v=0", aliceO, "s=-", "c=IN IP4 127.0.0.2", "t=0 0",
	"m=audio 21000 RTP/AVP 0 8 101", "a=rtpmap:101 telephone-event/8000", "a=rtcp:21001", "a=sendrecv")

func TestTargetOK(t *testing.T) {
	lo, pub := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("203.0.113.1")
	for _, c := range []struct {
		ip   string
		bind netip.Addr
		ok   bool
	}{
		{"203.0.113.9", pub, true}, {"10.1.2.3", pub, true}, {"127.0.0.1", pub, false}, {"127.0.0.2", lo, true},
		{"0.0.0.0", pub, false}, {"255.255.255.255", pub, false}, {"239.1.1.1", pub, false}, {"2001:db8::1", pub, false},
	} {
		if got := targetOK(netip.MustParseAddr(c.ip), c.bind); got != c.ok {
			t.Errorf("targetOK(%s, %v) = %v", c.ip, c.bind, got)
		}
	}
}

func TestParseInterfaces(t *testing.T) {
	ifs, err := ParseInterfaces("pub/127.0.0.1:30000-30999; lan/10.0.0.1!192.0.2.1:31000-31999 v6/[::1]:32000-32099 d/127.0.0.3", 40000, 40099)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, i := range ifs {
		got = append(got, i.String())
	}
	want := "pub/127.0.0.1:30000-30999 lan/10.0.0.1!192.0.2.1:31000-31999 v6/[::1]:32000-32099 d/127.0.0.3:40000-40099"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %s", strings.Join(got, " "))
	}
	if err := CheckInterfaces(ifs); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"noslash", "x/nothost:1-2", "x/127.0.0.1:3000-2000", "x/127.0.0.1:80-90",
		"x/0.0.0.0:30000-30010", "x/127.0.0.1!::1", "x/127.0.0.1:30001-30001", "bad name/127.0.0.1"} {
		if _, err := ParseInterfaces(bad, 30000, 30999); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, bad := range []string{"", "a/127.0.0.1:30000-30100;a/127.0.0.2", "a/127.0.0.1:30000-30100;b/127.0.0.1:30100-30200"} {
		ifs, _ := ParseInterfaces(bad, 30000, 30999)
		if err := CheckInterfaces(ifs); err == nil {
			t.Errorf("%q passed the check", bad)
		}
	}
}
