// Package events is sipedge's event interface (OpenSIPS's EVI): modules and
// scripts raise named events with parameters (E_DLG_STATE_CHANGED,
// E_FRD_WARNING, raise_event("E_MY_EVENT", ...)), and every subscriber gets
// them. The SIP runtime subscribes to run the script's event_route[NAME]
// with the parameters readable as $param(name); Go code (tests, MI) may
// subscribe too.
//
// Delivery is synchronous, in the goroutine that raised the event, after
// the raiser has released its own locks: an event_route runs to its end
// before Raise returns, so what it logs or stores is visible to whatever
// the raiser does next (OpenSIPS's "sync" event_route mode).
package events

import (
	"sync"
	"sync/atomic"

	"github.com/sipedge/sipedge/runtime/value"
)

// Param is one event parameter. Name is "" for the values of a
// raise_event() given no names.
type Param struct {
	Name  string
	Value value.Value
}

// Event is one raised event.
type Event struct {
	Name   string
	Params []Param
}

// Get returns the named parameter's value (Null when absent).
func (e Event) Get(name string) value.Value {
	for _, p := range e.Params {
		if p.Name == name {
			return p.Value
		}
	}
	return value.Null
}

// Handler receives events.
type Handler func(Event)

type sub struct {
	id uint64
	fn Handler
}

var (
	mu    sync.Mutex
	seq   uint64
	subs  atomic.Pointer[[]sub] // copy-on-write, read without a lock
	count atomic.Uint64         // events raised since start
)

// Subscribe adds a handler for every event; the returned function removes it.
func Subscribe(h Handler) (cancel func()) {
	mu.Lock()
	seq++
	id := seq
	var cur []sub
	if p := subs.Load(); p != nil {
		cur = *p
	}
	next := append(append([]sub(nil), cur...), sub{id: id, fn: h})
	subs.Store(&next)
	mu.Unlock()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		p := subs.Load()
		if p == nil {
			return
		}
		next := make([]sub, 0, len(*p))
		for _, s := range *p {
			if s.id != id {
				next = append(next, s)
			}
		}
		subs.Store(&next)
	}
}

// Raise delivers an event to every subscriber. It must not be called with
// locks held that an event_route could need (the route may call back into
// the raising module).
func Raise(name string, params ...Param) {
	count.Add(1)
	p := subs.Load()
	if p == nil {
		return
	}
	ev := Event{Name: name, Params: params}
	for _, s := range *p {
		s.fn(ev)
	}
}

// HasSubscribers tells whether raising an event would reach anyone, so a
// raiser can skip building parameters.
func HasSubscribers() bool {
	p := subs.Load()
	return p != nil && len(*p) > 0
}

// Raised is the number of events raised since the process started.
func Raised() uint64 { return count.Load() }

// Str and Int build parameters.
func Str(name, v string) Param { return Param{Name: name, Value: value.S(v)} }
func Int(name string, v int) Param {
	return Param{Name: name, Value: value.I(v)}
}
