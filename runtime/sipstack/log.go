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

	"github.com/sipedge/sipedge/modules/edgeban/gate"
	"github.com/sipedge/sipedge/runtime/engine"
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
	alert alertLog // sipedge: the log_alert_file stream
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
	if level <= msgctx.LAlert && source == "script" {
		l.alert.write(text)
	}
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

// ---- the alert stream (sipedge-only core parameter log_alert_file) ----
//
// OpenSIPS sends xlog("L_ALERT", …) lines to syslog, where an rsyslog rule
// can split them into the file fail2ban reads. sipedge has no syslog, so a
// script names that file itself:
//
//	log_alert_file = "/var/log/sipedge_alert.log"
//
// Every script line at L_ALERT (whatever log_level is) is appended there
// as "2016-04-20 19:04:13 TEXT": local time in the format fail2ban's
// default date detector reads, then the text as the script wrote it (which
// starts with "$si:$sp", so the first address on the line is the
// sender's). The lines still go to the main log too. Each line also goes
// to edgeban's alert handler (gate.Alert), which counts it when the module
// runs with count_alerts. A reload (SIGHUP, MI reload_routes) reopens the
// file, so logrotate can move it and then signal the process.

type alertLog struct {
	mu   sync.Mutex
	f    *os.File
	path string
	buf  []byte
}

func (a *alertLog) write(text string) {
	text = strings.ReplaceAll(strings.TrimRight(text, "\r\n"), "\n", " ")
	gate.Alert(text)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return
	}
	b := time.Now().AppendFormat(a.buf[:0], "2006-01-02 15:04:05 ")
	b = append(b, text...)
	b = append(b, '\n')
	a.f.Write(b) // one write per line: O_APPEND keeps lines whole
	a.buf = b
}

// alertFile is the script's log_alert_file ("" when not set).
func alertFile(sc *engine.Script) string {
	g, ok := sc.Global("log_alert_file")
	if !ok {
		return ""
	}
	if g.Value != nil {
		return strings.TrimSpace(g.Value.Str)
	}
	return strings.TrimSpace(strings.Trim(g.Words, `"`))
}

// openAlertLog (re)opens the script's alert file, or closes the current
// one when the script names none; it also routes edgeban's background
// lines to this logger.
func (l *Logger) openAlertLog(sc *engine.Script) error {
	gate.SetLogger(func(level int, text string) { l.Log(level, "edgeban", text) })
	path := alertFile(sc)
	var f *os.File
	if path != "" {
		var err error
		if f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640); err != nil {
			return fmt.Errorf("log_alert_file: %w", err)
		}
	}
	l.alert.mu.Lock()
	old := l.alert.f
	l.alert.f, l.alert.path = f, path
	l.alert.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// AlertFile is the alert file in use ("" when none).
func (l *Logger) AlertFile() string {
	l.alert.mu.Lock()
	defer l.alert.mu.Unlock()
	return l.alert.path
}

// closeAlertLog closes the alert file.
func (l *Logger) closeAlertLog() {
	l.alert.mu.Lock()
	if l.alert.f != nil {
		l.alert.f.Close()
		l.alert.f = nil
	}
	l.alert.mu.Unlock()
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
		h.noteBadUDP(r) // badmsg.go answers it 400
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
