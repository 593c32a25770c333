package drouting

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/modules/drouting/timerec"
	"github.com/sipedge/sipedge/runtime/store"
)

// Gateway states (dr_gateways.state and dr_gw_status).
const (
	StateActive     = 0 // in use
	StateInactive   = 1 // disabled (dr_disable, or the state column)
	StateProbing    = 2 // disabled until probing sees it answer (no probing here)
	StateDisabledMI = 3 // disabled by MI; only MI enables it again
)

var stateNames = [...]string{"Active", "Inactive", "Probing", "Disabled MI"}

// gateway is one dr_gateways row.
type gateway struct {
	id       string
	typ      int
	address  string // as in the table
	hostport string // what replaces the R-URI host part ("host:port;params")
	host     string
	port     int // 0: not given (matches any port)
	ips      []net.IP
	strip    int
	pri      string
	attrs    string
	probe    int
	socket   string
	state    atomic.Int32
	carriers []*carrier // carriers listing this gateway (for the 'c' flag)
}

func (g *gateway) enabled() bool { return g.state.Load() == StateActive }

// dest is one entry of a gateway list: a gateway or a carrier, with a weight.
type dest struct {
	gw      *gateway
	carrier *carrier
	weight  int
}

// carrier is one dr_carriers row.
type carrier struct {
	id        string
	dests     []dest // gateways only
	weightAlg bool   // sort_alg W (or 2.x flag 0x1)
	firstOnly bool   // flags 0x2
	attrs     string
	off       atomic.Bool
}

// rule is one dr_rules row.
type rule struct {
	id        int
	groups    []int
	prefix    string
	tr        *timerec.Rec
	priority  int
	routeID   string
	dests     []dest
	weightAlg bool
	attrs     string
	idx       int // load order
}

// ruleList is the rules of one prefix for one group, best first.
type ruleList []*rule

// data is everything loaded from the tables; a reload swaps it whole
// (gateway and carrier states are carried over by id).
type data struct {
	gws      map[string]*gateway
	gwOrder  []*gateway
	carriers map[string]*carrier
	crOrder  []*carrier
	// rules by prefix, then group; prefix "" holds the prefixless rules
	rules map[string]map[int]ruleList
	// interior holds every proper prefix of a rule prefix: the nodes a
	// prefix tree would have below them
	interior map[string]bool
	groups   map[string]int // "user@domain" (or "user" without use_domain)
	loaded   time.Time
	nrules   int
}

type tables struct {
	gw, rules, carriers, groups string
	userCol, domainCol, grpCol  string
	useDomain                   bool
	prefixChars                 string // extra_prefix_chars
	forceDNS                    bool
}

func (t tables) validPrefixChar(c byte) bool {
	return (c >= '0' && c <= '9') || (c < 128 && strings.IndexByte(t.prefixChars, c) >= 0)
}

// load reads the four tables. Bad rows are skipped with a warning, as
// OpenSIPS does; old is the data being replaced (gateway and carrier
// states are kept by id), nil at first load.
func load(ctx context.Context, db *store.DB, t tables, old *data, warn func(string)) (*data, error) {
	d := &data{gws: map[string]*gateway{}, carriers: map[string]*carrier{}, rules: map[string]map[int]ruleList{},
		interior: map[string]bool{}, groups: map[string]int{}, loaded: time.Now()}

	// gateways
	rows, err := db.Query(ctx, "SELECT gwid, type, address, strip, pri_prefix, attrs, probe_mode, state, socket FROM "+t.gw)
	if err != nil {
		return nil, fmt.Errorf("%s: loading %s: %w", db.Path, t.gw, err)
	}
	for rows.Next() {
		var id, addr string
		var typ, strip, probe, state int
		var pri, attrs, sock sql.NullString
		if err := rows.Scan(&id, &typ, &addr, &strip, &pri, &attrs, &probe, &state, &sock); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%s: reading %s: %w", db.Path, t.gw, err)
		}
		if _, dup := d.gws[id]; dup {
			warn(fmt.Sprintf("%s: duplicate gateway %q skipped", t.gw, id))
			continue
		}
		g := &gateway{id: id, typ: typ, address: addr, strip: strip, pri: pri.String, attrs: attrs.String,
			probe: probe, socket: sock.String}
		if err := g.parseAddress(ctx, t.forceDNS); err != nil {
			warn(fmt.Sprintf("%s: gateway %q skipped: %v", t.gw, id, err))
			continue
		}
		if state < StateActive || state > StateProbing {
			state = StateActive
		}
		g.state.Store(int32(state))
		if old != nil {
			if og := old.gws[id]; og != nil {
				g.state.Store(og.state.Load())
			}
		}
		d.gws[id] = g
		d.gwOrder = append(d.gwOrder, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}

	// carriers
	rows, err = db.Query(ctx, "SELECT carrierid, gwlist, flags, sort_alg, state, attrs FROM "+t.carriers)
	if err != nil {
		return nil, fmt.Errorf("%s: loading %s: %w", db.Path, t.carriers, err)
	}
	for rows.Next() {
		var id, list string
		var flags, state int
		var alg, attrs sql.NullString
		if err := rows.Scan(&id, &list, &flags, &alg, &state, &attrs); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%s: reading %s: %w", db.Path, t.carriers, err)
		}
		c := &carrier{id: id, attrs: attrs.String, firstOnly: flags&0x2 != 0,
			weightAlg: strings.EqualFold(alg.String, "W") || flags&0x1 != 0}
		c.off.Store(state != 0 || flags&0x4 != 0)
		if old != nil {
			if oc := old.carriers[id]; oc != nil {
				c.off.Store(oc.off.Load())
			}
		}
		if strings.EqualFold(alg.String, "Q") {
			warn(fmt.Sprintf("%s: carrier %q: sort_alg Q (qrouting) is not supported, using the list order", t.carriers, id))
		}
		dests, err := d.parseList(list, false)
		if err != nil {
			warn(fmt.Sprintf("%s: carrier %q skipped: %v", t.carriers, id, err))
			continue
		}
		c.dests = dests
		for _, ds := range dests {
			ds.gw.carriers = append(ds.gw.carriers, c)
		}
		d.carriers[id] = c
		d.crOrder = append(d.crOrder, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}

	// rules
	rows, err = db.Query(ctx, "SELECT ruleid, groupid, prefix, timerec, priority, routeid, gwlist, sort_alg, attrs FROM "+t.rules)
	if err != nil {
		return nil, fmt.Errorf("%s: loading %s: %w", db.Path, t.rules, err)
	}
	n := 0
	for rows.Next() {
		var id, prio int
		var groups, prefix string
		var tr, route, list, alg, attrs sql.NullString
		if err := rows.Scan(&id, &groups, &prefix, &tr, &prio, &route, &list, &alg, &attrs); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%s: reading %s: %w", db.Path, t.rules, err)
		}
		r := &rule{id: id, prefix: prefix, priority: prio, routeID: route.String, attrs: attrs.String,
			weightAlg: strings.EqualFold(alg.String, "W"), idx: n}
		n++
		if err := d.fillRule(r, groups, tr.String, list.String, t); err != nil {
			warn(fmt.Sprintf("%s: rule %d skipped: %v", t.rules, id, err))
			continue
		}
		if strings.EqualFold(alg.String, "Q") {
			warn(fmt.Sprintf("%s: rule %d: sort_alg Q (qrouting) is not supported, using the list order", t.rules, id))
		}
		if r.routeID != "" {
			warn(fmt.Sprintf("%s: rule %d: routeid %q is ignored (sipedge does not run routes from drouting)", t.rules, id, r.routeID))
		}
		byGrp := d.rules[prefix]
		if byGrp == nil {
			byGrp = map[int]ruleList{}
			d.rules[prefix] = byGrp
		}
		for _, g := range r.groups {
			byGrp[g] = append(byGrp[g], r)
		}
		for k := 1; k < len(prefix); k++ {
			d.interior[prefix[:k]] = true
		}
		d.nrules++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, byGrp := range d.rules {
		for _, l := range byGrp {
			sort.SliceStable(l, func(i, j int) bool {
				if l[i].priority != l[j].priority {
					return l[i].priority > l[j].priority
				}
				return l[i].idx < l[j].idx
			})
		}
	}

	// groups
	cols := t.userCol + ", " + t.grpCol
	if t.useDomain {
		cols += ", " + t.domainCol
	}
	rows, err = db.Query(ctx, "SELECT "+cols+" FROM "+t.groups)
	if err != nil {
		return nil, fmt.Errorf("%s: loading %s: %w", db.Path, t.groups, err)
	}
	for rows.Next() {
		var user string
		var grp int
		var domain sql.NullString
		dst := []any{&user, &grp}
		if t.useDomain {
			dst = append(dst, &domain)
		}
		if err := rows.Scan(dst...); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%s: reading %s: %w", db.Path, t.groups, err)
		}
		key := user
		if t.useDomain {
			key += "@" + strings.ToLower(domain.String)
		}
		if _, ok := d.groups[key]; !ok {
			d.groups[key] = grp
		}
	}
	rows.Close()
	return d, rows.Err()
}

func (d *data) fillRule(r *rule, groups, tr, list string, t tables) error {
	for _, c := range []byte(r.prefix) {
		if !t.validPrefixChar(c) {
			return fmt.Errorf("%q is not a valid character in prefix %q", c, r.prefix)
		}
	}
	for _, g := range strings.Split(groups, ",") {
		g = strings.TrimSpace(g)
		if g == "" {
			continue
		}
		n, err := strconv.Atoi(g)
		if err != nil {
			return fmt.Errorf("bad group %q", g)
		}
		r.groups = append(r.groups, n)
	}
	if len(r.groups) == 0 {
		return fmt.Errorf("no group")
	}
	if strings.TrimSpace(tr) != "" {
		rec, err := timerec.Parse(tr)
		if err != nil {
			return fmt.Errorf("timerec: %v", err)
		}
		r.tr = rec
	}
	dests, err := d.parseList(list, true)
	if err != nil {
		return err
	}
	r.dests = dests
	return nil
}

// parseList reads a gwlist: "gw1,gw2=10,#carrier=50" (carriers only when
// allowed). The weight defaults to 1.
func (d *data) parseList(s string, carriers bool) ([]dest, error) {
	var out []dest
	for _, tok := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' }) {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		id, w := tok, 1
		if i := strings.IndexByte(tok, '='); i >= 0 {
			id = strings.TrimSpace(tok[:i])
			n, err := strconv.Atoi(strings.TrimSpace(tok[i+1:]))
			if err != nil || n < 0 {
				return nil, fmt.Errorf("bad weight in %q", tok)
			}
			w = n
		}
		if strings.HasPrefix(id, "#") {
			if !carriers {
				return nil, fmt.Errorf("a carrier (%s) cannot list carriers", id)
			}
			c := d.carriers[id[1:]]
			if c == nil {
				return nil, fmt.Errorf("unknown carrier %q", id[1:])
			}
			out = append(out, dest{carrier: c, weight: w})
			continue
		}
		g := d.gws[id]
		if g == nil {
			return nil, fmt.Errorf("unknown gateway %q", id)
		}
		out = append(out, dest{gw: g, weight: w})
	}
	return out, nil
}

// parseAddress reads a gateway address: "host[:port]", "sip:host[:port]"
// or either with URI parameters (";transport=tcp"). Names are resolved now
// when forceDNS is set, so is_from_gw can match by IP.
func (g *gateway) parseAddress(ctx context.Context, forceDNS bool) error {
	a := strings.TrimSpace(g.address)
	low := strings.ToLower(a)
	for _, scheme := range []string{"sip:", "sips:"} {
		if strings.HasPrefix(low, scheme) {
			a = a[len(scheme):]
			break
		}
	}
	if i := strings.IndexByte(a, '@'); i >= 0 {
		a = a[i+1:]
	}
	if a == "" {
		return fmt.Errorf("empty address")
	}
	g.hostport = a
	hp := a
	if i := strings.IndexAny(hp, ";?"); i >= 0 {
		hp = hp[:i]
	}
	host, port := hp, 0
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return fmt.Errorf("bad address %q", g.address)
		}
		host = hp[1:end]
		if rest := hp[end+1:]; strings.HasPrefix(rest, ":") {
			p, err := strconv.Atoi(rest[1:])
			if err != nil {
				return fmt.Errorf("bad port in %q", g.address)
			}
			port = p
		}
	} else if i := strings.LastIndexByte(hp, ':'); i >= 0 && strings.Count(hp, ":") == 1 {
		p, err := strconv.Atoi(hp[i+1:])
		if err != nil || p <= 0 || p > 65535 {
			return fmt.Errorf("bad port in %q", g.address)
		}
		host, port = hp[:i], p
	}
	g.host, g.port = host, port
	if ip := net.ParseIP(host); ip != nil {
		g.ips = []net.IP{ip}
		return nil
	}
	if !forceDNS {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(cctx, host)
	if err != nil {
		return fmt.Errorf("cannot resolve %q: %v", host, err)
	}
	for _, a := range addrs {
		g.ips = append(g.ips, a.IP)
	}
	return nil
}

// matches reports whether ip:port is the gateway (port 0 on either side
// matches any port).
func (g *gateway) matches(ip net.IP, port int) bool {
	for _, gip := range g.ips {
		if gip.Equal(ip) && (g.port == 0 || port == 0 || g.port == port) {
			return true
		}
	}
	return false
}
