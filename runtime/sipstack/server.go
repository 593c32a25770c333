// Package sipstack is sipedge's SIP runtime: it owns the listening sockets
// and the sipgo transport and transaction layers, runs the script's routes
// for every message (route, onreply_route, failure_route, branch_route,
// error_route, startup_route, timer_route), and carries out what the script
// asks through msgctx.Host and msgctx.SIPHost: stateless replies and
// forwarding, stateful relaying with serial forking, CANCEL propagation,
// Record-Route rendering.
//
// Sockets and transactions belong to the process; the script is a
// generation that can be replaced at run time (Reload). Every request loads
// the live generation once and its transaction keeps it, so the
// onreply/failure/branch routes armed by a request run in the script that
// armed them even after a reload.
package sipstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/source"
	"github.com/sipedge/sipedge/lang/syntax"
	"github.com/sipedge/sipedge/modules/rr"
	tlsmgm "github.com/sipedge/sipedge/modules/tls_mgm"
	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/engine"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/vm"
)

// Options configure a Server.
type Options struct {
	// Script is the path of the OpenSIPS-style configuration.
	Script string
	// Syntax passes the preprocessor and file reader to the loader.
	Syntax syntax.Options
	// Log receives the log lines (default os.Stderr).
	Log io.Writer
	// LogLevel, when not nil, overrides the script's log_level.
	LogLevel *int
	// UDPReadBuffer is the receive buffer asked for each UDP socket, in
	// bytes (default 16 MiB; the kernel may cap it).
	UDPReadBuffer int
	// Sockets, when set, replace the script's socket=/listen= lines
	// (tests bind free ports this way).
	Sockets []SocketSpec
	// UDPReaders is the number of goroutines reading each UDP socket
	// (default: the script's udp_workers, else GOMAXPROCS, at least 2).
	UDPReaders int
	// AdaptProcs lets the server set GOMAXPROCS by its load, between 1
	// and the value it had at Start (procs.go). GOMAXPROCS is process-wide:
	// only a process that runs one server should ask for it (the sipedge
	// binary does, unless GOMAXPROCS is in its environment).
	AdaptProcs bool
	// OnActivate is called each time a script generation goes live: at
	// start and after every successful reload (SIGHUP or MI). The process
	// parts that follow the script (MI commands, the HTTP server) sync here.
	OnActivate func(*engine.Script)
}

// DefaultLogLevel is OpenSIPS's default log_level (L_NOTICE).
const DefaultLogLevel = msgctx.LNotice

// generation is one loaded script with its route indexes and modparams.
type generation struct {
	id       uint64
	script   *engine.Script
	img      *vm.Image
	main     int // request route, -1 if none
	onreply  int // unnamed onreply_route, -1 if none
	errRoute int // error_route, -1 if none
	startup  int
	timers   []timerRoute
	tm       tm.Params
	rr       rr.Params
	logLevel int
	nvars    int
	navps    int

	serverHdr string // server_header, read once

	tls *tlsmgm.Config // tls_mgm's TLS domains (tls.go)
}

type timerRoute struct {
	name     string
	idx      int
	interval time.Duration
}

func routeIndex(s *engine.Script, kind ast.RouteKind) int {
	if i, ok := s.Prog.Lookup(kind, ""); ok {
		return i
	}
	return -1
}

// Server is a running sipedge proxy.
type Server struct {
	opts    Options
	log     *Logger
	cur     atomic.Pointer[generation]
	genSeq  atomic.Uint64
	ua      *sipgo.UserAgent
	tpl     *sip.TransportLayer
	txl     *sip.TransactionLayer
	sockets []*Socket
	stats   Stats

	reloadMu sync.Mutex
	timerMu  sync.Mutex
	timerCtx context.CancelFunc
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	started  atomic.Bool
	closed   atomic.Bool

	unsubEvents func() // hooks.go

	reqJobs   chan reqJob // idle request workers (perf.go)
	spawnq    chan func() // parked pooled goroutines (perf.go spawn)
	spawnIdle atomic.Int32
	slCache   slReplies // final stateless replies (slcache.go)

	tlsrt tlsRuntime // outbound TLS connections (tls.go)
	bad   badMsgs    // unparseable UDP requests (badmsg.go)
}

var setGlobals sync.Once

// New loads the script, binds its sockets and builds the SIP stack; Start
// begins serving. A script error is returned as the loader's positioned
// error list.
func New(opts Options) (*Server, error) {
	setGlobals.Do(func() {
		// Relayed requests may be bigger than sipgo's 1500-byte MTU guard
		// (RFC 4475 longreq is 3.5 KB); reads need room for 64 KB datagrams.
		sip.UDPMTUSize = 65535
		sip.TransportBufferReadSize = 65535
	})
	if opts.UDPReadBuffer == 0 {
		opts.UDPReadBuffer = 16 << 20
	}
	s := &Server{opts: opts}
	s.stats.bind()
	s.log = NewLogger(opts.Log, DefaultLogLevel)
	gen, err := s.load()
	if err != nil {
		return nil, err
	}
	s.log.SetLevel(gen.logLevel)
	if err := s.log.openAlertLog(gen.script); err != nil { // sipedge: log_alert_file (log.go)
		return nil, err
	}
	specs := opts.Sockets
	if specs == nil {
		if specs, err = ScriptSockets(gen.script); err != nil {
			return nil, err
		}
	}
	if len(specs) == 0 {
		specs = []SocketSpec{{Proto: "udp", Host: "127.0.0.1", Port: 5060}}
		s.log.Log(msgctx.LWarn, "core", "no socket= line in the script: listening on udp:127.0.0.1:5060")
	}
	for _, sp := range specs {
		sock := &Socket{SocketSpec: sp}
		if err := sock.bind(opts.UDPReadBuffer); err != nil {
			s.closeSockets()
			return nil, fmt.Errorf("socket %s: %w", sp, err)
		}
		s.sockets = append(s.sockets, sock)
	}
	gen.img.Myself = s.Myself
	gen.script.Activate()
	s.applyWtTimer(gen, true) // before any transaction exists (perf.go)
	s.cur.Store(gen)
	if opts.OnActivate != nil {
		opts.OnActivate(gen.script)
	}

	h := &slogHandler{l: s.log, s: s}
	slogger := slog.New(h)
	setDefaultSink(h)
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("sipedge"),
		sipgo.WithUserAgenTLSConfig(uaTLSConfig(gen)), // outbound WSS (tls.go)
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(slogger),
			sip.WithTransportLayerReadFilter(dropBanned)), // edgeban's bans (edgegate.go)
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(slogger),
			sip.WithTransactionLayerUnhandledResponseHandler(s.onStrayResponse),
		),
	)
	if err != nil {
		s.closeSockets()
		return nil, err
	}
	s.ua, s.tpl, s.txl = ua, ua.TransportLayer(), ua.TransactionLayer()
	s.txl.OnRequest(s.onRequest)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.spawnq = make(chan func())
	return s, nil
}

// load builds a generation from the script file.
func (s *Server) load() (*generation, error) {
	sc, err := engine.Load(s.opts.Script, s.opts.Syntax)
	if err != nil {
		return nil, err
	}
	g := &generation{
		id:       s.genSeq.Add(1),
		script:   sc,
		img:      sc.Image,
		main:     routeIndex(sc, ast.RequestRoute),
		onreply:  routeIndex(sc, ast.OnReplyRoute),
		errRoute: routeIndex(sc, ast.ErrorRoute),
		startup:  routeIndex(sc, ast.StartupRoute),
		tm:       tm.ReadParams(sc.Params[tm.Name]),
		rr:       rr.ReadParams(sc.Params[rr.Name]),
		logLevel: DefaultLogLevel,
		nvars:    sc.Image.NumVars(),
		navps:    sc.Image.NumAVPs(),
	}
	for i, r := range sc.Prog.Routes {
		if r.Kind == ast.TimerRoute && r.Interval > 0 {
			g.timers = append(g.timers, timerRoute{name: r.Name, idx: i, interval: time.Duration(r.Interval) * time.Second})
		}
	}
	if gl, ok := sc.Global("log_level"); ok && gl.Value != nil {
		g.logLevel = gl.Value.Int
	} else if gl, ok := sc.Global("debug"); ok && gl.Value != nil {
		g.logLevel = gl.Value.Int
	}
	if s.opts.LogLevel != nil {
		g.logLevel = *s.opts.LogLevel
	}
	g.serverHdr = scriptServerHeader(g)
	if g.tls, err = s.loadTLS(sc); err != nil {
		return nil, err
	}
	return g, nil
}

// Start serves every socket, runs startup_route once and arms the
// timer_routes. It returns at once; Close stops everything.
func (s *Server) Start() error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("sipstack: already started")
	}
	gen := s.cur.Load()
	s.hookStart()
	if gen.startup >= 0 {
		s.runDetached(gen, gen.startup, ast.StartupRoute)
	}
	readers := udpReaders(s.opts, gen.script)
	s.startWorkers(4 * max(2, runtime.GOMAXPROCS(0)))
	for _, sock := range s.sockets {
		sock := sock
		n := 1
		if sock.Proto == "udp" {
			n = readers // several readers on one socket (perf.go)
		}
		if sock.Proto == "tls" {
			// Before Start returns: a request relayed to a TLS
			// destination right away needs the outbound dialer.
			s.startDialListener(sock)
		}
		for range n {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				var err error
				switch sock.Proto {
				case "udp":
					err = s.tpl.ServeUDP(s.newUDPReader(sock)) // badmsg.go
				case "tcp":
					err = s.tpl.ServeTCP(sock.tcp)
				case "tls", "ws", "wss":
					err = s.serveStream(sock) // tls.go
				}
				if err != nil && !s.closed.Load() {
					s.log.Logf(msgctx.LErr, "core", "socket %s stopped: %v", sock.SocketSpec, err)
				}
			}()
		}
		s.log.Logf(msgctx.LNotice, "core", "listening on %s", sock.SocketSpec)
	}
	if s.opts.AdaptProcs {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.adaptProcs(s.ctx) // procs.go
		}()
	}
	s.startTimers(gen)
	return nil
}

// Reload loads the script again. The new generation is built completely
// first; on error the running one keeps serving and the (positioned) error
// is returned. Transactions in flight finish in the generation that
// created them.
func (s *Server) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	s.stats.Reloads.Add(1)
	gen, err := s.load()
	if err != nil {
		s.stats.ReloadsFailed.Add(1)
		var list source.ErrorList
		if errors.As(err, &list) {
			s.log.Logf(msgctx.LErr, "core", "reload of %s refused (%d errors), the running script stays", s.opts.Script, len(list))
			for _, e := range list {
				s.log.Logf(msgctx.LErr, "core", "reload: %s: %s", e.Pos, e.Msg)
			}
		} else {
			s.log.Logf(msgctx.LErr, "core", "reload of %s refused, the running script stays: %v", s.opts.Script, err)
		}
		return err
	}
	if specs, serr := ScriptSockets(gen.script); serr == nil && s.opts.Sockets == nil && !sameSockets(specs, s.sockets) {
		s.log.Log(msgctx.LWarn, "core", "reload: socket= lines changed; sockets are kept until a restart")
	}
	gen.img.Myself = s.Myself
	gen.script.Activate()
	s.applyWtTimer(gen, false)
	old := s.cur.Swap(gen)
	if s.opts.OnActivate != nil {
		s.opts.OnActivate(gen.script)
	}
	s.log.SetLevel(gen.logLevel)
	if err := s.log.openAlertLog(gen.script); err != nil { // log.go: reopened for logrotate
		s.log.Logf(msgctx.LErr, "core", "reload: %v (alert lines are not written to a file)", err)
	}
	if s.started.Load() {
		s.startTimers(gen)
	}
	s.log.Logf(msgctx.LNotice, "core", "reloaded %s (generation %d replaces %d)", s.opts.Script, gen.id, old.id)
	return nil
}

func sameSockets(specs []SocketSpec, socks []*Socket) bool {
	if len(specs) != len(socks) {
		return false
	}
	a := make([]string, len(specs))
	b := make([]string, len(socks))
	for i := range specs {
		a[i] = specs[i].String()
		b[i] = socks[i].SocketSpec.String()
	}
	sort.Strings(a)
	sort.Strings(b)
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Close stops the listeners, timers and transactions.
func (s *Server) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.hookStop()
	s.timerMu.Lock()
	if s.timerCtx != nil {
		s.timerCtx()
	}
	s.timerMu.Unlock()
	s.cancel()
	s.closeSockets()
	err := s.ua.Close()
	s.wg.Wait()
	s.log.closeAlertLog()
	return err
}

func (s *Server) closeSockets() {
	for _, sock := range s.sockets {
		sock.close()
	}
}

// Sockets lists the bound sockets (with the real port when 0 was asked).
func (s *Server) Sockets() []SocketSpec {
	out := make([]SocketSpec, len(s.sockets))
	for i, sock := range s.sockets {
		out[i] = sock.SocketSpec
	}
	return out
}

// Generation is the id of the live script generation (1 at start).
func (s *Server) Generation() uint64 { return s.cur.Load().id }

// Logger is the server's logger.
func (s *Server) Logger() *Logger { return s.log }

// Myself tells whether host:port is one of our sockets (port 0: any).
func (s *Server) Myself(host string, port int) bool {
	for _, sock := range s.sockets {
		if sock.matches(host, port) {
			return true
		}
	}
	return false
}

// socketFor picks the socket to send on with proto, preferring prefer.
func (s *Server) socketFor(proto string, prefer *Socket) *Socket {
	if prefer != nil && prefer.Proto == proto {
		return prefer
	}
	for _, sock := range s.sockets {
		if sock.Proto == proto {
			return sock
		}
	}
	return nil
}

// socketByLocal finds the socket a connection's local address belongs to.
func (s *Server) socketByLocal(proto, laddr string) *Socket {
	host, ps, err := netSplit(laddr)
	var port int
	if err == nil {
		port, _ = strconv.Atoi(ps)
	}
	var first *Socket
	for _, sock := range s.sockets {
		if sock.Proto != proto {
			continue
		}
		if first == nil {
			first = sock
		}
		if port == sock.Port && (host == sock.Host || sock.ip.IsUnspecified() || sock.ip.Equal(parseIP(host))) {
			return sock
		}
	}
	return first
}

// startTimers runs gen's timer_routes, stopping the previous generation's.
func (s *Server) startTimers(gen *generation) {
	s.timerMu.Lock()
	defer s.timerMu.Unlock()
	if s.timerCtx != nil {
		s.timerCtx()
		s.timerCtx = nil
	}
	if len(gen.timers) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	s.timerCtx = cancel
	for _, tr := range gen.timers {
		tr := tr
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			tk := time.NewTicker(tr.interval)
			defer tk.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tk.C:
					s.runDetached(gen, tr.idx, ast.TimerRoute)
				}
			}
		}()
	}
}

// runDetached runs a route that has no message (startup, timer).
func (s *Server) runDetached(gen *generation, idx int, kind ast.RouteKind) {
	c := s.newCall(gen, kind)
	defer s.putCall(c)
	defer func() {
		if p := recover(); p != nil {
			s.stats.Panics.Add(1)
			s.log.Logf(msgctx.LCrit, "core", "%s panicked: %v", kind, p)
		}
	}()
	gen.img.Run(&c.m, idx)
}
