package nathelper

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

// SDPFlag is one fix_nated_sdp change.
type SDPFlag uint8

const (
	AddDirActive    SDPFlag = 1 << iota // 0x01 a=direction:active
	RewriteMediaIP                      // 0x02 c= lines
	AddNoRTPProxy                       // 0x04 the nortpproxy_str line
	RewriteOriginIP                     // 0x08 the o= line
	RewriteNullIPs                      // 0x10 rewrite 0.0.0.0 too
)

// SDPFlagNames are OpenSIPS 3.x's names for fix_nated_sdp's flags.
var SDPFlagNames = map[string]SDPFlag{
	"add-dir-active": AddDirActive, "rewrite-media-ip": RewriteMediaIP, "add-no-rtpproxy": AddNoRTPProxy,
	"rewrite-origin-ip": RewriteOriginIP, "rewrite-null-ips": RewriteNullIPs,
}

// ParseSDPFlags reads fix_nated_sdp's flags: a comma-separated list of
// names, or (OpenSIPS 2.x) a number ORing the bits.
func ParseSDPFlags(s string) (f SDPFlag, numeric bool, err error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 0, 32); err == nil {
		if n <= 0 || n > 0x1f {
			return 0, true, fmt.Errorf("fix_nated_sdp flags %d: want 1..31", n)
		}
		return SDPFlag(n), true, nil
	}
	for _, name := range strings.Split(s, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		b, ok := SDPFlagNames[name]
		if !ok {
			return 0, false, fmt.Errorf("unknown fix_nated_sdp flag %q (add-dir-active, rewrite-media-ip, add-no-rtpproxy, rewrite-origin-ip, rewrite-null-ips)", name)
		}
		f |= b
	}
	if f == 0 {
		return 0, false, fmt.Errorf("fix_nated_sdp needs at least one flag")
	}
	return f, false, nil
}

func fixupSDP(args []check.FixupArg) (any, error) {
	if a := args[1]; a.Present && a.Const && strings.TrimSpace(a.Str) != "" && net.ParseIP(strings.Trim(strings.TrimSpace(a.Str), "[]")) == nil {
		return nil, check.ArgError(1, "%q is not an IP address", a.Str)
	}
	a := args[0]
	if !a.Present || !a.Const {
		return nil, nil
	}
	f, _, err := ParseSDPFlags(a.Str)
	if err != nil {
		return nil, check.ArgError(0, "%v", err)
	}
	return f, nil
}

// isSDP tells whether msg's body is an SDP (multipart bodies are not
// handled).
func isSDP(msg sipMessage) bool {
	if len(msg.Body()) == 0 {
		return false
	}
	ct := msg.ContentType()
	if ct == nil {
		return true // RFC 3261: a body without Content-Type is rare; OpenSIPS assumes SDP
	}
	v := strings.ToLower(strings.TrimSpace(ct.Value()))
	return strings.HasPrefix(v, "application/sdp")
}

// sdpLines splits a body into lines without their ends; crlf tells the
// line end to write back.
func sdpLines(body string) (lines []string, eol string) {
	eol = "\r\n"
	if !strings.Contains(body, "\r\n") {
		eol = "\n"
	}
	body = strings.TrimSuffix(body, eol)
	return strings.Split(body, eol), eol
}

// addrOf returns the address field of a c= or o= line ("IN IP4 a.b.c.d")
// and where it starts in the line: c= has it 3rd, o= 6th.
func addrOf(line string, field int) (addr string, start int, ok bool) {
	val := line[2:]
	pos := 2
	for i := 0; ; i++ {
		val = strings.TrimLeft(val, " ")
		pos = len(line) - len(val)
		end := strings.IndexByte(val, ' ')
		if end < 0 {
			end = len(val)
		}
		if i == field {
			addr = val[:end]
			if j := strings.IndexByte(addr, '/'); j >= 0 { // multicast ttl
				addr = addr[:j]
			}
			return addr, pos, addr != ""
		}
		if end == len(val) {
			return "", 0, false
		}
		val = val[end:]
	}
}

func isNullIP(s string) bool {
	ip := net.ParseIP(s)
	return ip != nil && ip.IsUnspecified()
}

// rewriteAddr replaces the address of a c= (field 2) or o= (field 5) line,
// switching IP4/IP6 to the new address's family.
func rewriteAddr(line string, field int, newIP string) (string, string, bool) {
	old, start, ok := addrOf(line, field)
	if !ok {
		return line, "", false
	}
	out := line[:start] + newIP + line[start+len(old):]
	fam := "IP4"
	if strings.IndexByte(newIP, ':') >= 0 {
		fam = "IP6"
	}
	// the address type is the field before the address
	out = strings.Replace(out, " IP4 ", " "+fam+" ", 1)
	if fam == "IP4" {
		out = strings.Replace(out, " IP6 ", " IP4 ", 1)
	}
	return out, old, true
}

func sdpHasPrivate(msg sipMessage, cgn bool) bool {
	if !isSDP(msg) {
		return false
	}
	lines, _ := sdpLines(string(msg.Body()))
	for _, l := range lines {
		if strings.HasPrefix(l, "c=") {
			if addr, _, ok := addrOf(l, 2); ok && IsPrivate(addr, cgn) {
				return true
			}
		}
	}
	return false
}

// FixSDP applies fix_nated_sdp's changes to an SDP body. ip is the address
// to write; extra is appended as given (each field preceded by CRLF).
func FixSDP(body string, f SDPFlag, ip, extra string, c *config) (string, error) {
	lines, eol := sdpLines(body)
	var out []string
	for _, l := range lines {
		switch {
		case f&RewriteMediaIP != 0 && strings.HasPrefix(l, "c="):
			addr, _, ok := addrOf(l, 2)
			if !ok || (isNullIP(addr) && f&RewriteNullIPs == 0) || addr == ip {
				out = append(out, l)
				continue
			}
			nl, old, _ := rewriteAddr(l, 2, ip)
			out = append(out, nl)
			if !c.skipOldMedia {
				out = append(out, "a=oldcip:"+old)
			}
		case f&RewriteOriginIP != 0 && strings.HasPrefix(l, "o="):
			addr, _, ok := addrOf(l, 5)
			if !ok || (isNullIP(addr) && f&RewriteNullIPs == 0) || addr == ip {
				out = append(out, l)
				continue
			}
			nl, old, _ := rewriteAddr(l, 5, ip)
			out = append(out, nl)
			if !c.skipOldOrig {
				out = append(out, "a=oldoip:"+old)
			}
		default:
			out = append(out, l)
		}
	}
	if f&AddDirActive != 0 && !contains(out, "a=direction:active") {
		out = append(out, "a=direction:active")
	}
	if f&AddNoRTPProxy != 0 {
		mark := strings.TrimRight(c.noRTPProxy, "\r\n")
		if mark != "" && !contains(out, mark) {
			out = append(out, mark)
		}
	}
	res := strings.Join(out, eol) + eol
	if extra != "" {
		extra = strings.ReplaceAll(extra, `\r\n`, "\r\n")
		res = strings.TrimSuffix(res, eol) + extra
		if !strings.HasSuffix(res, "\n") {
			res += eol
		}
	}
	return res, nil
}

func contains(lines []string, l string) bool {
	for _, x := range lines {
		if x == l {
			return true
		}
	}
	return false
}

// fix_nated_sdp(flags[, ip[, sdp_fields]])
func callFixNatedSDP(m *msgctx.Msg, a *modules.Args) int {
	f, ok := a.Fix.(SDPFlag)
	if !ok {
		var err error
		if f, _, err = ParseSDPFlags(a.Str(0)); err != nil {
			logErr(m, "%v", err)
			return -1
		}
	}
	msg := message(m)
	if msg == nil || !isSDP(msg) {
		return -1
	}
	ip := strings.Trim(m.Src.IP, "[]")
	if a.Has(1) {
		if s := strings.Trim(strings.TrimSpace(a.Str(1)), "[]"); s != "" {
			if net.ParseIP(s) == nil {
				logErr(m, "fix_nated_sdp: %q is not an IP address", s)
				return -1
			}
			ip = s
		}
	}
	if ip == "" && f&(RewriteMediaIP|RewriteOriginIP) != 0 {
		logErr(m, "fix_nated_sdp: the source address is unknown")
		return -1
	}
	extra := ""
	if a.Has(2) {
		extra = a.Str(2)
	}
	body, err := FixSDP(string(msg.Body()), f, ip, extra, cur.Load())
	if err != nil {
		logErr(m, "fix_nated_sdp: %v", err)
		return -1
	}
	msg.SetBody([]byte(body))
	return 1
}
