package pvar

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"hash/crc32"
	"strconv"
	"strings"
	"time"

	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

// String transformations, {s.*}. As in OpenSIPS 3.x a NULL input passes
// through every transformation unchanged; an integer input is used in its
// decimal string form.

type transFn = func(m *msgctx.Msg, in value.Value, ps []value.Value) (value.Value, error)

func regTrans(class, name string, minP, maxP int, chk func([]TransParam) error, fn transFn) {
	RegisterTrans(&Trans{Class: class, Name: name, MinParams: minP, MaxParams: maxP, Check: chk, Fn: fn})
}

// str is the string form of a non-NULL value.
func str(v value.Value) string {
	if v.F&value.Str != 0 {
		return v.S
	}
	return strconv.Itoa(v.I)
}

// nullSafe wraps a transformation so a NULL input is returned as is.
func nullSafe(fn transFn) transFn {
	return func(m *msgctx.Msg, in value.Value, ps []value.Value) (value.Value, error) {
		if in.IsNull() {
			return in, nil
		}
		return fn(m, in, ps)
	}
}

// simple registers a parameterless string -> string transformation.
func simple(name string, fn func(string) (string, error)) {
	regTrans("s", name, 0, 0, nil, nullSafe(func(_ *msgctx.Msg, in value.Value, _ []value.Value) (value.Value, error) {
		s, err := fn(str(in))
		if err != nil {
			return value.Null, err
		}
		return value.S(s), nil
	}))
}

// ---- parameter checks and access ----

func paramInt(v value.Value, what string) (int, error) {
	if n, ok := v.AsInt(); ok {
		return n, nil
	}
	return 0, errors.New(what + " must be an integer, not " + strconv.Quote(v.AsString()))
}

func paramStr(v value.Value, what string) (string, error) {
	if v.IsNull() || str(v) == "" {
		return "", errors.New(what + " must be a non-empty string")
	}
	return str(v), nil
}

// checkInts validates that the constant parameters at the given positions
// are integers.
func checkInts(pos ...int) func([]TransParam) error {
	return func(ps []TransParam) error {
		for _, i := range pos {
			if i < len(ps) && ps[i].PV == nil {
				if _, ok := ps[i].Const.AsInt(); !ok {
					return errors.New("parameter " + strconv.Itoa(i+1) + " must be an integer")
				}
			}
		}
		return nil
	}
}

// checkNonEmpty validates that constant string parameters are not empty.
func checkNonEmpty(pos ...int) func([]TransParam) error {
	return func(ps []TransParam) error {
		for _, i := range pos {
			if i < len(ps) && ps[i].PV == nil && ps[i].Const.AsString() == "" {
				return errors.New("parameter " + strconv.Itoa(i+1) + " must not be empty")
			}
		}
		return nil
	}
}

func both(a, b func([]TransParam) error) func([]TransParam) error {
	return func(ps []TransParam) error {
		if err := a(ps); err != nil {
			return err
		}
		return b(ps)
	}
}

// ---- implementations ----

func sLen(_ *msgctx.Msg, in value.Value, _ []value.Value) (value.Value, error) {
	return vInt(len(str(in))), nil
}

// sInt: an int keeps its value; a string is read as OpenSIPS's str2sint
// does, up to the first non-digit ("12ab" is 12, "ab" is 0).
func sInt(_ *msgctx.Msg, in value.Value, _ []value.Value) (value.Value, error) {
	if in.IsInt() {
		return vInt(in.I), nil
	}
	s := in.S
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	n := 0
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		n = n*10 + int(s[i]-'0')
	}
	if neg {
		n = -n
	}
	return vInt(n), nil
}

func hexDigest(h hash.Hash, s string) string {
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func decodeHexa(s string) (string, error) {
	b := make([]byte, len(s)/2)
	for i := range b {
		h, ok1 := unhex(s[2*i])
		l, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return "", errors.New("invalid hex digit")
		}
		b[i] = h<<4 | l
	}
	return string(b), nil
}

func sHex2Dec(_ *msgctx.Msg, in value.Value, _ []value.Value) (value.Value, error) {
	if in.IsInt() {
		return in, nil
	}
	s := in.S
	if s == "" || len(s) > 8 {
		return value.Null, errors.New("not a 32-bit hex number: " + strconv.Quote(s))
	}
	var u uint32
	for i := 0; i < len(s); i++ {
		d, ok := unhex(s[i])
		if !ok {
			return value.Null, errors.New("not a hex number: " + strconv.Quote(s))
		}
		u = u<<4 | uint32(d)
	}
	return vInt(int(int32(u))), nil
}

func sDec2Hex(_ *msgctx.Msg, in value.Value, _ []value.Value) (value.Value, error) {
	n, ok := in.AsInt()
	if !ok {
		return value.Null, errors.New("not a decimal number: " + strconv.Quote(in.S))
	}
	return value.S(strconv.FormatUint(uint64(uint32(int32(n))), 16)), nil
}

func escapeCommon(s string) (string, error) {
	if !strings.ContainsAny(s, "'\"\\\x00") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'', '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case 0:
			b.WriteString(`\0`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func unescapeCommon(s string) (string, error) {
	if strings.IndexByte(s, '\\') < 0 {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case '\'', '"', '\\':
				b.WriteByte(s[i+1])
				i++
				continue
			case '0':
				b.WriteByte(0)
				i++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String(), nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// userChar: RFC 3261 unreserved + user-unreserved.
func userChar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("-_.!~*'()&=+$,;?/", c) >= 0
}

// paramChar: RFC 3261 unreserved + param-unreserved.
func paramChar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("-_.!~*'()[]/:&+$", c) >= 0
}

const lowerHex = "0123456789abcdef"

func percentEscape(s string, keep func(byte) bool) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 32 || c > 126 {
			return "", errors.New("cannot escape a non-printable character")
		}
		if keep(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(lowerHex[c>>4])
		b.WriteByte(lowerHex[c&15])
	}
	return b.String(), nil
}

func percentUnescape(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("truncated %-escape")
		}
		h, ok1 := unhex(s[i+1])
		l, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", errors.New("invalid hex digit in %-escape")
		}
		c := h<<4 | l
		if c < 32 || c > 126 {
			return "", errors.New("escaped character is not printable")
		}
		b.WriteByte(c)
		i += 2
	}
	return b.String(), nil
}

// sSubstr follows OpenSIPS 3.x: a negative offset counts from the end, a
// length of 0 means "to the end" and a negative length stops that many
// characters before the end; an offset outside the string is an error.
func sSubstr(_ *msgctx.Msg, in value.Value, ps []value.Value) (value.Value, error) {
	s := str(in)
	i, err := paramInt(ps[0], "substr offset")
	if err != nil {
		return value.Null, err
	}
	j, err := paramInt(ps[1], "substr length")
	if err != nil {
		return value.Null, err
	}
	n := len(s)
	if i < 0 {
		if -i > n {
			return value.Null, errors.New("substr offset out of range")
		}
		i += n
	}
	if i >= n {
		return value.Null, errors.New("substr offset out of range")
	}
	if j < 1 {
		j = n + j - i
	}
	if i+j > n {
		j = n - i
	}
	if j < 0 {
		return value.Null, errors.New("substr length out of range")
	}
	return value.S(s[i : i+j]), nil
}

// sSelect returns field idx of the input split by the separator's first
// character (negative idx from the end); NULL when there is no such field.
func sSelect(_ *msgctx.Msg, in value.Value, ps []value.Value) (value.Value, error) {
	s := str(in)
	i, err := paramInt(ps[0], "select index")
	if err != nil {
		return value.Null, err
	}
	sepS, err := paramStr(ps[1], "select separator")
	if err != nil {
		return value.Null, err
	}
	sep := sepS[0]
	if i >= 0 {
		for ; i > 0; i-- {
			k := strings.IndexByte(s, sep)
			if k < 0 {
				return value.Null, nil
			}
			s = s[k+1:]
		}
		if k := strings.IndexByte(s, sep); k >= 0 {
			s = s[:k]
		}
		return value.S(s), nil
	}
	for i = -i - 1; i > 0; i-- {
		k := strings.LastIndexByte(s, sep)
		if k < 0 {
			return value.Null, nil
		}
		s = s[:k]
	}
	if k := strings.LastIndexByte(s, sep); k >= 0 {
		s = s[k+1:]
	}
	return value.S(s), nil
}

func sCase(upper bool) transFn {
	return nullSafe(func(_ *msgctx.Msg, in value.Value, _ []value.Value) (value.Value, error) {
		if !in.IsStr() {
			return value.SI(str(in), in.I), nil
		}
		if upper {
			return value.S(asciiUpper(in.S)), nil
		}
		return value.S(asciiLower(in.S)), nil
	})
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 32
				}
			}
			return string(b)
		}
	}
	return s
}

func asciiUpper(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'a' && c <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'a' && b[j] <= 'z' {
					b[j] -= 32
				}
			}
			return string(b)
		}
	}
	return s
}

// sIndex finds needle from start (negative start wraps from the end);
// NULL when not found.
func sIndex(reverse bool) transFn {
	return nullSafe(func(_ *msgctx.Msg, in value.Value, ps []value.Value) (value.Value, error) {
		s := str(in)
		needle, err := paramStr(ps[0], "index needle")
		if err != nil {
			return value.Null, err
		}
		n := len(s)
		i := 0
		if reverse {
			i = n - 1
		}
		if len(ps) > 1 {
			if i, err = paramInt(ps[1], "index start"); err != nil {
				return value.Null, err
			}
		}
		if i < 0 {
			if n > 0 {
				i = -i % n
				if i > 0 {
					i = n - i
				}
			} else {
				i = 0
			}
		}
		if !reverse {
			if i >= n || len(needle) > n-i {
				return value.Null, nil
			}
			if k := strings.Index(s[i:], needle); k >= 0 {
				return vInt(i + k), nil
			}
			return value.Null, nil
		}
		if len(needle) > n {
			return value.Null, nil
		}
		if i >= n {
			i = n - 1
		}
		if len(needle) > n-i {
			i = n - len(needle)
		}
		if k := strings.LastIndex(s[:i+len(needle)], needle); k >= 0 {
			return vInt(k), nil
		}
		return value.Null, nil
	})
}

// fillPad is the fill token without surrounding quotes.
func fillPad(v value.Value) string {
	s := str(v)
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		s = s[1 : len(s)-1]
	}
	return s
}

func checkFill(ps []TransParam) error {
	if ps[0].PV != nil || ps[1].PV != nil {
		return errors.New("fill does not take pvars as parameters")
	}
	if fillPad(ps[0].Const) == "" {
		return errors.New("empty fill token (quote it, as in {s.fill.left,' ',5})")
	}
	if _, ok := ps[1].Const.AsInt(); !ok {
		return errors.New("fill length must be an integer")
	}
	return nil
}

func sFill(left bool) transFn {
	return nullSafe(func(_ *msgctx.Msg, in value.Value, ps []value.Value) (value.Value, error) {
		s := str(in)
		pad := fillPad(ps[0])
		total, _ := ps[1].AsInt()
		k := total - len(s)
		if k < 0 || pad == "" {
			return in, nil
		}
		var b strings.Builder
		b.Grow(total)
		if !left {
			b.WriteString(s)
		}
		if len(pad) == 1 {
			b.WriteString(strings.Repeat(pad, k))
		} else if left {
			// the first, partial copy of the token is its tail
			if r := k % len(pad); r != 0 {
				b.WriteString(pad[len(pad)-r:])
				k -= r
			}
			b.WriteString(strings.Repeat(pad, k/len(pad)))
		} else {
			for k > 0 {
				c := min(k, len(pad))
				b.WriteString(pad[:c])
				k -= len(pad)
			}
		}
		if left {
			b.WriteString(s)
		}
		return value.S(b.String()), nil
	})
}

func sWidth(_ *msgctx.Msg, in value.Value, ps []value.Value) (value.Value, error) {
	s := str(in)
	w, err := paramInt(ps[0], "width")
	if err != nil {
		return value.Null, err
	}
	if w <= 0 {
		return value.Null, errors.New("width must be >= 1")
	}
	if w <= len(s) {
		return value.S(s[:w]), nil
	}
	return value.S(s + strings.Repeat(" ", w-len(s))), nil
}

func sB64(encode bool) transFn {
	return nullSafe(func(_ *msgctx.Msg, in value.Value, _ []value.Value) (value.Value, error) {
		if !in.IsStr() {
			return value.SI(str(in), in.I), nil
		}
		if encode {
			return value.S(base64.StdEncoding.EncodeToString([]byte(in.S))), nil
		}
		b, err := base64.StdEncoding.DecodeString(in.S)
		if err != nil {
			return value.Null, errors.New("invalid base64")
		}
		return value.S(string(b)), nil
	})
}

func sXor(_ *msgctx.Msg, in value.Value, ps []value.Value) (value.Value, error) {
	s := str(in)
	key, err := paramStr(ps[0], "xor secret")
	if err != nil {
		return value.Null, err
	}
	b := []byte(s)
	for i := range b {
		b[i] ^= key[i%len(key)]
	}
	out := in
	out.S = string(b)
	out.F |= value.Str
	return out, nil
}

func sTrim(left, right bool) transFn {
	return nullSafe(func(_ *msgctx.Msg, in value.Value, _ []value.Value) (value.Value, error) {
		s := str(in)
		if left {
			s = trimLeftWS(s)
		}
		if right {
			s = trimRightWS(s)
		}
		return value.S(s), nil
	})
}

func reverse(s string) (string, error) {
	b := make([]byte, len(s))
	for i := 0; i < len(s); i++ {
		b[len(s)-1-i] = s[i]
	}
	return string(b), nil
}

func sHMAC(mk func() hash.Hash) transFn {
	return nullSafe(func(_ *msgctx.Msg, in value.Value, ps []value.Value) (value.Value, error) {
		key, err := paramStr(ps[0], "HMAC key")
		if err != nil {
			return value.Null, err
		}
		return value.S(hexDigest(hmac.New(mk, []byte(key)), str(in))), nil
	})
}

// sDate2Unix reads an RFC 3261 (RFC 1123) Date value as a Unix time.
func sDate2Unix(_ *msgctx.Msg, in value.Value, _ []value.Value) (value.Value, error) {
	t, err := time.Parse(time.RFC1123, strings.TrimSpace(str(in)))
	if err != nil {
		return value.Null, errors.New("not an RFC 1123 date: " + strconv.Quote(str(in)))
	}
	u := t.Unix()
	return value.SI(strconv.FormatInt(u, 10), int(u)), nil
}

func init() {
	regTrans("s", "len", 0, 0, nil, nullSafe(sLen))
	regTrans("s", "int", 0, 0, nil, nullSafe(sInt))
	simple("md5", func(s string) (string, error) { return hexDigest(md5.New(), s), nil })
	simple("sha1", func(s string) (string, error) { return hexDigest(sha1.New(), s), nil })
	simple("sha224", func(s string) (string, error) { return hexDigest(sha256.New224(), s), nil })
	simple("sha256", func(s string) (string, error) { return hexDigest(sha256.New(), s), nil })
	simple("sha384", func(s string) (string, error) { return hexDigest(sha512.New384(), s), nil })
	simple("sha512", func(s string) (string, error) { return hexDigest(sha512.New(), s), nil })
	regTrans("s", "sha1_hmac", 1, 1, checkNonEmpty(0), sHMAC(sha1.New))
	regTrans("s", "sha224_hmac", 1, 1, checkNonEmpty(0), sHMAC(sha256.New224))
	regTrans("s", "sha256_hmac", 1, 1, checkNonEmpty(0), sHMAC(sha256.New))
	regTrans("s", "sha384_hmac", 1, 1, checkNonEmpty(0), sHMAC(sha512.New384))
	regTrans("s", "sha512_hmac", 1, 1, checkNonEmpty(0), sHMAC(sha512.New))
	simple("crc32", func(s string) (string, error) {
		return strconv.FormatUint(uint64(crc32.ChecksumIEEE([]byte(s))), 10), nil
	})
	simple("encode.hexa", func(s string) (string, error) { return hex.EncodeToString([]byte(s)), nil })
	simple("decode.hexa", decodeHexa)
	regTrans("s", "hex2dec", 0, 0, nil, nullSafe(sHex2Dec))
	regTrans("s", "dec2hex", 0, 0, nil, nullSafe(sDec2Hex))
	simple("escape.common", escapeCommon)
	simple("unescape.common", unescapeCommon)
	simple("escape.user", func(s string) (string, error) { return percentEscape(s, userChar) })
	simple("unescape.user", percentUnescape)
	simple("escape.param", func(s string) (string, error) { return percentEscape(s, paramChar) })
	simple("unescape.param", percentUnescape)
	regTrans("s", "substr", 2, 2, checkInts(0, 1), nullSafe(sSubstr))
	regTrans("s", "select", 2, 2, both(checkInts(0), checkNonEmpty(1)), nullSafe(sSelect))
	regTrans("s", "tolower", 0, 0, nil, sCase(false))
	regTrans("s", "toupper", 0, 0, nil, sCase(true))
	regTrans("s", "index", 1, 2, both(checkNonEmpty(0), checkInts(1)), sIndex(false))
	regTrans("s", "rindex", 1, 2, both(checkNonEmpty(0), checkInts(1)), sIndex(true))
	regTrans("s", "fill.left", 2, 2, checkFill, sFill(true))
	regTrans("s", "fill.right", 2, 2, checkFill, sFill(false))
	regTrans("s", "width", 1, 1, func(ps []TransParam) error {
		if err := checkInts(0)(ps); err != nil {
			return err
		}
		if ps[0].PV == nil && ps[0].Const.I <= 0 {
			return errors.New("width must be >= 1")
		}
		return nil
	}, nullSafe(sWidth))
	regTrans("s", "b64encode", 0, 0, nil, sB64(true))
	regTrans("s", "b64decode", 0, 0, nil, sB64(false))
	regTrans("s", "xor", 1, 1, checkNonEmpty(0), nullSafe(sXor))
	regTrans("s", "trim", 0, 0, nil, sTrim(true, true))
	regTrans("s", "trimr", 0, 0, nil, sTrim(false, true))
	regTrans("s", "triml", 0, 0, nil, sTrim(true, false))
	simple("reverse", reverse)
	regTrans("s", "date2unix", 0, 0, nil, nullSafe(sDate2Unix))
}
