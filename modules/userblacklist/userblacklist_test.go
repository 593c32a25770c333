package userblacklist

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/internal/modtest"
	"github.com/sipedge/sipedge/modules"
	_ "github.com/sipedge/sipedge/modules/core"
	_ "github.com/sipedge/sipedge/modules/sl"
	"github.com/sipedge/sipedge/runtime/mi"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/scripttest"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

// The example tables of OpenSIPS's documentation.
func newDB(t *testing.T) (string, *store.DB) {
	t.Helper()
	url := "sqlite://" + filepath.Join(t.TempDir(), "ubl.db")
	db, err := store.Create(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	if err := db.Init(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		prefix string
		white  int
	}{{"", 0}, {"1", 1}, {"123456", 0}, {"123455787", 0}} {
		exec(t, db, "INSERT INTO globalblacklist (prefix, whitelist) VALUES (?, ?)", r.prefix, r.white)
	}
	for _, r := range []struct {
		user, domain, prefix string
		white                int
	}{
		{"49721123456788", "", "1234", 0},
		{"49721123456788", "", "123456788", 1},
		{"49721123456789", "", "12345", 0},
		{"494675231", "", "499034133", 1},
		{"494675231", "test", "499034132", 0},
		{"494675453", "test.domain", "49901", 0},
		{"494675454", "", "49900", 0},
	} {
		exec(t, db, "INSERT INTO userblacklist (username, domain, prefix, whitelist) VALUES (?, ?, ?, ?)", r.user, r.domain, r.prefix, r.white)
	}
	return url, db
}

func exec(t *testing.T, db *store.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(context.Background(), q, args...); err != nil {
		t.Fatal(err)
	}
}

func setConfig(t *testing.T, kv ...any) {
	t.Helper()
	old := cur.Load()
	t.Cleanup(func() { cur.Store(old) })
	modtest.Configure(t, Name, kv...)
}

func invite(ruri string) string {
	return strings.Replace(modtest.InviteText, "sip:alice@example.com:5060;transport=udp", ruri, 1)
}

func call(t *testing.T, m *msgctx.Msg, name string, vals ...any) int {
	t.Helper()
	return modtest.Call(t, Name, m, name, vals...)
}

func TestTrie(t *testing.T) {
	tr := &trie{}
	for p, w := range map[string]bool{"": false, "1": true, "123456": false, "123455787": false} {
		tr.insert(p, w)
	}
	if tr.insert("12a", false) {
		t.Fatal("non-digit prefix inserted")
	}
	for number, black := range map[string]bool{
		"4930": true, "1": false, "1555": false, "123456": true, "1234567": true,
		"12345578": false, "123455787": true, "": true, "1x23456": false,
	} {
		if got := tr.blacklisted(number); got != black {
			t.Errorf("%q: blacklisted %v, want %v", number, got, black)
		}
	}
	if got := digits("+49 30"); got != "49 30" {
		t.Fatal(got)
	}
	empty := &trie{}
	if empty.blacklisted("123") {
		t.Fatal("empty table blacklists")
	}
}

func TestCheckBlacklist(t *testing.T) {
	url, db := newDB(t)
	setConfig(t, "db_url", url)
	for ruri, want := range map[string]int{
		"sip:4930123@example.com":   -1, // "" matches everything
		"sip:1555@example.com":      1,  // whitelisted "1"
		"sip:+1555@example.com":     1,  // leading non-digits are skipped
		"sip:1234567@example.com":   -1,
		"sip:123455787@example.com": -1,
		"tel:+1555;x=y":             1,
	} {
		m, h := modtest.NewMsg(t, invite(ruri))
		if got := call(t, m, "check_blacklist", "globalblacklist"); got != want {
			t.Errorf("%s: %d, want %d (%v)", ruri, got, want, h)
		}
	}
	// the table is cached: a change shows after reload_blacklist
	exec(t, db, "INSERT INTO globalblacklist (prefix, whitelist) VALUES ('4930', 1)")
	m, _ := modtest.NewMsg(t, invite("sip:4930123@example.com"))
	if got := call(t, m, "check_blacklist", "globalblacklist"); got != -1 {
		t.Fatal(got)
	}
	reg := mi.NewRegistry()
	if err := reg.SetModules(Name); err != nil {
		t.Fatal(err)
	}
	if res, err := reg.Call("reload_blacklist", nil); err != nil || res != "OK" {
		t.Fatal(res, err)
	}
	if got := call(t, m, "check_blacklist", "globalblacklist"); got != 1 {
		t.Fatal(got)
	}
	// errors: a missing table, a long number, no user
	m, h := modtest.NewMsg(t, invite("sip:123@example.com"))
	if got := call(t, m, "check_blacklist", "nosuchtable"); got != -1 || !h.HasLog(msgctx.LErr, "nosuchtable") {
		t.Fatal(got, h)
	}
	m, _ = modtest.NewMsg(t, invite("sip:"+strings.Repeat("1", 32)+"@example.com"))
	if got := call(t, m, "check_blacklist", "globalblacklist"); got != -1 {
		t.Fatal(got)
	}
	m, _ = modtest.NewMsg(t, invite("sip:example.com"))
	if got := call(t, m, "check_blacklist", "globalblacklist"); got != -1 {
		t.Fatal(got)
	}
}

func TestCheckUserBlacklist(t *testing.T) {
	url, db := newDB(t)
	setConfig(t, "db_url", url)
	for _, c := range []struct {
		user, domain, number string
		want                 int
	}{
		{"49721123456788", "", "1234999", -1},
		{"49721123456788", "", "123456788", 1}, // whitelisted
		{"49721123456788", "", "9999", 1},      // no prefix matches
		{"49721123456789", "", "123456", -1},
		{"494675231", "", "499034132", -1}, // use_domain 0: domain ignored
		{"494675231", "other", "499034133", 1},
		{"nobody", "", "1234", 1},
	} {
		m, h := modtest.NewMsg(t, invite("sip:0@example.com"))
		if got := call(t, m, "check_user_blacklist", c.user, c.domain, c.number); got != c.want {
			t.Errorf("%+v: %d (%v)", c, got, h)
		}
	}
	// without a number: the R-URI user; per-call reads see changes at once
	m, _ := modtest.NewMsg(t, invite("sip:+49901777@example.com"))
	if got := call(t, m, "check_user_blacklist", "494675453", "test.domain"); got != -1 {
		t.Fatal(got)
	}
	exec(t, db, "DELETE FROM userblacklist WHERE username = '494675453'")
	if got := call(t, m, "check_user_blacklist", "494675453", "test.domain"); got != 1 {
		t.Fatal(got)
	}
	// use_domain 1
	setConfig(t, "db_url", url, "use_domain", 1)
	m, _ = modtest.NewMsg(t, invite("sip:499034132@example.com"))
	if got := call(t, m, "check_user_blacklist", "494675231", "test"); got != -1 {
		t.Fatal(got)
	}
	if got := call(t, m, "check_user_blacklist", "494675231", "other"); got != 1 {
		t.Fatal(got)
	}
	// another table; a missing one is an error
	exec(t, db, "CREATE TABLE vip_blacklist (id INTEGER PRIMARY KEY, username TEXT, domain TEXT, prefix TEXT, whitelist INT)")
	exec(t, db, "INSERT INTO vip_blacklist (username, domain, prefix, whitelist) VALUES ('u', 'd', '4', 0)")
	if got := call(t, m, "check_user_blacklist", "u", "d", "4711", "vip_blacklist"); got != -1 {
		t.Fatal(got)
	}
	if got := call(t, m, "check_user_blacklist", "u", "d", "4711", "missing"); got != -1 {
		t.Fatal(got)
	}
	if _, err := modtest.Fixup(t, modtest.Fn(t, Name, "check_user_blacklist"), modtest.CS("u"), modtest.CS("d"), modtest.CS("1"), modtest.CS("bad table")); err == nil {
		t.Fatal("bad table name accepted")
	}
}

func TestConfigureErrors(t *testing.T) {
	url, db := newDB(t)
	exec(t, db, "DELETE FROM version WHERE table_name = 'userblacklist'")
	if _, err := modules.Lookup(Name).Configure(modules.Params{"db_url": {value.S(url)}, "db_table": {value.S("userblacklist")}}); err == nil {
		t.Fatal("table without a version row accepted")
	}
	if _, err := modules.Lookup(Name).Configure(modules.Params{"db_table": {value.S("x;y")}}); err == nil {
		t.Fatal("bad db_table accepted")
	}
	// no database: the functions fail, logged
	setConfig(t)
	m, h := modtest.NewMsg(t, invite("sip:1@example.com"))
	if got := call(t, m, "check_user_blacklist", "u", "d"); got != -1 || !h.HasLog(msgctx.LErr, "db_url") {
		t.Fatal(got, h)
	}
}

func TestScript(t *testing.T) {
	url, _ := newDB(t)
	fixture := `-- script.cfg --
loadmodule "userblacklist.so"
loadmodule "sl.so"
modparam("userblacklist", "db_url", "` + url + `")
route {
    if (!check_user_blacklist("$fU", "$fd", "$rU")) {
        sl_send_reply(403, "User Blacklisted");
        exit;
    }
    if (!check_blacklist("globalblacklist")) {
        sl_send_reply(403, "Blacklisted");
        exit;
    }
    sl_send_reply(200, "OK");
}
-- in.sip --
INVITE sip:123456788@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.11:5060;branch=z9hG4bK-ubl1
From: <sip:49721123456788@192.0.2.11>;tag=1
To: <sip:123456788@192.0.2.1>
Call-ID: ubl-1
CSeq: 1 INVITE
Max-Forwards: 70
Content-Length: 0

-- want --
reply 403 Blacklisted
outcome exited
`
	old := cur.Load()
	t.Cleanup(func() { cur.Store(old) })
	res, err := scripttest.Run(filepath.Join(t.TempDir(), "ubl.txtar"), []byte(fixture))
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("got\n%swant\n%s", res.Got, res.Want)
	}
	// a global table that does not exist refuses the script
	bad := strings.Replace(fixture, `check_blacklist("globalblacklist")`, `check_blacklist("global_blacklist")`, 1)
	if _, err := scripttest.Run("bad.txtar", []byte(bad)); err == nil || !strings.Contains(err.Error(), "global_blacklist") {
		t.Fatal(err)
	}
}
