package tm

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/internal/bglog"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

// Hooks let other modules follow requests and transactions the way
// OpenSIPS modules use TM and script callbacks (the dialog module tracks
// call state with them). Modules register in init; the SIP runtime
// (runtime/sipstack) runs them. Hooks run in the goroutine handling the
// message and must not block.
//
// Per-message module data (msgctx.Msg.Mod) follows a transaction: the
// runtime keeps what the request route left there and gives a copy of the
// map to the transaction's branch, onreply and failure routes, and to
// OnResponseOut hooks.

// RequestHook runs for a request before the request route (OpenSIPS's
// pre-script callbacks): in-dialog matching is done here.
type RequestHook func(m *msgctx.Msg)

// RouteDoneHook runs after the request route of a request; stateful is true
// when the run created a transaction (t_relay, t_newtran, t_reply).
type RouteDoneHook func(m *msgctx.Msg, stateful bool)

// ResponseOutHook runs for every reply a transaction sends upstream:
// relayed provisional and final replies, 2xx retransmissions, and replies
// generated here (t_reply, 408 on timeout, 477, 487 after a CANCEL). res is
// nil when the runtime's SIP stack sent the reply itself (the 487 that
// answers a cancelled INVITE). mod is the transaction's module data.
type ResponseOutHook func(mod map[string]any, req *sip.Request, code int, res *sip.Response)

// FailureHook runs when a transaction's failure_route is about to run
// (OpenSIPS's TMCB_ON_FAILURE): req is the transaction's request, code and
// res the winning reply (res nil for a reply generated here, 408 …). mod is
// the transaction's module data. acc accounts missed calls here.
type FailureHook func(mod map[string]any, req *sip.Request, code int, res *sip.Response)

// RequestOutHook runs for every request the runtime sends downstream for a
// script (each t_relay branch, stateless forwards and relayed ACKs), after
// our Via and Record-Route were added and before it is sent. mod is the
// module data of the message or transaction; the hook may rewrite out
// (topology_hiding strips the Vias below ours and replaces the Contact).
type RequestOutHook func(mod map[string]any, out *sip.Request)

// ResponseRelayHook runs for every reply a transaction relays upstream,
// right after our Via was removed and before the reply is checked and the
// ResponseOut hooks run. origin is the request the transaction received.
// topology_hiding puts back the Vias it took off the request here.
type ResponseRelayHook func(mod map[string]any, origin *sip.Request, res *sip.Response)

var (
	hookMu         sync.Mutex
	reqHooks       atomic.Pointer[[]RequestHook]
	doneHooks      atomic.Pointer[[]RouteDoneHook]
	resOutHooks    atomic.Pointer[[]ResponseOutHook]
	failureHooks   atomic.Pointer[[]FailureHook]
	reqOutHooks    atomic.Pointer[[]RequestOutHook]
	resRelayHooks  atomic.Pointer[[]ResponseRelayHook]
	backgroundLogf atomic.Pointer[func(level int, source, text string)]
)

func addHook[T any](p *atomic.Pointer[[]T], h T) {
	hookMu.Lock()
	defer hookMu.Unlock()
	var cur []T
	if old := p.Load(); old != nil {
		cur = *old
	}
	next := append(append([]T(nil), cur...), h)
	p.Store(&next)
}

// OnRequest registers a RequestHook.
func OnRequest(h RequestHook) { addHook(&reqHooks, h) }

// OnRouteDone registers a RouteDoneHook.
func OnRouteDone(h RouteDoneHook) { addHook(&doneHooks, h) }

// OnResponseOut registers a ResponseOutHook.
func OnResponseOut(h ResponseOutHook) { addHook(&resOutHooks, h) }

// OnFailure registers a FailureHook.
func OnFailure(h FailureHook) { addHook(&failureHooks, h) }

// OnRequestOut registers a RequestOutHook.
func OnRequestOut(h RequestOutHook) { addHook(&reqOutHooks, h) }

// OnResponseRelay registers a ResponseRelayHook.
func OnResponseRelay(h ResponseRelayHook) { addHook(&resRelayHooks, h) }

// RunFailureHooks is called by the SIP runtime before a failure_route runs.
func RunFailureHooks(mod map[string]any, req *sip.Request, code int, res *sip.Response) {
	if len(mod) == 0 {
		return
	}
	if p := failureHooks.Load(); p != nil {
		for _, h := range *p {
			h(mod, req, code, res)
		}
	}
}

// RunRequestOutHooks is called by the SIP runtime before it sends a
// request downstream.
func RunRequestOutHooks(mod map[string]any, out *sip.Request) {
	if len(mod) == 0 {
		return
	}
	if p := reqOutHooks.Load(); p != nil {
		for _, h := range *p {
			h(mod, out)
		}
	}
}

// RunResponseRelayHooks is called by the SIP runtime for each reply a
// transaction relays upstream, after removing its own Via.
func RunResponseRelayHooks(mod map[string]any, origin *sip.Request, res *sip.Response) {
	if len(mod) == 0 {
		return
	}
	if p := resRelayHooks.Load(); p != nil {
		for _, h := range *p {
			h(mod, origin, res)
		}
	}
}

// SetLogger installs where modules' background lines go (lines that belong
// to no script run: acc records written from transaction hooks, dialog
// ends). The SIP runtime installs its logger while it runs; nil removes it.
func SetLogger(f func(level int, source, text string)) {
	if f == nil {
		backgroundLogf.Store(nil)
		return
	}
	backgroundLogf.Store(&f)
}

// Log writes a background line through the runtime's logger, or to
// log/slog when no runtime is running. level is in OpenSIPS numbering
// (msgctx.L*).
func Log(level int, source, text string) {
	if f := backgroundLogf.Load(); f != nil {
		(*f)(level, source, text)
		return
	}
	slog.Log(context.Background(), bglog.SlogLevel(level), source+": "+text)
}

// RunRequestHooks is called by the SIP runtime before the request route.
func RunRequestHooks(m *msgctx.Msg) {
	if p := reqHooks.Load(); p != nil {
		for _, h := range *p {
			h(m)
		}
	}
}

// RunRouteDoneHooks is called by the SIP runtime after the request route.
func RunRouteDoneHooks(m *msgctx.Msg, stateful bool) {
	if p := doneHooks.Load(); p != nil {
		for _, h := range *p {
			h(m, stateful)
		}
	}
}

// RunResponseOutHooks is called by the SIP runtime for each reply sent
// upstream by a transaction.
func RunResponseOutHooks(mod map[string]any, req *sip.Request, code int, res *sip.Response) {
	if len(mod) == 0 {
		return
	}
	if p := resOutHooks.Load(); p != nil {
		for _, h := range *p {
			h(mod, req, code, res)
		}
	}
}

// CopyMod copies a message's module data for another route run.
func CopyMod(mod map[string]any) map[string]any {
	if len(mod) == 0 {
		return nil
	}
	out := make(map[string]any, len(mod))
	for k, v := range mod {
		out[k] = v
	}
	return out
}

// UAC sends requests the proxy generates itself (the dialog module's BYEs
// on timeout or MI termination). The SIP runtime installs one while it runs.
type UAC interface {
	// SendRequest sends req statefully to dst ("[proto:]host[:port]" or a
	// SIP URI; "" for the first Route or the Request-URI), adding our Via.
	SendRequest(req *sip.Request, dst string) error
}

var uac atomic.Pointer[uacBox]

type uacBox struct{ u UAC }

// ErrNoUAC is returned by SendRequest when no SIP runtime is running.
var ErrNoUAC = errors.New("no SIP runtime to send requests")

// SetUAC installs the runtime's request sender (nil removes it) and returns
// the previous one.
func SetUAC(u UAC) UAC {
	var nb *uacBox
	if u != nil {
		nb = &uacBox{u}
	}
	old := uac.Swap(nb)
	if old == nil {
		return nil
	}
	return old.u
}

// SendRequest sends a locally generated request through the running SIP
// runtime.
func SendRequest(req *sip.Request, dst string) error {
	b := uac.Load()
	if b == nil {
		return ErrNoUAC
	}
	return b.u.SendRequest(req, dst)
}
