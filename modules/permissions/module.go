// Package permissions is OpenSIPS's permissions module, address part:
// check_address(), check_source_address() and get_source_group() match an
// address against the `address` table (IPs and subnets per group, with
// port, protocol, a wildcard pattern and context info), cached in memory,
// loaded when a script generation goes live and again on the MI command
// address_reload. Partitions (modparam "partition") are further address
// tables, each in its own database/table.
package permissions

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/mi"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "permissions"

// DefaultPartition is the partition db_url and address_table describe.
const DefaultPartition = "default"

// partition is one address table in memory.
type partition struct {
	name string
	url  string
	db   *store.DB
	cols columns
	tbl  atomic.Pointer[table]
	mu   sync.Mutex // serialises reloads
}

func (p *partition) reload(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, err := load(ctx, p.db, p.cols)
	if err != nil {
		return err
	}
	p.tbl.Store(t)
	return nil
}

type config struct {
	parts map[string]*partition
	order []string // partition names, default first
}

var cur atomic.Pointer[config]

func init() {
	cur.Store(&config{parts: map[string]*partition{}})
	str := check.ArgSpec{Kind: check.ArgStr}
	optStr := check.ArgSpec{Kind: check.ArgStr, Optional: true}
	integer := check.ArgSpec{Kind: check.ArgInt}
	ctxVar := check.ArgSpec{Kind: check.ArgVar, Writable: true, Optional: true}
	srcRoutes := check.Routes(ast.RequestRoute, ast.FailureRoute, ast.LocalRoute, ast.BranchRoute)
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "db_url", Kind: modules.ParamStr},
			{Name: "address_table", Kind: modules.ParamStr, Default: value.S("address")},
			{Name: "partition", Kind: modules.ParamStr, Multi: true},
			{Name: "grp_col", Kind: modules.ParamStr, Default: value.S("grp")},
			{Name: "ip_col", Kind: modules.ParamStr, Default: value.S("ip")},
			{Name: "mask_col", Kind: modules.ParamStr, Default: value.S("mask")},
			{Name: "port_col", Kind: modules.ParamStr, Default: value.S("port")},
			{Name: "proto_col", Kind: modules.ParamStr, Default: value.S("proto")},
			{Name: "pattern_col", Kind: modules.ParamStr, Default: value.S("pattern")},
			{Name: "info_col", Kind: modules.ParamStr, Default: value.S("context_info")},
			// the allow/deny file parameters of allow_routing & co, which
			// sipedge does not implement: accepted so configs load.
			{Name: "default_allow_file", Kind: modules.ParamStr},
			{Name: "default_deny_file", Kind: modules.ParamStr},
			{Name: "check_all_branches", Kind: modules.ParamInt, Default: value.I(1)},
			{Name: "allow_suffix", Kind: modules.ParamStr},
			{Name: "deny_suffix", Kind: modules.ParamStr},
		},
		Configure: configure,
		Funcs: []*modules.Func{
			{Name: "check_address", Args: []check.ArgSpec{integer, str, integer, str, ctxVar, optStr, optStr},
				Routes: check.Routes(ast.RequestRoute, ast.FailureRoute, ast.LocalRoute, ast.BranchRoute,
					ast.StartupRoute, ast.TimerRoute, ast.EventRoute),
				Fixup: fixupCheckAddress, Call: callCheckAddress},
			{Name: "check_source_address", Args: []check.ArgSpec{integer, ctxVar, optStr, optStr},
				Routes: srcRoutes, Fixup: fixupPartitionArg(3), Call: callCheckSourceAddress},
			{Name: "get_source_group", Args: []check.ArgSpec{{Kind: check.ArgVar, Writable: true}, optStr},
				Routes: srcRoutes, Fixup: fixupPartitionArg(1), Call: callGetSourceGroup},
		},
		MI: []modules.MICommand{
			{Name: "address_reload", Help: "Params: [partition] ; reload the address table(s) from the database", Run: miReload},
			{Name: "address_dump", Help: "Params: [partition] ; list the cached single addresses", Run: miAddressDump},
			{Name: "subnet_dump", Help: "Params: [partition] ; list the cached subnets", Run: miSubnetDump},
		},
	})
	for _, c := range []string{"address_reload", "address_dump", "subnet_dump"} {
		mi.DeclareParams(c, []string{}, []string{"partition"})
	}
}

// partitionDef is a parsed "name: db_url=…; table_name=…" declaration.
type partitionDef struct {
	name, url, table string
}

// parsePartition reads a partition modparam. OpenSIPS needs a ';' after
// every attribute (it ignores a last one without); sipedge accepts both.
func parsePartition(decl string) (partitionDef, error) {
	name, rest, ok := strings.Cut(decl, ":")
	d := partitionDef{name: strings.TrimSpace(name), table: "address"}
	if !ok || d.name == "" {
		return d, fmt.Errorf("partition %q: want \"name: db_url=URL; table_name=TABLE\"", decl)
	}
	// the URL itself contains ':' and '/', never ';'
	for _, attr := range strings.Split(rest, ";") {
		attr = strings.TrimSpace(attr)
		if attr == "" {
			continue
		}
		k, v, ok := strings.Cut(attr, "=")
		if !ok {
			return d, fmt.Errorf("partition %q: attribute %q is not key=value", d.name, attr)
		}
		switch strings.TrimSpace(k) {
		case "db_url":
			d.url = strings.TrimSpace(v)
		case "table_name":
			d.table = strings.TrimSpace(v)
		default:
			return d, fmt.Errorf("partition %q: unknown attribute %q (db_url and table_name are)", d.name, strings.TrimSpace(k))
		}
	}
	if d.url == "" {
		return d, fmt.Errorf("partition %q has no db_url", d.name)
	}
	return d, nil
}

func configure(p modules.Params) (func(), error) {
	base := columns{
		table: p.Str("address_table"), id: "id", grp: p.Str("grp_col"), ip: p.Str("ip_col"),
		mask: p.Str("mask_col"), port: p.Str("port_col"), proto: p.Str("proto_col"),
		pattern: p.Str("pattern_col"), info: p.Str("info_col"),
	}
	if err := base.check(); err != nil {
		return nil, err
	}
	var defs []partitionDef
	if u := strings.TrimSpace(p.Str("db_url")); u != "" {
		defs = append(defs, partitionDef{name: DefaultPartition, url: u, table: base.table})
	}
	for _, v := range p.All("partition") {
		d, err := parsePartition(v.AsString())
		if err != nil {
			return nil, err
		}
		if err := store.CheckIdent("table_name", d.table); err != nil {
			return nil, fmt.Errorf("partition %q: %v", d.name, err)
		}
		for _, o := range defs {
			if o.name == d.name {
				return nil, fmt.Errorf("partition %q is defined twice", d.name)
			}
		}
		defs = append(defs, d)
	}
	c := &config{parts: map[string]*partition{}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, d := range defs {
		db, err := store.Open(d.url)
		if err != nil {
			return nil, fmt.Errorf("partition %q: %w", d.name, err)
		}
		if err := db.CheckVersion(ctx, d.table, TableVersion); err != nil {
			return nil, fmt.Errorf("partition %q: %w", d.name, err)
		}
		cols := base
		cols.table = d.table
		part := &partition{name: d.name, url: d.url, db: db, cols: cols}
		// the table is read now, so a generation goes live with it loaded
		// (and a broken table refuses the load, as OpenSIPS refuses to start)
		t, err := load(ctx, db, cols)
		if err != nil {
			return nil, fmt.Errorf("partition %q: %w", d.name, err)
		}
		part.tbl.Store(t)
		c.parts[d.name] = part
		c.order = append(c.order, d.name)
	}
	return func() { cur.Store(c) }, nil
}

// ---- fixups ----

func fixupProtoArg(i int, args []check.FixupArg) error {
	if a := args[i]; a.Present && a.Const {
		if _, ok := parseProto(a.Str); !ok {
			return check.ArgError(i, "unknown protocol %q (any, udp, tcp, tls, sctp, ws, wss)", a.Str)
		}
	}
	return nil
}

func fixupGroup(args []check.FixupArg) error {
	if a := args[0]; a.Present && a.Const && a.Int < 0 {
		return check.ArgError(0, "group %d: groups are 0 (any) or positive", a.Int)
	}
	return nil
}

func fixupPartitionArg(i int) func([]check.FixupArg) (any, error) {
	return func(args []check.FixupArg) (any, error) {
		if i == 3 { // check_source_address: the group comes first
			if err := fixupGroup(args); err != nil {
				return nil, err
			}
		}
		if a := args[i]; a.Present && a.Const && strings.TrimSpace(a.Str) == "" {
			return nil, check.ArgError(i, "empty partition name")
		}
		return nil, nil
	}
}

func fixupCheckAddress(args []check.FixupArg) (any, error) {
	if err := fixupGroup(args); err != nil {
		return nil, err
	}
	if a := args[1]; a.Present && a.Const {
		if _, ok := parseIP(a.Str); !ok {
			return nil, check.ArgError(1, "%q is not an IP address", a.Str)
		}
	}
	if err := fixupProtoArg(3, args); err != nil {
		return nil, err
	}
	if a := args[6]; a.Present && a.Const && strings.TrimSpace(a.Str) == "" {
		return nil, check.ArgError(6, "empty partition name")
	}
	return nil, nil
}

// ---- functions ----

func logErr(m *msgctx.Msg, format string, args ...any) {
	if m.Host != nil {
		m.Host.Log(m, msgctx.LErr, fmt.Sprintf("permissions: "+format, args...))
	}
}

// partitionFor finds the partition a call names (default without one).
func partitionFor(m *msgctx.Msg, a *modules.Args, i int, fn string) *partition {
	name := DefaultPartition
	if a.Has(i) {
		if n := strings.TrimSpace(a.Str(i)); n != "" {
			name = n
		}
	}
	p := cur.Load().parts[name]
	if p == nil {
		if name == DefaultPartition {
			logErr(m, `%s: no address table (set modparam("permissions", "db_url", …))`, fn)
		} else {
			logErr(m, "%s: partition %q is not defined", fn, name)
		}
	}
	return p
}

// setInfo writes the matching rule's context_info to the call's variable.
func setInfo(m *msgctx.Msg, a *modules.Args, i int, r *rule, fn string) int {
	if !a.Has(i) || a.Refs == nil || i >= len(a.Refs) || a.Refs[i] == nil {
		return retMatch
	}
	if err := a.Ref(i).Set(m, "=", value.S(r.info)); err != nil {
		logErr(m, "%s: setting %s: %v", fn, a.Ref(i).Text, err)
		return retBadInput
	}
	return retMatch
}

func groupArg(m *msgctx.Msg, a *modules.Args, fn string) (int, bool) {
	v := a.Val(0)
	g, ok := v.AsInt()
	if !ok {
		if n, err := strconv.Atoi(strings.TrimSpace(v.AsString())); err == nil {
			g, ok = n, true
		}
	}
	if !ok || g < 0 {
		logErr(m, "%s: bad group %q", fn, v.AsString())
		return 0, false
	}
	return g, true
}

func patternArg(a *modules.Args, i int) (string, bool) {
	if !a.Has(i) {
		return "", false
	}
	return a.Str(i), true
}

// check_address(group, ip, port, proto[, context_info[, pattern[, partition]]])
func callCheckAddress(m *msgctx.Msg, a *modules.Args) int {
	const fn = "check_address"
	g, ok := groupArg(m, a, fn)
	if !ok {
		return retBadInput
	}
	ip, ok := parseIP(a.Str(1))
	if !ok {
		logErr(m, "%s: invalid ip address <%s>", fn, a.Str(1))
		return retBadInput
	}
	port, ok := a.Val(2).AsInt()
	if !ok {
		if s := strings.TrimSpace(a.Str(2)); s == "" {
			port = 0
		} else if port, ok = atoiOK(s); !ok {
			logErr(m, "%s: bad port %q", fn, a.Str(2))
			return retBadInput
		}
	}
	proto, ok := parseProto(a.Str(3))
	if !ok {
		logErr(m, "%s: unknown protocol <%s>", fn, a.Str(3))
		return retBadInput
	}
	p := partitionFor(m, a, 6, fn)
	if p == nil {
		return retBadInput
	}
	q := &query{grp: g, ip: ip, port: port, proto: proto}
	q.pattern, q.hasPat = patternArg(a, 5)
	r, rc := p.tbl.Load().match(q)
	if r == nil {
		return rc
	}
	return setInfo(m, a, 4, r, fn)
}

func atoiOK(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// check_source_address(group[, context_info[, pattern[, partition]]])
func callCheckSourceAddress(m *msgctx.Msg, a *modules.Args) int {
	const fn = "check_source_address"
	g, ok := groupArg(m, a, fn)
	if !ok {
		return retBadInput
	}
	ip, ok := parseIP(m.Src.IP)
	if !ok {
		logErr(m, "%s: no source address", fn)
		return retBadInput
	}
	p := partitionFor(m, a, 3, fn)
	if p == nil {
		return retBadInput
	}
	proto, _ := parseProto(m.Src.Proto) // "" (no transport known) matches any
	q := &query{grp: g, ip: ip, port: m.Src.Port, proto: proto}
	q.pattern, q.hasPat = patternArg(a, 2)
	r, rc := p.tbl.Load().match(q)
	if r == nil {
		return rc
	}
	return setInfo(m, a, 1, r, fn)
}

// get_source_group(var[, partition])
func callGetSourceGroup(m *msgctx.Msg, a *modules.Args) int {
	const fn = "get_source_group"
	ip, ok := parseIP(m.Src.IP)
	if !ok {
		return -1
	}
	p := partitionFor(m, a, 1, fn)
	if p == nil {
		return -1
	}
	g := p.tbl.Load().sourceGroup(ip, m.Src.Port)
	if g < 0 {
		return -1
	}
	if err := a.Ref(0).Set(m, "=", value.I(g)); err != nil {
		logErr(m, "%s: setting %s: %v", fn, a.Ref(0).Text, err)
		return -1
	}
	return 1
}

// ---- Go API (for other modules and tests) ----

// Reload re-reads every partition's table (the MI address_reload).
func Reload(ctx context.Context) error {
	c := cur.Load()
	for _, name := range c.order {
		if err := c.parts[name].reload(ctx); err != nil {
			return fmt.Errorf("failed to reload partition %s: %w", name, err)
		}
	}
	return nil
}

// Partitions lists the partitions in use, default first.
func Partitions() []string {
	c := cur.Load()
	return append([]string(nil), c.order...)
}

// ---- MI ----

// miError is an MI failure with OpenSIPS's code.
type miError struct {
	code int
	msg  string
}

func (e *miError) Error() string { return e.msg }
func (e *miError) MICode() int   { return e.code }

func partitionParam(params map[string]any) (string, bool, error) {
	v, ok := params["partition"]
	if !ok {
		return "", false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", true, &miError{code: mi.CodeInvalidParams, msg: "Bad type for parameter 'partition'"}
	}
	return s, true, nil
}

func miReload(params map[string]any) (any, error) {
	name, named, err := partitionParam(params)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := cur.Load()
	if !named {
		for _, n := range c.order {
			if err := c.parts[n].reload(ctx); err != nil {
				return nil, &miError{code: 400, msg: "failed to reload partition " + n + "!"}
			}
		}
		return "OK", nil
	}
	p := c.parts[name]
	if p == nil {
		return nil, &miError{code: 400, msg: "Trusted table reload failed"}
	}
	if err := p.reload(ctx); err != nil {
		return nil, &miError{code: 500, msg: "Failed to reload"}
	}
	return "OK", nil
}

func miAddressDump(params map[string]any) (any, error) {
	return dump(params, (*table).hostDump)
}

func miSubnetDump(params map[string]any) (any, error) {
	return dump(params, (*table).subnetDump)
}

func dump(params map[string]any, list func(*table) []any) (any, error) {
	name, named, err := partitionParam(params)
	if err != nil {
		return nil, err
	}
	c := cur.Load()
	if named {
		p := c.parts[name]
		if p == nil {
			return nil, &miError{code: 404, msg: "No such partition"}
		}
		return map[string]any{"part": p.name, "Destinations": list(p.tbl.Load())}, nil
	}
	parts := make([]any, 0, len(c.order))
	for _, n := range c.order {
		p := c.parts[n]
		parts = append(parts, map[string]any{"name": p.name, "Destinations": list(p.tbl.Load())})
	}
	return map[string]any{"Partitions": parts}, nil
}

// errNoTable is returned by Lookup without a default partition.
var errNoTable = errors.New("permissions: no address table")

// Lookup is check_address for Go callers: group (0: any), ip, port (0:
// any), proto ("" or "any": any). It returns OpenSIPS's code and the
// matching rule's context_info.
func Lookup(partitionName string, grp int, ip string, port int, proto string) (int, string, error) {
	if partitionName == "" {
		partitionName = DefaultPartition
	}
	p := cur.Load().parts[partitionName]
	if p == nil {
		return retBadInput, "", errNoTable
	}
	addr, ok := parseIP(ip)
	if !ok {
		return retBadInput, "", fmt.Errorf("invalid ip address %q", ip)
	}
	pr, ok := parseProto(proto)
	if !ok {
		return retBadInput, "", fmt.Errorf("unknown protocol %q", proto)
	}
	r, rc := p.tbl.Load().match(&query{grp: grp, ip: addr, port: port, proto: pr})
	if r == nil {
		return rc, "", nil
	}
	return retMatch, r.info, nil
}
