package dialog

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/scripttest"
	"github.com/sipedge/sipedge/runtime/store"
)

// seedScript is the seed talk's "Concurrent Call Counting using Dialog
// Module" and "Cached Categorisation List" code as written (route[] and
// onreply_route[] named, braces added), with the create_dialog() and
// t_relay() a working config needs around it.
const seedScript = `
loadmodule "tm.so"
loadmodule "sipmsgops.so"
loadmodule "sl.so"
loadmodule "dialog.so"
loadmodule "cached_local.so"

modparam("dialog", "log_profile_hash_size", 8)          # allows up to 256
modparam("dialog", "profiles_with_value", "concurrent")
modparam("cachedb_local", "cache_table_size", 10) # Allows over 1000 entries
%DB%

startup_route {
    # Create a cached list of Destination prefixes - e.g. Sierra Leone & Somalia
    cache_store("local", "+616", "HIGHRISK");
    cache_store("local", "+686", "HIGHRISK");
}

route {
    if (has_totag()) {
        t_relay();
        exit;
    }
    create_dialog();
    route(categorise);
    if ($var(numcalls) >= 2) {
        sl_send_reply(403, "Too many concurrent calls");
        exit;
    }
    t_on_reply("concurrent");
    t_relay();
}

route[categorise] {
    # Check destination number against cached list of prefixes - for example:
    $var(testval) = $(rU{s.substr,0,4});
    cache_fetch("local", "$var(testval)", $avp(retval));
    $var(compoundkey) = $au + $avp(retval);
    store_dlg_value("UserAccount", "$var(compoundkey)");
    set_dlg_flag("12");
    get_profile_size("concurrent", "$var(compoundkey)", "$var(numcalls)");
    xlog("L_INFO", "key=$var(compoundkey) calls=$var(numcalls)\n");
}

onreply_route[concurrent] {
    if ($rm=="INVITE" && status=="200" && is_dlg_flag_set("12")) {
        fetch_dlg_value("UserAccount", "$var(profvalue)");
        set_dlg_profile("concurrent", "$var(profvalue)");
        reset_dlg_flag("12");
        xlog("L_INFO", "profiled $var(profvalue) flag12=$DLG_flags\n");
    }
}
`

func seed(db string) string { return strings.Replace(seedScript, "%DB%", db, 1) }

func withAuth(inv, user string) string {
	return strings.Replace(inv, "Max-Forwards: 70\n",
		`Proxy-Authorization: Digest username="`+user+`", realm="example.com", nonce="n", uri="sip:x", response="r"`+"\nMax-Forwards: 70\n", 1)
}

func runStartup(t *testing.T, s *sim) {
	t.Helper()
	if r, ok := s.s.Prog.Lookup(ast.StartupRoute, ""); ok {
		m := s.msg(ast.StartupRoute)
		s.s.Image.Run(m, r)
	}
}

func TestSeedConcurrentCalls(t *testing.T) {
	fresh(t)
	s := newSim(t, seed(""))
	runStartup(t, s)
	p := LookupProfile("concurrent")
	if p == nil || !p.WithValue {
		t.Fatalf("profile concurrent not defined: %v", p)
	}
	var calls []*call
	// two HIGHRISK calls from 1001 are answered …
	for i := 0; i < 2; i++ {
		id := "seed-hr-" + string(rune('a'+i))
		c := s.request(withAuth(invite(id, "ft"+id, "+61612345"), "1001"))
		if !c.relayed {
			t.Fatalf("call %d not relayed: %v", i, s.rec.Lines)
		}
		c.reply(180, "tt"+id)
		m := c.reply(200, "tt"+id)
		_ = m
		calls = append(calls, c)
	}
	if n := p.Size("1001HIGHRISK", true); n != 2 {
		t.Fatalf("profile size = %d, want 2; log %v", n, s.rec.Lines)
	}
	// … flag 12 was reset in onreply_route after set_dlg_profile
	if f := Current(calls[0].m).Flags(); f&(1<<12) != 0 {
		t.Errorf("flag 12 still set: %b", f)
	}
	if v, _ := Current(calls[0].m).Value("UserAccount"); v != "1001HIGHRISK" {
		t.Errorf("UserAccount = %q", v)
	}
	// the third is refused
	c3 := s.request(withAuth(invite("seed-hr-c", "ftc", "+68699999"), "1001"))
	if c3.relayed || !strings.Contains(strings.Join(s.rec.Lines, "\n"), "reply 403 Too many concurrent calls") {
		t.Fatalf("third HIGHRISK call not refused: %v", s.rec.Lines)
	}
	// other destinations and other users pass
	c4 := s.request(withAuth(invite("seed-other", "ftd", "+4412345"), "1001"))
	c5 := s.request(withAuth(invite("seed-1002", "fte", "+61612345"), "1002"))
	if !c4.relayed || !c5.relayed {
		t.Fatalf("other calls refused: %v", s.rec.Lines)
	}
	// the refused call's dialog was dropped (not relayed)
	if n := Count(); n != 4 {
		t.Errorf("live dialogs = %d, want 4 (2 up + 2 ringing)", n)
	}
	// a BYE from the caller ends the first call: one slot frees
	s.request(inDialog("BYE", "seed-hr-a", "ftseed-hr-a", "ttseed-hr-a", 2))
	if n := p.Size("1001HIGHRISK", true); n != 1 {
		t.Fatalf("after BYE profile size = %d, want 1", n)
	}
	c6 := s.request(withAuth(invite("seed-hr-d", "ftf", "+61600000"), "1001"))
	if !c6.relayed {
		t.Fatalf("call after BYE refused: %v", s.rec.Lines)
	}
}

func TestStateMachineAndEvents(t *testing.T) {
	fresh(t)
	evs := watchEvents(t)
	s := newSim(t, `
loadmodule "tm.so"
loadmodule "sipmsgops.so"
loadmodule "dialog.so"
route {
	if (has_totag()) {
		xlog("L_INFO", "in-dialog $rm status=$DLG_status dir=$DLG_dir did=$DLG_did\n");
		t_relay();
		exit;
	}
	create_dialog();
	xlog("L_INFO", "new status=$DLG_status count=$DLG_count\n");
	t_relay();
}
`)
	c := s.request(invite("sm1", "f1", "bob"))
	c.reply(100, "")
	if st := Current(c.m).State(); st != StateUnconfirmed {
		t.Fatalf("after 100: %d", st)
	}
	c.reply(180, "t1")
	if st := Current(c.m).State(); st != StateEarly {
		t.Fatalf("after 180: %d", st)
	}
	c.reply(200, "t1")
	c.reply(200, "t1") // retransmission: no change
	d := Current(c.m)
	if st := d.State(); st != StateConfirmedNA {
		t.Fatalf("after 200: %d", st)
	}
	s.request(inDialog("ACK", "sm1", "f1", "t1", 1))
	if st := d.State(); st != StateConfirmed {
		t.Fatalf("after ACK: %d", st)
	}
	// BYE from the callee: upstream
	bye := strings.Replace(inDialog("BYE", "sm1", "t1", "f1", 5), "", "", 1)
	s.request(bye)
	if st := d.State(); st != StateDeleted {
		t.Fatalf("after BYE: %d", st)
	}
	if d.endReason != ReasonUpstreamBYE {
		t.Errorf("end reason %q", d.endReason)
	}
	log := strings.Join(s.rec.Lines, "\n")
	for _, want := range []string{"new status=1 count=1", "in-dialog ACK status=4 dir=DOWNSTREAM", "in-dialog BYE status=5 dir=UPSTREAM"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	var seq []string
	for _, e := range evs.named("E_DLG_STATE_CHANGED") {
		if e.Get("callid").AsString() == "sm1" {
			seq = append(seq, e.Get("old_state").String()+">"+e.Get("new_state").String())
		}
	}
	if got := strings.Join(seq, " "); got != "0>1 1>2 2>3 3>4 4>5" {
		t.Errorf("state events %q", got)
	}
	if Count() != 0 {
		t.Errorf("count %d", Count())
	}
}

func TestFailureAndNotRelayed(t *testing.T) {
	fresh(t)
	s := newSim(t, `
loadmodule "tm.so"
loadmodule "sipmsgops.so"
loadmodule "sl.so"
loadmodule "dialog.so"
modparam("dialog", "profiles_no_value", "outbound ; inbound/s")
route {
	create_dialog();
	set_dlg_profile("outbound");
	if ($rU == "reject") {
		sl_send_reply(403, "No");
		exit;
	}
	t_relay();
}
`)
	p := LookupProfile("outbound")
	c := s.request(invite("f1", "a", "bob"))
	if p.Size("", false) != 1 {
		t.Fatal("not counted")
	}
	c.reply(486, "x")
	if p.Size("", false) != 0 || Count() != 0 {
		t.Fatalf("486 left size %d count %d", p.Size("", false), Count())
	}
	s.request(invite("f2", "a", "reject"))
	if p.Size("", false) != 0 || Count() != 0 {
		t.Fatalf("stateless reject left size %d count %d", p.Size("", false), Count())
	}
	// CANCEL: sipgo answers 487 itself (res nil)
	c = s.request(invite("f3", "a", "bob"))
	c.reply(180, "y")
	tm.RunResponseOutHooks(c.mod, c.req, 487, nil)
	if p.Size("", false) != 0 || Count() != 0 {
		t.Fatalf("487 left size %d count %d", p.Size("", false), Count())
	}
}

func TestFlagsValuesPVars(t *testing.T) {
	fresh(t)
	s := newSim(t, `
loadmodule "tm.so"
loadmodule "sipmsgops.so"
loadmodule "dialog.so"
modparam("dialog", "profiles_with_value", "caller")
route {
	create_dialog("B");
	set_dlg_flag("3");
	set_dlg_flag("vip");
	if (is_dlg_flag_set("3")) xlog("L_INFO", "3 set\n");
	if (!test_and_set_dlg_flag("4", 1)) xlog("L_INFO", "4 was not 1\n");
	if (test_and_set_dlg_flag("4", 0)) xlog("L_INFO", "4 flipped on\n");
	if (is_dlg_flag_set("4")) xlog("L_INFO", "4 set\n");
	reset_dlg_flag("3");
	if (!is_dlg_flag_set("3")) xlog("L_INFO", "3 reset\n");
	store_dlg_value("account type", "prepaid");
	$dlg_val(src) = $si;
	fetch_dlg_value("account type", "$var(acc)");
	fetch_dlg_value("nothing", "$var(x)");
	if ($rc == -2) xlog("L_INFO", "missing value -2\n");
	xlog("L_INFO", "acc=$var(acc) src=$dlg_val(src) timeout=$DLG_timeout\n");
	$DLG_timeout = 60;
	set_dlg_profile("caller", "$fU");
	set_dlg_profile("caller", "$fU");
	get_profile_size("caller", "$fU", "$var(n)");
	get_profile_size("caller", , "$var(all)");
	if (is_in_profile("caller", "$fU")) xlog("L_INFO", "in caller n=$var(n) all=$var(all)\n");
	unset_dlg_profile("caller", "$fU");
	get_profile_size("caller", "$fU", "$var(n)");
	xlog("L_INFO", "after unset n=$var(n)\n");
	t_relay();
}
`)
	c := s.request(invite("fv1", "a", "bob"))
	log := strings.Join(s.rec.Lines, "\n")
	for _, want := range []string{"3 set", "4 was not 1", "4 flipped on", "4 set", "3 reset", "missing value -2",
		"acc=prepaid src=10.0.0.1 timeout=43200", "in caller n=2 all=2", "after unset n=1"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	d := Current(c.m)
	if d.cflags&FlagByeOnTimeout == 0 || d.timeout != 60 {
		t.Errorf("cflags %b timeout %d", d.cflags, d.timeout)
	}
}

func TestTimeoutSendsByes(t *testing.T) {
	fresh(t)
	uac := &fakeUAC{}
	old := tm.SetUAC(uac)
	defer tm.SetUAC(old)
	var clock atomic.Int64
	clock.Store(1_000_000)
	defer SetClock(clock.Load)()
	s := newSim(t, `
loadmodule "tm.so"
loadmodule "sipmsgops.so"
loadmodule "dialog.so"
modparam("dialog", "default_timeout", 30)
modparam("dialog", "profiles_no_value", "calls")
route {
	create_dialog("B");
	set_dlg_profile("calls");
	t_relay();
}
`)
	c := s.request(strings.Replace(invite("to1", "a", "bob"), "Max-Forwards", "Record-Route: <sip:10.9.9.9;lr>\nMax-Forwards", 1))
	c.reply(200, "b")
	d := Current(c.m)
	clock.Add(29)
	tmr.fire()
	if d.State() == StateDeleted {
		t.Fatal("ended early")
	}
	clock.Add(2)
	tmr.fire()
	if d.State() != StateDeleted || d.endReason != ReasonTimeout {
		t.Fatalf("state %d reason %q", d.State(), d.endReason)
	}
	if LookupProfile("calls").Size("", false) != 0 {
		t.Error("profile not released")
	}
	if len(uac.reqs) != 2 {
		t.Fatalf("%d BYEs sent", len(uac.reqs))
	}
	toCallee, toCaller := uac.reqs[0], uac.reqs[1]
	if toCallee.Recipient.Host != "10.0.0.9" || toCaller.Recipient.Host != "10.0.0.1" {
		t.Errorf("targets %s / %s", toCallee.Recipient.String(), toCaller.Recipient.String())
	}
	if r := toCaller.GetHeader("Route"); r == nil || !strings.Contains(r.Value(), "10.9.9.9") {
		t.Errorf("caller BYE route: %v", r)
	}
	if tag, _ := toCaller.From().Params.Get("tag"); tag != "b" {
		t.Errorf("caller BYE From tag %q", tag)
	}
	if toCallee.CSeq().SeqNo != 2 || toCallee.CallID().Value() != "to1" {
		t.Errorf("callee BYE %s", toCallee.String())
	}
}

func TestPersistenceAcrossRestart(t *testing.T) {
	fresh(t)
	dir := t.TempDir()
	url := "sqlite://" + filepath.Join(dir, "sipedge.db")
	db, err := store.Create(url)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	dbLines := `modparam("dialog", "db_mode", 1)
modparam("dialog", "db_url", "` + url + `")`
	s := newSim(t, seed(dbLines))
	runStartup(t, s)
	for _, id := range []string{"p1", "p2"} {
		c := s.request(withAuth(invite(id, "f"+id, "+61612345"), "1001"))
		c.reply(200, "t"+id)
		s.request(inDialog("ACK", id, "f"+id, "t"+id, 1))
	}
	// one call still ringing: not persisted, gone after the restart
	s.request(withAuth(invite("p3", "fp3", "+4400"), "1001")).reply(180, "x")
	if n := LookupProfile("concurrent").Size("1001HIGHRISK", true); n != 2 {
		t.Fatalf("size %d", n)
	}
	Flush()
	ForgetAll() // the process "exits"
	if n := LookupProfile("concurrent").Size("1001HIGHRISK", true); n != 0 || Count() != 0 {
		t.Fatalf("not forgotten: %d %d", n, Count())
	}
	s2 := newSim(t, seed(dbLines)) // "restart": load and activate the script again
	runStartup(t, s2)
	if n := LookupProfile("concurrent").Size("1001HIGHRISK", true); n != 2 || Count() != 2 {
		t.Fatalf("after restart size %d count %d, want 2 and 2", n, Count())
	}
	// the third call is still refused
	c := s2.request(withAuth(invite("p4", "fp4", "+61600000"), "1001"))
	if c.relayed {
		t.Fatal("call over the limit relayed after restart")
	}
	// values and flags came back; BYE matches the restored dialog
	s2.request(inDialog("BYE", "p1", "fp1", "tp1", 2))
	if n := LookupProfile("concurrent").Size("1001HIGHRISK", true); n != 1 {
		t.Fatalf("after BYE size %d", n)
	}
	var restored *Dialog
	ForEach(func(d *Dialog) bool { restored = d; return false })
	if v, _ := restored.Value("UserAccount"); v != "1001HIGHRISK" || restored.State() != StateConfirmed {
		t.Errorf("restored value %q state %d", v, restored.State())
	}
	Flush()
	rdb, _ := store.Open(url)
	rows, err := rdb.QueryWriter(t.Context(), "SELECT callid, profiles FROM dialog")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var cid, prof string
		rows.Scan(&cid, &prof)
		got = append(got, cid+"|"+strings.TrimSpace(prof))
	}
	rows.Close()
	if len(got) != 1 || got[0] != "p2|concurrent#1001HIGHRISK" {
		t.Errorf("dialog table: %q", got)
	}
}

func TestReloadKeepsDialogs(t *testing.T) {
	fresh(t)
	script := `
loadmodule "tm.so"
loadmodule "sipmsgops.so"
loadmodule "dialog.so"
modparam("dialog", "profiles_with_value", "caller")
route { create_dialog(); set_dlg_profile("caller", "$fU"); t_relay(); }
`
	s := newSim(t, script)
	c := s.request(invite("r1", "a", "bob"))
	c.reply(200, "b")
	s2 := newSim(t, strings.Replace(script, `"caller")`, `"caller;other")`, 1))
	if Count() != 1 || LookupProfile("caller").Size("1001", true) != 1 || LookupProfile("other") == nil {
		t.Fatalf("reload lost state: count %d", Count())
	}
	s2.request(inDialog("BYE", "r1", "a", "b", 2))
	if Count() != 0 || LookupProfile("caller").Size("1001", true) != 0 {
		t.Fatal("BYE after reload did not end the dialog")
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct{ script, want string }{
		{`loadmodule "dialog.so"
route { set_dlg_profile("nope"); }`, `no dialog profile "nope"`},
		{`loadmodule "dialog.so"
route { create_dialog("X"); }`, `unknown create_dialog flag`},
		{`loadmodule "dialog.so"
modparam("dialog", "db_mode", 1)
route { exit; }`, `needs a db_url`},
		{`loadmodule "dialog.so"
route { set_dlg_flag("40"); }`, `out of range`},
	} {
		_, err := scripttest.Execute(map[string][]byte{"script.cfg": []byte(tc.script), "in.sip": []byte(invite("e", "a", "b"))}, "", "")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s\nerror = %v, want %q", tc.script, err, tc.want)
		}
	}
}

func TestMI(t *testing.T) {
	fresh(t)
	uac := &fakeUAC{}
	old := tm.SetUAC(uac)
	defer tm.SetUAC(old)
	s := newSim(t, `
loadmodule "tm.so"
loadmodule "sipmsgops.so"
loadmodule "dialog.so"
modparam("dialog", "profiles_with_value", "caller")
route { create_dialog(); set_dlg_profile("caller", "$fU"); t_relay(); }
`)
	c := s.request(invite("mi1", "a", "bob"))
	c.reply(200, "b")
	s.request(invite("mi2", "a", "bob"))
	run := func(name string, p map[string]any) (any, error) {
		for _, cmd := range miCommands() {
			if cmd.Name == name {
				return cmd.Run(p)
			}
		}
		t.Fatalf("no MI %s", name)
		return nil, nil
	}
	res, _ := run("dlg_list", map[string]any{})
	if n := len(res.(map[string]any)["Dialogs"].([]map[string]any)); n != 2 {
		t.Errorf("dlg_list: %d dialogs", n)
	}
	res, _ = run("profile_get_size", map[string]any{"profile": "caller", "value": "1001"})
	if n := res.(map[string]any)["Profile"].(map[string]any)["count"]; n != int64(2) {
		t.Errorf("profile_get_size = %v", n)
	}
	res, _ = run("profile_list_dlgs", map[string]any{"profile": "caller"})
	if n := len(res.(map[string]any)["Dialogs"].([]map[string]any)); n != 2 {
		t.Errorf("profile_list_dlgs: %d", n)
	}
	if _, err := run("dlg_end_dlg", map[string]any{"dialog_id": "mi2"}); err == nil {
		t.Error("ending an early dialog should fail")
	}
	if _, err := run("dlg_end_dlg", map[string]any{"dialog_id": "mi1"}); err != nil {
		t.Errorf("dlg_end_dlg: %v", err)
	}
	if len(uac.reqs) != 2 || uac.reqs[0].Method != sip.BYE {
		t.Errorf("BYEs: %d", len(uac.reqs))
	}
	if Count() != 1 {
		t.Errorf("count %d", Count())
	}
	if _, err := run("dlg_end_dlg", map[string]any{"dialog_id": "nope"}); err == nil {
		t.Error("unknown dialog")
	}
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}
