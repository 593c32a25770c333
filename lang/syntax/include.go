package syntax

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/alecthomas/participle/v2/lexer"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/source"
)

// Options configures ParseFile.
type Options struct {
	// Preprocess is a shell command, like `opensips -p envsubst`: each file's
	// bytes go to its standard input and its standard output is parsed.
	Preprocess string
	// ReadFile reads a script file; nil means os.ReadFile.
	ReadFile func(string) ([]byte, error)
}

// maxIncludeDepth bounds include_file nesting (cycles are reported before).
const maxIncludeDepth = 64

// ParseFile reads and parses the script at path, expanding include_file
// and import_file (paths relative to the including file's directory;
// import_file skips a file that was already read). It returns every file
// read, keyed by the name used in positions, so that errors can be given
// snippets with source.ErrorList.Bind. ast.File.Includes lists the files
// read, the main one first, each once.
func ParseFile(path string, opt Options) (*ast.File, map[string][]byte, error) {
	var errs source.ErrorList
	in := &includer{opt: opt, errs: &errs, files: map[string][]byte{}, read: map[string]bool{}, enabled: true}
	if in.opt.ReadFile == nil {
		in.opt.ReadFile = os.ReadFile
	}
	src, err := in.load(path)
	if err != nil {
		errs.Add(source.Pos{File: path}, "%v", err)
		return &ast.File{}, in.files, errs
	}
	toks := scan(path, src, &errs)
	in.stack = []string{filepath.Clean(path)}
	toks = in.splice(toks, path)
	f := parseTokens(toks, &errs)
	f.Includes = in.order
	errs.Sort()
	return f, in.files, errs.Err()
}

// includer expands include_file/import_file at the token level, the way
// OpenSIPS's preprocessor splices the text in; so an include works at the
// top level and inside a route alike.
type includer struct {
	opt     Options
	errs    *source.ErrorList
	enabled bool // false for Parse: no file access
	files   map[string][]byte
	order   []string
	read    map[string]bool // cleaned paths read so far (import_file)
	stack   []string        // cleaned paths being expanded (cycles)
}

// load reads and preprocesses one file and records it.
func (in *includer) load(path string) ([]byte, error) {
	src, err := in.opt.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if in.opt.Preprocess != "" {
		cmd := exec.Command("sh", "-c", in.opt.Preprocess)
		cmd.Stdin = bytes.NewReader(src)
		var out, stderr bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			msg := strings.TrimSpace(stderr.String())
			if msg != "" {
				return nil, fmt.Errorf("preprocessor %q failed: %v: %s", in.opt.Preprocess, err, msg)
			}
			return nil, fmt.Errorf("preprocessor %q failed: %v", in.opt.Preprocess, err)
		}
		src = out.Bytes()
	}
	in.files[path] = src
	clean := filepath.Clean(path)
	if !in.read[clean] {
		in.read[clean] = true
		in.order = append(in.order, path)
	}
	return src, nil
}

// splice replaces every `include_file "x"` / `import_file "x"` (with an
// optional ';') in toks by the tokens of that file, recursively. toks ends
// with EOF and so does the result.
func (in *includer) splice(toks []lexer.Token, file string) []lexer.Token {
	first := -1
	for i := range toks {
		if toks[i].Type == tokKeyword && (toks[i].Value == "include_file" || toks[i].Value == "import_file") {
			first = i
			break
		}
	}
	if first < 0 {
		return toks
	}
	out := make([]lexer.Token, 0, len(toks))
	out = append(out, toks[:first]...)
	for i := first; i < len(toks); i++ {
		t := toks[i]
		if t.Type != tokKeyword || (t.Value != "include_file" && t.Value != "import_file") {
			out = append(out, t)
			continue
		}
		if i+1 >= len(toks) || toks[i+1].Type != tokString {
			in.errs.Add(tokPos(t), "%s needs a quoted file name", t.Value)
			continue
		}
		name := unquote(toks[i+1].Value)
		i++
		if i+1 < len(toks) && isPunct(&toks[i+1], ";") {
			i++
		}
		out = append(out, in.include(t, name, file)...)
	}
	return out
}

// include returns the tokens of the file named by an include statement
// (without their EOF), or nil after reporting why it cannot.
func (in *includer) include(kw lexer.Token, name, from string) []lexer.Token {
	at := tokPos(kw)
	if !in.enabled {
		in.errs.Add(at, "%s %q: including files needs ParseFile", kw.Value, name)
		return nil
	}
	if name == "" {
		in.errs.Add(at, "%s: empty file name", kw.Value)
		return nil
	}
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(from), name)
	}
	clean := filepath.Clean(path)
	for _, s := range in.stack {
		if s == clean {
			in.errs.Add(at, "%s %q: include cycle (%s)", kw.Value, name, strings.Join(append(in.stack, clean), " -> "))
			return nil
		}
	}
	if kw.Value == "import_file" && in.read[clean] {
		return nil
	}
	if len(in.stack) >= maxIncludeDepth {
		in.errs.Add(at, "%s %q: includes nested too deeply", kw.Value, name)
		return nil
	}
	src, err := in.load(path)
	if err != nil {
		in.errs.Add(at, "%s %q: %v", kw.Value, name, err)
		return nil
	}
	toks := scan(path, src, in.errs)
	in.stack = append(in.stack, clean)
	toks = in.splice(toks, path)
	in.stack = in.stack[:len(in.stack)-1]
	return toks[:len(toks)-1]
}
