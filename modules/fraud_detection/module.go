// Package frauddetection is OpenSIPS's fraud_detection module: per user and
// called prefix, it counts calls per minute, total calls (per day),
// concurrent calls, sequential calls to the same number and call duration,
// and checks them against the warning and critical thresholds of the
// matching rule of a fraud profile (OpenSIPS's fraud_detection table).
//
// Beyond OpenSIPS (see README.md): a rule's prefix may be a regular
// expression ("re:^\+88[0-9]+$") or a destination group ("grp:HIGHRISK",
// table fraud_dest_groups), a rule may be limited to a user group (optional
// user_group column, table fraud_user_groups), and the counters are kept in
// the fraud_stats table so a restart keeps them.
package frauddetection

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/modules/dialog"
	"github.com/sipedge/sipedge/runtime/events"
	"github.com/sipedge/sipedge/runtime/mi"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "fraud_detection"

// check_fraud's return codes (OpenSIPS's).
const (
	RetNoRule   = 2
	RetOK       = 1
	RetWarning  = -1
	RetCritical = -2
	RetError    = -3
)

// Event names.
const (
	EventWarning  = "E_FRD_WARNING"
	EventCritical = "E_FRD_CRITICAL"
)

// dlgKey is the dialog value that ties a call to the counters it must
// release when it ends (it survives restarts with the dialog).
const dlgKey = "__frd"

type config struct {
	dbURL, table                     string
	userGroupsTable, destGroupsTable string
	statsTable                       string
	persist                          bool
	flushEvery                       time.Duration
	utc                              bool
	cols                             columns
}

var (
	rules   atomic.Pointer[ruleset]
	liveCfg atomic.Pointer[config]
	// clock is the time source (tests replace it).
	clock = time.Now
)

func init() {
	strP := func(name, def string) modules.Param {
		return modules.Param{Name: name, Kind: modules.ParamStr, Default: value.S(def)}
	}
	intP := func(name string, def int) modules.Param {
		return modules.Param{Name: name, Kind: modules.ParamInt, Default: value.I(def)}
	}
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "db_url", Kind: modules.ParamStr},
			intP("use_utc_time", 0),
			strP("table_name", "fraud_detection"),
			strP("rid_col", "ruleid"),
			strP("pid_col", "profileid"),
			strP("prefix_col", "prefix"),
			strP("start_h_col", "start_hour"),
			strP("end_h_col", "end_hour"),
			strP("start_h", "start_hour"), // the name the module's README uses
			strP("end_h", "end_hour"),
			strP("days_col", "daysoftheweek"),
			strP("cpm_thresh_warn_col", "cpm_warning"),
			strP("cpm_thresh_crit_col", "cpm_critical"),
			strP("calldur_thresh_warn_col", "call_duration_warning"),
			strP("calldur_thresh_crit_col", "call_duration_critical"),
			strP("totalc_thresh_warn_col", "total_calls_warning"),
			strP("totalc_thresh_crit_col", "total_calls_critical"),
			strP("concalls_thresh_warn_col", "concurrent_calls_warning"),
			strP("concalls_thresh_crit_col", "concurrent_calls_critical"),
			strP("seqcalls_thresh_warn_col", "sequential_calls_warning"),
			strP("seqcalls_thresh_crit_col", "sequential_calls_critical"),
			// sipedge additions
			strP("user_group_col", "user_group"),
			strP("user_groups_table", "fraud_user_groups"),
			strP("dest_groups_table", "fraud_dest_groups"),
			strP("stats_table", "fraud_stats"),
			intP("persist_stats", 1),
			intP("stats_flush_interval", 1),
		},
		Configure: configure,
		Funcs: []*modules.Func{
			{Name: "check_fraud", Args: []check.ArgSpec{{Kind: check.ArgStr}, {Kind: check.ArgStr}, {Kind: check.ArgInt}},
				Routes: check.Routes(ast.RequestRoute, ast.OnReplyRoute), Call: callCheckFraud},
		},
		MI: []modules.MICommand{
			{Name: "show_fraud_stats", Help: "Params: user prefix ; the counters of a user for a rule prefix", Run: miShowStats},
			{Name: "fraud_reload", Help: "Params: none ; reload the fraud rules and groups from the database", Run: miReload},
		},
	})
	dialog.OnEnd(onDialogEnd)
	dialog.OnLoad(onDialogLoad)
}

func pick(p modules.Params, name, legacy, def string) string {
	v := strings.TrimSpace(p.Str(name))
	if l := strings.TrimSpace(p.Str(legacy)); v == def && l != "" && l != def {
		return l
	}
	return v
}

func configure(p modules.Params) (func(), error) {
	cfg := &config{
		dbURL:           strings.TrimSpace(p.Str("db_url")),
		table:           strings.TrimSpace(p.Str("table_name")),
		userGroupsTable: strings.TrimSpace(p.Str("user_groups_table")),
		destGroupsTable: strings.TrimSpace(p.Str("dest_groups_table")),
		statsTable:      strings.TrimSpace(p.Str("stats_table")),
		persist:         p.Int("persist_stats") != 0,
		flushEvery:      time.Duration(p.Int("stats_flush_interval")) * time.Second,
		utc:             p.Int("use_utc_time") != 0,
		cols: columns{
			rid: p.Str("rid_col"), pid: p.Str("pid_col"), prefix: p.Str("prefix_col"),
			start: pick(p, "start_h_col", "start_h", "start_hour"), end: pick(p, "end_h_col", "end_h", "end_hour"),
			days: p.Str("days_col"),
			cpmW: p.Str("cpm_thresh_warn_col"), cpmC: p.Str("cpm_thresh_crit_col"),
			durW: p.Str("calldur_thresh_warn_col"), durC: p.Str("calldur_thresh_crit_col"),
			totW: p.Str("totalc_thresh_warn_col"), totC: p.Str("totalc_thresh_crit_col"),
			concW: p.Str("concalls_thresh_warn_col"), concC: p.Str("concalls_thresh_crit_col"),
			seqW: p.Str("seqcalls_thresh_warn_col"), seqC: p.Str("seqcalls_thresh_crit_col"),
			userGroup: strings.TrimSpace(p.Str("user_group_col")),
		},
	}
	if cfg.dbURL == "" {
		return nil, fmt.Errorf("db_url is needed: the fraud rules are read from the %s table", cfg.table)
	}
	if cfg.flushEvery <= 0 {
		cfg.flushEvery = time.Second
	}
	for _, t := range []string{cfg.statsTable, cfg.userGroupsTable, cfg.destGroupsTable} {
		if err := store.CheckIdent("table", t); err != nil {
			return nil, err
		}
	}
	db, err := store.Open(cfg.dbURL)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, q := range []string{
		fmt.Sprintf(createDestGroups, cfg.destGroupsTable),
		fmt.Sprintf(createUserGroups, cfg.userGroupsTable),
		fmt.Sprintf(createStats, cfg.statsTable),
	} {
		if _, err := db.Exec(ctx, q); err != nil {
			return nil, fmt.Errorf("%s: %w", db.Path, err)
		}
	}
	rs, err := loadRules(ctx, db, cfg)
	if err != nil {
		return nil, err
	}
	return func() { activate(cfg, db, rs) }, nil
}

func activate(cfg *config, db *store.DB, rs *ruleset) {
	rules.Store(rs)
	liveCfg.Store(cfg)
	pMu.Lock()
	defer pMu.Unlock()
	if !statsLoaded {
		if cfg.persist {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			loadStats(ctx, db, cfg.statsTable)
			cancel()
		}
		recount()
		statsLoaded = true
	}
	if pers != nil && (!cfg.persist || pers.db != db || pers.table != cfg.statsTable) {
		stopPersister()
	}
	if cfg.persist && pers == nil {
		pers = &persister{db: db, table: cfg.statsTable, stop: make(chan struct{}), done: make(chan struct{}), kick: make(chan chan struct{})}
		go pers.run(cfg.flushEvery)
	}
}

// recount sets the concurrent-call counters from the live dialogs (after a
// restart, the dialogs restored by the dialog module).
func recount() {
	dialog.ForEach(func(d *dialog.Dialog) bool {
		v, ok := d.Value(dlgKey)
		if !ok {
			return true
		}
		for _, b := range parseBindings(v) {
			s := table.get(b.user, b.key, true)
			s.mu.Lock()
			if s.interval == b.interval {
				s.conc++
			}
			s.mu.Unlock()
		}
		return true
	})
}

// binding ties a dialog to the stats entry it counts in.
type binding struct {
	user, key, number string
	interval          uint32
	ruleID, profile   int
	durWarn, durCrit  int
}

const sep = "\x1f"

func (b binding) String() string {
	return strings.Join([]string{b.user, b.key, strconv.FormatUint(uint64(b.interval), 10), strconv.Itoa(b.ruleID),
		strconv.Itoa(b.profile), b.number, strconv.Itoa(b.durWarn), strconv.Itoa(b.durCrit)}, sep)
}

func parseBindings(v string) []binding {
	var out []binding
	for _, line := range strings.Split(v, "\n") {
		f := strings.Split(line, sep)
		if len(f) != 8 {
			continue
		}
		itv, _ := strconv.ParseUint(f[2], 10, 32)
		rid, _ := strconv.Atoi(f[3])
		pid, _ := strconv.Atoi(f[4])
		dw, _ := strconv.Atoi(f[6])
		dc, _ := strconv.Atoi(f[7])
		out = append(out, binding{user: f[0], key: f[1], interval: uint32(itv), ruleID: rid, profile: pid, number: f[5], durWarn: dw, durCrit: dc})
	}
	return out
}

func dayOf(t time.Time, utc bool) int {
	if utc {
		t = t.UTC()
	}
	y, m, d := t.Date()
	return y*10000 + int(m)*100 + d
}

type alert struct {
	event, param   string
	val, threshold int
}

// countCall is check_fraud(user, number, profile_id) without the dialog part:
// it counts a new call and returns the return code, the matched rule's
// key and the alert to raise (event "" for none).
func countCall(user, number string, profile int) (int, *rule, *stats, uint32, alert) {
	rs := rules.Load()
	if rs == nil {
		return RetOK, nil, nil, 0, alert{}
	}
	cfg := liveCfg.Load()
	now := clock()
	if cfg != nil && cfg.utc {
		now = now.UTC()
	}
	r := rs.match(profile, user, number, now)
	if r == nil {
		return RetNoRule, nil, nil, 0, alert{}
	}
	s := table.get(user, r.key, true)
	ts := now.Unix()
	day := dayOf(now, cfg != nil && cfg.utc)
	s.mu.Lock()
	if s.lastTime == 0 || s.ruleID != r.id || s.day != day {
		s.total, s.conc, s.seq = 0, 0, 0
		s.resetWindow()
		s.interval++
	}
	s.day = day
	if s.lastDial == number {
		s.seq++
	} else {
		s.lastDial = strings.Clone(number)
		s.seq = 1
	}
	s.ruleID = r.id
	s.total++
	s.addCall(ts)
	s.lastTime = ts
	s.conc++
	s.dirty = true
	cpm := s.cpm(ts)
	vals := [4]int{cpm, s.total, s.conc, s.seq}
	itv := s.interval
	s.mu.Unlock()

	ths := [4][2]int{r.thr.cpm, r.thr.total, r.thr.conc, r.thr.seq}
	names := [4]string{ParamCPM, ParamTotal, ParamConcurrent, ParamSequential}
	for level := 1; level >= 0; level-- { // critical first, then warning
		for i := range ths {
			if t := ths[i][level]; t > 0 && vals[i] >= t {
				rc, ev := RetWarning, EventWarning
				if level == 1 {
					rc, ev = RetCritical, EventCritical
				}
				return rc, r, s, itv, alert{event: ev, param: names[i], val: vals[i], threshold: t}
			}
		}
	}
	return RetOK, r, s, itv, alert{}
}

func raise(a alert, user, number string, ruleID, profile int) {
	events.Raise(a.event,
		events.Str("param", a.param),
		events.Int("value", a.val),
		events.Int("threshold", a.threshold),
		events.Str("user", user),
		events.Str("called_number", number),
		events.Int("rule_id", ruleID),
		events.Int("profile_id", profile),
	)
}

func callCheckFraud(m *msgctx.Msg, a *modules.Args) int {
	user, number, profile := a.Str(0), a.Str(1), a.Int(2)
	rc, r, s, itv, al := countCall(user, number, profile)
	if r == nil {
		return rc
	}
	d, err := dialog.Ensure(m)
	if err != nil {
		if m.Host != nil {
			m.Host.Log(m, msgctx.LErr, "check_fraud: cannot create the dialog: "+err.Error())
		}
		s.mu.Lock()
		if s.interval == itv && s.conc > 0 {
			s.conc--
		}
		s.mu.Unlock()
		return RetError
	}
	b := binding{user: user, key: r.key, number: number, interval: itv, ruleID: r.id, profile: profile,
		durWarn: r.thr.dur[0], durCrit: r.thr.dur[1]}
	v, _ := d.Value(dlgKey)
	if v != "" {
		v += "\n"
	}
	d.SetValue(dlgKey, v+b.String(), false)
	if al.event != "" {
		raise(al, user, number, r.id, profile)
	}
	return rc
}

// onDialogEnd releases the concurrent calls of a dialog and checks its
// duration (not for calls that never connected, as OpenSIPS).
func onDialogEnd(d *dialog.Dialog, failed bool, dur int64) {
	v, ok := d.Value(dlgKey)
	if !ok {
		return
	}
	for _, b := range parseBindings(v) {
		if !failed {
			switch {
			case b.durCrit > 0 && dur >= int64(b.durCrit):
				raise(alert{event: EventCritical, param: ParamDuration, val: int(dur), threshold: b.durCrit}, b.user, b.number, b.ruleID, b.profile)
			case b.durWarn > 0 && dur >= int64(b.durWarn):
				raise(alert{event: EventWarning, param: ParamDuration, val: int(dur), threshold: b.durWarn}, b.user, b.number, b.ruleID, b.profile)
			}
		}
		s := table.get(b.user, b.key, false)
		if s == nil {
			continue
		}
		s.mu.Lock()
		if s.interval == b.interval && s.conc > 0 {
			s.conc--
			s.dirty = true
		}
		s.mu.Unlock()
	}
}

// onDialogLoad counts a dialog restored from the database, when the
// persisted stats are already in memory (otherwise activate recounts).
func onDialogLoad(d *dialog.Dialog) {
	pMu.Lock()
	ready := statsLoaded
	pMu.Unlock()
	if !ready {
		return
	}
	v, ok := d.Value(dlgKey)
	if !ok {
		return
	}
	for _, b := range parseBindings(v) {
		s := table.get(b.user, b.key, true)
		s.mu.Lock()
		if s.interval == b.interval {
			s.conc++
		}
		s.mu.Unlock()
	}
}

// Stats is what show_fraud_stats reports for a user and rule prefix.
type Stats struct {
	CPM, Total, Concurrent, Sequential int
}

// Lookup returns the counters of a user for a rule's prefix (its prefix
// column as written), and whether there are any.
func Lookup(user, prefix string) (Stats, bool) {
	s := table.get(user, prefix, false)
	if s == nil {
		return Stats{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{CPM: s.cpm(clock().Unix()), Total: s.total, Concurrent: s.conc, Sequential: s.seq}, true
}

func miShowStats(params map[string]any) (any, error) {
	user, ok1 := params["user"].(string)
	prefix, ok2 := params["prefix"].(string)
	if !ok1 || !ok2 {
		return nil, mi.Errorf(400, "show_fraud_stats needs user and prefix")
	}
	st, ok := Lookup(user, prefix)
	if !ok {
		return nil, mi.Errorf(404, "No data for this user+number yet!")
	}
	return map[string]any{"cpm": st.CPM, "total_calls": st.Total, "concurrent_calls": st.Concurrent, "seq_calls": st.Sequential}, nil
}

// Reload reads the rules and groups again (fraud_reload).
func Reload() error {
	cfg := liveCfg.Load()
	if cfg == nil {
		return fmt.Errorf("fraud_detection is not loaded")
	}
	db, err := store.Open(cfg.dbURL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rs, err := loadRules(ctx, db, cfg)
	if err != nil {
		return err
	}
	rules.Store(rs)
	return nil
}

func miReload(map[string]any) (any, error) {
	if err := Reload(); err != nil {
		return nil, mi.Errorf(500, "%v", err)
	}
	return "OK", nil
}

// ForgetAll drops the counters and rules from memory and stops the stats
// writer after a last flush, as a process exit would (tests simulating a
// restart).
func ForgetAll() {
	pMu.Lock()
	stopPersister()
	statsLoaded = false
	pMu.Unlock()
	rules.Store(nil)
	table.reset()
}
