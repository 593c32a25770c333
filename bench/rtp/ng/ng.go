// Package ng is the bencode encoding of rtpengine's NG control protocol,
// just enough for the relay comparison harness: strings, integers, lists
// and dictionaries.
package ng

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
)

// Encode appends v (string, int, []any or map[string]any) to b.
func Encode(b *bytes.Buffer, v any) {
	switch v := v.(type) {
	case string:
		b.WriteString(strconv.Itoa(len(v)) + ":" + v)
	case int:
		b.WriteString("i" + strconv.Itoa(v) + "e")
	case []any:
		b.WriteByte('l')
		for _, x := range v {
			Encode(b, x)
		}
		b.WriteByte('e')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('d')
		for _, k := range keys {
			Encode(b, k)
			Encode(b, v[k])
		}
		b.WriteByte('e')
	}
}

// Decode reads one value and returns the rest of p.
func Decode(p []byte) (any, []byte, error) {
	if len(p) == 0 {
		return nil, nil, fmt.Errorf("bencode: short input")
	}
	switch c := p[0]; {
	case c == 'i':
		e := bytes.IndexByte(p, 'e')
		if e < 0 {
			return nil, nil, fmt.Errorf("bencode: unterminated integer")
		}
		n, err := strconv.Atoi(string(p[1:e]))
		return n, p[e+1:], err
	case c == 'l':
		var out []any
		p = p[1:]
		for len(p) > 0 && p[0] != 'e' {
			v, rest, err := Decode(p)
			if err != nil {
				return nil, nil, err
			}
			out, p = append(out, v), rest
		}
		if len(p) == 0 {
			return nil, nil, fmt.Errorf("bencode: unterminated list")
		}
		return out, p[1:], nil
	case c == 'd':
		out := map[string]any{}
		p = p[1:]
		for len(p) > 0 && p[0] != 'e' {
			k, rest, err := Decode(p)
			if err != nil {
				return nil, nil, err
			}
			ks, ok := k.(string)
			if !ok {
				return nil, nil, fmt.Errorf("bencode: dictionary key is not a string")
			}
			v, rest, err := Decode(rest)
			if err != nil {
				return nil, nil, err
			}
			out[ks], p = v, rest
		}
		if len(p) == 0 {
			return nil, nil, fmt.Errorf("bencode: unterminated dictionary")
		}
		return out, p[1:], nil
	case c >= '0' && c <= '9':
		colon := bytes.IndexByte(p, ':')
		if colon < 0 {
			return nil, nil, fmt.Errorf("bencode: bad string")
		}
		n, err := strconv.Atoi(string(p[:colon]))
		if err != nil || colon+1+n > len(p) {
			return nil, nil, fmt.Errorf("bencode: bad string length")
		}
		return string(p[colon+1 : colon+1+n]), p[colon+1+n:], nil
	}
	return nil, nil, fmt.Errorf("bencode: unexpected byte %q", p[0])
}
