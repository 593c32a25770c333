package sipstack

import (
	"sync/atomic"

	"github.com/sipedge/sipedge/runtime/stats"
)

// Stats are the core counters, named after OpenSIPS's core statistics
// (rcv_requests, err_requests …). Each server keeps its own counts (tests
// run several servers in one process) and also feeds the process-wide
// runtime/stats counters that MI get_statistics and Prometheus read.
type Stats struct {
	RcvRequests  counter
	RcvReplies   counter
	FwdRequests  counter
	FwdReplies   counter
	DropRequests counter
	DropReplies  counter
	ErrRequests  counter // malformed requests (parse or header errors)
	ErrReplies   counter
	BadMessages  counter // datagrams sipgo could not parse at all
	Faults       counter // script runs that faulted (logged by the VM)
	Panics       counter // panics recovered while handling a message

	UASTransactions counter // transactions created (t_newtran/t_relay/t_reply)
	InUse           gauge   // transactions not yet finished
	LocalReplies    counter
	RelayedReplies  counter

	Reloads       counter
	ReloadsFailed counter
}

// The process-wide counters the servers feed, under OpenSIPS's groups;
// sipedge's own ones go in group "sipedge".
var (
	uasTransactions = stats.NewCounter("tm", "UAS_transactions")
	inuseTrans      = stats.NewGauge("tm", "inuse_transactions")
	localReplies    = stats.NewCounter("tm", "local_replies")
	relayedReplies  = stats.NewCounter("tm", "relayed_replies")
	scriptFaults    = stats.NewCounter("sipedge", "script_faults")
	panics          = stats.NewCounter("sipedge", "panics")
	reloads         = stats.NewCounter("sipedge", "reloads")
	reloadsFailed   = stats.NewCounter("sipedge", "reloads_failed")
)

func (st *Stats) bind() {
	st.RcvRequests.global = stats.RcvRequests
	st.RcvReplies.global = stats.RcvReplies
	st.FwdRequests.global = stats.FwdRequests
	st.FwdReplies.global = stats.FwdReplies
	st.DropRequests.global = stats.DropRequests
	st.DropReplies.global = stats.DropReplies
	st.ErrRequests.global = stats.ErrRequests
	st.ErrReplies.global = stats.ErrReplies
	st.BadMessages.global = stats.BadMsgHdr
	st.Faults.global = scriptFaults
	st.Panics.global = panics
	st.UASTransactions.global = uasTransactions
	st.InUse.global = inuseTrans
	st.LocalReplies.global = localReplies
	st.RelayedReplies.global = relayedReplies
	st.Reloads.global = reloads
	st.ReloadsFailed.global = reloadsFailed
}

// counter counts for one server and for the process.
type counter struct {
	local  atomic.Uint64
	global *stats.Counter
}

func (c *counter) Add(n uint64) {
	c.local.Add(n)
	if c.global != nil {
		c.global.Add(int64(n))
	}
}

func (c *counter) Load() uint64 { return c.local.Load() }

// gauge is a counter that goes down too.
type gauge struct {
	local  atomic.Int64
	global *stats.Counter
}

func (g *gauge) Add(n int64) {
	g.local.Add(n)
	if g.global != nil {
		g.global.Add(n)
	}
}

func (g *gauge) Load() int64 { return g.local.Load() }

// Snapshot returns the counters by their OpenSIPS names.
func (s *Server) Snapshot() map[string]uint64 {
	st := &s.stats
	inuse := st.InUse.Load()
	if inuse < 0 {
		inuse = 0
	}
	return map[string]uint64{
		"rcv_requests":       st.RcvRequests.Load(),
		"rcv_replies":        st.RcvReplies.Load(),
		"fwd_requests":       st.FwdRequests.Load(),
		"fwd_replies":        st.FwdReplies.Load(),
		"drop_requests":      st.DropRequests.Load(),
		"drop_replies":       st.DropReplies.Load(),
		"err_requests":       st.ErrRequests.Load(),
		"err_replies":        st.ErrReplies.Load(),
		"bad_msg_hdr":        st.BadMessages.Load(),
		"script_faults":      st.Faults.Load(),
		"UAS_transactions":   st.UASTransactions.Load(),
		"inuse_transactions": uint64(inuse),
		"local_replies":      st.LocalReplies.Load(),
		"relayed_replies":    st.RelayedReplies.Load(),
		"reloads":            st.Reloads.Load(),
		"reloads_failed":     st.ReloadsFailed.Load(),
	}
}

// Stats gives direct access to the counters.
func (s *Server) Stats() *Stats { return &s.stats }
