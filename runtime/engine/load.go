package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/bytecode"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/lang/compile"
	"github.com/sipedge/sipedge/lang/source"
	"github.com/sipedge/sipedge/lang/syntax"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
	"github.com/sipedge/sipedge/runtime/vm"
)

// Script is a loaded, checked, compiled and linked script, not yet live.
type Script struct {
	File   *ast.File
	Files  map[string][]byte
	Prog   *bytecode.Program
	Image  *vm.Image
	Params map[string]modules.Params // modparams by module
	// applies commit each module's modparams when the script goes live.
	applies []func()
}

// Load reads path (with include_file expansion and the optional
// preprocessor) and builds a Script. The error is a source.ErrorList with
// snippets, or a plain error for I/O problems.
func Load(path string, opt syntax.Options) (*Script, error) {
	f, files, err := syntax.ParseFile(path, opt)
	if err != nil {
		var list source.ErrorList
		if errors.As(err, &list) {
			list.Bind(files)
		}
		return nil, err
	}
	s, err := Build(f)
	if s != nil {
		s.Files = files
	}
	var list source.ErrorList
	if errors.As(err, &list) {
		list.Bind(files)
	}
	return s, err
}

// Build checks, compiles and links a parsed file.
func Build(f *ast.File) (*Script, error) {
	env := NewEnv(f)
	errs := check.Check(f, env)
	s := &Script{File: f, Params: map[string]modules.Params{}}
	errs = append(errs, s.modparams(f)...)
	// The compiler skips what the checker rejected, so it runs anyway and
	// adds what only it finds (bad regexes, transformations, fixups); one
	// error per position is enough.
	prog, cerrs := compile.Compile(f, env)
	seen := map[source.Pos]bool{}
	for _, e := range errs {
		seen[e.Pos] = true
	}
	for _, e := range cerrs {
		if !seen[e.Pos] {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		errs.Sort()
		return nil, errs
	}
	img, err := vm.Link(prog)
	if err != nil {
		return nil, err
	}
	s.Prog, s.Image = prog, img
	return s, nil
}

// modparams collects each loaded module's parameters (defaults, then the
// script's values) and runs the module's Configure without side effects.
func (s *Script) modparams(f *ast.File) source.ErrorList {
	var errs source.ErrorList
	mods := []string{"core"}
	for _, m := range f.Modules {
		mods = append(mods, canonicalModule(m.Name))
	}
	for _, name := range mods {
		info := modules.Lookup(name)
		if info == nil {
			continue
		}
		p := modules.Params{}
		for _, spec := range info.Params {
			if !spec.Default.IsNull() {
				p[spec.Name] = []value.Value{spec.Default}
			}
		}
		s.Params[name] = p
	}
	set := map[string]bool{}
	for _, mp := range f.Params {
		name := canonicalModule(mp.Module)
		info, p := modules.Lookup(name), s.Params[name]
		if info == nil || p == nil {
			continue // reported by the checker
		}
		spec, err := info.ParamSpec(mp.Param)
		if err != nil {
			continue // reported by the checker
		}
		v := literalValue(mp.Value, spec.Kind)
		if spec.Kind == modules.ParamInt && !v.IsInt() {
			continue // reported by the checker
		}
		key := name + "." + mp.Param
		if spec.Multi && set[key] {
			p[mp.Param] = append(p[mp.Param], v)
		} else {
			p[mp.Param] = []value.Value{v}
		}
		set[key] = true
	}
	// OpenSIPS modules with a db_url fall back to the core db_default_url.
	if g, ok := globalString(f, "db_default_url"); ok {
		for _, name := range mods {
			info, p := modules.Lookup(name), s.Params[name]
			if info == nil || p == nil || set[name+".db_url"] {
				continue
			}
			if _, err := info.ParamSpec("db_url"); err == nil {
				p["db_url"] = []value.Value{value.S(g)}
			}
		}
	}
	if globalBool(f, "db_create") {
		if err := s.createDatabases(); err != nil {
			if g, ok := s.Global("db_create"); ok {
				errs.Add(g.At, "db_create: %v", err)
			}
			return errs
		}
	}
	for _, name := range mods {
		info := modules.Lookup(name)
		if info == nil || info.Configure == nil {
			continue
		}
		apply, err := info.Configure(s.Params[name])
		if err != nil {
			errs.Add(modulePos(f, name), "module %s: %v", name, err)
			continue
		}
		if apply != nil {
			s.applies = append(s.applies, apply)
		}
	}
	return errs
}

func literalValue(l *ast.Literal, kind modules.ParamKind) value.Value {
	if l == nil {
		return value.Null
	}
	if l.Kind == ast.IntLit {
		return value.SI(strconv.Itoa(l.Int), l.Int)
	}
	if kind == modules.ParamInt {
		if n, err := strconv.Atoi(strings.TrimSpace(l.Str)); err == nil {
			return value.SI(l.Str, n)
		}
	}
	return value.S(l.Str)
}

func modulePos(f *ast.File, name string) source.Pos {
	for _, m := range f.Modules {
		if canonicalModule(m.Name) == name {
			return m.At
		}
	}
	return source.Pos{}
}

// Activate applies the modparams of every module; call it once when the
// script goes live.
func (s *Script) Activate() {
	for _, a := range s.applies {
		a()
	}
}

// Global returns a core parameter's literal, if the script set it.
func (s *Script) Global(name string) (*ast.Global, bool) {
	for _, g := range s.File.Globals {
		if g.Name == name {
			return g, true
		}
	}
	return nil, false
}

func suggest(name string, candidates []string) string {
	if c := source.Suggest(name, candidates); c != "" && c != name {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}

func globalBool(f *ast.File, name string) bool {
	for _, g := range f.Globals {
		if g.Name == name && g.Value != nil && g.Value.Kind == ast.IntLit {
			return g.Value.Int != 0
		}
	}
	return false
}

// createDatabases is the sipedge-only core parameter db_create = yes: every
// sqlite file a module's db_url names that does not exist yet is created,
// with its directory and OpenSIPS's tables, so a fresh machine runs a config
// without `sipedge db init`. Without it a missing file stays an error, so a
// typo in a db_url does not quietly start an empty database.
func (s *Script) createDatabases() error {
	seen := map[string]bool{}
	for _, p := range s.Params {
		for _, v := range p.All("db_url") {
			u := v.AsString()
			if seen[u] || !strings.HasPrefix(u, "sqlite:") {
				continue
			}
			seen[u] = true
			path, err := store.ParseURL(u)
			if err != nil {
				return err
			}
			if _, err := os.Stat(path); err == nil {
				continue
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			db, err := store.Create(u)
			if err != nil {
				return err
			}
			if err := db.Init(context.Background()); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
	}
	return nil
}

func globalString(f *ast.File, name string) (string, bool) {
	for _, g := range f.Globals {
		if g.Name == name && g.Value != nil && g.Value.Kind == ast.StringLit {
			return g.Value.Str, true
		}
	}
	return "", false
}
