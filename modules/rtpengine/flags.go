package rtpengine

import (
	"fmt"
	"net/netip"
	"strings"
)

// flags are the parsed rtpengine_* flags string: space-separated tokens,
// some of them key=value.
type flags struct {
	in, out       string // interface names ("" = the first one)
	dirs          int    // direction= tokens seen
	trust         bool
	origin        bool
	sessConn      bool
	asym          bool
	handover      bool
	forceAnswer   bool
	profile       string
	mediaAddr     netip.Addr
	callID        string
	fromTag       string
	toTag         string
	toTagSet      bool // to-tag or to-tag=… was given
	deleteToTag   bool // plain "to-tag": include the To tag (delete)
	ignored       []string
	hasDirections bool
}

// parseFlags reads a flags string. Tokens sipedge cannot honour because
// they change the media (transcoding, SRTP/DTLS, forced ICE, rtcp-mux
// (de)multiplexing, recording) are errors; unknown tokens are ignored, as
// OpenSIPS passes them to the daemon without looking.
func parseFlags(s string) (flags, error) {
	f := flags{trust: true}
	for _, tok := range strings.Fields(s) {
		key, val, hasVal := strings.Cut(tok, "=")
		lk := strings.ToLower(key)
		switch {
		case lk == "direction" && hasVal:
			switch f.dirs {
			case 0:
				f.in = val
			case 1:
				f.out = val
			default:
				return f, fmt.Errorf("direction= given more than twice")
			}
			f.dirs++
			f.hasDirections = true
		case (lk == "internal" || lk == "external") && !hasVal:
			switch f.dirs {
			case 0:
				f.in = lk
			case 1:
				f.out = lk
			default:
				return f, fmt.Errorf("%s: a direction was already given twice", tok)
			}
			f.dirs++
			f.hasDirections = true
		case lk == "in-iface" && hasVal:
			f.in = val
			f.hasDirections = true
		case lk == "out-iface" && hasVal:
			f.out = val
			f.hasDirections = true
		case lk == "trust-address" && !hasVal:
			f.trust = true
		case lk == "sip-source-address" && !hasVal:
			f.trust = false
		case lk == "replace-origin" && !hasVal:
			f.origin = true
		case lk == "replace-session-connection" && !hasVal:
			f.sessConn = true
		case lk == "replace" && hasVal:
			for _, v := range strings.Split(val, ",") {
				switch strings.ToLower(v) {
				case "origin":
					f.origin = true
				case "session-connection":
					f.sessConn = true
				}
			}
		case lk == "symmetric" || lk == "strict-source":
			f.asym = false
		case lk == "asymmetric" || lk == "unidirectional":
			f.asym = true
		case lk == "media-handover" || lk == "port-latching":
			f.handover = true
		case lk == "force-answer":
			f.forceAnswer = true
		case lk == "ice" && hasVal:
			switch strings.ToLower(val) {
			case "remove", "default", "optional":
				// the relay has no ICE agent: it always removes ICE
			default:
				return f, fmt.Errorf("ICE=%s: sipedge's relay has no ICE agent (ICE=remove is what it does)", val)
			}
		case !hasVal && isProfile(key):
			f.profile = profileOf(key)
		case lk == "media-address" && hasVal:
			a, err := netip.ParseAddr(val)
			if err != nil {
				return f, fmt.Errorf("media-address=%s: not an IP address", val)
			}
			f.mediaAddr = a.Unmap()
		case lk == "call-id" && hasVal:
			f.callID = val
		case lk == "from-tag" && hasVal:
			f.fromTag = val
		case lk == "to-tag":
			f.toTagSet = true
			if hasVal {
				f.toTag = val
			} else {
				f.deleteToTag = true
			}
		case lk == "record-call" && hasVal && !strings.EqualFold(val, "yes"):
		case lk == "dtls" && hasVal && (strings.EqualFold(val, "off") || strings.EqualFold(val, "no")):
		case strings.HasPrefix(lk, "transcode-"), strings.HasPrefix(lk, "codec-"), strings.HasPrefix(lk, "codec"),
			strings.HasPrefix(lk, "rtcp-mux"), strings.HasPrefix(lk, "sdes"), lk == "dtls", lk == "record-call",
			lk == "repacketize", lk == "t38", lk == "osrtp", lk == "generate-mid":
			return f, fmt.Errorf("%s: sipedge's built-in relay forwards media as it is and cannot do this", tok)
		default:
			f.ignored = append(f.ignored, tok)
		}
	}
	return f, nil
}

func isProfile(tok string) bool {
	switch tok {
	case "RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF", "RTP", "SRTP", "AVP", "AVPF":
		return true
	}
	return false
}

func profileOf(tok string) string {
	switch tok {
	case "RTP", "AVP":
		return "RTP/AVP"
	case "AVPF":
		return "RTP/AVPF"
	case "SRTP":
		return "RTP/SAVP"
	}
	return tok
}
