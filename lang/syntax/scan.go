package syntax

import (
	"io"
	"net/netip"
	"strconv"
	"unicode/utf8"

	"github.com/alecthomas/participle/v2/lexer"

	"github.com/sipedge/sipedge/lang/source"
)

// Token types produced by the hand-written scanner. The parser's grammar
// (participle) refers to them by the names in tokenSymbols.
const (
	tokIdent lexer.TokenType = iota + 1
	tokKeyword
	tokInt
	tokString // "double" or 'single' quoted; Value keeps quotes and escapes
	tokPVar   // $name, $name(arg), $(name...), Value is the raw text
	tokIP     // 10.0.0.1, 10.0.0.0/8, ::1, fe80::1/64
	tokNull   // NULL, null
	tokOp     // expression operators, unary and binary, and and/or/not
	tokAssign // = += -= *= /= %= |= &= ^= :=
	tokPunct  // ( ) { } [ ] ; , : .
)

var tokenSymbols = map[string]lexer.TokenType{
	"EOF":     lexer.EOF,
	"Ident":   tokIdent,
	"Keyword": tokKeyword,
	"Int":     tokInt,
	"String":  tokString,
	"PVar":    tokPVar,
	"IP":      tokIP,
	"Null":    tokNull,
	"Op":      tokOp,
	"Assign":  tokAssign,
	"Punct":   tokPunct,
}

// keywords are reserved words: they never match the grammar's Ident, so a
// statement such as `exit` without its ';' is reported as such instead of
// being taken for a bare function name.
var keywords = map[string]bool{
	"if": true, "else": true, "switch": true, "case": true, "default": true,
	"while": true, "for": true, "return": true, "exit": true, "drop": true,
	"break": true, "async": true, "launch": true, "assert": true,
	"route": true, "branch_route": true, "failure_route": true,
	"onreply_route": true, "local_route": true, "startup_route": true,
	"timer_route": true, "error_route": true, "event_route": true,
	"loadmodule": true, "modparam": true,
	"include_file": true, "import_file": true,
}

// wordTypes are words scanned as other token types: NULL, and the word
// spellings of the logical operators (cfg.lex: NOT, AND, OR).
var wordTypes = map[string]lexer.TokenType{
	"NULL": tokNull, "null": tokNull,
	"and": tokOp, "or": tokOp, "not": tokOp,
}

// tokenDef is the participle lexer.Definition. Parsing never goes through
// Lex (the scanner runs first so that includes can be spliced in), but the
// definition gives the grammar its symbol table.
type tokenDef struct{}

func (tokenDef) Symbols() map[string]lexer.TokenType { return tokenSymbols }

func (tokenDef) Lex(filename string, r io.Reader) (lexer.Lexer, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var errs source.ErrorList
	toks := scan(filename, b, &errs)
	if len(errs) > 0 {
		return nil, errs
	}
	return &sliceLexer{toks: toks, eof: toks[len(toks)-1]}, nil
}

// sliceLexer feeds an already scanned token slice (ending in EOF) to
// participle.
type sliceLexer struct {
	toks []lexer.Token
	eof  lexer.Token // returned after toks, unless toks ends with EOF
	i    int
}

func (l *sliceLexer) Next() (lexer.Token, error) {
	if l.i >= len(l.toks) {
		return l.eof, nil
	}
	t := l.toks[l.i]
	l.i++
	if t.EOF() {
		l.i = len(l.toks)
		l.eof = t
	}
	return t, nil
}

type scanner struct {
	file      string
	src       string
	i         int
	line      int
	lineStart int
	toks      []lexer.Token
	errs      *source.ErrorList
}

// scan tokenizes one file. Comments and whitespace are dropped; lexical
// errors are added to errs and scanning goes on. The result always ends
// with an EOF token.
func scan(file string, src []byte, errs *source.ErrorList) []lexer.Token {
	s := &scanner{file: file, src: string(src), line: 1, errs: errs}
	if len(src) >= 3 && src[0] == 0xEF && src[1] == 0xBB && src[2] == 0xBF {
		s.i = 3 // UTF-8 byte order mark
		s.lineStart = 3
	}
	s.toks = make([]lexer.Token, 0, len(src)/3+8)
	s.run()
	return s.toks
}

func (s *scanner) pos(i int) lexer.Position {
	return lexer.Position{Filename: s.file, Offset: i, Line: s.line, Column: i - s.lineStart + 1}
}

func (s *scanner) errAt(p lexer.Position, format string, args ...any) {
	s.errs.Add(source.Pos{File: p.Filename, Line: p.Line, Col: p.Column}, format, args...)
}

func (s *scanner) emit(t lexer.TokenType, start, end int, p lexer.Position) {
	s.toks = append(s.toks, lexer.Token{Type: t, Value: s.src[start:end], Pos: p})
}

// newlines advances the line counter over src[from:to].
func (s *scanner) newlines(from, to int) {
	for k := from; k < to; k++ {
		if s.src[k] == '\n' {
			s.line++
			s.lineStart = k + 1
		}
	}
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isHex(c byte) bool    { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
func isIdentChar(c byte) bool {
	return isLetter(c) || isDigit(c) || c == '_'
}

func (s *scanner) run() {
	src := s.src
	n := len(src)
	for s.i < n {
		i := s.i
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\b' || c == '\f' || c == '\v':
			s.i++
		case c == '\n':
			s.i++
			s.line++
			s.lineStart = s.i
		case c == '\\' && i+1 < n && src[i+1] == '\n':
			// escaped newline outside strings is eaten (cfg.lex)
			s.i += 2
			s.line++
			s.lineStart = s.i
		case c == '#':
			for s.i < n && src[s.i] != '\n' {
				s.i++
			}
		case c == '/' && i+1 < n && src[i+1] == '*':
			s.comment()
		case c == '"':
			s.dqString()
		case c == '\'':
			s.sqString()
		case c == '$':
			s.pvar()
		case isDigit(c):
			s.number()
		case isLetter(c) || c == '_':
			s.word()
		case c == ':' && i+1 < n && src[i+1] == ':':
			if end := matchIPv6(src, i); end > 0 {
				s.emit(tokIP, i, end, s.pos(i))
				s.i = end
			} else {
				s.punct()
			}
		default:
			s.punct()
		}
	}
	s.toks = append(s.toks, lexer.Token{Type: lexer.EOF, Pos: s.pos(n)})
}

// comment skips a /* */ comment; like cfg.lex, comments nest.
func (s *scanner) comment() {
	src := s.src
	start := s.pos(s.i)
	depth := 0
	for k := s.i; k < len(src); {
		switch {
		case src[k] == '/' && k+1 < len(src) && src[k+1] == '*':
			depth++
			k += 2
		case src[k] == '*' && k+1 < len(src) && src[k+1] == '/':
			depth--
			k += 2
			if depth == 0 {
				s.newlines(s.i, k)
				s.i = k
				return
			}
		default:
			k++
		}
	}
	s.errAt(start, "unterminated comment")
	s.newlines(s.i, len(src))
	s.i = len(src)
}

func (s *scanner) dqString() {
	src := s.src
	start := s.i
	p := s.pos(start)
	k := start + 1
	for k < len(src) && src[k] != '"' {
		if src[k] == '\\' && k+1 < len(src) {
			k++
		}
		k++
	}
	if k >= len(src) {
		s.errAt(p, "unterminated string")
		s.emit(tokString, start, len(src), p)
		s.newlines(start, len(src))
		s.i = len(src)
		return
	}
	s.emit(tokString, start, k+1, p)
	s.newlines(start, k+1)
	s.i = k + 1
}

func (s *scanner) sqString() {
	src := s.src
	start := s.i
	p := s.pos(start)
	k := start + 1
	for k < len(src) && src[k] != '\'' {
		k++
	}
	if k >= len(src) {
		s.errAt(p, "unterminated string")
		s.emit(tokString, start, len(src), p)
		s.newlines(start, len(src))
		s.i = len(src)
		return
	}
	s.emit(tokString, start, k+1, p)
	s.newlines(start, k+1)
	s.i = k + 1
}

// pvar scans a pseudo-variable token. Its extent follows ParsePVar; when the
// text is malformed the token still covers it (see pvarExtent) and the error
// is reported once, when the parser converts the token.
func (s *scanner) pvar() {
	src := s.src
	start := s.i
	p := s.pos(start)
	end := pvarExtent(src, start)
	s.emit(tokPVar, start, end, p)
	s.newlines(start, end)
	s.i = end
}

// number scans an integer, or an IPv4/IPv6 address or network.
func (s *scanner) number() {
	src := s.src
	start := s.i
	p := s.pos(start)
	if end := matchIPv4(src, start); end > 0 {
		s.emit(tokIP, start, end, p)
		s.i = end
		return
	}
	if end := matchIPv6(src, start); end > 0 {
		s.emit(tokIP, start, end, p)
		s.i = end
		return
	}
	k := start
	for k < len(src) && isIdentChar(src[k]) {
		k++
	}
	s.emit(tokInt, start, k, p)
	s.i = k
}

func (s *scanner) word() {
	src := s.src
	start := s.i
	p := s.pos(start)
	k := start
	for k < len(src) && isIdentChar(src[k]) {
		k++
	}
	if k < len(src) && src[k] == ':' && isHex(src[start]) {
		if end := matchIPv6(src, start); end > 0 {
			s.emit(tokIP, start, end, p)
			s.i = end
			return
		}
	}
	t := tokIdent
	w := src[start:k]
	if keywords[w] {
		t = tokKeyword
	} else if wt, ok := wordTypes[w]; ok {
		t = wt
	}
	s.emit(t, start, k, p)
	s.i = k
}

var twoCharOps = [...]struct {
	op string
	t  lexer.TokenType
}{
	{"==", tokOp}, {"!=", tokOp}, {"=~", tokOp}, {"!~", tokOp}, {"<=", tokOp},
	{">=", tokOp}, {"<<", tokOp}, {">>", tokOp}, {"&&", tokOp}, {"||", tokOp},
	{"+=", tokAssign}, {"-=", tokAssign}, {"*=", tokAssign}, {"/=", tokAssign},
	{"%=", tokAssign}, {"&=", tokAssign}, {"|=", tokAssign}, {"^=", tokAssign},
	{":=", tokAssign},
}

func (s *scanner) punct() {
	src := s.src
	i := s.i
	p := s.pos(i)
	if i+1 < len(src) {
		two := src[i : i+2]
		for _, op := range twoCharOps {
			if two == op.op {
				s.emit(op.t, i, i+2, p)
				s.i += 2
				return
			}
		}
	}
	switch src[i] {
	case '<', '>', '!', '~', '+', '-', '*', '/', '%', '&', '|', '^':
		s.emit(tokOp, i, i+1, p)
		s.i++
		return
	case '=':
		s.emit(tokAssign, i, i+1, p)
		s.i++
		return
	case '(', ')', '{', '}', '[', ']', ';', ',', ':', '.':
		s.emit(tokPunct, i, i+1, p)
		s.i++
		return
	}
	r, size := utf8.DecodeRuneInString(src[i:])
	if r == utf8.RuneError && size <= 1 {
		s.errAt(p, "invalid byte 0x%02x", src[i])
		size = 1
	} else {
		s.errAt(p, "unexpected character %q", r)
	}
	s.i += size
}

// matchIPv4 matches N.N.N.N with an optional /bits or /N.N.N.N netmask at
// src[i:], returning the end offset or -1.
func matchIPv4(src string, i int) int {
	k := i
	for part := 0; part < 4; part++ {
		if part > 0 {
			if k >= len(src) || src[k] != '.' {
				return -1
			}
			k++
		}
		d := k
		for k < len(src) && isDigit(src[k]) {
			k++
		}
		if k == d || k-d > 3 {
			return -1
		}
	}
	if k < len(src) && (isIdentChar(src[k]) || src[k] == '.') {
		return -1
	}
	if k+1 < len(src) && src[k] == '/' && isDigit(src[k+1]) {
		if e := matchIPv4(src, k+1); e > 0 {
			return e
		}
		e := k + 1
		for e < len(src) && isDigit(src[e]) {
			e++
		}
		if e < len(src) && isIdentChar(src[e]) {
			return k
		}
		return e
	}
	return k
}

// matchIPv6 matches an IPv6 address (with optional /bits) at src[i:]. To
// stay clear of `case 1:` and `udp:host:port`, the text must contain "::" or
// be the full eight groups, and must parse as an address.
func matchIPv6(src string, i int) int {
	k := i
	colons := 0
	double := false
	for k < len(src) && (isHex(src[k]) || src[k] == ':' || src[k] == '.') {
		if src[k] == ':' {
			colons++
			if k+1 < len(src) && src[k+1] == ':' {
				double = true
			}
		}
		k++
	}
	// a trailing "." belongs to the next token
	for k > i && src[k-1] == '.' {
		k--
	}
	if colons < 2 || (!double && colons != 7) {
		return -1
	}
	if k < len(src) && isIdentChar(src[k]) {
		return -1
	}
	addr, err := netip.ParseAddr(src[i:k])
	if err != nil || !addr.Is6() {
		return -1
	}
	if k+1 < len(src) && src[k] == '/' && isDigit(src[k+1]) {
		e := k + 1
		for e < len(src) && isDigit(src[e]) {
			e++
		}
		if e < len(src) && isIdentChar(src[e]) {
			return k
		}
		return e
	}
	return k
}

// unquote turns a string token into its value. Double-quoted strings use
// OpenSIPS's escapes (cfg.lex STRING1): \n \r \a \t \" \\ \xH[H] and octal
// \NN[N]; a backslash-newline is dropped; any other backslash is kept as is,
// so "^\+?[0-9]+$" reaches the regex compiler unchanged. Single-quoted
// strings have no escapes at all.
func unquote(raw string) string {
	if len(raw) == 0 {
		return ""
	}
	if raw[0] == '\'' {
		body := raw[1:]
		if len(body) > 0 && body[len(body)-1] == '\'' {
			body = body[:len(body)-1]
		}
		return body
	}
	body := raw[1:]
	if len(body) > 0 && body[len(body)-1] == '"' && !escapedQuote(body) {
		body = body[:len(body)-1]
	}
	k := 0
	for k < len(body) && body[k] != '\\' {
		k++
	}
	if k == len(body) {
		return body
	}
	b := make([]byte, 0, len(body))
	b = append(b, body[:k]...)
	for k < len(body) {
		c := body[k]
		if c != '\\' || k+1 >= len(body) {
			b = append(b, c)
			k++
			continue
		}
		e := body[k+1]
		switch e {
		case 'n':
			b = append(b, '\n')
			k += 2
		case 'r':
			b = append(b, '\r')
			k += 2
		case 'a':
			b = append(b, '\a')
			k += 2
		case 't':
			b = append(b, '\t')
			k += 2
		case '"':
			b = append(b, '"')
			k += 2
		case '\\':
			b = append(b, '\\')
			k += 2
		case '\n':
			k += 2
		case 'x':
			h := k + 2
			for h < len(body) && h < k+4 && isHex(body[h]) {
				h++
			}
			if h == k+2 {
				b = append(b, '\\')
				k++
				continue
			}
			v, _ := strconv.ParseUint(body[k+2:h], 16, 8)
			b = append(b, byte(v))
			k = h
		default:
			o := k + 1
			for o < len(body) && o < k+4 && body[o] >= '0' && body[o] <= '7' {
				o++
			}
			if o-(k+1) >= 2 {
				v, _ := strconv.ParseUint(body[k+1:o], 8, 16)
				b = append(b, byte(v))
				k = o
				continue
			}
			b = append(b, '\\')
			k++
		}
	}
	return string(b)
}

// escapedQuote reports whether the final '"' of body is escaped by an odd
// run of backslashes (only possible for an unterminated string).
func escapedQuote(body string) bool {
	n := 0
	for k := len(body) - 2; k >= 0 && body[k] == '\\'; k-- {
		n++
	}
	return n%2 == 1
}
