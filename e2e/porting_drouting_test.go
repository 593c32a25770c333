package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/runtime/store"
)

// drScript is an OpenSIPS 3.x dynamic routing proxy: the dialled number
// picks a rule, the rule's gateway replaces the R-URI host, and a failure
// moves on to the next gateway of the rule.
const drScript = `
socket = udp:127.0.0.1:%[1]d
log_level = 3

loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "drouting.so"

modparam("tm", "fr_timeout", 5)
modparam("drouting", "db_url", "%[2]s")
modparam("drouting", "gw_id_avp", "$avp(gw_id)")

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
	if (!do_routing(0)) {
		sl_send_reply(404, "No route");
		exit;
	}
	xlog("L_INFO", "$rU routed to $avp(gw_id) as $ru\n");
	record_route();
	t_on_failure("next_gw");
	t_relay();
}

failure_route[next_gw] {
	if (t_check_status("486|5[0-9][0-9]") && use_next_gw()) {
		xlog("L_INFO", "failover to $avp(gw_id) as $ru\n");
		t_on_failure("next_gw");
		t_relay();
	}
}
`

// Calls to 1… go to the first UAS, calls to 2… to the second (with the
// gateway's strip and prefix applied), calls to 3… try a busy gateway first
// and fail over to the second UAS.
func TestPortingDroutingByPrefix(t *testing.T) {
	needSipp(t)
	pp, u1, u2, u3, a, b, c := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	url := initDB(t)
	db, err := store.Open(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO dr_gateways (gwid, type, address, strip, pri_prefix) VALUES ('uas1', 1, '127.0.0.1:%d', 0, '')`, u1),
		fmt.Sprintf(`INSERT INTO dr_gateways (gwid, type, address, strip, pri_prefix) VALUES ('uas2', 1, 'sip:127.0.0.1:%d', 1, '49')`, u2),
		fmt.Sprintf(`INSERT INTO dr_gateways (gwid, type, address, strip, pri_prefix) VALUES ('busy', 1, '127.0.0.1:%d', 0, '')`, u3),
		`INSERT INTO dr_rules (groupid, prefix, priority, gwlist) VALUES ('0', '1', 0, 'uas1')`,
		`INSERT INTO dr_rules (groupid, prefix, priority, gwlist) VALUES ('0', '2', 0, 'uas2')`,
		`INSERT INTO dr_rules (groupid, prefix, priority, gwlist) VALUES ('0', '3', 0, 'busy,uas2')`,
	} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	p := startProxy(t, pp, fmt.Sprintf(drScript, pp, url))
	s1 := uas(t, "uas1", "uas.xml", u1, 2)
	s2 := uas(t, "uas2", "uas.xml", u2, 3)
	s3 := uas(t, "busy", "uas_busy.xml", u3, 1)

	expectCalls(t, uac(t, "uac.xml", pp, a, 2, 10, "-s", "1000"), 2)
	expectCalls(t, uac(t, "uac.xml", pp, b, 2, 10, "-s", "2000"), 2)
	expectCalls(t, uac(t, "uac.xml", pp, c, 1, 1, "-s", "3000"), 1)
	for _, s := range []*sipp{s1, s2, s3} {
		if code := s.wait(t, 15*time.Second); code != 0 {
			t.Errorf("sipp %s exit %d (each UAS must get exactly its calls)", s.name, code)
		}
	}
	logs := p.logs.String()
	for _, want := range []string{
		fmt.Sprintf("1000 routed to uas1 as sip:1000@127.0.0.1:%d", u1),
		fmt.Sprintf("49000 routed to uas2 as sip:49000@127.0.0.1:%d", u2), // $rU is the new R-URI's user
		fmt.Sprintf("3000 routed to busy as sip:3000@127.0.0.1:%d", u3),
		fmt.Sprintf("failover to uas2 as sip:49000@127.0.0.1:%d", u2),
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}
