// Command relayd runs sipedge's built-in RTP relay as a process of its own
// and answers a subset of rtpengine's NG protocol (ping, offer, answer,
// delete), so the comparison harness in bench/rtp drives it exactly like
// the rtpengine daemon. Benchmark tool only.
//
//	relayd -ng 127.0.0.1:22298 -interfaces "pub/127.0.0.1:24000-27999;lan/127.0.0.2:28000-31999"
package main

import (
	"bytes"
	"flag"
	"log"
	"net"

	"github.com/sipedge/sipedge/bench/rtp/ng"
	"github.com/sipedge/sipedge/runtime/rtprelay"
)

func main() {
	addr := flag.String("ng", "127.0.0.1:22298", "NG control address")
	spec := flag.String("interfaces", "pub/127.0.0.1:24000-27999;lan/127.0.0.2:28000-31999", "media interfaces")
	flag.Parse()
	ifs, err := rtprelay.ParseInterfaces(*spec, rtprelay.DefaultMinPort, rtprelay.DefaultMaxPort)
	if err != nil {
		log.Fatal(err)
	}
	relay := rtprelay.New(rtprelay.Options{})
	prof, err := relay.NewProfile(rtprelay.ProfileConfig{Interfaces: ifs})
	if err != nil {
		log.Fatal(err)
	}
	ua, err := net.ResolveUDPAddr("udp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 65536)
	for {
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			log.Fatal(err)
		}
		cookie, body, ok := bytes.Cut(buf[:n], []byte(" "))
		if !ok {
			continue
		}
		var out bytes.Buffer
		out.Write(cookie)
		out.WriteByte(' ')
		ng.Encode(&out, handle(relay, prof, body))
		conn.WriteToUDP(out.Bytes(), from)
	}
}

func handle(relay *rtprelay.Relay, prof *rtprelay.Profile, body []byte) map[string]any {
	v, _, err := ng.Decode(body)
	d, _ := v.(map[string]any)
	if err != nil || d == nil {
		return map[string]any{"result": "error", "error-reason": "bad request"}
	}
	str := func(k string) string { s, _ := d[k].(string); return s }
	req := &rtprelay.Request{CallID: str("call-id"), FromTag: str("from-tag"), ToTag: str("to-tag"), Body: []byte(str("sdp"))}
	for _, f := range asList(d["flags"]) {
		if f == "trust-address" {
			req.TrustAddress = true
		}
	}
	if dirs := asList(d["direction"]); len(dirs) == 2 {
		req.InIface, req.OutIface = dirs[0], dirs[1]
	}
	switch str("command") {
	case "ping":
		return map[string]any{"result": "pong"}
	case "offer":
		req.Op = rtprelay.Offer
	case "answer":
		// the NG answer names the tags as in the offer; the SDP comes from
		// the To side
		req.Op, req.Reply = rtprelay.Answer, true
	case "delete":
		relay.Delete(req.CallID, "", "")
		return map[string]any{"result": "ok"}
	default:
		return map[string]any{"result": "error", "error-reason": "unsupported command"}
	}
	res, err := prof.Process(req)
	if err != nil {
		return map[string]any{"result": "error", "error-reason": err.Error()}
	}
	return map[string]any{"result": "ok", "sdp": string(res.Body)}
}

func asList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
