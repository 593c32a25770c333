// Package sqlq runs the raw SQL queries of avp_db_query() and sql_query()
// without ever pasting a pseudo-variable's value into SQL text.
//
// OpenSIPS expands the pvars of a query string and runs the result, so a
// From user of  x' OR '1'='1  rewrites the query unless the script escapes
// it. sipedge compiles the query once, at load time, into SQL with `?`
// placeholders:
//
//   - a pvar outside any quotes becomes one placeholder bound to its value
//     (an integer when the value has an integer form, NULL when it is NULL);
//   - a quoted literal that contains pvars becomes one placeholder bound to
//     the literal's text with the pvars expanded, so
//     received LIKE 'sip:$si%'  runs as  received LIKE ?  with 'sip:' + $si + '%'.
//
// Values never reach the SQL parser, so no value can change the query.
package sqlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/source"
	"github.com/sipedge/sipedge/lang/syntax"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

// Query is a compiled query.
type Query struct {
	Text  string // as written in the script
	SQL   string // with ? placeholders
	Write bool   // runs on the writer connection
	binds []bind
}

// bind is one placeholder: a lone pvar, or a quoted literal's pieces.
type bind struct {
	literal bool
	parts   []part
}

type part struct {
	text string
	ref  *pvar.Ref
}

// NumParams is the number of bound placeholders.
func (q *Query) NumParams() int { return len(q.binds) }

// Compile turns query text into SQL with placeholders. at is the position
// of the text in the script, for pvar syntax errors.
func Compile(text string, at source.Pos) (*Query, error) {
	q := &Query{Text: text}
	var out strings.Builder
	s := text
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == '\'' || c == '"':
			end, parts, err := scanQuoted(s, i, at)
			if err != nil {
				return nil, err
			}
			if hasPV(parts) {
				out.WriteByte('?')
				q.binds = append(q.binds, bind{literal: true, parts: parts})
			} else {
				out.WriteString(s[i:end])
			}
			i = end
		case c == '`' || c == '[':
			closer := byte('`')
			if c == '[' {
				closer = ']'
			}
			j := strings.IndexByte(s[i+1:], closer)
			if j < 0 {
				return nil, fmt.Errorf("unterminated %c-quoted name in the query", c)
			}
			name := s[i : i+2+j]
			if pvStarts(name) {
				return nil, fmt.Errorf("a pseudo-variable inside the quoted name %s cannot be bound as a value", name)
			}
			out.WriteString(name)
			i += 2 + j
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				j = len(s) - i
			}
			out.WriteString(s[i : i+j])
			i += j
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			j := strings.Index(s[i+2:], "*/")
			if j < 0 {
				return nil, errors.New("unterminated /* comment in the query")
			}
			out.WriteString(s[i : i+4+j])
			i += 4 + j
		case c == '$' && i+1 < len(s) && s[i+1] == '$':
			out.WriteByte('$')
			i += 2
		case c == '$' && i+1 < len(s) && pvStart(s[i+1]):
			ref, n, err := compilePV(s[i:], at)
			if err != nil {
				return nil, err
			}
			if i > 0 && identChar(s[i-1]) || i+n < len(s) && identChar(s[i+n]) {
				return nil, fmt.Errorf("%s is part of a name or keyword in the query; only values can be bound (quote it as a string, or write it apart)", s[i:i+n])
			}
			out.WriteByte('?')
			q.binds = append(q.binds, bind{parts: []part{{ref: ref}}})
			i += n
		case c == '?':
			return nil, errors.New("the query must not contain ? parameters: write pseudo-variables where the values go")
		case (c == ':' || c == '@') && i+1 < len(s) && (isLetter(s[i+1]) || s[i+1] == '_'):
			return nil, fmt.Errorf("the query must not contain named parameters (%c%c…): write pseudo-variables where the values go", c, s[i+1])
		default:
			out.WriteByte(c)
			i++
		}
	}
	q.SQL = out.String()
	q.Write = isWrite(q.SQL)
	return q, nil
}

// scanQuoted reads the literal starting at s[i] (a ' or " quote, doubled to
// escape it, as in SQL) and splits its content into text and pvars.
func scanQuoted(s string, i int, at source.Pos) (int, []part, error) {
	quote := s[i]
	var parts []part
	var text strings.Builder
	j := i + 1
	for {
		if j >= len(s) {
			return 0, nil, fmt.Errorf("unterminated %c-quoted string in the query", quote)
		}
		c := s[j]
		switch {
		case c == quote && j+1 < len(s) && s[j+1] == quote:
			text.WriteByte(quote)
			j += 2
		case c == quote:
			if text.Len() > 0 || len(parts) == 0 {
				parts = append(parts, part{text: text.String()})
			}
			return j + 1, parts, nil
		case c == '$' && j+1 < len(s) && s[j+1] == '$':
			text.WriteByte('$')
			j += 2
		case c == '$' && j+1 < len(s) && pvStart(s[j+1]):
			ref, n, err := compilePV(s[j:], at)
			if err != nil {
				return 0, nil, err
			}
			if text.Len() > 0 {
				parts = append(parts, part{text: text.String()})
				text.Reset()
			}
			parts = append(parts, part{ref: ref})
			j += n
		default:
			text.WriteByte(c)
			j++
		}
	}
}

func hasPV(parts []part) bool {
	for _, p := range parts {
		if p.ref != nil {
			return true
		}
	}
	return false
}

func pvStarts(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '$' && pvStart(s[i+1]) {
			return true
		}
	}
	return false
}

func pvStart(c byte) bool { return isLetter(c) || c == '_' || c == '(' }

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func identChar(c byte) bool { return isLetter(c) || c == '_' || c >= '0' && c <= '9' }

// ErrScriptVar explains why $var/$avp cannot appear in a query.
var ErrScriptVar = errors.New("script variables ($var, $avp) cannot be used inside a query yet: " +
	"sipedge binds a query's pseudo-variables when the script loads, and module " +
	"functions cannot reach the storage of script variables at that point")

// compilePV parses and fixes up the pvar at s[0].
func compilePV(s string, at source.Pos) (*pvar.Ref, int, error) {
	pv, n, err := syntax.ParsePVar(s, at)
	if err != nil {
		return nil, 0, fmt.Errorf("bad pseudo-variable in the query: %v", err)
	}
	if usesScriptVar(pv) {
		return nil, 0, fmt.Errorf("%s: %w", s[:n], ErrScriptVar)
	}
	// Escaping a value that is bound, not pasted, would store and compare
	// the backslashes: drop a final {s.escape.common}, which scripts add
	// for OpenSIPS's sake.
	if k := len(pv.Trans); k > 0 && pv.Trans[k-1].Class == "s" && pv.Trans[k-1].Name == "escape.common" {
		cp := *pv
		cp.Trans = pv.Trans[:k-1]
		pv = &cp
	}
	ref, err := pvar.Compile(pv, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %v", s[:n], err)
	}
	return ref, n, nil
}

func usesScriptVar(pv *ast.PVar) bool {
	if pv == nil {
		return false
	}
	if pv.Name == "var" || pv.Name == "avp" || usesScriptVar(pv.ArgPV) {
		return true
	}
	if ix, ok := pv.Index.(*ast.PVar); ok && usesScriptVar(ix) {
		return true
	}
	for _, t := range pv.Trans {
		for _, p := range t.Params {
			if ip, ok := p.(*ast.PVar); ok && usesScriptVar(ip) {
				return true
			}
		}
	}
	return false
}

// isWrite tells whether a statement may change the database: anything but
// SELECT, VALUES, EXPLAIN and WITH … SELECT.
func isWrite(sqlText string) bool {
	w := firstWord(sqlText)
	switch w {
	case "SELECT", "VALUES", "EXPLAIN":
		return false
	case "WITH":
		up := strings.ToUpper(stripQuoted(sqlText))
		for _, kw := range []string{"INSERT", "UPDATE", "DELETE", "REPLACE"} {
			if containsWord(up, kw) {
				return true
			}
		}
		return false
	}
	return true
}

func firstWord(s string) string {
	s = strings.TrimLeft(s, " \t\r\n(")
	for strings.HasPrefix(s, "--") || strings.HasPrefix(s, "/*") {
		if strings.HasPrefix(s, "--") {
			j := strings.IndexByte(s, '\n')
			if j < 0 {
				return ""
			}
			s = s[j+1:]
		} else {
			j := strings.Index(s, "*/")
			if j < 0 {
				return ""
			}
			s = s[j+2:]
		}
		s = strings.TrimLeft(s, " \t\r\n(")
	}
	j := 0
	for j < len(s) && isLetter(s[j]) {
		j++
	}
	return strings.ToUpper(s[:j])
}

// stripQuoted blanks quoted text so keywords inside strings don't count.
func stripQuoted(s string) string {
	b := []byte(s)
	var q byte
	for i, c := range b {
		switch {
		case q == 0 && (c == '\'' || c == '"' || c == '`'):
			q = c
		case q != 0 && c == q:
			q = 0
		case q != 0:
			b[i] = ' '
		}
	}
	return string(b)
}

func containsWord(s, w string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], w)
		if j < 0 {
			return false
		}
		j += i
		if (j == 0 || !identChar(s[j-1])) && (j+len(w) == len(s) || !identChar(s[j+len(w)])) {
			return true
		}
		i = j + 1
	}
}

// Args evaluates the placeholders' values for one message.
func (q *Query) Args(m *msgctx.Msg) []any {
	args := make([]any, len(q.binds))
	for i, b := range q.binds {
		if !b.literal {
			v := b.parts[0].ref.Get(m)
			switch {
			case v.IsInt():
				args[i] = int64(v.I)
			case v.IsStr():
				args[i] = v.S
			default:
				args[i] = nil
			}
			continue
		}
		var sb strings.Builder
		for _, p := range b.parts {
			if p.ref == nil {
				sb.WriteString(p.text)
			} else {
				// NULL prints as "<null>", as OpenSIPS expands it: an
				// unset $si must not turn 'sip:$si%' into a match-all.
				sb.WriteString(p.ref.Get(m).String())
			}
		}
		args[i] = sb.String()
	}
	return args
}

// Timeout bounds one query.
var Timeout = 5 * time.Second

// Result of Run.
type Result struct {
	Rows    int // rows returned
	Columns int
	Stored  int // values written to the destinations
}

// Options change how Run stores results.
type Options struct {
	// FirstRow stops after the first row (sql_query_one).
	FirstRow bool
	// NullAsNull stores a NULL column as NULL rather than the string
	// "<null>" (sql_query_one).
	NullAsNull bool
}

// Run executes q for m and writes each row's columns to dests (column i to
// dests[i], one value per row, as OpenSIPS adds one AVP per row). Columns
// without a destination are dropped. NULL columns store the string
// "<null>", as OpenSIPS does, unless opt.NullAsNull.
func Run(db *store.DB, q *Query, m *msgctx.Msg, dests []*pvar.Ref, opt Options) (Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	args := q.Args(m)
	var res Result
	rows, err := func() (rowsI, error) {
		if q.Write {
			return db.QueryWriter(ctx, q.SQL, args...)
		}
		return db.Query(ctx, q.SQL, args...)
	}()
	if err != nil {
		return res, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return res, err
	}
	res.Columns = len(cols)
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return res, err
		}
		res.Rows++
		for i, v := range vals {
			if i >= len(dests) || dests[i] == nil {
				continue
			}
			val := toValue(v)
			if v == nil && opt.NullAsNull {
				val = value.Null
			}
			if err := dests[i].Set(m, "=", val); err != nil {
				return res, fmt.Errorf("storing column %s in %s: %v", cols[i], dests[i].Text, err)
			}
			res.Stored++
		}
		if opt.FirstRow {
			return res, nil
		}
	}
	return res, rows.Err()
}

type rowsI interface {
	Columns() ([]string, error)
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// toValue converts a column value as OpenSIPS types AVPs: integers stay
// integers, everything else is a string.
func toValue(v any) value.Value {
	switch v := v.(type) {
	case nil:
		return value.S("<null>")
	case int64:
		return value.I(int(v))
	case float64:
		return value.S(strconv.FormatFloat(v, 'f', -1, 64))
	case bool:
		if v {
			return value.I(1)
		}
		return value.I(0)
	case []byte:
		return value.S(string(v))
	case string:
		return value.S(v)
	case time.Time:
		return value.S(v.UTC().Format("2006-01-02 15:04:05"))
	}
	return value.S(fmt.Sprint(v))
}

// ParseDBURLs reads OpenSIPS's repeatable db_url modparam of avpops and
// sqlops: "url" is database 0, "N url" database N.
func ParseDBURLs(vals []string) (map[int]string, error) {
	out := map[int]string{}
	for _, v := range vals {
		v = strings.TrimSpace(v)
		id := 0
		if sp := strings.IndexAny(v, " \t"); sp > 0 {
			n, err := strconv.Atoi(v[:sp])
			if err != nil || n < 0 {
				return nil, fmt.Errorf("db_url %q: want \"url\" or \"<id> url\"", v)
			}
			id, v = n, strings.TrimSpace(v[sp:])
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("db_url id %d given twice", id)
		}
		out[id] = v
	}
	return out, nil
}
