package stats

import "time"

// Core is the group of OpenSIPS's core statistics.
const Core = "core"

// The core statistics, under OpenSIPS 3.x's names, for the SIP runtime to
// increment. What each counts, as OpenSIPS documents it:
var (
	// RcvRequests: requests received (every request read from a socket).
	RcvRequests = NewCounter(Core, "rcv_requests")
	// RcvReplies: replies received.
	RcvReplies = NewCounter(Core, "rcv_replies")
	// FwdRequests: requests forwarded statelessly (forward()).
	FwdRequests = NewCounter(Core, "fwd_requests")
	// FwdReplies: replies forwarded statelessly.
	FwdReplies = NewCounter(Core, "fwd_replies")
	// DropRequests: requests dropped before they enter the script's
	// routing logic.
	DropRequests = NewCounter(Core, "drop_requests")
	// DropReplies: replies dropped before the script or by onreply_route.
	DropReplies = NewCounter(Core, "drop_replies")
	// ErrRequests: requests that are bogus from the SIP point of view
	// (no Via, unparsable headers …).
	ErrRequests = NewCounter(Core, "err_requests")
	// ErrReplies: bogus replies.
	ErrReplies = NewCounter(Core, "err_replies")
	// BadURIsRcvd: URIs that failed to parse.
	BadURIsRcvd = NewCounter(Core, "bad_URIs_rcvd")
	// UnsupportedMethods: requests with a method the proxy does not know
	// (OpenSIPS 3.2+ keeps the name but always reports 0).
	UnsupportedMethods = NewCounter(Core, "unsupported_methods")
	// BadMsgHdr: messages with a header that failed to parse.
	BadMsgHdr = NewCounter(Core, "bad_msg_hdr")
	// SlowMessages: messages whose processing exceeded the slow-message
	// threshold.
	SlowMessages = NewCounter(Core, "slow_messages")
	// Timestamp: seconds since sipedge started (OpenSIPS's ticks).
	Timestamp = NewFunc(Core, "timestamp", func() int64 { return int64(time.Since(started) / time.Second) })
)

// started is when the process (this package) started.
var started = time.Now()

// Started is when the process started, for uptime-style reports.
func Started() time.Time { return started }
