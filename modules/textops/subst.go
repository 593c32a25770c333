package textops

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/sipedge/sipedge/lang/source"
	"github.com/sipedge/sipedge/lang/syntax"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
)

// replKind is what a piece of a subst replacement stands for.
type replKind uint8

const (
	replText  replKind = iota // literal text
	replGroup                 // \0 … \9: a match group
	replURI                   // \u: the current Request-URI
	replPVar                  // a pseudo-variable
)

type replPart struct {
	kind  replKind
	text  string
	group int
	pv    *pvar.Ref
}

// substExpr is a parsed '/re/repl/flags' expression.
type substExpr struct {
	re     *regexp.Regexp
	repl   []replPart
	global bool
}

// parseSubst parses OpenSIPS's sed-like expression. The first character is
// the separator; flags are i (ignore case), g (replace all) and s (let '.'
// match newlines and anchor ^/$ at the text ends only). Without s the
// expression works line by line, as with POSIX REG_NEWLINE.
//
// The replacement knows \0 … \9, \u (the Request-URI), \n \r \t \\ \$ and
// an escaped separator, and pseudo-variables other than $var/$avp.
func parseSubst(s string) (*substExpr, error) {
	if len(s) < 3 {
		return nil, fmt.Errorf("expression %q is too short (want /re/repl/flags)", s)
	}
	sep := s[0]
	if sep == '\\' {
		return nil, fmt.Errorf("invalid separator '\\' in %q", s)
	}
	end := -1
	for p := 1; p < len(s); p++ {
		if s[p] == sep && s[p-1] != '\\' {
			end = p
			break
		}
	}
	if end < 0 {
		return nil, fmt.Errorf("no separator after the regular expression in %q", s)
	}
	reText := s[1:end]
	repl, rest, err := parseRepl(s[end+1:], sep)
	if err != nil {
		return nil, fmt.Errorf("%v in %q", err, s)
	}
	e := &substExpr{repl: repl}
	icase, dotall := false, false
	for i := 0; i < len(rest); i++ {
		switch rest[i] {
		case 'i':
			icase = true
		case 'g':
			e.global = true
		case 's':
			dotall = true
		default:
			return nil, fmt.Errorf("unknown flag %q in %q", rest[i], s)
		}
	}
	flags := "m"
	if dotall {
		flags = "s"
	}
	if icase {
		flags += "i"
	}
	if e.re, err = regexp.Compile("(?" + flags + ")" + reText); err != nil {
		return nil, fmt.Errorf("bad regular expression %q: %v", reText, err)
	}
	return e, nil
}

// parseRepl reads the replacement up to the closing separator and returns
// what follows it (the flags).
func parseRepl(s string, sep byte) ([]replPart, string, error) {
	var parts []replPart
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			parts = append(parts, replPart{kind: replText, text: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == sep:
			flush()
			return parts, s[i+1:], nil
		case c == '\\':
			if i+1 >= len(s) {
				return nil, "", errors.New("dangling '\\' in the replacement")
			}
			i++
			switch e := s[i]; {
			case e == 'n':
				lit.WriteByte('\n')
			case e == 'r':
				lit.WriteByte('\r')
			case e == 't':
				lit.WriteByte('\t')
			case e == 'u':
				flush()
				parts = append(parts, replPart{kind: replURI})
			case e >= '0' && e <= '9':
				flush()
				parts = append(parts, replPart{kind: replGroup, group: int(e - '0')})
			default: // \\, \$, the separator and anything else: the char itself
				lit.WriteByte(e)
			}
		case c == '$' && i+1 < len(s) && (isPVStart(s[i+1])):
			pv, n, err := syntax.ParsePVar(s[i:], source.Pos{})
			if err != nil {
				return nil, "", fmt.Errorf("bad pseudo-variable in the replacement: %v", err)
			}
			ref, err := pvar.Compile(pv, nil)
			if err != nil {
				if pv.Name == "var" || pv.Name == "avp" {
					return nil, "", fmt.Errorf("$%s in a subst replacement is not supported yet (module fixups get no variable slots)", pv.Name)
				}
				return nil, "", fmt.Errorf("bad pseudo-variable in the replacement: %v", err)
			}
			flush()
			parts = append(parts, replPart{kind: replPVar, pv: ref})
			i += n - 1
		default:
			lit.WriteByte(c)
		}
	}
	return nil, "", errors.New("no separator after the replacement")
}

func isPVStart(c byte) bool {
	return c == '(' || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// expand builds the replacement for one match; loc holds the submatch
// offsets into in.
func (e *substExpr) expand(m *msgctx.Msg, in string, loc []int) string {
	var b strings.Builder
	for _, p := range e.repl {
		switch p.kind {
		case replText:
			b.WriteString(p.text)
		case replGroup:
			if 2*p.group+1 < len(loc) && loc[2*p.group] >= 0 {
				b.WriteString(in[loc[2*p.group]:loc[2*p.group+1]])
			}
		case replURI:
			if m.Req != nil {
				b.WriteString(m.Req.Recipient.String())
			}
		case replPVar:
			b.WriteString(p.pv.Get(m).AsString())
		}
	}
	return b.String()
}

// errEmptyMatch is OpenSIPS's refusal of a regex that matches nothing.
var errEmptyMatch = errors.New("the regular expression matched an empty string")

// apply substitutes in "in" and reports how many matches were replaced.
func (e *substExpr) apply(m *msgctx.Msg, in string) (string, int, error) {
	n := 1
	if e.global {
		n = -1
	}
	locs := e.re.FindAllStringSubmatchIndex(in, n)
	if len(locs) == 0 {
		return in, 0, nil
	}
	var b strings.Builder
	last := 0
	for _, loc := range locs {
		if loc[0] == loc[1] {
			return in, 0, errEmptyMatch
		}
		b.WriteString(in[last:loc[0]])
		b.WriteString(e.expand(m, in, loc))
		last = loc[1]
	}
	b.WriteString(in[last:])
	return b.String(), len(locs), nil
}
