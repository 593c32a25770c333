package dialog

import (
	"errors"
	"fmt"

	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/rtprelay"
)

// The dialog side of the built-in media relay (runtime/rtprelay), as
// OpenSIPS's dialog module serves rtpproxy/rtpengine:
//
//   - a dialog that ends (BYE, lifetime timeout, dlg_end_dlg, a failed
//     INVITE, Terminate) releases its call's media: relay Delete by
//     Call-ID and tags;
//   - a call whose media stopped (the relay's inactivity timeout, or MI
//     teardown) is ended through Terminate: BYE to both sides, end reason
//     ReasonMediaTimeout.
//
// Both attach to the process relay only once a script created it.

// ReasonMediaTimeout is $DLG_end_reason of a call ended because its media
// stopped, as OpenSIPS's rtpproxy module names it.
const ReasonMediaTimeout = "RTPProxy Timeout"

// ErrNoDialog is returned by Terminate for an unknown dialog.
var ErrNoDialog = errors.New("no such dialog")

// ErrNotConfirmed is returned by Terminate for a dialog without a 2xx yet:
// ending early dialogs (CANCEL) is not supported.
var ErrNotConfirmed = errors.New("dialog not confirmed yet")

func init() {
	rtprelay.OnDefault(func(r *rtprelay.Relay) { r.SetOnTimeout(onMediaTimeout) })
	OnEnd(releaseMedia)
}

// releaseMedia is the end hook that drops the call's relay sessions.
func releaseMedia(d *Dialog, _ bool, _ int64) {
	r := rtprelay.Running()
	if r == nil {
		return
	}
	d.mu.Lock()
	callID, fromTag, toTag := d.callID, d.fromTag, d.toTag
	d.mu.Unlock()
	r.Delete(callID, fromTag, toTag)
}

// onMediaTimeout is the relay's end-call hook. It runs on the relay's
// timer goroutine, which must not wait for SIP sends.
func onMediaTimeout(callID, fromTag string) {
	go func() {
		err := Terminate(callID, fromTag, ReasonMediaTimeout, "")
		switch {
		case err == nil:
			tm.Log(msgctx.LNotice, Name, fmt.Sprintf("call %s (from tag %s) ended: its media stopped", callID, fromTag))
		case errors.Is(err, ErrNoDialog):
			// a call without create_dialog: nothing to end
		default:
			tm.Log(msgctx.LWarn, Name, fmt.Sprintf("call %s: media stopped, but the dialog cannot be ended: %v", callID, err))
		}
	}()
}

// Lookup finds the dialog of callID whose caller's From tag is fromTag
// (a confirmed one before early ones), or nil.
func Lookup(callID, fromTag string) *Dialog {
	s := tbl.shardOf(callID)
	s.mu.Lock()
	defer s.mu.Unlock()
	var found *Dialog
	for d := s.byCall[callID]; d != nil; d = d.next {
		d.mu.Lock()
		ft, st := d.fromTag, d.state
		d.mu.Unlock()
		if ft != fromTag {
			continue
		}
		if st >= StateConfirmedNA && st != StateDeleted {
			return d
		}
		if found == nil {
			found = d
		}
	}
	return found
}

// Terminate ends the dialog of callID and fromTag from outside the SIP
// flow, as dlg_end_dlg does: a BYE to each side, then the end hooks (its
// media released) and E_DLG_STATE_CHANGED, with reason as
// $DLG_end_reason. extraHdrs ("" for modparam dlg_extra_hdrs) are added to
// the BYEs. A dialog without a 2xx yet is refused (ErrNotConfirmed).
func Terminate(callID, fromTag, reason, extraHdrs string) error {
	d := Lookup(callID, fromTag)
	if d == nil {
		return ErrNoDialog
	}
	if st := d.State(); st < StateConfirmedNA || st == StateDeleted {
		return ErrNotConfirmed
	}
	if extraHdrs == "" {
		extraHdrs = liveConfig().extraHdrs
	}
	errs := sendByes(d, extraHdrs)
	end(d, reason)
	if len(errs) > 0 {
		return fmt.Errorf("dialog ended, but sending BYE failed: %w", errs[0])
	}
	return nil
}
