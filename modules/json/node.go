package json

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// kind is a JSON value's type.
type kind uint8

const (
	kNull kind = iota
	kBool
	kInt
	kNum // a number that is not an integer; text keeps its source form
	kStr
	kArr
	kObj
)

// node is one JSON value. Objects keep their keys in insertion order (as
// json-c does); json_link shares nodes between variables.
type node struct {
	k    kind
	b    bool
	i    int64
	s    string // string value, or the number's text for kNum
	arr  []*node
	keys []string
	vals map[string]*node
}

func newObj() *node { return &node{k: kObj, vals: map[string]*node{}} }

// get returns an object member.
func (n *node) get(key string) (*node, bool) {
	v, ok := n.vals[key]
	return v, ok
}

// put adds or replaces an object member (a replaced key keeps its place).
func (n *node) put(key string, v *node) {
	if _, ok := n.vals[key]; !ok {
		n.keys = append(n.keys, key)
	}
	n.vals[key] = v
}

func (n *node) del(key string) {
	if _, ok := n.vals[key]; !ok {
		return
	}
	delete(n.vals, key)
	for i, k := range n.keys {
		if k == key {
			n.keys = append(n.keys[:i:i], n.keys[i+1:]...)
			break
		}
	}
}

// ---- parsing ----

// maxDepth bounds nesting when parsing and printing.
const maxDepth = 512

type parser struct {
	s   string
	pos int
}

// parse reads one JSON value; trailing whitespace is allowed, anything
// else after the value is an error.
func parse(s string) (*node, error) {
	p := &parser{s: s}
	p.ws()
	n, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.pos != len(p.s) {
		return nil, fmt.Errorf("unexpected %q after the JSON value at offset %d", p.s[p.pos], p.pos)
	}
	return n, nil
}

func (p *parser) ws() {
	for p.pos < len(p.s) {
		switch p.s[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) errf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *parser) value(depth int) (*node, error) {
	if depth > maxDepth {
		return nil, p.errf("nested too deeply")
	}
	if p.pos >= len(p.s) {
		return nil, p.errf("unexpected end of input")
	}
	switch c := p.s[p.pos]; {
	case c == '{':
		p.pos++
		obj := newObj()
		p.ws()
		if p.pos < len(p.s) && p.s[p.pos] == '}' {
			p.pos++
			return obj, nil
		}
		for {
			p.ws()
			if p.pos >= len(p.s) || p.s[p.pos] != '"' {
				return nil, p.errf("object key expected")
			}
			key, err := p.str()
			if err != nil {
				return nil, err
			}
			p.ws()
			if p.pos >= len(p.s) || p.s[p.pos] != ':' {
				return nil, p.errf("':' expected")
			}
			p.pos++
			p.ws()
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			obj.put(key, v)
			p.ws()
			if p.pos < len(p.s) && p.s[p.pos] == ',' {
				p.pos++
				continue
			}
			if p.pos < len(p.s) && p.s[p.pos] == '}' {
				p.pos++
				return obj, nil
			}
			return nil, p.errf("',' or '}' expected")
		}
	case c == '[':
		p.pos++
		arr := &node{k: kArr}
		p.ws()
		if p.pos < len(p.s) && p.s[p.pos] == ']' {
			p.pos++
			return arr, nil
		}
		for {
			p.ws()
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			arr.arr = append(arr.arr, v)
			p.ws()
			if p.pos < len(p.s) && p.s[p.pos] == ',' {
				p.pos++
				continue
			}
			if p.pos < len(p.s) && p.s[p.pos] == ']' {
				p.pos++
				return arr, nil
			}
			return nil, p.errf("',' or ']' expected")
		}
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return &node{k: kStr, s: s}, nil
	case c == 't' && strings.HasPrefix(p.s[p.pos:], "true"):
		p.pos += 4
		return &node{k: kBool, b: true}, nil
	case c == 'f' && strings.HasPrefix(p.s[p.pos:], "false"):
		p.pos += 5
		return &node{k: kBool}, nil
	case c == 'n' && strings.HasPrefix(p.s[p.pos:], "null"):
		p.pos += 4
		return &node{k: kNull}, nil
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	return nil, p.errf("unexpected %q", p.s[p.pos])
}

func (p *parser) number() (*node, error) {
	start := p.pos
	isInt := true
	if p.s[p.pos] == '-' {
		p.pos++
	}
	digits := 0
	for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
		p.pos++
		digits++
	}
	if digits == 0 {
		return nil, p.errf("bad number")
	}
	if p.pos < len(p.s) && p.s[p.pos] == '.' {
		isInt = false
		p.pos++
		d := 0
		for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
			p.pos++
			d++
		}
		if d == 0 {
			return nil, p.errf("bad number")
		}
	}
	if p.pos < len(p.s) && (p.s[p.pos] == 'e' || p.s[p.pos] == 'E') {
		isInt = false
		p.pos++
		if p.pos < len(p.s) && (p.s[p.pos] == '+' || p.s[p.pos] == '-') {
			p.pos++
		}
		d := 0
		for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
			p.pos++
			d++
		}
		if d == 0 {
			return nil, p.errf("bad number")
		}
	}
	text := p.s[start:p.pos]
	if isInt {
		if n, err := strconv.ParseInt(text, 10, 64); err == nil {
			return &node{k: kInt, i: n}, nil
		}
		// json-c keeps out-of-range integers at the int64 limits
		if text[0] == '-' {
			return &node{k: kInt, i: math.MinInt64}, nil
		}
		return &node{k: kInt, i: math.MaxInt64}, nil
	}
	return &node{k: kNum, s: text}, nil
}

func (p *parser) str() (string, error) {
	p.pos++ // opening quote
	var b strings.Builder
	for {
		if p.pos >= len(p.s) {
			return "", p.errf("unterminated string")
		}
		c := p.s[p.pos]
		switch {
		case c == '"':
			p.pos++
			return b.String(), nil
		case c == '\\':
			if p.pos+1 >= len(p.s) {
				return "", p.errf("unterminated string")
			}
			e := p.s[p.pos+1]
			p.pos += 2
			switch e {
			case '"', '\\', '/':
				b.WriteByte(e)
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				r, err := p.hex4()
				if err != nil {
					return "", err
				}
				if r >= 0xD800 && r < 0xDC00 && strings.HasPrefix(p.s[p.pos:], "\\u") {
					save := p.pos
					p.pos += 2
					r2, err := p.hex4()
					if err == nil && r2 >= 0xDC00 && r2 < 0xE000 {
						r = (r-0xD800)<<10 + (r2 - 0xDC00) + 0x10000
					} else {
						p.pos = save
					}
				}
				b.WriteRune(rune(r))
			default:
				return "", p.errf("bad escape \\%c", e)
			}
		case c < 0x20:
			return "", p.errf("control character in a string")
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
}

func (p *parser) hex4() (int, error) {
	if p.pos+4 > len(p.s) {
		return 0, p.errf("bad \\u escape")
	}
	n, err := strconv.ParseUint(p.s[p.pos:p.pos+4], 16, 32)
	if err != nil {
		return 0, p.errf("bad \\u escape")
	}
	p.pos += 4
	return int(n), nil
}

// ---- printing, as json-c's json_object_to_json_string_ext ----

// Print flags (json-c's JSON_C_TO_STRING_*).
const (
	fPlain   = 0
	fSpaced  = 1 << 0
	fPretty  = 1 << 1
	fNoSlash = 1 << 4
)

var errCycle = errors.New("circular reference (json_link)")

func (n *node) print(flags int) (string, error) {
	var b strings.Builder
	if err := n.write(&b, 0, flags, map[*node]bool{}); err != nil {
		return "", err
	}
	return b.String(), nil
}

func indent(b *strings.Builder, level, flags int) {
	if flags&fPretty != 0 {
		for i := 0; i < level; i++ {
			b.WriteString("  ")
		}
	}
}

func (n *node) write(b *strings.Builder, level, flags int, open map[*node]bool) error {
	if n == nil {
		b.WriteString("null")
		return nil
	}
	switch n.k {
	case kNull:
		b.WriteString("null")
	case kBool:
		if n.b {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case kInt:
		b.WriteString(strconv.FormatInt(n.i, 10))
	case kNum:
		b.WriteString(n.s)
	case kStr:
		writeStr(b, n.s, flags)
	case kArr, kObj:
		if open[n] || level > maxDepth {
			return errCycle
		}
		open[n] = true
		defer delete(open, n)
		o, c := "[", "]"
		count := len(n.arr)
		if n.k == kObj {
			o, c = "{", "}"
			count = len(n.keys)
		}
		b.WriteString(o)
		for i := 0; i < count; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			if flags&fPretty != 0 {
				b.WriteByte('\n')
			} else if flags&fSpaced != 0 {
				b.WriteByte(' ')
			}
			indent(b, level+1, flags)
			v := (*node)(nil)
			if n.k == kObj {
				k := n.keys[i]
				writeStr(b, k, flags)
				if flags&fSpaced != 0 {
					b.WriteString(": ")
				} else {
					b.WriteByte(':')
				}
				v = n.vals[k]
			} else {
				v = n.arr[i]
			}
			if err := v.write(b, level+1, flags, open); err != nil {
				return err
			}
		}
		if flags&fPretty != 0 && count > 0 {
			b.WriteByte('\n')
			indent(b, level, flags)
		}
		if flags&fSpaced != 0 && flags&fPretty == 0 {
			b.WriteByte(' ')
		}
		b.WriteString(c)
	}
	return nil
}

const hexLower = "0123456789abcdef"

func writeStr(b *strings.Builder, s string, flags int) {
	b.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"':
			b.WriteString(`\"`)
		case c == '\\':
			b.WriteString(`\\`)
		case c == '/' && flags&fNoSlash == 0:
			b.WriteString(`\/`)
		case c == '\b':
			b.WriteString(`\b`)
		case c == '\f':
			b.WriteString(`\f`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hexLower[c>>4])
			b.WriteByte(hexLower[c&15])
		case c < utf8.RuneSelf:
			b.WriteByte(c)
		default:
			_, size := utf8.DecodeRuneInString(s[i:])
			b.WriteString(s[i : i+size])
			i += size
			continue
		}
		i++
	}
	b.WriteByte('"')
}

// merge applies an RFC 7396 merge patch to target and returns the result.
func merge(target, patch *node) *node {
	if patch == nil || patch.k != kObj {
		return patch
	}
	if target == nil || target.k != kObj {
		target = newObj()
	}
	for _, k := range patch.keys {
		pv := patch.vals[k]
		if pv.k == kNull {
			target.del(k)
			continue
		}
		cur, _ := target.get(k)
		target.put(k, merge(cur, pv))
	}
	return target
}
