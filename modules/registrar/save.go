package registrar

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/modules/usrloc"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

type saveFlags struct {
	memOnly, noReply, force bool
	maxContacts             int // -1: the modparam
	minExpires, maxExpires  int // -1: the modparams
	pathMode                int // -1: no Path support, else 0 off, 1 lazy, 2 strict
	pathReceived            bool
}

func parseSaveFlags(s string) (*saveFlags, error) {
	f := &saveFlags{maxContacts: -1, minExpires: -1, maxExpires: -1, pathMode: -1}
	num := func(i int) (int, int, error) {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i+1 {
			return 0, i, fmt.Errorf("save flag %q needs a number", s[i])
		}
		n, err := strconv.Atoi(s[i+1 : j])
		return n, j - 1, err
	}
	for i := 0; i < len(s); i++ {
		var err error
		switch s[i] {
		case 'm':
			f.memOnly = true
		case 'r':
			f.noReply = true
		case 'f':
			f.force = true
		case 'v':
			f.pathReceived = true
		case 'c':
			f.maxContacts, i, err = num(i)
		case 'e':
			f.minExpires, i, err = num(i)
		case 'E':
			f.maxExpires, i, err = num(i)
		case 'p':
			if i+1 >= len(s) || s[i+1] < '0' || s[i+1] > '2' {
				return nil, errors.New("save flag 'p' wants a mode: p0, p1 or p2")
			}
			f.pathMode = int(s[i+1] - '0')
			i++
		case 's':
			return nil, errors.New("save flag 's' (socket header) is not supported yet")
		case ' ':
		default:
			return nil, fmt.Errorf("unknown save flag %q (want m, r, f, cN, eN, EN, p0/p1/p2, v)", s[i])
		}
		if err != nil {
			return nil, err
		}
	}
	return f, nil
}

// regError is a registrar failure: its reply code and the
// P-Registrar-Error text OpenSIPS sends with it.
type regError struct {
	code int
	info string
}

func (e *regError) Error() string { return fmt.Sprintf("%d %s", e.code, e.info) }

func rerr(code int, info string) *regError { return &regError{code, info} }

var reasons = map[int]string{200: "OK", 400: "Bad Request", 420: "Bad Extension", 500: "Server Internal Error", 503: "Service Unavailable"}

// wanted is one Contact of the REGISTER, ready to store.
type wanted struct {
	c       usrloc.Contact
	expires int // seconds; 0 removes
}

// callSave is save(domain[, flags[, aor[, ownership_tag]]]).
func callSave(m *msgctx.Msg, a *modules.Args) int {
	if m.Req == nil {
		logf(m, msgctx.LErr, "save: sipedge saves from requests only")
		return -1
	}
	f, _ := a.Fix.(*saveFlags)
	if f == nil {
		var err error
		if f, err = parseSaveFlags(a.Str(1)); err != nil {
			logf(m, msgctx.LErr, "save: %v", err)
			return -1
		}
	}
	bindings, err := save(m, a, f)
	var re *regError
	if err != nil && !errors.As(err, &re) {
		logf(m, msgctx.LErr, "save: %v", err)
		re = rerr(500, "usrloc_record_insert failed")
	}
	if f.noReply {
		if re != nil {
			return -1
		}
		return 1
	}
	cfg := cur.Load()
	var hdrs []sip.Header
	code := 200
	if re != nil {
		code = re.code
		hdrs = append(hdrs, sip.NewHeader("P-Registrar-Error", re.info))
		if code >= 500 && cfg.retryAfter > 0 {
			hdrs = append(hdrs, sip.NewHeader("Retry-After", strconv.Itoa(cfg.retryAfter)))
		}
		if code == 420 {
			hdrs = append(hdrs, sip.NewHeader("Unsupported", "path"))
			if p := pathOf(m.Req); p != "" {
				hdrs = append(hdrs, sip.NewHeader("Path", p))
			}
		}
	} else {
		if v := contactList(bindings, cfg); v != "" {
			hdrs = append(hdrs, sip.NewHeader("Contact", v))
		}
		if f.pathMode > 0 && supportsPath(m.Req) {
			if p := pathOf(m.Req); p != "" {
				hdrs = append(hdrs, sip.NewHeader("Path", p))
			}
		}
	}
	if err := sendReply(m, code, reasons[code], hdrs...); err != nil {
		logf(m, msgctx.LErr, "save: sending %d failed: %v", code, err)
		return -1
	}
	if re != nil {
		return -1
	}
	return 1
}

// contactList renders the bindings as OpenSIPS's 200 OK Contact header:
// <uri>;q=…;expires=…;received="…", comma-separated.
func contactList(cs []usrloc.Contact, cfg *config) string {
	now := clock()
	var b strings.Builder
	for _, c := range cs {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('<')
		b.WriteString(c.URI)
		b.WriteByte('>')
		if c.Q >= 0 {
			b.WriteString(";q=")
			b.WriteString(qString(c.Q))
		}
		b.WriteString(";expires=")
		if c.Expires == 0 {
			b.WriteString("0")
		} else {
			b.WriteString(strconv.FormatInt(c.Expires-now, 10))
		}
		if c.Received != "" {
			b.WriteString(";" + cfg.receivedParam + "=\"" + c.Received + "\"")
		}
	}
	return b.String()
}

func qString(q int) string {
	switch {
	case q >= 1000:
		return "1"
	case q <= 0:
		return "0"
	}
	s := strconv.Itoa(q + 1000)[1:]
	return "0." + strings.TrimRight(s, "0")
}

func parseQ(s string) (int, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f < 0 || f > 1 || math.IsNaN(f) {
		return 0, false
	}
	return int(math.Round(f * 1000)), true
}

func pathOf(req *sip.Request) string {
	var parts []string
	for _, h := range req.GetHeaders("Path") {
		parts = append(parts, h.Value())
	}
	return strings.Join(parts, ",")
}

func supportsPath(req *sip.Request) bool {
	for _, h := range req.GetHeaders("Supported") {
		for _, o := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(o), "path") {
				return true
			}
		}
	}
	return false
}

// received is what the received column keeps for a contact (save_received).
func received(m *msgctx.Msg, contact *sip.Uri, cfg *config) string {
	if cfg.saveReceived == 0 || m.Src.IP == "" {
		return ""
	}
	port := contact.Port
	if port == 0 {
		port = 5060
		if strings.EqualFold(contact.Scheme, "sips") {
			port = 5061
		}
	}
	if cfg.saveReceived == 1 && sameIP(contact.Host, m.Src.IP) && port == m.Src.Port {
		return ""
	}
	host := m.Src.IP
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	r := "sip:" + host + ":" + strconv.Itoa(m.Src.Port)
	if p := strings.ToLower(m.Src.Proto); p != "" && p != "udp" {
		r += ";transport=" + p
	}
	return r
}

func sameIP(a, b string) bool {
	a, b = strings.Trim(a, "[]"), strings.Trim(b, "[]")
	ia, ib := net.ParseIP(a), net.ParseIP(b)
	if ia != nil && ib != nil {
		return ia.Equal(ib)
	}
	return strings.EqualFold(a, b)
}

func save(m *msgctx.Msg, a *modules.Args, f *saveFlags) ([]usrloc.Contact, error) {
	cfg := cur.Load()
	req := m.Req
	var aor string
	var err error
	if a.Has(2) && a.Str(2) != "" {
		if aor, err = aorFromString(a.Str(2)); err != nil {
			return nil, rerr(400, "Error while parsing AOR")
		}
	} else {
		to := req.To()
		if to == nil {
			return nil, rerr(400, "To header not found")
		}
		if to.Address.User == "" {
			return nil, rerr(400, "No username in To URI")
		}
		if aor, err = aorOf(&to.Address); err != nil {
			return nil, rerr(400, "Error while parsing AOR")
		}
	}
	callID := req.CallID()
	if callID == nil {
		return nil, rerr(400, "Call-ID header not found")
	}
	cseqH := req.CSeq()
	if cseqH == nil {
		return nil, rerr(400, "CSeq header not found")
	}
	cseq := int(cseqH.SeqNo)
	hdrExpires := -1
	if h := req.GetHeader("Expires"); h != nil {
		n, err := strconv.Atoi(strings.TrimSpace(h.Value()))
		if err != nil || n < 0 {
			return nil, rerr(400, "Expires parse error")
		}
		hdrExpires = n
	}
	var contacts []*sip.ContactHeader
	star := false
	for _, h := range req.GetHeaders("Contact") {
		ch, ok := h.(*sip.ContactHeader)
		if !ok {
			return nil, rerr(400, "Contact parse error")
		}
		if ch.Address.Wildcard {
			star = true
		}
		contacts = append(contacts, ch)
	}
	path := ""
	if f.pathMode >= 0 {
		path = pathOf(req)
		if path != "" && f.pathMode == 2 && !supportsPath(req) {
			return nil, rerr(420, "No support for found Path indicated")
		}
	}
	domain := usrloc.GetDomain(a.Str(0))
	if star {
		if len(contacts) > 1 {
			return nil, rerr(400, "* used in contact and more than 1 contact")
		}
		if hdrExpires != 0 {
			return nil, rerr(400, "* used in contact and expires is not zero")
		}
		return answered(domain, aor)(domain.Update(aor, f.memOnly, func(cur []usrloc.Contact) ([]usrloc.Contact, error) {
			for _, c := range cur {
				if c.CallID == callID.Value() && cseq <= c.CSeq {
					return nil, rerr(200, "Out of order request")
				}
			}
			return nil, nil
		}))
	}
	if len(contacts) == 0 {
		return domain.Lookup(aor) // a query: answer with the bindings
	}

	minExp, maxExp, maxContacts := cfg.minExpires, cfg.maxExpires, cfg.maxContacts
	if f.minExpires >= 0 {
		minExp = f.minExpires
	}
	if f.maxExpires >= 0 {
		maxExp = f.maxExpires
	}
	if f.maxContacts >= 0 {
		maxContacts = f.maxContacts
	}
	now := clock()
	ua := ""
	if h := req.GetHeader("User-Agent"); h != nil {
		ua = h.Value()
	}
	methods := allowedMethods(req)
	socket := ""
	if m.Local.IP != "" {
		socket = strings.ToLower(m.Local.Proto) + ":" + m.Local.IP + ":" + strconv.Itoa(m.Local.Port)
	}
	var want []wanted
	for _, ch := range contacts {
		exp := hdrExpires
		if v, ok := ch.Params.Get("expires"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 0 {
				return nil, rerr(400, "Invalid expires param in contact")
			}
			exp = n
		}
		if exp < 0 {
			exp = cfg.defaultExpires
		}
		if exp > 0 {
			if minExp > 0 && exp < minExp {
				exp = minExp
			}
			if maxExp > 0 && exp > maxExp {
				exp = maxExp
			}
		}
		q := cfg.defaultQ
		if v, ok := ch.Params.Get("q"); ok {
			n, ok := parseQ(v)
			if !ok {
				return nil, rerr(400, "Invalid q param in contact")
			}
			q = n
		}
		inst, _ := ch.Params.Get("+sip.instance")
		rcv := received(m, &ch.Address, cfg)
		if f.pathReceived && path != "" {
			var pu sip.Uri
			if sip.ParseUri(firstPathURI(path), &pu) == nil {
				if r, ok := pu.UriParams.Get("received"); ok {
					rcv = strings.Trim(r, `"`)
				}
			}
		}
		want = append(want, wanted{expires: exp, c: usrloc.Contact{
			URI: ch.Address.String(), Received: rcv, Path: path, Q: q, CallID: callID.Value(), CSeq: cseq,
			LastModified: now, UserAgent: ua, Socket: socket, Methods: methods, Instance: strings.Trim(inst, `"`),
		}})
		if exp > 0 {
			want[len(want)-1].c.Expires = now + int64(exp)
		}
	}
	matchCallID := usrloc.MatchCallID()
	return answered(domain, aor)(domain.Update(aor, f.memOnly, func(cur []usrloc.Contact) ([]usrloc.Contact, error) {
		for _, w := range want {
			idx := -1
			for i := range cur {
				if cur[i].URI == w.c.URI && (!matchCallID || cur[i].CallID == w.c.CallID) {
					idx = i
					break
				}
			}
			if idx < 0 {
				if w.expires > 0 {
					cur = append(cur, w.c)
				}
				continue
			}
			old := &cur[idx]
			if old.CallID == w.c.CallID {
				if w.c.CSeq < old.CSeq {
					return nil, rerr(200, "Out of order request")
				}
				if w.c.CSeq == old.CSeq {
					return nil, rerr(200, "Retransmission")
				}
			}
			if w.expires == 0 {
				cur = append(cur[:idx], cur[idx+1:]...)
				continue
			}
			nc := w.c
			nc.Attr = old.Attr
			usrloc.Keep(old, &nc)
			cur[idx] = nc
		}
		if maxContacts > 0 && len(cur) > maxContacts {
			if !f.force {
				return nil, rerr(503, "Too many registered contacts")
			}
			// Drop the oldest to make room.
			for len(cur) > maxContacts {
				oldest := 0
				for i := range cur {
					if cur[i].LastModified < cur[oldest].LastModified {
						oldest = i
					}
				}
				cur = append(cur[:oldest], cur[oldest+1:]...)
			}
		}
		return cur, nil
	}))
}

// answered turns an out-of-order or retransmitted REGISTER (which changes
// nothing) into a 200 with the current bindings, as OpenSIPS answers them.
func answered(d *usrloc.Domain, aor string) func([]usrloc.Contact, error) ([]usrloc.Contact, error) {
	return func(cs []usrloc.Contact, err error) ([]usrloc.Contact, error) {
		var re *regError
		if errors.As(err, &re) && re.code == 200 {
			return d.Lookup(aor)
		}
		return cs, err
	}
}

// clock is the time source; tests replace it.
var clock = usrloc.Now
