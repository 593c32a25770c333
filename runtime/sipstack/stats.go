package sipstack

import "sync/atomic"

// Stats are the core counters, named after OpenSIPS's core statistics
// (rcv_requests, err_requests …) so MI can expose them as such.
type Stats struct {
	RcvRequests  atomic.Uint64
	RcvReplies   atomic.Uint64
	FwdRequests  atomic.Uint64
	FwdReplies   atomic.Uint64
	DropRequests atomic.Uint64
	DropReplies  atomic.Uint64
	ErrRequests  atomic.Uint64 // malformed requests (parse or header errors)
	ErrReplies   atomic.Uint64
	BadMessages  atomic.Uint64 // datagrams sipgo could not parse at all
	Faults       atomic.Uint64 // script runs that faulted (logged by the VM)
	Panics       atomic.Uint64 // panics recovered while handling a message

	UASTransactions atomic.Uint64 // transactions created (t_newtran/t_relay/t_reply)
	InUse           atomic.Int64  // transactions not yet finished
	LocalReplies    atomic.Uint64
	RelayedReplies  atomic.Uint64

	Reloads       atomic.Uint64
	ReloadsFailed atomic.Uint64
}

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
