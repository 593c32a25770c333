// Package bglog is where modules' background lines go: lines that belong
// to no SIP message (snapshot errors, expiring blocks). The SIP runtime
// installs its logger; until it does, the lines go to log/slog.
package bglog

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/sipedge/sipedge/runtime/msgctx"
)

// Logger routes one module's background lines; the zero value logs to
// log/slog.
type Logger struct {
	f atomic.Pointer[func(level int, text string)]
}

// Set routes the lines (level in OpenSIPS numbering, msgctx.L*) to f.
func (l *Logger) Set(f func(level int, text string)) { l.f.Store(&f) }

// Log writes a line through the installed logger, or to log/slog.
func (l *Logger) Log(level int, text string) {
	if f := l.f.Load(); f != nil {
		(*f)(level, text)
		return
	}
	slog.Log(context.Background(), SlogLevel(level), text)
}

// SlogLevel is the log/slog level of an OpenSIPS one (msgctx.L*).
func SlogLevel(level int) slog.Level {
	switch {
	case level <= msgctx.LErr:
		return slog.LevelError
	case level == msgctx.LWarn:
		return slog.LevelWarn
	case level >= msgctx.LDbg:
		return slog.LevelDebug
	}
	return slog.LevelInfo
}
