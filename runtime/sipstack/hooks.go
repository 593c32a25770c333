package sipstack

import (
	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/events"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

// The glue between the runtime and the modules that follow calls: event
// routes (runtime/events), tm's request/response hooks (modules/tm
// hooks.go) and the UAC that sends the requests modules generate.

// runEventRoute runs event_route[ev.Name] of the live generation, if the
// script has one. Named parameters are $param(name); unnamed ones (a
// raise_event with a single AVP) are $param(1), $param(2) ….
func (s *Server) runEventRoute(ev events.Event) {
	if s.closed.Load() {
		return
	}
	gen := s.cur.Load()
	idx, ok := gen.script.Prog.Lookup(ast.EventRoute, ev.Name)
	if !ok {
		return
	}
	c := s.newCall(gen, ast.EventRoute)
	defer s.putCall(c)
	defer func() {
		if p := recover(); p != nil {
			s.stats.Panics.Add(1)
			s.log.Logf(msgctx.LCrit, "core", "event_route[%s] panicked: %v", ev.Name, p)
		}
	}()
	c.m.Event = make(map[string]value.Value, len(ev.Params))
	for _, p := range ev.Params {
		if p.Name == "" {
			c.m.Params = append(c.m.Params, p.Value)
			continue
		}
		c.m.Event[p.Name] = p.Value
	}
	c.run(idx)
}

// responseOut runs tm's ResponseOut hooks for a reply sent upstream.
func (t *transaction) responseOut(code int, res *sip.Response) {
	t.mu.Lock()
	mod := t.mod
	t.mu.Unlock()
	if len(mod) == 0 {
		return
	}
	tm.RunResponseOutHooks(mod, t.stx.Origin(), code, res)
}

// responseRelay runs tm's ResponseRelay hooks for a reply relayed upstream
// (our Via already removed).
func (t *transaction) responseRelay(res *sip.Response) {
	t.mu.Lock()
	mod := t.mod
	t.mu.Unlock()
	if len(mod) == 0 {
		return
	}
	tm.RunResponseRelayHooks(mod, t.stx.Origin(), res)
}

// keepMod records the request route's module data on the transaction.
func (t *transaction) keepMod(m *msgctx.Msg) {
	if len(m.Mod) == 0 {
		return
	}
	t.mu.Lock()
	t.mod = tm.CopyMod(m.Mod)
	t.mu.Unlock()
}

// mergeMod keeps what a reply or failure route added to the module data.
func (t *transaction) mergeMod(mod map[string]any) {
	if len(mod) == 0 {
		return
	}
	t.mu.Lock()
	for k, v := range mod {
		if _, ok := t.mod[k]; !ok {
			if t.mod == nil {
				t.mod = make(map[string]any, len(mod))
			}
			t.mod[k] = v
		}
	}
	t.mu.Unlock()
}

// modCopy is a copy of the transaction's module data for a route run.
func (t *transaction) modCopy() map[string]any {
	t.mu.Lock()
	defer t.mu.Unlock()
	return tm.CopyMod(t.mod)
}

// SendRequest implements tm.UAC: a request generated here (a BYE from the
// dialog module) sent statefully, with our Via on top.
func (s *Server) SendRequest(req *sip.Request, dst string) error {
	ctx, err := s.sendUAC(req, dst)
	if err != nil {
		return err
	}
	go func() {
		for {
			select {
			case <-ctx.Responses():
			case <-ctx.Done():
				return
			}
		}
	}()
	return nil
}

// hookStart subscribes the server to events and installs it as the UAC.
func (s *Server) hookStart() {
	s.unsubEvents = events.Subscribe(s.runEventRoute)
	tm.SetUAC(s)
	// modules' background lines (acc records from transaction hooks); the
	// newest server keeps it (tests run several in one process)
	tm.SetLogger(func(level int, source, text string) { s.log.Log(level, source, text) })
}

// hookStop undoes hookStart.
func (s *Server) hookStop() {
	if s.unsubEvents != nil {
		s.unsubEvents()
	}
	if u, ok := tm.SetUAC(nil).(*Server); ok && u != s {
		tm.SetUAC(u) // another server took over meanwhile: keep it
	}
}
