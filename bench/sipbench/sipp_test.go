package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A -trace_stat file: the first line reaching the wanted call count dates
// the end of call generation; the last line has the totals.
func TestReadSippStats(t *testing.T) {
	cols := []string{"StartTime", "CurrentTime", "ElapsedTime(C)", "TotalCallCreated", "SuccessfulCall(C)",
		"FailedCall(C)", "Retransmissions(C)", "FailedUnexpectedMessage(C)"}
	row := func(now, created, ok, failed, retrans string) string {
		return strings.Join([]string{"2026-11-25\t09:00:00.000000\t1000.000000", "2026-11-25\t09:00:0x\t" + now,
			"00:00:0" + now[3:4], created, ok, failed, retrans, "0"}, ";")
	}
	csv := strings.Join([]string{strings.Join(cols, ";"),
		row("1001.000000", "1000", "0", "0", "0"),
		row("1002.500000", "2000", "900", "0", "3"),
		row("1004.000000", "2000", "1998", "2", "7"),
	}, "\n") + "\n"
	path := filepath.Join(t.TempDir(), "uac_stat.csv")
	if err := os.WriteFile(path, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	s := readSippStats(path, 2000)
	if !s.ok || s.created != 2000 || s.successful != 1998 || s.failed != 2 || s.retrans != 7 {
		t.Fatalf("got %+v", s)
	}
	if s.genSeconds != 2.5 || s.elapsed != 4 {
		t.Errorf("generation %.2fs, elapsed %.2fs; want 2.5 and 4", s.genSeconds, s.elapsed)
	}
	if s := readSippStats(filepath.Join(t.TempDir(), "none.csv"), 1); s.ok {
		t.Error("a missing file gave statistics")
	}
}

func TestOthersMillis(t *testing.T) {
	before := map[int]uint64{1: 100, 2: 50, 3: 10}
	after := map[int]uint64{1: 150, 2: 60, 4: 5}
	// pid 1 skipped, pid 2 +10, pid 4 new: 5; pid 3 gone
	if got := othersMillis(before, after, map[int]bool{1: true}); got != 150 {
		t.Errorf("got %v ms, want 150", got)
	}
}
