package drouting

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

// do_routing flags.
const (
	flagFallback = 1 << iota // F
	flagStrict               // L
	flagCheck                // C
	flagWeight               // W (deprecated: sort the rule's list by weight)
)

func parseRoutingFlags(s string) (int, error) {
	f := 0
	for _, c := range s {
		switch c {
		case 'F':
			f |= flagFallback
		case 'L':
			f |= flagStrict
		case 'C':
			f |= flagCheck
		case 'W':
			f |= flagWeight
		case ' ':
		default:
			return 0, fmt.Errorf("unknown flag %q (F, L, C, W)", c)
		}
	}
	return f, nil
}

// cand is one destination ready for use: a gateway (of a carrier or not)
// and the R-URI it makes.
type cand struct {
	gw  *gateway
	cr  *carrier
	uri sip.Uri
}

// state is a call's routing, kept in the message's module data so
// use_next_gw in the failure_route sees what do_routing prepared.
type state struct {
	mu      sync.Mutex
	d       *data
	rule    *rule // nil for route_to_gw / route_to_carrier
	current *cand
	pending []cand
	// rule fallback (F)
	fallback  bool
	flags     int
	grp       int
	number    string // what is left to search
	idx       int    // the next rule under number's longest prefix
	orig      sip.Uri
	whitelist map[any]bool
}

func stateOf(m *msgctx.Msg) *state {
	s, _ := m.Mod[Name].(*state)
	return s
}

// findRule is OpenSIPS's prefix tree search: walk down the number while
// the tree has nodes (every character must be a valid prefix character),
// then back up, taking at each prefix the first rule of the group (from
// index idx at the deepest one) whose time recurrence covers now. It
// returns the rule, the length of the prefix it matched and the index of
// the next rule under that prefix (0: none left).
func (d *data) findRule(t tables, number string, grp, idx int, now time.Time) (*rule, int, int) {
	if number == "" {
		return nil, 0, 0
	}
	i := 0
	for {
		if !t.validPrefixChar(number[i]) {
			return nil, 0, 0
		}
		if i == len(number)-1 || !d.interior[number[:i+1]] {
			break
		}
		i++
	}
	for ; i >= 0; i-- {
		list := d.rules[number[:i+1]][grp]
		for j := idx; j < len(list); j++ {
			if list[j].tr == nil || list[j].tr.Match(now) {
				next := j + 1
				if next >= len(list) {
					next = 0
				}
				return list[j], i + 1, next
			}
		}
		idx = 0
	}
	return nil, 0, 0
}

// prefixless is the first rule without a prefix for the group.
func (d *data) prefixless(grp int, now time.Time) *rule {
	for _, r := range d.rules[""][grp] {
		if r.tr == nil || r.tr.Match(now) {
			return r
		}
	}
	return nil
}

// weightOrder is OpenSIPS's weight-based ordering: repeatedly pick an
// element at random, proportionally to its weight, among those left.
func weightOrder(weights []int) []int {
	idx := make([]int, len(weights))
	for i := range idx {
		idx[i] = i
	}
	for first := 0; len(idx)-first > 1; first++ {
		sum := 0
		for _, k := range idx[first:] {
			sum += weights[k]
		}
		sel := first
		if sum > 0 {
			r := rand.IntN(sum)
			acc := 0
			for i := first; i < len(idx); i++ {
				acc += weights[idx[i]]
				if acc > r {
					sel = i
					break
				}
			}
		}
		idx[first], idx[sel] = idx[sel], idx[first]
	}
	return idx
}

func destOrder(ds []dest, weighted bool) []int {
	if !weighted {
		out := make([]int, len(ds))
		for i := range out {
			out[i] = i
		}
		return out
	}
	w := make([]int, len(ds))
	for i, d := range ds {
		w[i] = d.weight
	}
	return weightOrder(w)
}

// expand turns a destination list into the gateways to try, in order:
// carriers expand to their gateways (in their own order), disabled
// gateways and carriers and those outside the whitelist are left out.
func expand(ds []dest, weighted bool, wl map[any]bool, orig *sip.Uri) []cand {
	var out []cand
	for _, i := range destOrder(ds, weighted) {
		d := ds[i]
		if d.carrier != nil {
			c := d.carrier
			if c.off.Load() || (wl != nil && !wl[c]) {
				continue
			}
			for _, k := range destOrder(c.dests, c.weightAlg) {
				g := c.dests[k].gw
				if !g.enabled() {
					continue
				}
				out = append(out, cand{gw: g, cr: c, uri: buildURI(orig, g)})
				if c.firstOnly {
					break
				}
			}
			continue
		}
		if !d.gw.enabled() || (wl != nil && !wl[d.gw]) {
			continue
		}
		out = append(out, cand{gw: d.gw, uri: buildURI(orig, d.gw)})
	}
	return out
}

// buildURI is the R-URI for a gateway: sip:, the gateway's prefix, the
// user with the gateway's strip applied, the gateway's host and port (and
// URI parameters), and the original URI's parameters and headers.
func buildURI(orig *sip.Uri, g *gateway) sip.Uri {
	u := *orig.Clone()
	u.Scheme = "sip"
	user := u.User
	strip := g.strip
	if strip > len(user) {
		strip = len(user)
	}
	if strip < 0 {
		strip = 0
	}
	u.User = g.pri + user[strip:]
	if u.User == "" {
		u.Password = ""
	}
	var gu sip.Uri
	if err := sip.ParseUri("sip:"+g.hostport, &gu); err == nil {
		u.Host, u.Port = gu.Host, gu.Port
		for _, kv := range gu.UriParams {
			u.UriParams.Add(kv.K, kv.V)
		}
	} else {
		u.Host, u.Port = g.host, g.port
	}
	return u
}

// parseWhitelist reads a gw_whitelist: gateway ids and #carrier ids.
func (d *data) parseWhitelist(s string) map[any]bool {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	wl := map[any]bool{}
	for _, tok := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' }) {
		tok = strings.TrimSpace(tok)
		if i := strings.IndexByte(tok, '='); i >= 0 {
			tok = tok[:i]
		}
		if strings.HasPrefix(tok, "#") {
			if c := d.carriers[tok[1:]]; c != nil {
				wl[c] = true
			}
		} else if g := d.gws[tok]; g != nil {
			wl[g] = true
		}
	}
	return wl
}

// ---- AVPs the script reads (modparams gw_id_avp …) ----

// avpSlots are the AVP slots of the configured AVPs in the script being
// compiled (-1: not configured or not used by the script).
type avpSlots struct {
	gwID, priPrefix, ruleID, rulePrefix, carrierID int
}

func setAVP(m *msgctx.Msg, slot int, vals ...value.Value) {
	if slot < 0 || slot >= len(m.AVPs) {
		return
	}
	m.AVPs[slot] = append(m.AVPs[slot][:0], vals...)
}

// exportDest writes the current destination's AVPs: the ids of the
// current and pending gateways (current first), its prefix and carrier.
func (s *state) export(m *msgctx.Msg, av avpSlots) {
	if s.current == nil {
		return
	}
	ids := []value.Value{value.S(s.current.gw.id)}
	for _, p := range s.pending {
		ids = append(ids, value.S(p.gw.id))
	}
	setAVP(m, av.gwID, ids...)
	setAVP(m, av.priPrefix, value.S(s.current.gw.pri))
	cr := ""
	if s.current.cr != nil {
		cr = s.current.cr.id
	}
	setAVP(m, av.carrierID, value.S(cr))
}

// pointAt makes a candidate the message's destination: its R-URI.
func pointAt(m *msgctx.Msg, c *cand) {
	pvar.SaveOriginalURI(m)
	m.Req.Recipient = *c.uri.Clone()
}

func setRef(m *msgctx.Msg, r *pvar.Ref, v string) {
	if r == nil {
		return
	}
	if err := r.Set(m, "=", value.S(v)); err != nil && m.Host != nil {
		m.Host.Log(m, msgctx.LErr, Name+": cannot set "+r.Text+": "+err.Error())
	}
}

// attrRefs are the optional attribute outputs of a call.
type attrRefs struct {
	rule, gw, carrier *pvar.Ref
}

func (a attrRefs) setDest(m *msgctx.Msg, c *cand) {
	setRef(m, a.gw, c.gw.attrs)
	cr := ""
	if c.cr != nil {
		cr = c.cr.attrs
	}
	setRef(m, a.carrier, cr)
}

// route runs the rule search and prepares the destinations; it returns 1
// or -1 as do_routing does.
func (s *state) route(m *msgctx.Msg, cfg *config, av avpSlots, refs attrRefs, internal bool) int {
	d, now := s.d, clock()
	number, idx := s.number, s.idx
	if internal && number == "" && idx == 0 {
		return -1
	}
	var r *rule
	for {
		var plen, next int
		r, plen, next = d.findRule(cfg.tables, number, s.grp, idx, now)
		if s.flags&flagStrict != 0 && (r == nil || plen != len(number)) {
			return -1
		}
		if r == nil {
			if r = d.prefixless(s.grp, now); r == nil {
				return -1
			}
			plen, next = 0, 0
		}
		if s.flags&flagCheck != 0 {
			s.rule = r
			break
		}
		if plen == 0 && next == 0 {
			s.fallback = false
		}
		// where a fallback resumes: the next rule under this prefix, or
		// the prefix one character shorter
		if next != 0 {
			number, idx = number[:plen], next
		} else if plen > 0 {
			number, idx = number[:plen-1], 0
		} else {
			number, idx = "", 0
		}
		cands := expand(r.dests, r.weightAlg || s.flags&flagWeight != 0, s.whitelist, &s.orig)
		if len(cands) == 0 {
			if s.fallback && (number != "" || idx != 0) {
				continue
			}
			return -1
		}
		s.rule = r
		s.current, s.pending = &cands[0], cands[1:]
		s.number, s.idx = number, idx
		pointAt(m, s.current)
		s.export(m, av)
		refs.setDest(m, s.current)
		break
	}
	setAVP(m, av.ruleID, value.I(r.id))
	setAVP(m, av.rulePrefix, value.S(r.prefix))
	setRef(m, refs.rule, r.attrs)
	return 1
}

// next moves to the next pending destination that is still enabled; at the
// end of the list it falls back to the next rule when allowed.
func (s *state) next(m *msgctx.Msg, cfg *config, av avpSlots, refs attrRefs) int {
	for len(s.pending) > 0 {
		c := s.pending[0]
		s.pending = s.pending[1:]
		if !c.gw.enabled() {
			continue
		}
		s.current = &c
		pointAt(m, s.current)
		s.export(m, av)
		refs.setDest(m, s.current)
		if s.rule != nil {
			setRef(m, refs.rule, s.rule.attrs)
		}
		return 1
	}
	if !s.fallback {
		return -1
	}
	if rc := s.route(m, cfg, av, refs, true); rc == 1 {
		return 1
	}
	s.fallback = false
	return -1
}

// groupOf finds the caller's routing group from the From URI.
func (d *data) groupOf(m *msgctx.Msg, cfg *config) (int, bool) {
	if m.Req == nil || m.Req.From() == nil {
		return 0, false
	}
	u := m.Req.From().Address
	key := u.User
	if cfg.tables.useDomain {
		key += "@" + strings.ToLower(u.Host)
	}
	if g, ok := d.groups[key]; ok {
		return g, true
	}
	if cfg.defaultGroup >= 0 {
		return cfg.defaultGroup, true
	}
	return 0, false
}

// findGW finds the gateway at ip:port (port 0: any) of type typ (-1: any).
func (d *data) findGW(ip net.IP, port, typ int) *gateway {
	if ip == nil {
		return nil
	}
	for _, g := range d.gwOrder {
		if (typ < 0 || g.typ == typ) && g.matches(ip, port) {
			return g
		}
	}
	return nil
}
