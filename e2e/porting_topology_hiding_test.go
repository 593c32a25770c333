package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/modules/dialog"
)

// thScript hides each side of the call from the other (OpenSIPS 3.x
// topology_hiding with the dialog module): no Record-Route, so the ACK and
// BYE come to the proxy's Contact and are routed by topology_hiding_match.
const thScript = `
socket = udp:127.0.0.1:%[1]d
log_level = 3

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "dialog.so"
loadmodule "topology_hiding.so"

modparam("tm", "fr_timeout", 5)

route {
	if (has_totag()) {
		if (topology_hiding_match()) {
			xlog("L_INFO", "in-dialog $rm to $ru\n");
			t_relay();
			exit;
		}
		if (is_method("ACK") && t_check_trans())
			t_relay();
		exit;
	}
	topology_hiding("C");
	$du = "sip:127.0.0.1:%[2]d";
	t_relay();
}
`

// Calls through a topology hiding proxy complete: the UAC sends ACK and BYE
// to the proxy's Contact (the 200 has no Record-Route), and the proxy
// routes them to the UAS's Contact.
func TestPortingTopologyHiding(t *testing.T) {
	needSipp(t)
	dialog.ForgetAll()
	t.Cleanup(dialog.ForgetAll)
	pp, u1, a := freePort(t), freePort(t), freePort(t)
	p := startProxy(t, pp, fmt.Sprintf(thScript, pp, u1))
	s := uas(t, "uas", "uas.xml", u1, 2, "-trace_msg")
	expectCalls(t, uac(t, "uac.xml", pp, a, 2, 10, "-s", "2000"), 2)
	if code := s.wait(t, 15*time.Second); code != 0 {
		t.Errorf("sipp uas exit %d", code)
	}
	// what the UAS saw: nothing of the UAC's address, an encoded Call-ID
	seen := ""
	if m, _ := filepath.Glob(filepath.Join(s.cmd.Dir, "*_messages.log")); len(m) == 1 {
		seen = readFile(m[0])
	}
	if !strings.Contains(seen, "INVITE sip:") {
		t.Fatalf("no UAS message trace:\n%s", seen)
	}
	// (From and To are not topology: OpenSIPS leaves them to the uac module)
	uacAddr := fmt.Sprintf("127.0.0.1:%d", a)
	for _, line := range strings.Split(seen, "\n") {
		if (strings.HasPrefix(line, "Via:") || strings.HasPrefix(line, "Contact:") ||
			strings.HasPrefix(line, "Record-Route:") || strings.HasPrefix(line, "Route:")) && strings.Contains(line, uacAddr) {
			t.Errorf("the UAS saw the UAC's address: %s", line)
		}
	}
	if !strings.Contains(seen, "Call-ID: DLGCH_") {
		t.Errorf("the UAS saw the caller's Call-ID:\n%s", tail(seen, 40))
	}
	logs := p.logs.String()
	want := fmt.Sprintf("in-dialog BYE to sip:127.0.0.1:%d", u1)
	if n := strings.Count(logs, want); n != 2 {
		t.Errorf("%d BYEs routed to the UAS's Contact, want 2:\n%s", n, logs)
	}
	if n := strings.Count(logs, "in-dialog ACK to "); n != 2 {
		t.Errorf("%d ACKs routed by topology_hiding_match, want 2", n)
	}
}
