// Package check is the semantic pass over a parsed script: core parameters,
// loadmodule/modparam lines, route names and the route kinds each function
// is reachable from, function arity and argument kinds, pvar existence and
// writability. It reports every problem, positioned, instead of stopping at
// the first one.
package check

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/source"
)

type paramType uint8

const (
	tInt paramType = iota
	tStr
	tBool
	tSocket // unquoted or quoted socket spec
	tAny
)

// globals are the core parameters sipedge reads or accepts. Names OpenSIPS
// removed in 3.x are kept where real configs still use them.
var globals = map[string]paramType{
	"socket": tSocket, "listen": tSocket, "log_level": tInt, "debug": tInt, "xlog_level": tInt,
	"udp_workers": tInt, "children": tInt, "tcp_workers": tInt, "tcp_children": tInt,
	"stderror_enabled": tBool, "log_stderror": tBool, "syslog_enabled": tBool, "log_facility": tStr,
	"syslog_facility": tStr, "log_name": tStr, "syslog_name": tStr, "mpath": tStr, "alias": tSocket,
	"advertised_address": tStr, "advertised_port": tInt, "auto_aliases": tBool, "dns": tBool,
	"rev_dns": tBool, "dns_try_ipv6": tBool, "dns_use_search_list": tBool, "disable_dns_blacklist": tBool,
	"disable_tcp": tBool, "disable_tls": tBool, "tcp_max_connections": tInt, "tcp_connection_lifetime": tInt,
	"tcp_connect_timeout": tInt, "tcp_no_new_conn_bflag": tAny, "user_agent_header": tStr,
	"server_header": tStr, "server_signature": tBool, "max_while_loops": tInt, "maxbuffer": tInt,
	"open_files_limit": tInt, "fork": tBool, "memdump": tInt, "mem_warming": tBool, "shm_hash_split_percentage": tInt,
	"db_default_url": tStr, "db_version_table": tStr, "exec_msg_threshold": tInt, "exec_dns_threshold": tInt,
	"tcp_threshold": tInt, "event_pkg_threshold": tInt, "event_shm_threshold": tInt, "query_buffer_size": tInt,
	"sip_warning": tBool, "mhomed": tBool, "check_via": tBool, "enable_asserts": tBool, "abort_on_assert": tBool,
	"log_json_buf_size": tInt, "log_msg_buf_size": tInt, "dont_fork": tBool, "chroot": tStr, "wdir": tStr,
	"user": tStr, "uid": tStr, "group": tStr, "gid": tStr, "xlog_buf_size": tInt, "xlog_force_color": tBool,
	"xlog_print_level": tInt, "tos": tInt, "mcast_loopback": tBool, "mcast_ttl": tInt, "udp_auto_scaling_profile": tStr,
	"tcp_keepalive": tBool, "tcp_accept_aliases": tBool, "tcp_max_msg_time": tInt, "auto_scaling_profile": tAny,
	"db_max_async_connections": tInt, "restart_persistency_cache_file": tStr, "shm_memlog_size": tInt,
	"pv_print_buf_size": tInt, "log_event_enabled": tBool, "stderror_level_filter": tInt, "syslog_level_filter": tInt,
	"log_prefix": tStr, "xlog_level_filter": tInt,
	// sipedge-only: the file script lines at L_ALERT are copied to, for
	// fail2ban (runtime/sipstack/log.go)
	"log_alert_file": tStr,
	// sipedge-only: create missing sqlite files named by db_url/db_default_url
	// (runtime/engine createDatabases)
	"db_create": tBool,
}

// Check validates a parsed file against env.
func Check(f *ast.File, env Env) source.ErrorList {
	c := &checker{env: env, file: f}
	c.globals()
	c.modules()
	c.routes()
	c.errs.Sort()
	return c.errs
}

type checker struct {
	env  Env
	file *ast.File
	errs source.ErrorList
	// named[kind][name] = route, for resolving route references.
	named [ast.NumRouteKinds]map[string]*ast.Route
	// reach[route] = kinds the route can run in (request routes called from
	// failure_route run in FAILURE context, etc.).
	reach map[*ast.Route]RouteMask
	// rep collects the porting report (CheckReport); nil for Check.
	rep *reporter
}

func (c *checker) globals() {
	for _, g := range c.file.Globals {
		t, ok := globals[g.Name]
		if !ok {
			if note, ok := removedGlobals[g.Name]; ok {
				c.errs.Add(g.At, "core parameter %q: %s", g.Name, note)
				c.rep.add(KindParam, g.Name, "core", g.At, note, false)
				continue
			}
			names := make([]string, 0, len(globals))
			for n := range globals {
				names = append(names, n)
			}
			c.errs.Add(g.At, "unknown core parameter %q%s", g.Name, didYouMean(g.Name, names))
			c.rep.add(KindParam, g.Name, "", g.At, "", false)
			continue
		}
		if note, ok := legacyGlobals[g.Name]; ok {
			c.rep.add(KindParam, g.Name, "core", g.At, note, true)
		}
		switch t {
		case tInt:
			if g.Value == nil || g.Value.Kind != ast.IntLit {
				c.errs.Add(g.At, "core parameter %s needs an integer", g.Name)
			}
		case tBool:
			if g.Value == nil || g.Value.Kind != ast.IntLit {
				c.errs.Add(g.At, "core parameter %s needs yes/no (or 1/0)", g.Name)
			}
		case tStr:
			if g.Value == nil || g.Value.Kind != ast.StringLit {
				if g.Words == "" {
					c.errs.Add(g.At, "core parameter %s needs a string", g.Name)
				}
			}
		}
	}
}

func (c *checker) modules() {
	loaded := map[string]bool{}
	for _, m := range c.file.Modules {
		canonical, why := c.env.Module(m.Name)
		if canonical == "" {
			note := moduleNotes[m.Name]
			if note != "" {
				why += ": " + note
			}
			c.errs.Add(m.At, "%s", why)
			c.rep.add(KindModule, m.Name, m.Name, m.At, note, false)
			continue
		}
		if loaded[canonical] {
			c.errs.Add(m.At, "module %q is loaded twice", m.Name)
			continue
		}
		loaded[canonical] = true
	}
	for _, p := range c.file.Params {
		canonical, _ := c.env.Module(p.Module)
		if canonical == "" {
			c.errs.Add(p.At, "modparam for module %q, which sipedge does not implement", p.Module)
			c.rep.add(KindModule, p.Module, p.Module, p.At, moduleNotes[p.Module], false)
			continue
		}
		if !loaded[canonical] {
			c.errs.Add(p.At, "modparam for module %q, which is not loaded (add loadmodule \"%s.so\")", p.Module, p.Module)
			continue
		}
		isInt, err := c.env.ModParam(p.Module, p.Param)
		legacy, isLegacy := legacyModParams[canonical+"."+p.Param]
		if err != nil {
			if isLegacy {
				c.errs.Add(p.At, "modparam %s.%s: %s", p.Module, p.Param, legacy.note)
			} else {
				c.errs.Add(p.At, "%v", err)
			}
			c.rep.add(KindModParam, canonical+"."+p.Param, canonical, p.At, legacy.note, false)
			continue
		}
		if isLegacy {
			c.rep.add(KindModParam, canonical+"."+p.Param, canonical, p.At, legacy.note, true)
		}
		if isInt && p.Value != nil && p.Value.Kind == ast.StringLit {
			if _, err := strconv.Atoi(strings.TrimSpace(p.Value.Str)); err != nil {
				c.errs.Add(p.Value.At, "modparam %s.%s needs an integer, not %q", p.Module, p.Param, p.Value.Str)
			}
		}
	}
}

func (c *checker) routes() {
	for k := range c.named {
		c.named[k] = map[string]*ast.Route{}
	}
	for _, r := range c.file.Routes {
		if prev, dup := c.named[r.Kind][r.Name]; dup {
			what := r.Kind.String()
			if r.Name != "" {
				what += "[" + r.Name + "]"
			}
			c.errs.Add(r.At, "%s is defined twice (first at %s)", what, prev.At)
			continue
		}
		c.named[r.Kind][r.Name] = r
	}
	c.reachability()
	for _, r := range c.file.Routes {
		w := &walker{c: c, route: r, mask: c.reach[r]}
		w.block(r.Body)
	}
}

// reachability computes, for each route, the kinds of top-level route it
// can run under, following route(x) calls to a fixpoint.
func (c *checker) reachability() {
	c.reach = map[*ast.Route]RouteMask{}
	calls := map[*ast.Route][]*ast.Route{}
	for _, r := range c.file.Routes {
		if r.Kind != ast.RequestRoute || r.Name == "" {
			c.reach[r] |= Routes(r.Kind)
		}
		var targets []*ast.Route
		ast.Inspect(r.Body, func(n ast.Node) bool {
			if rc, ok := n.(*ast.RouteCall); ok {
				if t := c.named[ast.RequestRoute][rc.Name]; t != nil {
					targets = append(targets, t)
				}
			}
			return true
		})
		calls[r] = targets
	}
	for changed := true; changed; {
		changed = false
		for from, ts := range calls {
			for _, t := range ts {
				if nm := c.reach[t] | c.reach[from]; nm != c.reach[t] {
					c.reach[t] = nm
					changed = true
				}
			}
		}
	}
}

type walker struct {
	c       *checker
	route   *ast.Route
	mask    RouteMask
	breakOK int
}

func (w *walker) errorf(pos source.Pos, format string, args ...any) {
	w.c.errs.Add(pos, format, args...)
}

func (w *walker) block(b *ast.Block) {
	if b == nil {
		return
	}
	for _, s := range b.Stmts {
		w.stmt(s)
	}
}

func (w *walker) stmt(s ast.Stmt) {
	switch s := s.(type) {
	case *ast.Block:
		w.block(s)
	case *ast.If:
		w.expr(s.Cond)
		w.block(s.Then)
		if s.Else != nil {
			w.stmt(s.Else)
		}
	case *ast.Switch:
		w.expr(s.Tag)
		w.breakOK++
		defaults := 0
		for _, cs := range s.Cases {
			if cs.Value == nil {
				defaults++
				if defaults == 2 {
					w.errorf(cs.At, "switch has more than one default")
				}
			} else if _, ok := cs.Value.(*ast.Literal); !ok {
				if u, ok := cs.Value.(*ast.Unary); !ok || u.Op != "-" {
					w.errorf(cs.Value.Pos(), "case value must be a constant")
				}
			}
			for _, st := range cs.Body {
				w.stmt(st)
			}
		}
		w.breakOK--
	case *ast.While:
		w.expr(s.Cond)
		w.breakOK++
		w.block(s.Body)
		w.breakOK--
	case *ast.For:
		w.pvar(s.Var, true)
		w.pvar(s.Over, false)
		if !s.Over.IndexAll {
			w.errorf(s.Over.At, "for-each iterates over every value: write %s as $(%s[*])", s.Over.String(), strings.TrimPrefix(s.Over.String(), "$"))
		}
		w.breakOK++
		w.block(s.Body)
		w.breakOK--
	case *ast.Return:
		if s.Value != nil {
			w.expr(s.Value)
		}
	case *ast.Break:
		if w.breakOK == 0 {
			w.errorf(s.At, "break outside switch or while")
		}
	case *ast.Exit, *ast.Drop:
	case *ast.Assign:
		w.pvar(s.Target, true)
		w.expr(s.Value)
		if s.Op != "=" && s.Op != ":=" {
			if lit, ok := s.Value.(*ast.Literal); ok && lit.Kind == ast.NullLit {
				w.errorf(s.At, "%s NULL is not allowed; use = NULL to delete", s.Op)
			}
		}
	case *ast.ExprStmt:
		w.expr(s.X)
	case *ast.Async:
		w.call(s.Call)
		if s.Resume != "" && w.c.named[ast.RequestRoute][s.Resume] == nil {
			w.errorf(s.At, "unknown route %q%s", s.Resume, w.routeSuggestion(s.Resume))
		}
	default:
		w.errorf(s.Pos(), "unsupported statement %T", s)
	}
}

func (w *walker) expr(e ast.Expr) {
	switch e := e.(type) {
	case *ast.Literal:
	case *ast.Keyword:
		w.c.legacyKeyword(e)
	case *ast.PVar:
		w.pvar(e, false)
	case *ast.Call:
		w.call(e)
	case *ast.RouteCall:
		if w.c.named[ast.RequestRoute][e.Name] == nil {
			w.errorf(e.At, "unknown route %q%s", e.Name, w.routeSuggestion(e.Name))
		}
		for _, a := range e.Args {
			w.expr(a)
		}
	case *ast.Binary:
		w.expr(e.X)
		w.expr(e.Y)
		if kw, ok := e.Y.(*ast.Keyword); ok && kw.Name == "myself" && e.Op != "==" && e.Op != "!=" {
			w.errorf(e.At, "myself can only be compared with == or !=")
		}
	case *ast.Unary:
		w.expr(e.X)
	default:
		w.errorf(e.Pos(), "unsupported expression %T", e)
	}
}

func (w *walker) routeSuggestion(name string) string {
	var names []string
	for n := range w.c.named[ast.RequestRoute] {
		if n != "" {
			names = append(names, n)
		}
	}
	return didYouMean(name, names)
}

func (w *walker) pvar(p *ast.PVar, write bool) {
	sig, why := w.c.env.PVar(p.Name)
	if sig == nil {
		w.errorf(p.At, "%s", w.c.missingPVar(p.Name, p.At, why))
		return
	}
	w.c.legacyPVar(p)
	if write && (!sig.Writable || len(p.Trans) > 0) {
		w.errorf(p.At, "%s is read-only", p.String())
	}
	ast.Inspect(p, func(n ast.Node) bool {
		if inner, ok := n.(*ast.PVar); ok && inner != p {
			w.pvar(inner, false)
			return false
		}
		return true
	})
}

func (w *walker) call(call *ast.Call) {
	sig, why := w.c.env.Func(call.Name)
	if sig == nil {
		w.errorf(call.At, "%s", w.c.missingFunc(call.Name, call.At, why))
		return
	}
	w.c.legacyCall(call, sig)
	if bad := w.mask &^ sig.Routes; bad != 0 {
		for k := ast.RouteKind(0); k < ast.NumRouteKinds; k++ {
			if bad.Has(k) {
				w.errorf(call.At, "%s() cannot be called from %s (it runs in %s here)", call.Name, k, w.route.Kind)
				break
			}
		}
	}
	required := 0
	for _, a := range sig.Args {
		if !a.Optional {
			required++
		}
	}
	if len(call.Args) < required || len(call.Args) > len(sig.Args) {
		want := fmt.Sprint(required)
		if required != len(sig.Args) {
			want = fmt.Sprintf("%d to %d", required, len(sig.Args))
		}
		w.errorf(call.At, "%s() takes %s argument(s), got %d", call.Name, want, len(call.Args))
		return
	}
	for i, a := range call.Args {
		w.arg(call, sig.Args[i], a)
	}
}

func (w *walker) arg(call *ast.Call, spec ArgSpec, a ast.Expr) {
	if lit, ok := a.(*ast.Literal); ok && lit.Kind == ast.NullLit {
		if !spec.Optional {
			w.errorf(a.Pos(), "%s(): this argument cannot be left out", call.Name)
		}
		return
	}
	switch a := a.(type) {
	case *ast.PVar:
		w.pvar(a, spec.Kind == ArgVar && spec.Writable)
		if spec.Kind == ArgRegex || spec.Kind == ArgRoute {
			w.errorf(a.At, "%s() argument must be a constant %s", call.Name, spec.Kind)
		}
	case *ast.Literal:
		switch spec.Kind {
		case ArgVar:
			if a.Kind != ast.StringLit || !strings.HasPrefix(a.Str, "$") {
				w.errorf(a.At, "%s() argument must be a variable such as \"$var(x)\"", call.Name)
			}
		case ArgInt:
			if a.Kind == ast.StringLit && !strings.Contains(a.Str, "$") {
				if _, err := strconv.Atoi(strings.TrimSpace(a.Str)); err != nil {
					w.errorf(a.At, "%s() argument must be an integer, not %q", call.Name, a.Str)
				}
			}
		case ArgRoute:
			if a.Kind == ast.IntLit {
				a = &ast.Literal{At: a.At, Kind: ast.StringLit, Str: strconv.Itoa(a.Int)}
			}
			if w.c.named[spec.Route][a.Str] == nil {
				var names []string
				for n := range w.c.named[spec.Route] {
					names = append(names, n)
				}
				w.errorf(a.At, "%s() names %s[%s], which is not defined%s", call.Name, spec.Route, a.Str, didYouMean(a.Str, names))
			}
		}
	default:
		w.errorf(a.Pos(), "%s() arguments must be strings, integers or pseudo-variables", call.Name)
	}
}

func didYouMean(name string, candidates []string) string {
	if s := source.Suggest(name, candidates); s != "" && s != name {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}
