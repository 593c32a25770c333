package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipedge/sipedge/lang/syntax"
	"github.com/sipedge/sipedge/modules/auth_db"
	"github.com/sipedge/sipedge/modules/edgeban"
	"github.com/sipedge/sipedge/modules/permissions"
	"github.com/sipedge/sipedge/modules/usrloc"
	"github.com/sipedge/sipedge/runtime/engine"
	"github.com/sipedge/sipedge/runtime/store"
)

// The scripts/edge.cfg end-to-end tests: the seed talk's edge security,
// with SIPp UAs on their own loopback addresses (127.0.0.x), so the proxy
// tells them apart by source address as it would on the Internet:
//
//	127.0.0.1:P, 127.0.0.2:P  the proxy's public and LAN sockets
//	127.0.0.10                alice, registered, answering calls
//	127.0.0.11                bob, registered, calling alice
//	127.0.0.66                a password guesser
//	127.0.0.67                a scanner
//	127.0.0.68                an unknown caller dialling abroad

const (
	edgeDomain  = "sipedge.test"
	edgeAlicePW = "alice-secret"
	edgeBobPW   = "bob-secret"
	edgeBanHits = 3 // the test's edgeban threshold
)

// edgeSetup is one test's database, alert log and script.
type edgeSetup struct {
	dbURL  string
	alerts string
	script string
	port   int
}

// newEdgeSetup makes the database (OpenSIPS schema, alice and bob) and
// scripts/edge.cfg with the test's port, files and threshold.
func newEdgeSetup(t *testing.T) *edgeSetup {
	t.Helper()
	dir := t.TempDir()
	e := &edgeSetup{
		dbURL:  "sqlite://" + filepath.Join(dir, "sipedge.db"),
		alerts: filepath.Join(dir, "sipedge_alert.log"),
		port:   freePort(t),
	}
	db, err := store.Create(e.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := db.Init(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range []auth_db.Subscriber{
		auth_db.NewSubscriber("alice", edgeDomain, edgeAlicePW, false),
		auth_db.NewSubscriber("bob", edgeDomain, edgeBobPW, false),
	} {
		if err := auth_db.AddSubscriber(ctx, db, s); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(filepath.Join(repoRoot(), "scripts", "edge.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for _, r := range [][2]string{
		{"udp:127.0.0.1:5060", fmt.Sprintf("udp:127.0.0.1:%d", e.port)},
		{"udp:127.0.0.2:5060", fmt.Sprintf("udp:127.0.0.2:%d", e.port)},
		{"sqlite:///var/lib/sipedge/sipedge.db", e.dbURL},
		{"/var/log/sipedge_alert.log", e.alerts},
		{`modparam("edgeban", "threshold", 5)`, fmt.Sprintf(`modparam("edgeban", "threshold", %d)`, edgeBanHits)},
	} {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("scripts/edge.cfg no longer contains %q", r[0])
		}
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	e.script = s
	return e
}

// edgeSipp runs scenario xml from ip (a free port there) against the
// proxy's public socket.
func (e *edgeSetup) sipp(t *testing.T, name, xml, ip string, calls int, extra ...string) *sipp {
	args := []string{"-sf", scenario(xml), fmt.Sprintf("127.0.0.1:%d", e.port),
		"-i", ip, "-p", fmt.Sprint(freePort(t)), "-m", fmt.Sprint(calls), "-r", "5",
		"-key", "domain", edgeDomain, "-timeout", "60s", "-trace_err", "-recv_timeout", "5000"}
	return startSipp(t, name, append(args, extra...)...)
}

// register registers user from ip; with hold > 0 the UA stays up that long
// answering calls (edge_uas.xml as out-of-call scenario).
func (e *edgeSetup) register(t *testing.T, user, pw, ip string, hold time.Duration) *sipp {
	extra := []string{"-s", user, "-au", user, "-ap", pw, "-d", fmt.Sprint(hold.Milliseconds())}
	if hold > 0 {
		extra = append(extra, "-oocsf", scenario("edge_uas.xml"))
	}
	return e.sipp(t, "register-"+user, "edge_register.xml", ip, 1, extra...)
}

func (e *edgeSetup) badPasswords(t *testing.T, user, ip string, n int) *sipp {
	return e.sipp(t, "guess-"+ip, "edge_register_bad.xml", ip, n, "-s", user, "-au", user, "-ap", "not-the-password")
}

func (e *edgeSetup) call(t *testing.T, calls int) *sipp {
	return e.sipp(t, "bob-calls", "edge_call.xml", "127.0.0.11", calls,
		"-s", "alice", "-key", "caller", "bob", "-au", "bob", "-ap", edgeBobPW)
}

// expectExit waits for a SIPp run and checks its exit code (0: every call
// went as the scenario says).
func edgeExpectExit(t *testing.T, p *sipp, want int) {
	t.Helper()
	if got := p.wait(t, 90*time.Second); got != want {
		t.Fatalf("sipp %s: exit %d, want %d (successful %s, failed %s)", p.name, got, want,
			p.counter("Successful call"), p.counter("Failed call"))
	}
}

func edgeRegistered(aor string) bool {
	cs, err := usrloc.GetDomain("location").Lookup(aor)
	return err == nil && len(cs) > 0
}

func edgeWait(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var edgeAlertLine = regexp.MustCompile(`^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (\S+):(\d+) (\S+)( |$)`)

// alertCounts reads the alert log: "ip category" → lines. Every line must
// have the fail2ban layout.
func edgeAlertCounts(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := edgeAlertLine.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("alert line without the fail2ban layout: %q", sc.Text())
		}
		if _, err := time.ParseInLocation("2006-01-02 15:04:05", m[1], time.Local); err != nil {
			t.Fatalf("alert line date %q: %v", m[1], err)
		}
		out[m[2]+" "+m[4]]++
	}
	return out
}

// The shipped script is accepted (with its database in place).
func TestEdgeConfigChecks(t *testing.T) {
	e := newEdgeSetup(t)
	path := filepath.Join(t.TempDir(), "edge.cfg")
	if err := os.WriteFile(path, []byte(e.script), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Load(path, syntax.Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestEdgeSecurity(t *testing.T) {
	needSipp(t)
	e := newEdgeSetup(t)
	p := startProxy(t, e.port, e.script)
	t.Cleanup(func() {
		for _, ip := range []string{"127.0.0.66", "127.0.0.67", "127.0.0.68", "127.0.0.11"} {
			edgeban.Unban(ip)
		}
	})

	// scanners get no answer at all, but each probe is an alert line
	edgeExpectExit(t, e.sipp(t, "scanner", "edge_scanner.xml", "127.0.0.67", 2, "-s", "100"), 0)

	// alice registers and stays up to take calls; bob registers
	alice := e.register(t, "alice", edgeAlicePW, "127.0.0.10", 120*time.Second)
	edgeWait(t, 10*time.Second, "alice's registration", func() bool { return edgeRegistered("alice@" + edgeDomain) })
	edgeExpectExit(t, e.register(t, "bob", edgeBobPW, "127.0.0.11", 0), 0)
	if !edgeRegistered("bob@" + edgeDomain) {
		t.Fatal("bob is not registered")
	}

	// bob calls alice while a password guesser works on alice's account:
	// after edgeBanHits wrong passwords the guesser is banned, bob's calls
	// go on
	calls := e.call(t, 4)
	edgeExpectExit(t, e.badPasswords(t, "alice", "127.0.0.66", edgeBanHits), 0)
	edgeWait(t, 5*time.Second, "the ban", func() bool { return edgeban.Banned("127.0.0.66") })
	guess := e.badPasswords(t, "alice", "127.0.0.66", 1)
	edgeExpectExit(t, guess, 1) // no answer any more
	edgeExpectExit(t, calls, 0)
	edgeExpectExit(t, e.call(t, 2), 0)

	// bob mistypes his password from his registered address: warnings,
	// no alert line, no ban — and he keeps calling
	edgeExpectExit(t, e.badPasswords(t, "bob", "127.0.0.11", edgeBanHits+1), 0)
	if edgeban.Banned("127.0.0.11") {
		t.Fatal("a registered user's address was banned")
	}
	edgeExpectExit(t, e.call(t, 1), 0)

	// a PBX in the permissions address table (group 1) calls alice
	// without credentials
	db, err := store.Open(e.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(context.Background(),
		`INSERT INTO address (grp, ip, mask, port, proto, context_info) VALUES (1, '127.0.0.69', 32, 0, 'udp', 'pbx')`); err != nil {
		t.Fatal(err)
	}
	if err := permissions.Reload(context.Background()); err != nil { // MI address_reload
		t.Fatal(err)
	}
	edgeExpectExit(t, e.sipp(t, "pbx", "edge_call_trusted.xml", "127.0.0.69", 1, "-s", "alice", "-key", "caller", "pbx"), 0)

	// the IRSF probe: an unknown source dialling abroad is refused
	edgeExpectExit(t, e.sipp(t, "irsf", "edge_invite_refused.xml", "127.0.0.68", 1, "-s", "0041445209698"), 0)

	got := edgeAlertCounts(t, e.alerts)
	want := map[string]int{
		"127.0.0.67 Scanner_User_Agent":         2,
		"127.0.0.66 Register_Bad_Password":      edgeBanHits,
		"127.0.0.68 Invite_from_unknown_source": 1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("alert lines %v, want %v", got, want)
	}
	logs := p.logs.String()
	for _, s := range []string{
		"Register_Bad_Password REGISTER From=sip:bob@sipedge.test RURI=sip:sipedge.test UA=sipcracker-ish (not blocked: address of registered user bob)",
		"edgeban: banned 127.0.0.66 for 3600s after 3 events (Register_Bad_Password)",
	} {
		if !strings.Contains(logs, s) {
			t.Errorf("the log has no %q", s)
		}
	}
	if n := strings.Count(logs, "Sender is NOT Registered"); n != 0 {
		t.Errorf("%d registered-source misses", n)
	}

	// fail2ban reads the same file: the same addresses, the same counts
	edgeFail2banRegex(t, e.alerts, map[string]int{"127.0.0.66": edgeBanHits, "127.0.0.67": 2, "127.0.0.68": 1})

	alice.cmd.Process.Signal(syscall.SIGKILL)
}

// edgeFail2banRegex runs the real fail2ban-regex with the shipped filter
// on an alert log and checks which addresses it would ban how often.
func edgeFail2banRegex(t *testing.T, log string, want map[string]int) {
	t.Helper()
	if _, err := exec.LookPath("fail2ban-regex"); err != nil {
		t.Log("fail2ban-regex is not on PATH (apt-get install fail2ban): filter not checked")
		return
	}
	filter := filepath.Join(repoRoot(), "scripts", "fail2ban", "filter.d", "sipedge-alert.conf")
	out, err := exec.Command("fail2ban-regex", "-o", "ip", log, filter).CombinedOutput()
	if err != nil {
		t.Fatalf("fail2ban-regex: %v\n%s", err, out)
	}
	got := map[string]int{}
	for _, line := range strings.Fields(string(out)) {
		if net.ParseIP(line) != nil {
			got[line]++
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("fail2ban-regex matched %v, want %v\n%s", got, want, out)
	}
	// and it accepts every line's date
	out, _ = exec.Command("fail2ban-regex", log, filter).CombinedOutput()
	if !regexp.MustCompile(`Lines: (\d+) lines, 0 ignored, (\d+) matched, 0 missed`).Match(out) {
		t.Fatalf("fail2ban-regex missed lines:\n%s", out)
	}
}

// A restart keeps the registrations (usrloc db_mode 1) and the bans
// (edgeban's table): the real binary, stopped with SIGTERM and started
// again on the same database.
func TestEdgeRestart(t *testing.T) {
	needSipp(t)
	e := newEdgeSetup(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "sipedge")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sipedge")
	build.Dir = repoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "edge.cfg")
	if err := os.WriteFile(cfg, []byte(e.script), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func() (*exec.Cmd, *syncBuffer) {
		logs := &syncBuffer{}
		cmd := exec.Command(bin, "-f", cfg)
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			if t.Failed() {
				t.Logf("sipedge log:\n%s", tail(logs.String(), 60))
			}
		})
		edgeWait(t, 10*time.Second, "the proxy to listen", func() bool {
			return strings.Count(logs.String(), "listening on") >= 2
		})
		return cmd, logs
	}
	proc, _ := start()

	alice := e.register(t, "alice", edgeAlicePW, "127.0.0.10", 120*time.Second)
	time.Sleep(500 * time.Millisecond)
	edgeExpectExit(t, e.register(t, "bob", edgeBobPW, "127.0.0.11", 0), 0)
	edgeExpectExit(t, e.badPasswords(t, "alice", "127.0.0.66", edgeBanHits), 0)
	edgeExpectExit(t, e.badPasswords(t, "alice", "127.0.0.66", 1), 1) // banned
	edgeExpectExit(t, e.call(t, 1), 0)

	proc.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- proc.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sipedge exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sipedge did not stop on SIGTERM")
	}

	// what the database says now
	db, err := store.Open(e.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	var bans, contacts []string
	rows, err := db.Query(context.Background(), "SELECT ip FROM edgeban")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var ip string
		rows.Scan(&ip)
		bans = append(bans, ip)
	}
	rows.Close()
	rows, err = db.Query(context.Background(), "SELECT username FROM location")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var u string
		rows.Scan(&u)
		contacts = append(contacts, u)
	}
	rows.Close()
	sort.Strings(contacts)
	if fmt.Sprint(bans) != "[127.0.0.66]" || fmt.Sprint(contacts) != "[alice bob]" {
		t.Fatalf("after the stop: bans %v, registered %v", bans, contacts)
	}

	start()
	// still banned; alice still reachable, bob still known by address
	edgeExpectExit(t, e.badPasswords(t, "alice", "127.0.0.66", 1), 1)
	edgeExpectExit(t, e.call(t, 2), 0)
	alice.cmd.Process.Signal(syscall.SIGKILL)
}
