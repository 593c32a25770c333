package core

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

// MaxFlag is the highest flag bit: message and branch flags are uint64.
const MaxFlag = 63

// flagTable gives flags their bits. A number 0..63 is its own bit (as in
// OpenSIPS 1.x/2.x scripts); a name gets a bit the first time it is seen,
// counting down from 63, and keeps it for the life of the process so a
// reload never renumbers a flag. A number whose bit a name already holds is
// an error, so the two kinds can never alias each other.
type flagTable struct {
	kind    string
	mu      sync.Mutex
	names   map[string]int
	numeric uint64 // bits used by number
	named   uint64 // bits given to names
}

var (
	msgFlags    = &flagTable{kind: "flag", names: map[string]int{}}
	branchFlags = &flagTable{kind: "branch flag", names: map[string]int{}}
)

// FlagBit returns the bit of a message flag given by number or name, as
// setflag() uses it. Modules that take flags in modparams (acc, dialog …)
// should use it so that script and modparam agree.
func FlagBit(flag string) (int, error) { return msgFlags.bit(flag) }

// BranchFlagBit is FlagBit for branch flags (setbflag).
func BranchFlagBit(flag string) (int, error) { return branchFlags.bit(flag) }

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (t *flagTable) bit(flag string) (int, error) {
	flag = strings.TrimSpace(flag)
	if flag == "" {
		return 0, fmt.Errorf("empty %s name", t.kind)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if isNumber(flag) {
		n, err := strconv.Atoi(flag)
		if err != nil || n > MaxFlag {
			return 0, fmt.Errorf("%s %s is out of range 0..%d", t.kind, flag, MaxFlag)
		}
		if t.named&(1<<n) != 0 {
			for name, b := range t.names {
				if b == n {
					return 0, fmt.Errorf("%s %d is already used by the named %s %q; use the name or another number", t.kind, n, t.kind, name)
				}
			}
		}
		t.numeric |= 1 << n
		return n, nil
	}
	if b, ok := t.names[flag]; ok {
		return b, nil
	}
	for b := MaxFlag; b >= 0; b-- {
		if (t.numeric|t.named)&(1<<b) == 0 {
			t.named |= 1 << b
			t.names[flag] = b
			return b, nil
		}
	}
	return 0, fmt.Errorf("too many %ss: all %d bits are in use", t.kind, MaxFlag+1)
}

func fixupFlag(t *flagTable, args []check.FixupArg) (int, error) {
	s, ok := constStr(args[0])
	if !ok {
		return 0, fmt.Errorf("the %s must be a constant number (0..%d) or name", t.kind, MaxFlag)
	}
	if s == "" {
		s = "0" // an integer literal 0 may arrive as Int 0 with no text
	}
	return t.bit(s)
}

func fixupMsgFlag(args []check.FixupArg) (any, error) { return fixupFlag(msgFlags, args) }

func fixupBranchFlag(args []check.FixupArg) (any, error) {
	b, err := fixupFlag(branchFlags, args)
	if err != nil {
		return nil, err
	}
	if len(args) > 1 && args[1].Present && args[1].Const && args[1].Int < 0 {
		return nil, fmt.Errorf("branch index must not be negative, got %d", args[1].Int)
	}
	return b, nil
}

func flagMask(a *modules.Args) uint64 { return 1 << uint(a.Fix.(int)) }

func callSetflag(m *msgctx.Msg, a *modules.Args) int {
	m.Flags |= flagMask(a)
	return 1
}

func callResetflag(m *msgctx.Msg, a *modules.Args) int {
	m.Flags &^= flagMask(a)
	return 1
}

func callIsflagset(m *msgctx.Msg, a *modules.Args) int {
	if m.Flags&flagMask(a) != 0 {
		return 1
	}
	return -1
}

// branchFlagsOf returns the flag word of branch idx: 0 is the Request-URI
// branch, 1.. are the branches added with append_branch, as in OpenSIPS.
func branchFlagsOf(m *msgctx.Msg, a *modules.Args) *uint64 {
	idx := 0
	if a.Has(1) {
		idx = a.Int(1)
	}
	switch {
	case idx == 0:
		return &m.BranchFlags
	case idx > 0 && idx <= len(m.Branches):
		return &m.Branches[idx-1].Flags
	}
	return nil
}

func callSetbflag(m *msgctx.Msg, a *modules.Args) int {
	f := branchFlagsOf(m, a)
	if f == nil {
		return -1
	}
	*f |= flagMask(a)
	return 1
}

func callResetbflag(m *msgctx.Msg, a *modules.Args) int {
	f := branchFlagsOf(m, a)
	if f == nil {
		return -1
	}
	*f &^= flagMask(a)
	return 1
}

func callIsbflagset(m *msgctx.Msg, a *modules.Args) int {
	f := branchFlagsOf(m, a)
	if f == nil || *f&flagMask(a) == 0 {
		return -1
	}
	return 1
}
