package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sipedge/sipedge/modules/auth_db"
	"github.com/sipedge/sipedge/runtime/store"
)

const dbUsage = `usage:
  sipedge db init           -url sqlite:///path/file.db   create the file and the OpenSIPS tables (version, subscriber, location, address)
  sipedge db add-subscriber -url URL [-plain] [-email ADDR] user@domain password
                                                          add or update a subscriber (ha1, ha1_sha256, ha1_sha512t256; -plain keeps the password too)
  sipedge db list           -url URL [subscriber|location|address|version]`

// runDB is `sipedge db`: create and provision the SQLite database the
// auth_db, usrloc, avpops/sqlops and permissions modules use.
func runDB(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" || args[0] == "--help" {
		fmt.Fprintln(stdout, dbUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd := args[0]
	fs := flag.NewFlagSet("db "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "database URL, sqlite:///path/to/file.db")
	plain := fs.Bool("plain", false, "add-subscriber: also store the plaintext password (for calculate_ha1)")
	email := fs.String("email", "", "add-subscriber: email_address")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *url == "" {
		fmt.Fprintf(stderr, "sipedge db %s: -url sqlite:///path/to/file.db is required\n", cmd)
		return 2
	}
	ctx := context.Background()
	var err error
	switch cmd {
	case "init":
		err = dbInit(ctx, *url, stdout)
	case "add-subscriber":
		if fs.NArg() != 2 {
			fmt.Fprintln(stderr, "sipedge db add-subscriber: want user@domain and password")
			return 2
		}
		err = dbAddSubscriber(ctx, *url, fs.Arg(0), fs.Arg(1), *email, *plain, stdout)
	case "list":
		table := "subscriber"
		if fs.NArg() > 0 {
			table = fs.Arg(0)
		}
		err = dbList(ctx, *url, table, stdout)
	default:
		fmt.Fprintf(stderr, "sipedge db: unknown command %q\n%s\n", cmd, dbUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "sipedge db %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

func dbInit(ctx context.Context, url string, out io.Writer) error {
	db, err := store.Create(url)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Init(ctx); err != nil {
		return err
	}
	for _, t := range store.Tables {
		if t.Version == 0 {
			continue
		}
		v, err := db.Version(ctx, t.Name)
		if err != nil {
			return fmt.Errorf("%s: %w", t.Name, err)
		}
		note := ""
		if v != t.Version {
			note = fmt.Sprintf(" (sipedge expects %d)", t.Version)
		}
		fmt.Fprintf(out, "%s: table %s version %d%s\n", db.Path, t.Name, v, note)
	}
	return nil
}

func dbAddSubscriber(ctx context.Context, url, who, password, email string, plain bool, out io.Writer) error {
	user, domain, ok := strings.Cut(who, "@")
	if !ok || user == "" || domain == "" {
		return fmt.Errorf("%q: want user@domain (the domain is the realm clients authenticate in)", who)
	}
	if password == "" {
		return errors.New("empty password")
	}
	db, err := store.Open(url)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.CheckVersion(ctx, "subscriber", auth_db.TableVersion); err != nil {
		return err
	}
	s := auth_db.NewSubscriber(user, domain, password, plain)
	s.Email = email
	if err := auth_db.AddSubscriber(ctx, db, s); err != nil {
		return err
	}
	fmt.Fprintf(out, "subscriber %s@%s saved\n", user, domain)
	return nil
}

var listQueries = map[string]string{
	"subscriber": `SELECT username, domain, email_address, CASE WHEN password != '' THEN 'yes' ELSE 'no' END, CASE WHEN ha1 != '' THEN 'yes' ELSE 'no' END FROM subscriber ORDER BY domain, username`,
	"location":   `SELECT username, ifnull(domain, ''), contact, expires, ifnull(received, ''), user_agent FROM location ORDER BY domain, username, contact_id`,
	"address":    `SELECT grp, ip, mask, port, proto, ifnull(pattern, ''), ifnull(context_info, '') FROM address ORDER BY grp, id`,
	"version":    `SELECT table_name, table_version FROM version ORDER BY table_name`,
}

var listHeads = map[string]string{
	"subscriber": "USER\tDOMAIN\tEMAIL\tPLAIN\tHA1",
	"location":   "USER\tDOMAIN\tCONTACT\tEXPIRES\tRECEIVED\tUSER-AGENT",
	"address":    "GRP\tIP\tMASK\tPORT\tPROTO\tPATTERN\tCONTEXT",
	"version":    "TABLE\tVERSION",
}

func dbList(ctx context.Context, url, table string, out io.Writer) error {
	q, ok := listQueries[table]
	if !ok {
		return fmt.Errorf("cannot list %q (want subscriber, location, address or version)", table)
	}
	db, err := store.Open(url)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.Query(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, listHeads[table])
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		cells := make([]string, len(vals))
		for i, v := range vals {
			cells[i] = v.String
		}
		if table == "location" {
			cells[3] = expiresText(cells[3])
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return tw.Flush()
}

func expiresText(s string) string {
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil || n == 0 {
		if n == 0 && err == nil {
			return "permanent"
		}
		return s
	}
	return time.Unix(n, 0).UTC().Format(time.DateTime)
}
