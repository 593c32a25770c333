// Package source holds positions and the positioned, sortable error list that
// every phase (parser, checker, compiler, VM) reports through.
package source

import (
	"fmt"
	"sort"
	"strings"
)

// Pos is a position in a script file. Line and Col are 1-based; the zero Pos
// means "unknown".
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) IsValid() bool { return p.Line > 0 }

func (p Pos) String() string {
	if !p.IsValid() {
		if p.File != "" {
			return p.File
		}
		return "-"
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Error is one positioned diagnostic. Snippet, when set, is the offending
// source line followed by a caret line.
type Error struct {
	Pos     Pos
	Msg     string
	Snippet string
}

func (e *Error) Error() string {
	if e.Snippet == "" {
		return e.Pos.String() + ": " + e.Msg
	}
	return e.Pos.String() + ": " + e.Msg + "\n" + e.Snippet
}

// ErrorList collects errors instead of stopping at the first one, as
// go/scanner does.
type ErrorList []*Error

func (l *ErrorList) Add(pos Pos, format string, args ...any) {
	*l = append(*l, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// Sort orders by file, line, column, then message, and drops exact duplicates.
func (l *ErrorList) Sort() {
	s := *l
	sort.SliceStable(s, func(i, j int) bool {
		a, b := s[i].Pos, s[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return s[i].Msg < s[j].Msg
	})
	out := s[:0]
	for i, e := range s {
		if i > 0 && e.Pos == s[i-1].Pos && e.Msg == s[i-1].Msg {
			continue
		}
		out = append(out, e)
	}
	*l = out
}

// Err returns nil for an empty list, so callers can return it as an error.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Bind fills in each error's snippet from the files it names. Tabs before the
// column are kept so the caret lines up in a terminal.
func (l ErrorList) Bind(files map[string][]byte) {
	for _, e := range l {
		src, ok := files[e.Pos.File]
		if !ok || !e.Pos.IsValid() {
			continue
		}
		line := lineAt(src, e.Pos.Line)
		if line == "" {
			continue
		}
		var caret strings.Builder
		for i := 0; i < e.Pos.Col-1 && i < len(line); i++ {
			if line[i] == '\t' {
				caret.WriteByte('\t')
			} else {
				caret.WriteByte(' ')
			}
		}
		caret.WriteByte('^')
		e.Snippet = "\t" + line + "\n\t" + caret.String()
	}
}

func lineAt(src []byte, n int) string {
	line := 1
	start := 0
	for i, c := range src {
		if line == n {
			start = i
			break
		}
		if c == '\n' {
			line++
			if line == n {
				start = i + 1
				break
			}
		}
	}
	if line != n {
		return ""
	}
	end := start
	for end < len(src) && src[end] != '\n' {
		end++
	}
	return strings.TrimRight(string(src[start:end]), "\r")
}

// Suggest returns the candidate closest to name by edit distance, if it is
// close enough to be a likely typo ("did you mean").
func Suggest(name string, candidates []string) string {
	best, bestD := "", len(name)/3+2
	for _, c := range candidates {
		if d := distance(name, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
