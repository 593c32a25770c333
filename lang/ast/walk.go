package ast

// Inspect traverses the tree rooted at n in depth-first order, as go/ast's
// Inspect does: it calls f(n); if f returns true, Inspect visits each
// non-nil child of n and then calls f(nil). Children include every
// statement and expression, the pseudo-variables inside a pvar's name
// ($hdr($var(n))), index and transformation parameters, and the pvars of a
// Literal's Format segments.
func Inspect(n Node, f func(Node) bool) {
	if n == nil || isNilNode(n) || !f(n) {
		return
	}
	switch n := n.(type) {
	case *Block:
		for _, s := range n.Stmts {
			inspectChild(s, f)
		}
	case *If:
		inspectChild(n.Cond, f)
		if n.Then != nil {
			Inspect(n.Then, f)
		}
		inspectChild(n.Else, f)
	case *Switch:
		inspectChild(n.Tag, f)
		for _, c := range n.Cases {
			if c != nil {
				Inspect(c, f)
			}
		}
	case *Case:
		inspectChild(n.Value, f)
		for _, s := range n.Body {
			inspectChild(s, f)
		}
	case *While:
		inspectChild(n.Cond, f)
		if n.Body != nil {
			Inspect(n.Body, f)
		}
	case *For:
		if n.Var != nil {
			Inspect(n.Var, f)
		}
		if n.Over != nil {
			Inspect(n.Over, f)
		}
		if n.Body != nil {
			Inspect(n.Body, f)
		}
	case *Return:
		inspectChild(n.Value, f)
	case *Assign:
		if n.Target != nil {
			Inspect(n.Target, f)
		}
		inspectChild(n.Value, f)
	case *ExprStmt:
		inspectChild(n.X, f)
	case *Async:
		if n.Call != nil {
			Inspect(n.Call, f)
		}
	case *Literal:
		for _, seg := range n.Format {
			if seg.PV != nil {
				Inspect(seg.PV, f)
			}
		}
	case *PVar:
		if n.ArgPV != nil {
			Inspect(n.ArgPV, f)
		}
		inspectChild(n.Index, f)
		for _, t := range n.Trans {
			if t == nil {
				continue
			}
			for _, prm := range t.Params {
				inspectChild(prm, f)
			}
		}
	case *Call:
		for _, a := range n.Args {
			inspectChild(a, f)
		}
	case *RouteCall:
		for _, a := range n.Args {
			inspectChild(a, f)
		}
	case *Binary:
		inspectChild(n.X, f)
		inspectChild(n.Y, f)
	case *Unary:
		inspectChild(n.X, f)
	}
	f(nil)
}

func inspectChild(n Node, f func(Node) bool) {
	if n == nil || isNilNode(n) {
		return
	}
	Inspect(n, f)
}

// InspectFile calls Inspect on every node of the file: global and modparam
// values, then each route body.
func InspectFile(file *File, f func(Node) bool) {
	for _, g := range file.Globals {
		if g.Value != nil {
			Inspect(g.Value, f)
		}
	}
	for _, m := range file.Params {
		if m.Value != nil {
			Inspect(m.Value, f)
		}
	}
	for _, r := range file.Routes {
		if r.Body != nil {
			Inspect(r.Body, f)
		}
	}
}
