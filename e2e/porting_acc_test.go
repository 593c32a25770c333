package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/modules/acc"
	"github.com/sipedge/sipedge/modules/dialog"
	"github.com/sipedge/sipedge/runtime/store"
)

// accScript is an OpenSIPS 3.x accounting proxy as operators write it:
// CDRs and missed calls to the database and to the log, record-routing so
// the BYE comes back through the proxy. Calls to 486 go to the busy UAS.
const accScript = `
socket = udp:127.0.0.1:%[1]d
log_level = 3

loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "dialog.so"
loadmodule "acc.so"

modparam("tm", "fr_timeout", 5)
modparam("acc", "db_url", "%[4]s")
modparam("acc", "log_level", 3)
modparam("acc", "extra_fields", "log: src_ip")

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
	if (is_method("INVITE")) {
		$acc_extra(src_ip) = $si;
		do_accounting("db|log", "cdr|missed");
	}
	record_route();
	if ($rU == "486")
		$du = "sip:127.0.0.1:%[3]d";
	else
		$du = "sip:127.0.0.1:%[2]d";
	t_relay();
}
`

// initDB creates a database with the tables ` + "`sipedge db init`" + ` makes.
func initDB(t *testing.T) string {
	t.Helper()
	url := "sqlite://" + filepath.Join(t.TempDir(), "acc.db")
	db, err := store.Create(url)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	return url
}

func queryRows(t *testing.T, url, q string) []string {
	t.Helper()
	db, err := store.Open(url)
	if err != nil {
		t.Fatal(err)
	}
	r, err := db.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cols, _ := r.Columns()
	var out []string
	for r.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := r.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			switch x := v.(type) {
			case []byte:
				parts[i] = string(x)
			case time.Time:
				parts[i] = x.Format("15:04:05")
			default:
				parts[i] = fmt.Sprint(v)
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	return out
}

// A call held 2 s through the proxy writes one CDR row with its duration;
// a call the UAS answers 486 writes one missed_calls row and no CDR.
func TestPortingAccCDR(t *testing.T) {
	needSipp(t)
	dialog.ForgetAll()
	t.Cleanup(dialog.ForgetAll)
	pp, u1, u2, a, b := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	url := initDB(t)
	p := startProxy(t, pp, fmt.Sprintf(accScript, pp, u1, u2, url))
	s := uas(t, "uas", "uas.xml", u1, 1)
	busy := uas(t, "busy", "uas_busy.xml", u2, 1)

	expectCalls(t, holdCalls(t, pp, a, 1, "1001", "2000", 2*time.Second), 1)
	c := uac(t, "uac_busy.xml", pp, b, 1, 1, "-key", "user", "1001", "-s", "486")
	expectCalls(t, c, 1)
	if code := s.wait(t, 15*time.Second); code != 0 {
		t.Errorf("sipp uas exit %d", code)
	}
	if code := busy.wait(t, 15*time.Second); code != 0 {
		t.Errorf("sipp busy uas exit %d", code)
	}
	waitFor(t, 5*time.Second, "the call's dialog to end", func() bool { return dialog.Count() == 0 })
	acc.Flush()

	rows := queryRows(t, url, "SELECT method, sip_code, sip_reason, duration, ms_duration, setuptime, to_tag != '', from_tag != '', callid != '' FROM acc")
	if len(rows) != 1 {
		t.Fatalf("acc rows: %q, want one CDR", rows)
	}
	f := strings.Split(rows[0], "|")
	if f[0] != "INVITE" || f[1] != "200" || f[2] != "OK" || f[6] != "1" || f[7] != "1" || f[8] != "1" {
		t.Errorf("CDR %q", rows[0])
	}
	var dur, ms int
	fmt.Sscan(f[3], &dur)
	fmt.Sscan(f[4], &ms)
	if dur < 2 || dur > 3 || ms < 1900 || ms > 3500 {
		t.Errorf("CDR duration %ds / %dms for a call held 2 s", dur, ms)
	}
	missed := queryRows(t, url, "SELECT method, sip_code, sip_reason FROM missed_calls")
	if len(missed) != 1 || missed[0] != "INVITE|486|Busy Here" {
		t.Errorf("missed_calls: %q", missed)
	}
	logs := p.logs.String()
	if n := strings.Count(logs, "ACC: call ended: "); n != 1 || !strings.Contains(logs, ";src_ip=127.0.0.1") {
		t.Errorf("%d CDR log lines:\n%s", n, logs)
	}
	if n := strings.Count(logs, "ACC: call missed: "); n != 1 {
		t.Errorf("%d missed-call log lines", n)
	}
}
