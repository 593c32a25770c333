// Package auth is OpenSIPS's auth module: digest challenges
// (www_challenge, proxy_challenge), consume_credentials(), and the digest
// verification that auth_db's www_authorize/proxy_authorize build on
// (OpenSIPS's pre_auth/post_auth API). MD5, MD5-sess, SHA-256(-sess) and
// SHA-512-256(-sess) (RFC 8760) are supported, with qop auth and auth-int.
//
// Nonces are stateless HMACs of (expiry, index, offered qop and algorithm)
// keyed by the secret; replays are refused by remembering each used nonce
// index (and its highest nc) until the nonce expires.
package auth

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "auth"

type config struct {
	key          []byte
	nonceExpire  int64 // seconds
	realmPrefix  string
	noNonceCheck bool
}

var cur atomic.Pointer[config]

func init() {
	cur.Store(&config{key: processSecret, nonceExpire: 30})
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "secret", Kind: modules.ParamStr},
			{Name: "nonce_expire", Kind: modules.ParamInt, Default: value.I(30)},
			{Name: "realm_prefix", Kind: modules.ParamStr},
			{Name: "disable_nonce_check", Kind: modules.ParamInt, Default: value.I(0)},
		},
		Funcs: []*modules.Func{
			{
				Name:   "www_challenge",
				Args:   []check.ArgSpec{{Kind: check.ArgStr}, {Kind: check.ArgStr, Optional: true}, {Kind: check.ArgStr, Optional: true}},
				Routes: check.Routes(ast.RequestRoute),
				Fixup:  fixupChallenge,
				Call:   func(m *msgctx.Msg, a *modules.Args) int { return callChallenge(m, a, WWW) },
			},
			{
				Name:   "proxy_challenge",
				Args:   []check.ArgSpec{{Kind: check.ArgStr}, {Kind: check.ArgStr, Optional: true}, {Kind: check.ArgStr, Optional: true}},
				Routes: check.Routes(ast.RequestRoute),
				Fixup:  fixupChallenge,
				Call:   func(m *msgctx.Msg, a *modules.Args) int { return callChallenge(m, a, Proxy) },
			},
			{
				Name:   "consume_credentials",
				Routes: check.Routes(ast.RequestRoute),
				Call:   callConsume,
			},
		},
		Configure: configure,
	})
}

func configure(p modules.Params) (func(), error) {
	c := &config{key: processSecret, realmPrefix: p.Str("realm_prefix"), noNonceCheck: p.Int("disable_nonce_check") != 0}
	if s := p.Str("secret"); s != "" {
		k := sha256.Sum256([]byte("sipedge-auth-nonce\x00" + s))
		c.key = k[:]
	}
	exp := p.Int("nonce_expire")
	if exp <= 0 {
		return nil, fmt.Errorf("nonce_expire must be a positive number of seconds, not %d", exp)
	}
	c.nonceExpire = int64(exp)
	return func() { cur.Store(c) }, nil
}

// now is the clock; tests replace it.
var now = time.Now

// Kind tells which header pair a function works with.
type Kind uint8

const (
	WWW   Kind = iota // Authorization / WWW-Authenticate / 401
	Proxy             // Proxy-Authorization / Proxy-Authenticate / 407
)

func (k Kind) credHeader() string {
	if k == Proxy {
		return "Proxy-Authorization"
	}
	return "Authorization"
}

func (k Kind) challengeHeader() string {
	if k == Proxy {
		return "Proxy-Authenticate"
	}
	return "WWW-Authenticate"
}

// OpenSIPS auth_result codes, the return codes of www_authorize and
// proxy_authorize.
const (
	AuthError       = -5 // error, no reply sent
	NoCredentials   = -4 // no credentials for the realm
	StaleNonce      = -3 // nonce invalid, expired or already used
	InvalidPassword = -2 // user known, response wrong
	UserUnknown     = -1 // no such user
	Error           = 0  // error, a reply was sent (the script stops)
	Authorized      = 1
)

// msgState is this module's per-message state.
type msgState struct {
	stale [2]bool    // the last authorize of this kind found a stale nonce
	cred  sip.Header // the credentials that were authorized
	kind  Kind
}

func state(m *msgctx.Msg) *msgState {
	return m.ModData(Name, func() any { return &msgState{} }).(*msgState)
}

func logf(m *msgctx.Msg, level int, format string, args ...any) {
	if m.Host != nil {
		m.Host.Log(m, level, fmt.Sprintf(format, args...))
	}
}

// sendReply answers the request, statefully when it has a transaction (as
// OpenSIPS's signaling module does), with extra headers for this reply only.
func sendReply(m *msgctx.Msg, code int, reason string, hdrs ...sip.Header) error {
	if m.Host == nil {
		return errors.New("no host to send the reply")
	}
	n := len(m.ReplyHeaders)
	m.ReplyHeaders = append(m.ReplyHeaders, hdrs...)
	defer func() {
		clear(m.ReplyHeaders[n:])
		m.ReplyHeaders = m.ReplyHeaders[:n]
	}()
	if m.T.ID != "" {
		if sh, ok := m.Host.(msgctx.SIPHost); ok {
			if rc := sh.TransReply(m, code, reason); rc < 0 {
				return fmt.Errorf("t_reply returned %d", rc)
			}
			return nil
		}
	}
	return m.Host.Reply(m, code, reason)
}

// RealmFromMessage is the realm OpenSIPS uses for an empty realm argument:
// the To host of a REGISTER being www-authorized, else the From host, with
// realm_prefix stripped.
func RealmFromMessage(m *msgctx.Msg, kind Kind) (string, bool) {
	if m.Req == nil {
		return "", false
	}
	var host string
	if kind == WWW && m.Req.Method == sip.REGISTER {
		to := m.Req.To()
		if to == nil {
			return "", false
		}
		host = to.Address.Host
	} else {
		from := m.Req.From()
		if from == nil {
			return "", false
		}
		host = from.Address.Host
	}
	if host == "" {
		return "", false
	}
	if p := cur.Load().realmPrefix; p != "" && len(host) > len(p) && strings.HasPrefix(host, p) {
		host = host[len(p):]
	}
	return host, true
}

// ---- authorization (OpenSIPS pre_auth / post_auth) ----

// Attempt is one authorization in progress: Begin found credentials for the
// realm with a valid nonce; the backend looks the user up, calls Verify with
// the user's HA1 and then Finish.
type Attempt struct {
	Cred  *Credentials
	Realm string
	Kind  Kind
	m     *msgctx.Msg
	hdr   sip.Header
	nonce nonceData
}

// Begin finds the credentials for realm ("" = from the message) and checks
// their form and nonce. When done is true the authorization is over and
// code is the function's result: Authorized for ACK/CANCEL (which cannot be
// challenged), NoCredentials, StaleNonce, AuthError, or Error after a 400
// reply for unusable credentials.
func Begin(m *msgctx.Msg, realm string, kind Kind, fname string) (a *Attempt, code int, done bool) {
	if m.Req == nil {
		logf(m, msgctx.LErr, "%s: there is no request to authorize", fname)
		return nil, AuthError, true
	}
	if m.Req.Method == sip.ACK || m.Req.Method == sip.CANCEL {
		return nil, Authorized, true
	}
	if realm == "" {
		r, ok := RealmFromMessage(m, kind)
		if !ok {
			logf(m, msgctx.LErr, "%s: cannot take the realm from the request", fname)
			if err := sendReply(m, 400, "Bad Request"); err != nil {
				logf(m, msgctx.LErr, "%s: sending 400 failed: %v", fname, err)
			}
			return nil, Error, true
		}
		realm = r
	}
	st := state(m)
	for _, h := range m.Req.GetHeaders(kind.credHeader()) {
		c, ok := parseCredentials(h.Value())
		if !ok {
			if isDigest(h.Value()) {
				logf(m, msgctx.LErr, "%s: cannot parse the %s header", fname, kind.credHeader())
				if err := sendReply(m, 400, "Bad Request"); err != nil {
					logf(m, msgctx.LErr, "%s: sending 400 failed: %v", fname, err)
				}
				return nil, Error, true
			}
			continue // another scheme
		}
		if !strings.EqualFold(c.Realm, realm) {
			continue
		}
		if c.malformed != "" {
			logf(m, msgctx.LErr, "%s: credentials of %q are not usable: %s", fname, c.Username, c.malformed)
			if err := sendReply(m, 400, "Bad Request"); err != nil {
				logf(m, msgctx.LErr, "%s: sending 400 failed: %v", fname, err)
			}
			return nil, Error, true
		}
		nd, ok := parseNonce(cur.Load().key, c.Nonce)
		if !ok || !nonceFits(nd, c) {
			st.stale[kind] = true
			return nil, StaleNonce, true
		}
		return &Attempt{Cred: c, Realm: realm, Kind: kind, m: m, hdr: h, nonce: nd}, 0, false
	}
	return nil, NoCredentials, true
}

func isDigest(v string) bool {
	v = strings.TrimLeft(v, " \t")
	return len(v) >= 7 && strings.EqualFold(v[:6], "Digest") && (v[6] == ' ' || v[6] == '\t')
}

// nonceFits checks the credentials use the nonce as the challenge offered
// it: the same algorithm, and a qop when one was offered.
func nonceFits(nd nonceData, c *Credentials) bool {
	switch {
	case nd.alg == AlgUnspec:
		if c.Alg != AlgUnspec && c.Alg != AlgMD5 {
			return false
		}
	case nd.alg != c.Alg && !(nd.alg == AlgMD5 && c.Alg == AlgUnspec):
		return false
	}
	if nd.qop != 0 {
		switch c.QOP {
		case "auth":
			return nd.qop&qopAuth != 0
		case "auth-int":
			return nd.qop&qopAuthInt != 0
		}
		return false
	}
	return true
}

// HA1 computes the HA1 of a plaintext password for these credentials
// (calculate_ha1): over the username as the client sent it.
func (a *Attempt) HA1(password string) string {
	return HA1(a.Cred.Alg.Base(), a.Cred.Username, a.Realm, password)
}

// Verify checks the response against the user's HA1 (hex, of the
// credentials' algorithm family).
func (a *Attempt) Verify(ha1 string) bool {
	c := a.Cred
	if len(c.Response) != c.Alg.HexLen() || len(ha1) != c.Alg.HexLen() {
		return false
	}
	want := Response(c.Alg, strings.ToLower(ha1), c.Nonce, c.NC, c.CNonce, c.QOP, string(a.m.Req.Method), c.URI, a.m.Req.Body())
	return equalHex(want, c.Response)
}

// Finish checks the nonce's age and that it was not used before, and marks
// the credentials authorized (for consume_credentials). It returns
// Authorized or StaleNonce.
func (a *Attempt) Finish() int {
	cfg := cur.Load()
	t := now().Unix()
	st := state(a.m)
	if t > a.nonce.expires {
		st.stale[a.Kind] = true
		return StaleNonce
	}
	if !cfg.noNonceCheck {
		var nc uint64
		if a.Cred.QOP != "" {
			nc, _ = strconv.ParseUint(a.Cred.NC, 16, 32)
		}
		if !used.use(a.nonce.index, a.nonce.expires, uint32(nc), a.Cred.QOP != "", t) {
			st.stale[a.Kind] = true
			return StaleNonce
		}
	}
	st.cred, st.kind = a.hdr, a.Kind
	return Authorized
}

// ---- challenges ----

type challengeFix struct {
	qop     uint8
	qopOK   bool
	algs    []Alg
	algsOK  bool
	realmOK bool
}

// ParseQOP reads a challenge's qop argument: "auth", "auth-int" or both
// comma-separated; OpenSIPS 1.x/2.x's "1" (auth) and "0"/"" (none) too.
func ParseQOP(s string) (uint8, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "", "0":
		return 0, nil
	case "1":
		return qopAuth, nil
	}
	var q uint8
	for _, p := range strings.Split(s, ",") {
		switch strings.TrimSpace(p) {
		case "auth":
			q |= qopAuth
		case "auth-int":
			q |= qopAuthInt
		default:
			return 0, fmt.Errorf("qop %q: want auth, auth-int or both (comma-separated)", s)
		}
	}
	return q, nil
}

// ParseAlgs reads a comma-separated algorithm list and orders it from the
// strongest to the weakest, the order RFC 8760 wants the challenges in.
// "" offers MD5 without an algorithm parameter.
func ParseAlgs(s string) ([]Alg, error) {
	if strings.TrimSpace(s) == "" {
		return []Alg{AlgUnspec}, nil
	}
	var set [numAlgs]bool
	for _, p := range strings.Split(s, ",") {
		a, ok := ParseAlg(p)
		if !ok || strings.TrimSpace(p) == "" {
			return nil, fmt.Errorf("unknown digest algorithm %q (want MD5, MD5-sess, SHA-256, SHA-256-sess, SHA-512-256, SHA-512-256-sess)", strings.TrimSpace(p))
		}
		set[a] = true
	}
	var out []Alg
	for a := numAlgs - 1; a >= AlgMD5; a-- {
		if set[a] {
			out = append(out, a)
		}
	}
	return out, nil
}

func fixupChallenge(args []check.FixupArg) (any, error) {
	f := &challengeFix{}
	if a := args[1]; !a.Present || a.Const {
		q, err := ParseQOP(a.Str)
		if err != nil {
			return nil, check.ArgError(1, "%v", err)
		}
		f.qop, f.qopOK = q, true
	}
	if a := args[2]; !a.Present || a.Const {
		algs, err := ParseAlgs(a.Str)
		if err != nil {
			return nil, check.ArgError(2, "%v", err)
		}
		f.algs, f.algsOK = algs, true
	}
	return f, nil
}

func callChallenge(m *msgctx.Msg, a *modules.Args, kind Kind) int {
	fname := "www_challenge"
	if kind == Proxy {
		fname = "proxy_challenge"
	}
	f, _ := a.Fix.(*challengeFix)
	if f == nil {
		f = &challengeFix{}
	}
	qop, algs := f.qop, f.algs
	var err error
	if !f.qopOK {
		if qop, err = ParseQOP(a.Str(1)); err != nil {
			logf(m, msgctx.LErr, "%s: %v", fname, err)
			return -1
		}
	}
	if !f.algsOK {
		if algs, err = ParseAlgs(a.Str(2)); err != nil {
			logf(m, msgctx.LErr, "%s: %v", fname, err)
			return -1
		}
	}
	return Challenge(m, a.Str(0), kind, qop, algs, fname)
}

// Challenge sends a 401 (WWW) or 407 (Proxy) with one challenge header per
// algorithm and returns 0, as OpenSIPS does (the reply is the end of the
// request's processing), or -1 when the reply could not be sent.
func Challenge(m *msgctx.Msg, realm string, kind Kind, qop uint8, algs []Alg, fname string) int {
	if m.Req == nil || m.Req.Method == sip.ACK {
		logf(m, msgctx.LErr, "%s: there is no request to challenge", fname)
		return -1
	}
	if realm == "" {
		r, ok := RealmFromMessage(m, kind)
		if !ok {
			logf(m, msgctx.LErr, "%s: cannot take the realm from the request", fname)
			if err := sendReply(m, 400, "Bad Request"); err != nil {
				return -1
			}
			return 0
		}
		realm = r
	}
	if len(algs) == 0 {
		algs = []Alg{AlgUnspec}
	}
	if qop == 0 {
		for _, a := range algs {
			if a != AlgUnspec && a != AlgMD5 { // RFC 8760 and -sess need qop
				qop = qopAuth
			}
		}
	}
	cfg := cur.Load()
	stale := false
	if st, ok := m.Mod[Name].(*msgState); ok {
		stale = st.stale[kind]
	}
	nd := nonceData{expires: now().Unix() + cfg.nonceExpire, qop: qop}
	hdrs := make([]sip.Header, 0, len(algs))
	for _, alg := range algs {
		nd.alg, nd.index = alg, nonceIndex.Add(1)
		hdrs = append(hdrs, sip.NewHeader(kind.challengeHeader(), challengeValue(realm, makeNonce(cfg.key, nd), qop, stale, alg)))
	}
	code, reason := 401, "Unauthorized"
	if kind == Proxy {
		code, reason = 407, "Proxy Authentication Required"
	}
	if err := sendReply(m, code, reason, hdrs...); err != nil {
		logf(m, msgctx.LErr, "%s: sending %d failed: %v", fname, code, err)
		return -1
	}
	return 0
}

func challengeValue(realm, nonce string, qop uint8, stale bool, alg Alg) string {
	var b strings.Builder
	b.WriteString(`Digest realm="`)
	b.WriteString(quoteEscape(realm))
	b.WriteString(`", nonce="`)
	b.WriteString(nonce)
	b.WriteByte('"')
	switch qop {
	case qopAuth:
		b.WriteString(`, qop="auth"`)
	case qopAuthInt:
		b.WriteString(`, qop="auth-int"`)
	case qopAuth | qopAuthInt:
		b.WriteString(`, qop="auth,auth-int"`)
	}
	if stale {
		b.WriteString(", stale=true")
	}
	if alg != AlgUnspec {
		b.WriteString(", algorithm=")
		b.WriteString(alg.String())
	}
	return b.String()
}

func quoteEscape(s string) string {
	if !strings.ContainsAny(s, `"\`) {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// ---- consume_credentials ----

func callConsume(m *msgctx.Msg, _ *modules.Args) int {
	st, _ := m.Mod[Name].(*msgState)
	if st == nil || st.cred == nil || m.Req == nil {
		if m.Req != nil && m.Req.Method != sip.ACK && m.Req.Method != sip.CANCEL {
			logf(m, msgctx.LErr, "consume_credentials: no authorized credentials found (error in scripts)")
		}
		return -1
	}
	if !removeHeader(m.Req, st.kind.credHeader(), st.cred) {
		return -1
	}
	st.cred = nil
	return 1
}

// removeHeader removes one particular header instance, keeping the others
// of the same name (sipgo removes by name only).
func removeHeader(req *sip.Request, name string, target sip.Header) bool {
	hs := req.GetHeaders(name)
	idx := -1
	for i, h := range hs {
		if h == target {
			idx = i
		}
	}
	if idx < 0 {
		return false
	}
	for _, h := range hs {
		req.RemoveHeader(h.Name())
	}
	for i, h := range hs {
		if i != idx {
			req.AppendHeader(h)
		}
	}
	return true
}
