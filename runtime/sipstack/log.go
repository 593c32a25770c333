package sipstack

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/runtime/msgctx"
)

// Logger writes one timestamped line per event with an OpenSIPS level,
// filtered by the script's log_level (L_ALERT=-3 … L_DBG=4):
//
//	2026-11-24T10:00:00.123Z [4242] ERROR:core: text
type Logger struct {
	mu    sync.Mutex
	w     io.Writer
	pid   string
	level atomic.Int32
	buf   []byte
}

// NewLogger logs to w at OpenSIPS level (messages above it are dropped).
func NewLogger(w io.Writer, level int) *Logger {
	if w == nil {
		w = os.Stderr
	}
	l := &Logger{w: w, pid: fmt.Sprint(os.Getpid())}
	l.level.Store(int32(level))
	return l
}

// SetLevel changes the level (a reload with a new log_level).
func (l *Logger) SetLevel(level int) { l.level.Store(int32(level)) }

// Level is the current level.
func (l *Logger) Level() int { return int(l.level.Load()) }

// Enabled tells whether a message at level would be written.
func (l *Logger) Enabled(level int) bool { return level <= int(l.level.Load()) }

// Log writes text at level; source names who logs ("core", "tm", "script").
func (l *Logger) Log(level int, source, text string) {
	if !l.Enabled(level) {
		return
	}
	text = strings.TrimRight(text, "\r\n")
	text = strings.ReplaceAll(text, "\n", " ")
	now := time.Now().UTC()
	l.mu.Lock()
	b := l.buf[:0]
	b = now.AppendFormat(b, "2006-01-02T15:04:05.000Z")
	b = append(b, " ["...)
	b = append(b, l.pid...)
	b = append(b, "] "...)
	b = append(b, msgctx.LevelName(level)...)
	b = append(b, ':')
	b = append(b, source...)
	b = append(b, ": "...)
	b = append(b, text...)
	b = append(b, '\n')
	l.w.Write(b)
	l.buf = b
	l.mu.Unlock()
}

// Logf formats and logs.
func (l *Logger) Logf(level int, source, format string, args ...any) {
	if !l.Enabled(level) {
		return
	}
	l.Log(level, source, fmt.Sprintf(format, args...))
}

// slogHandler routes sipgo's slog output into the Logger (source "sipgo")
// and counts the parse failures sipgo only logs (it drops those datagrams
// without telling its caller).
type slogHandler struct {
	l     *Logger
	s     *Server
	attrs []slog.Attr
}

func slogLevel(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return msgctx.LErr
	case l >= slog.LevelWarn:
		return msgctx.LWarn
	case l >= slog.LevelInfo:
		// sipgo logs routine events at Info; keep them at debug level
		return msgctx.LDbg
	}
	return msgctx.LDbg + 1 // sipgo debug: never shown
}

func (h *slogHandler) Enabled(_ context.Context, l slog.Level) bool {
	// parse failures are logged at Error by sipgo: always let them through
	// so they are counted
	return l >= slog.LevelError || h.l.Enabled(slogLevel(l))
}

func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	lvl := slogLevel(r.Level)
	msg := r.Message
	parseFail := msg == "failed to parse"
	if parseFail && h.s != nil {
		h.s.stats.BadMessages.Add(1)
		h.s.stats.ErrRequests.Add(1)
		lvl = msgctx.LWarn
	}
	if msg == "Server tx failed to handle request" && h.s != nil {
		// a request sipgo could not make a transaction key for (no Via,
		// CSeq, or RFC 2543 matching without a From tag): sipgo answered
		// it 400 itself
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "error" && strings.Contains(a.Value.String(), "make key failed") {
				h.s.stats.ErrRequests.Add(1)
				lvl = msgctx.LWarn
			}
			return true
		})
	}
	if !h.l.Enabled(lvl) {
		return nil
	}
	var b strings.Builder
	b.WriteString(msg)
	add := func(a slog.Attr) bool {
		if a.Key == "data" && parseFail {
			// the whole datagram: keep its first line only
			v := a.Value.String()
			if i := strings.IndexAny(v, "\r\n"); i >= 0 {
				v = v[:i]
			}
			if len(v) > 120 {
				v = v[:120] + "…"
			}
			fmt.Fprintf(&b, " first_line=%q", v)
			return true
		}
		if a.Key == "caller" {
			return true
		}
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.l.Log(lvl, "sipgo", b.String())
	return nil
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &n
}

func (h *slogHandler) WithGroup(name string) slog.Handler { return h }

// sipgo's package-level logger (sip.DefaultLogger, used where no layer
// logger reaches) is a plain global: set it once, to a handler forwarding
// to the newest server's, so several servers in one process (tests) do not
// race on it.
var (
	defaultSink     atomic.Pointer[slogHandler]
	defaultSinkOnce sync.Once
)

func setDefaultSink(h *slogHandler) {
	defaultSink.Store(h)
	defaultSinkOnce.Do(func() { sip.SetDefaultLogger(slog.New(forwardHandler{})) })
}

type forwardHandler struct{}

func (forwardHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if h := defaultSink.Load(); h != nil {
		return h.Enabled(ctx, l)
	}
	return false
}

func (forwardHandler) Handle(ctx context.Context, r slog.Record) error {
	if h := defaultSink.Load(); h != nil {
		return h.Handle(ctx, r)
	}
	return nil
}

func (f forwardHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if h := defaultSink.Load(); h != nil {
		return h.WithAttrs(attrs)
	}
	return f
}

func (f forwardHandler) WithGroup(string) slog.Handler { return f }
