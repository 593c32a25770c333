// Package dialplan is OpenSIPS 3.x's dialplan module: string translations
// by rules from the dialplan table (exact or regex matching, subst/replace,
// attributes, time recurrence), cached in memory per partition and
// reloaded by MI dp_reload.
package dialplan

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/mi"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "dialplan"

// TableVersion is the dialplan table version OpenSIPS 3.x checks.
const TableVersion = 5

// DefaultPartition is the partition dp_translate uses without one.
const DefaultPartition = "default"

// partition is one data source: a table in a database, and its rules.
type partition struct {
	name, dbURL, table string
	db                 *store.DB
	cols               columns
	data               atomic.Pointer[data]
	reloadMu           sync.Mutex
}

type config struct {
	parts   map[string]*partition
	deflt   string // the name dp_translate uses without a partition
	ordered []string
}

var (
	live    atomic.Pointer[config]
	pending atomic.Pointer[config]
	// clock is the time source for time recurrences (tests replace it).
	clock = time.Now
)

func init() {
	strP := func(name, def string) modules.Param {
		return modules.Param{Name: name, Kind: modules.ParamStr, Default: value.S(def)}
	}
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "partition", Kind: modules.ParamStr, Multi: true},
			{Name: "db_url", Kind: modules.ParamStr},
			strP("table_name", "dialplan"),
			strP("dpid_col", "dpid"),
			strP("pr_col", "pr"),
			strP("match_op_col", "match_op"),
			strP("match_exp_col", "match_exp"),
			strP("match_flags_col", "match_flags"),
			strP("subst_exp_col", "subst_exp"),
			strP("repl_exp_col", "repl_exp"),
			strP("attrs_col", "attrs"),
			strP("timerec_col", "timerec"),
			strP("disabled_col", "disabled"),
		},
		Configure: configure,
		Funcs: []*modules.Func{
			{Name: "dp_translate", Args: []check.ArgSpec{
				{Kind: check.ArgInt}, {Kind: check.ArgStr},
				{Kind: check.ArgVar, Optional: true, Writable: true},
				{Kind: check.ArgVar, Optional: true, Writable: true},
				{Kind: check.ArgStr, Optional: true}},
				Routes: check.Routes(ast.RequestRoute, ast.FailureRoute, ast.LocalRoute, ast.BranchRoute,
					ast.StartupRoute, ast.TimerRoute, ast.EventRoute),
				Fixup: fixupTranslate, Call: callTranslate},
		},
		MI: []modules.MICommand{
			{Name: "dp_reload", Help: "Params: [partition] ; reload the dialplan rules from the database", Run: miReload},
			{Name: "dp_translate", Help: "Params: dpid input [partition] ; translate input with the rules of dpid", Run: miTranslate},
			{Name: "dp_show_partition", Help: "Params: [partition] ; the partitions with their table and database", Run: miShowPartition},
		},
	})
	mi.DeclareParams("dp_reload", []string{}, []string{"partition"})
	mi.DeclareParams("dp_translate", []string{"dpid", "input"}, []string{"dpid", "input", "partition"})
	mi.DeclareParams("dp_show_partition", []string{}, []string{"partition"})
}

// parsePartition reads a "partition" modparam: "name: db_url = URL;
// table_name = T" or "default: name" (makes name the default partition).
func parsePartition(s string) (name string, props map[string]string, deflt string, err error) {
	name, rest, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if name == "" {
		return "", nil, "", fmt.Errorf("partition %q has no name", s)
	}
	props = map[string]string{}
	if !ok {
		return name, props, "", nil
	}
	items := strings.Split(rest, ";")
	if len(items) == 1 && !strings.Contains(rest, "=") && strings.TrimSpace(rest) != "" {
		if name != DefaultPartition {
			return "", nil, "", fmt.Errorf("partition %q: want \"name: db_url = …; table_name = …\"", s)
		}
		return "", nil, strings.TrimSpace(rest), nil
	}
	for _, it := range items {
		it = strings.TrimSpace(it)
		if it == "" {
			continue
		}
		k, v, ok := strings.Cut(it, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || (k != "db_url" && k != "table_name") {
			return "", nil, "", fmt.Errorf("invalid token %q in partition %q (want db_url or table_name)", it, name)
		}
		props[k] = v
	}
	return name, props, "", nil
}

func configure(p modules.Params) (func(), error) {
	cols := columns{
		dpid: p.Str("dpid_col"), pr: p.Str("pr_col"), matchOp: p.Str("match_op_col"),
		matchExp: p.Str("match_exp_col"), matchFlags: p.Str("match_flags_col"),
		substExp: p.Str("subst_exp_col"), replExp: p.Str("repl_exp_col"), attrs: p.Str("attrs_col"),
		timerec: p.Str("timerec_col"), disabled: p.Str("disabled_col"),
	}
	for _, c := range cols.list() {
		if err := store.CheckIdent("column", c); err != nil {
			return nil, err
		}
	}
	dbURL := strings.TrimSpace(p.Str("db_url"))
	table := strings.TrimSpace(p.Str("table_name"))
	cfg := &config{parts: map[string]*partition{}, deflt: DefaultPartition}
	for _, v := range p.All("partition") {
		name, props, deflt, err := parsePartition(v.AsString())
		if err != nil {
			return nil, fmt.Errorf("partition: %v", err)
		}
		if deflt != "" {
			cfg.deflt = deflt
			continue
		}
		pt := cfg.parts[name]
		if pt == nil {
			pt = &partition{name: name, dbURL: dbURL, table: table, cols: cols}
			cfg.parts[name] = pt
			cfg.ordered = append(cfg.ordered, name)
		}
		if u, ok := props["db_url"]; ok {
			pt.dbURL = u
		}
		if t, ok := props["table_name"]; ok {
			pt.table = t
		}
	}
	if cfg.parts[DefaultPartition] == nil && cfg.deflt == DefaultPartition && dbURL != "" {
		cfg.parts[DefaultPartition] = &partition{name: DefaultPartition, dbURL: dbURL, table: table, cols: cols}
		cfg.ordered = append([]string{DefaultPartition}, cfg.ordered...)
	}
	if cfg.deflt != DefaultPartition && cfg.parts[cfg.deflt] == nil {
		return nil, fmt.Errorf("partition: the default partition %q is not defined", cfg.deflt)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, name := range cfg.ordered {
		pt := cfg.parts[name]
		if pt.dbURL == "" {
			return nil, fmt.Errorf("partition %q has no db_url", name)
		}
		if err := store.CheckIdent("table_name", pt.table); err != nil {
			return nil, err
		}
		db, err := store.Open(pt.dbURL)
		if err != nil {
			return nil, fmt.Errorf("partition %q: %v", name, err)
		}
		want := 0
		if pt.table == "dialplan" {
			want = TableVersion
		}
		if err := db.CheckVersion(ctx, pt.table, want); err != nil {
			return nil, fmt.Errorf("partition %q: %v", name, err)
		}
		pt.db = db
		d, err := load(ctx, db, pt.table, pt.cols, warn)
		if err != nil {
			return nil, fmt.Errorf("partition %q: %v", name, err)
		}
		pt.data.Store(d)
	}
	pending.Store(cfg)
	return func() { live.Store(cfg) }, nil
}

func warn(text string) { tm.Log(msgctx.LWarn, Name, text) }

func cfgForFixup() *config {
	if c := pending.Load(); c != nil {
		return c
	}
	return live.Load()
}

// partitionOf finds a partition of the live configuration ("" is the
// default one).
func (c *config) partitionOf(name string) *partition {
	if c == nil {
		return nil
	}
	if name == "" {
		name = c.deflt
	}
	return c.parts[name]
}

// reload reads a partition's rules again; the old ones stay on error.
func (pt *partition) reload() error {
	pt.reloadMu.Lock()
	defer pt.reloadMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := load(ctx, pt.db, pt.table, pt.cols, warn)
	if err != nil {
		return err
	}
	pt.data.Store(d)
	return nil
}

// Translate runs the rules of dpid in partition part ("" for the default
// one) on input. ok is false when no rule matches.
func Translate(part string, dpid int, input string) (out, attrs string, ok bool, err error) {
	pt := live.Load().partitionOf(part)
	if pt == nil {
		return "", "", false, fmt.Errorf("partition %q not found", part)
	}
	d := pt.data.Load()
	s := d.sets[dpid]
	if s == nil {
		return "", "", false, nil
	}
	out, attrs, err = s.translate(input, clock())
	if err == errNoMatch {
		return "", "", false, nil
	}
	return out, attrs, err == nil, err
}

// ---- dp_translate() ----

type fix struct {
	part      string
	partConst bool
}

func fixupTranslate(args []check.FixupArg) (any, error) {
	f := &fix{partConst: true}
	if len(args) > 4 && args[4].Present {
		if !args[4].Const {
			f.partConst = false
			return f, nil
		}
		f.part = args[4].Str
	}
	cfg := cfgForFixup()
	if cfg == nil {
		return f, nil
	}
	if cfg.partitionOf(f.part) == nil {
		name := f.part
		if name == "" {
			name = cfg.deflt
			return nil, fmt.Errorf("dp_translate: no %q partition (set modparam(\"dialplan\", \"db_url\", …) or define the partition)", name)
		}
		return nil, check.ArgError(4, "partition %q is not defined", name)
	}
	return f, nil
}

func callTranslate(m *msgctx.Msg, a *modules.Args) int {
	f, _ := a.Fix.(*fix)
	part := ""
	if f != nil {
		part = f.part
	}
	if f != nil && !f.partConst {
		part = a.Str(4)
	}
	dpid := a.Int(0)
	out, attrs, ok, err := Translate(part, dpid, a.Str(1))
	if err != nil {
		if m.Host != nil {
			m.Host.Log(m, msgctx.LErr, fmt.Sprintf("dp_translate: dpid %d: %v", dpid, err))
		}
		return -1
	}
	if !ok {
		return -1
	}
	if a.Has(2) && out != "" {
		if err := a.Ref(2).Set(m, "=", value.S(out)); err != nil {
			if m.Host != nil {
				m.Host.Log(m, msgctx.LErr, "dp_translate: cannot set the output: "+err.Error())
			}
			return -1
		}
	}
	if a.Has(3) && attrs != "" {
		if err := a.Ref(3).Set(m, "=", value.S(attrs)); err != nil {
			if m.Host != nil {
				m.Host.Log(m, msgctx.LErr, "dp_translate: cannot set the attributes: "+err.Error())
			}
			return -1
		}
	}
	return 1
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
		return fmt.Sprint(int64(x)), true
	}
	return fmt.Sprint(v), true
}

func miReload(params map[string]any) (any, error) {
	cfg := live.Load()
	if cfg == nil {
		return nil, mi.Errorf(500, "dialplan is not configured")
	}
	if name, ok := miStr(params, "partition"); ok {
		pt := cfg.parts[name]
		if pt == nil {
			return nil, mi.Errorf(400, "Partition not found")
		}
		if err := pt.reload(); err != nil {
			return nil, mi.Errorf(500, "failed to reload: %v", err)
		}
		return "OK", nil
	}
	for _, name := range cfg.ordered {
		if err := cfg.parts[name].reload(); err != nil {
			return nil, mi.Errorf(500, "failed to reload %s: %v", name, err)
		}
	}
	return "OK", nil
}

func miTranslate(params map[string]any) (any, error) {
	cfg := live.Load()
	part, hasPart := miStr(params, "partition")
	pt := cfg.partitionOf(part)
	if pt == nil {
		if hasPart {
			return nil, mi.Errorf(400, "Partition not found")
		}
		return nil, mi.Errorf(404, "'default' partition not found")
	}
	ds, _ := miStr(params, "dpid")
	var dpid int
	if _, err := fmt.Sscan(ds, &dpid); err != nil || ds == "" {
		return nil, mi.Errorf(404, "Wrong id parameter")
	}
	input, _ := miStr(params, "input")
	if input == "" {
		return nil, mi.Errorf(404, "Empty input parameter")
	}
	s := pt.data.Load().sets[dpid]
	if s == nil {
		return nil, mi.Errorf(404, "No information available for dpid")
	}
	out, attrs, err := s.translate(input, clock())
	if err != nil {
		return nil, mi.Errorf(404, "No translation")
	}
	return map[string]any{"Output": out, "ATTRIBUTES": attrs}, nil
}

func miShowPartition(params map[string]any) (any, error) {
	cfg := live.Load()
	if cfg == nil {
		return map[string]any{"Partitions": []any{}}, nil
	}
	desc := func(pt *partition) map[string]any {
		return map[string]any{"name": pt.name, "table": pt.table, "db_url": pt.dbURL}
	}
	if name, ok := miStr(params, "partition"); ok {
		pt := cfg.parts[name]
		if pt == nil {
			return nil, mi.Errorf(404, "Partition Not Found")
		}
		return map[string]any{"Partition": pt.name, "Table": pt.table, "db_url": pt.dbURL}, nil
	}
	names := append([]string(nil), cfg.ordered...)
	sort.Strings(names)
	var out []any
	for _, n := range names {
		out = append(out, desc(cfg.parts[n]))
	}
	return map[string]any{"Partitions": out}, nil
}
