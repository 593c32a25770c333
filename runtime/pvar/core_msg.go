package pvar

import (
	"errors"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

// Core pvars read from (and, where OpenSIPS allows, written to) the SIP
// message. sipgo keeps parsed headers, not the received bytes, so values
// that OpenSIPS takes verbatim from the buffer ($hdr of From/To/Via/Contact,
// $fu, $mb …) are re-serialised by sipgo; plain headers and URI parts are
// exact.

// coreState is per-message pvar state msgctx has no field for: the original
// R-URI (saved before the first rewrite) and the R-URI q value.
type coreState struct {
	orig     sip.Uri
	haveOrig bool
	ruQ      int
	ruQSet   bool
}

const coreStateKey = "core.pvar"

func newCoreState() any { return &coreState{} }

func peekState(m *msgctx.Msg) *coreState {
	if s, ok := m.Mod[coreStateKey].(*coreState); ok {
		return s
	}
	return nil
}

// SaveOriginalURI records the current R-URI as the original one ($ou, $oU …)
// unless it was already saved. Everything that rewrites m.Req.Recipient
// should call it first (the $ru/$rU/$rd/$rp setters do).
func SaveOriginalURI(m *msgctx.Msg) {
	if m.Req == nil {
		return
	}
	s := m.ModData(coreStateKey, newCoreState).(*coreState)
	if !s.haveOrig {
		s.orig = *m.Req.Recipient.Clone()
		s.haveOrig = true
	}
}

func origURI(m *msgctx.Msg) *sip.Uri {
	if s := peekState(m); s != nil && s.haveOrig {
		return &s.orig
	}
	return &m.Req.Recipient
}

// uri attribute selectors shared by $r*, $o*, $d*
const (
	uriUser = iota
	uriHost
	uriPort
	uriProto
)

func sipURIAttr(u *sip.Uri, which int) value.Value {
	switch which {
	case uriUser:
		return vStrNull(u.User)
	case uriHost:
		return vStrNull(u.Host)
	case uriPort:
		if u.Port > 0 {
			return vInt(u.Port)
		}
		tr, _ := u.UriParams.Get("transport")
		p, _ := defaultPortProto(u.Scheme, tr)
		return vInt(p)
	case uriProto:
		if tr, ok := u.UriParams.Get("transport"); ok && tr != "" {
			return value.SI(tr, protoID(tr))
		}
		_, p := defaultPortProto(u.Scheme, "")
		return value.SI(p, protoID(p))
	}
	return value.Null
}

func splitURIAttr(u *uriParts, which int) value.Value {
	switch which {
	case uriUser:
		return vStrNull(u.user)
	case uriHost:
		return vStrNull(u.host)
	case uriPort:
		if u.port != "" {
			return value.SI(u.port, u.portNo)
		}
		p, _ := defaultPortProto(u.scheme, u.transport)
		return vInt(p)
	case uriProto:
		if u.transport != "" {
			return value.SI(u.transport, protoID(u.transport))
		}
		_, p := defaultPortProto(u.scheme, "")
		return value.SI(p, protoID(p))
	}
	return value.Null
}

func ruriGetter(which int) func(*msgctx.Msg, any, Index) value.Value {
	return func(m *msgctx.Msg, _ any, _ Index) value.Value {
		if m.Req == nil {
			return value.Null
		}
		return sipURIAttr(&m.Req.Recipient, which)
	}
}

func ouriGetter(which int) func(*msgctx.Msg, any, Index) value.Value {
	return func(m *msgctx.Msg, _ any, _ Index) value.Value {
		if m.Req == nil {
			return value.Null
		}
		return sipURIAttr(origURI(m), which)
	}
}

var errNoRequest = errors.New("no request to change (reply or non-SIP route)")

func needStr(v value.Value, what string) (string, error) {
	if !v.IsStr() {
		if v.IsInt() {
			return v.AsString(), nil
		}
		return "", errors.New("a string value is required to set " + what)
	}
	return v.S, nil
}

func setRURI(m *msgctx.Msg, _ any, _ Index, _ string, v value.Value) error {
	if m.Req == nil {
		return errNoRequest
	}
	if v.IsNull() {
		return errors.New("cannot set the R-URI to NULL")
	}
	s, err := needStr(v, "the R-URI")
	if err != nil {
		return err
	}
	var u sip.Uri
	if err := sip.ParseUri(strings.TrimSpace(s), &u); err != nil || u.Scheme == "" {
		return errors.New("invalid R-URI " + strconv.Quote(s))
	}
	SaveOriginalURI(m)
	m.Req.Recipient = u
	return nil
}

func setRURIUser(m *msgctx.Msg, _ any, _ Index, _ string, v value.Value) error {
	if m.Req == nil {
		return errNoRequest
	}
	s := ""
	if !v.IsNull() {
		var err error
		if s, err = needStr(v, "the R-URI user"); err != nil {
			return err
		}
	}
	SaveOriginalURI(m)
	m.Req.Recipient.User = s
	if s == "" {
		m.Req.Recipient.Password = ""
	}
	return nil
}

func setRURIHost(m *msgctx.Msg, _ any, _ Index, _ string, v value.Value) error {
	if m.Req == nil {
		return errNoRequest
	}
	if v.IsNull() {
		return errors.New("cannot set the R-URI host to NULL")
	}
	s, err := needStr(v, "the R-URI host")
	if err != nil || s == "" {
		return errors.New("a non-empty string is required to set the R-URI host")
	}
	SaveOriginalURI(m)
	m.Req.Recipient.Host = s
	return nil
}

func parsePortValue(v value.Value) (int, error) {
	if v.IsNull() {
		return 0, nil
	}
	n, ok := v.AsInt()
	if !ok && v.IsStr() && v.S == "" {
		return 0, nil
	}
	if !ok || n < 0 || n > 65535 {
		return 0, errors.New("invalid port " + strconv.Quote(v.AsString()))
	}
	return n, nil
}

func setRURIPort(m *msgctx.Msg, _ any, _ Index, _ string, v value.Value) error {
	if m.Req == nil {
		return errNoRequest
	}
	n, err := parsePortValue(v)
	if err != nil {
		return err
	}
	SaveOriginalURI(m)
	m.Req.Recipient.Port = n
	return nil
}

func getRUQ(m *msgctx.Msg, _ any, _ Index) value.Value {
	if m.Req == nil {
		return value.Null
	}
	if s := peekState(m); s != nil && s.ruQSet {
		return vInt(s.ruQ)
	}
	return vInt(-1) // Q_UNSPECIFIED
}

func setRUQ(m *msgctx.Msg, _ any, _ Index, _ string, v value.Value) error {
	if m.Req == nil {
		return errNoRequest
	}
	s := m.ModData(coreStateKey, newCoreState).(*coreState)
	if v.IsNull() {
		s.ruQSet = false
		return nil
	}
	if !v.IsInt() {
		return errors.New("an integer value is required to set $ru_q")
	}
	q := v.I
	if q > 1000 {
		q = 1000
	}
	s.ruQ, s.ruQSet = q, true
	return nil
}

// ---- destination URI ----

func getDU(m *msgctx.Msg, _ any, _ Index) value.Value { return vStrNull(m.DstURI) }

func setDU(m *msgctx.Msg, _ any, _ Index, _ string, v value.Value) error {
	if v.IsNull() {
		m.DstURI = ""
		return nil
	}
	s, err := needStr(v, "$du")
	if err != nil {
		return err
	}
	m.DstURI = s
	return nil
}

func duGetter(which int) func(*msgctx.Msg, any, Index) value.Value {
	return func(m *msgctx.Msg, _ any, _ Index) value.Value {
		if m.DstURI == "" {
			return value.Null
		}
		u, err := parseURI(m.DstURI)
		if err != nil {
			return value.Null
		}
		return splitURIAttr(&u, which)
	}
}

// dstBase is the URI $dd/$dp change: $du when set, else the R-URI.
func dstBase(m *msgctx.Msg) (sip.Uri, error) {
	var u sip.Uri
	if m.DstURI != "" {
		if err := sip.ParseUri(m.DstURI, &u); err != nil {
			return u, errors.New("invalid destination URI " + strconv.Quote(m.DstURI))
		}
		return u, nil
	}
	if m.Req == nil {
		return u, errNoRequest
	}
	return *m.Req.Recipient.Clone(), nil
}

func setDD(m *msgctx.Msg, _ any, _ Index, _ string, v value.Value) error {
	if v.IsNull() {
		return errors.New("cannot set the destination host to NULL")
	}
	s, err := needStr(v, "$dd")
	if err != nil || s == "" {
		return errors.New("a non-empty string is required to set $dd")
	}
	u, err := dstBase(m)
	if err != nil {
		return err
	}
	u.Host = s
	m.DstURI = u.String()
	return nil
}

func setDP(m *msgctx.Msg, _ any, _ Index, _ string, v value.Value) error {
	n, err := parsePortValue(v)
	if err != nil {
		return err
	}
	u, err := dstBase(m)
	if err != nil {
		return err
	}
	u.Port = n
	m.DstURI = u.String()
	return nil
}

// ---- From / To ----

const (
	ftURI = iota
	ftUser
	ftHost
	ftTag
	ftName
)

type nameAddrHdr struct {
	display string
	uri     *sip.Uri
	params  sip.HeaderParams
}

func fromHdr(m *msgctx.Msg) (nameAddrHdr, bool) {
	msg := sipMsg(m)
	if msg == nil {
		return nameAddrHdr{}, false
	}
	h := msg.From()
	if h == nil {
		return nameAddrHdr{}, false
	}
	return nameAddrHdr{h.DisplayName, &h.Address, h.Params}, true
}

func toHdr(m *msgctx.Msg) (nameAddrHdr, bool) {
	msg := sipMsg(m)
	if msg == nil {
		return nameAddrHdr{}, false
	}
	h := msg.To()
	if h == nil {
		return nameAddrHdr{}, false
	}
	return nameAddrHdr{h.DisplayName, &h.Address, h.Params}, true
}

// quoteDisplay gives a display name as OpenSIPS does: with its quotes.
// sipgo drops them, so they are put back (an unquoted token display name
// therefore comes back quoted).
func quoteDisplay(d string) value.Value {
	if d == "" {
		return value.Null
	}
	return value.S(`"` + d + `"`)
}

func ftGetter(get func(*msgctx.Msg) (nameAddrHdr, bool), which int) func(*msgctx.Msg, any, Index) value.Value {
	return func(m *msgctx.Msg, _ any, _ Index) value.Value {
		h, ok := get(m)
		if !ok {
			return value.Null
		}
		switch which {
		case ftURI:
			return value.S(uriString(h.uri))
		case ftUser:
			if h.uri.Raw() != "" && h.uri.User == "" {
				return userOfRaw(h.uri)
			}
			return vStrNull(h.uri.User)
		case ftHost:
			return vStrNull(h.uri.Host)
		case ftTag:
			t, _ := h.params.Get("tag")
			return vStrNull(t)
		case ftName:
			return quoteDisplay(h.display)
		}
		return value.Null
	}
}

// userOfRaw gives the user of a tel: URI sipgo keeps unparsed.
func userOfRaw(u *sip.Uri) value.Value {
	r := u.Raw()
	if i := strings.IndexAny(r, ";?"); i >= 0 {
		r = r[:i]
	}
	return vStrNull(r)
}

// ---- generic headers ----

func fixHdr(arg string, _ check.Slots) (any, error) { return newHdrName(arg) }

func getHdr(m *msgctx.Msg, arg any, idx Index) value.Value {
	h, _ := arg.(*hdrName)
	if h == nil {
		return value.Null
	}
	if !idx.Set || (!idx.All && idx.N == 0) {
		if v, ok := firstHeaderValue(m, h); ok {
			return value.S(v)
		}
		return value.Null
	}
	var vals []string
	eachHeader(m, h, func(hd sip.Header) bool {
		vals = append(vals, hd.Value())
		return true
	})
	if idx.All {
		return joinVals(vals)
	}
	i, ok := pickIndex(idx, len(vals))
	if !ok {
		return value.Null
	}
	return value.S(vals[i])
}

func getHdrCnt(m *msgctx.Msg, arg any, _ Index) value.Value {
	h, _ := arg.(*hdrName)
	if h == nil {
		return value.Null
	}
	n := 0
	for _, hd := range headersOf(m) {
		if h.match(hd.Name()) {
			n++
		}
	}
	return vInt(n)
}

func getHdrName(m *msgctx.Msg, _ any, idx Index) value.Value {
	hs := headersOf(m)
	if idx.All {
		names := make([]string, len(hs))
		for i, h := range hs {
			names[i] = h.Name()
		}
		return joinVals(names)
	}
	i, ok := pickIndex(idx, len(hs))
	if !ok {
		return value.Null
	}
	return value.S(hs[i].Name())
}

// plainHeader is a pvar that is the first header of a name ($ua, $cT …).
func plainHeader(name string) func(*msgctx.Msg, any, Index) value.Value {
	h, err := newHdrName(name)
	if err != nil {
		panic(err)
	}
	return func(m *msgctx.Msg, _ any, _ Index) value.Value {
		if v, ok := firstHeaderValue(m, h); ok {
			return value.S(v)
		}
		return value.Null
	}
}

// headerNameAddr parses the first header of a name as a name-addr.
func headerNameAddr(m *msgctx.Msg, h *hdrName) (nameAddr, bool) {
	v, ok := firstHeaderValue(m, h)
	if !ok {
		return nameAddr{}, false
	}
	na, err := parseNameAddr(v)
	if err != nil {
		return nameAddr{}, false
	}
	return na, true
}

func mustHdr(name string) *hdrName {
	h, err := newHdrName(name)
	if err != nil {
		panic(err)
	}
	return h
}

var (
	hPAI       = mustHdr("P-Asserted-Identity")
	hPPI       = mustHdr("P-Preferred-Identity")
	hRPID      = mustHdr("Remote-Party-ID")
	hDiversion = mustHdr("Diversion")
	hReferTo   = mustHdr("Refer-To")
	hContact   = mustHdr("Contact")
)

// naGetter reads a name-addr header: the URI, its user/host, the display
// name, or a header parameter.
func naGetter(h *hdrName, part string) func(*msgctx.Msg, any, Index) value.Value {
	return func(m *msgctx.Msg, _ any, _ Index) value.Value {
		na, ok := headerNameAddr(m, h)
		if !ok {
			return value.Null
		}
		switch part {
		case "uri":
			return vStrNull(na.uri)
		case "name":
			return vStrNull(na.display)
		case "user", "host":
			u, err := parseURI(na.uri)
			if err != nil {
				return value.Null
			}
			if part == "user" {
				return vStrNull(u.user)
			}
			return vStrNull(u.host)
		default: // a parameter
			v, found := findParam(na.params, part, false)
			if !found {
				return value.Null
			}
			return value.S(v)
		}
	}
}

// ---- Contact ----

func contacts(m *msgctx.Msg) []*sip.ContactHeader {
	var out []*sip.ContactHeader
	for _, hd := range headersOf(m) {
		if !hContact.match(hd.Name()) {
			continue
		}
		switch c := hd.(type) {
		case *sip.ContactHeader:
			out = append(out, c)
		default:
			var ch sip.ContactHeader
			if d, err := sip.ParseAddressValue(hd.Value(), &ch.Address, &ch.Params); err == nil {
				ch.DisplayName = d
				out = append(out, &ch)
			}
		}
	}
	return out
}

type ctField uint8

const (
	ctAll ctField = iota
	ctName
	ctURI
	ctQ
	ctExpires
	ctMethods
	ctReceived
	ctParams
)

var ctFields = map[string]ctField{"name": ctName, "uri": ctURI, "q": ctQ, "expires": ctExpires,
	"methods": ctMethods, "received": ctReceived, "params": ctParams}

func fixCtField(arg string, _ check.Slots) (any, error) {
	f, ok := ctFields[strings.ToLower(strings.TrimSpace(arg))]
	if !ok {
		return nil, errors.New("unknown contact field (name, uri, q, expires, methods, received, params)")
	}
	return f, nil
}

func contactField(c *sip.ContactHeader, f ctField) value.Value {
	if c.Address.Wildcard {
		if f == ctAll {
			return value.S("*")
		}
		return value.Null
	}
	param := func(n string) value.Value {
		v, _ := c.Params.Get(n)
		return vStrNull(v)
	}
	switch f {
	case ctAll:
		return value.S(c.Value())
	case ctName:
		return quoteDisplay(c.DisplayName)
	case ctURI:
		return value.S(uriString(&c.Address))
	case ctQ:
		return param("q")
	case ctExpires:
		return param("expires")
	case ctMethods:
		return param("methods")
	case ctReceived:
		return param("received")
	case ctParams:
		if len(c.Params) == 0 {
			return value.Null
		}
		return value.S(c.Params.ToString(';'))
	}
	return value.Null
}

func getContact(m *msgctx.Msg, arg any, idx Index) value.Value {
	f, _ := arg.(ctField)
	cs := contacts(m)
	if len(cs) == 0 {
		return value.Null
	}
	if idx.All {
		vals := make([]string, 0, len(cs))
		for _, c := range cs {
			vals = append(vals, contactField(c, f).AsString())
		}
		return joinVals(vals)
	}
	i, ok := pickIndex(idx, len(cs))
	if !ok {
		return value.Null
	}
	return contactField(cs[i], f)
}

// ---- request / reply line and misc ----

func getMethod(m *msgctx.Msg, _ any, _ Index) value.Value { return vStrNull(m.Method()) }

func getStatus(m *msgctx.Msg, _ any, _ Index) value.Value {
	if m.Resp == nil {
		return value.Null
	}
	return vInt(m.Resp.StatusCode)
}

func getReason(m *msgctx.Msg, _ any, _ Index) value.Value {
	if m.Resp == nil {
		return value.Null
	}
	return value.S(m.Resp.Reason)
}

func getRURI(m *msgctx.Msg, _ any, _ Index) value.Value {
	if m.Req == nil {
		return value.Null
	}
	return value.S(uriString(&m.Req.Recipient))
}

func getOURI(m *msgctx.Msg, _ any, _ Index) value.Value {
	if m.Req == nil {
		return value.Null
	}
	return value.S(uriString(origURI(m)))
}

func getCallID(m *msgctx.Msg, _ any, _ Index) value.Value {
	msg := sipMsg(m)
	if msg == nil {
		return value.Null
	}
	if c := msg.CallID(); c != nil {
		return value.S(string(*c))
	}
	return value.Null
}

func getCSeq(m *msgctx.Msg, _ any, _ Index) value.Value {
	msg := sipMsg(m)
	if msg == nil {
		return value.Null
	}
	if c := msg.CSeq(); c != nil {
		return vInt(int(c.SeqNo))
	}
	return value.Null
}

func getCL(m *msgctx.Msg, _ any, _ Index) value.Value {
	msg := sipMsg(m)
	if msg == nil {
		return value.Null
	}
	if c := msg.ContentLength(); c != nil {
		return vInt(int(*c))
	}
	return value.Null
}

func getBody(m *msgctx.Msg, _ any, _ Index) value.Value {
	msg := sipMsg(m)
	if msg == nil || len(msg.Body()) == 0 {
		return value.Null
	}
	return value.S(string(msg.Body()))
}

func getMsgBuf(m *msgctx.Msg, _ any, _ Index) value.Value {
	msg := sipMsg(m)
	if msg == nil {
		return value.Null
	}
	return value.S(msg.String())
}

func getMsgLen(m *msgctx.Msg, _ any, _ Index) value.Value {
	msg := sipMsg(m)
	if msg == nil {
		return value.Null
	}
	return vInt(len(msg.String()))
}

// ---- transport ----

func getSrcIP(m *msgctx.Msg, _ any, _ Index) value.Value   { return vStrNull(m.Src.IP) }
func getSrcPort(m *msgctx.Msg, _ any, _ Index) value.Value { return vInt(m.Src.Port) }
func getRcvIP(m *msgctx.Msg, _ any, _ Index) value.Value   { return vStrNull(m.Local.IP) }
func getRcvPort(m *msgctx.Msg, _ any, _ Index) value.Value {
	if m.Local.Port == 0 {
		return value.Null
	}
	return vInt(m.Local.Port)
}

func protoValue(p string) value.Value {
	if p == "" {
		return value.Null
	}
	l := strings.ToLower(p)
	return value.SI(l, protoID(l))
}

func getProto(m *msgctx.Msg, _ any, _ Index) value.Value { return protoValue(m.Src.Proto) }

// sockStr is OpenSIPS's socket text, "udp:1.2.3.4:5060".
func sockStr(a msgctx.Addr) string {
	host := a.IP
	if strings.IndexByte(host, ':') >= 0 && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	return strings.ToLower(a.Proto) + ":" + host + ":" + itoa(a.Port)
}

func fixSocketField(arg string, _ check.Slots) (any, error) {
	switch f := strings.ToLower(strings.TrimSpace(arg)); f {
	case "", "ip", "port", "proto", "af":
		return f, nil
	}
	return nil, errors.New("unsupported socket field (ip, port, proto, af)")
}

func getSocketIn(m *msgctx.Msg, arg any, _ Index) value.Value {
	if m.Local.IP == "" {
		return value.Null
	}
	f, _ := arg.(string)
	switch f {
	case "ip":
		return value.S(m.Local.IP)
	case "port":
		return vInt(m.Local.Port)
	case "proto":
		return protoValue(m.Local.Proto)
	case "af":
		if strings.IndexByte(m.Local.IP, ':') >= 0 {
			return value.S("INET6")
		}
		return value.S("INET")
	}
	return value.S(sockStr(m.Local))
}

func init() {
	for _, s := range []*Spec{
		{Name: "ru", Writable: true, Get: getRURI, Set: setRURI},
		{Name: "ruri", Writable: true, Get: getRURI, Set: setRURI},
		{Name: "rU", Writable: true, Get: ruriGetter(uriUser), Set: setRURIUser},
		{Name: "ruri.user", Writable: true, Get: ruriGetter(uriUser), Set: setRURIUser},
		{Name: "rd", Writable: true, Get: ruriGetter(uriHost), Set: setRURIHost},
		{Name: "ruri.domain", Writable: true, Get: ruriGetter(uriHost), Set: setRURIHost},
		{Name: "rp", Writable: true, Get: ruriGetter(uriPort), Set: setRURIPort},
		{Name: "rP", Get: ruriGetter(uriProto)},
		{Name: "ru_q", Writable: true, Get: getRUQ, Set: setRUQ},
		{Name: "ou", Get: getOURI},
		{Name: "ouri", Get: getOURI},
		{Name: "oU", Get: ouriGetter(uriUser)},
		{Name: "od", Get: ouriGetter(uriHost)},
		{Name: "op", Get: ouriGetter(uriPort)},
		{Name: "oP", Get: ouriGetter(uriProto)},
		{Name: "du", Writable: true, Get: getDU, Set: setDU},
		{Name: "duri", Writable: true, Get: getDU, Set: setDU},
		{Name: "dd", Writable: true, Get: duGetter(uriHost), Set: setDD},
		{Name: "dp", Writable: true, Get: duGetter(uriPort), Set: setDP},
		{Name: "dP", Get: duGetter(uriProto)},

		{Name: "fu", Get: ftGetter(fromHdr, ftURI)},
		{Name: "from", Get: ftGetter(fromHdr, ftURI)},
		{Name: "fU", Get: ftGetter(fromHdr, ftUser)},
		{Name: "from.user", Get: ftGetter(fromHdr, ftUser)},
		{Name: "fd", Get: ftGetter(fromHdr, ftHost)},
		{Name: "from.domain", Get: ftGetter(fromHdr, ftHost)},
		{Name: "fn", Get: ftGetter(fromHdr, ftName)},
		{Name: "ft", Get: ftGetter(fromHdr, ftTag)},
		{Name: "tu", Get: ftGetter(toHdr, ftURI)},
		{Name: "to", Get: ftGetter(toHdr, ftURI)},
		{Name: "tU", Get: ftGetter(toHdr, ftUser)},
		{Name: "to.user", Get: ftGetter(toHdr, ftUser)},
		{Name: "td", Get: ftGetter(toHdr, ftHost)},
		{Name: "to.domain", Get: ftGetter(toHdr, ftHost)},
		{Name: "tn", Get: ftGetter(toHdr, ftName)},
		{Name: "tt", Get: ftGetter(toHdr, ftTag)},

		{Name: "hdr", Arg: NeedArg, Fix: fixHdr, Get: getHdr},
		{Name: "hdrcnt", Arg: NeedArg, Fix: fixHdr, Get: getHdrCnt},
		{Name: "hdr_name", Get: getHdrName},
		{Name: "ua", Get: plainHeader("User-Agent")},
		{Name: "cT", Get: plainHeader("Content-Type")},
		{Name: "ai", Get: naGetter(hPAI, "uri")},
		{Name: "pu", Get: naGetter(hPPI, "uri")},
		{Name: "pU", Get: naGetter(hPPI, "user")},
		{Name: "pd", Get: naGetter(hPPI, "host")},
		{Name: "pn", Get: naGetter(hPPI, "name")},
		{Name: "re", Get: naGetter(hRPID, "uri")},
		{Name: "rt", Get: naGetter(hReferTo, "uri")},
		{Name: "di", Get: naGetter(hDiversion, "uri")},
		{Name: "dir", Get: naGetter(hDiversion, "reason")},
		{Name: "dip", Get: naGetter(hDiversion, "privacy")},
		{Name: "ct", Get: getContact},
		{Name: "ct.fields", Arg: NeedArg, Fix: fixCtField, Get: getContact},

		{Name: "rm", Get: getMethod},
		{Name: "rs", Get: getStatus},
		{Name: "rr", Get: getReason},
		{Name: "ci", Get: getCallID},
		{Name: "cs", Get: getCSeq},
		{Name: "cl", Get: getCL},
		{Name: "rb", Get: getBody},
		{Name: "mb", Get: getMsgBuf},
		{Name: "ml", Get: getMsgLen},

		{Name: "si", Get: getSrcIP},
		{Name: "src_ip", Get: getSrcIP},
		{Name: "sp", Get: getSrcPort},
		{Name: "Ri", Get: getRcvIP},
		{Name: "Rp", Get: getRcvPort},
		{Name: "pr", Get: getProto},
		{Name: "proto", Get: getProto},
		{Name: "socket_in", Arg: OptionalArg, Fix: fixSocketField, Get: getSocketIn},
	} {
		Register(s)
	}
}
