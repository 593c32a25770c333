// Package pvar implements pseudo-variables and transformations: a registry
// of pvar classes (core ones here, module ones registered by their modules),
// the load-time fixup of a reference such as $(hdr(Via)[1]{via.host}) into a
// Ref, and the per-message Get/Set of a Ref.
package pvar

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

// Index selects among the values of a multi-valued pvar: none given, [*], or [N]
// (negative N counts from the end).
type Index struct {
	Set bool
	All bool
	N   int
}

// Spec is one pvar class.
type Spec struct {
	Name     string
	Module   string // "core" or the providing module
	Writable bool
	// Arg says whether the class takes an inner name: $hdr(Via) does, $rU not.
	Arg ArgUse
	// Fix converts the inner name at load time (canonical header name, slot
	// number …). Nil keeps the string.
	Fix func(arg string, slots check.Slots) (any, error)
	// Get reads the value; arg is what Fix returned.
	Get func(m *msgctx.Msg, arg any, idx Index) value.Value
	// Set writes it; v is Null for `$x = NULL` (delete). op is "=" or ":=".
	Set func(m *msgctx.Msg, arg any, idx Index, op string, v value.Value) error
}

type ArgUse uint8

const (
	NoArg ArgUse = iota
	NeedArg
	OptionalArg
)

var specs = map[string]*Spec{}

// Register adds a pvar class; it panics on duplicates so a clash shows at init.
func Register(s *Spec) {
	if s.Name == "" || s.Get == nil {
		panic("pvar: Register needs Name and Get")
	}
	if _, dup := specs[s.Name]; dup {
		panic("pvar: duplicate " + s.Name)
	}
	if s.Module == "" {
		s.Module = "core"
	}
	specs[s.Name] = s
}

// Lookup returns a registered class.
func Lookup(name string) *Spec { return specs[name] }

// Names lists every registered class, sorted.
func Names() []string {
	out := make([]string, 0, len(specs))
	for n := range specs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Ref is a fixed-up pvar reference.
type Ref struct {
	Spec  *Spec
	Arg   any
	Dyn   *Ref // inner name taken from another pvar at run time
	Idx   Index
	IdxPV *Ref // index taken from a pvar at run time
	Trans []TransCall
	Text  string // canonical source text, for logs and disassembly
}

// TransCall is one transformation step with its fixed-up parameters.
type TransCall struct {
	T      *Trans
	Params []TransParam
	// consts holds the parameter values when none is a pvar, so a run
	// needs no per-call parameter slice (which would escape to the heap).
	consts []value.Value
}

// TransParam is a constant or a pvar-valued transformation parameter.
type TransParam struct {
	Const value.Value
	PV    *Ref
}

// Compile fixes up an AST pvar. It checks the class exists, the inner name
// is present when needed, and every transformation is known with a valid
// parameter count.
func Compile(p *ast.PVar, slots check.Slots) (*Ref, error) {
	s := specs[p.Name]
	if s == nil {
		return nil, fmt.Errorf("unknown pseudo-variable $%s", p.Name)
	}
	r := &Ref{Spec: s, Text: p.String()}
	switch {
	case s.Arg == NeedArg && !p.HasArg && p.ArgPV == nil:
		return nil, fmt.Errorf("$%s needs a name in parentheses, as in $%s(name)", p.Name, p.Name)
	case s.Arg == NoArg && (p.HasArg || p.ArgPV != nil):
		return nil, fmt.Errorf("$%s takes no name in parentheses", p.Name)
	}
	if p.ArgPV != nil {
		inner, err := Compile(p.ArgPV, slots)
		if err != nil {
			return nil, err
		}
		r.Dyn = inner
	} else if p.HasArg || s.Arg != NoArg {
		if s.Fix != nil {
			a, err := s.Fix(p.Arg, slots)
			if err != nil {
				return nil, fmt.Errorf("$%s(%s): %v", p.Name, p.Arg, err)
			}
			r.Arg = a
		} else {
			r.Arg = p.Arg
		}
	}
	switch {
	case p.IndexAll:
		r.Idx = Index{Set: true, All: true}
	case p.Index != nil:
		switch ix := p.Index.(type) {
		case *ast.Literal:
			if ix.Kind != ast.IntLit {
				n, err := strconv.Atoi(ix.Str)
				if err != nil {
					return nil, fmt.Errorf("index of %s must be an integer", r.Text)
				}
				ix = &ast.Literal{Kind: ast.IntLit, Int: n}
			}
			r.Idx = Index{Set: true, N: ix.Int}
		case *ast.Unary:
			lit, ok := ix.X.(*ast.Literal)
			if !ok || ix.Op != "-" || lit.Kind != ast.IntLit {
				return nil, fmt.Errorf("index of %s must be an integer or a pvar", r.Text)
			}
			r.Idx = Index{Set: true, N: -lit.Int}
		case *ast.PVar:
			ipv, err := Compile(ix, slots)
			if err != nil {
				return nil, err
			}
			r.IdxPV = ipv
			r.Idx.Set = true
		default:
			return nil, fmt.Errorf("index of %s must be an integer or a pvar", r.Text)
		}
	}
	for _, t := range p.Trans {
		tr := transforms[t.Class+"."+t.Name]
		if tr == nil {
			return nil, fmt.Errorf("unknown transformation {%s.%s}", t.Class, t.Name)
		}
		if len(t.Params) < tr.MinParams || len(t.Params) > tr.MaxParams {
			return nil, fmt.Errorf("transformation {%s.%s} takes %s", t.Class, t.Name, paramCount(tr))
		}
		tc := TransCall{T: tr}
		for _, pe := range t.Params {
			switch pe := pe.(type) {
			case *ast.Literal:
				if pe.Kind == ast.IntLit {
					tc.Params = append(tc.Params, TransParam{Const: value.SI(strconv.Itoa(pe.Int), pe.Int)})
				} else if n, err := strconv.Atoi(strings.TrimSpace(pe.Str)); err == nil {
					tc.Params = append(tc.Params, TransParam{Const: value.SI(pe.Str, n)})
				} else {
					tc.Params = append(tc.Params, TransParam{Const: value.S(pe.Str)})
				}
			case *ast.PVar:
				ppv, err := Compile(pe, slots)
				if err != nil {
					return nil, err
				}
				tc.Params = append(tc.Params, TransParam{PV: ppv})
			default:
				return nil, fmt.Errorf("transformation {%s.%s}: parameters must be constants or pvars", t.Class, t.Name)
			}
		}
		if tr.Check != nil {
			if err := tr.Check(tc.Params); err != nil {
				return nil, fmt.Errorf("transformation {%s.%s}: %v", t.Class, t.Name, err)
			}
		}
		tc.consts = make([]value.Value, 0, len(tc.Params))
		for _, p := range tc.Params {
			if p.PV != nil {
				tc.consts = nil
				break
			}
			tc.consts = append(tc.consts, p.Const)
		}
		r.Trans = append(r.Trans, tc)
	}
	return r, nil
}

func paramCount(t *Trans) string {
	switch {
	case t.MinParams == t.MaxParams && t.MaxParams == 0:
		return "no parameters"
	case t.MinParams == t.MaxParams:
		return fmt.Sprintf("%d parameter(s)", t.MinParams)
	}
	return fmt.Sprintf("%d to %d parameters", t.MinParams, t.MaxParams)
}

// Writable reports whether a script may assign to the reference: the class
// must be writable and no transformation may be applied.
func (r *Ref) Writable() bool { return r.Spec.Set != nil && r.Spec.Writable && len(r.Trans) == 0 }

func (r *Ref) arg(m *msgctx.Msg) (any, error) {
	if r.Dyn == nil {
		return r.Arg, nil
	}
	name := r.Dyn.Get(m).AsString()
	if r.Spec.Fix == nil {
		return name, nil
	}
	return r.Spec.Fix(name, nil)
}

func (r *Ref) index(m *msgctx.Msg) Index {
	if r.IdxPV == nil {
		return r.Idx
	}
	n, _ := r.IdxPV.Get(m).AsInt()
	return Index{Set: true, N: n}
}

// Get evaluates the reference. A transformation that fails on its input
// yields NULL and the error is returned by GetErr for the caller to log.
func (r *Ref) Get(m *msgctx.Msg) value.Value {
	v, _ := r.GetErr(m)
	return v
}

// GetErr is Get with the transformation or name error, if any.
func (r *Ref) GetErr(m *msgctx.Msg) (value.Value, error) {
	a, err := r.arg(m)
	if err != nil {
		return value.Null, err
	}
	return r.transform(m, r.Spec.Get(m, a, r.index(m)))
}

// GetAt reads value i of a multi-valued pvar for the for-each loop,
// regardless of the reference's own [*] index; transformations apply.
func (r *Ref) GetAt(m *msgctx.Msg, i int) (value.Value, error) {
	a, err := r.arg(m)
	if err != nil {
		return value.Null, err
	}
	v := r.Spec.Get(m, a, Index{Set: true, N: i})
	if v.IsNull() {
		return v, nil
	}
	return r.transform(m, v)
}

func (r *Ref) transform(m *msgctx.Msg, v value.Value) (value.Value, error) {
	var err error
	for i := range r.Trans {
		tc := &r.Trans[i]
		ps := tc.consts
		if ps == nil {
			ps = make([]value.Value, 0, len(tc.Params))
			for _, p := range tc.Params {
				if p.PV != nil {
					ps = append(ps, p.PV.Get(m))
				} else {
					ps = append(ps, p.Const)
				}
			}
		}
		v, err = tc.T.Fn(m, v, ps)
		if err != nil {
			return value.Null, fmt.Errorf("%s: {%s.%s}: %v", r.Text, tc.T.Class, tc.T.Name, err)
		}
	}
	return v, nil
}

// Set assigns v (Null deletes) with the assignment operator op ("=" or ":=").
func (r *Ref) Set(m *msgctx.Msg, op string, v value.Value) error {
	if !r.Writable() {
		return fmt.Errorf("%s is read-only", r.Text)
	}
	a, err := r.arg(m)
	if err != nil {
		return err
	}
	return r.Spec.Set(m, a, r.index(m), op, v)
}

// Trans is one transformation, {class.name,params}.
type Trans struct {
	Class, Name          string
	MinParams, MaxParams int
	// Check validates constant parameters at load time (optional).
	Check func(params []TransParam) error
	Fn    func(m *msgctx.Msg, in value.Value, params []value.Value) (value.Value, error)
}

var transforms = map[string]*Trans{}

// RegisterTrans adds a transformation; duplicates panic at init.
func RegisterTrans(t *Trans) {
	key := t.Class + "." + t.Name
	if _, dup := transforms[key]; dup {
		panic("pvar: duplicate transformation " + key)
	}
	transforms[key] = t
}
