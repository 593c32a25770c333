// Package acc is OpenSIPS 3.x's acc module: transaction accounting, missed
// calls and dialog-based CDRs, to the log, to SQLite (OpenSIPS's acc and
// missed_calls tables) and as events (E_ACC_EVENT, E_ACC_MISSED_EVENT,
// E_ACC_CDR).
//
// do_accounting() only marks the request; the records are made later, from
// tm's hooks (modules/tm/hooks.go): each final reply a transaction sends
// upstream (OnResponseOut), the start of a failure_route (OnFailure, missed
// calls) and the end of the call's dialog (dialog.OnEnd, CDRs). See
// README.md for what differs from OpenSIPS.
package acc

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "acc"

// TableVersion is the acc table version OpenSIPS 3.x checks.
const TableVersion = 7

type columns struct {
	method, fromTag, toTag, callID, code, reason, time string
}

// extraDef is one extra_fields entry: $acc_extra(tag) is recorded as name
// by the backends in backends.
type extraDef struct {
	tag, name string
	backends  uint8
}

type config struct {
	dbURL                   string
	db                      *store.DB
	tableAcc, tableMissed   string
	cols                    columns
	logLevel                int
	earlyMedia              bool
	reportCancels           bool
	detectDirection         bool
	extras                  []extraDef
	tags                    map[string]bool
	hasDBExtras, hasAnyTags bool
}

var (
	live atomic.Pointer[config]
	// pending is the configuration of the script being loaded, so fixups
	// can check what it allows before it goes live.
	pending atomic.Pointer[config]
	// clock is the time source (tests replace it).
	clock = time.Now
)

var accRoutes = check.Routes(ast.RequestRoute, ast.FailureRoute, ast.BranchRoute, ast.LocalRoute)

func init() {
	strP := func(name, def string) modules.Param {
		return modules.Param{Name: name, Kind: modules.ParamStr, Default: value.S(def)}
	}
	intP := func(name string, def int) modules.Param {
		return modules.Param{Name: name, Kind: modules.ParamInt, Default: value.I(def)}
	}
	str := check.ArgSpec{Kind: check.ArgStr}
	optStr := check.ArgSpec{Kind: check.ArgStr, Optional: true}
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "db_url", Kind: modules.ParamStr},
			strP("db_table_acc", "acc"),
			strP("db_table_missed_calls", "missed_calls"),
			strP("acc_method_column", "method"),
			strP("acc_from_tag_column", "from_tag"),
			strP("acc_to_tag_column", "to_tag"),
			strP("acc_callid_column", "callid"),
			strP("acc_sip_code_column", "sip_code"),
			strP("acc_sip_reason_column", "sip_reason"),
			strP("acc_time_column", "time"),
			{Name: "extra_fields", Kind: modules.ParamStr, Multi: true},
			{Name: "leg_fields", Kind: modules.ParamStr, Multi: true},
			intP("log_level", msgctx.LNotice),
			strP("log_facility", "LOG_DAEMON"),
			intP("early_media", 0),
			intP("report_cancels", 0),
			intP("detect_direction", 0),
			{Name: "aaa_url", Kind: modules.ParamStr},
			intP("service_type", -1),
			strP("acc_created_avp_name", "accX_created"),
			{Name: "db_table_avp", Kind: modules.ParamStr},
		},
		Configure: configure,
		Shutdown:  func() error { Flush(); return nil },
		Funcs: []*modules.Func{
			{Name: "do_accounting", Args: []check.ArgSpec{str, optStr, optStr}, Routes: accRoutes,
				Fixup: fixupDoAcc, Call: callDoAcc},
			{Name: "drop_accounting", Args: []check.ArgSpec{optStr, optStr}, Routes: accRoutes,
				Fixup: fixupDropAcc, Call: callDropAcc},
			{Name: "acc_log_request", Args: []check.ArgSpec{str}, Routes: accRoutes, Call: callLogRequest},
			{Name: "acc_db_request", Args: []check.ArgSpec{str, str}, Routes: accRoutes,
				Fixup: fixupDBRequest, Call: callDBRequest},
			{Name: "acc_evi_request", Args: []check.ArgSpec{str}, Routes: accRoutes, Call: callEviRequest},
			{Name: "acc_aaa_request", Args: []check.ArgSpec{str}, Routes: accRoutes, Fixup: fixupAAA,
				Call: func(*msgctx.Msg, *modules.Args) int { return -1 }},
			{Name: "acc_new_leg", Routes: accRoutes, Call: func(*msgctx.Msg, *modules.Args) int { return 1 }},
		},
		PVars: []*pvar.Spec{
			{Name: "acc_extra", Arg: pvar.NeedArg, Writable: true, Fix: fixExtra, Get: getExtra, Set: setExtra},
			{Name: "acc_current_leg", Get: func(*msgctx.Msg, any, pvar.Index) value.Value { return value.I(0) }},
		},
	})
}

func configure(p modules.Params) (func(), error) {
	cfg := &config{
		dbURL:       strings.TrimSpace(p.Str("db_url")),
		tableAcc:    strings.TrimSpace(p.Str("db_table_acc")),
		tableMissed: strings.TrimSpace(p.Str("db_table_missed_calls")),
		cols: columns{
			method: p.Str("acc_method_column"), fromTag: p.Str("acc_from_tag_column"),
			toTag: p.Str("acc_to_tag_column"), callID: p.Str("acc_callid_column"),
			code: p.Str("acc_sip_code_column"), reason: p.Str("acc_sip_reason_column"),
			time: p.Str("acc_time_column"),
		},
		logLevel:        p.Int("log_level"),
		earlyMedia:      p.Int("early_media") != 0,
		reportCancels:   p.Int("report_cancels") != 0,
		detectDirection: p.Int("detect_direction") != 0,
		tags:            map[string]bool{},
	}
	if cfg.logLevel < msgctx.LAlert || cfg.logLevel > msgctx.LDbg {
		return nil, fmt.Errorf("log_level must be an OpenSIPS level (-3 … 4), not %d", cfg.logLevel)
	}
	if u := strings.TrimSpace(p.Str("aaa_url")); u != "" {
		return nil, fmt.Errorf("aaa_url: sipedge has no AAA (RADIUS/Diameter) accounting backend")
	}
	for _, v := range p.All("leg_fields") {
		if strings.TrimSpace(v.AsString()) != "" {
			return nil, fmt.Errorf("leg_fields: multi-leg accounting is not supported by sipedge")
		}
	}
	if strings.TrimSpace(p.Str("db_table_avp")) != "" {
		return nil, fmt.Errorf("db_table_avp is gone since OpenSIPS 2.2: give the table to do_accounting(\"db\", flags, table)")
	}
	for _, v := range p.All("extra_fields") {
		defs, err := parseExtras(v.AsString())
		if err != nil {
			return nil, fmt.Errorf("extra_fields: %v", err)
		}
		cfg.extras = append(cfg.extras, defs...)
	}
	for _, e := range cfg.extras {
		cfg.tags[e.tag] = true
		if e.backends&beDB != 0 {
			cfg.hasDBExtras = true
			if err := store.CheckIdent("extra_fields db column", e.name); err != nil {
				return nil, err
			}
		}
		if e.backends&beAAA != 0 && e.backends != allBackends {
			return nil, fmt.Errorf("extra_fields: sipedge has no AAA accounting backend")
		}
	}
	for what, c := range map[string]string{"db_table_acc": cfg.tableAcc, "db_table_missed_calls": cfg.tableMissed,
		"acc_method_column": cfg.cols.method, "acc_from_tag_column": cfg.cols.fromTag,
		"acc_to_tag_column": cfg.cols.toTag, "acc_callid_column": cfg.cols.callID,
		"acc_sip_code_column": cfg.cols.code, "acc_sip_reason_column": cfg.cols.reason,
		"acc_time_column": cfg.cols.time} {
		if err := store.CheckIdent(what, c); err != nil {
			return nil, err
		}
	}
	if cfg.dbURL != "" {
		db, err := store.Open(cfg.dbURL)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := db.CheckVersion(ctx, cfg.tableAcc, TableVersion); err != nil {
			return nil, err
		}
		if err := db.CheckVersion(ctx, cfg.tableMissed, 0); err != nil {
			return nil, err
		}
		cfg.db = db
	} else if cfg.hasDBExtras {
		return nil, fmt.Errorf("extra_fields has db fields but there is no db_url")
	}
	pending.Store(cfg)
	return func() { live.Store(cfg) }, nil
}

// parseExtras reads one extra_fields value: "backend: tag->name; tag2".
// A value without a backend prefix applies to every backend.
func parseExtras(s string) ([]extraDef, error) {
	var out []extraDef
	be := allBackends
	for _, tok := range strings.Split(s, ";") {
		tok = strings.TrimSpace(tok)
		if i := strings.IndexByte(tok, ':'); i >= 0 {
			b, err := parseTypes(tok[:i])
			if err != nil {
				return nil, err
			}
			be = b
			tok = strings.TrimSpace(tok[i+1:])
		}
		if tok == "" {
			continue
		}
		tag, name := tok, tok
		if i := strings.Index(tok, "->"); i >= 0 {
			tag, name = strings.TrimSpace(tok[:i]), strings.TrimSpace(tok[i+2:])
		}
		if tag == "" || name == "" {
			return nil, fmt.Errorf("bad extra definition %q (want tag->name or name)", tok)
		}
		out = append(out, extraDef{tag: tag, name: name, backends: be})
	}
	return out, nil
}

// cfgForFixup is the configuration a fixup checks against: the one being
// loaded, else the live one.
func cfgForFixup() *config {
	if c := pending.Load(); c != nil {
		return c
	}
	return live.Load()
}

// ---- per-call context ----

// accCtx is what do_accounting and $acc_extra set up for a transaction. It
// is kept in the message's module data, which the runtime hands to the
// transaction's routes and hooks (the pointer is shared).
type accCtx struct {
	mu       sync.Mutex
	m        mask
	table    string // db table of do_accounting
	created  time.Time
	upstream bool // detect_direction: a sequential request from the callee
	extra    map[string]string
	done     map[string]bool // replies already accounted (2xx retransmissions)
	cdrSaved bool
}

func ctxOf(mod map[string]any) *accCtx {
	c, _ := mod[Name].(*accCtx)
	return c
}

func ensureCtx(m *msgctx.Msg) *accCtx {
	return m.ModData(Name, func() any { return &accCtx{} }).(*accCtx)
}

// snapshotExtra copies the extra values (the caller holds c.mu).
func (c *accCtx) snapshotExtra() map[string]string {
	if len(c.extra) == 0 {
		return nil
	}
	out := make(map[string]string, len(c.extra))
	for k, v := range c.extra {
		out[k] = v
	}
	return out
}

// ---- $acc_extra ----

func fixExtra(arg string, _ check.Slots) (any, error) {
	if cfg := cfgForFixup(); cfg != nil && !cfg.tags[arg] {
		return nil, fmt.Errorf("tag %q is not defined by modparam(\"acc\", \"extra_fields\", ...)", arg)
	}
	return arg, nil
}

func getExtra(m *msgctx.Msg, arg any, _ pvar.Index) value.Value {
	c := ctxOf(m.Mod)
	if c == nil {
		return value.Null
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.extra[arg.(string)]; ok {
		return value.S(v)
	}
	return value.Null
}

func setExtra(m *msgctx.Msg, arg any, _ pvar.Index, _ string, v value.Value) error {
	c := ensureCtx(m)
	c.mu.Lock()
	defer c.mu.Unlock()
	if v.IsNull() {
		delete(c.extra, arg.(string))
		return nil
	}
	if c.extra == nil {
		c.extra = map[string]string{}
	}
	c.extra[arg.(string)] = v.AsString()
	return nil
}
