package auth

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"hash"
	"strings"
)

// Alg is a digest algorithm (RFC 2617, RFC 8760). AlgUnspec is MD5 offered
// without an algorithm parameter, as OpenSIPS challenges by default.
type Alg uint8

const (
	AlgUnspec Alg = iota
	AlgMD5
	AlgMD5Sess
	AlgSHA256
	AlgSHA256Sess
	AlgSHA512_256
	AlgSHA512_256Sess
	numAlgs
)

var algNames = [numAlgs]string{"", "MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256", "SHA-512-256-sess"}

func (a Alg) String() string {
	if a == AlgUnspec {
		return "MD5"
	}
	return algNames[a]
}

// ParseAlg reads an algorithm name (case-insensitive); "" is AlgUnspec.
func ParseAlg(s string) (Alg, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return AlgUnspec, true
	}
	for a := AlgMD5; a < numAlgs; a++ {
		if strings.EqualFold(s, algNames[a]) {
			return a, true
		}
	}
	return 0, false
}

// Sess tells whether the algorithm is a -sess variant.
func (a Alg) Sess() bool { return a == AlgMD5Sess || a == AlgSHA256Sess || a == AlgSHA512_256Sess }

// Base is the algorithm without -sess (and MD5 for AlgUnspec): the hash a
// stored HA1 column holds.
func (a Alg) Base() Alg {
	switch a {
	case AlgUnspec, AlgMD5, AlgMD5Sess:
		return AlgMD5
	case AlgSHA256, AlgSHA256Sess:
		return AlgSHA256
	}
	return AlgSHA512_256
}

// HexLen is the length of a hex digest.
func (a Alg) HexLen() int {
	if a.Base() == AlgMD5 {
		return 32
	}
	return 64
}

func (a Alg) newHash() hash.Hash {
	switch a.Base() {
	case AlgSHA256:
		return sha256.New()
	case AlgSHA512_256:
		return sha512.New512_256()
	}
	return md5.New()
}

// H hashes the parts joined by ':' and returns lowercase hex.
func (a Alg) H(parts ...string) string {
	h := a.newHash()
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{':'})
		}
		h.Write([]byte(p))
	}
	var buf [32]byte
	sum := h.Sum(buf[:0])
	return hex.EncodeToString(sum)
}

// HA1 is H(username:realm:password), what subscriber.ha1 (MD5),
// ha1_sha256 and ha1_sha512t256 store.
func HA1(a Alg, username, realm, password string) string {
	return a.H(username, realm, password)
}

// Response computes the digest response from a (non-session) HA1.
// qop is "", "auth" or "auth-int"; body is used for auth-int.
func Response(a Alg, ha1, nonce, nc, cnonce, qop, method, uri string, body []byte) string {
	if a.Sess() {
		ha1 = a.H(ha1, nonce, cnonce)
	}
	var ha2 string
	if qop == "auth-int" {
		ha2 = a.H(method, uri, a.H(string(body)))
	} else {
		ha2 = a.H(method, uri)
	}
	if qop == "" {
		return a.H(ha1, nonce, ha2)
	}
	return a.H(ha1, nonce, nc, cnonce, qop, ha2)
}

// equalHex compares two hex digests in constant time, ignoring case.
func equalHex(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.ToLower(a)), []byte(strings.ToLower(b))) == 1
}

// Credentials are one parsed Authorization / Proxy-Authorization value.
type Credentials struct {
	Username  string // as sent (may be user@domain)
	User      string // Username before '@'
	Domain    string // Username after '@' ("" when none)
	Realm     string
	Nonce     string
	URI       string
	Response  string
	AlgName   string
	Alg       Alg
	QOP       string
	NC        string
	CNonce    string
	Opaque    string
	header    int // index among the headers of its kind
	algKnown  bool
	malformed string // why the credentials are unusable ("" if fine)
}

// parseCredentials reads `Digest a=b, c="d"`. ok is false for another
// scheme or an unparsable value.
func parseCredentials(v string) (*Credentials, bool) {
	v = strings.TrimLeft(v, " \t")
	sp := strings.IndexAny(v, " \t")
	if sp < 0 || !strings.EqualFold(v[:sp], "Digest") {
		return nil, false
	}
	c := &Credentials{}
	p := v[sp:]
	for {
		p = strings.TrimLeft(p, " \t\r\n,")
		if p == "" {
			break
		}
		eq := strings.IndexByte(p, '=')
		if eq < 0 {
			return nil, false
		}
		name := strings.ToLower(strings.TrimSpace(p[:eq]))
		p = strings.TrimLeft(p[eq+1:], " \t")
		var val string
		if p != "" && p[0] == '"' {
			var b strings.Builder
			i := 1
			for ; i < len(p) && p[i] != '"'; i++ {
				if p[i] == '\\' && i+1 < len(p) {
					i++
				}
				b.WriteByte(p[i])
			}
			if i >= len(p) {
				return nil, false
			}
			val, p = b.String(), p[i+1:]
		} else {
			end := strings.IndexByte(p, ',')
			if end < 0 {
				end = len(p)
			}
			val, p = strings.TrimSpace(p[:end]), p[end:]
		}
		switch name {
		case "username":
			c.Username = val
		case "realm":
			c.Realm = val
		case "nonce":
			c.Nonce = val
		case "uri":
			c.URI = val
		case "response":
			c.Response = val
		case "algorithm":
			c.AlgName = val
		case "qop":
			c.QOP = val
		case "nc":
			c.NC = val
		case "cnonce":
			c.CNonce = val
		case "opaque":
			c.Opaque = val
		}
	}
	c.User, c.Domain = c.Username, ""
	if at := strings.IndexByte(c.Username, '@'); at >= 0 {
		c.User, c.Domain = c.Username[:at], c.Username[at+1:]
	}
	c.Alg, c.algKnown = ParseAlg(c.AlgName)
	c.malformed = c.check()
	return c, true
}

// check is OpenSIPS's check_dig_cred: the fields a response needs.
func (c *Credentials) check() string {
	switch {
	case c.Username == "":
		return "no username"
	case c.Nonce == "":
		return "no nonce"
	case c.URI == "":
		return "no uri"
	case c.Response == "":
		return "no response"
	case !c.algKnown:
		return "unsupported algorithm " + c.AlgName
	}
	if c.QOP != "" {
		if c.QOP != "auth" && c.QOP != "auth-int" {
			return "unsupported qop " + c.QOP
		}
		if c.NC == "" || c.CNonce == "" {
			return "qop without nc or cnonce"
		}
		if len(c.NC) != 8 || !isHex(c.NC) {
			return "bad nc"
		}
	} else if c.Alg != AlgUnspec && c.Alg != AlgMD5 {
		return c.Alg.String() + " without qop" // RFC 8760 and -sess need qop
	}
	return ""
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
