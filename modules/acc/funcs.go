package acc

import (
	"fmt"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/modules/dialog"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/store"
)

// doAccFix is what the fixups of do_accounting/drop_accounting keep for
// constant arguments.
type doAccFix struct {
	types, opts           uint8
	typesConst, optsConst bool
}

func fixupTypesOpts(args []check.FixupArg, typesRequired bool) (*doAccFix, error) {
	f := &doAccFix{}
	if len(args) > 0 && args[0].Present && args[0].Const {
		t, err := parseTypes(args[0].Str)
		if err != nil {
			return nil, check.ArgError(0, "%v", err)
		}
		if t&beAAA != 0 {
			return nil, check.ArgError(0, "sipedge has no AAA (RADIUS/Diameter) accounting backend")
		}
		f.types, f.typesConst = t, true
	} else if len(args) == 0 || !args[0].Present {
		if typesRequired {
			return nil, check.ArgError(0, "the accounting type is required")
		}
		f.types, f.typesConst = allBackends, true
	}
	if len(args) > 1 && args[1].Present && args[1].Const {
		o, err := parseOpts(args[1].Str)
		if err != nil {
			return nil, check.ArgError(1, "%v", err)
		}
		f.opts, f.optsConst = o, true
	} else if len(args) < 2 || !args[1].Present {
		f.optsConst = true
	}
	return f, nil
}

func fixupDoAcc(args []check.FixupArg) (any, error) {
	f, err := fixupTypesOpts(args, true)
	if err != nil {
		return nil, err
	}
	if f.typesConst && f.types&beDB != 0 {
		if cfg := cfgForFixup(); cfg != nil && cfg.db == nil {
			return nil, check.ArgError(0, "db accounting needs modparam(\"acc\", \"db_url\", ...)")
		}
	}
	return f, nil
}

func fixupDropAcc(args []check.FixupArg) (any, error) { return fixupTypesOpts(args, false) }

func fixupDBRequest(args []check.FixupArg) (any, error) {
	if cfg := cfgForFixup(); cfg != nil && cfg.db == nil {
		return nil, fmt.Errorf("acc_db_request needs modparam(\"acc\", \"db_url\", ...)")
	}
	if len(args) > 1 && args[1].Const {
		if err := checkTable(args[1].Str); err != nil {
			return nil, check.ArgError(1, "%v", err)
		}
	}
	return nil, nil
}

func fixupAAA([]check.FixupArg) (any, error) {
	return nil, fmt.Errorf("acc_aaa_request: sipedge has no AAA (RADIUS/Diameter) accounting backend")
}

func checkTable(t string) error {
	if !store.IsIdent(t) {
		return fmt.Errorf("table %q is not a valid SQL identifier (letters, digits and _)", t)
	}
	return nil
}

// typesOpts resolves do_accounting's first two arguments.
func typesOpts(a *modules.Args) (uint8, uint8, error) {
	f, _ := a.Fix.(*doAccFix)
	if f == nil {
		f = &doAccFix{}
	}
	types, opts := f.types, f.opts
	if !f.typesConst {
		t, err := parseTypes(a.Str(0))
		if err != nil {
			return 0, 0, err
		}
		if t&beAAA != 0 {
			return 0, 0, fmt.Errorf("sipedge has no AAA accounting backend")
		}
		types = t
	}
	if !f.optsConst {
		o, err := parseOpts(a.Str(1))
		if err != nil {
			return 0, 0, err
		}
		opts = o
	}
	return types, opts, nil
}

func logf(m *msgctx.Msg, level int, format string, args ...any) {
	if m.Host != nil {
		m.Host.Log(m, level, Name+": "+fmt.Sprintf(format, args...))
	}
}

func hasToTag(req *sip.Request) bool {
	if req == nil {
		return false
	}
	t := req.To()
	return t != nil && tagOf(t.Params) != ""
}

// upstream reports whether a sequential request goes from callee to caller
// (its dialog says so), for detect_direction.
func upstream(m *msgctx.Msg) bool {
	s := pvar.Lookup("DLG_dir")
	if s == nil {
		return false
	}
	return s.Get(m, nil, pvar.Index{}).AsString() == "UPSTREAM"
}

// callDoAcc is do_accounting(type[, flags[, table]]).
func callDoAcc(m *msgctx.Msg, a *modules.Args) int {
	cfg := live.Load()
	req := m.Req
	if cfg == nil || req == nil {
		return -1
	}
	types, opts, err := typesOpts(a)
	if err != nil {
		logf(m, msgctx.LErr, "do_accounting: %v", err)
		return -1
	}
	if types&beDB != 0 && cfg.db == nil {
		logf(m, msgctx.LErr, "do_accounting: db accounting needs modparam(\"acc\", \"db_url\", ...)")
		return -1
	}
	if req.IsCancel() && !cfg.reportCancels {
		logf(m, msgctx.LWarn, "do_accounting() called on CANCEL but 'report_cancels' is not set - no accounting for this transaction")
		return 1
	}
	table := ""
	if a.Has(2) {
		if table = a.Str(2); checkTable(table) != nil {
			logf(m, msgctx.LErr, "do_accounting: bad table %q", table)
			return -1
		}
	}
	c := ensureCtx(m)
	c.mu.Lock()
	firstCDR := !c.m.any(optCDR) && opts&(1<<optCDR) != 0
	if types&beDB != 0 {
		if table != "" {
			c.table = table
		} else if c.table == "" {
			c.table = cfg.tableAcc
		}
	}
	c.m.set(types, opts)
	if firstCDR && !hasToTag(req) {
		c.created = clock()
	}
	c.mu.Unlock()
	if firstCDR && !hasToTag(req) && req.IsInvite() {
		if _, err := dialog.Ensure(m); err != nil {
			logf(m, msgctx.LErr, "do_accounting: cannot use dialog accounting: %v", err)
			return -1
		}
	}
	if cfg.detectDirection && hasToTag(req) && upstream(m) {
		c.mu.Lock()
		c.upstream = true
		c.mu.Unlock()
	}
	return 1
}

// callDropAcc is drop_accounting([type[, flags]]).
func callDropAcc(m *msgctx.Msg, a *modules.Args) int {
	c := ctxOf(m.Mod)
	if c == nil {
		logf(m, msgctx.LErr, "drop_accounting: do_accounting() was not used")
		return -1
	}
	types, opts, err := typesOpts(a)
	if err != nil {
		logf(m, msgctx.LErr, "drop_accounting: %v", err)
		return -1
	}
	c.mu.Lock()
	c.m.drop(types, opts)
	c.mu.Unlock()
	return 1
}

// requestRecord builds the record of an acc_*_request call.
func requestRecord(m *msgctx.Msg, comment string) (record, bool) {
	if m.Req == nil {
		return record{}, false
	}
	code, reason := parseComment(comment)
	r := coreFrom(m.Req, nil, code, reason, false)
	r.at = clock()
	if c := ctxOf(m.Mod); c != nil {
		c.mu.Lock()
		r.extra = c.snapshotExtra()
		c.mu.Unlock()
	}
	return r, true
}

func callLogRequest(m *msgctx.Msg, a *modules.Args) int {
	cfg := live.Load()
	r, ok := requestRecord(m, a.Str(0))
	if cfg == nil || !ok {
		return -1
	}
	cfg.logRecord(kindRequest, &r)
	return 1
}

func callDBRequest(m *msgctx.Msg, a *modules.Args) int {
	cfg := live.Load()
	r, ok := requestRecord(m, a.Str(0))
	if cfg == nil || !ok {
		return -1
	}
	if err := cfg.dbRecord(kindRequest, a.Str(1), &r); err != nil {
		logf(m, msgctx.LErr, "acc_db_request: %v", err)
		return -1
	}
	return 1
}

func callEviRequest(m *msgctx.Msg, a *modules.Args) int {
	cfg := live.Load()
	r, ok := requestRecord(m, a.Str(0))
	if cfg == nil || !ok {
		return -1
	}
	cfg.eviRecord(kindRequest, &r)
	return 1
}
