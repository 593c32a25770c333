package timerec

import (
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, time.Local)
	if err != nil {
		panic(err)
	}
	return t
}

func TestMatch(t *testing.T) {
	cases := []struct {
		rec  string
		at   string
		want bool
	}{
		// weekdays 08:00-18:00 (2024-01-01 is a Monday)
		{"20240101T080000|PT10H|weekly|||MO,TU,WE,TH,FR", "2024-03-05 09:00", true},
		{"20240101T080000|PT10H|weekly|||MO,TU,WE,TH,FR", "2024-03-05 18:00", false},
		{"20240101T080000|PT10H|weekly|||MO,TU,WE,TH,FR", "2024-03-05 07:59", false},
		{"20240101T080000|PT10H|weekly|||MO,TU,WE,TH,FR", "2024-03-09 09:00", false}, // Saturday
		{"20240101T080000|PT10H|weekly|||MO,TU,WE,TH,FR", "2023-12-29 09:00", false}, // before dtstart
		// every day 22:00-23:00, until the end of March
		{"20240101T220000|1H|daily|20240331T000000", "2024-02-10 22:30", true},
		{"20240101T220000|1H|daily|20240331T000000", "2024-04-10 22:30", false},
		// one-off window
		{"20240501T000000|P1D", "2024-05-01 13:00", true},
		{"20240501T000000|P1D", "2024-05-02 13:00", false},
		// every other day
		{"20240101T000000|P1D|daily||2", "2024-01-03 10:00", true},
		{"20240101T000000|P1D|daily||2", "2024-01-04 10:00", false},
		// weekly on Monday, dtstart's weekday, all day
		{"20240101T000000|P1D|weekly", "2024-01-15 10:00", true},
		{"20240101T000000|P1D|weekly", "2024-01-16 10:00", false},
		// last Friday of the month, monthly
		{"20240101T000000|P1D|monthly|||-1FR", "2024-05-31 10:00", true},
		{"20240101T000000|P1D|monthly|||-1FR", "2024-05-24 10:00", false},
		// the 1st and 15th of each month
		{"20240101T000000|P1D|monthly||||1,15", "2024-06-15 01:00", true},
		{"20240101T000000|P1D|monthly||||1,15", "2024-06-16 01:00", false},
		// December only
		{"20240101T000000|P1D|yearly|||||||12", "2024-12-01 01:00", true},
		{"20240101T000000|P1D|yearly|||||||12", "2024-11-01 01:00", false},
		{"20240101T000000|P1D|yearly|||||||12", "2024-12-24 01:00", false}, // the day of dtstart only
	}
	for _, c := range cases {
		r, err := Parse(c.rec)
		if err != nil {
			t.Fatalf("%s: %v", c.rec, err)
		}
		if got := r.Match(at(c.at)); got != c.want {
			t.Errorf("%s at %s: %v, want %v", c.rec, c.at, got, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, s := range []string{"", "2024", "20240101T000000|1X", "20240101T000000|1H|hourly", "20240101T000000|1H|daily|||XX",
		"20240101T000000", "20240101T000000|1H|daily||0"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("%q parsed", s)
		}
	}
	if d, err := parseDuration("P1DT2H30M"); err != nil || d != 26*time.Hour+30*time.Minute {
		t.Errorf("P1DT2H30M = %v %v", d, err)
	}
}
