package store

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "sqlite:///var/lib/sipedge/x.db", want: "/var/lib/sipedge/x.db"},
		{in: "sqlite:////var/lib/x.db", want: "/var/lib/x.db"},
		{in: "SQLITE:///a/../b.db", want: "/b.db"},
		{in: "sqlite://x.db", want: "/x.db"}, // OpenSIPS opens what follows "sqlite:/"
		{in: "mysql://opensips:secret@localhost/opensips", err: "only has the sqlite driver"},
		{in: "/var/x.db", err: "want sqlite:///"},
		{in: "sqlite:x.db", err: "want sqlite:///"},
		{in: "sqlite:///", err: "want sqlite:///"},
	} {
		got, err := ParseURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseURL(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("ParseURL(%q) leaks the password: %v", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func tempURL(t *testing.T) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "sipedge.db")
}

func TestOpenNeedsFile(t *testing.T) {
	u := tempURL(t)
	if _, err := Open(u); err == nil || !strings.Contains(err.Error(), "sipedge db init") {
		t.Fatalf("Open of a missing file: %v", err)
	}
	db, err := Create(u)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	again, err := Open(u)
	if err != nil || again != db {
		t.Fatalf("second Open = %p, %v; want the shared handle %p", again, err, db)
	}
}

func TestInitAndVersions(t *testing.T) {
	ctx := context.Background()
	db, err := Create(tempURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.CheckVersion(ctx, "subscriber", 8); err == nil || !strings.Contains(err.Error(), "sipedge db init") {
		t.Fatalf("CheckVersion before init: %v", err)
	}
	for i := 0; i < 2; i++ { // idempotent
		if err := db.Init(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		table string
		want  int
	}{{"subscriber", 8}, {"location", 1013}, {"address", 5}} {
		if err := db.CheckVersion(ctx, tc.table, tc.want); err != nil {
			t.Error(err)
		}
		if err := db.CheckVersion(ctx, tc.table, tc.want+1); err == nil {
			t.Errorf("%s: version mismatch not reported", tc.table)
		}
	}
	if err := db.CheckVersion(ctx, "x; drop table version", 0); err == nil {
		t.Error("bad identifier accepted")
	}
	// The OpenSIPS column set, in order.
	rows, err := db.Query(ctx, `SELECT * FROM location`)
	if err != nil {
		t.Fatal(err)
	}
	cols, _ := rows.Columns()
	rows.Close()
	want := "contact_id username domain contact received path expires q callid cseq last_modified flags cflags user_agent socket methods sip_instance kv_store attr"
	if got := strings.Join(cols, " "); got != want {
		t.Errorf("location columns:\n got %s\nwant %s", got, want)
	}
}

func TestReadersCannotWrite(t *testing.T) {
	ctx := context.Background()
	db, err := Create(tempURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Init(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(ctx, `DELETE FROM version RETURNING table_name`)
	if err == nil {
		for rows.Next() {
		}
		err = rows.Err()
		rows.Close()
	}
	if err == nil {
		t.Fatal("a write ran on a reader connection")
	}
}

func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	db, err := Create(tempURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Init(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				_, err := db.Exec(ctx, `INSERT INTO address (ip, grp) VALUES (?, ?)`, "10.0.0.1", g)
				if err != nil {
					errs <- err
				}
				rows, err := db.Query(ctx, `SELECT count(*) FROM address`)
				if err != nil {
					errs <- err
					continue
				}
				rows.Close()
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var n int
	rows, _ := db.Query(ctx, `SELECT count(*) FROM address`)
	rows.Next()
	rows.Scan(&n)
	rows.Close()
	if n != 200 {
		t.Errorf("rows = %d, want 200", n)
	}
}

func TestIsIdent(t *testing.T) {
	for s, want := range map[string]bool{"subscriber": true, "_x1": true, "1x": false, "a-b": false, "a b": false, "": false, "a;b": false} {
		if IsIdent(s) != want {
			t.Errorf("IsIdent(%q) = %v", s, !want)
		}
	}
}
