package permissions

// globMatch is fnmatch(pattern, s, FNM_PERIOD), which OpenSIPS uses for
// the address table's pattern column: shell wildcards where * and ? match
// any character including '/', [...] is a bracket expression ([!a-z] and
// [^a-z] negate), a backslash quotes the next character, and a leading '.'
// of s only matches a literal '.' in the pattern.
func globMatch(pattern, s string) bool {
	return glob(pattern, s, 0)
}

func glob(p, s string, si int) bool {
	pi := 0
	// star backtracking: where the last * was and how much it has eaten
	starP, starS := -1, -1
	for si < len(s) {
		if pi < len(p) {
			leadingDot := si == 0 && s[0] == '.'
			switch c := p[pi]; c {
			case '*':
				if leadingDot {
					break // a leading period needs a literal '.'
				}
				starP, starS = pi, si
				pi++
				continue
			case '?':
				if leadingDot {
					break
				}
				pi++
				si++
				continue
			case '[':
				if leadingDot {
					break
				}
				if ok, next, valid := bracket(p, pi, s[si]); valid {
					if ok {
						pi = next
						si++
						continue
					}
					break
				}
				// an unclosed '[' is a literal
				if s[si] == '[' {
					pi++
					si++
					continue
				}
			case '\\':
				if pi+1 < len(p) {
					if p[pi+1] == s[si] {
						pi += 2
						si++
						continue
					}
					break
				}
				if s[si] == '\\' {
					pi++
					si++
					continue
				}
			default:
				if c == s[si] {
					pi++
					si++
					continue
				}
			}
		}
		if starP >= 0 {
			starS++
			pi, si = starP+1, starS
			continue
		}
		return false
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// bracket matches c against the bracket expression at p[pi] ('[').
// It returns whether c matched, the index after the expression, and
// whether the expression is well formed (closed).
func bracket(p string, pi int, c byte) (matched bool, next int, valid bool) {
	i := pi + 1
	neg := false
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		neg = true
		i++
	}
	first := true
	for i < len(p) {
		if p[i] == ']' && !first {
			return matched != neg, i + 1, true
		}
		first = false
		lo := p[i]
		if lo == '\\' && i+1 < len(p) {
			i++
			lo = p[i]
		}
		i++
		hi := lo
		if i+1 < len(p) && p[i] == '-' && p[i+1] != ']' {
			hi = p[i+1]
			if hi == '\\' && i+2 < len(p) {
				hi = p[i+2]
				i++
			}
			i += 2
		}
		if lo <= c && c <= hi {
			matched = true
		}
	}
	return false, 0, false
}
