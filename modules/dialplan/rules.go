package dialplan

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/sipedge/sipedge/modules/drouting/timerec"
	"github.com/sipedge/sipedge/runtime/store"
)

// Match operators (match_op column).
const (
	opEqual = 0
	opRegex = 1
)

// flagCaseInsensitive is bit 1 of match_flags.
const flagCaseInsensitive = 1

// rule is one dialplan row.
type rule struct {
	idx      int // load position: the tie-break between equal priorities
	dpid, pr int
	op       int
	matchExp string
	ci       bool
	matchRe  *regexp.Regexp
	substExp string
	substRe  *regexp.Regexp
	repl     *replacement // nil: no repl_exp
	attrs    string
	tr       *timerec.Rec
}

// set is the rules of one dpid: string rules and regex rules, each in
// ascending priority.
type set struct {
	str []*rule
	re  []*rule
}

// data is a partition's rules, swapped whole on reload.
type data struct {
	sets   map[int]*set
	rules  int
	loaded time.Time
}

// replacement is a parsed repl_exp: literal text and \N back-references.
type replacement struct {
	text  string
	parts []replPart
	refs  int // the highest \N
}

type replPart struct {
	lit string
	ref int // -1: literal
}

// parseRepl reads a repl_exp: \0 … \9 are groups of subst_exp, \\ a
// backslash, \c the character c.
func parseRepl(s string) *replacement {
	r := &replacement{text: s}
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			lit.WriteByte(c)
			continue
		}
		i++
		n := s[i]
		if n >= '0' && n <= '9' {
			if lit.Len() > 0 {
				r.parts = append(r.parts, replPart{lit: lit.String(), ref: -1})
				lit.Reset()
			}
			ref := int(n - '0')
			r.parts = append(r.parts, replPart{ref: ref})
			if ref > r.refs {
				r.refs = ref
			}
			continue
		}
		lit.WriteByte(n)
	}
	if lit.Len() > 0 {
		r.parts = append(r.parts, replPart{lit: lit.String(), ref: -1})
	}
	return r
}

func (r *replacement) hasRefs() bool {
	for _, p := range r.parts {
		if p.ref >= 0 {
			return true
		}
	}
	return false
}

// columns are the dialplan table's column names (modparams).
type columns struct {
	dpid, pr, matchOp, matchExp, matchFlags, substExp, replExp, attrs, timerec, disabled string
}

func (c columns) list() []string {
	return []string{c.dpid, c.pr, c.matchOp, c.matchExp, c.matchFlags, c.substExp, c.replExp, c.attrs, c.timerec, c.disabled}
}

// load reads a partition's enabled rules. A rule that does not compile is
// skipped with a warning, as OpenSIPS does.
func load(ctx context.Context, db *store.DB, table string, cols columns, warn func(string)) (*data, error) {
	sel := fmt.Sprintf("SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s FROM %s WHERE %s = 0 ORDER BY %s",
		cols.dpid, cols.pr, cols.matchOp, cols.matchExp, cols.matchFlags, cols.substExp, cols.replExp,
		cols.attrs, cols.timerec, table, cols.disabled, cols.pr)
	rows, err := db.Query(ctx, sel+", rowid")
	if err != nil && strings.Contains(err.Error(), "rowid") {
		rows, err = db.Query(ctx, sel)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: loading %s: %w", db.Path, table, err)
	}
	defer rows.Close()
	d := &data{sets: map[int]*set{}, loaded: time.Now()}
	n := 0
	for rows.Next() {
		var dpid, pr, op, flags int
		var match string
		var subst, repl, attrs, tr sql.NullString
		if err := rows.Scan(&dpid, &pr, &op, &match, &flags, &subst, &repl, &attrs, &tr); err != nil {
			return nil, fmt.Errorf("%s: reading %s: %w", db.Path, table, err)
		}
		r, err := buildRule(n, dpid, pr, op, match, flags, subst.String, repl.String, repl.Valid, attrs.String, tr.String)
		n++
		if err != nil {
			warn(fmt.Sprintf("%s: dpid %d rule %q skipped: %v", table, dpid, match, err))
			continue
		}
		s := d.sets[dpid]
		if s == nil {
			s = &set{}
			d.sets[dpid] = s
		}
		if r.op == opEqual {
			s.str = append(s.str, r)
		} else {
			s.re = append(s.re, r)
		}
		d.rules++
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, s := range d.sets {
		byPr := func(l []*rule) func(i, j int) bool {
			return func(i, j int) bool {
				if l[i].pr != l[j].pr {
					return l[i].pr < l[j].pr
				}
				return l[i].idx < l[j].idx
			}
		}
		sort.SliceStable(s.str, byPr(s.str))
		sort.SliceStable(s.re, byPr(s.re))
	}
	return d, nil
}

func buildRule(idx, dpid, pr, op int, match string, flags int, subst, repl string, hasRepl bool, attrs, tr string) (*rule, error) {
	r := &rule{idx: idx, dpid: dpid, pr: pr, op: op, matchExp: match, ci: flags&flagCaseInsensitive != 0, attrs: attrs}
	re := func(s string) (*regexp.Regexp, error) {
		if r.ci {
			s = "(?i)" + s
		}
		return regexp.Compile(s)
	}
	var err error
	switch op {
	case opEqual:
		if match == "" {
			return nil, fmt.Errorf("an empty match_exp is not accepted")
		}
	case opRegex:
		if r.matchRe, err = re(match); err != nil {
			return nil, fmt.Errorf("match_exp: %v", err)
		}
	default:
		return nil, fmt.Errorf("invalid match_op %d (0 equal, 1 regex)", op)
	}
	if subst != "" {
		if r.substRe, err = re(subst); err != nil {
			return nil, fmt.Errorf("subst_exp: %v", err)
		}
		r.substExp = subst
	}
	if hasRepl && repl != "" {
		r.repl = parseRepl(repl)
		groups := 0
		if r.substRe != nil {
			groups = r.substRe.NumSubexp()
		}
		if r.repl.refs > 0 && r.repl.refs > groups {
			return nil, fmt.Errorf("repl_exp %q uses a non existing subexpression", repl)
		}
	}
	if strings.TrimSpace(tr) != "" {
		if r.tr, err = timerec.Parse(tr); err != nil {
			return nil, fmt.Errorf("timerec: %v", err)
		}
	}
	return r, nil
}

// errNoMatch is a translation that found no rule.
var errNoMatch = fmt.Errorf("no matching rule")

// translate finds the rule for input in set s and builds the output and
// attributes. The output is "" when the rule has no repl_exp.
func (s *set) translate(input string, now time.Time) (out, attrs string, err error) {
	if input == "" {
		return "", "", fmt.Errorf("empty input")
	}
	var str, re *rule
	for _, r := range s.str {
		if len(r.matchExp) != len(input) || (r.tr != nil && !r.tr.Match(now)) {
			continue
		}
		if (r.ci && strings.EqualFold(r.matchExp, input)) || r.matchExp == input {
			str = r
			break
		}
	}
	for _, r := range s.re {
		if r.tr != nil && !r.tr.Match(now) {
			continue
		}
		if r.matchRe.MatchString(input) {
			re = r
			break
		}
	}
	best := str
	switch {
	case str == nil && re == nil:
		return "", "", errNoMatch
	case str == nil:
		best = re
	case re != nil && (re.pr < str.pr || (re.pr == str.pr && re.idx < str.idx)):
		best = re
	}
	out, err = best.apply(input)
	return out, best.attrs, err
}

// apply builds a rule's output: the replacement, with subst_exp's groups
// for its back-references. Without subst_exp or back-references the
// replacement is the output as it is.
func (r *rule) apply(input string) (string, error) {
	if r.repl == nil {
		return "", nil
	}
	var m []int
	if r.substRe != nil {
		if m = r.substRe.FindStringSubmatchIndex(input); m == nil {
			return "", fmt.Errorf("%q matched match_exp %q but not subst_exp %q", input, r.matchExp, r.substExp)
		}
	}
	if r.substRe == nil || !r.repl.hasRefs() {
		return r.repl.text, nil
	}
	var b strings.Builder
	for _, p := range r.repl.parts {
		if p.ref < 0 {
			b.WriteString(p.lit)
			continue
		}
		if s, e := m[2*p.ref], m[2*p.ref+1]; s >= 0 {
			b.WriteString(input[s:e])
		}
	}
	return b.String(), nil
}
