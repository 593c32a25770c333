package pvar

import (
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

// Time pvars ($Ts $Tsm $TS $Tf $time(format)) and xlog colours ($C(xy)).

// StartTime is what $TS reports; the runtime may set it to its own start.
var StartTime = time.Now()

// now is replaceable by tests.
var now = time.Now

var colors atomic.Bool

// SetColors turns $C(xy) escape sequences on (OpenSIPS prints them only when
// logging to stderr or with xlog_force_color); off, $C gives "".
func SetColors(on bool) { colors.Store(on) }

func getTs(*msgctx.Msg, any, Index) value.Value {
	t := now().Unix()
	return value.SI(strconv.FormatInt(t, 10), int(t))
}

func getTsm(*msgctx.Msg, any, Index) value.Value {
	return vInt(now().Nanosecond() / 1000)
}

func getTS(*msgctx.Msg, any, Index) value.Value {
	t := StartTime.Unix()
	return value.SI(strconv.FormatInt(t, 10), int(t))
}

// getTf is ctime(3) without its newline, with the Unix time as int form.
func getTf(*msgctx.Msg, any, Index) value.Value {
	t := now()
	return value.SI(t.Format("Mon Jan _2 15:04:05 2006"), int(t.Unix()))
}

// strftime is a compiled $time(format).
type strftime []func(b []byte, t time.Time) []byte

func lit(s string) func([]byte, time.Time) []byte {
	return func(b []byte, _ time.Time) []byte { return append(b, s...) }
}

func layout(l string) func([]byte, time.Time) []byte {
	return func(b []byte, t time.Time) []byte { return t.AppendFormat(b, l) }
}

func num(get func(time.Time) int, width int, padc byte) func([]byte, time.Time) []byte {
	return func(b []byte, t time.Time) []byte {
		s := strconv.Itoa(get(t))
		for i := len(s); i < width; i++ {
			b = append(b, padc)
		}
		return append(b, s...)
	}
}

func compileStrftime(f string) (strftime, error) {
	var out strftime
	var text strings.Builder
	flush := func() {
		if text.Len() > 0 {
			out = append(out, lit(text.String()))
			text.Reset()
		}
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c != '%' || i+1 == len(f) {
			text.WriteByte(c)
			continue
		}
		i++
		var fn func([]byte, time.Time) []byte
		switch f[i] {
		case '%':
			text.WriteByte('%')
			continue
		case 'n':
			text.WriteByte('\n')
			continue
		case 't':
			text.WriteByte('\t')
			continue
		case 'a':
			fn = layout("Mon")
		case 'A':
			fn = layout("Monday")
		case 'b', 'h':
			fn = layout("Jan")
		case 'B':
			fn = layout("January")
		case 'c':
			fn = layout("Mon Jan _2 15:04:05 2006")
		case 'C':
			fn = num(func(t time.Time) int { return t.Year() / 100 }, 2, '0')
		case 'd':
			fn = layout("02")
		case 'D':
			fn = layout("01/02/06")
		case 'e':
			fn = layout("_2")
		case 'F':
			fn = layout("2006-01-02")
		case 'H':
			fn = layout("15")
		case 'I':
			fn = layout("03")
		case 'j':
			fn = num(func(t time.Time) int { return t.YearDay() }, 3, '0')
		case 'k':
			fn = num(func(t time.Time) int { return t.Hour() }, 2, ' ')
		case 'l':
			fn = layout("_3")
		case 'm':
			fn = layout("01")
		case 'M':
			fn = layout("04")
		case 'p':
			fn = layout("PM")
		case 'r':
			fn = layout("03:04:05 PM")
		case 'R':
			fn = layout("15:04")
		case 's':
			fn = func(b []byte, t time.Time) []byte { return strconv.AppendInt(b, t.Unix(), 10) }
		case 'S':
			fn = layout("05")
		case 'T':
			fn = layout("15:04:05")
		case 'u':
			fn = num(func(t time.Time) int {
				if w := int(t.Weekday()); w != 0 {
					return w
				}
				return 7
			}, 1, '0')
		case 'w':
			fn = num(func(t time.Time) int { return int(t.Weekday()) }, 1, '0')
		case 'y':
			fn = layout("06")
		case 'Y':
			fn = layout("2006")
		case 'z':
			fn = layout("-0700")
		case 'Z':
			fn = layout("MST")
		default:
			return nil, errors.New("unsupported strftime conversion %" + string(f[i]))
		}
		flush()
		out = append(out, fn)
	}
	flush()
	return out, nil
}

func fixTime(arg string, _ check.Slots) (any, error) {
	if arg == "" {
		return nil, errors.New("$time needs a strftime format")
	}
	return compileStrftime(arg)
}

func getTime(_ *msgctx.Msg, arg any, _ Index) value.Value {
	f, _ := arg.(strftime)
	t := now()
	var buf [64]byte
	b := buf[:0]
	for _, fn := range f {
		b = fn(b, t)
	}
	if len(b) == 0 {
		return value.Null
	}
	return value.S(string(b))
}

// fixColor validates $C(xy) (x: foreground, upper case = bold; y:
// background; letters x s r g y b p c w) and builds the escape sequence.
func fixColor(arg string, _ check.Slots) (any, error) {
	if len(arg) != 2 {
		return nil, errors.New("color name must have two chars")
	}
	code := map[byte]string{'x': "9", 's': "0", 'r': "1", 'g': "2", 'y': "3", 'b': "4", 'p': "5", 'c': "6", 'w': "7"}
	fg, bg := arg[0], arg[1]
	bold := "0;"
	if fg >= 'A' && fg <= 'Z' {
		bold, fg = "1;", fg+32
	}
	f, ok1 := code[fg]
	b, ok2 := code[bg]
	if !ok1 || !ok2 || (arg[0] == 'X') {
		return nil, errors.New("invalid color name " + strconv.Quote(arg))
	}
	return "\033[" + bold + "3" + f + ";4" + b + "m", nil
}

func getColor(_ *msgctx.Msg, arg any, _ Index) value.Value {
	if !colors.Load() {
		return value.S("")
	}
	s, _ := arg.(string)
	return value.S(s)
}

func init() {
	for _, s := range []*Spec{
		{Name: "Ts", Get: getTs},
		{Name: "Tsm", Get: getTsm},
		{Name: "TS", Get: getTS},
		{Name: "Tf", Get: getTf},
		{Name: "time", Arg: NeedArg, Fix: fixTime, Get: getTime},
		{Name: "C", Arg: NeedArg, Fix: fixColor, Get: getColor},
	} {
		Register(s)
	}
}
