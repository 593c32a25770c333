package edgeban

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipedge/sipedge/internal/modtest"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/modules/edgeban/gate"
	"github.com/sipedge/sipedge/modules/usrloc"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

var fakeNow atomic.Int64

// params are the module's defaults plus kv (name, value pairs).
func params(kv ...any) modules.Params {
	p := modules.Params{}
	for _, spec := range modules.Lookup(Name).Params {
		if !spec.Default.IsNull() {
			p[spec.Name] = []value.Value{spec.Default}
		}
	}
	for i := 0; i < len(kv); i += 2 {
		name := kv[i].(string)
		var v value.Value
		switch x := kv[i+1].(type) {
		case string:
			v = value.S(x)
		case int:
			v = value.I(x)
		}
		if spec, _ := modules.Lookup(Name).ParamSpec(name); spec != nil && spec.Multi {
			p[name] = append(p[name], v)
		} else {
			p[name] = []value.Value{v}
		}
	}
	return p
}

// setup configures the module on a fake clock, with empty state, and
// restores the defaults afterwards.
func setup(t *testing.T, kv ...any) {
	t.Helper()
	st.reset()
	fakeNow.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	oldClock := clock
	clock = func() int64 { return fakeNow.Load() }
	gate.SetClock(clock)
	apply, err := modules.Lookup(Name).Configure(params(kv...))
	if err != nil {
		t.Fatal(err)
	}
	apply()
	t.Cleanup(func() {
		clock = oldClock
		gate.SetClock(nil)
		st.reset()
		cur.Store(defaultConfig())
		gate.SetAlertHandler(nil)
	})
}

func advance(d time.Duration) { fakeNow.Add(int64(d)) }

func from(t *testing.T, ip string) (*msgctx.Msg, *modtest.Host) {
	m, h := modtest.NewMsg(t, modtest.InviteText)
	m.Src = msgctx.Addr{IP: ip, Port: 5070, Proto: "udp"}
	return m, h
}

func udp(ip string) net.Addr { return &net.UDPAddr{IP: net.ParseIP(ip), Port: 5060} }

func TestThresholdBans(t *testing.T) {
	setup(t, "threshold", 3, "window", 60, "ban_time", 600)
	m, h := from(t, "203.0.113.9")
	var got []int
	for range 5 {
		got = append(got, modtest.Call(t, Name, m, "edgeban_event", "", "Register_Bad_Password"))
	}
	if want := []int{1, 1, 2, 2, 2}; !equal(got, want) {
		t.Fatalf("edgeban_event: %v, want %v", got, want)
	}
	if !h.HasLog(msgctx.LNotice, "edgeban: banned 203.0.113.9 for 600s after 3 events (Register_Bad_Password)") {
		t.Fatal(h)
	}
	if rc := modtest.Call(t, Name, m, "edgeban_check"); rc != 1 {
		t.Fatal(rc)
	}
	if !gate.Drop(udp("203.0.113.9")) || !gate.Drop(udp("::ffff:203.0.113.9")) {
		t.Fatal("not dropped")
	}
	if gate.Drop(udp("203.0.113.10")) {
		t.Fatal("another address dropped")
	}
	other, _ := from(t, "203.0.113.10")
	if rc := modtest.Call(t, Name, other, "edgeban_check"); rc != -1 {
		t.Fatal(rc)
	}
	// the ban ends after ban_time
	advance(599 * time.Second)
	if !Banned("203.0.113.9") {
		t.Fatal("lifted early")
	}
	advance(time.Second)
	if Banned("203.0.113.9") || gate.Drop(udp("203.0.113.9")) {
		t.Fatal("still banned")
	}
	if gone := st.sweep(cur.Load()); len(gone) != 1 {
		t.Fatal(gone)
	}
	if gate.Current() != nil {
		t.Fatal("set not emptied")
	}
}

func TestWindow(t *testing.T) {
	setup(t, "threshold", 3, "window", 60)
	m, _ := from(t, "198.51.100.1")
	modtest.Call(t, Name, m, "edgeban_event")
	advance(40 * time.Second)
	modtest.Call(t, Name, m, "edgeban_event")
	advance(30 * time.Second) // the first event left the window
	if rc := modtest.Call(t, Name, m, "edgeban_event"); rc != 1 {
		t.Fatal("banned with an event outside the window", rc)
	}
	if rc := modtest.Call(t, Name, m, "edgeban_event"); rc != 2 {
		t.Fatal(rc)
	}
}

func TestWhitelist(t *testing.T) {
	setup(t, "threshold", 1, "whitelist", "10.0.0.0/8, 192.0.2.1", "whitelist", "2001:db8::/32")
	for _, ip := range []string{"10.1.2.3", "192.0.2.1", "2001:db8::5", "::ffff:10.0.0.1"} {
		m, _ := from(t, ip)
		if rc := modtest.Call(t, Name, m, "edgeban_event"); rc != RetExempt {
			t.Errorf("%s: %d", ip, rc)
		}
		if rc := modtest.Call(t, Name, m, "edgeban_add"); rc != RetExempt {
			t.Errorf("%s add: %d", ip, rc)
		}
	}
	m, _ := from(t, "192.0.2.2")
	if rc := modtest.Call(t, Name, m, "edgeban_event"); rc != RetBanned {
		t.Fatal(rc)
	}
}

func TestRegisteredExempt(t *testing.T) {
	setup(t, "threshold", 2)
	d := usrloc.GetDomain("location")
	exp := time.Now().Unix() + 3600
	if _, err := d.Update("bob@example.com", true, func([]usrloc.Contact) ([]usrloc.Contact, error) {
		return []usrloc.Contact{
			{URI: "sip:bob@198.51.100.7:5060", Expires: exp},
			{URI: "sip:bob@10.0.0.5:5060", Received: "sip:203.0.113.40:1234;transport=udp", Expires: exp},
			{URI: "sip:bob@[2001:db8::77]:5060", Expires: exp},
		}, nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.RemoveAOR("bob@example.com") })
	// the Contact hosts and the received address (as the seed's two queries)
	for _, ip := range []string{"198.51.100.7", "203.0.113.40", "2001:db8::77", "10.0.0.5"} {
		m, h := from(t, ip)
		modtest.Call(t, Name, m, "edgeban_event")
		if rc := modtest.Call(t, Name, m, "edgeban_event"); rc != RetExempt {
			t.Errorf("%s: %d", ip, rc)
		}
		if !h.HasLog(msgctx.LNotice, "edgeban: not banning "+ip+": a registered contact uses it") {
			t.Error(h)
		}
		if rc := modtest.Call(t, Name, m, "edgeban_add"); rc != RetExempt {
			t.Errorf("%s add: %d", ip, rc)
		}
	}
	// an address no binding uses is banned
	m, _ := from(t, "10.0.0.6")
	modtest.Call(t, Name, m, "edgeban_event")
	if rc := modtest.Call(t, Name, m, "edgeban_event"); rc != RetBanned {
		t.Fatal(rc)
	}
	// without exempt_registered they are banned like anyone else
	setup(t, "threshold", 1, "exempt_registered", 0)
	m, _ = from(t, "198.51.100.7")
	if rc := modtest.Call(t, Name, m, "edgeban_event"); rc != RetBanned {
		t.Fatal(rc)
	}
}

func TestAddDel(t *testing.T) {
	setup(t)
	m, h := from(t, "192.0.2.50")
	if rc := modtest.Call(t, Name, m, "edgeban_add", "192.0.2.60", 30, "manual"); rc != 1 {
		t.Fatal(rc)
	}
	if !Banned("192.0.2.60") || Banned("192.0.2.50") {
		t.Fatal("wrong address banned")
	}
	if !h.HasLog(msgctx.LNotice, "edgeban: banned 192.0.2.60 for 30s (manual)") {
		t.Fatal(h)
	}
	if rc := modtest.Call(t, Name, m, "edgeban_add"); rc != 1 || !Banned("192.0.2.50") {
		t.Fatal("$si not banned", rc)
	}
	if rc := modtest.Call(t, Name, m, "edgeban_check", "192.0.2.60"); rc != 1 {
		t.Fatal(rc)
	}
	if rc := modtest.Call(t, Name, m, "edgeban_del", "192.0.2.60"); rc != 1 {
		t.Fatal(rc)
	}
	if rc := modtest.Call(t, Name, m, "edgeban_del", "192.0.2.60"); rc != -1 {
		t.Fatal(rc)
	}
	if _, err := modtest.Fixup(t, modtest.Fn(t, Name, "edgeban_add"), modtest.CS("nonsense")); err == nil {
		t.Fatal("bad constant IP accepted")
	}
	if rc := modtest.Call(t, Name, m, "edgeban_add", "", 0); rc != 1 {
		t.Fatal(rc)
	}
	// ban_time 0 bans for good
	setup(t, "ban_time", 0)
	if rc := modtest.Call(t, Name, m, "edgeban_add"); rc != 1 {
		t.Fatal(rc)
	}
	advance(1000 * time.Hour)
	if !Banned("192.0.2.50") {
		t.Fatal("a permanent ban ended")
	}
}

func TestCountAlerts(t *testing.T) {
	setup(t, "threshold", 2, "count_alerts", 1)
	gate.Alert("203.0.113.77:5074 Invite_from_unknown_source From=sip:115@1.2.3.4")
	gate.Alert("no address here 203.0.113.77")
	if Banned("203.0.113.77") {
		t.Fatal("banned after one counted line")
	}
	gate.Alert("[2001:db8::9]:5060 Register_Wrong_Domain")
	gate.Alert("203.0.113.77 Register_Bad_Password") // no port: not counted
	if Banned("203.0.113.77") {
		t.Fatal("a line without a port counted")
	}
	gate.Alert("2001:db8::9:5060 Register_Wrong_Domain") // fail2ban reads 2001:db8::9
	if !Banned("2001:db8::9") {
		t.Fatal("bare IPv6:port not read as fail2ban reads it")
	}
	gate.Alert("203.0.113.77:5080 Register_Bad_Password")
	if !Banned("203.0.113.77") {
		t.Fatal("not banned")
	}
	list := st.list()
	if len(list) != 2 || list[0].ip.String() != "203.0.113.77" || list[0].reason != "Register_Bad_Password" || list[0].events != 2 {
		t.Fatalf("%+v", list)
	}
	// without count_alerts the stream is not counted
	setup(t, "threshold", 1)
	gate.Alert("203.0.113.78:5060 Register_Bad_Password")
	if Banned("203.0.113.78") {
		t.Fatal("counted without count_alerts")
	}
}

func TestMaxTracked(t *testing.T) {
	setup(t, "threshold", 2, "max_tracked", 2)
	for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		m, _ := from(t, ip)
		modtest.Call(t, Name, m, "edgeban_event")
	}
	if n := len(st.counts(cur.Load())); n != 2 {
		t.Fatal(n)
	}
	m, _ := from(t, "192.0.2.1")
	if rc := modtest.Call(t, Name, m, "edgeban_event"); rc != RetBanned {
		t.Fatal(rc)
	}
}

func TestPersistence(t *testing.T) {
	url := "sqlite://" + filepath.Join(t.TempDir(), "ban.db")
	db, err := store.Create(url)
	if err != nil {
		t.Fatal(err)
	}
	setup(t, "db_url", url, "threshold", 1, "ban_time", 3600)
	m, _ := from(t, "203.0.113.5")
	if rc := modtest.Call(t, Name, m, "edgeban_event", "", "Register_Bad_Password"); rc != 2 {
		t.Fatal(rc)
	}
	if rc := modtest.Call(t, Name, m, "edgeban_add", "203.0.113.6", 10); rc != 1 {
		t.Fatal(rc)
	}
	if err := Ban("203.0.113.7", 0, "mi"); err != nil {
		t.Fatal(err)
	}
	Unban("203.0.113.7")
	// a restart: memory forgotten, the database reopened
	st.reset()
	db.Close()
	advance(20 * time.Second) // 203.0.113.6's ban ended meanwhile
	apply, err := modules.Lookup(Name).Configure(params("db_url", url, "threshold", 1))
	if err != nil {
		t.Fatal(err)
	}
	apply()
	if !Banned("203.0.113.5") || !gate.Drop(udp("203.0.113.5")) {
		t.Fatal("ban lost in the restart")
	}
	if Banned("203.0.113.6") || Banned("203.0.113.7") {
		t.Fatal("an ended or lifted ban came back")
	}
	list := st.list()
	if len(list) != 1 || list[0].reason != "Register_Bad_Password" || list[0].until-list[0].since != 3600 {
		t.Fatalf("%+v", list)
	}
	// an expired ban is deleted from the table by the sweeper
	advance(2 * time.Hour)
	st.sweep(cur.Load())
	db2, _ := store.Open(url)
	var n int
	rows, err := db2.Query(context.Background(), "SELECT count(*) FROM edgeban")
	if err != nil {
		t.Fatal(err)
	}
	rows.Next()
	rows.Scan(&n)
	rows.Close()
	if n != 0 {
		t.Fatalf("%d rows left", n)
	}
	db2.Close()
}

func TestConfigureErrors(t *testing.T) {
	info := modules.Lookup(Name)
	for _, kv := range [][]any{
		{"threshold", 0}, {"window", 0}, {"ban_time", -1}, {"max_tracked", 0}, {"log_level", 9},
		{"table", "x;y"}, {"whitelist", "10.0.0.0/33"}, {"whitelist", "nope"},
		{"db_url", "sqlite:///nonexistent/dir/x.db"},
	} {
		if _, err := info.Configure(params(kv...)); err == nil {
			t.Errorf("%v accepted", kv)
		}
	}
}

func TestMI(t *testing.T) {
	setup(t, "threshold", 2)
	info := modules.Lookup(Name)
	run := func(name string, p map[string]any) (string, error) {
		for _, c := range info.MI {
			if c.Name == name {
				out, err := c.Run(p)
				b, _ := json.Marshal(out)
				return string(b), err
			}
		}
		t.Fatalf("no MI command %s", name)
		return "", nil
	}
	if out, err := run("edgeban_add", map[string]any{"ip": "192.0.2.9", "seconds": 120, "reason": "ops"}); err != nil || out != `"OK"` {
		t.Fatal(out, err)
	}
	gate.Drop(udp("192.0.2.9"))
	out, err := run("edgeban_list", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `{"dropped":1,"events":0,"expires":120,"ip":"192.0.2.9","reason":"ops","since":"2026-01-02T03:04:05Z"}`) {
		t.Fatal(out)
	}
	m, _ := from(t, "192.0.2.10")
	modtest.Call(t, Name, m, "edgeban_event")
	if out, _ := run("edgeban_counters", nil); out != `{"Counters":[{"events":1,"ip":"192.0.2.10"}]}` {
		t.Fatal(out)
	}
	if _, err := run("edgeban_rm", map[string]any{"ip": "192.0.2.11"}); err == nil || err.(interface{ MICode() int }).MICode() != 404 {
		t.Fatal(err)
	}
	if _, err := run("edgeban_rm", map[string]any{"ip": "bad"}); err == nil || err.(interface{ MICode() int }).MICode() != 400 {
		t.Fatal(err)
	}
	if out, err := run("edgeban_rm", map[string]any{"ip": "192.0.2.9"}); err != nil || out != `"OK"` {
		t.Fatal(out, err)
	}
	if Banned("192.0.2.9") {
		t.Fatal("still banned")
	}
	if _, err := run("edgeban_add", map[string]any{"ip": "192.0.2.9", "seconds": "x"}); err == nil {
		t.Fatal("bad seconds accepted")
	}
}

func TestParseIP(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1": "192.0.2.1", "192.0.2.1:5060": "192.0.2.1", "[2001:db8::1]:5060": "2001:db8::1",
		"2001:db8::1": "2001:db8::1", "[2001:db8::1]": "2001:db8::1", "::ffff:192.0.2.1": "192.0.2.1",
	} {
		if a, ok := parseIP(in); !ok || a != netip.MustParseAddr(want) {
			t.Errorf("%s: %v %v", in, a, ok)
		}
	}
	for _, bad := range []string{"", "host", "1.2.3", "fe80::1%eth0"} {
		if _, ok := parseIP(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func BenchmarkGateDrop(b *testing.B) {
	set := gate.Set{}
	for i := range 10000 {
		set[netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})] = &gate.Entry{}
	}
	gate.Publish(set)
	defer gate.Publish(nil)
	banned := &net.UDPAddr{IP: net.IPv4(10, 0, 1, 2), Port: 5060}
	clean := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5060}
	b.Run("banned", func(b *testing.B) {
		for b.Loop() {
			if !gate.Drop(banned) {
				b.Fatal("not dropped")
			}
		}
	})
	b.Run("not-banned", func(b *testing.B) {
		for b.Loop() {
			if gate.Drop(clean) {
				b.Fatal("dropped")
			}
		}
	})
}
