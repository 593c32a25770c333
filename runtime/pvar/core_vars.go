package pvar

import (
	"errors"
	"strconv"
	"strings"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

// Script variables ($var), AVPs ($avp), route parameters ($param), the
// return code and the branch set.

// varSlot is a fixed-up $var/$avp name.
type varSlot struct {
	name string
	slot int
}

func fixVar(arg string, slots check.Slots) (any, error) {
	arg = strings.TrimSpace(arg)
	if arg == "" {
		return nil, errors.New("empty variable name")
	}
	if slots == nil {
		return nil, errDynName
	}
	return varSlot{arg, slots.VarSlot(arg)}, nil
}

func fixAVP(arg string, slots check.Slots) (any, error) {
	arg = strings.TrimSpace(arg)
	if arg == "" {
		return nil, errors.New("empty AVP name")
	}
	if slots == nil {
		return nil, errDynName
	}
	return varSlot{arg, slots.AVPSlot(arg)}, nil
}

// getVar: a script variable holds one value; NULL until set.
func getVar(m *msgctx.Msg, arg any, _ Index) value.Value {
	vs, ok := arg.(varSlot)
	if !ok || vs.slot < 0 || vs.slot >= len(m.Vars) {
		return value.Null
	}
	return m.Vars[vs.slot]
}

func setVar(m *msgctx.Msg, arg any, _ Index, _ string, v value.Value) error {
	vs, ok := arg.(varSlot)
	if !ok || vs.slot < 0 {
		return errDynName
	}
	for len(m.Vars) <= vs.slot {
		m.Vars = append(m.Vars, value.Null)
	}
	m.Vars[vs.slot] = v
	return nil
}

// getAVP reads an AVP stack: no index is the newest value, [N] counts from
// the newest, [-1] is the oldest, [*] joins all with ", ".
func getAVP(m *msgctx.Msg, arg any, idx Index) value.Value {
	vs, ok := arg.(varSlot)
	if !ok || vs.slot < 0 || vs.slot >= len(m.AVPs) {
		return value.Null
	}
	st := m.AVPs[vs.slot]
	if len(st) == 0 {
		return value.Null
	}
	if idx.All {
		parts := make([]string, len(st))
		for i, v := range st {
			parts[i] = v.AsString()
		}
		return value.S(strings.Join(parts, ", "))
	}
	i, ok := pickIndex(idx, len(st))
	if !ok {
		return value.Null
	}
	return st[i]
}

// setAVP follows OpenSIPS's pv_set_avp:
//   - `= v` pushes v as the newest value; `$(avp(x)[N]) = v` replaces the Nth;
//   - `:= v` and `$(avp(x)[*]) = v` drop every value first;
//   - `= NULL` deletes the newest value ([N]: the Nth); `:= NULL` and
//     `$(avp(x)[*]) = NULL` delete them all.
func setAVP(m *msgctx.Msg, arg any, idx Index, op string, v value.Value) error {
	vs, ok := arg.(varSlot)
	if !ok || vs.slot < 0 {
		return errDynName
	}
	for len(m.AVPs) <= vs.slot {
		m.AVPs = append(m.AVPs, nil)
	}
	st := m.AVPs[vs.slot]
	all := op == ":=" || idx.All
	if v.IsNull() {
		if all {
			m.AVPs[vs.slot] = st[:0]
			return nil
		}
		n := 0
		if idx.Set {
			n = idx.N
		}
		if n < 0 {
			return errors.New("negative AVP index in a delete")
		}
		if n < len(st) {
			m.AVPs[vs.slot] = append(st[:n], st[n+1:]...)
		}
		return nil
	}
	if all {
		st = st[:0]
	} else if idx.Set {
		i := idx.N
		if i < 0 {
			i += len(st)
		}
		if i < 0 || i >= len(st) {
			return errors.New("AVP index " + strconv.Itoa(idx.N) + " out of range")
		}
		st[i] = v
		return nil
	}
	st = append(st, value.Null)
	copy(st[1:], st)
	st[0] = v
	m.AVPs[vs.slot] = st
	return nil
}

// paramArg is $param(N) (1-based route argument) or $param(name) (event
// route parameter).
type paramArg struct {
	n    int
	name string
}

func fixParam(arg string, _ check.Slots) (any, error) {
	arg = strings.TrimSpace(arg)
	if arg == "" {
		return nil, errors.New("empty parameter name")
	}
	if n, err := strconv.Atoi(arg); err == nil {
		if n < 1 {
			return nil, errors.New("route parameter indexes start at 1")
		}
		return paramArg{n: n}, nil
	}
	return paramArg{name: arg}, nil
}

func getParam(m *msgctx.Msg, arg any, _ Index) value.Value {
	p, _ := arg.(paramArg)
	if p.name != "" {
		if v, ok := m.Event[p.name]; ok {
			return v
		}
		return value.Null
	}
	if p.n < 1 || p.n > len(m.Params) {
		return value.Null
	}
	return m.Params[p.n-1]
}

func getRetCode(m *msgctx.Msg, _ any, _ Index) value.Value { return vInt(m.RetCode) }

// ---- branches ----

type brField uint8

const (
	brURI brField = iota
	brDURI
	brQ
	brPath
	brFlags
	brSocket
)

func fixBranchField(arg string, _ check.Slots) (any, error) {
	switch strings.ToLower(strings.TrimSpace(arg)) {
	case "", "uri":
		return brURI, nil
	case "duri":
		return brDURI, nil
	case "q":
		return brQ, nil
	case "path":
		return brPath, nil
	case "flags":
		return brFlags, nil
	case "socket":
		return brSocket, nil
	}
	return nil, errors.New("unknown branch field (uri, duri, q, path, flags, socket)")
}

// q2str prints a q value (0..1000) as OpenSIPS does: "1", "0", "0.5".
func q2str(q int) string {
	switch {
	case q < 0:
		return ""
	case q >= 1000:
		return "1"
	case q == 0:
		return "0"
	}
	s := strconv.Itoa(q + 1000)[1:] // 3 digits
	return "0." + strings.TrimRight(s, "0")
}

func branchField(b *msgctx.Branch, f brField) value.Value {
	switch f {
	case brURI:
		return value.S(b.URI)
	case brDURI:
		return vStrNull(b.Dst)
	case brQ:
		return value.S(q2str(b.Q))
	case brFlags:
		return value.SI(strconv.FormatUint(b.Flags, 10), int(b.Flags))
	}
	return value.Null // path, socket: not kept per branch
}

func getBranch(m *msgctx.Msg, arg any, idx Index) value.Value {
	if m.Req == nil || len(m.Branches) == 0 {
		return value.Null
	}
	f, _ := arg.(brField)
	if idx.All {
		parts := make([]string, len(m.Branches))
		for i := range m.Branches {
			parts[i] = m.Branches[i].URI
		}
		return joinVals(parts)
	}
	i, ok := pickIndex(idx, len(m.Branches))
	if !ok {
		return value.Null
	}
	return branchField(&m.Branches[i], f)
}

// setBranch: `$branch = "sip:…"` (no field) appends a branch; with a field
// ($branch(duri) …) it updates branch [N] (default 0).
func setBranch(m *msgctx.Msg, arg any, idx Index, _ string, v value.Value) error {
	if m.Req == nil {
		return errNoRequest
	}
	f, hasField := arg.(brField)
	if !hasField {
		if !v.IsStr() || v.S == "" {
			return errors.New("a string URI is required to add a branch")
		}
		m.Branches = append(m.Branches, msgctx.Branch{URI: v.S, Q: -1})
		return nil
	}
	if idx.All {
		return errors.New("[*] is not allowed in a branch assignment")
	}
	i := 0
	if idx.Set {
		i = idx.N
	}
	if i < 0 {
		i += len(m.Branches)
	}
	if i < 0 || i >= len(m.Branches) {
		return errors.New("no such branch")
	}
	b := &m.Branches[i]
	switch f {
	case brURI:
		if !v.IsStr() || v.S == "" {
			return errors.New("a string value is required to set the branch URI")
		}
		b.URI = v.S
	case brDURI:
		if v.IsNull() {
			b.Dst = ""
			return nil
		}
		s, err := needStr(v, "the branch DURI")
		if err != nil {
			return err
		}
		b.Dst = s
	case brQ:
		if v.IsNull() {
			b.Q = -1
			return nil
		}
		if !v.IsInt() {
			return errors.New("an integer value is required to set the branch Q")
		}
		b.Q = v.I
	case brFlags:
		if v.IsNull() {
			b.Flags = 0
			return nil
		}
		if !v.IsInt() {
			return errors.New("an integer value is required to set the branch flags")
		}
		b.Flags = uint64(v.I)
	default:
		return errors.New("sipedge does not keep a path or socket per branch")
	}
	return nil
}

func init() {
	for _, s := range []*Spec{
		{Name: "var", Writable: true, Arg: NeedArg, Fix: fixVar, Get: getVar, Set: setVar},
		{Name: "avp", Writable: true, Arg: NeedArg, Fix: fixAVP, Get: getAVP, Set: setAVP},
		{Name: "param", Arg: NeedArg, Fix: fixParam, Get: getParam},
		{Name: "retcode", Get: getRetCode},
		{Name: "rc", Get: getRetCode},
		{Name: "branch", Writable: true, Arg: OptionalArg, Fix: fixBranchFieldOpt, Get: getBranch, Set: setBranch},
	} {
		Register(s)
	}
}

// branchNoField marks $branch written without a field name (append).
type branchNoField struct{}

func fixBranchFieldOpt(arg string, slots check.Slots) (any, error) {
	if strings.TrimSpace(arg) == "" {
		return branchNoField{}, nil
	}
	return fixBranchField(arg, slots)
}
