// Package maxfwd is OpenSIPS's maxfwd module: it adds, decrements and
// checks the Max-Forwards header of requests.
package maxfwd

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

// UpperLimit is the largest Max-Forwards value the module handles, as in
// OpenSIPS (RFC 3261 suggests 70; 256 is OpenSIPS's cap).
const UpperLimit = 256

// maxLimit is the live max_limit modparam.
var maxLimit atomic.Int64

func init() {
	maxLimit.Store(UpperLimit)
	intArg := []check.ArgSpec{{Kind: check.ArgInt}}
	modules.Register(&modules.Info{
		Name: "maxfwd",
		Params: []modules.Param{
			{Name: "max_limit", Kind: modules.ParamInt, Default: value.I(UpperLimit)},
		},
		Configure: configure,
		Funcs: []*modules.Func{
			{
				Name:   "mf_process_maxfwd_header",
				Args:   intArg,
				Routes: check.Routes(ast.RequestRoute),
				Fixup:  fixupValue,
				Call:   callProcess,
			},
			{
				Name:   "is_maxfwd_lt",
				Args:   intArg,
				Routes: check.Routes(ast.RequestRoute, ast.FailureRoute, ast.BranchRoute),
				Fixup:  fixupValue,
				Call:   callIsLt,
			},
		},
	})
}

func configure(p modules.Params) (func(), error) {
	n := p.Int("max_limit")
	if n < 1 || n > UpperLimit {
		return nil, fmt.Errorf("max_limit %d is out of range 1..%d", n, UpperLimit)
	}
	return func() { maxLimit.Store(int64(n)) }, nil
}

func fixupValue(args []check.FixupArg) (any, error) {
	if a := args[0]; a.Present && a.Const && (a.Int < 1 || a.Int > UpperLimit) {
		return nil, check.ArgError(0, "Max-Forwards value %d is out of range 1..%d", a.Int, UpperLimit)
	}
	return nil, nil
}

func logf(m *msgctx.Msg, level int, text string) {
	if m.Host != nil {
		m.Host.Log(m, level, text)
	}
}

// find returns the position of the first Max-Forwards header and its value;
// pos is -1 when there is none, err is set when its value is not a number.
func find(req *sip.Request) (pos, val int, err error) {
	for i, h := range req.Headers() {
		if !strings.EqualFold(h.Name(), "Max-Forwards") {
			continue
		}
		if mf, ok := h.(*sip.MaxForwardsHeader); ok {
			return i, int(*mf), nil
		}
		v, perr := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 16)
		if perr != nil {
			return i, 0, fmt.Errorf("bad Max-Forwards value %q", h.Value())
		}
		return i, int(v), nil
	}
	return -1, 0, nil
}

// setAt replaces the header at position pos with h, keeping the order.
func setAt(req *sip.Request, pos int, h sip.Header) {
	hs := append([]sip.Header(nil), req.Headers()...)
	hs[pos] = h
	// sipgo has no positional replace: empty the list (RemoveHeader drops
	// the first header of a name, which is the head) and rebuild it.
	for len(req.Headers()) > 0 {
		req.RemoveHeader(req.Headers()[0].Name())
	}
	for _, x := range hs {
		req.AppendHeader(x)
	}
}

// mf_process_maxfwd_header(max): 2 = no header, one was added with max;
// 1 = the value was decremented; -1 = the value is 0; -2 = error.
func callProcess(m *msgctx.Msg, a *modules.Args) int {
	if m.Req == nil {
		return -2
	}
	pos, val, err := find(m.Req)
	switch {
	case err != nil:
		logf(m, msgctx.LErr, "mf_process_maxfwd_header: "+err.Error())
		return -2
	case pos < 0:
		v := a.Int(0)
		if v < 1 || v > UpperLimit {
			logf(m, msgctx.LErr, fmt.Sprintf("mf_process_maxfwd_header: value %d is out of range 1..%d", v, UpperLimit))
			return -2
		}
		if lim := int(maxLimit.Load()); v > lim {
			v = lim
		}
		mf := sip.MaxForwardsHeader(v)
		m.Req.PrependHeader(&mf)
		return 2
	case val == 0:
		return -1
	}
	if lim := int(maxLimit.Load()); val > lim {
		val = lim + 1
	}
	mf := sip.MaxForwardsHeader(val - 1)
	setAt(m.Req, pos, &mf)
	return 1
}

// is_maxfwd_lt(n): 1 = the value is below n; -1 = it is not; -2 = no
// header; -3 = error.
func callIsLt(m *msgctx.Msg, a *modules.Args) int {
	if m.Req == nil {
		return -3
	}
	pos, val, err := find(m.Req)
	switch {
	case err != nil:
		logf(m, msgctx.LErr, "is_maxfwd_lt: "+err.Error())
		return -3
	case pos < 0:
		return -2
	case val >= a.Int(0):
		return -1
	}
	return 1
}
