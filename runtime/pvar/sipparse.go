package pvar

import (
	"errors"
	"strings"
)

// Zero-allocation splitters for the text the transformations work on: SIP
// URIs, name-addr values, Via bodies and ;-separated parameter lists. Every
// field is a substring of the input, as OpenSIPS's parsers point into the
// buffer, so a transformation that extracts one part does not allocate.

var (
	errBadURI      = errors.New("invalid URI")
	errBadNameAddr = errors.New("invalid name-addr (must have the To header format)")
	errBadVia      = errors.New("invalid Via body")
	errBadParams   = errors.New("invalid parameter list")
)

// uriParts is a split SIP/SIPS/TEL URI. Empty strings mean absent.
type uriParts struct {
	scheme, user, passwd, host, port string
	portNo                           int
	params, headers                  string
	// values of the parameters OpenSIPS's parse_uri knows by name
	transport, ttl, userParam, maddr, method, lr, r2 string
}

func hostChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_'
}

// parseURI splits s as OpenSIPS's parse_uri does: the scheme must be sip,
// sips, tel or tels, and a name-addr ("<sip:a@b>", with a display name or
// spaces) is rejected.
func parseURI(s string) (u uriParts, err error) {
	colon := strings.IndexByte(s, ':')
	if colon <= 0 {
		return u, errBadURI
	}
	u.scheme = s[:colon]
	tel := false
	switch {
	case strings.EqualFold(u.scheme, "sip"), strings.EqualFold(u.scheme, "sips"):
	case strings.EqualFold(u.scheme, "tel"), strings.EqualFold(u.scheme, "tels"):
		tel = true
	default:
		return u, errBadURI
	}
	rest := s[colon+1:]
	if rest == "" {
		return u, errBadURI
	}
	for i := 0; i < len(rest); i++ {
		switch c := rest[i]; c {
		case ' ', '\t', '\r', '\n', '<', '>', '"':
			return u, errBadURI
		}
	}
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		u.headers, rest = rest[q+1:], rest[:q]
	}
	if tel {
		if semi := strings.IndexByte(rest, ';'); semi >= 0 {
			u.params, rest = rest[semi+1:], rest[:semi]
		}
		if rest == "" {
			return u, errBadURI
		}
		u.user = rest
		u.scanParams()
		return u, nil
	}
	if at := strings.IndexByte(rest, '@'); at >= 0 {
		userinfo := rest[:at]
		rest = rest[at+1:]
		if c := strings.IndexByte(userinfo, ':'); c >= 0 {
			u.user, u.passwd = userinfo[:c], userinfo[c+1:]
		} else {
			u.user = userinfo
		}
		if u.user == "" {
			return u, errBadURI
		}
	}
	if semi := strings.IndexByte(rest, ';'); semi >= 0 {
		u.params, rest = rest[semi+1:], rest[:semi]
	}
	hostport := rest
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return u, errBadURI
		}
		u.host = hostport[:end+1]
		for i := 1; i < end; i++ {
			c := hostport[i]
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '.') {
				return u, errBadURI
			}
		}
		hostport = hostport[end+1:]
		if hostport != "" {
			if hostport[0] != ':' {
				return u, errBadURI
			}
			u.port = hostport[1:]
			if u.port == "" {
				return u, errBadURI
			}
		}
	} else {
		if c := strings.IndexByte(hostport, ':'); c >= 0 {
			u.host, u.port = hostport[:c], hostport[c+1:]
			if u.port == "" {
				return u, errBadURI
			}
		} else {
			u.host = hostport
		}
		if u.host == "" {
			return u, errBadURI
		}
		for i := 0; i < len(u.host); i++ {
			if !hostChar(u.host[i]) {
				return u, errBadURI
			}
		}
	}
	if u.port != "" {
		n := 0
		for i := 0; i < len(u.port); i++ {
			c := u.port[i]
			if c < '0' || c > '9' || i >= 5 {
				return u, errBadURI
			}
			n = n*10 + int(c-'0')
		}
		if n > 65535 {
			return u, errBadURI
		}
		u.portNo = n
	}
	u.scanParams()
	return u, nil
}

// scanParams records the values of the URI parameters parse_uri knows.
func (u *uriParts) scanParams() {
	p := u.params
	for p != "" {
		var seg string
		if i := strings.IndexByte(p, ';'); i >= 0 {
			seg, p = p[:i], p[i+1:]
		} else {
			seg, p = p, ""
		}
		name, val := seg, ""
		if i := strings.IndexByte(seg, '='); i >= 0 {
			name, val = seg[:i], seg[i+1:]
		}
		switch {
		case strings.EqualFold(name, "transport"):
			u.transport = val
		case strings.EqualFold(name, "ttl"):
			u.ttl = val
		case strings.EqualFold(name, "user"):
			u.userParam = val
		case strings.EqualFold(name, "maddr"):
			u.maddr = val
		case strings.EqualFold(name, "method"):
			u.method = val
		case strings.EqualFold(name, "lr"):
			u.lr = val
		case strings.EqualFold(name, "r2"):
			u.r2 = val
		}
	}
}

// defaultPortProto is what OpenSIPS's get_uri_port gives for a URI without
// an explicit port: 5061 and "tls" for sips: or transport=tls, else 5060 and
// the transport (default "udp").
func defaultPortProto(scheme, transport string) (int, string) {
	switch {
	case strings.EqualFold(scheme, "sips"), strings.EqualFold(transport, "tls"):
		return 5061, "tls"
	case strings.EqualFold(transport, "wss"):
		return 443, "wss"
	case strings.EqualFold(transport, "ws"):
		return 80, "ws"
	case strings.EqualFold(transport, "tcp"):
		return 5060, "tcp"
	case strings.EqualFold(transport, "sctp"):
		return 5060, "sctp"
	}
	return 5060, "udp"
}

// protoID is OpenSIPS's numeric protocol id (PROTO_UDP=1 …).
func protoID(p string) int {
	switch strings.ToLower(p) {
	case "udp":
		return 1
	case "tcp":
		return 2
	case "tls":
		return 3
	case "sctp":
		return 4
	case "ws":
		return 5
	case "wss":
		return 6
	}
	return 0
}

// nameAddr is a split name-addr / addr-spec with parameters, as parse_to
// gives for a To-like header body.
type nameAddr struct {
	display string // raw, with its quotes when quoted
	uri     string
	params  string // raw text of the parameters, without the leading ';'
	body    string // the whole (trimmed) input
}

// parseNameAddr splits s like the To header body. A missing closing '>' or
// quote, an empty URI, or garbage after the URI is an error.
func parseNameAddr(s string) (na nameAddr, err error) {
	s = trimWS(s)
	if s == "" {
		return na, errBadNameAddr
	}
	na.body = s
	p := s
	rest := ""
	switch {
	case p[0] == '"':
		end := -1
		for i := 1; i < len(p); i++ {
			if p[i] == '\\' {
				i++
				continue
			}
			if p[i] == '"' {
				end = i
				break
			}
		}
		if end < 0 {
			return na, errBadNameAddr
		}
		na.display = p[:end+1]
		p = trimLeftWS(p[end+1:])
		if p == "" || p[0] != '<' {
			return na, errBadNameAddr
		}
		fallthrough
	case strings.IndexByte(p, '<') >= 0 && (strings.IndexByte(p, ';') < 0 || strings.IndexByte(p, '<') < strings.IndexByte(p, ';')):
		lt := strings.IndexByte(p, '<')
		if na.display == "" {
			na.display = trimRightWS(p[:lt])
			for i := 0; i < len(na.display); i++ {
				switch na.display[i] {
				case '@', ':', '>', ';', ',', '"':
					return na, errBadNameAddr
				}
			}
		}
		gt := strings.IndexByte(p[lt:], '>')
		if gt < 0 {
			return na, errBadNameAddr
		}
		na.uri = trimWS(p[lt+1 : lt+gt])
		rest = trimWS(p[lt+gt+1:])
	default:
		if i := strings.IndexByte(p, ';'); i >= 0 {
			na.uri, rest = trimWS(p[:i]), p[i:]
		} else {
			na.uri = trimWS(p)
		}
		if strings.ContainsAny(na.uri, " \t>") {
			return na, errBadNameAddr
		}
	}
	if na.uri == "" {
		return na, errBadNameAddr
	}
	if rest != "" {
		if rest[0] != ';' {
			return na, errBadNameAddr
		}
		na.params = trimWS(rest[1:])
		if err := eachParam(na.params, func(string, string, string) bool { return true }); err != nil {
			return na, errBadNameAddr
		}
	}
	return na, nil
}

// param looks a parameter up by name; caseSensitive as nameaddr.param is.
func findParam(params, name string, caseSensitive bool) (val string, found bool) {
	_ = eachParam(params, func(n, v, _ string) bool {
		if n == name || (!caseSensitive && strings.EqualFold(n, name)) {
			val, found = v, true
			return false
		}
		return true
	})
	return
}

// eachParam walks a "a=1;b;c=\"x y\"" list as OpenSIPS's parse_params does:
// names and values are trimmed, a quoted value is given without its quotes
// (raw is the value as written). A leading ';' is tolerated.
func eachParam(s string, fn func(name, val, raw string) bool) error {
	p := trimLeftWS(s)
	if strings.HasPrefix(p, ";") {
		p = p[1:]
	}
	for {
		p = trimLeftWS(p)
		if p == "" {
			return nil
		}
		i := 0
		for i < len(p) && p[i] != '=' && p[i] != ';' {
			i++
		}
		name := trimRightWS(p[:i])
		if name == "" {
			return errBadParams
		}
		val, raw := "", ""
		p = p[i:]
		if p != "" && p[0] == '=' {
			p = trimLeftWS(p[1:])
			if p != "" && (p[0] == '"' || p[0] == '\'') {
				q := p[0]
				end := -1
				for j := 1; j < len(p); j++ {
					if p[j] == '\\' && q == '"' {
						j++
						continue
					}
					if p[j] == q {
						end = j
						break
					}
				}
				if end < 0 {
					return errBadParams
				}
				val, raw = p[1:end], p[:end+1]
				p = trimLeftWS(p[end+1:])
				if p != "" && p[0] != ';' {
					return errBadParams
				}
			} else {
				j := strings.IndexByte(p, ';')
				if j < 0 {
					j = len(p)
				}
				val = trimRightWS(p[:j])
				raw = val
				p = p[j:]
			}
		}
		if !fn(name, val, raw) {
			return nil
		}
		if p == "" {
			return nil
		}
		p = p[1:] // ';'
	}
}

// viaBody is one split Via body.
type viaBody struct {
	name, version, transport, host, port string
	portNo                               int
	params, comment                      string
}

// parseVia splits the first Via body of s: "SIP/2.0/UDP host:port;params (comment)".
func parseVia(s string) (v viaBody, err error) {
	p := trimWS(s)
	next := func(sep byte) (string, bool) {
		i := strings.IndexByte(p, sep)
		if i < 0 {
			return "", false
		}
		tok := trimWS(p[:i])
		p = trimLeftWS(p[i+1:])
		return tok, tok != ""
	}
	var ok bool
	if v.name, ok = next('/'); !ok {
		return v, errBadVia
	}
	if v.version, ok = next('/'); !ok {
		return v, errBadVia
	}
	i := 0
	for i < len(p) && !isWS(p[i]) {
		i++
	}
	v.transport = p[:i]
	p = trimLeftWS(p[i:])
	if v.transport == "" || p == "" {
		return v, errBadVia
	}
	// only the first body of a comma-separated list
	if c := strings.IndexByte(p, ','); c >= 0 {
		p = trimRightWS(p[:c])
	}
	if c := strings.IndexByte(p, '('); c >= 0 {
		end := strings.LastIndexByte(p, ')')
		if end < c {
			return v, errBadVia
		}
		v.comment = p[c+1 : end]
		p = trimRightWS(p[:c])
	}
	hostport := p
	if semi := strings.IndexByte(p, ';'); semi >= 0 {
		hostport, v.params = trimRightWS(p[:semi]), trimWS(p[semi+1:])
	}
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return v, errBadVia
		}
		v.host = hostport[:end+1]
		hostport = hostport[end+1:]
		if hostport != "" {
			if hostport[0] != ':' {
				return v, errBadVia
			}
			v.port = trimLeftWS(hostport[1:])
		}
	} else if c := strings.IndexByte(hostport, ':'); c >= 0 {
		v.host, v.port = trimRightWS(hostport[:c]), trimLeftWS(hostport[c+1:])
	} else {
		v.host = hostport
	}
	if v.host == "" {
		return v, errBadVia
	}
	for i := 0; i < len(v.host); i++ {
		if v.host[i] != '[' && v.host[i] != ']' && v.host[i] != ':' && !hostChar(v.host[i]) {
			return v, errBadVia
		}
	}
	if v.port != "" {
		n := 0
		for i := 0; i < len(v.port); i++ {
			c := v.port[i]
			if c < '0' || c > '9' || i >= 5 {
				return v, errBadVia
			}
			n = n*10 + int(c-'0')
		}
		if n > 65535 {
			return v, errBadVia
		}
		v.portNo = n
	}
	if v.params != "" {
		if err := eachParam(v.params, func(string, string, string) bool { return true }); err != nil {
			return v, errBadVia
		}
	}
	return v, nil
}

// parseCSV splits one RFC 4180 record.
func parseCSV(s string) ([]string, error) {
	var out []string
	p := s
	for {
		if strings.HasPrefix(p, "\"") {
			var b strings.Builder
			i := 1
			closed := false
			for i < len(p) {
				if p[i] == '"' {
					if i+1 < len(p) && p[i+1] == '"' {
						b.WriteByte('"')
						i += 2
						continue
					}
					closed = true
					i++
					break
				}
				b.WriteByte(p[i])
				i++
			}
			if !closed {
				return nil, errors.New("unterminated quoted CSV field")
			}
			out = append(out, b.String())
			p = p[i:]
			if p == "" {
				return out, nil
			}
			if p[0] != ',' {
				return nil, errors.New("garbage after quoted CSV field")
			}
			p = p[1:]
			continue
		}
		i := strings.IndexByte(p, ',')
		if i < 0 {
			out = append(out, strings.TrimRight(p, "\r\n"))
			return out, nil
		}
		out = append(out, p[:i])
		p = p[i+1:]
	}
}
