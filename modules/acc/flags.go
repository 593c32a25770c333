package acc

import (
	"fmt"
	"strings"
)

// Backends (do_accounting's type argument).
const (
	beLog uint8 = 1 << iota
	beDB
	beAAA
	beEVI
	allBackends = beLog | beDB | beAAA | beEVI
)

// Options (do_accounting's flags argument); optAcc is plain transaction
// accounting, which every do_accounting call turns on for its backends.
const (
	optAcc = iota
	optCDR
	optMissed
	optFailed
	numOpts
)

const allOpts = 1<<optCDR | 1<<optMissed | 1<<optFailed

// mask is what do_accounting asked for: per option, the set of backends.
type mask [numOpts]uint8

func (m mask) on(opt int, be uint8) bool { return m[opt]&be != 0 }

// any reports whether an option is on for some backend.
func (m mask) any(opt int) bool { return m[opt] != 0 }

// set turns on accounting for backends be with the options in opts (a bit
// set of 1<<optX); plain accounting is always turned on.
func (m *mask) set(be uint8, opts uint8) {
	m[optAcc] |= be
	for o := optCDR; o < numOpts; o++ {
		if opts&(1<<o) != 0 {
			m[o] |= be
		}
	}
}

// drop turns options off for backends (drop_accounting): opts 0 means
// every option, plain accounting included.
func (m *mask) drop(be uint8, opts uint8) {
	if opts == 0 {
		for o := range m {
			m[o] &^= be
		}
		return
	}
	for o := optCDR; o < numOpts; o++ {
		if opts&(1<<o) != 0 {
			m[o] &^= be
		}
	}
}

func (m mask) empty() bool {
	for _, b := range m {
		if b != 0 {
			return false
		}
	}
	return true
}

// parseTypes reads "log|db|aaa|evi" (case-insensitive, '|'-separated).
func parseTypes(s string) (uint8, error) {
	var out uint8
	for _, tok := range strings.Split(s, "|") {
		switch strings.ToLower(strings.TrimSpace(tok)) {
		case "log":
			out |= beLog
		case "db":
			out |= beDB
		case "aaa":
			out |= beAAA
		case "evi":
			out |= beEVI
		default:
			return 0, fmt.Errorf("invalid accounting backend %q (want log, db, aaa or evi, separated by '|')", strings.TrimSpace(tok))
		}
	}
	return out, nil
}

// parseOpts reads "cdr|missed|failed" into a bit set of 1<<optX.
func parseOpts(s string) (uint8, error) {
	var out uint8
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	for _, tok := range strings.Split(s, "|") {
		switch strings.ToLower(strings.TrimSpace(tok)) {
		case "cdr":
			out |= 1 << optCDR
		case "missed":
			out |= 1 << optMissed
		case "failed":
			out |= 1 << optFailed
		default:
			return 0, fmt.Errorf("invalid accounting flag %q (want cdr, missed or failed, separated by '|')", strings.TrimSpace(tok))
		}
	}
	return out, nil
}
