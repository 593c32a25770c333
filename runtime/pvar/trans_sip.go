package pvar

import (
	"errors"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

// SIP-aware transformations: {uri.*}, {param.*}, {nameaddr.*}, {via.*},
// {csv.*}, {re.subst}, {ip.*}. A NULL input passes through; a non-string or
// empty input, or one that does not parse, is an error (the Ref then gives
// NULL and GetErr reports why).

var errNeedString = errors.New("input must be a non-empty string")

// strInput is the input of a parsing transformation.
func strInput(in value.Value) (string, error) {
	if !in.IsStr() || in.S == "" {
		return "", errNeedString
	}
	return in.S, nil
}

// ---- uri ----

func uriTrans(name string, get func(u uriParts, ps []value.Value) (value.Value, error), nParams int) {
	fn := nullSafe(func(_ *msgctx.Msg, in value.Value, ps []value.Value) (value.Value, error) {
		s, err := strInput(in)
		if err != nil {
			return value.Null, err
		}
		u, err := parseURI(s)
		if err != nil {
			return value.Null, errors.New("invalid URI " + strconv.Quote(s))
		}
		return get(u, ps)
	})
	var chk func([]TransParam) error
	if nParams > 0 {
		chk = checkNonEmpty(0)
	}
	regTrans("uri", name, nParams, nParams, chk, fn)
}

func uriField(f func(u uriParts) string) func(uriParts, []value.Value) (value.Value, error) {
	return func(u uriParts, _ []value.Value) (value.Value, error) { return vStrNull(f(u)), nil }
}

// ---- param lists ----

func paramsInput(in value.Value) (string, error) {
	s, err := strInput(in)
	if err != nil {
		return "", err
	}
	n := 0
	if err := eachParam(s, func(string, string, string) bool { n++; return true }); err != nil {
		return "", err
	}
	if n == 0 {
		return "", errBadParams
	}
	return s, nil
}

// paramAt returns the name or value of the i-th parameter (negative from the end).
func paramAt(s string, i int, wantName bool) value.Value {
	n := 0
	_ = eachParam(s, func(string, string, string) bool { n++; return true })
	if i < 0 {
		i += n
	}
	if i < 0 || i >= n {
		return value.Null
	}
	out := value.Null
	k := 0
	_ = eachParam(s, func(name, val, _ string) bool {
		if k == i {
			if wantName {
				out = value.S(name)
			} else {
				out = value.S(val)
			}
			return false
		}
		k++
		return true
	})
	return out
}

func paramTrans(name string, nParams int, chk func([]TransParam) error,
	fn func(s string, ps []value.Value) (value.Value, error)) {
	regTrans("param", name, nParams, nParams, chk, nullSafe(func(_ *msgctx.Msg, in value.Value, ps []value.Value) (value.Value, error) {
		s, err := paramsInput(in)
		if err != nil {
			return value.Null, err
		}
		return fn(s, ps)
	}))
}

// ---- nameaddr ----

func nameAddrTrans(name string, nParams int, fn func(na nameAddr, ps []value.Value) (value.Value, error)) {
	var chk func([]TransParam) error
	if nParams > 0 {
		chk = checkNonEmpty(0)
	}
	regTrans("nameaddr", name, nParams, nParams, chk, nullSafe(func(_ *msgctx.Msg, in value.Value, ps []value.Value) (value.Value, error) {
		s, err := strInput(in)
		if err != nil {
			return value.Null, err
		}
		na, err := parseNameAddr(s)
		if err != nil {
			return value.Null, err
		}
		return fn(na, ps)
	}))
}

// ---- via ----

func viaTrans(name string, nParams int, fn func(v viaBody, ps []value.Value) (value.Value, error)) {
	var chk func([]TransParam) error
	if nParams > 0 {
		chk = checkNonEmpty(0)
	}
	regTrans("via", name, nParams, nParams, chk, nullSafe(func(_ *msgctx.Msg, in value.Value, ps []value.Value) (value.Value, error) {
		if !in.IsStr() || len(in.S) <= 2 {
			return value.Null, errBadVia
		}
		v, err := parseVia(in.S)
		if err != nil {
			return value.Null, err
		}
		return fn(v, ps)
	}))
}

func viaParam(v viaBody, name string) (string, bool) {
	if v.params == "" {
		return "", false
	}
	return findParam(v.params, name, false)
}

// ---- csv ----

func csvInput(in value.Value) ([]string, error) {
	s, err := strInput(in)
	if err != nil {
		return nil, err
	}
	return parseCSV(s)
}

// ---- re.subst ----

// subst is a compiled sed-like "/re/replacement/flags" expression.
type subst struct {
	re     *regexp.Regexp
	repl   string
	global bool
}

// parseSubst reads OpenSIPS's subst syntax: the first character is the
// delimiter; flags are i (ignore case), g (all matches) and s (no special
// meaning of newline: '.' and anchors stop at line ends).
func parseSubst(expr string) (*subst, error) {
	// "\{" and "\}" are how a brace is written inside {...}
	expr = strings.NewReplacer(`\{`, "{", `\}`, "}").Replace(expr)
	if len(expr) < 4 {
		return nil, errors.New("subst expression too short: " + strconv.Quote(expr))
	}
	d := expr[0]
	var parts []string
	var cur strings.Builder
	for i := 1; i < len(expr); i++ {
		c := expr[i]
		if c == '\\' && i+1 < len(expr) && expr[i+1] == d {
			cur.WriteByte(d)
			i++
			continue
		}
		if c == '\\' && i+1 < len(expr) {
			cur.WriteByte(c)
			cur.WriteByte(expr[i+1])
			i++
			continue
		}
		if c == d && len(parts) < 2 {
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(c)
	}
	if len(parts) != 2 {
		return nil, errors.New("subst expression must be /regex/replacement/flags: " + strconv.Quote(expr))
	}
	flags := cur.String()
	pre := "(?s)"
	s := &subst{repl: parts[1]}
	for i := 0; i < len(flags); i++ {
		switch flags[i] {
		case 'i':
			pre += "(?i)"
		case 'g':
			s.global = true
		case 's':
			pre = strings.Replace(pre, "(?s)", "(?m)", 1)
		default:
			return nil, errors.New("unknown subst flag " + strconv.Quote(flags[i:i+1]))
		}
	}
	if strings.IndexByte(s.repl, '$') >= 0 {
		return nil, errors.New("pseudo-variables in a subst replacement are not supported")
	}
	re, err := regexp.Compile(pre + parts[0])
	if err != nil {
		return nil, errors.New("bad regular expression: " + err.Error())
	}
	re.Longest() // POSIX leftmost-longest, as regcomp matches
	s.re = re
	for i := 0; i+1 < len(s.repl); i++ {
		if s.repl[i] == '\\' {
			c := s.repl[i+1]
			if c >= '0' && c <= '9' && int(c-'0') > re.NumSubexp() {
				return nil, errors.New("replacement refers to a missing group \\" + string(c))
			}
			i++
		}
	}
	return s, nil
}

// expand builds the replacement for one match: \N is group N, \\ a backslash.
func (s *subst) expand(b *strings.Builder, src string, m []int) {
	r := s.repl
	for i := 0; i < len(r); i++ {
		c := r[i]
		if c != '\\' || i+1 == len(r) {
			b.WriteByte(c)
			continue
		}
		i++
		c = r[i]
		if c >= '0' && c <= '9' {
			g := int(c - '0')
			if 2*g+1 < len(m) && m[2*g] >= 0 {
				b.WriteString(src[m[2*g]:m[2*g+1]])
			}
			continue
		}
		switch c {
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		default:
			b.WriteByte(c)
		}
	}
}

// apply substitutes the first (or every, with g) match; no match leaves
// the input unchanged.
func (s *subst) apply(src string) string {
	n := 1
	if s.global {
		n = -1
	}
	ms := s.re.FindAllStringSubmatchIndex(src, n)
	if len(ms) == 0 {
		return src
	}
	var b strings.Builder
	last := 0
	for _, m := range ms {
		b.WriteString(src[last:m[0]])
		s.expand(&b, src, m)
		last = m[1]
	}
	b.WriteString(src[last:])
	return b.String()
}

// substCache keeps compiled expressions by text: constant ones from load
// time, pvar-given ones as met (bounded, so changing expressions cannot grow
// it without limit).
var (
	substCache sync.Map // expression text -> *subst
	substCount atomic.Int32
)

const maxSubstCache = 1024

func getSubst(p value.Value) (*subst, error) {
	expr := str(p)
	if c, ok := substCache.Load(expr); ok {
		return c.(*subst), nil
	}
	s, err := parseSubst(expr)
	if err != nil {
		return nil, err
	}
	if substCount.Add(1) <= maxSubstCache {
		substCache.Store(expr, s)
	}
	return s, nil
}

func checkSubst(ps []TransParam) error {
	if ps[0].PV != nil {
		return nil
	}
	s, err := parseSubst(ps[0].Const.AsString())
	if err != nil {
		return err
	}
	substCache.Store(ps[0].Const.AsString(), s)
	return nil
}

func reSubst(_ *msgctx.Msg, in value.Value, ps []value.Value) (value.Value, error) {
	src, err := strInput(in)
	if err != nil {
		return value.Null, err
	}
	s, err := getSubst(ps[0])
	if err != nil {
		return value.Null, err
	}
	return value.S(s.apply(src)), nil
}

// ---- ip ----

func ipFlag(f func(netip.Addr) bool) transFn {
	return nullSafe(func(_ *msgctx.Msg, in value.Value, _ []value.Value) (value.Value, error) {
		a, err := netip.ParseAddr(strings.Trim(str(in), "[]"))
		if err != nil || !f(a) {
			return vInt(0), nil
		}
		return vInt(1), nil
	})
}

var rfc1918 = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
}

func ipMatches(_ *msgctx.Msg, in value.Value, ps []value.Value) (value.Value, error) {
	a, err := netip.ParseAddr(strings.Trim(str(in), "[]"))
	if err != nil {
		return value.Null, errors.New("invalid input IP address " + strconv.Quote(str(in)))
	}
	p, err := netip.ParsePrefix(str(ps[0]))
	if err != nil {
		return value.Null, errors.New("network must be ip/len: " + strconv.Quote(str(ps[0])))
	}
	if a.Is4() != p.Addr().Is4() {
		return value.Null, errors.New("cannot compare addresses of different families")
	}
	if p.Contains(a) {
		return vInt(1), nil
	}
	return vInt(0), nil
}

func init() {
	uriTrans("user", uriField(func(u uriParts) string { return u.user }), 0)
	uriTrans("host", uriField(func(u uriParts) string { return u.host }), 0)
	uriTrans("domain", uriField(func(u uriParts) string { return u.host }), 0)
	uriTrans("passwd", uriField(func(u uriParts) string { return u.passwd }), 0)
	uriTrans("port", func(u uriParts, _ []value.Value) (value.Value, error) {
		if u.port == "" {
			return value.Null, nil
		}
		return value.SI(u.port, u.portNo), nil
	}, 0)
	uriTrans("params", uriField(func(u uriParts) string { return u.params }), 0)
	uriTrans("param", func(u uriParts, ps []value.Value) (value.Value, error) {
		name, err := paramStr(ps[0], "parameter name")
		if err != nil {
			return value.Null, err
		}
		if u.params == "" {
			return value.Null, nil
		}
		if err := eachParam(u.params, func(string, string, string) bool { return true }); err != nil {
			return value.Null, err
		}
		v, ok := findParam(u.params, name, false)
		if !ok {
			return value.Null, nil
		}
		return value.S(v), nil
	}, 1)
	uriTrans("headers", uriField(func(u uriParts) string { return u.headers }), 0)
	uriTrans("transport", uriField(func(u uriParts) string { return u.transport }), 0)
	uriTrans("ttl", uriField(func(u uriParts) string { return u.ttl }), 0)
	uriTrans("uparam", uriField(func(u uriParts) string { return u.userParam }), 0)
	uriTrans("maddr", uriField(func(u uriParts) string { return u.maddr }), 0)
	uriTrans("method", uriField(func(u uriParts) string { return u.method }), 0)
	uriTrans("lr", uriField(func(u uriParts) string { return u.lr }), 0)
	uriTrans("r2", uriField(func(u uriParts) string { return u.r2 }), 0)
	uriTrans("schema", uriField(func(u uriParts) string { return u.scheme }), 0)

	paramTrans("value", 1, checkNonEmpty(0), func(s string, ps []value.Value) (value.Value, error) {
		name, err := paramStr(ps[0], "parameter name")
		if err != nil {
			return value.Null, err
		}
		if v, ok := findParam(s, name, false); ok {
			return value.S(v), nil
		}
		return value.Null, nil
	})
	paramTrans("exist", 1, checkNonEmpty(0), func(s string, ps []value.Value) (value.Value, error) {
		name, err := paramStr(ps[0], "parameter name")
		if err != nil {
			return value.Null, err
		}
		if _, ok := findParam(s, name, false); ok {
			return vInt(1), nil
		}
		return vInt(0), nil
	})
	paramTrans("valueat", 1, checkInts(0), func(s string, ps []value.Value) (value.Value, error) {
		i, err := paramInt(ps[0], "parameter index")
		if err != nil {
			return value.Null, err
		}
		return paramAt(s, i, false), nil
	})
	paramTrans("name", 1, checkInts(0), func(s string, ps []value.Value) (value.Value, error) {
		i, err := paramInt(ps[0], "parameter index")
		if err != nil {
			return value.Null, err
		}
		return paramAt(s, i, true), nil
	})
	paramTrans("count", 0, nil, func(s string, _ []value.Value) (value.Value, error) {
		n := 0
		_ = eachParam(s, func(string, string, string) bool { n++; return true })
		return vInt(n), nil
	})

	nameAddrTrans("name", 0, func(na nameAddr, _ []value.Value) (value.Value, error) {
		return vStrNull(na.display), nil
	})
	nameAddrTrans("uri", 0, func(na nameAddr, _ []value.Value) (value.Value, error) {
		return vStrNull(na.uri), nil
	})
	nameAddrTrans("len", 0, func(na nameAddr, _ []value.Value) (value.Value, error) {
		return vInt(len(na.body)), nil
	})
	nameAddrTrans("params", 0, func(na nameAddr, _ []value.Value) (value.Value, error) {
		return vStrNull(na.params), nil
	})
	nameAddrTrans("param", 1, func(na nameAddr, ps []value.Value) (value.Value, error) {
		name, err := paramStr(ps[0], "parameter name")
		if err != nil {
			return value.Null, err
		}
		v, _ := findParam(na.params, name, true)
		return vStrNull(v), nil
	})

	viaField := func(name string, f func(v viaBody) string) {
		viaTrans(name, 0, func(v viaBody, _ []value.Value) (value.Value, error) { return vStrNull(f(v)), nil })
	}
	viaField("name", func(v viaBody) string { return v.name })
	viaField("version", func(v viaBody) string { return v.version })
	viaField("transport", func(v viaBody) string { return v.transport })
	viaField("host", func(v viaBody) string { return v.host })
	viaField("domain", func(v viaBody) string { return v.host })
	viaField("params", func(v viaBody) string { return v.params })
	viaField("comment", func(v viaBody) string { return v.comment })
	viaTrans("port", 0, func(v viaBody, _ []value.Value) (value.Value, error) {
		if v.port == "" {
			return value.Null, nil
		}
		return value.SI(v.port, v.portNo), nil
	})
	viaTrans("param", 1, func(v viaBody, ps []value.Value) (value.Value, error) {
		name, err := paramStr(ps[0], "parameter name")
		if err != nil {
			return value.Null, err
		}
		if p, ok := viaParam(v, name); ok {
			return value.S(p), nil
		}
		return value.Null, nil
	})
	for _, n := range []string{"branch", "received", "rport"} {
		viaField(n, func(v viaBody) string { p, _ := viaParam(v, n); return p })
	}

	regTrans("csv", "count", 0, 0, nil, nullSafe(func(_ *msgctx.Msg, in value.Value, _ []value.Value) (value.Value, error) {
		fs, err := csvInput(in)
		if err != nil {
			return value.Null, err
		}
		return vInt(len(fs)), nil
	}))
	regTrans("csv", "value", 1, 1, checkInts(0), nullSafe(func(_ *msgctx.Msg, in value.Value, ps []value.Value) (value.Value, error) {
		fs, err := csvInput(in)
		if err != nil {
			return value.Null, err
		}
		i, err := paramInt(ps[0], "CSV index")
		if err != nil {
			return value.Null, err
		}
		if i < 0 {
			i += len(fs)
		}
		if i < 0 || i >= len(fs) {
			return value.Null, errors.New("CSV index out of bounds")
		}
		return value.S(fs[i]), nil
	}))

	regTrans("re", "subst", 1, 1, checkSubst, nullSafe(reSubst))

	regTrans("ip", "isip", 0, 0, nil, ipFlag(func(netip.Addr) bool { return true }))
	regTrans("ip", "isip4", 0, 0, nil, ipFlag(func(a netip.Addr) bool { return a.Is4() }))
	regTrans("ip", "isip6", 0, 0, nil, ipFlag(func(a netip.Addr) bool { return a.Is6() && !a.Is4In6() }))
	regTrans("ip", "isprivate", 0, 0, nil, ipFlag(func(a netip.Addr) bool {
		for _, p := range rfc1918 {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}))
	regTrans("ip", "matches", 1, 1, func(ps []TransParam) error {
		if ps[0].PV == nil {
			if _, err := netip.ParsePrefix(ps[0].Const.AsString()); err != nil {
				return errors.New("network must be ip/len")
			}
		}
		return nil
	}, nullSafe(ipMatches))
	regTrans("ip", "pton", 0, 0, nil, nullSafe(func(_ *msgctx.Msg, in value.Value, _ []value.Value) (value.Value, error) {
		a, err := netip.ParseAddr(strings.Trim(str(in), "[]"))
		if err != nil {
			return value.Null, errors.New("pton applied to an invalid IP")
		}
		return value.S(string(a.AsSlice())), nil
	}))
	regTrans("ip", "ntop", 0, 0, nil, nullSafe(func(_ *msgctx.Msg, in value.Value, _ []value.Value) (value.Value, error) {
		a, ok := netip.AddrFromSlice([]byte(str(in)))
		if !ok {
			return value.Null, errors.New("ntop needs a 4 or 16 byte binary address")
		}
		return value.S(a.String()), nil
	}))
	regTrans("ip", "family", 0, 0, nil, nullSafe(func(_ *msgctx.Msg, in value.Value, _ []value.Value) (value.Value, error) {
		switch len(str(in)) {
		case 4:
			return value.S("INET"), nil
		case 16:
			return value.S("INET6"), nil
		}
		return value.Null, errors.New("family needs a 4 or 16 byte binary address")
	}))
}
