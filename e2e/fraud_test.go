package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/modules/dialog"
	frauddetection "github.com/sipedge/sipedge/modules/fraud_detection"
	"github.com/sipedge/sipedge/runtime/store"
)

const fraudScript = `
socket = udp:127.0.0.1:%[1]d
log_level = 3

loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "dialog.so"
loadmodule "fraud_detection.so"

modparam("tm", "fr_timeout", 5)
modparam("dialog", "db_mode", 1)
modparam("dialog", "db_url", "%[3]s")
modparam("fraud_detection", "db_url", "%[3]s")

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
	check_fraud("$au", "$rU", 1);
	switch ($retcode) {
	case -2:
		xlog("L_ALERT", "fraud: $au to $rU refused\n");
		sl_send_reply(403, "Fraud suspected");
		exit;
	case -1:
		xlog("L_WARN", "fraud: $au to $rU warned\n");
		break;
	}
	record_route();
	$du = "sip:127.0.0.1:%[2]d";
	t_relay();
}

event_route[E_FRD_WARNING] {
	xlog("L_WARN", "E_FRD_WARNING param=$param(param) value=$param(value) threshold=$param(threshold) user=$param(user) number=$param(called_number) rule=$param(rule_id) profile=$param(profile_id)\n");
}

event_route[E_FRD_CRITICAL] {
	xlog("L_WARN", "E_FRD_CRITICAL param=$param(param) value=$param(value) threshold=$param(threshold) user=$param(user) number=$param(called_number) rule=$param(rule_id) profile=$param(profile_id)\n");
}
`

// fraudDB makes the rules: account calls to the HIGHRISK destination group
// (+616, +686) warn at 2 concurrent calls and are critical at 3; +44 is
// watched with no thresholds.
func fraudDB(t *testing.T) string {
	t.Helper()
	url := newDB(t)
	db, err := store.Open(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, q := range []string{
		`CREATE TABLE version (table_name CHAR(32) NOT NULL, table_version INTEGER DEFAULT 0 NOT NULL)`,
		`INSERT INTO version VALUES ('fraud_detection', 1)`,
		`CREATE TABLE fraud_detection (
			ruleid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, profileid INTEGER NOT NULL, prefix CHAR(64) NOT NULL,
			start_hour CHAR(5) DEFAULT '00:00' NOT NULL, end_hour CHAR(5) DEFAULT '23:59' NOT NULL,
			daysoftheweek CHAR(64) DEFAULT 'Mon-Sun' NOT NULL,
			cpm_warning INTEGER NOT NULL, cpm_critical INTEGER NOT NULL,
			call_duration_warning INTEGER NOT NULL, call_duration_critical INTEGER NOT NULL,
			total_calls_warning INTEGER NOT NULL, total_calls_critical INTEGER NOT NULL,
			concurrent_calls_warning INTEGER NOT NULL, concurrent_calls_critical INTEGER NOT NULL,
			sequential_calls_warning INTEGER NOT NULL, sequential_calls_critical INTEGER NOT NULL)`,
		`INSERT INTO fraud_detection VALUES (1, 1, 'grp:HIGHRISK', '00:00', '23:59', 'Mon-Sun', 0,0, 0,0, 0,0, 2,3, 0,0)`,
		`INSERT INTO fraud_detection VALUES (2, 1, '+44', '00:00', '23:59', 'Mon-Sun', 0,0, 0,0, 0,0, 0,0, 0,0)`,
		`CREATE TABLE fraud_dest_groups (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, groupname CHAR(64) NOT NULL, prefix CHAR(64) NOT NULL)`,
		`INSERT INTO fraud_dest_groups (groupname, prefix) VALUES ('HIGHRISK', '+616'), ('HIGHRISK', '+686')`,
	} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return url
}

func fraudStats(user, key string) frauddetection.Stats {
	st, _ := frauddetection.Lookup(user, key)
	return st
}

// check_fraud with a destination group: 1001's third concurrent HIGHRISK
// call is critical and refused, calls elsewhere pass, the counters (total
// and concurrent) survive a restart, and event_route gets the events with
// OpenSIPS's parameters.
func TestFraudConcurrentCalls(t *testing.T) {
	needSipp(t)
	dialog.ForgetAll()
	frauddetection.ForgetAll()
	t.Cleanup(func() { dialog.ForgetAll(); frauddetection.ForgetAll() })
	pp, u1, a, b, c, d, e := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	script := fmt.Sprintf(fraudScript, pp, u1, fraudDB(t))
	p := startProxy(t, pp, script)
	s := uas(t, "uas", "uas.xml", u1, 4)

	held := holdCalls(t, pp, a, 2, "1001", "+61612345", 8*time.Second)
	waitFor(t, 5*time.Second, "two HIGHRISK calls up", func() bool {
		return dialog.Count() == 2 && fraudStats("1001", "grp:HIGHRISK").Concurrent == 2
	})
	firstLogs := p.logs.String()
	refusedCall(t, pp, b, "1001", "+68611111")
	expectCalls(t, holdCalls(t, pp, c, 1, "1001", "+4420555", 200*time.Millisecond), 1)
	if st := fraudStats("1001", "grp:HIGHRISK"); st.Concurrent != 2 || st.Total != 3 {
		t.Fatalf("before the restart: %+v", st)
	}
	firstLogs = p.logs.String()

	p = restart(t, p, script)
	if st := fraudStats("1001", "grp:HIGHRISK"); st.Concurrent != 2 || st.Total != 3 {
		t.Fatalf("after the restart: %+v, want 2 concurrent and 3 total", st)
	}
	refusedCall(t, pp, d, "1001", "+61699999")
	expectCalls(t, held, 2)
	waitFor(t, 5*time.Second, "the held calls to end", func() bool {
		return fraudStats("1001", "grp:HIGHRISK").Concurrent == 0
	})
	expectCalls(t, holdCalls(t, pp, e, 1, "1001", "+61612345", 200*time.Millisecond), 1)
	if code := s.wait(t, 15*time.Second); code != 0 {
		t.Errorf("sipp uas exit %d", code)
	}
	if st := fraudStats("1001", "grp:HIGHRISK"); st.Total != 5 || st.Concurrent != 0 {
		t.Errorf("at the end: %+v, want 5 total, 0 concurrent", st)
	}
	if st := fraudStats("1001", "+44"); st.Total != 1 {
		t.Errorf("+44: %+v", st)
	}
	for _, want := range []string{
		"E_FRD_WARNING param=concurrent-calls value=2 threshold=2 user=1001 number=+61612345 rule=1 profile=1",
		"E_FRD_CRITICAL param=concurrent-calls value=3 threshold=3 user=1001 number=+68611111 rule=1 profile=1",
		"fraud: 1001 to +68611111 refused",
	} {
		if !strings.Contains(firstLogs, want) {
			t.Errorf("first process log lacks %q:\n%s", want, firstLogs)
		}
	}
	if logs := p.logs.String(); !strings.Contains(logs, "E_FRD_CRITICAL param=concurrent-calls value=3 threshold=3 user=1001 number=+61699999") {
		t.Errorf("second process log lacks the critical event:\n%s", logs)
	}
}
