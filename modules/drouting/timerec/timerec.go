// Package timerec is OpenSIPS's time recurrence (a subset of RFC 2445
// recurrence rules) as the dialplan and drouting tables write it:
//
//	dtstart|duration|freq|until|interval|byday|bymday|byyday|byweekno|bymonth
//
// e.g. "20240101T080000|PT10H|weekly|||MO,TU,WE,TH,FR" (weekdays 08:00–18:00).
// Times without a trailing Z are local time, as OpenSIPS reads them.
package timerec

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Freq is a recurrence frequency.
type Freq uint8

const (
	NoFreq Freq = iota
	Daily
	Weekly
	Monthly
	Yearly
)

// weekday entry of BYDAY: the day and, when N != 0, its Nth occurrence in
// the month (monthly) or year (yearly); negative counts from the end.
type wday struct {
	N   int
	Day time.Weekday
}

// Rec is one parsed time recurrence.
type Rec struct {
	Start    time.Time
	Duration time.Duration
	Freq     Freq
	Until    time.Time
	Interval int
	ByDay    []wday
	ByMDay   []int
	ByYDay   []int
	ByWeekNo []int
	ByMonth  []int
	text     string
}

func (r *Rec) String() string { return r.text }

// Parse reads a time recurrence. An empty string is an error (callers
// treat an empty column as "always").
func Parse(s string) (*Rec, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("empty time recurrence")
	}
	f := strings.Split(s, "|")
	if len(f) > 10 {
		return nil, fmt.Errorf("time recurrence %q has more than 10 fields", s)
	}
	for len(f) < 10 {
		f = append(f, "")
	}
	r := &Rec{text: s, Interval: 1}
	var err error
	if r.Start, err = parseDateTime(f[0]); err != nil {
		return nil, fmt.Errorf("dtstart: %v", err)
	}
	if f[1] != "" {
		if r.Duration, err = parseDuration(f[1]); err != nil {
			return nil, fmt.Errorf("duration: %v", err)
		}
	}
	switch strings.ToLower(strings.TrimSpace(f[2])) {
	case "":
		r.Freq = NoFreq
	case "daily":
		r.Freq = Daily
	case "weekly":
		r.Freq = Weekly
	case "monthly":
		r.Freq = Monthly
	case "yearly":
		r.Freq = Yearly
	default:
		return nil, fmt.Errorf("freq %q (want daily, weekly, monthly or yearly)", f[2])
	}
	if strings.TrimSpace(f[3]) != "" {
		if r.Until, err = parseDateTime(f[3]); err != nil {
			return nil, fmt.Errorf("until: %v", err)
		}
	}
	if v := strings.TrimSpace(f[4]); v != "" {
		if r.Interval, err = strconv.Atoi(v); err != nil || r.Interval < 1 {
			return nil, fmt.Errorf("interval %q", v)
		}
	}
	if r.ByDay, err = parseByDay(f[5]); err != nil {
		return nil, fmt.Errorf("byday: %v", err)
	}
	for i, dst := range []*[]int{&r.ByMDay, &r.ByYDay, &r.ByWeekNo, &r.ByMonth} {
		if *dst, err = parseInts(f[6+i]); err != nil {
			return nil, fmt.Errorf("%s: %v", [...]string{"bymday", "byyday", "byweekno", "bymonth"}[i], err)
		}
	}
	if r.Duration == 0 && r.Freq == NoFreq {
		return nil, fmt.Errorf("a time recurrence without a duration or frequency never matches")
	}
	return r, nil
}

func parseDateTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	loc := time.Local
	if strings.HasSuffix(s, "Z") {
		s, loc = strings.TrimSuffix(s, "Z"), time.UTC
	}
	for _, layout := range []string{"20060102T150405", "20060102"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad date-time %q (want YYYYMMDDThhmmss)", s)
}

// parseDuration reads an RFC 2445 duration (P1D, PT1H30M, P2W; the
// leading P may be left out, as OpenSIPS allows).
func parseDuration(s string) (time.Duration, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	s = strings.TrimPrefix(s, "P")
	var d time.Duration
	inTime, num := false, ""
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			num += string(c)
			continue
		case c == 'T':
			inTime = true
			continue
		}
		n, err := strconv.Atoi(num)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		num = ""
		switch {
		case c == 'W':
			d += time.Duration(n) * 7 * 24 * time.Hour
		case c == 'D':
			d += time.Duration(n) * 24 * time.Hour
		case c == 'H':
			d += time.Duration(n) * time.Hour
		case c == 'M' && inTime, c == 'M' && !inTime:
			// OpenSIPS reads M as minutes wherever it appears
			d += time.Duration(n) * time.Minute
		case c == 'S':
			d += time.Duration(n) * time.Second
		default:
			return 0, fmt.Errorf("bad duration %q", s)
		}
	}
	if num != "" {
		return 0, fmt.Errorf("bad duration %q (a number needs a unit)", s)
	}
	return d, nil
}

var dayNames = map[string]time.Weekday{"SU": time.Sunday, "MO": time.Monday, "TU": time.Tuesday,
	"WE": time.Wednesday, "TH": time.Thursday, "FR": time.Friday, "SA": time.Saturday}

func parseByDay(s string) ([]wday, error) {
	var out []wday
	for _, tok := range strings.Split(s, ",") {
		tok = strings.ToUpper(strings.TrimSpace(tok))
		if tok == "" {
			continue
		}
		if len(tok) < 2 {
			return nil, fmt.Errorf("bad day %q", tok)
		}
		day, ok := dayNames[tok[len(tok)-2:]]
		if !ok {
			return nil, fmt.Errorf("bad day %q", tok)
		}
		n := 0
		if p := tok[:len(tok)-2]; p != "" {
			var err error
			if n, err = strconv.Atoi(strings.TrimPrefix(p, "+")); err != nil {
				return nil, fmt.Errorf("bad day %q", tok)
			}
		}
		out = append(out, wday{N: n, Day: day})
	}
	return out, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, tok := range strings.Split(s, ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(tok, "+"))
		if err != nil || n == 0 {
			return nil, fmt.Errorf("bad number %q", tok)
		}
		out = append(out, n)
	}
	return out, nil
}

// Match reports whether t falls in an occurrence of the recurrence.
func (r *Rec) Match(t time.Time) bool {
	t = t.In(r.Start.Location())
	if t.Before(r.Start) {
		return false
	}
	dur := r.Duration
	if t.Before(r.Start.Add(dur)) {
		return true
	}
	if r.Freq == NoFreq {
		return false
	}
	if !r.Until.IsZero() && !t.Before(r.Until.Add(dur)) {
		return false
	}
	if !r.intervalOK(t) || !r.minUnitOK(t) {
		return false
	}
	return r.byOK(t)
}

func midnight(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
}

func daysBetween(a, b time.Time) int {
	// by calendar date, so DST changes do not matter
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	ua := time.Date(ay, am, ad, 12, 0, 0, 0, time.UTC)
	ub := time.Date(by, bm, bd, 12, 0, 0, 0, time.UTC)
	return int(ub.Sub(ua).Hours()+0.5) / 24
}

func (r *Rec) intervalOK(t time.Time) bool {
	if r.Interval <= 1 {
		return true
	}
	switch r.Freq {
	case Daily:
		return daysBetween(r.Start, t)%r.Interval == 0
	case Weekly:
		ws := midnight(r.Start).AddDate(0, 0, -int(r.Start.Weekday()))
		return (daysBetween(ws, t)/7)%r.Interval == 0
	case Monthly:
		m := (t.Year()-r.Start.Year())*12 + int(t.Month()) - int(r.Start.Month())
		return m%r.Interval == 0
	case Yearly:
		return (t.Year()-r.Start.Year())%r.Interval == 0
	}
	return true
}

// minUnit is the smallest period the rule repeats in: a BYxxx list on days
// makes it daily, and so on.
func (r *Rec) minUnit() Freq {
	switch {
	case r.Freq == Daily || len(r.ByDay) > 0 || len(r.ByMDay) > 0 || len(r.ByYDay) > 0:
		return Daily
	case r.Freq == Weekly || len(r.ByWeekNo) > 0:
		return Weekly
	case r.Freq == Monthly || len(r.ByMonth) > 0:
		return Monthly
	}
	return Yearly
}

// minUnitOK checks that t is in an occurrence of the smallest period: same
// weekday/day of month/date as dtstart where the period asks for it, and
// the time of day within [dtstart's time, + duration).
func (r *Rec) minUnitOK(t time.Time) bool {
	switch r.minUnit() {
	case Weekly:
		if t.Weekday() != r.Start.Weekday() {
			return false
		}
	case Monthly:
		if t.Day() != r.Start.Day() {
			return false
		}
	case Yearly:
		if t.Month() != r.Start.Month() || t.Day() != r.Start.Day() {
			return false
		}
	}
	v0 := time.Duration(r.Start.Hour())*time.Hour + time.Duration(r.Start.Minute())*time.Minute + time.Duration(r.Start.Second())*time.Second
	v1 := time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute + time.Duration(t.Second())*time.Second
	return v1 >= v0 && v1 < v0+r.Duration
}

func daysIn(y int, m time.Month) int { return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day() }

func daysInYear(y int) int { return time.Date(y, 12, 31, 0, 0, 0, 0, time.UTC).YearDay() }

func (r *Rec) byOK(t time.Time) bool {
	if len(r.ByMonth) > 0 && !anyOf(r.ByMonth, int(t.Month()), 12) {
		return false
	}
	if len(r.ByWeekNo) > 0 {
		_, wk := t.ISOWeek()
		_, last := time.Date(t.Year(), 12, 28, 0, 0, 0, 0, time.UTC).ISOWeek()
		if !anyOf(r.ByWeekNo, wk, last) {
			return false
		}
	}
	if len(r.ByYDay) > 0 && !anyOf(r.ByYDay, t.YearDay(), daysInYear(t.Year())) {
		return false
	}
	if len(r.ByMDay) > 0 && !anyOf(r.ByMDay, t.Day(), daysIn(t.Year(), t.Month())) {
		return false
	}
	if len(r.ByDay) > 0 {
		ok := false
		for _, d := range r.ByDay {
			if d.Day != t.Weekday() {
				continue
			}
			if d.N == 0 {
				ok = true
				break
			}
			// the Nth such weekday of the month (or of the year for a
			// yearly rule)
			var nth, total int
			if r.Freq == Yearly {
				nth = (t.YearDay()-1)/7 + 1
				total = (daysInYear(t.Year())-t.YearDay())/7 + nth
			} else {
				nth = (t.Day()-1)/7 + 1
				total = (daysIn(t.Year(), t.Month())-t.Day())/7 + nth
			}
			if d.N == nth || d.N == nth-total-1 {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// anyOf reports whether v is in list, negative entries counting back from
// last (-1 is last).
func anyOf(list []int, v, last int) bool {
	for _, x := range list {
		if x == v || (x < 0 && last+1+x == v) {
			return true
		}
	}
	return false
}
