// Package drouting is OpenSIPS 3.x's drouting (dynamic routing) module:
// prefix-based routing rules per caller group with priorities and time
// recurrences, gateways and carriers (definition-order or weight-based
// lists), serial failover with use_next_gw(), gateway recognition
// (is_from_gw, goes_to_gw, dr_is_gw) and MI control of gateway states.
// The four tables (dr_gateways, dr_rules, dr_carriers, dr_groups) are
// loaded into memory when the script loads and by MI dr_reload.
package drouting

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/events"
	"github.com/sipedge/sipedge/runtime/mi"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "drouting"

// Table versions OpenSIPS 3.x expects.
var tableVersions = map[string]int{"dr_gateways": 6, "dr_rules": 4, "dr_carriers": 3, "dr_groups": 2}

// EventStatus is raised when a gateway changes state.
const EventStatus = "E_DROUTING_STATUS"

type config struct {
	dbURL           string
	db              *store.DB
	tables          tables
	defaultGroup    int
	persistentState bool
	noConcurrent    bool
	avps            map[string]string // avp modparam → AVP name ("" not set)
}

var (
	live    atomic.Pointer[config]
	pending atomic.Pointer[config]
	cur     atomic.Pointer[data]
	reloads sync.Mutex
	// clock is the time source for time recurrences (tests replace it).
	clock = time.Now
)

var (
	routeRoutes = check.Routes(ast.RequestRoute, ast.FailureRoute, ast.BranchRoute, ast.LocalRoute)
	gwRoutes    = check.Routes(ast.RequestRoute, ast.FailureRoute, ast.BranchRoute, ast.OnReplyRoute)
)

func init() {
	strP := func(name, def string) modules.Param {
		return modules.Param{Name: name, Kind: modules.ParamStr, Default: value.S(def)}
	}
	intP := func(name string, def int) modules.Param {
		return modules.Param{Name: name, Kind: modules.ParamInt, Default: value.I(def)}
	}
	optStr := check.ArgSpec{Kind: check.ArgStr, Optional: true}
	optInt := check.ArgSpec{Kind: check.ArgInt, Optional: true}
	optVar := check.ArgSpec{Kind: check.ArgVar, Optional: true, Writable: true}
	str := check.ArgSpec{Kind: check.ArgStr}
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "db_url", Kind: modules.ParamStr},
			strP("drd_table", "dr_gateways"),
			strP("drr_table", "dr_rules"),
			strP("drg_table", "dr_groups"),
			strP("drc_table", "dr_carriers"),
			strP("drg_user_col", "username"),
			strP("drg_domain_col", "domain"),
			strP("drg_grpid_col", "groupid"),
			intP("use_domain", 1),
			intP("default_group", -1),
			intP("force_dns", 1),
			intP("persistent_state", 1),
			intP("no_concurrent_reload", 0),
			intP("use_partitions", 0),
			{Name: "db_partitions_url", Kind: modules.ParamStr},
			strP("db_partitions_table", "dr_partitions"),
			{Name: "partition_id_pvar", Kind: modules.ParamStr},
			strP("ruri_avp", "$avp(___dr_ruri__)"),
			strP("gw_id_avp", "$avp(___dr_gw_id__)"),
			strP("gw_sock_avp", "$avp(___dr_sock__)"),
			{Name: "gw_priprefix_avp", Kind: modules.ParamStr},
			{Name: "rule_id_avp", Kind: modules.ParamStr},
			{Name: "rule_prefix_avp", Kind: modules.ParamStr},
			{Name: "carrier_id_avp", Kind: modules.ParamStr},
			{Name: "extra_prefix_chars", Kind: modules.ParamStr},
			{Name: "extra_id_chars", Kind: modules.ParamStr},
			{Name: "define_blacklist", Kind: modules.ParamStr, Multi: true},
			intP("probing_interval", 30),
			strP("probing_method", "OPTIONS"),
			strP("probing_from", "sip:prober@localhost"),
			{Name: "probing_reply_codes", Kind: modules.ParamStr},
			{Name: "probing_socket", Kind: modules.ParamStr},
			intP("cluster_id", 0),
			{Name: "cluster_sharing_tag", Kind: modules.ParamStr},
			intP("enable_restart_persistency", 0),
		},
		Configure: configure,
		Funcs: []*modules.Func{
			{Name: "do_routing", Args: []check.ArgSpec{optInt, optStr, optStr, optVar, optVar, optVar, optStr},
				Routes: routeRoutes, Fixup: fixupRouting, Call: callDoRouting},
			{Name: "use_next_gw", Args: []check.ArgSpec{optVar, optVar, optVar, optStr},
				Routes: routeRoutes, Fixup: fixupNext, Call: callUseNextGW},
			{Name: "route_to_carrier", Args: []check.ArgSpec{str, optVar, optVar, optStr},
				Routes: routeRoutes, Fixup: fixupTo, Call: callRouteToCarrier},
			{Name: "route_to_gw", Args: []check.ArgSpec{str, optVar, optVar, optStr},
				Routes: routeRoutes, Fixup: fixupTo, Call: callRouteToGW},
			{Name: "is_from_gw", Args: []check.ArgSpec{optInt, optStr, optVar, optVar, optStr},
				Routes: gwRoutes, Fixup: fixupIsGW(1), Call: callIsFromGW},
			{Name: "goes_to_gw", Args: []check.ArgSpec{optInt, optStr, optVar, optVar, optStr},
				Routes: check.Routes(ast.RequestRoute, ast.FailureRoute, ast.BranchRoute, ast.LocalRoute, ast.OnReplyRoute),
				Fixup:  fixupIsGW(1), Call: callGoesToGW},
			{Name: "dr_is_gw", Args: []check.ArgSpec{str, optInt, optStr, optVar, optVar, optStr},
				Fixup: fixupIsGW(2), Call: callDrIsGW},
			{Name: "dr_disable", Args: []check.ArgSpec{optStr},
				Routes: check.Routes(ast.RequestRoute, ast.FailureRoute, ast.BranchRoute, ast.OnReplyRoute, ast.LocalRoute),
				Fixup:  fixupPartitionOnly(0), Call: callDisable},
			{Name: "dr_match", Args: []check.ArgSpec{{Kind: check.ArgInt}, optStr, str, optVar, optStr},
				Routes: check.Routes(ast.RequestRoute, ast.FailureRoute, ast.BranchRoute, ast.OnReplyRoute, ast.LocalRoute),
				Fixup:  fixupMatch, Call: callMatch},
		},
		MI: []modules.MICommand{
			{Name: "dr_reload", Help: "Params: none ; reload gateways, carriers, rules and groups from the database", Run: miReload},
			{Name: "dr_gw_status", Help: "Params: [gw_id [status]] ; list the gateways, or show/set (0 disable, 1 enable) one", Run: miGWStatus},
			{Name: "dr_carrier_status", Help: "Params: [carrier_id [status]] ; list the carriers, or show/set (0 disable, 1 enable) one", Run: miCarrierStatus},
			{Name: "dr_reload_status", Help: "Params: none ; when the data was last loaded", Run: miReloadStatus},
			{Name: "dr_number_routing", Help: "Params: [group_id] number ; the rule and gateways a number would be routed to", Run: miNumberRouting},
		},
	})
	mi.DeclareParams("dr_reload", []string{})
	mi.DeclareParams("dr_gw_status", []string{}, []string{"gw_id"}, []string{"gw_id", "status"})
	mi.DeclareParams("dr_carrier_status", []string{}, []string{"carrier_id"}, []string{"carrier_id", "status"})
	mi.DeclareParams("dr_reload_status", []string{})
	mi.DeclareParams("dr_number_routing", []string{"number"}, []string{"group_id", "number"})
}

func configure(p modules.Params) (func(), error) {
	cfg := &config{
		dbURL: strings.TrimSpace(p.Str("db_url")),
		tables: tables{
			gw: p.Str("drd_table"), rules: p.Str("drr_table"), carriers: p.Str("drc_table"), groups: p.Str("drg_table"),
			userCol: p.Str("drg_user_col"), domainCol: p.Str("drg_domain_col"), grpCol: p.Str("drg_grpid_col"),
			useDomain: p.Int("use_domain") != 0, prefixChars: p.Str("extra_prefix_chars"),
			forceDNS: p.Int("force_dns") != 0,
		},
		defaultGroup:    p.Int("default_group"),
		persistentState: p.Int("persistent_state") != 0,
		noConcurrent:    p.Int("no_concurrent_reload") != 0,
		avps:            map[string]string{},
	}
	if p.Int("use_partitions") != 0 {
		return nil, fmt.Errorf("use_partitions: sipedge's drouting has one partition (the tables of db_url)")
	}
	for _, v := range p.All("define_blacklist") {
		if strings.TrimSpace(v.AsString()) != "" {
			return nil, fmt.Errorf("define_blacklist: sipedge has no blacklists")
		}
	}
	if cfg.dbURL == "" {
		return nil, fmt.Errorf("db_url is needed: the routing data is read from the dr_* tables")
	}
	for _, name := range []string{"gw_id_avp", "gw_priprefix_avp", "rule_id_avp", "rule_prefix_avp", "carrier_id_avp"} {
		s := strings.TrimSpace(p.Str(name))
		if s == "" {
			continue
		}
		n, ok := strings.CutPrefix(s, "$avp(")
		if !ok || !strings.HasSuffix(n, ")") || len(n) < 2 {
			return nil, fmt.Errorf("%s: want an AVP ($avp(name)), not %q", name, s)
		}
		cfg.avps[name] = strings.TrimSuffix(n, ")")
	}
	for _, c := range []string{cfg.tables.gw, cfg.tables.rules, cfg.tables.carriers, cfg.tables.groups,
		cfg.tables.userCol, cfg.tables.domainCol, cfg.tables.grpCol} {
		if err := store.CheckIdent("table/column", c); err != nil {
			return nil, err
		}
	}
	db, err := store.Open(cfg.dbURL)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, t := range []string{cfg.tables.gw, cfg.tables.rules, cfg.tables.carriers, cfg.tables.groups} {
		if err := db.CheckVersion(ctx, t, tableVersions[t]); err != nil {
			return nil, err
		}
	}
	cfg.db = db
	d, err := load(ctx, db, cfg.tables, cur.Load(), warn)
	if err != nil {
		return nil, err
	}
	pending.Store(cfg)
	return func() {
		live.Store(cfg)
		cur.Store(d)
	}, nil
}

func warn(text string) { tm.Log(msgctx.LWarn, Name, text) }

func cfgForFixup() *config {
	if c := pending.Load(); c != nil {
		return c
	}
	return live.Load()
}

// Reload reads the tables again (MI dr_reload); gateway and carrier states
// are kept. The old data stays when loading fails.
func Reload() error {
	cfg := live.Load()
	if cfg == nil {
		return fmt.Errorf("drouting is not configured")
	}
	if cfg.noConcurrent {
		if !reloads.TryLock() {
			return fmt.Errorf("a reload is already in progress")
		}
	} else {
		reloads.Lock()
	}
	defer reloads.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := load(ctx, cfg.db, cfg.tables, cur.Load(), warn)
	if err != nil {
		return err
	}
	cur.Store(d)
	return nil
}

// ---- fixups ----

// callFix is what the fixups keep: the AVP slots of the script being
// compiled, and constant arguments.
type callFix struct {
	av       avpSlots
	flags    int
	flagsSet bool
}

func slotsOf(args []check.FixupArg) avpSlots {
	av := avpSlots{-1, -1, -1, -1, -1}
	cfg := cfgForFixup()
	var slots check.Slots
	for _, a := range args {
		if a.Slots != nil {
			slots = a.Slots
			break
		}
	}
	if cfg == nil || slots == nil {
		return av
	}
	get := func(name string) int {
		if n := cfg.avps[name]; n != "" {
			return slots.AVPSlot(n)
		}
		return -1
	}
	av.gwID, av.priPrefix, av.ruleID = get("gw_id_avp"), get("gw_priprefix_avp"), get("rule_id_avp")
	av.rulePrefix, av.carrierID = get("rule_prefix_avp"), get("carrier_id_avp")
	return av
}

// checkPartition refuses a partition argument: use_partitions is off.
func checkPartition(args []check.FixupArg, i int) error {
	if i < len(args) && args[i].Present {
		return check.ArgError(i, "partitions are not used (use_partitions is 0): leave the partition out")
	}
	return nil
}

func fixupRouting(args []check.FixupArg) (any, error) {
	f := &callFix{av: slotsOf(args)}
	if len(args) > 1 && args[1].Present && args[1].Const {
		fl, err := parseRoutingFlags(args[1].Str)
		if err != nil {
			return nil, check.ArgError(1, "%v", err)
		}
		f.flags, f.flagsSet = fl, true
	} else if len(args) < 2 || !args[1].Present {
		f.flagsSet = true
	}
	return f, checkPartition(args, 6)
}

func fixupNext(args []check.FixupArg) (any, error) {
	return &callFix{av: slotsOf(args)}, checkPartition(args, 3)
}

func fixupTo(args []check.FixupArg) (any, error) {
	return &callFix{av: slotsOf(args)}, checkPartition(args, 3)
}

func fixupPartitionOnly(i int) func([]check.FixupArg) (any, error) {
	return func(args []check.FixupArg) (any, error) { return nil, checkPartition(args, i) }
}

// gw flags of is_from_gw / goes_to_gw / dr_is_gw.
const (
	gwStrip = 1 << iota
	gwPrefix
	gwID
	gwNoPort
	gwCarrierID
)

func parseGWFlags(s string) (int, error) {
	f := 0
	for _, c := range s {
		switch c {
		case 's':
			f |= gwStrip
		case 'p':
			f |= gwPrefix
		case 'i':
			f |= gwID
		case 'n':
			f |= gwNoPort
		case 'c':
			f |= gwCarrierID
		case ' ':
		default:
			return 0, fmt.Errorf("unknown flag %q (s, p, i, n, c)", c)
		}
	}
	return f, nil
}

// fixupIsGW fixes the gateway matching functions; off is the index of their
// type argument.
func fixupIsGW(off int) func([]check.FixupArg) (any, error) {
	return func(args []check.FixupArg) (any, error) {
		f := &callFix{av: slotsOf(args)}
		fi := off
		if fi < len(args) && args[fi].Present && args[fi].Const {
			fl, err := parseGWFlags(args[fi].Str)
			if err != nil {
				return nil, check.ArgError(fi, "%v", err)
			}
			f.flags, f.flagsSet = fl, true
		} else if fi >= len(args) || !args[fi].Present {
			f.flagsSet = true
		}
		return f, checkPartition(args, off+3)
	}
}

func fixupMatch(args []check.FixupArg) (any, error) {
	f := &callFix{av: slotsOf(args)}
	if len(args) > 1 && args[1].Present && args[1].Const {
		fl, err := parseRoutingFlags(args[1].Str)
		if err != nil || fl&^flagStrict != 0 {
			return nil, check.ArgError(1, "dr_match takes the L flag only")
		}
		f.flags, f.flagsSet = fl, true
	} else if len(args) < 2 || !args[1].Present {
		f.flagsSet = true
	}
	return f, checkPartition(args, 4)
}

func fixOf(a *modules.Args) *callFix {
	if f, ok := a.Fix.(*callFix); ok {
		return f
	}
	return &callFix{av: avpSlots{-1, -1, -1, -1, -1}, flagsSet: true}
}

func refOf(a *modules.Args, i int) *pvar.Ref {
	if a.Has(i) && i < len(a.Refs) {
		return a.Refs[i]
	}
	return nil
}

func logf(m *msgctx.Msg, level int, format string, args ...any) {
	if m.Host != nil {
		m.Host.Log(m, level, Name+": "+fmt.Sprintf(format, args...))
	}
}

// ---- functions ----

func callDoRouting(m *msgctx.Msg, a *modules.Args) int {
	cfg, d := live.Load(), cur.Load()
	if cfg == nil || d == nil || m.Req == nil {
		return -1
	}
	f := fixOf(a)
	flags := f.flags
	if !f.flagsSet {
		var err error
		if flags, err = parseRoutingFlags(a.Str(1)); err != nil {
			logf(m, msgctx.LErr, "do_routing: %v", err)
			return -1
		}
	}
	grp := -1
	if a.Has(0) {
		grp = a.Int(0)
	}
	if grp < 0 {
		g, ok := d.groupOf(m, cfg)
		if !ok {
			logf(m, msgctx.LErr, "do_routing: no group for the caller %s", m.Req.From().Address.String())
			return -1
		}
		grp = g
	}
	s := &state{d: d, flags: flags, grp: grp, number: m.Req.Recipient.User, orig: *m.Req.Recipient.Clone(),
		fallback: flags&flagFallback != 0}
	if a.Has(2) {
		s.whitelist = d.parseWhitelist(a.Str(2))
	}
	// forget an earlier routing's gateways
	for _, slot := range []int{f.av.gwID, f.av.priPrefix, f.av.ruleID, f.av.rulePrefix, f.av.carrierID} {
		setAVP(m, slot)
	}
	refs := attrRefs{rule: refOf(a, 3), gw: refOf(a, 4), carrier: refOf(a, 5)}
	if flags&flagCheck == 0 {
		if old := stateOf(m); old != nil {
			old.forget()
		}
	}
	rc := s.route(m, cfg, f.av, refs, false)
	if rc == 1 && flags&flagCheck == 0 {
		keep(m, s)
	}
	return rc
}

// keep stores a routing state in the message's module data. A state
// already there (a failure_route routing again) is updated in place: the
// transaction shares that pointer with its later routes.
func keep(m *msgctx.Msg, s *state) {
	if old := stateOf(m); old != nil {
		old.mu.Lock()
		old.d, old.rule, old.current, old.pending = s.d, s.rule, s.current, s.pending
		old.fallback, old.flags, old.grp, old.number, old.idx = s.fallback, s.flags, s.grp, s.number, s.idx
		old.orig, old.whitelist = s.orig, s.whitelist
		old.mu.Unlock()
		return
	}
	if m.Mod == nil {
		m.Mod = map[string]any{}
	}
	m.Mod[Name] = s
}

// forget drops a state's destinations (a new do_routing failed).
func (s *state) forget() {
	s.mu.Lock()
	s.current, s.pending, s.fallback = nil, nil, false
	s.mu.Unlock()
}

func callUseNextGW(m *msgctx.Msg, a *modules.Args) int {
	cfg := live.Load()
	s := stateOf(m)
	if cfg == nil || s == nil || m.Req == nil {
		logf(m, msgctx.LWarn, "use_next_gw: no gateways at all (was do_routing called?)")
		return -1
	}
	f := fixOf(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next(m, cfg, f.av, attrRefs{rule: refOf(a, 0), gw: refOf(a, 1), carrier: refOf(a, 2)})
}

// routeTo is route_to_gw/route_to_carrier: a destination list given by the
// script instead of a rule.
func routeTo(m *msgctx.Msg, a *modules.Args, carriers bool) int {
	cfg, d := live.Load(), cur.Load()
	if cfg == nil || d == nil || m.Req == nil {
		return -1
	}
	var ds []dest
	for _, id := range strings.Split(a.Str(0), ",") {
		id = strings.TrimSpace(id)
		if id == "" {
			continue
		}
		if carriers {
			c := d.carriers[strings.TrimPrefix(id, "#")]
			if c == nil {
				logf(m, msgctx.LErr, "route_to_carrier: unknown carrier %q", id)
				continue
			}
			ds = append(ds, dest{carrier: c, weight: 1})
		} else {
			g := d.gws[id]
			if g == nil {
				logf(m, msgctx.LErr, "route_to_gw: unknown gateway %q", id)
				continue
			}
			ds = append(ds, dest{gw: g, weight: 1})
		}
	}
	s := &state{d: d, orig: *m.Req.Recipient.Clone()}
	cands := expand(ds, false, nil, &s.orig)
	if len(cands) == 0 {
		return -1
	}
	f := fixOf(a)
	s.current, s.pending = &cands[0], cands[1:]
	pointAt(m, s.current)
	s.export(m, f.av)
	attrRefs{gw: refOf(a, 1), carrier: refOf(a, 2)}.setDest(m, s.current)
	keep(m, s)
	return 1
}

func callRouteToGW(m *msgctx.Msg, a *modules.Args) int      { return routeTo(m, a, false) }
func callRouteToCarrier(m *msgctx.Msg, a *modules.Args) int { return routeTo(m, a, true) }

// isGW is the common part of is_from_gw, goes_to_gw and dr_is_gw: typeArg
// is the index of the type argument (flags, attrs, carrier attrs follow).
func isGW(m *msgctx.Msg, a *modules.Args, typeArg int, ip net.IP, port int) int {
	d := cur.Load()
	if d == nil {
		return -1
	}
	f := fixOf(a)
	flags := f.flags
	if !f.flagsSet {
		var err error
		if flags, err = parseGWFlags(a.Str(typeArg + 1)); err != nil {
			logf(m, msgctx.LErr, "%v", err)
			return -1
		}
	}
	typ := -1
	if a.Has(typeArg) {
		typ = a.Int(typeArg)
	}
	if flags&gwNoPort != 0 {
		port = 0
	}
	g := d.findGW(ip, port, typ)
	if g == nil {
		return -1
	}
	if m.Req != nil && flags&(gwStrip|gwPrefix) != 0 {
		pvar.SaveOriginalURI(m)
		user := m.Req.Recipient.User
		if flags&gwStrip != 0 {
			n := g.strip
			if n > len(user) {
				n = len(user)
			}
			user = user[n:]
		}
		if flags&gwPrefix != 0 {
			user = g.pri + user
		}
		m.Req.Recipient.User = user
	}
	var cr *carrier
	if len(g.carriers) > 0 {
		cr = g.carriers[0]
	}
	if flags&gwID != 0 {
		setAVP(m, f.av.gwID, value.S(g.id))
	}
	if flags&gwCarrierID != 0 && cr != nil {
		setAVP(m, f.av.carrierID, value.S(cr.id))
	}
	setRef(m, refOf(a, typeArg+2), g.attrs)
	if r := refOf(a, typeArg+3); r != nil {
		crAttrs := ""
		if cr != nil {
			crAttrs = cr.attrs
		}
		setRef(m, r, crAttrs)
	}
	return 1
}

func callIsFromGW(m *msgctx.Msg, a *modules.Args) int {
	return isGW(m, a, 0, net.ParseIP(m.Src.IP), m.Src.Port)
}

func callGoesToGW(m *msgctx.Msg, a *modules.Args) int {
	if m.Req == nil {
		return -1
	}
	u := &m.Req.Recipient
	if m.DstURI != "" {
		var du sip.Uri
		if err := sip.ParseUri(m.DstURI, &du); err != nil {
			return -1
		}
		u = &du
	}
	// no DNS: a host that is not an IP matches nothing
	return isGW(m, a, 0, net.ParseIP(strings.Trim(u.Host, "[]")), u.Port)
}

func callDrIsGW(m *msgctx.Msg, a *modules.Args) int {
	var u sip.Uri
	if err := sip.ParseUri(strings.Trim(strings.TrimSpace(a.Str(0)), "<>"), &u); err != nil {
		logf(m, msgctx.LErr, "dr_is_gw: bad SIP URI %q", a.Str(0))
		return -1
	}
	host := strings.Trim(u.Host, "[]")
	ip := net.ParseIP(host)
	if ip == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		cancel()
		if err != nil || len(addrs) == 0 {
			return -1
		}
		ip = addrs[0].IP
	}
	return isGW(m, a, 1, ip, u.Port)
}

// callDisable is dr_disable(): the gateway of the current destination goes
// inactive.
func callDisable(m *msgctx.Msg, _ *modules.Args) int {
	s := stateOf(m)
	if s == nil {
		return -1
	}
	s.mu.Lock()
	c := s.current
	s.mu.Unlock()
	if c == nil {
		return -1
	}
	setGWState(c.gw, StateInactive)
	return 1
}

func callMatch(m *msgctx.Msg, a *modules.Args) int {
	cfg, d := live.Load(), cur.Load()
	if cfg == nil || d == nil {
		return -1
	}
	f := fixOf(a)
	flags := f.flags
	if !f.flagsSet {
		fl, err := parseRoutingFlags(a.Str(1))
		if err != nil || fl&^flagStrict != 0 {
			return -1
		}
		flags = fl
	}
	number := a.Str(2)
	r, plen, _ := d.findRule(cfg.tables, number, a.Int(0), 0, clock())
	if flags&flagStrict != 0 && (r == nil || plen != len(number)) {
		return -1
	}
	if r == nil {
		if r = d.prefixless(a.Int(0), clock()); r == nil {
			return -1
		}
	}
	setAVP(m, f.av.ruleID, value.I(r.id))
	setAVP(m, f.av.rulePrefix, value.S(r.prefix))
	setRef(m, refOf(a, 3), r.attrs)
	return 1
}

// ---- gateway states ----

// setGWState changes a gateway's state, raises E_DROUTING_STATUS and, with
// persistent_state, writes the state column (0 active, 1 disabled).
func setGWState(g *gateway, st int32) {
	if old := g.state.Swap(st); old == st {
		return
	}
	events.Raise(EventStatus, events.Str("partition", "Default"), events.Str("gwid", g.id),
		events.Str("address", g.address), events.Str("status", strings.ToLower(stateNames[st])))
	cfg := live.Load()
	if cfg == nil || !cfg.persistentState || cfg.db == nil {
		return
	}
	col := 0
	if st != StateActive {
		col = StateInactive
	}
	db, table := cfg.db, cfg.tables.gw
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := db.Exec(ctx, "UPDATE "+table+" SET state = ? WHERE gwid = ?", col, g.id); err != nil {
			warn(fmt.Sprintf("saving the state of gateway %s: %v", g.id, err))
		}
	}()
}

// ---- MI ----

func miStr(params map[string]any, name string) (string, bool) {
	v, ok := params[name]
	if !ok || v == nil {
		return "", false
	}
	switch x := v.(type) {
	case string:
		return x, true
	case float64:
		return strconv.FormatInt(int64(x), 10), true
	}
	return fmt.Sprint(v), true
}

func miReload(map[string]any) (any, error) {
	if err := Reload(); err != nil {
		return nil, mi.Errorf(500, "%v", err)
	}
	return "OK", nil
}

func miGWStatus(params map[string]any) (any, error) {
	d := cur.Load()
	if d == nil {
		return nil, mi.Errorf(500, "drouting is not configured")
	}
	id, ok := miStr(params, "gw_id")
	if !ok {
		var list []any
		for _, g := range d.gwOrder {
			list = append(list, map[string]any{"ID": g.id, "IP Address": g.hostport, "State": stateNames[g.state.Load()]})
		}
		return map[string]any{"Gateways": list}, nil
	}
	g := d.gws[id]
	if g == nil {
		return nil, mi.Errorf(404, "Destination ID not found")
	}
	st, ok := miStr(params, "status")
	if !ok {
		return map[string]any{"State": stateNames[g.state.Load()]}, nil
	}
	switch st {
	case "0":
		setGWState(g, StateDisabledMI)
	case "1":
		setGWState(g, StateActive)
	default:
		return nil, mi.Errorf(400, "Bad status value (0 disable, 1 enable)")
	}
	return "OK", nil
}

func miCarrierStatus(params map[string]any) (any, error) {
	d := cur.Load()
	if d == nil {
		return nil, mi.Errorf(500, "drouting is not configured")
	}
	yes := func(c *carrier) string {
		if c.off.Load() {
			return "no"
		}
		return "yes"
	}
	id, ok := miStr(params, "carrier_id")
	if !ok {
		var list []any
		for _, c := range d.crOrder {
			list = append(list, map[string]any{"ID": c.id, "Enabled": yes(c)})
		}
		return map[string]any{"Carriers": list}, nil
	}
	c := d.carriers[id]
	if c == nil {
		return nil, mi.Errorf(404, "Carrier ID not found")
	}
	st, ok := miStr(params, "status")
	if !ok {
		return map[string]any{"Enabled": yes(c)}, nil
	}
	switch st {
	case "0":
		c.off.Store(true)
	case "1":
		c.off.Store(false)
	default:
		return nil, mi.Errorf(400, "Bad status value (0 disable, 1 enable)")
	}
	return "OK", nil
}

func miReloadStatus(map[string]any) (any, error) {
	d := cur.Load()
	if d == nil {
		return nil, mi.Errorf(500, "drouting is not configured")
	}
	return map[string]any{"Date": d.loaded.Format(time.ANSIC)}, nil
}

func miNumberRouting(params map[string]any) (any, error) {
	cfg, d := live.Load(), cur.Load()
	if cfg == nil || d == nil {
		return nil, mi.Errorf(500, "drouting is not configured")
	}
	number, _ := miStr(params, "number")
	grp := 0
	if g, ok := miStr(params, "group_id"); ok {
		n, err := strconv.Atoi(g)
		if err != nil {
			return nil, mi.Errorf(400, "Bad group_id")
		}
		grp = n
	}
	r, plen, _ := d.findRule(cfg.tables, number, grp, 0, clock())
	if r == nil {
		r = d.prefixless(grp, clock())
	}
	if r == nil {
		return nil, mi.Errorf(404, "No match")
	}
	var list []any
	for _, ds := range r.dests {
		if ds.carrier != nil {
			list = append(list, "#"+ds.carrier.id)
		} else {
			list = append(list, ds.gw.id)
		}
	}
	return map[string]any{"Matched Prefix": number[:plen], "Rule ID": r.id, "GW List": list}, nil
}
