// Package dialog is OpenSIPS's dialog module: call tracking from the
// initial INVITE to the BYE (or lifetime timeout), dialog flags and values,
// dialog profiles with O(1) sizes, E_DLG_STATE_CHANGED events, MI commands,
// and restart persistence in an SQLite "dialog" table (db_mode).
//
// Dialogs belong to the process, not to a script generation: a reload
// keeps every dialog, its values and profile memberships (profiles are
// matched by name; a profile the new script no longer defines keeps its
// counters).
//
// The SIP runtime drives the state machine through tm's hooks
// (modules/tm/hooks.go): a sequential request is matched to its dialog
// (Call-ID and tags) before the script runs, ACK confirms, BYE ends; the
// replies a transaction sends upstream move the dialog of its initial
// INVITE to early, confirmed or failed.
package dialog

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "dialog"

// DefaultTimeout is default_timeout's default (12 hours).
const DefaultTimeout = 43200

type config struct {
	defaultTimeout int
	hashSize       uint32
	rrParam        string
	matchMode      int
	dbMode         int
	dbURL, table   string
	extraHdrs      string
	profiles       []profileDef
}

var live atomic.Pointer[config]

func liveConfig() *config {
	if c := live.Load(); c != nil {
		return c
	}
	return &config{defaultTimeout: DefaultTimeout, hashSize: 4096, rrParam: "did", table: "dialog"}
}

var (
	reqRoutes  = check.Routes(ast.RequestRoute)
	dlgRoutes  = check.Routes(ast.RequestRoute, ast.BranchRoute, ast.FailureRoute, ast.OnReplyRoute)
	flagRoutes = check.Routes(ast.RequestRoute, ast.BranchRoute, ast.FailureRoute, ast.OnReplyRoute, ast.LocalRoute)
)

func init() {
	str := check.ArgSpec{Kind: check.ArgStr}
	optStr := check.ArgSpec{Kind: check.ArgStr, Optional: true}
	out := check.ArgSpec{Kind: check.ArgVar, Writable: true}
	intP := func(name string, def int) modules.Param {
		return modules.Param{Name: name, Kind: modules.ParamInt, Default: value.I(def)}
	}
	strP := func(name, def string) modules.Param {
		p := modules.Param{Name: name, Kind: modules.ParamStr}
		if def != "" {
			p.Default = value.S(def)
		}
		return p
	}
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			intP("enable_stats", 1),
			intP("hash_size", 4096),
			intP("log_profile_hash_size", 4), // 2.x; accepted, counters need no table
			strP("rr_param", "did"),
			intP("default_timeout", DefaultTimeout),
			strP("dlg_extra_hdrs", ""),
			intP("dlg_match_mode", 0),
			strP("db_url", ""),
			intP("db_mode", 0),
			intP("db_update_period", 60),
			intP("options_ping_interval", 30),
			intP("reinvite_ping_interval", 300),
			strP("table_name", "dialog"),
			{Name: "profiles_with_value", Kind: modules.ParamStr, Multi: true},
			{Name: "profiles_no_value", Kind: modules.ParamStr, Multi: true},
			intP("db_flush_vals_profiles", 1),
			intP("timer_bulk_del_no", 1),
			intP("dialog_replication_cluster", 0),
			intP("profile_replication_cluster", 0),
			{Name: "dlg_sharing_tag", Kind: modules.ParamStr, Multi: true},
		},
		Configure: configure,
		Funcs: []*modules.Func{
			{Name: "create_dialog", Args: []check.ArgSpec{optStr}, Routes: reqRoutes, Fixup: fixupCreate, Call: callCreate},
			{Name: "match_dialog", Args: []check.ArgSpec{optStr}, Routes: reqRoutes, Call: callMatch},
			{Name: "validate_dialog", Routes: reqRoutes, Call: callValidate},
			{Name: "set_dlg_profile", Args: []check.ArgSpec{str, optStr}, Routes: dlgRoutes, Fixup: fixupProfile, Call: callSetProfile},
			{Name: "unset_dlg_profile", Args: []check.ArgSpec{str, optStr}, Routes: dlgRoutes, Fixup: fixupProfile, Call: callUnsetProfile},
			{Name: "is_in_profile", Args: []check.ArgSpec{str, optStr}, Routes: dlgRoutes, Fixup: fixupProfile, Call: callIsInProfile},
			{Name: "get_profile_size", Args: []check.ArgSpec{str, optStr, out}, Fixup: fixupProfile, Call: callProfileSize},
			{Name: "set_dlg_flag", Args: []check.ArgSpec{str}, Routes: flagRoutes, Fixup: fixupFlag, Call: callSetFlag},
			{Name: "reset_dlg_flag", Args: []check.ArgSpec{str}, Routes: flagRoutes, Fixup: fixupFlag, Call: callResetFlag},
			{Name: "is_dlg_flag_set", Args: []check.ArgSpec{str}, Routes: flagRoutes, Fixup: fixupFlag, Call: callIsFlagSet},
			{Name: "test_and_set_dlg_flag", Args: []check.ArgSpec{str, {Kind: check.ArgInt}}, Routes: flagRoutes, Fixup: fixupFlag, Call: callTestAndSetFlag},
			{Name: "store_dlg_value", Args: []check.ArgSpec{str, str}, Routes: flagRoutes, Call: callStoreValue},
			{Name: "fetch_dlg_value", Args: []check.ArgSpec{str, out}, Routes: flagRoutes, Call: callFetchValue},
		},
		PVars: []*pvar.Spec{
			{Name: "DLG_count", Get: getCount},
			{Name: "DLG_status", Get: getStatus},
			{Name: "DLG_lifetime", Get: getLifetime},
			{Name: "DLG_flags", Writable: true, Get: getFlags, Set: setFlags},
			{Name: "DLG_dir", Get: getDir},
			{Name: "DLG_did", Get: getDID},
			{Name: "DLG_end_reason", Get: getEndReason},
			{Name: "DLG_timeout", Writable: true, Get: getTimeout, Set: setTimeout},
			{Name: "dlg_val", Arg: pvar.NeedArg, Writable: true, Get: getVal, Set: setVal},
		},
		MI: miCommands(),
	})
}

// pending is the profile set of the script being loaded, so fixups can
// check profile names before the script goes live.
var (
	pendingMu sync.Mutex
	pending   map[string]bool
)

func configure(p modules.Params) (func(), error) {
	cfg := &config{
		defaultTimeout: p.Int("default_timeout"),
		rrParam:        strings.TrimSpace(p.Str("rr_param")),
		matchMode:      p.Int("dlg_match_mode"),
		dbMode:         p.Int("db_mode"),
		dbURL:          strings.TrimSpace(p.Str("db_url")),
		table:          strings.TrimSpace(p.Str("table_name")),
		extraHdrs:      p.Str("dlg_extra_hdrs"),
	}
	if cfg.defaultTimeout <= 0 {
		return nil, fmt.Errorf("default_timeout must be a positive number of seconds, not %d", cfg.defaultTimeout)
	}
	hs := p.Int("hash_size")
	if hs <= 0 {
		return nil, fmt.Errorf("hash_size must be positive, not %d", hs)
	}
	cfg.hashSize = 1
	for int(cfg.hashSize) < hs && cfg.hashSize < 1<<30 {
		cfg.hashSize <<= 1
	}
	if cfg.matchMode < 0 || cfg.matchMode > 2 {
		return nil, fmt.Errorf("dlg_match_mode must be 0, 1 or 2, not %d", cfg.matchMode)
	}
	if cfg.dbMode < 0 || cfg.dbMode > 3 {
		return nil, fmt.Errorf("db_mode must be 0 (none), 1 (realtime), 2 (delayed) or 3 (shutdown), not %d", cfg.dbMode)
	}
	for _, v := range p.All("profiles_with_value") {
		defs, err := parseProfiles(v.AsString(), true)
		if err != nil {
			return nil, fmt.Errorf("profiles_with_value: %v", err)
		}
		cfg.profiles = append(cfg.profiles, defs...)
	}
	for _, v := range p.All("profiles_no_value") {
		defs, err := parseProfiles(v.AsString(), false)
		if err != nil {
			return nil, fmt.Errorf("profiles_no_value: %v", err)
		}
		cfg.profiles = append(cfg.profiles, defs...)
	}
	seen := map[string]bool{}
	for _, d := range cfg.profiles {
		if seen[d.name] {
			return nil, fmt.Errorf("profile %q is defined twice", d.name)
		}
		seen[d.name] = true
	}
	var db *dbHandle
	if cfg.dbMode > 0 {
		var err error
		if db, err = openDB(cfg); err != nil {
			return nil, err
		}
	}
	pendingMu.Lock()
	pending = seen
	pendingMu.Unlock()
	return func() {
		defineProfiles(cfg.profiles)
		live.Store(cfg)
		startDB(db)
	}, nil
}

func logf(m *msgctx.Msg, level int, format string, args ...any) {
	if m != nil && m.Host != nil {
		m.Host.Log(m, level, fmt.Sprintf(format, args...))
	}
}

// ---- create / match / validate ----

func parseCreateFlags(s string) (uint8, error) {
	var f uint8
	for _, c := range strings.TrimSpace(s) {
		switch c {
		case 'B':
			f |= FlagByeOnTimeout
		case 'P':
			f |= FlagPingCaller
		case 'p':
			f |= FlagPingCallee
		case 'R':
			f |= FlagReinvCaller
		case 'r':
			f |= FlagReinvCallee
		default:
			return 0, fmt.Errorf("unknown create_dialog flag %q (want B, P, p, R or r)", c)
		}
	}
	return f, nil
}

func fixupCreate(args []check.FixupArg) (any, error) {
	if a := args[0]; a.Present && a.Const {
		f, err := parseCreateFlags(a.Str)
		if err != nil {
			return nil, check.ArgError(0, "%v", err)
		}
		return f, nil
	}
	return nil, nil
}

func callCreate(m *msgctx.Msg, a *modules.Args) int {
	if Current(m) != nil {
		return 1
	}
	f, ok := a.Fix.(uint8)
	if !ok && a.Has(0) {
		var err error
		if f, err = parseCreateFlags(a.Str(0)); err != nil {
			logf(m, msgctx.LErr, "create_dialog: %v", err)
			return -1
		}
	}
	if _, err := create(m, f); err != nil {
		logf(m, msgctx.LErr, "create_dialog: %v", err)
		return -1
	}
	return 1
}

func callMatch(m *msgctx.Msg, _ *modules.Args) int {
	if Current(m) != nil {
		return 1
	}
	onRequest(m)
	if Current(m) != nil {
		return 1
	}
	return -1
}

// callValidate checks a sequential request against its dialog: -1 CSeq
// out of order, -2 wrong remote target, -4 no dialog.
func callValidate(m *msgctx.Msg, _ *modules.Args) int {
	md := currentCtx(m)
	if md == nil || md.created || m.Req == nil {
		return -4
	}
	d := md.d
	cs := m.Req.CSeq()
	if cs == nil {
		return -4
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	last, target := d.callerCSeq, d.calleeContact
	if md.dir == DirUpstream {
		last, target = d.calleeCSeq, d.callerContact
	}
	switch {
	case m.Req.IsAck() || m.Req.IsCancel():
		if md.dir == DirDownstream && cs.SeqNo < last {
			return -1
		}
	case cs.SeqNo < last:
		return -1
	}
	if target != "" {
		ru := m.Req.Recipient.String()
		if !strings.EqualFold(strings.Trim(target, "<>"), ru) && !sameHostPort(target, ru) {
			return -2
		}
	}
	return 1
}

func sameHostPort(a, b string) bool {
	ha, hb := hostPort(a), hostPort(b)
	return ha != "" && ha == hb
}

func hostPort(u string) string {
	u = strings.Trim(u, "<>")
	if i := strings.IndexByte(u, '@'); i >= 0 {
		u = u[i+1:]
	} else if i := strings.IndexByte(u, ':'); i >= 0 {
		u = u[i+1:]
	}
	if i := strings.IndexAny(u, ";?>"); i >= 0 {
		u = u[:i]
	}
	return strings.ToLower(u)
}

// ---- profiles ----

// profFix is the profile functions' fixup: an empty constant value (the
// `get_profile_size("p", , "$var(n)")` form) means no value.
type profFix struct{ noValue bool }

func fixupProfile(args []check.FixupArg) (any, error) {
	fx := &profFix{}
	if len(args) > 1 && args[1].Present && args[1].Const && args[1].Str == "" {
		fx.noValue = true
	}
	a := args[0]
	if !a.Present || !a.Const {
		return fx, nil
	}
	pendingMu.Lock()
	known := pending[a.Str]
	pendingMu.Unlock()
	if !known && LookupProfile(a.Str) == nil {
		return nil, check.ArgError(0, "no dialog profile %q (define it with the dialog modparam profiles_with_value or profiles_no_value)", a.Str)
	}
	return fx, nil
}

// hasValue tells whether a profile function got a value argument.
func hasValue(a *modules.Args) bool {
	if fx, ok := a.Fix.(*profFix); ok && fx.noValue {
		return false
	}
	return a.Has(1)
}

func profileArg(m *msgctx.Msg, fn string, a *modules.Args) *Profile {
	name := a.Str(0)
	p := LookupProfile(name)
	if p == nil {
		logf(m, msgctx.LErr, "%s: no dialog profile %q", fn, name)
	}
	return p
}

// SetProfile adds the dialog to a profile (with val for a profile with
// values). A dialog may be in a profile several times.
func (d *Dialog) SetProfile(p *Profile, val string) {
	if !p.WithValue {
		val = ""
	}
	d.mu.Lock()
	if d.state == StateDeleted {
		d.mu.Unlock()
		return
	}
	d.profiles = append(d.profiles, link{p: p, val: strings.Clone(val)})
	w := d.persisted
	d.mu.Unlock()
	p.add(val, 1)
	if w {
		persistUpdate(d)
	}
}

// UnsetProfile removes one membership; false if the dialog had none.
func (d *Dialog) UnsetProfile(p *Profile, val string, byValue bool) bool {
	d.mu.Lock()
	idx := -1
	for i, l := range d.profiles {
		if l.p == p && (!byValue || !p.WithValue || l.val == val) {
			idx = i
			break
		}
	}
	if idx < 0 {
		d.mu.Unlock()
		return false
	}
	l := d.profiles[idx]
	d.profiles = append(d.profiles[:idx], d.profiles[idx+1:]...)
	w := d.persisted
	d.mu.Unlock()
	p.add(l.val, -1)
	if w {
		persistUpdate(d)
	}
	return true
}

// InProfile tells whether the dialog is in a profile (with that value).
func (d *Dialog) InProfile(p *Profile, val string, byValue bool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range d.profiles {
		if l.p == p && (!byValue || !p.WithValue || l.val == val) {
			return true
		}
	}
	return false
}

func callSetProfile(m *msgctx.Msg, a *modules.Args) int {
	d := Current(m)
	if d == nil {
		logf(m, msgctx.LErr, "set_dlg_profile: no dialog for this message (call create_dialog() first)")
		return -1
	}
	p := profileArg(m, "set_dlg_profile", a)
	if p == nil {
		return -1
	}
	if p.WithValue && !hasValue(a) {
		logf(m, msgctx.LErr, "set_dlg_profile: profile %q needs a value", p.Name)
		return -1
	}
	val := ""
	if hasValue(a) {
		val = a.Str(1)
	}
	d.SetProfile(p, val)
	return 1
}

func callUnsetProfile(m *msgctx.Msg, a *modules.Args) int {
	d := Current(m)
	if d == nil {
		logf(m, msgctx.LErr, "unset_dlg_profile: no dialog for this message")
		return -1
	}
	p := profileArg(m, "unset_dlg_profile", a)
	if p == nil {
		return -1
	}
	val := ""
	if hasValue(a) {
		val = a.Str(1)
	}
	if d.UnsetProfile(p, val, hasValue(a)) {
		return 1
	}
	return -1
}

func callIsInProfile(m *msgctx.Msg, a *modules.Args) int {
	d := Current(m)
	if d == nil {
		return -1
	}
	p := profileArg(m, "is_in_profile", a)
	if p == nil {
		return -1
	}
	val := ""
	if hasValue(a) {
		val = a.Str(1)
	}
	if d.InProfile(p, val, hasValue(a)) {
		return 1
	}
	return -1
}

func callProfileSize(m *msgctx.Msg, a *modules.Args) int {
	p := profileArg(m, "get_profile_size", a)
	if p == nil {
		return -1
	}
	val := ""
	if hasValue(a) {
		val = a.Str(1)
	}
	n := p.Size(val, hasValue(a))
	if err := a.Ref(2).Set(m, "=", value.I(int(n))); err != nil {
		logf(m, msgctx.LErr, "get_profile_size: %v", err)
		return -1
	}
	return 1
}

// ---- flags ----

var (
	flagMu    sync.Mutex
	flagNames = map[string]int{}
)

// flagIndex reads a dialog flag: an index 0..31 or a name (names get the
// free indexes from 31 down, as OpenSIPS 3.x allocates named flags).
func flagIndex(s string) (int, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 31 {
			return 0, fmt.Errorf("dialog flag %d out of range (0..31)", n)
		}
		return n, nil
	}
	if s == "" {
		return 0, fmt.Errorf("empty dialog flag")
	}
	flagMu.Lock()
	defer flagMu.Unlock()
	if n, ok := flagNames[s]; ok {
		return n, nil
	}
	if len(flagNames) >= 32 {
		return 0, fmt.Errorf("too many named dialog flags (32 at most)")
	}
	n := 31 - len(flagNames)
	flagNames[s] = n
	return n, nil
}

func fixupFlag(args []check.FixupArg) (any, error) {
	if a := args[0]; a.Present && a.Const {
		n, err := flagIndex(a.Str)
		if err != nil {
			return nil, check.ArgError(0, "%v", err)
		}
		return n, nil
	}
	return nil, nil
}

func flagArg(m *msgctx.Msg, fn string, a *modules.Args) (int, bool) {
	if n, ok := a.Fix.(int); ok {
		return n, true
	}
	n, err := flagIndex(a.Str(0))
	if err != nil {
		logf(m, msgctx.LErr, "%s: %v", fn, err)
		return 0, false
	}
	return n, true
}

func (d *Dialog) changeFlags(fn func(f uint32) uint32) {
	d.mu.Lock()
	old := d.flags
	d.flags = fn(old)
	w := d.persisted && d.flags != old
	d.mu.Unlock()
	if w {
		persistUpdate(d)
	}
}

// Flags returns the dialog's script flags.
func (d *Dialog) Flags() uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.flags
}

func callSetFlag(m *msgctx.Msg, a *modules.Args) int {
	d := Current(m)
	n, ok := flagArg(m, "set_dlg_flag", a)
	if d == nil || !ok {
		return -1
	}
	d.changeFlags(func(f uint32) uint32 { return f | 1<<n })
	return 1
}

func callResetFlag(m *msgctx.Msg, a *modules.Args) int {
	d := Current(m)
	n, ok := flagArg(m, "reset_dlg_flag", a)
	if d == nil || !ok {
		return -1
	}
	d.changeFlags(func(f uint32) uint32 { return f &^ (1 << n) })
	return 1
}

func callIsFlagSet(m *msgctx.Msg, a *modules.Args) int {
	d := Current(m)
	n, ok := flagArg(m, "is_dlg_flag_set", a)
	if d == nil || !ok {
		return -1
	}
	if d.Flags()&(1<<n) != 0 {
		return 1
	}
	return -1
}

// callTestAndSetFlag flips the flag when it equals value, atomically.
func callTestAndSetFlag(m *msgctx.Msg, a *modules.Args) int {
	d := Current(m)
	n, ok := flagArg(m, "test_and_set_dlg_flag", a)
	if d == nil || !ok {
		return -1
	}
	want := a.Int(1) != 0
	hit := false
	d.changeFlags(func(f uint32) uint32 {
		if (f&(1<<n) != 0) == want {
			hit = true
			return f ^ 1<<n
		}
		return f
	})
	if hit {
		return 1
	}
	return -1
}

// ---- values ----

func callStoreValue(m *msgctx.Msg, a *modules.Args) int {
	d := Current(m)
	if d == nil {
		logf(m, msgctx.LErr, "store_dlg_value: no dialog for this message (call create_dialog() first)")
		return -1
	}
	d.SetValue(a.Str(0), a.Str(1), false)
	return 1
}

func callFetchValue(m *msgctx.Msg, a *modules.Args) int {
	d := Current(m)
	if d == nil {
		return -1
	}
	v, ok := d.Value(a.Str(0))
	if !ok {
		return -2
	}
	if err := a.Ref(1).Set(m, "=", value.S(v)); err != nil {
		logf(m, msgctx.LErr, "fetch_dlg_value: %v", err)
		return -1
	}
	return 1
}

// ---- pseudo-variables ----

func getCount(*msgctx.Msg, any, pvar.Index) value.Value { return value.I(int(tbl.count.Load())) }

func getStatus(m *msgctx.Msg, _ any, _ pvar.Index) value.Value {
	if d := Current(m); d != nil {
		return value.I(int(d.State()))
	}
	return value.Null
}

func getLifetime(m *msgctx.Msg, _ any, _ pvar.Index) value.Value {
	if d := Current(m); d != nil {
		return value.I(int(d.Lifetime(tmr.now())))
	}
	return value.Null
}

func getFlags(m *msgctx.Msg, _ any, _ pvar.Index) value.Value {
	if d := Current(m); d != nil {
		return value.I(int(d.Flags()))
	}
	return value.Null
}

func setFlags(m *msgctx.Msg, _ any, _ pvar.Index, _ string, v value.Value) error {
	d := Current(m)
	if d == nil {
		return fmt.Errorf("$DLG_flags: no dialog")
	}
	n, _ := v.AsInt()
	d.changeFlags(func(uint32) uint32 { return uint32(n) })
	return nil
}

func getDir(m *msgctx.Msg, _ any, _ pvar.Index) value.Value {
	md := currentCtx(m)
	if md == nil || md.created {
		return value.Null
	}
	if md.dir == DirUpstream {
		return value.S("UPSTREAM")
	}
	return value.S("DOWNSTREAM")
}

func getDID(m *msgctx.Msg, _ any, _ pvar.Index) value.Value {
	if d := Current(m); d != nil {
		return value.S(d.DID())
	}
	return value.Null
}

func getEndReason(m *msgctx.Msg, _ any, _ pvar.Index) value.Value {
	d := Current(m)
	if d == nil {
		return value.Null
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != StateDeleted || d.endReason == "" {
		return value.Null
	}
	return value.S(d.endReason)
}

func getTimeout(m *msgctx.Msg, _ any, _ pvar.Index) value.Value {
	d := Current(m)
	if d == nil {
		return value.Null
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.start == 0 {
		return value.I(int(d.timeout))
	}
	left := d.expires - tmr.now()
	if left < 0 {
		left = 0
	}
	return value.I(int(left))
}

// SetTimeout sets the dialog lifetime; on a confirmed dialog it counts
// from now.
func (d *Dialog) SetTimeout(secs int) {
	now := tmr.now()
	d.mu.Lock()
	d.timeout = int32(secs)
	var exp int64
	if d.start > 0 && d.state != StateDeleted {
		d.expires = now + int64(secs)
		exp = d.expires
	}
	w := d.persisted
	d.mu.Unlock()
	if exp > 0 {
		tmr.schedule(d, exp)
	}
	if w {
		persistUpdate(d)
	}
}

func setTimeout(m *msgctx.Msg, _ any, _ pvar.Index, _ string, v value.Value) error {
	d := Current(m)
	if d == nil {
		return fmt.Errorf("$DLG_timeout: no dialog")
	}
	n, ok := v.AsInt()
	if !ok || n <= 0 {
		return fmt.Errorf("$DLG_timeout: want a positive number of seconds, not %q", v.AsString())
	}
	d.SetTimeout(n)
	return nil
}

func getVal(m *msgctx.Msg, arg any, _ pvar.Index) value.Value {
	d := Current(m)
	if d == nil {
		return value.Null
	}
	name, _ := arg.(string)
	if v, ok := d.Value(name); ok {
		return value.S(v)
	}
	return value.Null
}

func setVal(m *msgctx.Msg, arg any, _ pvar.Index, _ string, v value.Value) error {
	d := Current(m)
	if d == nil {
		return fmt.Errorf("$dlg_val: no dialog for this message")
	}
	name, _ := arg.(string)
	d.SetValue(name, v.AsString(), v.IsNull())
	return nil
}
