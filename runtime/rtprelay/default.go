package rtprelay

import (
	"sync"
	"sync/atomic"
)

// The process relay (Default) is created on first use, by the first
// script that configures the rtpproxy or rtpengine module. Code that
// follows calls (the dialog module) attaches to it without creating it:
// OnDefault runs a function once it exists, Running returns it if it does.

var (
	defMu    sync.Mutex
	defHooks []func(*Relay)
	running  atomic.Pointer[Relay]
)

// OnDefault runs f with the process relay as soon as it exists: now if
// Default was called already, else when it is (modules call it in init,
// e.g. to install SetOnTimeout). f must not call Default.
func OnDefault(f func(*Relay)) {
	defMu.Lock()
	if r := running.Load(); r != nil {
		defMu.Unlock()
		f(r)
		return
	}
	defHooks = append(defHooks, f)
	defMu.Unlock()
}

// Running returns the process relay, or nil when nothing created it yet
// (no script used a relay module): unlike Default it never creates one.
func Running() *Relay { return running.Load() }

func newDefault() *Relay {
	r := New(Options{})
	defMu.Lock()
	hooks := defHooks
	defHooks = nil
	running.Store(r)
	defMu.Unlock()
	for _, f := range hooks {
		f(r)
	}
	return r
}
