package registrar_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/internal/txtar"
	"github.com/sipedge/sipedge/modules/auth"
	"github.com/sipedge/sipedge/modules/auth_db"
	"github.com/sipedge/sipedge/modules/usrloc"
	"github.com/sipedge/sipedge/runtime/scripttest"
	"github.com/sipedge/sipedge/runtime/store"

	_ "github.com/sipedge/sipedge/modules/avpops"
	_ "github.com/sipedge/sipedge/modules/core"
	_ "github.com/sipedge/sipedge/modules/corefwd"
	_ "github.com/sipedge/sipedge/modules/sipmsgops"
	_ "github.com/sipedge/sipedge/modules/sl"
)

var (
	authRx      = regexp.MustCompile(`@AUTH (\S+) (\S+)@`)
	challengeRx = regexp.MustCompile(`WWW-Authenticate: (Digest [^|]*)`)
	nonceRx     = regexp.MustCompile(`nonce="[^"]*"`)
	realmRx     = regexp.MustCompile(`realm="([^"]*)"`)
	nonceValRx  = regexp.MustCompile(`nonce="([^"]*)"`)
)

// TestSeedFixtures runs testdata/*.txtar in order against one sqlite
// database holding alice@example.com / secret: the seed's REGISTER
// authentication (no credentials, unknown user, bad password, good
// credentials), lookup() of the registered AoR (from memory and, with
// db_mode 3, from the table), the fail2ban bypass query, and unregistering.
// "@AUTH user password@" in a message is replaced by credentials answering
// the challenge the same script gives without them.
func TestSeedFixtures(t *testing.T) {
	dbURL := "sqlite://" + filepath.Join(t.TempDir(), "sipedge.db")
	db, err := store.Create(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if err := db.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := auth_db.AddSubscriber(ctx, db, auth_db.NewSubscriber("alice", "example.com", "secret", false)); err != nil {
		t.Fatal(err)
	}
	defer usrloc.SetClock(usrloc.SetClock(func() int64 { return 1_700_000_000 }))

	seed, err := os.ReadFile("testdata/seed.cfg")
	if err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob("testdata/*.txtar")
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		a := txtar.Parse(data)
		mode := "1"
		if mm := regexp.MustCompile(`(?m)^dbmode: (\d)`).FindSubmatch(a.Comment); mm != nil {
			mode = string(mm[1])
		}
		files := map[string][]byte{
			"seed.cfg": []byte(strings.NewReplacer("@DB@", dbURL, "@DBMODE@", mode).Replace(string(seed))),
		}
		var want string
		for _, f := range a.Files {
			files[f.Name] = f.Data
			if f.Name == "script.cfg" {
				files[f.Name] = []byte(strings.ReplaceAll(string(f.Data), "@DB@", dbURL))
			}
			if f.Name == "want" {
				want = string(f.Data)
			}
		}
		if in := string(files["in.sip"]); authRx.MatchString(in) {
			// Ask for a challenge first, as a UA would.
			bare := regexp.MustCompile(`(?m)^Authorization: @AUTH[^\n]*\n`).ReplaceAllString(in, "")
			files["in.sip"] = []byte(bare)
			out, err := scripttest.Execute(files, "testdata", string(a.Comment))
			if err != nil {
				t.Fatalf("%s (challenge): %v", name, err)
			}
			ch := challengeRx.FindStringSubmatch(out)
			if ch == nil {
				t.Fatalf("%s: no challenge in\n%s", name, out)
			}
			mm := authRx.FindStringSubmatch(in)
			files["in.sip"] = []byte(authRx.ReplaceAllString(in, credentials(ch[1], mm[1], mm[2])))
		}
		got, err := scripttest.Execute(files, "testdata", string(a.Comment))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got = nonceRx.ReplaceAllString(got, `nonce="NONCE"`)
		if got != want {
			t.Errorf("%s:\n--- want\n%s--- got\n%s", name, want, got)
		}
	}
}

// credentials answers a challenge (MD5, no qop) for a REGISTER to the realm.
func credentials(challenge, user, pass string) string {
	realm := realmRx.FindStringSubmatch(challenge)[1]
	nonce := nonceValRx.FindStringSubmatch(challenge)[1]
	uri := "sip:" + realm
	resp := auth.Response(auth.AlgMD5, auth.HA1(auth.AlgMD5, user, realm, pass), nonce, "", "", "", "REGISTER", uri, nil)
	return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s"`, user, realm, nonce, uri, resp)
}
