package events

import (
	"fmt"
	"strings"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

// raise_event(name[, $avp(names)[, $avp(values)]]) is a core function.
func init() {
	modules.RegisterCore(&modules.Func{
		Name: "raise_event",
		Args: []check.ArgSpec{
			{Kind: check.ArgStr},
			{Kind: check.ArgVar, Optional: true},
			{Kind: check.ArgVar, Optional: true},
		},
		Fixup: fixupRaise,
		Call:  callRaise,
	})
}

func fixupRaise(args []check.FixupArg) (any, error) {
	if a := args[0]; a.Present && a.Const && strings.TrimSpace(a.Str) == "" {
		return nil, check.ArgError(0, "the event name cannot be empty")
	}
	for i := 1; i < len(args); i++ {
		if a := args[i]; a.Present && a.PVar != "" && a.PVar != "avp" {
			return nil, check.ArgError(i, "raise_event() takes its names and values in AVPs, not $%s", a.PVar)
		}
	}
	return nil, nil
}

// avpValues reads every value of an AVP, newest first (index 0 up).
func avpValues(m *msgctx.Msg, r *pvar.Ref) []value.Value {
	if r == nil {
		return nil
	}
	var out []value.Value
	for i := 0; i < 1024; i++ {
		v := r.Spec.Get(m, r.Arg, pvar.Index{Set: true, N: i})
		if v.IsNull() {
			break
		}
		out = append(out, v)
	}
	return out
}

func callRaise(m *msgctx.Msg, a *modules.Args) int {
	name := strings.TrimSpace(a.Str(0))
	if name == "" {
		logf(m, msgctx.LErr, "raise_event: empty event name")
		return -1
	}
	var params []Param
	switch {
	case a.Has(2):
		names, vals := avpValues(m, a.Ref(1)), avpValues(m, a.Ref(2))
		if len(names) != len(vals) {
			logf(m, msgctx.LErr, fmt.Sprintf("raise_event %s: %d attribute names but %d values", name, len(names), len(vals)))
			return -1
		}
		for i := range names {
			params = append(params, Param{Name: names[i].AsString(), Value: vals[i]})
		}
	case a.Has(1):
		// a single AVP holds the values, without names
		for _, v := range avpValues(m, a.Ref(1)) {
			params = append(params, Param{Value: v})
		}
	}
	Raise(name, params...)
	return 1
}

func logf(m *msgctx.Msg, level int, text string) {
	if m != nil && m.Host != nil {
		m.Host.Log(m, level, text)
	}
}
