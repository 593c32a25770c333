package syntax

import (
	"strconv"
	"strings"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/source"
)

// maxPVarDepth bounds pvars nested in names, indexes and transformation
// parameters ($hdr($var($avp(...)))).
const maxPVarDepth = 16

// ParsePVar parses one pseudo-variable at the start of s, which must begin
// with '$', and returns it with the number of bytes it spans. at is the
// position of s[0]; every node gets its own position from it.
//
// The accepted forms follow OpenSIPS's pv_parse_spec:
//
//	$name                    $rU $T_reply_code
//	$name(inner)             $hdr(Via) $avp(x) $hdr($var(n))
//	$(name[(inner)][index]{tr}...)   $(hdr(Via)[0]) $(avp(x)[*]) $(rU{s.substr,0,4}{s.tolower})
//
// An index or transformation needs the parenthesized form.
func ParsePVar(s string, at source.Pos) (*ast.PVar, int, error) {
	p := pvParser{s: s, at: at}
	pv, n, ok := p.parse(0, 0)
	if !ok {
		return nil, n, p.errs
	}
	return pv, n, nil
}

// ParseFormat splits a format string such as "$rm from $si:$sp\n" into
// literal and pseudo-variable segments. A '$' that does not start a
// pseudo-variable (a letter, '_' or '(' must follow) is literal text, so
// regular expressions such as "^\+?[0-9]+$" are a single text segment; "$$"
// is a literal '$' as in OpenSIPS. at is the position of s[0].
func ParseFormat(s string, at source.Pos) ([]ast.FormatSegment, error) {
	var segs []ast.FormatSegment
	var text strings.Builder
	flush := func() {
		if text.Len() > 0 {
			segs = append(segs, ast.FormatSegment{Text: text.String()})
			text.Reset()
		}
	}
	i := 0
	for i < len(s) {
		j := strings.IndexByte(s[i:], '$')
		if j < 0 {
			text.WriteString(s[i:])
			break
		}
		text.WriteString(s[i : i+j])
		i += j
		if i+1 < len(s) && s[i+1] == '$' {
			text.WriteByte('$')
			i += 2
			continue
		}
		if i+1 >= len(s) || !(isLetter(s[i+1]) || s[i+1] == '_' || s[i+1] == '(') {
			text.WriteByte('$')
			i++
			continue
		}
		p := pvParser{s: s, at: at}
		pv, n, ok := p.parse(i, 0)
		if !ok {
			return nil, p.errs
		}
		flush()
		segs = append(segs, ast.FormatSegment{PV: pv})
		i = n
	}
	flush()
	return segs, nil
}

type pvParser struct {
	s    string
	at   source.Pos
	errs source.ErrorList
}

// posAt is the position of s[i], counting lines from p.at.
func (p *pvParser) posAt(i int) source.Pos {
	pos := p.at
	if i > len(p.s) {
		i = len(p.s)
	}
	last := strings.LastIndexByte(p.s[:i], '\n')
	if last < 0 {
		pos.Col += i
		return pos
	}
	pos.Line += strings.Count(p.s[:i], "\n")
	pos.Col = i - last
	return pos
}

func (p *pvParser) fail(i int, format string, args ...any) (*ast.PVar, int, bool) {
	p.errs.Add(p.posAt(i), format, args...)
	return nil, i, false
}

func isPVNameChar(c byte) bool { return isIdentChar(c) }

// parse parses the pvar at s[i] (s[i] == '$') and returns it with the offset
// just past it.
func (p *pvParser) parse(i, depth int) (*ast.PVar, int, bool) {
	s := p.s
	if depth > maxPVarDepth {
		return p.fail(i, "pseudo-variables nested too deeply")
	}
	if i >= len(s) || s[i] != '$' {
		return p.fail(i, "expected '$'")
	}
	pv := &ast.PVar{At: p.posAt(i)}
	k := i + 1
	paren := false
	if k < len(s) && s[k] == '(' {
		paren = true
		k++
	}
	if k < len(s) && s[k] == '<' {
		return p.fail(k, "pseudo-variable contexts ($<context>name) are not supported")
	}
	nameStart := k
	for k < len(s) && isPVNameChar(s[k]) {
		k++
	}
	if k == nameStart {
		if k < len(s) {
			return p.fail(k, "invalid pseudo-variable: expected a name after '$', found %q", s[k])
		}
		return p.fail(k, "invalid pseudo-variable: expected a name after '$'")
	}
	if !(isLetter(s[nameStart]) || s[nameStart] == '_') {
		return p.fail(nameStart, "invalid pseudo-variable name %q", s[nameStart:k])
	}
	pv.Name = s[nameStart:k]
	if k < len(s) && s[k] == '(' {
		end, ok := p.inner(pv, k, depth)
		if !ok {
			return nil, end, false
		}
		k = end
	}
	if !paren {
		return pv, k, true
	}
	if k < len(s) && s[k] == '[' {
		end, ok := p.index(pv, k, depth)
		if !ok {
			return nil, end, false
		}
		k = end
	}
	for k < len(s) && s[k] == '{' {
		end, ok := p.transform(pv, k, depth)
		if !ok {
			return nil, end, false
		}
		k = end
		for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
			k++
		}
	}
	if k >= len(s) {
		return p.fail(k, "unterminated pseudo-variable: missing ')'")
	}
	if s[k] != ')' {
		return p.fail(k, "invalid character %q in pseudo-variable", s[k])
	}
	return pv, k + 1, true
}

// matchClose finds the byte closing the bracket open at s[i], counting
// nesting of that bracket kind only (as pv_parse_spec does).
func matchClose(s string, i int) int {
	open := s[i]
	var close byte
	switch open {
	case '(':
		close = ')'
	case '[':
		close = ']'
	case '{':
		close = '}'
	}
	n := 0
	for k := i + 1; k < len(s); k++ {
		switch s[k] {
		case open:
			n++
		case close:
			if n == 0 {
				return k
			}
			n--
		}
	}
	return -1
}

// inner parses the (name) part at s[i] == '('.
func (p *pvParser) inner(pv *ast.PVar, i, depth int) (int, bool) {
	s := p.s
	end := matchClose(s, i)
	if end < 0 {
		_, e, _ := p.fail(i, "unterminated pseudo-variable name: missing ')'")
		return e, false
	}
	content := s[i+1 : end]
	if content == "" {
		_, e, _ := p.fail(i, "empty name in $%s()", pv.Name)
		return e, false
	}
	pv.HasArg = true
	if content[0] == '$' && len(content) > 1 && (isLetter(content[1]) || content[1] == '_' || content[1] == '(') {
		sub := pvParser{s: s, at: p.at}
		inner, n, ok := sub.parse(i+1, depth+1)
		if ok && n == end {
			pv.ArgPV = inner
			return end + 1, true
		}
		if !ok && len(sub.errs) > 0 {
			p.errs = append(p.errs, sub.errs...)
			return end, false
		}
	}
	pv.Arg = content
	return end + 1, true
}

// index parses [N], [-N], [*] or [$pvar] at s[i] == '['.
func (p *pvParser) index(pv *ast.PVar, i, depth int) (int, bool) {
	s := p.s
	end := matchClose(s, i)
	if end < 0 {
		_, e, _ := p.fail(i, "unterminated index: missing ']'")
		return e, false
	}
	lo, hi := i+1, end
	for lo < hi && (s[lo] == ' ' || s[lo] == '\t') {
		lo++
	}
	for hi > lo && (s[hi-1] == ' ' || s[hi-1] == '\t') {
		hi--
	}
	content := s[lo:hi]
	switch {
	case content == "":
		_, e, _ := p.fail(i, "empty index in $(%s[])", pv.Name)
		return e, false
	case content == "*":
		pv.IndexAll = true
	case content[0] == '$':
		sub := pvParser{s: s, at: p.at}
		ipv, n, ok := sub.parse(lo, depth+1)
		if !ok {
			p.errs = append(p.errs, sub.errs...)
			return lo, false
		}
		if n != hi {
			_, e, _ := p.fail(n, "invalid index %q", content)
			return e, false
		}
		pv.Index = ipv
	default:
		v, err := strconv.Atoi(content)
		if err != nil {
			_, e, _ := p.fail(lo, "invalid index %q: expected an integer, '*' or a pseudo-variable", content)
			return e, false
		}
		pv.Index = &ast.Literal{At: p.posAt(lo), Kind: ast.IntLit, Int: v}
	}
	return end + 1, true
}

// transform parses one {class.name,param,...} at s[i] == '{'. Parameters are
// split at ',' as OpenSIPS does: leading blanks are skipped, a parameter that
// starts with '$' is a pseudo-variable, anything else is raw text (an
// integer when it is one). {s.select,N,C} takes C as a single raw character.
func (p *pvParser) transform(pv *ast.PVar, i, depth int) (int, bool) {
	s := p.s
	end := matchClose(s, i)
	if end < 0 {
		_, e, _ := p.fail(i, "unterminated transformation: missing '}'")
		return e, false
	}
	tr := &ast.Transform{At: p.posAt(i)}
	k := i + 1
	// class.name up to the first ',' or the end
	nameEnd := k
	for nameEnd < end && s[nameEnd] != ',' {
		nameEnd++
	}
	full := strings.TrimSpace(s[k:nameEnd])
	dot := strings.IndexByte(full, '.')
	if dot <= 0 || dot == len(full)-1 {
		_, e, _ := p.fail(i, "invalid transformation {%s}: expected {class.name[,params]}", s[k:end])
		return e, false
	}
	tr.Class, tr.Name = full[:dot], full[dot+1:]
	k = nameEnd
	for k < end {
		// s[k] == ','
		k++
		if tr.Class == "s" && tr.Name == "select" && len(tr.Params) == 1 {
			// the separator is one raw character, even ',' or '}'
			tr.Params = append(tr.Params, &ast.Literal{At: p.posAt(k), Kind: ast.StringLit, Str: s[k : k+1]})
			k++
			if k > end {
				end = matchCloseFrom(s, k)
				if end < 0 {
					_, e, _ := p.fail(i, "unterminated transformation: missing '}'")
					return e, false
				}
			}
			for k < end && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n') {
				k++
			}
			if k != end {
				_, e, _ := p.fail(k, "invalid transformation {%s}: unexpected %q", s[i+1:end], s[k])
				return e, false
			}
			break
		}
		for k < end && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n') {
			k++
		}
		if k < end && s[k] == '$' {
			sub := pvParser{s: s, at: p.at}
			ppv, n, ok := sub.parse(k, depth+1)
			if !ok {
				p.errs = append(p.errs, sub.errs...)
				return k, false
			}
			tr.Params = append(tr.Params, ppv)
			k = n
			for k < end && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n') {
				k++
			}
			if k < end && s[k] != ',' {
				_, e, _ := p.fail(k, "invalid transformation parameter: unexpected %q after %s", s[k], ppv.String())
				return e, false
			}
			continue
		}
		start := k
		for k < end && s[k] != ',' {
			k++
		}
		raw := s[start:k]
		if cut := strings.IndexAny(raw, "\t\n"); cut >= 0 {
			if strings.TrimLeft(raw[cut:], " \t\n") != "" {
				_, e, _ := p.fail(start+cut, "invalid transformation parameter %q", raw)
				return e, false
			}
			raw = raw[:cut]
		}
		tr.Params = append(tr.Params, trParam(raw, p.posAt(start)))
	}
	pv.Trans = append(pv.Trans, tr)
	return end + 1, true
}

// matchCloseFrom finds the '}' closing a transformation when the s.select
// separator consumed the first candidate.
func matchCloseFrom(s string, k int) int {
	for ; k < len(s); k++ {
		if s[k] == '}' {
			return k
		}
	}
	return -1
}

func trParam(raw string, at source.Pos) *ast.Literal {
	if v, err := strconv.Atoi(strings.TrimRight(raw, " ")); err == nil && raw != "" {
		return &ast.Literal{At: at, Kind: ast.IntLit, Int: v, Str: raw}
	}
	return &ast.Literal{At: at, Kind: ast.StringLit, Str: raw}
}

// pvarExtent returns where the pseudo-variable starting at src[i] ends. For
// malformed text it falls back to roughly what OpenSIPS's lexer would take:
// up to a blank, ';', quote or newline, or an operator outside parentheses.
func pvarExtent(src string, i int) int {
	if n, ok := pvarEnd(src, i); ok {
		// $rU{s.len} or $avp(x)[1]: keep the misplaced suffix in the token
		// so the parser can explain that it needs $(...).
		if src[i+1] != '(' {
			for n < len(src) && (src[n] == '{' || src[n] == '[') {
				e := matchClose(src, n)
				if e < 0 || strings.IndexByte(src[n:e], '\n') >= 0 {
					break
				}
				n = e + 1
			}
		}
		return n
	}
	k := i + 1
	if k < len(src) && src[k] == '<' {
		// $<context>name(...): skip the context so the token stays whole
		for k < len(src) && src[k] != '>' && src[k] != '\n' {
			k++
		}
		if k < len(src) && src[k] == '>' {
			k++
		}
	}
	depth := 0
	for k < len(src) {
		c := src[k]
		switch {
		case c == '(':
			depth++
		case c == ')':
			if depth == 0 {
				return k
			}
			depth--
			if depth == 0 {
				return k + 1
			}
		case c == '\n' || c == '"' || c == '\'' || c == ';' || c == ' ' || c == '\t' || c == '\r':
			return k
		case depth == 0 && strings.IndexByte(",=<>!~+-*/%&|^{}[]#:", c) >= 0:
			return k
		}
		k++
	}
	return k
}

// pvarEnd finds the end of a well-formed pseudo-variable at s[i] by its
// bracket structure alone (ParsePVar checks the contents later).
func pvarEnd(s string, i int) (int, bool) {
	k := i + 1
	paren := k < len(s) && s[k] == '('
	if paren {
		k++
	}
	start := k
	for k < len(s) && isPVNameChar(s[k]) {
		k++
	}
	if k == start || !(isLetter(s[start]) || s[start] == '_') {
		return k, false
	}
	if k < len(s) && s[k] == '(' {
		e := matchClose(s, k)
		if e < 0 {
			return k, false
		}
		k = e + 1
	}
	if !paren {
		return k, true
	}
	if k < len(s) && s[k] == '[' {
		e := matchClose(s, k)
		if e < 0 {
			return k, false
		}
		k = e + 1
	}
	for k < len(s) && s[k] == '{' {
		e := matchClose(s, k)
		if e < 0 {
			return k, false
		}
		k = e + 1
		for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
			k++
		}
	}
	if k < len(s) && s[k] == ')' {
		return k + 1, true
	}
	return k, false
}
