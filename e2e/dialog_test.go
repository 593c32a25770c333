package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/modules/dialog"
	frauddetection "github.com/sipedge/sipedge/modules/fraud_detection"
	"github.com/sipedge/sipedge/runtime/store"
)

// dialogScript is the seed talk's concurrent call counting (dialog
// profiles, the onreply_route with the legacy `status` keyword) over its
// cached categorisation list (cachedb_local), as written, inside a
// record-routing proxy: account $au may have `limit` calls up to HIGHRISK
// destinations; calls elsewhere are not limited. Dialogs are kept in
// SQLite (db_mode 1) so a restart keeps the counts.
const dialogScript = `
socket = udp:127.0.0.1:%[1]d
log_level = 3

loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "dialog.so"
loadmodule "cached_local.so"

modparam("tm", "fr_timeout", 5)
modparam("dialog", "log_profile_hash_size", 8)          # allows up to 256
modparam("dialog", "profiles_with_value", "concurrent")
modparam("dialog", "db_mode", 1)
modparam("dialog", "db_url", "%[3]s")
modparam("cachedb_local", "cache_table_size", 10) # Allows over 1000 entries

startup_route {
    # Create a cached list of Destination prefixes - e.g. Sierra Leone & Somalia
    cache_store("local", "+616", "HIGHRISK");
    cache_store("local", "+686", "HIGHRISK");
}

route {
	if (has_totag()) {
		if (loose_route()) {
			t_relay();
			exit;
		}
		if (is_method("ACK") && t_check_trans())
			t_relay();
		exit;
	}
	t_check_trans();
	create_dialog();
	route(limit);
	record_route();
	$du = "sip:127.0.0.1:%[2]d";
	t_on_reply("concurrent");
	t_relay();
}

route[limit] {
    # Check destination number against cached list of prefixes - for example:
    $var(testval) = $(rU{s.substr,0,4});
    cache_fetch("local", "$var(testval)", $avp(retval));
    $var(compoundkey) = $au + $avp(retval);
    store_dlg_value("UserAccount", "$var(compoundkey)");
    set_dlg_flag("12");
    get_profile_size("concurrent", "$var(compoundkey)", "$var(numcalls)");
    # Test if number of concurrent calls is within permitted limit..
    if ($avp(retval) == "HIGHRISK" && $var(numcalls) >= %[4]d) {
        xlog("L_WARN", "refused: $au has $var(numcalls) calls to $avp(retval)\n");
        sl_send_reply(403, "Too many concurrent calls");
        exit;
    }
}

onreply_route[concurrent] {
    if ($rm=="INVITE" && status=="200" && is_dlg_flag_set("12")) {
        fetch_dlg_value("UserAccount", "$var(profvalue)");
        set_dlg_profile("concurrent", "$var(profvalue)");
        reset_dlg_flag("12");
    }
}

event_route[E_DLG_STATE_CHANGED] {
    if ($param(new_state) == 5) {
        xlog("L_INFO", "dialog ended: callid=$param(callid) old_state=$param(old_state)\n");
        # a script event of our own, raised from an event route
        $avp(name) = "callid";
        $avp(val) = $param(callid);
        raise_event("E_CALL_ENDED", $avp(name), $avp(val));
    }
}

event_route[E_CALL_ENDED] {
    xlog("L_INFO", "E_CALL_ENDED callid=$param(callid)\n");
}
`

// newDB creates an empty SQLite database file and returns its db_url.
func newDB(t *testing.T) string {
	t.Helper()
	url := "sqlite://" + filepath.Join(t.TempDir(), "sipedge.db")
	if _, err := store.Create(url); err != nil {
		t.Fatal(err)
	}
	return url
}

// restart stops a proxy and drops what a process exit loses (the dialog
// and fraud state in memory), then starts the same script on the same port.
func restart(t *testing.T, p *proxy, script string) *proxy {
	t.Helper()
	p.srv.Close()
	frauddetection.ForgetAll() // flushes its counters first: the handle is shared
	dialog.ForgetAll()
	time.Sleep(100 * time.Millisecond)
	return startProxy(t, p.port, script)
}

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// holdCalls runs `calls` calls from account user to number, each held
// for hold before the BYE.
func holdCalls(t *testing.T, pp, port, calls int, user, number string, hold time.Duration) *sipp {
	return uac(t, "uac_hold.xml", pp, port, calls, 10, "-key", "user", user, "-s", number,
		"-d", fmt.Sprint(hold.Milliseconds()), "-l", fmt.Sprint(calls))
}

// refusedCall expects one call from user to number to be refused with 403.
func refusedCall(t *testing.T, pp, port int, user, number string) {
	t.Helper()
	c := uac(t, "uac_refused.xml", pp, port, 1, 1, "-key", "user", user, "-s", number)
	expectCalls(t, c, 1)
}

func profileSize(v string) int64 {
	p := dialog.LookupProfile("concurrent")
	if p == nil {
		return -1
	}
	return p.Size(v, true)
}

// Account 1001 may have 2 calls up to HIGHRISK destinations: the third is
// refused while calls elsewhere pass; a restart in the middle keeps the
// count (dialogs reloaded from SQLite), the BYEs of the calls set up before
// the restart end them through the new process, and event_route sees
// every dialog end.
func TestDialogConcurrentLimit(t *testing.T) {
	needSipp(t)
	dialog.ForgetAll()
	t.Cleanup(dialog.ForgetAll)
	pp, u1, a, b, c, d, e := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	script := fmt.Sprintf(dialogScript, pp, u1, newDB(t), 2)
	p := startProxy(t, pp, script)
	s := uas(t, "uas", "uas.xml", u1, 4)

	// two HIGHRISK calls held for 8 s
	held := holdCalls(t, pp, a, 2, "1001", "+61612345", 8*time.Second)
	waitFor(t, 5*time.Second, "two HIGHRISK calls up", func() bool { return profileSize("1001HIGHRISK") == 2 })

	// the third HIGHRISK call (another HIGHRISK prefix) is refused …
	refusedCall(t, pp, b, "1001", "+68611111")
	// … a call to another destination passes
	expectCalls(t, holdCalls(t, pp, c, 1, "1001", "+4420555", 200*time.Millisecond), 1)

	// restart in the middle of the held calls
	p = restart(t, p, script)
	if n := profileSize("1001HIGHRISK"); n != 2 {
		t.Fatalf("after the restart the profile counts %d calls, want 2", n)
	}
	refusedCall(t, pp, d, "1001", "+61699999")

	// the held calls end (their BYEs go through the new process)
	expectCalls(t, held, 2)
	waitFor(t, 5*time.Second, "the held calls to end", func() bool { return profileSize("1001HIGHRISK") == 0 })
	// and a HIGHRISK call passes again
	expectCalls(t, holdCalls(t, pp, e, 1, "1001", "+61612345", 200*time.Millisecond), 1)
	if code := s.wait(t, 15*time.Second); code != 0 {
		t.Errorf("sipp uas exit %d", code)
	}
	waitFor(t, 5*time.Second, "all dialogs to end", func() bool { return dialog.Count() == 0 })

	logs := p.logs.String()
	if n := strings.Count(logs, "refused: 1001 has 2 calls to HIGHRISK"); n != 1 {
		t.Errorf("second process logged %d refusals, want 1", n)
	}
	// the new process saw the 2 restored calls and the last one end, all
	// confirmed and ACKed (state 4) when their BYE came
	if n := strings.Count(logs, "old_state=4\n"); n != 3 {
		t.Errorf("event_route logged %d ends of answered calls, want 3:\n%s", n, logs)
	}
	if n := strings.Count(logs, "dialog ended:"); n != 4 { // + the refused one
		t.Errorf("event_route logged %d dialog ends, want 4:\n%s", n, logs)
	}
	if n := strings.Count(logs, "E_CALL_ENDED callid="); n != 4 {
		t.Errorf("event_route[E_CALL_ENDED] ran %d times, want 4:\n%s", n, logs)
	}
}
