// Package rtprelay is sipedge's built-in RTP media relay: what RTPProxy
// (in bridging mode) or rtpengine does for OpenSIPS, inside the proxy. The
// rtpproxy and rtpengine modules drive it from the script; it lives as
// long as the process, so script reloads never drop calls' media.
//
// # Model
//
// A Relay owns port pools (one per address and port range) and sessions.
// A Profile is one script generation's view: named interfaces (address,
// advertised address, port range) and timeouts; reloads build a new
// Profile on the same Relay, and an interface whose address and range are
// unchanged keeps its pool and the ports in use.
//
// A session is keyed by Call-ID and the tags of its two parties: side 0
// is the party whose SDP created it (From tag of an INVITE offer), side 1
// learns its tag from the answer (To tag). Each media stream (m= line)
// gets, on each side's interface, an even RTP port and RTP+1 for RTCP.
// Packets from a party arrive on the socket facing it and leave from the
// socket facing the other party — so each party sees one relay address.
//
// Forwarding: one goroutine per socket reads into a buffer it reuses for
// its whole life and writes with WriteToUDPAddrPort, so no allocation
// happens per packet. Only the fixed RTP header is parsed (version 2,
// length, sequence, timestamp, SSRC) for loss (sequence gaps) and
// interarrival jitter (RFC 3550 A.8); anything that is not version-2
// RTP/RTCP is dropped and counted. RTCP multiplexed on the RTP port
// (RFC 5761) is recognised and forwarded.
//
// Symmetric latching: the first valid packet a party sends fixes its
// source address; media towards it then goes there (NAT friendly), and
// packets from any other source are counted and dropped (unless the
// session asked for handover or the party is asymmetric). Before a party
// sent anything, media towards it goes to the address of its SDP.
//
// Bogus SDP is never relayed anywhere: port 0 disables a stream (no
// ports), a port that is not a number in 1..65534 rejects it (port 0 in
// the rewritten SDP), and an address that does not parse, is multicast,
// broadcast, loopback on a non-loopback interface, of the other family,
// or one of the relay's own ports (a loop) leaves the party without a
// target: media reaches it only after it sent from its real address.
// Hold (c=0.0.0.0) keeps 0.0.0.0 in the SDP and sets no target.
//
// Released ports are drained: they stay bound for the profile's DrainTime,
// swallowing late packets, before they can be handed out again.
//
// # Hooks for the SIP and dialog runtime
//
//   - Default is the process relay; OnDefault runs a function once it
//     exists and Running returns it without creating it, so code that
//     follows calls attaches only when a script used a relay module.
//   - Inactivity: Relay.SetOnTimeout(func(callID, fromTag string)) is
//     called when a session saw no media for its timeout (Timeout;
//     HoldTimeout while on hold; SetupTimeout while never answered). The
//     session is already gone; the dialog module (modules/dialog rtp.go,
//     through OnDefault) ends the call, BYE both ways, as OpenSIPS does on
//     RTPProxy timeout notifications.
//   - Dialog end: Relay.Delete(callID, fromTag, toTag) releases a call's
//     media (what rtpproxy_unforce/rtpengine_delete do from the script);
//     the dialog module calls it whenever a dialog ends.
//   - rtpproxy_engage: modules/rtpproxy (engage_hooks.go) follows the
//     engaged dialog through tm's hooks and the dialog module by itself.
//   - Relay.Expecting tells whether an SDP in a reply is an answer or a
//     (late) offer from the relay's own offer/answer state, so
//     rtpengine_manage and engage need nothing from the transaction layer.
//
// # Statistics
//
// The process relay's counters are statistics of group "rtprelay"
// (metrics.go: sessions, streams, ports_in_use, packets, bytes, dropped,
// …), computed when read, so MI get_statistics and the prometheus module
// show them. One snapshot serves the reads of 100 ms (a scrape).
//
// # Why no SDP library
//
// pion/sdp (v3) would parse into structs and marshal back: that reorders
// and normalises lines, and its parser rejects exactly the bodies the
// relay must handle gracefully (a port above 65535, a c= that does not
// parse). A relay should change only the fields it owns, so the SDP code
// here is line based and leaves every other byte as it was.
package rtprelay
