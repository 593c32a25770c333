// Package value is the script's value type: OpenSIPS pseudo-variables carry a
// string, an integer, or both (e.g. $rs is "200" and 200), or are NULL.
// It is a small struct, never boxed in an interface, so the VM's stack does
// not allocate.
package value

import "strconv"

type Flags uint8

const (
	Str Flags = 1 << iota
	Int
)

type Value struct {
	F Flags
	I int
	S string
}

var Null = Value{}

func S(s string) Value { return Value{F: Str, S: s} }
func I(i int) Value    { return Value{F: Int, I: i} }

// SI is a value with both forms, like a status code.
func SI(s string, i int) Value { return Value{F: Str | Int, S: s, I: i} }

func (v Value) IsNull() bool { return v.F == 0 }
func (v Value) IsInt() bool  { return v.F&Int != 0 }
func (v Value) IsStr() bool  { return v.F&Str != 0 }

// String renders as xlog prints it: NULL values print as "<null>".
func (v Value) String() string {
	switch {
	case v.F&Str != 0:
		return v.S
	case v.F&Int != 0:
		return strconv.Itoa(v.I)
	}
	return "<null>"
}

// AsString is the string form, "" for NULL.
func (v Value) AsString() string {
	switch {
	case v.F&Str != 0:
		return v.S
	case v.F&Int != 0:
		return strconv.Itoa(v.I)
	}
	return ""
}

// AsInt converts as OpenSIPS does: the int form if present, else the string
// parsed as a decimal integer (0 and ok=false when it is not one).
func (v Value) AsInt() (int, bool) {
	if v.F&Int != 0 {
		return v.I, true
	}
	if v.F&Str != 0 {
		n, err := strconv.Atoi(v.S)
		return n, err == nil
	}
	return 0, false
}

// Truth is a value's boolean sense in a condition: ints are true when
// non-zero, strings when non-empty, NULL is false.
func (v Value) Truth() bool {
	if v.F&Int != 0 {
		return v.I != 0
	}
	if v.F&Str != 0 {
		return v.S != ""
	}
	return false
}

// Equal compares numerically when both sides have an int form (or one side is
// an int and the other a numeric string), else as strings.
func Equal(a, b Value) bool {
	if a.F == 0 || b.F == 0 {
		return a.F == b.F
	}
	if a.F&Int != 0 || b.F&Int != 0 {
		ai, aok := a.AsInt()
		bi, bok := b.AsInt()
		if aok && bok {
			return ai == bi
		}
	}
	return a.AsString() == b.AsString()
}

// Compare orders two values for < <= > >=; ok is false when they are not
// comparable (a NULL side).
func Compare(a, b Value) (c int, ok bool) {
	if a.F == 0 || b.F == 0 {
		return 0, false
	}
	ai, aok := a.AsInt()
	bi, bok := b.AsInt()
	if aok && bok && (a.F&Int != 0 || b.F&Int != 0) {
		switch {
		case ai < bi:
			return -1, true
		case ai > bi:
			return 1, true
		}
		return 0, true
	}
	as, bs := a.AsString(), b.AsString()
	switch {
	case as < bs:
		return -1, true
	case as > bs:
		return 1, true
	}
	return 0, true
}
