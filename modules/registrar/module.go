// Package registrar is OpenSIPS's registrar module: save() processes a
// REGISTER into the usrloc table and answers it, lookup() rewrites the
// Request-URI to the registered contacts, and is_registered(),
// is_contact_registered(), registered() (2.x) and remove() query and edit
// the bindings.
package registrar

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/modules/usrloc"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "registrar"

type config struct {
	defaultExpires int
	minExpires     int
	maxExpires     int
	defaultQ       int // thousandths, -1 unspecified
	caseSensitive  bool
	maxContacts    int
	retryAfter     int
	realmPrefix    string
	receivedParam  string
	saveReceived   int // 0 never, 1 when behind NAT, 2 always
}

var cur atomic.Pointer[config]

func init() {
	cur.Store(&config{defaultExpires: 3600, minExpires: 60, defaultQ: -1, caseSensitive: true, receivedParam: "received", saveReceived: 1})
	str := check.ArgSpec{Kind: check.ArgStr}
	optStr := check.ArgSpec{Kind: check.ArgStr, Optional: true}
	all := check.Routes(ast.RequestRoute, ast.BranchRoute, ast.FailureRoute, ast.OnReplyRoute, ast.LocalRoute)
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "default_expires", Kind: modules.ParamInt, Default: value.I(3600)},
			{Name: "min_expires", Kind: modules.ParamInt, Default: value.I(60)},
			{Name: "max_expires", Kind: modules.ParamInt, Default: value.I(0)},
			{Name: "default_q", Kind: modules.ParamInt, Default: value.I(-1)},
			{Name: "case_sensitive", Kind: modules.ParamInt, Default: value.I(1)},
			{Name: "max_contacts", Kind: modules.ParamInt, Default: value.I(0)},
			{Name: "retry_after", Kind: modules.ParamInt, Default: value.I(0)},
			{Name: "realm_prefix", Kind: modules.ParamStr},
			{Name: "received_param", Kind: modules.ParamStr, Default: value.S("received")},
			{Name: "tcp_persistent_flag", Kind: modules.ParamStr},
			{Name: "disable_gruu", Kind: modules.ParamInt, Default: value.I(1)},
			{Name: "gruu_secret", Kind: modules.ParamStr},
			// sipedge: what save() keeps in the received column (there is
			// no nathelper/received_avp): 0 never, 1 when the REGISTER's
			// source differs from the Contact's address, 2 always.
			{Name: "save_received", Kind: modules.ParamInt, Default: value.I(1)},
		},
		Funcs: []*modules.Func{
			{Name: "save", Args: []check.ArgSpec{str, optStr, optStr, optStr},
				Routes: check.Routes(ast.RequestRoute, ast.OnReplyRoute), Fixup: fixupSave, Call: callSave},
			{Name: "lookup", Args: []check.ArgSpec{str, optStr, optStr},
				Routes: check.Routes(ast.RequestRoute, ast.FailureRoute, ast.OnReplyRoute), Fixup: fixupLookup, Call: callLookup},
			{Name: "is_registered", Args: []check.ArgSpec{str, optStr}, Routes: all, Fixup: fixupDomain, Call: callIsRegistered},
			{Name: "is_contact_registered", Args: []check.ArgSpec{str, optStr, optStr, optStr}, Routes: all, Fixup: fixupDomain, Call: callIsContactRegistered},
			{Name: "registered", Args: []check.ArgSpec{str, optStr, optStr}, Routes: all, Fixup: fixupDomain, Call: callRegistered},
			{Name: "remove", Args: []check.ArgSpec{str, str, optStr},
				Routes: check.Routes(ast.RequestRoute, ast.OnReplyRoute), Fixup: fixupDomain, Call: callRemove},
		},
		Configure: configure,
	})
}

func configure(p modules.Params) (func(), error) {
	c := &config{
		defaultExpires: p.Int("default_expires"),
		minExpires:     p.Int("min_expires"),
		maxExpires:     p.Int("max_expires"),
		defaultQ:       p.Int("default_q"),
		caseSensitive:  p.Int("case_sensitive") != 0,
		maxContacts:    p.Int("max_contacts"),
		retryAfter:     p.Int("retry_after"),
		realmPrefix:    p.Str("realm_prefix"),
		receivedParam:  p.Str("received_param"),
		saveReceived:   p.Int("save_received"),
	}
	switch {
	case c.defaultExpires < 0:
		return nil, errors.New("default_expires must not be negative")
	case c.minExpires < 0, c.maxExpires < 0:
		return nil, errors.New("min_expires and max_expires must not be negative")
	case c.defaultQ < -1 || c.defaultQ > 1000:
		return nil, fmt.Errorf("default_q %d: want 0..1000 (thousandths) or -1 (unspecified)", c.defaultQ)
	case c.maxContacts < 0:
		return nil, errors.New("max_contacts must not be negative")
	case c.saveReceived < 0 || c.saveReceived > 2:
		return nil, errors.New("save_received: want 0 (never), 1 (behind NAT) or 2 (always)")
	case c.receivedParam == "":
		return nil, errors.New("received_param must not be empty")
	}
	if p.Int("disable_gruu") == 0 {
		return nil, errors.New("GRUU is not supported yet (leave disable_gruu at 1)")
	}
	return func() { cur.Store(c) }, nil
}

func logf(m *msgctx.Msg, level int, format string, args ...any) {
	if m.Host != nil {
		m.Host.Log(m, level, fmt.Sprintf(format, args...))
	}
}

// ---- fixups ----

func fixupDomain(args []check.FixupArg) (any, error) {
	if a := args[0]; a.Const {
		if err := store.CheckIdent("domain (table)", a.Str); err != nil {
			return nil, check.ArgError(0, "%v", err)
		}
	}
	return nil, nil
}

func fixupSave(args []check.FixupArg) (any, error) {
	if _, err := fixupDomain(args); err != nil {
		return nil, err
	}
	if a := args[1]; a.Present && a.Const {
		f, err := parseSaveFlags(a.Str)
		if err != nil {
			return nil, check.ArgError(1, "%v", err)
		}
		return f, nil
	}
	return nil, nil
}

func fixupLookup(args []check.FixupArg) (any, error) {
	if _, err := fixupDomain(args); err != nil {
		return nil, err
	}
	if a := args[1]; a.Present && a.Const {
		f, err := parseLookupFlags(a.Str)
		if err != nil {
			return nil, check.ArgError(1, "%v", err)
		}
		return f, nil
	}
	return nil, nil
}

// ---- AORs ----

// aorOf builds the usrloc key of a URI: user[@domain], lowercasing the
// domain (and the user unless case_sensitive), dropping realm_prefix.
func aorOf(u *sip.Uri) (string, error) {
	c := cur.Load()
	if u.User == "" {
		return "", errors.New("the AOR has no user part")
	}
	user := u.User
	if !c.caseSensitive {
		user = strings.ToLower(user)
	}
	if !usrloc.UseDomain() {
		return user, nil
	}
	host := strings.ToLower(u.Host)
	if p := c.realmPrefix; p != "" && len(host) > len(p) && strings.HasPrefix(host, p) {
		host = host[len(p):]
	}
	return user + "@" + host, nil
}

// aorFromString reads an AOR argument: a SIP URI, or user@domain.
func aorFromString(s string) (string, error) {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			s = s[i+1 : i+j]
		}
	}
	if !strings.Contains(s, ":") {
		s = "sip:" + s
	}
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return "", fmt.Errorf("bad AOR %q: %v", s, err)
	}
	return aorOf(&u)
}

// defaultAOR is To for REGISTER and From for other requests (is_registered).
func defaultAOR(m *msgctx.Msg) (string, error) {
	if m.Req == nil {
		return "", errors.New("no request to take the AOR from (pass one)")
	}
	if m.Req.Method == sip.REGISTER {
		if to := m.Req.To(); to != nil {
			return aorOf(&to.Address)
		}
		return "", errors.New("no To header")
	}
	if from := m.Req.From(); from != nil {
		return aorOf(&from.Address)
	}
	return "", errors.New("no From header")
}

// ---- method bitmask (OpenSIPS's request_method values) ----

var methodBits = map[string]int{
	"INVITE": 1, "CANCEL": 2, "ACK": 4, "BYE": 8, "INFO": 16, "OPTIONS": 32, "UPDATE": 64, "REGISTER": 128,
	"MESSAGE": 256, "SUBSCRIBE": 512, "NOTIFY": 1024, "PRACK": 2048, "REFER": 4096, "PUBLISH": 8192,
}

const methodOther = 16384

func methodBit(method string) int {
	if b, ok := methodBits[strings.ToUpper(method)]; ok {
		return b
	}
	return methodOther
}

// allowedMethods reads the Allow headers; -1 when there are none.
func allowedMethods(req *sip.Request) int {
	hs := req.GetHeaders("Allow")
	if len(hs) == 0 {
		return -1
	}
	bits := 0
	for _, h := range hs {
		for _, m := range strings.Split(h.Value(), ",") {
			if m = strings.TrimSpace(m); m != "" {
				bits |= methodBit(m)
			}
		}
	}
	return bits
}

// ---- replies ----

// sendReply answers statefully when the request has a transaction (as
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

// ---- lookup ----

type lookupFlags struct {
	noBranches bool
	methods    bool
	ua         *regexp.Regexp
}

func parseLookupFlags(s string) (*lookupFlags, error) {
	f := &lookupFlags{}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 'b':
			f.noBranches = true
		case 'm':
			f.methods = true
		case 'r':
			return nil, errors.New("lookup flag 'r' (branch AOR expansion) is not supported yet")
		case 'u':
			if i+1 >= len(s) || s[i+1] != '/' {
				return nil, errors.New("lookup flag 'u' wants a regular expression: u/regexp/")
			}
			end := strings.IndexByte(s[i+2:], '/')
			if end < 0 {
				return nil, errors.New("lookup flag 'u': missing the closing / of u/regexp/")
			}
			rx := s[i+2 : i+2+end]
			i += 2 + end
			icase := false
			for i+1 < len(s) && (s[i+1] == 'i' || s[i+1] == 'e') {
				icase = icase || s[i+1] == 'i'
				i++
			}
			if icase {
				rx = "(?i)" + rx
			}
			re, err := regexp.Compile(rx)
			if err != nil {
				return nil, fmt.Errorf("lookup flag 'u': %v", err)
			}
			f.ua = re
		case 'i', 'e':
			// only meaningful after u/…/
		case ' ':
		default:
			return nil, fmt.Errorf("unknown lookup flag %q (want b, m, u/regexp/[i][e])", s[i])
		}
	}
	return f, nil
}

// lookup return codes.
const (
	lookupFound    = 1
	lookupNotFound = -1
	lookupNoMethod = -2
	lookupInternal = -3
)

func callLookup(m *msgctx.Msg, a *modules.Args) int {
	if m.Req == nil {
		logf(m, msgctx.LErr, "lookup: there is no request")
		return lookupInternal
	}
	f, _ := a.Fix.(*lookupFlags)
	if f == nil {
		var err error
		if f, err = parseLookupFlags(a.Str(1)); err != nil {
			logf(m, msgctx.LErr, "lookup: %v", err)
			return lookupInternal
		}
	}
	var aor string
	var err error
	if a.Has(2) && a.Str(2) != "" {
		aor, err = aorFromString(a.Str(2))
	} else {
		aor, err = aorOf(&m.Req.Recipient)
	}
	if err != nil {
		logf(m, msgctx.LErr, "lookup: %v", err)
		return lookupInternal
	}
	cs, err := usrloc.GetDomain(a.Str(0)).Lookup(aor)
	if err != nil {
		logf(m, msgctx.LErr, "lookup: %s: %v", a.Str(0), err)
		return lookupInternal
	}
	if len(cs) == 0 {
		return lookupNotFound
	}
	bit := methodBit(string(m.Req.Method))
	var use []usrloc.Contact
	methodFiltered := false
	for _, c := range cs {
		if f.methods && c.Methods >= 0 && c.Methods&bit == 0 {
			methodFiltered = true
			continue
		}
		if f.ua != nil && !f.ua.MatchString(c.UserAgent) {
			continue
		}
		use = append(use, c)
	}
	if len(use) == 0 {
		if methodFiltered {
			return lookupNoMethod
		}
		return lookupNotFound
	}
	var first *usrloc.Contact
	var u sip.Uri
	for i := range use {
		if err := sip.ParseUri(use[i].URI, &u); err == nil {
			first = &use[i]
			use = use[i+1:]
			break
		}
		logf(m, msgctx.LWarn, "lookup: skipping unparsable contact %q", use[i].URI)
	}
	if first == nil {
		return lookupInternal
	}
	pvar.SaveOriginalURI(m)
	m.Req.Recipient = u
	if dst := nextHop(m, first); dst != "" {
		m.DstURI = dst
	}
	if !f.noBranches {
		for i := range use {
			c := &use[i]
			m.Branches = append(m.Branches, msgctx.Branch{URI: c.URI, Dst: branchHop(c), Q: c.Q})
		}
	}
	return lookupFound
}

// nextHop is where a request for the contact goes first: the first Path
// URI (whose Route headers are added), else the received address.
func nextHop(m *msgctx.Msg, c *usrloc.Contact) string {
	if c.Path != "" {
		for _, p := range splitPath(c.Path) {
			m.Req.PrependHeader(sip.NewHeader("Route", p))
		}
		return firstPathURI(c.Path)
	}
	return c.Received
}

func branchHop(c *usrloc.Contact) string {
	if c.Path != "" {
		return firstPathURI(c.Path)
	}
	return c.Received
}

func splitPath(path string) []string {
	var out []string
	for _, p := range strings.Split(path, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	// PrependHeader puts each in front: add them last first.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func firstPathURI(path string) string {
	p := strings.TrimSpace(strings.SplitN(path, ",", 2)[0])
	if i := strings.IndexByte(p, '<'); i >= 0 {
		if j := strings.IndexByte(p[i:], '>'); j > 0 {
			return p[i+1 : i+j]
		}
	}
	return p
}

// ---- is_registered & co ----

func aorArg(m *msgctx.Msg, a *modules.Args, i int, fallback func(*msgctx.Msg) (string, error)) (string, error) {
	if a.Has(i) && a.Str(i) != "" {
		return aorFromString(a.Str(i))
	}
	return fallback(m)
}

func callIsRegistered(m *msgctx.Msg, a *modules.Args) int {
	aor, err := aorArg(m, a, 1, defaultAOR)
	if err != nil {
		logf(m, msgctx.LErr, "is_registered: %v", err)
		return -1
	}
	cs, err := usrloc.GetDomain(a.Str(0)).Lookup(aor)
	if err != nil {
		logf(m, msgctx.LErr, "is_registered: %v", err)
		return -1
	}
	if len(cs) > 0 {
		return 1
	}
	return -1
}

// registered(domain[, aor[, callid]]): OpenSIPS 2.x; the AOR defaults to
// the Request-URI.
func callRegistered(m *msgctx.Msg, a *modules.Args) int {
	aor, err := aorArg(m, a, 1, func(m *msgctx.Msg) (string, error) {
		if m.Req == nil {
			return "", errors.New("no request to take the AOR from (pass one)")
		}
		return aorOf(&m.Req.Recipient)
	})
	if err != nil {
		logf(m, msgctx.LErr, "registered: %v", err)
		return -1
	}
	cs, err := usrloc.GetDomain(a.Str(0)).Lookup(aor)
	if err != nil {
		logf(m, msgctx.LErr, "registered: %v", err)
		return -1
	}
	for _, c := range cs {
		if !a.Has(2) || a.Str(2) == "" || c.CallID == a.Str(2) {
			return 1
		}
	}
	return -1
}

func callIsContactRegistered(m *msgctx.Msg, a *modules.Args) int {
	aor, err := aorArg(m, a, 1, defaultAOR)
	if err != nil {
		logf(m, msgctx.LErr, "is_contact_registered: %v", err)
		return -1
	}
	contact := ""
	if a.Has(2) {
		contact = strings.TrimSpace(a.Str(2))
		if i := strings.IndexByte(contact, '<'); i >= 0 {
			if j := strings.IndexByte(contact[i:], '>'); j > 0 {
				contact = contact[i+1 : i+j]
			}
		}
	}
	callid := ""
	if a.Has(3) {
		callid = a.Str(3)
	}
	if contact == "" && callid == "" && m.Req != nil {
		if ch := m.Req.Contact(); ch != nil {
			contact = ch.Address.String()
		}
	}
	cs, err := usrloc.GetDomain(a.Str(0)).Lookup(aor)
	if err != nil {
		logf(m, msgctx.LErr, "is_contact_registered: %v", err)
		return -1
	}
	for _, c := range cs {
		if (contact == "" || c.URI == contact) && (callid == "" || c.CallID == callid) {
			return 1
		}
	}
	return -1
}

// remove(domain, aor[, target]): target is one contact URI, or a host/IP
// whose contacts all go. 1 when something was removed, -1 otherwise.
func callRemove(m *msgctx.Msg, a *modules.Args) int {
	aor, err := aorFromString(a.Str(1))
	if err != nil {
		logf(m, msgctx.LErr, "remove: %v", err)
		return -1
	}
	target := ""
	if a.Has(2) {
		target = strings.TrimSpace(a.Str(2))
	}
	n := 0
	_, err = usrloc.GetDomain(a.Str(0)).Update(aor, false, func(cs []usrloc.Contact) ([]usrloc.Contact, error) {
		out := cs[:0]
		for _, c := range cs {
			if target == "" || c.URI == target || contactHost(c.URI) == target {
				n++
				continue
			}
			out = append(out, c)
		}
		return out, nil
	})
	if err != nil {
		logf(m, msgctx.LErr, "remove: %v", err)
		return -1
	}
	if n == 0 {
		return -1
	}
	return 1
}

func contactHost(uri string) string {
	var u sip.Uri
	if sip.ParseUri(uri, &u) != nil {
		return ""
	}
	return u.Host
}
