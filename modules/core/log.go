package core

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

// logFix is what the xlog/log fixups precompute: the level when it is a
// constant (dynamic levels are parsed per call).
type logFix struct {
	level    int
	constant bool
}

// parseLevel accepts an OpenSIPS level name (L_ERR …) or its number
// (-3 … 4).
func parseLevel(s string) (int, error) {
	s = strings.TrimSpace(s)
	if l, ok := msgctx.LevelNames[strings.ToUpper(s)]; ok {
		return l, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n >= msgctx.LAlert && n <= msgctx.LDbg {
			return n, nil
		}
		return 0, fmt.Errorf("log level %d is out of range %d..%d", n, msgctx.LAlert, msgctx.LDbg)
	}
	return 0, fmt.Errorf("unknown log level %q (use one of %s)", s, levelList())
}

func levelList() string {
	names := make([]string, 0, len(msgctx.LevelNames))
	for n := range msgctx.LevelNames {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		li, lj := msgctx.LevelNames[names[i]], msgctx.LevelNames[names[j]]
		if li != lj {
			return li < lj
		}
		return names[i] < names[j]
	})
	return strings.Join(names, ", ")
}

// twoArgs reports whether the optional second argument was given: then the
// first one is the level.
func twoArgs(args []check.FixupArg) bool { return len(args) > 1 && args[1].Present }

func fixupLevel(args []check.FixupArg, def int) (any, error) {
	if !twoArgs(args) {
		return &logFix{level: def, constant: true}, nil
	}
	s, ok := constStr(args[0])
	if !ok {
		return &logFix{level: def}, nil // a pvar: parsed per call
	}
	l, err := parseLevel(s)
	if err != nil {
		return nil, err
	}
	return &logFix{level: l, constant: true}, nil
}

// xlog([level,] format): the default level is L_ERR, as in OpenSIPS.
func fixupXlog(args []check.FixupArg) (any, error) { return fixupLevel(args, msgctx.LErr) }

// log([level,] text): the default level is L_DBG, as in OpenSIPS; the text
// is printed as written, without pvar expansion.
func fixupLog(args []check.FixupArg) (any, error) { return fixupLevel(args, msgctx.LDbg) }

func callXlog(m *msgctx.Msg, a *modules.Args) int { return doLog(m, a, msgctx.LErr) }
func callLog(m *msgctx.Msg, a *modules.Args) int  { return doLog(m, a, msgctx.LDbg) }

func doLog(m *msgctx.Msg, a *modules.Args, def int) int {
	level, text := def, a.Str(0)
	if a.Has(1) {
		text = a.Str(1)
		if f, ok := a.Fix.(*logFix); ok && f.constant {
			level = f.level
		} else if l, err := parseLevel(a.Str(0)); err == nil {
			level = l
		} else {
			logf(m, msgctx.LWarn, "xlog: "+err.Error()+"; logging at the default level")
		}
	}
	logf(m, level, text)
	return 1
}
