// Package json is OpenSIPS's json module: the $json(id) variable (and its
// $json_compact / $json_pretty forms) that parses, builds and prints JSON
// documents from the script, json_link() and json_merge().
//
// $json(id) paths follow OpenSIPS's grammar:
//
//	id         = name ( "/" key | "[" index "]" )* [ ".keys" | ".values" ]
//	key        = string | $pvar
//	index      = integer | $pvar | (empty: append)
//
// The documents live in the message's state (see README.md for how that
// differs from OpenSIPS, where they live in the worker process).
package json

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/lang/source"
	"github.com/sipedge/sipedge/lang/syntax"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "json"

type config struct {
	noSlashEscape bool // disable_escape_forward_slash ($json only)
	longQuoting   bool // enable_long_quoting
}

var cur atomic.Pointer[config]

func init() {
	cur.Store(&config{})
	jsonVar := check.ArgSpec{Kind: check.ArgVar, Writable: true}
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "enable_long_quoting", Kind: modules.ParamInt, Default: value.I(0)},
			{Name: "disable_escape_forward_slash", Kind: modules.ParamInt, Default: value.I(0)},
		},
		Configure: func(p modules.Params) (func(), error) {
			c := &config{noSlashEscape: p.Int("disable_escape_forward_slash") != 0, longQuoting: p.Int("enable_long_quoting") != 0}
			return func() { cur.Store(c) }, nil
		},
		PVars: []*pvar.Spec{
			{Name: "json", Writable: true, Arg: pvar.NeedArg, Fix: fixPath,
				Get: getter(fSpaced), Set: setJSON},
			{Name: "json_compact", Writable: true, Arg: pvar.NeedArg, Fix: fixPath,
				Get: getter(fPlain), Set: setJSON},
			{Name: "json_pretty", Writable: true, Arg: pvar.NeedArg, Fix: fixPath,
				Get: getter(fPretty), Set: setJSON},
		},
		Funcs: []*modules.Func{
			{Name: "json_link", Args: []check.ArgSpec{jsonVar, jsonVar}, Fixup: fixupLink, Call: callLink,
				Routes: check.Routes(ast.RequestRoute, ast.OnReplyRoute, ast.FailureRoute, ast.BranchRoute,
					ast.LocalRoute, ast.StartupRoute, ast.TimerRoute, ast.EventRoute)},
			{Name: "json_merge", Args: []check.ArgSpec{{Kind: check.ArgStr}, {Kind: check.ArgStr}, {Kind: check.ArgVar, Writable: true}},
				Call: callMerge},
		},
	})
}

// ---- paths ----

type tagKind uint8

const (
	tagKey tagKind = iota
	tagIdx
	tagEnd // "[]": append
)

type tag struct {
	kind tagKind
	key  string
	idx  int
	pv   *pvar.Ref // key or index taken from a pvar
}

type iterKind uint8

const (
	iterNone iterKind = iota
	iterKeys
	iterValues
)

// path is a fixed-up $json(id).
type path struct {
	name string
	tags []tag
	iter iterKind
	text string
}

func fixPath(arg string, slots check.Slots) (any, error) { return parsePath(arg, slots) }

// parsePath reads an id. Spaces are significant (keys may hold them), as
// in OpenSIPS.
func parsePath(s string, slots check.Slots) (*path, error) {
	p := &path{text: s}
	i := strings.IndexAny(s, "/[.")
	if i < 0 {
		i = len(s)
	}
	p.name = s[:i]
	if p.name == "" {
		return nil, errors.New("missing variable name")
	}
	for i < len(s) {
		switch s[i] {
		case '/':
			j := i + 1
			for j < len(s) && !strings.ContainsRune("/[.", rune(s[j])) {
				j++
			}
			t := tag{kind: tagKey, key: s[i+1 : j]}
			if strings.HasPrefix(t.key, "$") {
				r, err := compilePV(t.key, slots)
				if err != nil {
					return nil, err
				}
				t.pv = r
			}
			p.tags = append(p.tags, t)
			i = j
		case '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("mismatched bracket in %q", s)
			}
			in := strings.TrimSpace(s[i+1 : i+j])
			t := tag{kind: tagIdx}
			switch {
			case in == "":
				t.kind = tagEnd
			case strings.HasPrefix(in, "$"):
				r, err := compilePV(in, slots)
				if err != nil {
					return nil, err
				}
				t.pv = r
			default:
				n, err := strconv.Atoi(in)
				if err != nil {
					return nil, fmt.Errorf("index %q is not an integer", in)
				}
				t.idx = n
			}
			p.tags = append(p.tags, t)
			i += j + 1
		case '.':
			switch s[i+1:] {
			case "keys":
				p.iter = iterKeys
			case "values":
				p.iter = iterValues
			default:
				return nil, fmt.Errorf("bad iterator %q (.keys or .values)", s[i:])
			}
			i = len(s)
		default:
			return nil, fmt.Errorf("unexpected %q at position %d in %q", s[i], i, s)
		}
	}
	return p, nil
}

func compilePV(s string, slots check.Slots) (*pvar.Ref, error) {
	pv, n, err := syntax.ParsePVar(s, source.Pos{})
	if err != nil || n != len(s) {
		return nil, fmt.Errorf("%q is not a pseudo-variable", s)
	}
	if slots == nil && (pv.Name == "var" || pv.Name == "avp") {
		return nil, fmt.Errorf("%s cannot be used in a $json name built at run time", s)
	}
	return pvar.Compile(pv, slots)
}

// resolved is a path with its pvars read for one access.
type resolved struct {
	p    *path
	tags []tag
}

func (p *path) resolve(m *msgctx.Msg) (resolved, error) {
	r := resolved{p: p, tags: p.tags}
	copied := false
	for i, t := range p.tags {
		if t.pv == nil {
			continue
		}
		if !copied {
			r.tags = append([]tag(nil), p.tags...)
			copied = true
		}
		v := t.pv.Get(m)
		if t.kind == tagKey {
			if v.IsNull() {
				return r, fmt.Errorf("%s: NULL value in a key", t.pv.Text)
			}
			r.tags[i].key = v.AsString()
			continue
		}
		n, ok := v.AsInt()
		if !ok {
			return r, fmt.Errorf("%s: non-integer value in an index", t.pv.Text)
		}
		r.tags[i].idx = n
	}
	return r, nil
}

// ---- storage ----

const modKey = "json"

type store struct{ vars map[string]*node }

func vars(m *msgctx.Msg) *store {
	return m.ModData(modKey, func() any { return &store{vars: map[string]*node{}} }).(*store)
}

func peek(m *msgctx.Msg) *store {
	s, _ := m.Mod[modKey].(*store)
	return s
}

// walk follows the path. With prev it returns the container of the last
// tag (whose last key or index may be missing), as OpenSIPS's get_object.
func walk(root *node, tags []tag, prev bool) (*node, error) {
	obj := root
	var last *node
	for _, t := range tags {
		last = obj
		switch t.kind {
		case tagKey:
			if obj == nil || obj.k != kObj {
				return nil, fmt.Errorf("/%s: not an object", t.key)
			}
			v, ok := obj.get(t.key)
			if !ok && !prev {
				return nil, fmt.Errorf("no key %q", t.key)
			}
			obj = v
		case tagIdx, tagEnd:
			if obj == nil || obj.k != kArr {
				return nil, errors.New("[]: not an array")
			}
			i := t.idx
			if t.kind == tagEnd {
				i = len(obj.arr)
			} else if i < 0 {
				i += len(obj.arr)
			}
			if i < 0 {
				return nil, fmt.Errorf("index %d out of range", t.idx)
			}
			if i >= len(obj.arr) {
				if !prev {
					return nil, fmt.Errorf("index %d out of range", t.idx)
				}
				obj = nil
			} else {
				obj = obj.arr[i]
			}
		}
	}
	if prev {
		return last, nil
	}
	return obj, nil
}

// lookup reads the node at a path (nil when there is none).
func lookup(m *msgctx.Msg, r resolved) *node {
	s := peek(m)
	if s == nil {
		return nil
	}
	root := s.vars[r.p.name]
	if root == nil {
		return nil
	}
	n, err := walk(root, r.tags, false)
	if err != nil {
		return nil
	}
	return n
}

// assign is OpenSIPS's pv_add_json: v nil deletes.
func assign(m *msgctx.Msg, r resolved, v *node) error {
	s := vars(m)
	root, ok := s.vars[r.p.name]
	if !ok || root == nil {
		if len(r.tags) > 0 {
			if v == nil {
				return nil
			}
			return fmt.Errorf("$json(%s) is not initialized yet", r.p.name)
		}
		if v != nil {
			s.vars[r.p.name] = v
		}
		return nil
	}
	if len(r.tags) == 0 {
		if v == nil {
			delete(s.vars, r.p.name)
		} else {
			s.vars[r.p.name] = v
		}
		return nil
	}
	dest, err := walk(root, r.tags, true)
	if err != nil || dest == nil {
		if err == nil {
			err = errors.New("no such path")
		}
		return fmt.Errorf("could not find object with that path: %v", err)
	}
	t := r.tags[len(r.tags)-1]
	switch t.kind {
	case tagKey:
		if v == nil {
			dest.del(t.key)
		} else {
			dest.put(t.key, v)
		}
	case tagEnd:
		if v == nil {
			return errors.New("invalid parameter for deletion ([] appends)")
		}
		dest.arr = append(dest.arr, v)
	case tagIdx:
		i := t.idx
		if i < 0 {
			i += len(dest.arr)
		}
		if i < 0 || i >= len(dest.arr) {
			return fmt.Errorf("attempting to replace at invalid index in array: %d", t.idx)
		}
		if v == nil {
			dest.arr = append(dest.arr[:i:i], dest.arr[i+1:]...)
		} else {
			dest.arr[i] = v
		}
	}
	return nil
}

// ---- the pvars ----

func logf(m *msgctx.Msg, level int, format string, args ...any) {
	if m != nil && m.Host != nil {
		m.Host.Log(m, level, "json: "+fmt.Sprintf(format, args...))
	}
}

// toValue is what $json(id) returns for a node: integers as integers,
// strings as they are, anything else printed as JSON.
func toValue(m *msgctx.Msg, n *node, flags int) value.Value {
	c := cur.Load()
	switch n.k {
	case kInt:
		i := n.i
		if i > math.MaxInt32 || i < math.MinInt32 {
			if c.longQuoting {
				return value.S(strconv.FormatInt(i, 10))
			}
			// json-c's json_object_get_int clamps to 32 bits
			i = max(min(i, math.MaxInt32), math.MinInt32)
		}
		return value.SI(strconv.FormatInt(i, 10), int(i))
	case kStr:
		return value.S(n.s)
	}
	if flags == fSpaced && c.noSlashEscape {
		flags |= fNoSlash
	}
	s, err := n.print(flags)
	if err != nil {
		logf(m, msgctx.LErr, "%v", err)
		return value.Null
	}
	return value.S(s)
}

func getter(flags int) func(m *msgctx.Msg, arg any, idx pvar.Index) value.Value {
	return func(m *msgctx.Msg, arg any, idx pvar.Index) value.Value {
		p, ok := arg.(*path)
		if !ok {
			return value.Null
		}
		r, err := p.resolve(m)
		if err != nil {
			logf(m, msgctx.LErr, "cannot expand variables in path: %v", err)
			return value.Null
		}
		n := lookup(m, r)
		if n == nil {
			return value.Null
		}
		if !idx.Set && n.k == kNull {
			return value.Null // json-c has no null object: OpenSIPS returns NULL
		}
		if idx.All {
			logf(m, msgctx.LErr, "\"[*]\" index only supported in for each statements")
			return value.Null
		}
		if idx.Set {
			// for-each iteration: the Nth element, value or key
			i := idx.N
			switch n.k {
			case kObj:
				if i < 0 || i >= len(n.keys) {
					return value.Null
				}
				if p.iter == iterKeys {
					return value.S(n.keys[i])
				}
				n = n.vals[n.keys[i]]
			case kArr:
				if p.iter != iterNone || i < 0 || i >= len(n.arr) {
					return value.Null
				}
				n = n.arr[i]
			default:
				return value.Null
			}
			if n == nil || n.k == kNull {
				return value.S("null")
			}
		}
		return toValue(m, n, flags)
	}
}

func setJSON(m *msgctx.Msg, arg any, _ pvar.Index, op string, v value.Value) error {
	p, ok := arg.(*path)
	if !ok {
		return errors.New("bad $json name")
	}
	r, err := p.resolve(m)
	if err != nil {
		return fmt.Errorf("cannot expand variables in path: %v", err)
	}
	if v.IsNull() {
		return assign(m, r, nil)
	}
	var n *node
	if op == ":=" {
		if !v.IsStr() {
			return errors.New("trying to interpret a non-string value as JSON")
		}
		n, err = parse(v.S)
		if err != nil {
			assign(m, r, nil)
			return fmt.Errorf("error parsing json: %v", err)
		}
	} else if v.IsInt() {
		n = &node{k: kInt, i: int64(v.I)}
	} else {
		n = &node{k: kStr, s: v.S}
	}
	return assign(m, r, n)
}

// ---- json_link($json(dest), $json(src)) ----

func fixupLink(args []check.FixupArg) (any, error) {
	for i, a := range args[:2] {
		if a.Present && a.PVar != "" && a.PVar != "json" {
			return nil, check.ArgError(i, "parameter must be a json variable ($json(...)), not $%s", a.PVar)
		}
	}
	return nil, nil
}

func refPath(m *msgctx.Msg, r *pvar.Ref) (resolved, error) {
	if r == nil || r.Spec == nil || r.Spec.Name != "json" {
		return resolved{}, errors.New("parameter must be a json variable")
	}
	var p *path
	if r.Dyn != nil {
		var err error
		if p, err = parsePath(r.Dyn.Get(m).AsString(), nil); err != nil {
			return resolved{}, err
		}
	} else if p, _ = r.Arg.(*path); p == nil {
		return resolved{}, errors.New("bad $json name")
	}
	return p.resolve(m)
}

func callLink(m *msgctx.Msg, a *modules.Args) int {
	if len(a.Refs) < 2 {
		return -1
	}
	dst, err := refPath(m, a.Refs[0])
	if err != nil {
		logf(m, msgctx.LErr, "json_link: %v", err)
		return -1
	}
	src, err := refPath(m, a.Refs[1])
	if err != nil {
		logf(m, msgctx.LErr, "json_link: %v", err)
		return -1
	}
	n := lookup(m, src)
	if n == nil {
		logf(m, msgctx.LNotice, "json_link: could not find object with that path (%s)", src.p.text)
		return -1
	}
	if err := assign(m, dst, n); err != nil {
		logf(m, msgctx.LErr, "json_link: %v", err)
		return -1
	}
	return 1
}

// ---- json_merge(json, patch, $out) ----

func callMerge(m *msgctx.Msg, a *modules.Args) int {
	doc, err := parse(a.Str(0))
	if err != nil {
		logf(m, msgctx.LErr, "json_merge: bad JSON: %v", err)
		return -1
	}
	patch, err := parse(a.Str(1))
	if err != nil {
		logf(m, msgctx.LErr, "json_merge: bad JSON patch: %v", err)
		return -1
	}
	out, err := merge(doc, patch).print(fSpaced)
	if err != nil {
		logf(m, msgctx.LErr, "json_merge: %v", err)
		return -1
	}
	if len(a.Refs) < 3 || a.Refs[2] == nil {
		return -1
	}
	if err := a.Refs[2].Set(m, "=", value.S(out)); err != nil {
		logf(m, msgctx.LErr, "json_merge: setting %s: %v", a.Refs[2].Text, err)
		return -1
	}
	return 1
}
