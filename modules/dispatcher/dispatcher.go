// Package dispatcher is OpenSIPS's dispatcher module: load balancing and
// failover over sets of destinations. ds_select_dst() picks a destination
// of a set by one of OpenSIPS's algorithms (hashes over Call-ID, From, To,
// R-URI or the auth user, weighted round robin, random, first available)
// and sets $du; with the "f" flag the other destinations of the set are
// kept for ds_next_dst() in failure_route. Destinations that fail are
// marked (ds_mark_dst) and, with ds_ping_interval, probed with OPTIONS
// until they answer again.
//
// Destinations come from the `dispatcher` table (db_url, per partition),
// or, as sipedge extensions, from a list file (list_file) or modparams
// (destination), in the format documented in README.md.
package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/events"
	"github.com/sipedge/sipedge/runtime/mi"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "dispatcher"

// DefaultPartition is the partition the plain modparams describe.
const DefaultPartition = "default"

// TableVersion is the dispatcher table version of OpenSIPS 3.x (8, before
// the probe_mode column, is read too).
const TableVersion = 9

// Schema creates the dispatcher table as OpenSIPS 3.x's SQLite scripts do
// (`sipedge db init` does not create it yet).
var Schema = []string{
	`CREATE TABLE IF NOT EXISTS dispatcher (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    setid INTEGER DEFAULT 0 NOT NULL,
    destination CHAR(192) DEFAULT '' NOT NULL,
    socket CHAR(128) DEFAULT NULL,
    state INTEGER DEFAULT 0 NOT NULL,
    probe_mode INTEGER DEFAULT 0 NOT NULL,
    weight CHAR(64) DEFAULT 1 NOT NULL,
    priority INTEGER DEFAULT 0 NOT NULL,
    attrs CHAR(128) DEFAULT NULL,
    description CHAR(64) DEFAULT NULL
)`,
	`INSERT OR IGNORE INTO version (table_name, table_version) VALUES ('dispatcher', 9)`,
}

// partition is one named destination table.
type partition struct {
	name string
	src  *source
	d    atomic.Pointer[data]
	mu   sync.Mutex // serialises reloads
}

func (p *partition) reload(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	d, err := p.src.load(ctx)
	if err != nil {
		return err
	}
	d.inherit(p.d.Load())
	p.d.Store(d)
	return nil
}

// config is one script generation's view of the module.
type config struct {
	parts map[string]*partition
	order []string // partition names, default first

	pingInterval time.Duration
	pingMethod   sip.RequestMethod
	pingFrom     string
	pingMaxFwd   int // -1: the runtime's default
	threshold    int
	probeAll     bool         // ds_probing_mode 1
	probeSets    map[int]bool // ds_probing_list (nil: every set)
	okCodes      map[int]bool // 200 and options_reply_codes
	hash         *format      // hash_pvar (algorithm 7)
}

var cur atomic.Pointer[config]

func init() {
	cur.Store(&config{parts: map[string]*partition{}, threshold: 3, okCodes: map[int]bool{200: true}})
	str := check.ArgSpec{Kind: check.ArgStr}
	optStr := check.ArgSpec{Kind: check.ArgStr, Optional: true}
	integer := check.ArgSpec{Kind: check.ArgInt}
	optInt := check.ArgSpec{Kind: check.ArgInt, Optional: true}
	selectRoutes := check.Routes(ast.RequestRoute, ast.BranchRoute, ast.FailureRoute, ast.LocalRoute)
	nextRoutes := check.Routes(ast.RequestRoute, ast.FailureRoute)
	listRoutes := selectRoutes | check.Routes(ast.OnReplyRoute)
	countRoutes := selectRoutes | check.Routes(ast.TimerRoute, ast.EventRoute)
	strP := func(name, def string) modules.Param {
		p := modules.Param{Name: name, Kind: modules.ParamStr}
		if def != "" {
			p.Default = value.S(def)
		}
		return p
	}
	intP := func(name string, def int) modules.Param {
		return modules.Param{Name: name, Kind: modules.ParamInt, Default: value.I(def)}
	}
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			strP("db_url", ""),
			strP("table_name", "dispatcher"),
			{Name: "partition", Kind: modules.ParamStr, Multi: true},
			strP("setid_col", "setid"),
			strP("destination_col", "destination"),
			strP("state_col", "state"),
			strP("weight_col", "weight"),
			strP("priority_col", "priority"),
			strP("attrs_col", "attrs"),
			strP("socket_col", "socket"),
			strP("probe_mode_col", "probe_mode"),
			intP("persistent_state", 1),
			// the failover AVPs: sipedge keeps the list in the message's
			// module data, so these names are accepted and unused
			strP("dst_avp", ""), strP("grp_avp", ""), strP("cnt_avp", ""), strP("sock_avp", ""),
			strP("attrs_avp", ""), strP("script_attrs_avp", ""), strP("setid_pvar", ""),
			strP("hash_pvar", ""),
			strP("pvar_algo_pattern", ""),
			strP("algo_route", ""),
			strP("ds_ping_method", "OPTIONS"),
			strP("ds_ping_from", "sip:dispatcher@localhost"),
			intP("ds_ping_interval", 0),
			intP("ds_ping_maxfwd", -1),
			strP("ds_probing_sock", ""),
			intP("ds_probing_threshold", 3),
			{Name: "ds_probing_threshhold", Kind: modules.ParamInt}, // the 1.x/2.x spelling
			intP("ds_probing_mode", 0),
			strP("ds_probing_list", ""),
			{Name: "ds_define_blacklist", Kind: modules.ParamStr, Multi: true},
			strP("options_reply_codes", ""),
			intP("cluster_id", 0),
			strP("cluster_sharing_tag", ""),
			strP("cluster_probing_mode", ""),
			intP("fetch_freeswitch_stats", 0),
			intP("max_freeswitch_weight", 100),
			// sipedge: destinations without a database
			strP("list_file", ""),
			{Name: "destination", Kind: modules.ParamStr, Multi: true},
		},
		Funcs: []*modules.Func{
			{Name: "ds_select_dst", Args: []check.ArgSpec{integer, integer, optStr, optStr, optInt},
				Routes: selectRoutes, Fixup: fixupSelect, Call: callSelectDst},
			{Name: "ds_select_domain", Args: []check.ArgSpec{integer, integer, optStr, optStr, optInt},
				Routes: selectRoutes, Fixup: fixupSelect, Call: callSelectDomain},
			{Name: "ds_next_dst", Args: []check.ArgSpec{optStr}, Routes: nextRoutes, Call: callNextDst},
			{Name: "ds_next_domain", Args: []check.ArgSpec{optStr}, Routes: nextRoutes, Call: callNextDomain},
			{Name: "ds_mark_dst", Args: []check.ArgSpec{optStr, optStr}, Routes: nextRoutes, Fixup: fixupMark, Call: callMarkDst},
			{Name: "ds_is_in_list", Args: []check.ArgSpec{str, integer, optInt, optStr, optInt, optStr},
				Routes: listRoutes, Fixup: fixupInList, Call: callIsInList},
			{Name: "ds_count", Args: []check.ArgSpec{integer, str, {Kind: check.ArgVar, Writable: true}, optStr},
				Routes: countRoutes, Fixup: fixupCount, Call: callCount},
		},
		MI: []modules.MICommand{
			{Name: "ds_list", Help: "Params: [full] ; lists the destination sets of every partition", Run: miList},
			{Name: "ds_set_state", Help: "Params: state group address [partition] ; sets a destination active (a), inactive (i) or probing (p)", Run: miSetState},
			{Name: "ds_reload", Help: "Params: [partition] ; reloads the destinations", Run: miReload},
		},
		Configure: configure,
	})
	mi.DeclareParams("ds_list", []string{}, []string{"full"})
	mi.DeclareParams("ds_set_state", []string{"state", "group", "address"}, []string{"state", "group", "address", "partition"})
	mi.DeclareParams("ds_reload", []string{}, []string{"partition"})
}

// partitionDef is a parsed partition declaration.
type partitionDef struct {
	name, url, table string
}

// parsePartition reads "name: db_url=URL; table_name=T; …". The AVP and
// blacklist attributes are accepted and unused, as their modparams are.
func parsePartition(decl string) (partitionDef, error) {
	name, rest, ok := strings.Cut(decl, ":")
	d := partitionDef{name: strings.TrimSpace(name), table: "dispatcher"}
	if !ok || d.name == "" || strings.HasPrefix(rest, "//") {
		return d, fmt.Errorf("partition %q: want \"name: db_url=URL; table_name=TABLE\"", decl)
	}
	for _, attr := range strings.Split(rest, ";") {
		attr = strings.TrimSpace(attr)
		if attr == "" {
			continue
		}
		k, v, ok := strings.Cut(attr, "=")
		if !ok {
			return d, fmt.Errorf("partition %q: attribute %q is not key=value", d.name, attr)
		}
		switch k = strings.TrimSpace(k); k {
		case "db_url":
			d.url = strings.TrimSpace(v)
		case "table_name":
			d.table = strings.TrimSpace(v)
		case "dst_avp", "grp_avp", "cnt_avp", "sock_avp", "ds_define_blacklist":
		case "attrs_avp", "script_attrs_avp":
			return d, fmt.Errorf("partition %q: %s is not supported yet (a module cannot fill script variables in sipedge)", d.name, k)
		default:
			return d, fmt.Errorf("partition %q: unknown attribute %q", d.name, k)
		}
	}
	if d.url == "" {
		return d, fmt.Errorf("partition %q has no db_url", d.name)
	}
	return d, nil
}

func parseCodes(s string) (map[int]bool, error) {
	out := map[int]bool{200: true}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 100 || n > 699 {
			return nil, fmt.Errorf("options_reply_codes: %q is not a SIP status code", f)
		}
		out[n] = true
	}
	return out, nil
}

func parseSetList(s string) (map[int]bool, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[int]bool{}
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("ds_probing_list: %q is not a set id", f)
		}
		out[n] = true
	}
	return out, nil
}

// tableColumns finds which optional columns a dispatcher table has.
func tableColumns(ctx context.Context, db *store.DB, table string) (map[string]bool, error) {
	rows, err := db.Query(ctx, fmt.Sprintf("SELECT * FROM %s LIMIT 0", table))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, c := range cols {
		out[strings.ToLower(c)] = true
	}
	return out, nil
}

func openSource(ctx context.Context, url, table string, cols columns, persist bool) (*source, error) {
	if err := store.CheckIdent("table_name", table); err != nil {
		return nil, err
	}
	db, err := store.Open(url)
	if err != nil {
		return nil, err
	}
	v, err := db.Version(ctx, table)
	if err != nil {
		if errors.Is(err, store.ErrNoVersion) {
			if e := db.CheckVersion(ctx, table, 0); e != nil {
				return nil, e
			}
			return nil, fmt.Errorf("%s: table %q has no row in the version table (want version %d)", db.Path, table, TableVersion)
		}
		return nil, err
	}
	if v != 8 && v != TableVersion {
		return nil, fmt.Errorf("%s: table %q is version %d, sipedge reads versions 8 and %d", db.Path, table, v, TableVersion)
	}
	have, err := tableColumns(ctx, db, table)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", table, err)
	}
	src := &source{db: db, table: table, cols: cols, persist: persist,
		hasDescr: have["description"], hasSocket: have[strings.ToLower(cols.socket)], hasProbe: have["probe_mode"]}
	return src, nil
}

func configure(p modules.Params) (func(), error) {
	for _, k := range []string{"attrs_avp", "script_attrs_avp", "setid_pvar"} {
		if v := strings.TrimSpace(p.Str(k)); v != "" {
			return nil, fmt.Errorf("%s %q is not supported yet: a module cannot fill script variables in sipedge", k, v)
		}
	}
	for _, k := range []string{"pvar_algo_pattern", "algo_route"} {
		if v := strings.TrimSpace(p.Str(k)); v != "" {
			return nil, fmt.Errorf("%s is not supported yet (algorithms 9 and 10 fall back to the first destination)", k)
		}
	}
	if p.Int("fetch_freeswitch_stats") != 0 {
		return nil, errors.New("fetch_freeswitch_stats is not supported")
	}
	cols := columns{setid: p.Str("setid_col"), destination: p.Str("destination_col"), state: p.Str("state_col"),
		weight: p.Str("weight_col"), priority: p.Str("priority_col"), attrs: p.Str("attrs_col"), socket: p.Str("socket_col")}
	if err := cols.check(); err != nil {
		return nil, err
	}
	persist := p.Int("persistent_state") != 0
	c := &config{
		parts:        map[string]*partition{},
		pingMethod:   sip.RequestMethod(strings.ToUpper(strings.TrimSpace(p.Str("ds_ping_method")))),
		pingFrom:     strings.TrimSpace(p.Str("ds_ping_from")),
		pingMaxFwd:   p.Int("ds_ping_maxfwd"),
		threshold:    p.Int("ds_probing_threshold"),
		probeAll:     p.Int("ds_probing_mode") == 1,
		pingInterval: time.Duration(p.Int("ds_ping_interval")) * time.Second,
	}
	if vs := p.All("ds_probing_threshhold"); len(vs) > 0 {
		c.threshold, _ = vs[len(vs)-1].AsInt()
	}
	if c.threshold < 1 {
		return nil, errors.New("ds_probing_threshold must be at least 1")
	}
	if m := p.Int("ds_probing_mode"); m != 0 && m != 1 {
		return nil, fmt.Errorf("ds_probing_mode %d: want 0 (probe destinations in probing state) or 1 (probe all)", m)
	}
	if c.pingInterval < 0 {
		return nil, errors.New("ds_ping_interval must not be negative")
	}
	if c.pingMethod == "" || strings.ContainsAny(string(c.pingMethod), " \t:;") {
		return nil, fmt.Errorf("ds_ping_method %q is not a SIP method", p.Str("ds_ping_method"))
	}
	var fu sip.Uri
	if err := sip.ParseUri(c.pingFrom, &fu); err != nil {
		return nil, fmt.Errorf("ds_ping_from %q is not a SIP URI", c.pingFrom)
	}
	var err error
	if c.okCodes, err = parseCodes(p.Str("options_reply_codes")); err != nil {
		return nil, err
	}
	if c.probeSets, err = parseSetList(p.Str("ds_probing_list")); err != nil {
		return nil, err
	}
	if hp := strings.TrimSpace(p.Str("hash_pvar")); hp != "" {
		if c.hash, err = compileFormat(hp); err != nil {
			return nil, fmt.Errorf("hash_pvar: %v", err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	old := cur.Load()
	add := func(name string, src *source) error {
		if _, dup := c.parts[name]; dup {
			return fmt.Errorf("partition %q is defined twice", name)
		}
		part := &partition{name: name, src: src}
		d, err := src.load(ctx)
		if err != nil {
			return fmt.Errorf("partition %q: %w", name, err)
		}
		if op := old.parts[name]; op != nil {
			d.inherit(op.d.Load())
		}
		part.d.Store(d)
		c.parts[name] = part
		c.order = append(c.order, name)
		return nil
	}
	def := &source{file: strings.TrimSpace(p.Str("list_file")), persist: persist}
	for _, v := range p.All("destination") {
		def.inline = append(def.inline, v.AsString())
	}
	if u := strings.TrimSpace(p.Str("db_url")); u != "" {
		src, err := openSource(ctx, u, p.Str("table_name"), cols, persist)
		if err != nil {
			return nil, err
		}
		src.file, src.inline = def.file, def.inline
		def = src
	}
	if def.db != nil || def.file != "" || len(def.inline) > 0 {
		if err := add(DefaultPartition, def); err != nil {
			return nil, err
		}
	}
	for _, v := range p.All("partition") {
		pd, err := parsePartition(v.AsString())
		if err != nil {
			return nil, err
		}
		src, err := openSource(ctx, pd.url, pd.table, cols, persist)
		if err != nil {
			return nil, fmt.Errorf("partition %q: %w", pd.name, err)
		}
		if err := add(pd.name, src); err != nil {
			return nil, err
		}
	}
	if len(c.parts) == 0 {
		return nil, errors.New(`no destinations: set modparam("dispatcher", "db_url", "sqlite:///path/to/sipedge.db"), ` +
			`or list them with modparam("dispatcher", "destination", "1 sip:10.0.0.1:5060") or a list_file`)
	}
	return func() {
		cur.Store(c)
		if c.pingInterval > 0 {
			startProber()
		}
	}, nil
}

// lookupPartition finds a partition of the live configuration.
func lookupPartition(name string) (*partition, error) {
	if strings.TrimSpace(name) == "" {
		name = DefaultPartition
	}
	p := cur.Load().parts[strings.TrimSpace(name)]
	if p == nil {
		if name == DefaultPartition {
			return nil, errors.New("no default partition (set db_url, list_file or destination)")
		}
		return nil, fmt.Errorf("partition %q is not defined", name)
	}
	return p, nil
}

// Reload re-reads one partition, or all with name "" (MI ds_reload).
func Reload(ctx context.Context, name string) error {
	c := cur.Load()
	names := c.order
	if name != "" {
		if c.parts[name] == nil {
			return fmt.Errorf("partition %q is not defined", name)
		}
		names = []string{name}
	}
	for _, n := range names {
		if err := c.parts[n].reload(ctx); err != nil {
			return fmt.Errorf("partition %s: %w", n, err)
		}
	}
	return nil
}

// setState changes a destination's state as ds_mark_dst and probing do:
// st Active clears both flags (and the failure count); Inactive sets it
// at once; Probing counts a failure and sets it when the threshold is
// reached (never on an inactive destination). A change is written to the
// table (persistent_state) and, when the destination becomes usable or
// unusable, raised as E_DISPATCHER_STATUS.
func (p *partition) setState(s *Set, d *Dest, st State, countFailure bool) {
	c := cur.Load()
	s.mu.Lock()
	old := d.state
	switch st {
	case Active:
		d.state, d.failures = Active, 0
	case Inactive:
		d.state = Inactive
	case Probing:
		if d.state&Inactive != 0 {
			s.mu.Unlock()
			return
		}
		if countFailure {
			d.failures++
			if d.failures < c.threshold {
				s.mu.Unlock()
				return
			}
			d.failures = c.threshold
		}
		d.state = Probing
	}
	changed := old != d.state
	now := d.state
	s.mu.Unlock()
	if !changed {
		return
	}
	if p.src.persist && p.src.db != nil {
		go p.src.saveState(context.Background(), d, now)
	}
	if (old == Active) != (now == Active) {
		status := "active"
		if now != Active {
			status = "inactive"
		}
		params := []events.Param{events.Int("group", d.Set), events.Str("address", d.URI), events.Str("status", status)}
		if p.name != DefaultPartition {
			params = append([]events.Param{events.Str("partition", p.name)}, params...)
		}
		events.Raise("E_DISPATCHER_STATUS", params...)
	}
}

// find locates a destination by set and URI (case-insensitive).
func (d *data) find(set int, uri string) (*Set, *Dest) {
	s := d.sets[set]
	if s == nil {
		return nil, nil
	}
	for _, dst := range s.Dests {
		if strings.EqualFold(dst.URI, uri) {
			return s, dst
		}
	}
	return s, nil
}

// DestInfo is a destination as MI and tests see it.
type DestInfo struct {
	Set         int
	URI         string
	State       State
	Hits        int64
	Weight      int
	Priority    int
	Attrs       string
	Socket      string
	Description string
}

// List returns a partition's destinations, sets in OpenSIPS's order.
func List(partitionName string) ([]DestInfo, error) {
	p, err := lookupPartition(partitionName)
	if err != nil {
		return nil, err
	}
	return p.list(), nil
}

func (p *partition) list() []DestInfo {
	d := p.d.Load()
	var out []DestInfo
	for _, id := range d.order {
		s := d.sets[id]
		s.mu.Lock()
		for _, dst := range s.Dests {
			out = append(out, DestInfo{Set: id, URI: dst.URI, State: dst.state, Hits: dst.hits.Load(), Weight: dst.Weight,
				Priority: dst.Priority, Attrs: dst.Attrs, Socket: dst.Socket, Description: dst.Description})
		}
		s.mu.Unlock()
	}
	return out
}
