package rtpproxy

import (
	"errors"

	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/modules/dialog"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/rtprelay"
	"github.com/sipedge/sipedge/runtime/rtprelay/rtpsip"
)

// Engagement is what rtpproxy_engage() leaves on an initial INVITE: the
// flags to use for the rest of the dialog. OpenSIPS does the rest with
// dialog callbacks; here the module does it itself through tm's hooks and
// the dialog module (engage_hooks.go):
//
//  1. rtpproxy_engage creates the INVITE's dialog if needed and keeps the
//     Engagement with it, and in the INVITE's module data (so with its
//     transaction).
//  2. Handle runs for every message of that transaction and dialog the
//     runtime forwards, after the script's routes ran on it and before it
//     is sent: replies to the INVITE (18x/2xx with SDP: the answer, or the
//     offer when the INVITE had none; a final >= 300: media dropped), the
//     ACK (SDP: the answer to an offer in the 200), in-dialog re-INVITEs,
//     UPDATEs, PRACKs and their replies.
//  3. When the dialog ends (BYE, timeout, dlg_end_dlg …), End.
//
// An Engagement is immutable and safe to use from any goroutine.
type Engagement struct {
	CallID  string
	FromTag string // the caller's tag: messages from it use the flags as given
	flags   flags
	ip      string
	st      *state
}

// Engaged returns the engagement rtpproxy_engage() made while routing this
// request, or nil.
func Engaged(m *msgctx.Msg) *Engagement {
	if e, ok := m.Mod[Name].(*Engagement); ok {
		return e
	}
	return nil
}

// rtpproxy_engage([flags[, ip[, set_id[, sock_pvar[, ret_pvar]]]]]):
// offer now if the INVITE has SDP, and leave the Engagement for the SIP
// runtime to finish the job on replies and the ACK.
func callEngage(m *msgctx.Msg, a *modules.Args) int {
	f, ok := flagsOf(m, a, "rtpproxy_engage")
	if !ok {
		return -1
	}
	st := live.Load()
	if st == nil {
		rtpsip.Logf(m, msgctx.LErr, "rtpproxy_engage: the media relay is not configured")
		return -1
	}
	msg, err := rtpsip.Read(m)
	if err != nil || msg.Reply || msg.Method != "INVITE" {
		rtpsip.Logf(m, msgctx.LErr, "rtpproxy_engage: only for an INVITE request")
		return -1
	}
	if msg.ToTag != "" {
		// in-dialog: the dialog's engagement handles it
		return 1
	}
	e := &Engagement{CallID: msg.CallID, FromTag: msg.FromTag, flags: *f, st: st}
	if a.Has(1) {
		e.ip = a.Str(1)
	}
	// as OpenSIPS, engage needs the call's dialog and creates it if the
	// script did not (engage_hooks.go follows the dialog)
	d, err := dialog.Ensure(m)
	if err != nil {
		rtpsip.Logf(m, msgctx.LErr, "rtpproxy_engage: cannot create the dialog: %v", err)
		return -1
	}
	if len(msg.Body) > 0 {
		if rc := offerAnswer(m, a, rtprelay.Offer, "rtpproxy_engage"); rc < 0 {
			return rc
		}
	} else {
		setRef(m, a, 3, SockName)
	}
	if m.Mod == nil {
		m.Mod = map[string]any{}
	}
	m.Mod[Name] = e
	engage(d, e)
	return 1
}

// Handle does the relay's part for one message of an engaged dialog (see
// Engagement). It returns 1 when it did something, -1 on failure and 0
// when the message needed nothing.
func (e *Engagement) Handle(m *msgctx.Msg) int {
	return e.handle(m, func(format string, args ...any) { rtpsip.Logf(m, msgctx.LErr, format, args...) })
}

func (e *Engagement) handle(m *msgctx.Msg, logf func(format string, args ...any)) int {
	msg, err := rtpsip.Read(m)
	if err != nil {
		return -1
	}
	r := e.st.prof.Relay()
	switch {
	case !msg.Reply && (msg.Method == "BYE" || msg.Method == "CANCEL"):
		e.End()
		return 1
	case msg.Reply && msg.Code >= 300:
		// the INVITE failed: drop the media unless it was a re-INVITE of
		// a call whose media is established
		if msg.Method == "INVITE" && !e.confirmed(r) {
			e.End()
			return 1
		}
		return 0
	case len(msg.Body) == 0:
		return 0
	}
	var op rtprelay.Op
	switch {
	case !msg.Reply && (msg.Method == "ACK" || msg.Method == "PRACK"):
		op = rtprelay.Answer
	case !msg.Reply:
		op = rtprelay.Offer
	default:
		op = r.Expecting(msg.CallID, msg.FromTag, msg.ToTag, true)
	}
	// who sent it: the caller uses the flags' direction, the callee the
	// reverse
	fromCaller := (!msg.Reply && msg.FromTag == e.FromTag) || (msg.Reply && msg.FromTag != e.FromTag)
	f := e.flags
	if !fromCaller {
		f.in, f.out = f.out, f.in
	}
	req := &rtprelay.Request{
		Op: op, CallID: msg.CallID, FromTag: msg.FromTag, ToTag: msg.ToTag, Reply: msg.Reply, Body: msg.Body,
		InIface: f.in, OutIface: f.out, TrustAddress: f.trust, SIPSource: msg.Src,
		ReplaceOrigin: f.origin, ReplaceSessionConn: f.sessConn, Asymmetric: f.asym,
		KeepBody: f.keep, Marker: e.st.marker, Force: f.force, Timeout: f.ttl,
	}
	if e.ip != "" {
		if err := req.MediaAddress.UnmarshalText([]byte(e.ip)); err != nil {
			logf("rtpproxy_engage: %q is not an IP address", e.ip)
			return -1
		}
	}
	res, err := e.st.prof.Process(req)
	if errors.Is(err, rtprelay.ErrAlreadyRelayed) {
		// the script's routes already took this SDP through the relay
		// (rtpproxy_answer in an onreply_route as well as engage)
		return 0
	}
	if err != nil {
		logf("rtpproxy_engage: %s %s: %s: %v", msg.Method, replyOrRequest(msg.Reply, msg.Code), op, err)
		return -1
	}
	if !req.KeepBody {
		rtpsip.SetBody(m, res.Body)
	}
	return 1
}

// confirmed tells whether the call's media got an answer already (a
// failed re-INVITE must not drop an established call's media).
func (e *Engagement) confirmed(r *rtprelay.Relay) bool {
	si, ok := r.Lookup(e.CallID, e.FromTag)
	return ok && si.Answered
}

// End drops the dialog's media.
func (e *Engagement) End() {
	e.st.prof.Relay().Delete(e.CallID, e.FromTag, "")
}
