package bytecode

import (
	"regexp"
	"strings"
)

// Matcher is a compiled `=~` pattern. Most script regexes are alternations
// of plain words, optionally with `.*` gaps ("friendly|sipcli|VoIP.*v1");
// those are matched by substring search, several times faster than
// regexp's general engine, and anything else falls back to the regexp.
type Matcher struct {
	Re   *regexp.Regexp
	alts [][]string // nil when the pattern is not of the simple form
	fold bool       // ASCII case-insensitive
	// first marks the bytes an alternative's first piece can start with, so
	// one pass over the subject finds every candidate position.
	first [256]bool
}

// NewMatcher compiles pattern; fold makes it case-insensitive, as OpenSIPS
// compiles script regexes (REG_ICASE).
func NewMatcher(pattern string, fold bool) (*Matcher, error) {
	src := pattern
	if fold {
		src = "(?i)" + pattern
	}
	re, err := regexp.Compile(src)
	if err != nil {
		return nil, err
	}
	m := &Matcher{Re: re, fold: fold}
	m.alts = splitSimple(pattern)
	for _, alt := range m.alts {
		if fold {
			for i, p := range alt {
				alt[i] = strings.ToLower(p)
			}
		}
		if c := alt[0]; c != "" {
			m.first[c[0]] = true
			if fold {
				m.first[strings.ToUpper(c[:1])[0]] = true
			}
		}
	}
	return m, nil
}

// splitSimple returns the alternatives of pattern as literal pieces
// separated by `.*`, or nil if pattern uses anything else.
func splitSimple(pattern string) [][]string {
	var alts [][]string
	var pieces []string
	var cur strings.Builder
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch {
		case c >= 0x80:
			return nil
		case c == '\\':
			if i+1 >= len(pattern) {
				return nil
			}
			n := pattern[i+1]
			if !strings.ContainsRune(`.^$*+?()[]{}|\/-`, rune(n)) {
				return nil // \d, \w, \b … are classes, not literals
			}
			cur.WriteByte(n)
			i++
		case c == '.' && i+1 < len(pattern) && pattern[i+1] == '*':
			pieces = append(pieces, cur.String())
			cur.Reset()
			i++
		case c == '|':
			pieces = append(pieces, cur.String())
			cur.Reset()
			alts = append(alts, pieces)
			pieces = nil
		case strings.IndexByte(`.^$*+?()[]{}`, c) >= 0:
			return nil
		default:
			cur.WriteByte(c)
		}
	}
	pieces = append(pieces, cur.String())
	alts = append(alts, pieces)
	return alts
}

// MatchString reports whether s contains a match.
func (m *Matcher) MatchString(s string) bool {
	if m.alts == nil || !plainASCII(s) {
		return m.Re.MatchString(s)
	}
	for _, alt := range m.alts {
		if alt[0] == "" && matchPieces(s, alt[1:], m.fold) {
			return true
		}
	}
	for i := 0; i < len(s); i++ {
		if !m.first[s[i]] {
			continue
		}
		for _, alt := range m.alts {
			if p := alt[0]; p != "" && hasPrefix(s[i:], p, m.fold) && matchPieces(s[i+len(p):], alt[1:], m.fold) {
				return true
			}
		}
	}
	return false
}

func hasPrefix(s, p string, fold bool) bool {
	if len(s) < len(p) {
		return false
	}
	if !fold {
		return s[:len(p)] == p
	}
	for j := 0; j < len(p); j++ {
		if lower(s[j]) != p[j] {
			return false
		}
	}
	return true
}

// matchPieces finds each piece in order; the leftmost occurrence of each is
// the best choice, since it leaves the most room for the rest.
func matchPieces(s string, pieces []string, fold bool) bool {
	for _, p := range pieces {
		i := index(s, p, fold)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return true
}

func index(s, p string, fold bool) int {
	if !fold {
		return strings.Index(s, p)
	}
	if len(p) == 0 {
		return 0
	}
	first := p[0]
	for i := 0; i+len(p) <= len(s); i++ {
		if lower(s[i]) != first {
			continue
		}
		j := 1
		for j < len(p) && lower(s[i+j]) == p[j] {
			j++
		}
		if j == len(p) {
			return i
		}
	}
	return -1
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// plainASCII is true when s has no newline (which `.` does not match) and
// no multi-byte characters (whose case folding is Unicode's, not ASCII's).
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\n' || c >= 0x80 {
			return false
		}
	}
	return true
}
