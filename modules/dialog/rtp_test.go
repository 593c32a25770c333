package dialog

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/rtprelay"
)

const rtpScript = `
loadmodule "tm.so"
loadmodule "sipmsgops.so"
loadmodule "dialog.so"
route {
	if (has_totag()) { t_relay(); exit; }
	create_dialog();
	t_relay();
}
`

// relaySession makes a relay session for a call as rtpproxy_offer and
// rtpproxy_answer would (the answer only when toTag is given).
func relaySession(t *testing.T, callID, fromTag, toTag string) {
	t.Helper()
	ifs, err := rtprelay.ParseInterfaces("dlgtest/127.0.0.1:32400-32419", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := rtprelay.Default().NewProfile(rtprelay.ProfileConfig{Interfaces: ifs})
	if err != nil {
		t.Fatal(err)
	}
	sdp := func(port int) []byte {
		return fmt.Appendf(nil, "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\n", port)
	}
	if _, err := p.Process(&rtprelay.Request{Op: rtprelay.Offer, CallID: callID, FromTag: fromTag, Body: sdp(4000), TrustAddress: true}); err != nil {
		t.Fatal(err)
	}
	if toTag != "" {
		if _, err := p.Process(&rtprelay.Request{Op: rtprelay.Answer, CallID: callID, FromTag: fromTag, ToTag: toTag, Reply: true, Body: sdp(5000), TrustAddress: true}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { rtprelay.Default().Delete(callID, "", "") })
}

func hasMedia(callID string) bool {
	_, ok := rtprelay.Default().Lookup(callID, "")
	return ok
}

// A dialog that ends (BYE, failed INVITE, MI) releases its call's media.
func TestDialogEndReleasesMedia(t *testing.T) {
	fresh(t)
	uac := &fakeUAC{}
	old := tm.SetUAC(uac)
	defer tm.SetUAC(old)
	s := newSim(t, rtpScript)

	c := s.request(invite("rtp-bye", "a", "bob"))
	relaySession(t, "rtp-bye", "a", "b")
	c.reply(200, "b")
	s.request(inDialog("ACK", "rtp-bye", "a", "b", 1))
	if !hasMedia("rtp-bye") {
		t.Fatal("no media before the BYE")
	}
	s.request(inDialog("BYE", "rtp-bye", "a", "b", 2))
	if hasMedia("rtp-bye") {
		t.Error("media kept after the BYE")
	}

	c = s.request(invite("rtp-busy", "a", "bob"))
	relaySession(t, "rtp-busy", "a", "")
	c.reply(486, "b")
	if hasMedia("rtp-busy") {
		t.Error("media kept after a failed INVITE")
	}

	c = s.request(invite("rtp-mi", "a", "bob"))
	relaySession(t, "rtp-mi", "a", "b")
	c.reply(200, "b")
	if err := EndDialog("rtp-mi", ""); err != nil {
		t.Fatal(err)
	}
	if hasMedia("rtp-mi") {
		t.Error("media kept after dlg_end_dlg")
	}

	// another dialog's media (same Call-ID, other tags) is left alone
	relaySession(t, "rtp-same", "x", "y")
	c = s.request(invite("rtp-same", "p", "bob"))
	c.reply(200, "q")
	s.request(inDialog("BYE", "rtp-same", "p", "q", 2))
	if !hasMedia("rtp-same") {
		t.Error("another dialog's media was released")
	}
}

// The relay's end-call hook (media timeout, MI teardown) ends the dialog:
// BYE both ways, reason ReasonMediaTimeout.
func TestMediaTimeoutEndsDialog(t *testing.T) {
	fresh(t)
	uac := &fakeUAC{}
	old := tm.SetUAC(uac)
	defer tm.SetUAC(old)
	s := newSim(t, rtpScript)
	c := s.request(invite("rtp-to", "a", "bob"))
	relaySession(t, "rtp-to", "a", "b")
	c.reply(200, "b")
	d := Current(c.m)
	if n, hooked := rtprelay.Default().Teardown("rtp-to"); n != 1 || !hooked {
		t.Fatalf("teardown: %d sessions, hook %v", n, hooked)
	}
	deadline := time.Now().Add(2 * time.Second)
	for d.State() != StateDeleted && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	d.mu.Lock()
	reason := d.endReason
	d.mu.Unlock()
	if d.State() != StateDeleted || reason != ReasonMediaTimeout {
		t.Fatalf("state %d reason %q", d.State(), reason)
	}
	uac.mu.Lock()
	n := len(uac.reqs)
	uac.mu.Unlock()
	if n != 2 || uac.reqs[0].Method != "BYE" || uac.reqs[1].Method != "BYE" {
		t.Fatalf("%d requests sent", n)
	}
}

func TestTerminate(t *testing.T) {
	fresh(t)
	uac := &fakeUAC{}
	old := tm.SetUAC(uac)
	defer tm.SetUAC(old)
	s := newSim(t, rtpScript)
	if err := Terminate("nope", "a", "x", ""); !errors.Is(err, ErrNoDialog) {
		t.Errorf("unknown dialog: %v", err)
	}
	s.request(invite("term-early", "a", "bob"))
	if err := Terminate("term-early", "a", "x", ""); !errors.Is(err, ErrNotConfirmed) {
		t.Errorf("early dialog: %v", err)
	}
	c := s.request(invite("term", "a", "bob"))
	c.reply(200, "b")
	if Lookup("term", "b") != nil || Lookup("term", "a") != Current(c.m) {
		t.Fatal("Lookup by the caller's tag")
	}
	if err := Terminate("term", "a", "Custom", ""); err != nil {
		t.Fatal(err)
	}
	if Current(c.m).State() != StateDeleted || len(uac.reqs) != 2 {
		t.Fatalf("state %d, %d BYEs", Current(c.m).State(), len(uac.reqs))
	}
}
