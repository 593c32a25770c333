package drouting

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/internal/modtest"
	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/syntax"
	"github.com/sipedge/sipedge/modules"
	_ "github.com/sipedge/sipedge/modules/core"
	"github.com/sipedge/sipedge/runtime/engine"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/scripttest"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

// newDB creates the schema with the given statements.
func newDB(t testing.TB, stmts ...string) string {
	t.Helper()
	url := "sqlite://" + filepath.Join(t.TempDir(), "dr.db")
	db, err := store.Create(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	if err := db.Init(ctx); err != nil {
		t.Fatal(err)
	}
	for _, q := range stmts {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return url
}

func gwSQL(id, addr string, typ, strip int, pri string) string {
	return fmt.Sprintf(`INSERT INTO dr_gateways (gwid, type, address, strip, pri_prefix) VALUES ('%s', %d, '%s', %d, '%s')`, id, typ, addr, strip, pri)
}

func ruleSQL(groups, prefix string, prio int, gwlist, extra string) string {
	if extra == "" {
		extra = "NULL, 'N', NULL"
	}
	return fmt.Sprintf(`INSERT INTO dr_rules (groupid, prefix, priority, gwlist, timerec, sort_alg, attrs) VALUES ('%s', '%s', %d, '%s', %s)`,
		groups, prefix, prio, gwlist, extra)
}

func setup(t testing.TB, url string, params map[string]string) {
	t.Helper()
	info := modules.Lookup(Name)
	p := modules.Params{}
	for _, spec := range info.Params {
		if !spec.Default.IsNull() {
			p[spec.Name] = []value.Value{spec.Default}
		}
	}
	p["db_url"] = []value.Value{value.S(url)}
	for k, v := range params {
		p[k] = []value.Value{value.S(v)}
	}
	apply, err := info.Configure(p)
	if err != nil {
		t.Fatalf("configure: %v", err)
	}
	apply()
	t.Cleanup(func() { live.Store(nil); pending.Store(nil); cur.Store(nil) })
}

func inviteTo(user, from string) string {
	return "INVITE sip:" + user + "@127.0.0.1;user=phone SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n" +
		"Max-Forwards: 70\r\n" +
		"To: <sip:" + user + "@127.0.0.1>\r\n" +
		"From: <sip:" + from + ">;tag=1928301774\r\n" +
		"Call-ID: a84b4c76e66710@pc33.example.org\r\n" +
		"CSeq: 314159 INVITE\r\n" +
		"Content-Length: 0\r\n\r\n"
}

func TestLongestPrefixAndFailover(t *testing.T) {
	url := newDB(t,
		gwSQL("gw1", "10.0.0.1:5060", 1, 0, ""),
		gwSQL("gw2", "sip:10.0.0.2:5070", 1, 2, "00"),
		gwSQL("gw3", "10.0.0.3;transport=tcp", 2, 0, ""),
		gwSQL("gw4", "10.0.0.4", 2, 0, ""),
		`INSERT INTO dr_carriers (carrierid, gwlist, flags) VALUES ('cr1', 'gw3,gw4', 0)`,
		`INSERT INTO dr_carriers (carrierid, gwlist, flags) VALUES ('first', 'gw4,gw3', 2)`,
		ruleSQL("0", "4", 0, "gw1", ""),
		ruleSQL("0,1", "44", 0, "gw2,#cr1", `NULL, 'N', 'uk'`),
		ruleSQL("0", "49", 5, "#first", ""),
		ruleSQL("0", "49", 1, "gw1", ""),
		ruleSQL("0", "", 0, "gw4", ""), // default rule
	)
	setup(t, url, nil)
	m, _ := modtest.NewMsg(t, inviteTo("44201234", "alice@example.com"))
	rattrs := &modtest.Recorder{Name: "var"}
	if rc := modtest.Call(t, Name, m, "do_routing", 0, "", "", rattrs.Ref()); rc != 1 {
		t.Fatalf("do_routing: %d", rc)
	}
	// gw2: strip 2, prefix 00, its host and port, the URI's params kept
	if got := m.Req.Recipient.String(); got != "sip:00201234@10.0.0.2:5070;user=phone" {
		t.Errorf("R-URI %s", got)
	}
	if len(rattrs.Vals) != 1 || rattrs.Vals[0].AsString() != "uk" {
		t.Errorf("rule attrs %v", rattrs.Vals)
	}
	// failover through the carrier's gateways, in order
	for _, want := range []string{"sip:44201234@10.0.0.3;user=phone;transport=tcp", "sip:44201234@10.0.0.4;user=phone"} {
		if rc := modtest.Call(t, Name, m, "use_next_gw"); rc != 1 || m.Req.Recipient.String() != want {
			t.Errorf("use_next_gw: %d %s, want %s", rc, m.Req.Recipient.String(), want)
		}
	}
	if rc := modtest.Call(t, Name, m, "use_next_gw"); rc != -1 {
		t.Errorf("use_next_gw past the end: %d", rc)
	}

	// the higher priority wins; a carrier with flag 2 gives its first gw only
	m, _ = modtest.NewMsg(t, inviteTo("4930", "alice@example.com"))
	if rc := modtest.Call(t, Name, m, "do_routing", 0); rc != 1 || m.Req.Recipient.Host != "10.0.0.4" {
		t.Errorf("49: %d %s", rc, m.Req.Recipient.String())
	}
	if rc := modtest.Call(t, Name, m, "use_next_gw"); rc != -1 {
		t.Errorf("first-only carrier gave another gateway: %s", m.Req.Recipient.String())
	}
	// 4 matches the shorter prefix; 5 has no prefix: the default rule
	for number, host := range map[string]string{"4711": "10.0.0.1", "5555": "10.0.0.4"} {
		m, _ = modtest.NewMsg(t, inviteTo(number, "alice@example.com"))
		if rc := modtest.Call(t, Name, m, "do_routing", 0); rc != 1 || m.Req.Recipient.Host != host {
			t.Errorf("%s: %d %s", number, rc, m.Req.Recipient.String())
		}
	}
	// strict length: only a rule for the whole number
	m, _ = modtest.NewMsg(t, inviteTo("4711", "alice@example.com"))
	if rc := modtest.Call(t, Name, m, "do_routing", 0, "L"); rc != -1 {
		t.Errorf("L matched a prefix: %d", rc)
	}
	// check only: the R-URI stays
	m, _ = modtest.NewMsg(t, inviteTo("4711", "alice@example.com"))
	if rc := modtest.Call(t, Name, m, "do_routing", 0, "C"); rc != 1 || m.Req.Recipient.Host != "127.0.0.1" {
		t.Errorf("C: %d %s", rc, m.Req.Recipient.String())
	}
	// group 1 has only the 44 rule
	m, _ = modtest.NewMsg(t, inviteTo("4711", "alice@example.com"))
	if rc := modtest.Call(t, Name, m, "do_routing", 1); rc != -1 {
		t.Errorf("group 1: %d %s", rc, m.Req.Recipient.String())
	}
	// whitelist: only gw4 may be used
	m, _ = modtest.NewMsg(t, inviteTo("44201234", "alice@example.com"))
	if rc := modtest.Call(t, Name, m, "do_routing", 0, "", "#cr1"); rc != 1 || m.Req.Recipient.Host != "10.0.0.3" {
		t.Errorf("whitelist: %d %s", rc, m.Req.Recipient.String())
	}
	// a non-digit number matches no prefix: the default rule
	m, _ = modtest.NewMsg(t, inviteTo("alice", "alice@example.com"))
	if rc := modtest.Call(t, Name, m, "do_routing", 0); rc != 1 || m.Req.Recipient.Host != "10.0.0.4" {
		t.Errorf("alice: %d %s", rc, m.Req.Recipient.String())
	}
}

func TestRuleFallback(t *testing.T) {
	url := newDB(t,
		gwSQL("a", "10.0.0.1", 0, 0, ""),
		gwSQL("b", "10.0.0.2", 0, 0, ""),
		gwSQL("c", "10.0.0.3", 0, 0, ""),
		ruleSQL("0", "12", 9, "a", ""),
		ruleSQL("0", "12", 1, "b", ""),
		ruleSQL("0", "1", 0, "c", ""),
	)
	setup(t, url, nil)
	m, _ := modtest.NewMsg(t, inviteTo("1234", "x@y"))
	if rc := modtest.Call(t, Name, m, "do_routing", 0, "F"); rc != 1 || m.Req.Recipient.Host != "10.0.0.1" {
		t.Fatalf("do_routing: %d %s", rc, m.Req.Recipient.String())
	}
	var got []string
	for modtest.Call(t, Name, m, "use_next_gw") == 1 {
		got = append(got, m.Req.Recipient.Host)
	}
	if strings.Join(got, ",") != "10.0.0.2,10.0.0.3" {
		t.Errorf("fallback order %v", got)
	}
	// without F the first rule is all there is
	m, _ = modtest.NewMsg(t, inviteTo("1234", "x@y"))
	modtest.Call(t, Name, m, "do_routing", 0)
	if rc := modtest.Call(t, Name, m, "use_next_gw"); rc != -1 {
		t.Errorf("no fallback without F: %s", m.Req.Recipient.String())
	}
}

func TestGroupsStatesAndWeights(t *testing.T) {
	url := newDB(t,
		gwSQL("a", "10.0.0.1", 0, 0, ""),
		gwSQL("b", "10.0.0.2", 0, 0, ""),
		`INSERT INTO dr_groups (username, domain, groupid) VALUES ('alice', 'example.com', 7)`,
		ruleSQL("7", "1", 0, "a,b", ""),
		ruleSQL("8", "1", 0, "a=0,b=5", `NULL, 'W', NULL`),
	)
	setup(t, url, nil)
	m, _ := modtest.NewMsg(t, inviteTo("100", "alice@example.com"))
	if rc := modtest.Call(t, Name, m, "do_routing"); rc != 1 || m.Req.Recipient.Host != "10.0.0.1" {
		t.Errorf("group from dr_groups: %d %s", rc, m.Req.Recipient.String())
	}
	m, _ = modtest.NewMsg(t, inviteTo("100", "bob@example.com"))
	if rc := modtest.Call(t, Name, m, "do_routing"); rc != -1 {
		t.Errorf("no group and no default_group: %d", rc)
	}
	// a gateway disabled over MI is skipped
	gwStatus := findMI(t, "dr_gw_status")
	if _, err := gwStatus(map[string]any{"gw_id": "a", "status": "0"}); err != nil {
		t.Fatal(err)
	}
	if res, _ := gwStatus(map[string]any{"gw_id": "a"}); fmt.Sprint(res) != "map[State:Disabled MI]" {
		t.Errorf("state %v", res)
	}
	m, _ = modtest.NewMsg(t, inviteTo("100", "alice@example.com"))
	if rc := modtest.Call(t, Name, m, "do_routing"); rc != 1 || m.Req.Recipient.Host != "10.0.0.2" {
		t.Errorf("disabled gw used: %s", m.Req.Recipient.String())
	}
	// dr_disable on the current destination
	if rc := modtest.Call(t, Name, m, "dr_disable"); rc != 1 {
		t.Errorf("dr_disable: %d", rc)
	}
	m, _ = modtest.NewMsg(t, inviteTo("100", "alice@example.com"))
	if rc := modtest.Call(t, Name, m, "do_routing"); rc != -1 {
		t.Errorf("all gateways disabled: %d %s", rc, m.Req.Recipient.String())
	}
	gwStatus(map[string]any{"gw_id": "a", "status": "1"})
	gwStatus(map[string]any{"gw_id": "b", "status": "1"})
	// a reload keeps the states set at run time
	if _, err := findMI(t, "dr_reload")(map[string]any{}); err != nil {
		t.Fatal(err)
	}
	// weights: a weight 0 gateway never comes first
	for i := 0; i < 50; i++ {
		m, _ = modtest.NewMsg(t, inviteTo("100", "x@y"))
		if rc := modtest.Call(t, Name, m, "do_routing", 8); rc != 1 || m.Req.Recipient.Host != "10.0.0.2" {
			t.Fatalf("weighted: %d %s", rc, m.Req.Recipient.String())
		}
	}
	// weightOrder spreads by weight
	counts := map[int]int{}
	for i := 0; i < 3000; i++ {
		counts[weightOrder([]int{1, 2})[0]]++
	}
	if counts[1] < 1700 || counts[1] > 2300 {
		t.Errorf("weight 2 of 3 came first %d/3000 times", counts[1])
	}
}

func TestGatewayMatching(t *testing.T) {
	url := newDB(t,
		gwSQL("pstn", "10.1.1.1:5080", 3, 1, "+"),
		gwSQL("any", "10.1.1.2", 4, 0, ""),
		`INSERT INTO dr_carriers (carrierid, gwlist, attrs) VALUES ('c', 'pstn', 'carrier-attrs')`,
		`UPDATE dr_gateways SET attrs = 'pstn-attrs' WHERE gwid = 'pstn'`,
	)
	setup(t, url, map[string]string{"gw_id_avp": "$avp(gw)"})
	from := func(ip string, port int) *msgctx.Msg {
		m, _ := modtest.NewMsg(t, inviteTo("0123", "x@y"))
		m.Src = msgctx.Addr{IP: ip, Port: port, Proto: "udp"}
		return m
	}
	if rc := modtest.Call(t, Name, from("10.1.1.1", 5080), "is_from_gw"); rc != 1 {
		t.Errorf("is_from_gw: %d", rc)
	}
	if rc := modtest.Call(t, Name, from("10.1.1.1", 5060), "is_from_gw"); rc != -1 {
		t.Errorf("is_from_gw on another port: %d", rc)
	}
	if rc := modtest.Call(t, Name, from("10.1.1.1", 5060), "is_from_gw", -1, "n"); rc != 1 {
		t.Errorf("is_from_gw with n: %d", rc)
	}
	if rc := modtest.Call(t, Name, from("10.1.1.2", 1234), "is_from_gw", 3); rc != -1 {
		t.Errorf("is_from_gw of type 3: %d", rc)
	}
	m := from("10.1.1.1", 5080)
	ga, ca := &modtest.Recorder{Name: "var"}, &modtest.Recorder{Name: "var"}
	if rc := modtest.Call(t, Name, m, "is_from_gw", 3, "spc", ga.Ref(), ca.Ref()); rc != 1 || m.Req.Recipient.User != "+123" {
		t.Errorf("is_from_gw sp: %d %s", rc, m.Req.Recipient.User)
	}
	if len(ga.Vals) != 1 || ga.Vals[0].AsString() != "pstn-attrs" || len(ca.Vals) != 1 || ca.Vals[0].AsString() != "carrier-attrs" {
		t.Errorf("attrs %v %v", ga.Vals, ca.Vals)
	}
	// goes_to_gw: $du, else the R-URI; no port in the URI matches any
	m, _ = modtest.NewMsg(t, inviteTo("1", "x@y"))
	m.DstURI = "sip:10.1.1.1:5080"
	if rc := modtest.Call(t, Name, m, "goes_to_gw", 3); rc != 1 {
		t.Errorf("goes_to_gw $du: %d", rc)
	}
	m, _ = modtest.NewMsg(t, strings.Replace(inviteTo("1", "x@y"), "@127.0.0.1;user=phone", "@10.1.1.2", 1))
	if rc := modtest.Call(t, Name, m, "goes_to_gw"); rc != 1 {
		t.Errorf("goes_to_gw R-URI: %d", rc)
	}
	if rc := modtest.Call(t, Name, m, "dr_is_gw", "sip:bob@10.1.1.1:5080"); rc != 1 {
		t.Errorf("dr_is_gw: %d", rc)
	}
	if rc := modtest.Call(t, Name, m, "dr_is_gw", "sip:bob@10.9.9.9"); rc != -1 {
		t.Errorf("dr_is_gw other: %d", rc)
	}
}

func TestTimerecRules(t *testing.T) {
	url := newDB(t,
		gwSQL("day", "10.0.0.1", 0, 0, ""),
		gwSQL("night", "10.0.0.2", 0, 0, ""),
		ruleSQL("0", "1", 9, "day", `'20240101T080000|PT10H|weekly|||MO,TU,WE,TH,FR', 'N', NULL`),
		ruleSQL("0", "1", 1, "night", ""),
	)
	setup(t, url, nil)
	old := clock
	t.Cleanup(func() { clock = old })
	for at, host := range map[time.Time]string{
		time.Date(2024, 3, 5, 9, 0, 0, 0, time.Local):  "10.0.0.1",
		time.Date(2024, 3, 5, 20, 0, 0, 0, time.Local): "10.0.0.2",
	} {
		clock = func() time.Time { return at }
		m, _ := modtest.NewMsg(t, inviteTo("100", "x@y"))
		if rc := modtest.Call(t, Name, m, "do_routing", 0); rc != 1 || m.Req.Recipient.Host != host {
			t.Errorf("%s: %d %s", at, rc, m.Req.Recipient.String())
		}
	}
}

// A script reads the gateway AVPs, as configured by modparams.
func TestScriptAVPs(t *testing.T) {
	url := newDB(t,
		gwSQL("gwA", "10.0.0.1", 0, 0, "9"),
		gwSQL("gwB", "10.0.0.2", 0, 0, ""),
		ruleSQL("0", "1", 0, "gwA,gwB", `NULL, 'N', 'rule-attrs'`),
	)
	script := `loadmodule "drouting.so"
modparam("drouting", "db_url", "` + url + `")
modparam("drouting", "gw_id_avp", "$avp(gw_id)")
modparam("drouting", "gw_priprefix_avp", "$avp(pri)")
modparam("drouting", "rule_id_avp", "$avp(rule)")
route {
	if (do_routing(0, , , $var(ra), $var(ga))) {
		xlog("gw=$avp(gw_id) all=$(avp(gw_id)[*]) pri=$avp(pri) rule=$avp(rule) ra=$var(ra) ru=$ru\n");
		if (use_next_gw())
			xlog("next gw=$avp(gw_id) ru=$ru\n");
	}
}`
	s, err := engine.Load("s.cfg", syntax.Options{ReadFile: func(string) ([]byte, error) { return []byte(script), nil }})
	if err != nil {
		t.Fatal(err)
	}
	s.Activate()
	t.Cleanup(func() { live.Store(nil); pending.Store(nil); cur.Store(nil) })
	rec := &scripttest.Recorder{}
	m := &msgctx.Msg{}
	m.Reset(s.Image.NumVars(), s.Image.NumAVPs())
	m.Kind, m.Host = ast.RequestRoute, rec
	m.Req = modtest.ParseReq(t, inviteTo("123", "x@y"))
	r, _ := s.Prog.Lookup(ast.RequestRoute, "")
	s.Image.Run(m, r)
	out := strings.Join(rec.Lines, "\n")
	for _, want := range []string{"gw=gwA all=gwA, gwB pri=9 rule=1 ra=rule-attrs ru=sip:9123@10.0.0.1;user=phone",
		"next gw=gwB ru=sip:123@10.0.0.2;user=phone"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	url := newDB(t, gwSQL("a", "10.0.0.1", 0, 0, ""),
		ruleSQL("0", "1", 0, "nosuchgw", ""),
		ruleSQL("0", "1x", 0, "a", ""))
	setup(t, url, nil) // bad rules are skipped, not fatal
	if d := cur.Load(); d.nrules != 0 {
		t.Errorf("%d rules loaded", d.nrules)
	}
	info := modules.Lookup(Name)
	p := modules.Params{"db_url": {value.S(url)}, "use_partitions": {value.I(1)}}
	if _, err := info.Configure(p); err == nil {
		t.Errorf("use_partitions accepted")
	}
	_, err := engine.Load("s.cfg", syntax.Options{ReadFile: func(string) ([]byte, error) {
		return []byte(`loadmodule "drouting.so"
modparam("drouting", "db_url", "` + url + `")
route { do_routing(0, "X"); }`), nil
	}})
	if err == nil || !strings.Contains(err.Error(), "unknown flag") {
		t.Errorf("bad flag: %v", err)
	}
}

func findMI(t testing.TB, name string) func(map[string]any) (any, error) {
	for _, c := range modules.Lookup(Name).MI {
		if c.Name == name {
			return c.Run
		}
	}
	t.Fatalf("no MI %s", name)
	return nil
}
