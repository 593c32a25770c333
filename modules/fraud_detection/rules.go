package frauddetection

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sipedge/sipedge/runtime/store"
)

// The five monitored parameters, by their event names.
const (
	ParamCPM        = "calls-per-minute"
	ParamTotal      = "total-calls"
	ParamConcurrent = "concurrent-calls"
	ParamSequential = "sequential-calls"
	ParamDuration   = "call-duration"
)

// thresholds holds one rule's warning [0] and critical [1] values; 0 is off.
type thresholds struct {
	cpm, dur, total, conc, seq [2]int
}

// rule is one row of the fraud_detection table.
type rule struct {
	id, profile int
	// Exactly one of these selects destinations: a literal prefix (the
	// OpenSIPS way), a regular expression ("re:…" in the prefix column), a
	// destination group ("grp:NAME").
	prefix    string
	re        *regexp.Regexp
	destGroup string
	key       string // the prefix column as written: stats are kept per user and key
	userGroup string // only users of this group ("" = everyone)

	start, end int   // minutes of the day, end inclusive
	days       uint8 // bit i = weekday i (Sunday 0); 0 = every day
	thr        thresholds
}

func (r *rule) activeAt(t time.Time) bool {
	if r.days != 0 && r.days&(1<<uint(t.Weekday())) == 0 {
		return false
	}
	m := t.Hour()*60 + t.Minute()
	if r.start <= r.end {
		return m >= r.start && m <= r.end
	}
	return m >= r.start || m <= r.end // past midnight
}

// destSet is a destination group: prefixes and regular expressions.
type destSet struct {
	prefixes map[string]bool
	maxLen   int
	res      []*regexp.Regexp
}

func (s *destSet) match(number string) (string, bool) {
	n := len(number)
	if n > s.maxLen {
		n = s.maxLen
	}
	for l := n; l >= 0; l-- {
		if s.prefixes[number[:l]] {
			return number[:l], true
		}
	}
	for _, re := range s.res {
		if re.MatchString(number) {
			return "", true
		}
	}
	return "", false
}

// profileRules are one fraud profile's rules, indexed for matching.
type profileRules struct {
	byPrefix map[string][]*rule // ordered by rule id
	maxLen   int
	groups   []*rule
	regexes  []*rule
}

// ruleset is everything loaded from the database; it is replaced whole by
// fraud_reload.
type ruleset struct {
	profiles   map[int]*profileRules
	destGroups map[string]*destSet
	userGroups map[string]map[string]bool
	nRules     int
}

func (rs *ruleset) userOK(r *rule, user string) bool {
	return r.userGroup == "" || rs.userGroups[r.userGroup][user]
}

// match finds the rule for a call: the longest matching literal prefix
// first (as OpenSIPS's drouting match), then destination groups, then
// regular expressions, each in rule id order; only rules active now and
// open to the user qualify.
func (rs *ruleset) match(profile int, user, number string, now time.Time) *rule {
	pr := rs.profiles[profile]
	if pr == nil {
		return nil
	}
	n := len(number)
	if n > pr.maxLen {
		n = pr.maxLen
	}
	for l := n; l >= 0; l-- {
		for _, r := range pr.byPrefix[number[:l]] {
			if r.activeAt(now) && rs.userOK(r, user) {
				return r
			}
		}
	}
	for _, r := range pr.groups {
		if g := rs.destGroups[r.destGroup]; g != nil && r.activeAt(now) && rs.userOK(r, user) {
			if _, ok := g.match(number); ok {
				return r
			}
		}
	}
	for _, r := range pr.regexes {
		if r.activeAt(now) && rs.userOK(r, user) && r.re.MatchString(number) {
			return r
		}
	}
	return nil
}

// ---- parsing ----

func parseHHMM(s string) (int, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return 0, fmt.Errorf("time %q: want HH:MM", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("time %q: want HH:MM", s)
	}
	return hh*60 + mm, nil
}

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

func dayIndex(s string) (int, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	for i, d := range dayNames {
		if s == d {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown week day %q (want Mon, Tue …)", s)
}

// parseDays reads "Mon-Fri, Sun" (ranges may wrap: "Fri-Mon").
func parseDays(s string) (uint8, error) {
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	var set uint8
	for _, tok := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(tok, "-")
		i, err := dayIndex(a)
		if err != nil {
			return 0, err
		}
		if !isRange {
			set |= 1 << uint(i)
			continue
		}
		j, err := dayIndex(b)
		if err != nil {
			return 0, err
		}
		for k := i; ; k = (k + 1) % 7 {
			set |= 1 << uint(k)
			if k == j {
				break
			}
		}
	}
	return set, nil
}

// columns are the fraud_detection column names (modparams).
type columns struct {
	rid, pid, prefix, start, end, days                           string
	cpmW, cpmC, durW, durC, totW, totC, concW, concC, seqW, seqC string
	userGroup                                                    string
}

func (c *columns) all() []string {
	return []string{c.rid, c.pid, c.prefix, c.start, c.end, c.days,
		c.cpmW, c.cpmC, c.durW, c.durC, c.totW, c.totC, c.concW, c.concC, c.seqW, c.seqC}
}

// TableVersion is the fraud_detection table version OpenSIPS expects.
const TableVersion = 1

func hasColumn(ctx context.Context, db *store.DB, table, col string) bool {
	rows, err := db.Query(ctx, "PRAGMA table_info("+table+")")
	if err != nil {
		return false
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if rows.Scan(ptrs...) != nil {
			continue
		}
		for i, c := range cols {
			if c == "name" {
				if n, ok := vals[i].(string); ok && strings.EqualFold(n, col) {
					return true
				}
				if b, ok := vals[i].([]byte); ok && strings.EqualFold(string(b), col) {
					return true
				}
			}
		}
	}
	return false
}

func tableExists(ctx context.Context, db *store.DB, table string) bool {
	var n int
	rows, err := db.Query(ctx, `SELECT count(*) FROM sqlite_master WHERE type IN ('table','view') AND name = ?`, table)
	if err != nil {
		return false
	}
	defer rows.Close()
	if rows.Next() {
		rows.Scan(&n)
	}
	return n > 0
}

// loadRules reads the rules and the sipedge group tables.
func loadRules(ctx context.Context, db *store.DB, cfg *config) (*ruleset, error) {
	c := &cfg.cols
	for _, id := range append(c.all(), cfg.table, cfg.userGroupsTable, cfg.destGroupsTable) {
		if err := store.CheckIdent("column or table", id); err != nil {
			return nil, err
		}
	}
	if !tableExists(ctx, db, cfg.table) {
		return nil, fmt.Errorf("%s has no table %q (create OpenSIPS's fraud_detection table)", db.Path, cfg.table)
	}
	if v, err := db.Version(ctx, cfg.table); err == nil && v != TableVersion {
		return nil, fmt.Errorf("table %s has version %d, want %d", cfg.table, v, TableVersion)
	}
	rs := &ruleset{profiles: map[int]*profileRules{}, destGroups: map[string]*destSet{}, userGroups: map[string]map[string]bool{}}
	if err := loadGroups(ctx, db, cfg, rs); err != nil {
		return nil, err
	}
	cols := c.all()
	withUG := c.userGroup != "" && store.IsIdent(c.userGroup) && hasColumn(ctx, db, cfg.table, c.userGroup)
	if withUG {
		cols = append(cols, c.userGroup)
	}
	rows, err := db.Query(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM "+cfg.table+" ORDER BY "+c.rid)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", cfg.table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			r                        rule
			prefix, start, end, days sql.NullString
			ug                       sql.NullString
			t                        [10]sql.NullInt64
		)
		dst := []any{&r.id, &r.profile, &prefix, &start, &end, &days}
		for i := range t {
			dst = append(dst, &t[i])
		}
		if withUG {
			dst = append(dst, &ug)
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, fmt.Errorf("reading %s: %w", cfg.table, err)
		}
		if r.start, err = parseHHMM(orDefault(start, "00:00")); err != nil {
			return nil, fmt.Errorf("rule %d: %v", r.id, err)
		}
		if r.end, err = parseHHMM(orDefault(end, "23:59")); err != nil {
			return nil, fmt.Errorf("rule %d: %v", r.id, err)
		}
		if r.days, err = parseDays(days.String); err != nil {
			return nil, fmt.Errorf("rule %d: %v", r.id, err)
		}
		th := [10]int{}
		for i := range t {
			th[i] = int(t[i].Int64)
		}
		r.thr = thresholds{cpm: [2]int{th[0], th[1]}, dur: [2]int{th[2], th[3]}, total: [2]int{th[4], th[5]},
			conc: [2]int{th[6], th[7]}, seq: [2]int{th[8], th[9]}}
		r.userGroup = strings.TrimSpace(ug.String)
		p := strings.TrimSpace(prefix.String)
		r.key = p
		pr := rs.profiles[r.profile]
		if pr == nil {
			pr = &profileRules{byPrefix: map[string][]*rule{}}
			rs.profiles[r.profile] = pr
		}
		rr := r
		switch {
		case strings.HasPrefix(p, "re:"):
			re, err := regexp.Compile(p[3:])
			if err != nil {
				return nil, fmt.Errorf("rule %d: bad regular expression %q: %v", r.id, p[3:], err)
			}
			rr.re = re
			pr.regexes = append(pr.regexes, &rr)
		case strings.HasPrefix(p, "grp:"):
			rr.destGroup = strings.TrimSpace(p[4:])
			if rs.destGroups[rr.destGroup] == nil {
				return nil, fmt.Errorf("rule %d: no destination group %q in %s", r.id, rr.destGroup, cfg.destGroupsTable)
			}
			pr.groups = append(pr.groups, &rr)
		default:
			rr.prefix = p
			pr.byPrefix[p] = append(pr.byPrefix[p], &rr)
			if len(p) > pr.maxLen {
				pr.maxLen = len(p)
			}
		}
		if rr.userGroup != "" && rs.userGroups[rr.userGroup] == nil {
			return nil, fmt.Errorf("rule %d: no user group %q in %s", r.id, rr.userGroup, cfg.userGroupsTable)
		}
		rs.nRules++
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, pr := range rs.profiles {
		for _, list := range pr.byPrefix {
			sort.SliceStable(list, func(i, j int) bool { return list[i].id < list[j].id })
		}
	}
	return rs, nil
}

func orDefault(s sql.NullString, def string) string {
	if !s.Valid || strings.TrimSpace(s.String) == "" {
		return def
	}
	return s.String
}

// loadGroups reads fraud_dest_groups (groupname, prefix) and
// fraud_user_groups (groupname, username) when they exist.
func loadGroups(ctx context.Context, db *store.DB, cfg *config, rs *ruleset) error {
	if tableExists(ctx, db, cfg.destGroupsTable) {
		rows, err := db.Query(ctx, "SELECT groupname, prefix FROM "+cfg.destGroupsTable)
		if err != nil {
			return fmt.Errorf("reading %s: %w", cfg.destGroupsTable, err)
		}
		for rows.Next() {
			var g, p string
			if err := rows.Scan(&g, &p); err != nil {
				rows.Close()
				return err
			}
			g, p = strings.TrimSpace(g), strings.TrimSpace(p)
			s := rs.destGroups[g]
			if s == nil {
				s = &destSet{prefixes: map[string]bool{}}
				rs.destGroups[g] = s
			}
			if strings.HasPrefix(p, "re:") {
				re, err := regexp.Compile(p[3:])
				if err != nil {
					rows.Close()
					return fmt.Errorf("%s group %s: bad regular expression %q: %v", cfg.destGroupsTable, g, p[3:], err)
				}
				s.res = append(s.res, re)
				continue
			}
			s.prefixes[p] = true
			if len(p) > s.maxLen {
				s.maxLen = len(p)
			}
		}
		rows.Close()
	}
	if tableExists(ctx, db, cfg.userGroupsTable) {
		rows, err := db.Query(ctx, "SELECT groupname, username FROM "+cfg.userGroupsTable)
		if err != nil {
			return fmt.Errorf("reading %s: %w", cfg.userGroupsTable, err)
		}
		defer rows.Close()
		for rows.Next() {
			var g, u string
			if err := rows.Scan(&g, &u); err != nil {
				return err
			}
			g = strings.TrimSpace(g)
			if rs.userGroups[g] == nil {
				rs.userGroups[g] = map[string]bool{}
			}
			rs.userGroups[g][strings.TrimSpace(u)] = true
		}
	}
	return nil
}
