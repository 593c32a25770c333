// Package mi is sipedge's Management Interface: a registry of commands (the
// core ones, OpenSIPS-named, and those of every module the live script
// loads), a dispatcher that matches parameters against each command's
// parameter sets the way OpenSIPS 3.x does, and a JSON-RPC 2.0 handler for
// HTTP (served by the mi_http module at /mi).
//
// Requests and answers are OpenSIPS 3.x's:
//
//	{"jsonrpc":"2.0","method":"get_statistics","id":1,"params":{"statistics":["core:"]}}
//	{"jsonrpc":"2.0","result":{"core:rcv_requests":12,…},"id":1}
//
// params is an object (named) or an array (positional, matched to a
// parameter set by count). A request without an id is a notification: it
// runs, and the HTTP answer is 202 with no body. Errors are JSON-RPC error
// objects: -32700 parse error, -32600 invalid request, -32601 method not
// found, -32602 invalid params (with a "data" detail), and for a command
// that fails, OpenSIPS's own codes (404 not found, 500 failed …).
//
// Commands run in the HTTP server's goroutine; they must be safe for
// concurrent use.
package mi

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/sipedge/sipedge/modules"
)

// JSON-RPC 2.0 error codes (OpenSIPS uses the same).
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeServerError    = -32000
)

// Details OpenSIPS puts in the data of an invalid-params error.
const (
	detailCount       = "Too few or too many parameters"
	detailAmbiguous   = "Ambiguous call, use named parameters instead"
	detailNamesDiffer = "Named parameters do not match"
	detailNamedOnly   = "Command only supports named parameters"
)

// Error is a JSON-RPC error. Commands return one (or any error with a
// MICode() int method) to choose the code; other errors become code 500
// with the error's text as the message.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%d %s", e.Code, e.Message)
	switch d := e.Data.(type) {
	case nil:
	case string:
		s += ": " + d
	case []string:
		s += ":\n" + strings.Join(d, "\n")
	default:
		s += fmt.Sprintf(": %v", d)
	}
	return s
}

// MICode makes *Error satisfy the interface toError looks for.
func (e *Error) MICode() int { return e.Code }

// Errorf makes a command failure with an OpenSIPS-style code (400, 404,
// 500 …).
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// InvalidParams is the -32602 error with a detail.
func InvalidParams(detail string) *Error {
	return &Error{Code: CodeInvalidParams, Message: "Invalid params", Data: detail}
}

func toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var coded interface{ MICode() int }
	if errors.As(err, &coded) {
		return &Error{Code: coded.MICode(), Message: err.Error()}
	}
	return &Error{Code: 500, Message: err.Error()}
}

// Command is one MI command.
type Command struct {
	Name string
	Help string
	// Module is who exports it ("core" for the core commands).
	Module string
	// Recipes are the parameter sets the command accepts, as OpenSIPS
	// declares them ({} for "no parameters"). Named parameters must match
	// one set exactly; positional ones are matched by count. Nil means the
	// command's sets are unknown: it takes named parameters only, any
	// names, and checks them itself (module commands, until they declare
	// sets with DeclareParams).
	Recipes [][]string
	// Run gets the parameters by name (positional ones already named)
	// with JSON values as string, int (whole numbers), float64, bool, nil,
	// []any or map[string]any. A nil result is answered as "OK".
	Run func(params map[string]any) (any, error)
}

// Registry holds the commands; Default is the process's.
type Registry struct {
	mu       sync.RWMutex
	core     map[string]*Command
	coreList []string
	mods     map[string]*Command
	modList  []string
	rt       Runtime
	procs    []func() []string
}

// Default is the process-wide registry the mi_http module serves and the
// SIP runtime attaches itself to.
var Default = NewRegistry()

// NewRegistry makes a registry with the core commands.
func NewRegistry() *Registry {
	r := &Registry{core: map[string]*Command{}, mods: map[string]*Command{}}
	for _, c := range r.coreCommands() {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
	return r
}

// Register adds a process-level (core) command; it stays whatever script
// is live. It fails on an empty or duplicate name.
func (r *Registry) Register(c Command) error {
	if c.Name == "" || c.Run == nil {
		return errors.New("mi: a command needs a name and a Run function")
	}
	if c.Module == "" {
		c.Module = modules.CoreName
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.core[c.Name]; dup {
		return fmt.Errorf("mi: command %q is already registered", c.Name)
	}
	cc := c
	r.core[c.Name] = &cc
	r.coreList = append(r.coreList, c.Name)
	return nil
}

var declared = struct {
	sync.Mutex
	m map[string][][]string
}{m: map[string][][]string{}}

// DeclareParams records the parameter sets of a module's MI command (by
// command name) so positional calls can be matched, e.g.
//
//	mi.DeclareParams("cache_fetch", []string{"system", "attr"})
//
// Call it from the module's init; it applies from the next SetModules.
func DeclareParams(command string, recipes ...[]string) {
	declared.Lock()
	defer declared.Unlock()
	declared.m[command] = recipes
}

func declaredParams(command string) [][]string {
	declared.Lock()
	defer declared.Unlock()
	return declared.m[command]
}

// SetModules replaces the module commands with those of the named modules
// (the modules the live script loads; "core" may be among them). The SIP
// runtime calls it whenever a script generation goes live. Commands whose
// name is already taken (by a core command or an earlier module) are left
// out and reported in the error; the others are installed anyway.
func (r *Registry) SetModules(names ...string) error {
	mods := map[string]*Command{}
	var list []string
	var errs []string
	r.mu.RLock()
	core := make(map[string]bool, len(r.core))
	for name := range r.core {
		core[name] = true
	}
	r.mu.RUnlock()
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	for _, name := range sorted {
		info := modules.Lookup(name)
		if info == nil {
			continue
		}
		for _, mc := range info.MI {
			if mc.Name == "" || mc.Run == nil {
				continue
			}
			if prev, dup := mods[mc.Name]; dup {
				if prev.Module != name {
					errs = append(errs, fmt.Sprintf("module %s: MI command %q is also exported by %s", name, mc.Name, prev.Module))
				}
				continue
			}
			if core[mc.Name] {
				errs = append(errs, fmt.Sprintf("module %s: MI command %q is a core command", name, mc.Name))
				continue
			}
			mods[mc.Name] = &Command{Name: mc.Name, Help: mc.Help, Module: name, Recipes: declaredParams(mc.Name), Run: mc.Run}
			list = append(list, mc.Name)
		}
	}
	r.mu.Lock()
	r.mods, r.modList = mods, list
	r.mu.Unlock()
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// SetModulesFrom is SetModules for a script's modparams by module
// (engine.Script.Params has an entry for "core" and each loaded module).
func (r *Registry) SetModulesFrom(params map[string]modules.Params) error {
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	return r.SetModules(names...)
}

// Lookup finds a command (core or from a loaded module).
func (r *Registry) Lookup(name string) *Command {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if c := r.core[name]; c != nil {
		return c
	}
	return r.mods[name]
}

// Names lists the commands: core ones in registration order, then the
// modules' (by module name, then in the module's order).
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.coreList)+len(r.modList))
	out = append(out, r.coreList...)
	return append(out, r.modList...)
}

// Call runs a command. params is nil, a []any (positional) or a
// map[string]any (named), as decoded from JSON. The error, if any, is an
// *Error.
func (r *Registry) Call(method string, params any) (any, error) {
	cmd := r.Lookup(method)
	if cmd == nil {
		return nil, &Error{Code: CodeMethodNotFound, Message: "Method not found"}
	}
	named, err := bind(cmd, params)
	if err != nil {
		return nil, err
	}
	res, rerr := cmd.Run(named)
	if rerr != nil {
		return nil, toError(rerr)
	}
	if res == nil {
		res = "OK"
	}
	return res, nil
}

// bind names the parameters after the recipe they match, as OpenSIPS's
// dispatcher does.
func bind(cmd *Command, params any) (map[string]any, *Error) {
	var pos []any
	var named map[string]any
	switch p := params.(type) {
	case nil:
	case []any:
		pos = p
	case map[string]any:
		named = p
	default:
		return nil, &Error{Code: CodeInvalidRequest, Message: "Invalid Request"}
	}
	empty := len(pos) == 0 && len(named) == 0
	if cmd.Recipes == nil {
		if len(pos) > 0 {
			return nil, InvalidParams(detailNamedOnly)
		}
		if named == nil {
			named = map[string]any{}
		}
		return named, nil
	}
	if empty {
		for _, rc := range cmd.Recipes {
			if len(rc) == 0 {
				return map[string]any{}, nil
			}
		}
		return nil, InvalidParams(detailCount)
	}
	if pos != nil {
		var match []string
		for _, rc := range cmd.Recipes {
			if len(rc) == 0 || len(rc) != len(pos) {
				continue
			}
			if match != nil {
				return nil, InvalidParams(detailAmbiguous)
			}
			match = rc
		}
		if match == nil {
			return nil, InvalidParams(detailCount)
		}
		out := make(map[string]any, len(pos))
		for i, name := range match {
			out[name] = pos[i]
		}
		return out, nil
	}
	countMatched := false
	for _, rc := range cmd.Recipes {
		if len(rc) == 0 || len(rc) != len(named) {
			continue
		}
		countMatched = true
		ok := true
		for _, name := range rc {
			if _, has := named[name]; !has {
				ok = false
				break
			}
		}
		if ok {
			return named, nil
		}
	}
	if countMatched {
		return nil, InvalidParams(detailNamesDiffer)
	}
	return nil, InvalidParams(detailCount)
}
