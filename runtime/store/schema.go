package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// The tables `sipedge db init` creates: OpenSIPS 3.x's SQLite schema
// (scripts/sqlite/*-create.sql) with the same table, column and index names,
// types and defaults, and the same `version` rows, so databases and
// provisioning tools can move between OpenSIPS and sipedge.

// Table is one table of the schema.
type Table struct {
	Name    string
	Version int
	Create  []string // statements, run in order
}

// Tables are created in this order.
var Tables = []Table{
	{Name: "version", Create: []string{`CREATE TABLE IF NOT EXISTS version (
    table_name CHAR(32) NOT NULL,
    table_version INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT version_t_name_idx  UNIQUE (table_name)
)`}},
	// auth_db (version 8: RFC 8760 hash columns, OpenSIPS 3.2+).
	{Name: "subscriber", Version: 8, Create: []string{`CREATE TABLE IF NOT EXISTS subscriber (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    username CHAR(64) DEFAULT '' NOT NULL,
    domain CHAR(64) DEFAULT '' NOT NULL,
    password CHAR(25) DEFAULT '' NOT NULL,
    email_address CHAR(64) DEFAULT '' NOT NULL,
    ha1 CHAR(64) DEFAULT '' NOT NULL,
    ha1_sha256 CHAR(64) DEFAULT '' NOT NULL,
    ha1_sha512t256 CHAR(64) DEFAULT '' NOT NULL,
    rpid CHAR(64) DEFAULT NULL,
    CONSTRAINT subscriber_account_idx  UNIQUE (username, domain)
)`, `CREATE INDEX IF NOT EXISTS subscriber_username_idx  ON subscriber (username)`}},
	// usrloc (version 1013). The (username, domain) index is sipedge's
	// addition: it keeps db_mode 3 lookups off a full table scan.
	{Name: "location", Version: 1013, Create: []string{`CREATE TABLE IF NOT EXISTS location (
    contact_id  INTEGER PRIMARY KEY AUTOINCREMENT  NOT NULL,
    username CHAR(64) DEFAULT '' NOT NULL,
    domain CHAR(64) DEFAULT NULL,
    contact TEXT NOT NULL,
    received CHAR(255) DEFAULT NULL,
    path CHAR(255) DEFAULT NULL,
    expires INTEGER NOT NULL,
    q FLOAT(10,2) DEFAULT 1.0 NOT NULL,
    callid CHAR(255) DEFAULT 'Default-Call-ID' NOT NULL,
    cseq INTEGER DEFAULT 13 NOT NULL,
    last_modified DATETIME DEFAULT '1900-01-01 00:00:01' NOT NULL,
    flags INTEGER DEFAULT 0 NOT NULL,
    cflags CHAR(255) DEFAULT NULL,
    user_agent CHAR(255) DEFAULT '' NOT NULL,
    socket CHAR(64) DEFAULT NULL,
    methods INTEGER DEFAULT NULL,
    sip_instance CHAR(255) DEFAULT NULL,
    kv_store TEXT(512) DEFAULT NULL,
    attr CHAR(255) DEFAULT NULL
)`, `CREATE INDEX IF NOT EXISTS location_aor_idx ON location (username, domain)`}},
	// permissions (version 5).
	{Name: "address", Version: 5, Create: []string{`CREATE TABLE IF NOT EXISTS address (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    grp SMALLINT(5) DEFAULT 0 NOT NULL,
    ip CHAR(50) NOT NULL,
    mask SMALLINT DEFAULT 32 NOT NULL,
    port SMALLINT(5) DEFAULT 0 NOT NULL,
    proto CHAR(4) DEFAULT 'any' NOT NULL,
    pattern CHAR(64) DEFAULT NULL,
    context_info CHAR(32) DEFAULT NULL
)`}},
	// acc (acc version 7 with ms_duration, missed_calls version 5).
	{Name: "acc", Version: 7, Create: []string{`CREATE TABLE IF NOT EXISTS acc (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    method CHAR(16) DEFAULT '' NOT NULL,
    from_tag CHAR(64) DEFAULT '' NOT NULL,
    to_tag CHAR(64) DEFAULT '' NOT NULL,
    callid CHAR(64) DEFAULT '' NOT NULL,
    sip_code CHAR(3) DEFAULT '' NOT NULL,
    sip_reason CHAR(32) DEFAULT '' NOT NULL,
    time DATETIME NOT NULL,
    duration INTEGER DEFAULT 0 NOT NULL,
    ms_duration INTEGER DEFAULT 0 NOT NULL,
    setuptime INTEGER DEFAULT 0 NOT NULL,
    created DATETIME DEFAULT NULL
)`, `CREATE INDEX IF NOT EXISTS acc_callid_idx ON acc (callid)`}},
	{Name: "missed_calls", Version: 5, Create: []string{`CREATE TABLE IF NOT EXISTS missed_calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    method CHAR(16) DEFAULT '' NOT NULL,
    from_tag CHAR(64) DEFAULT '' NOT NULL,
    to_tag CHAR(64) DEFAULT '' NOT NULL,
    callid CHAR(64) DEFAULT '' NOT NULL,
    sip_code CHAR(3) DEFAULT '' NOT NULL,
    sip_reason CHAR(32) DEFAULT '' NOT NULL,
    time DATETIME NOT NULL,
    setuptime INTEGER DEFAULT 0 NOT NULL,
    created DATETIME DEFAULT NULL
)`, `CREATE INDEX IF NOT EXISTS missed_calls_callid_idx ON missed_calls (callid)`}},
	// dialplan (version 5).
	{Name: "dialplan", Version: 5, Create: []string{`CREATE TABLE IF NOT EXISTS dialplan (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    dpid INTEGER NOT NULL,
    pr INTEGER DEFAULT 0 NOT NULL,
    match_op INTEGER NOT NULL,
    match_exp CHAR(64) NOT NULL,
    match_flags INTEGER DEFAULT 0 NOT NULL,
    subst_exp CHAR(64) DEFAULT NULL,
    repl_exp CHAR(32) DEFAULT NULL,
    timerec CHAR(255) DEFAULT NULL,
    disabled INTEGER DEFAULT 0 NOT NULL,
    attrs CHAR(255) DEFAULT NULL
)`}},
	// drouting (dr_gateways 6, dr_rules 4, dr_carriers 3, dr_groups 2).
	{Name: "dr_gateways", Version: 6, Create: []string{`CREATE TABLE IF NOT EXISTS dr_gateways (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    gwid CHAR(64) NOT NULL,
    type INTEGER DEFAULT 0 NOT NULL,
    address CHAR(128) NOT NULL,
    strip INTEGER DEFAULT 0 NOT NULL,
    pri_prefix CHAR(16) DEFAULT NULL,
    attrs CHAR(255) DEFAULT NULL,
    probe_mode INTEGER DEFAULT 0 NOT NULL,
    state INTEGER DEFAULT 0 NOT NULL,
    socket CHAR(128) DEFAULT NULL,
    description CHAR(128) DEFAULT NULL,
    CONSTRAINT dr_gateways_dr_gw_idx UNIQUE (gwid)
)`}},
	{Name: "dr_rules", Version: 4, Create: []string{`CREATE TABLE IF NOT EXISTS dr_rules (
    ruleid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    groupid CHAR(255) NOT NULL,
    prefix CHAR(64) NOT NULL,
    timerec CHAR(255) DEFAULT NULL,
    priority INTEGER DEFAULT 0 NOT NULL,
    routeid CHAR(255) DEFAULT NULL,
    gwlist CHAR(255) NOT NULL,
    sort_alg CHAR(1) DEFAULT 'N' NOT NULL,
    sort_profile INTEGER DEFAULT NULL,
    attrs CHAR(255) DEFAULT NULL,
    description CHAR(128) DEFAULT NULL
)`}},
	{Name: "dr_carriers", Version: 3, Create: []string{`CREATE TABLE IF NOT EXISTS dr_carriers (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    carrierid CHAR(64) NOT NULL,
    gwlist CHAR(255) NOT NULL,
    flags INTEGER DEFAULT 0 NOT NULL,
    sort_alg CHAR(1) DEFAULT 'N' NOT NULL,
    state INTEGER DEFAULT 0 NOT NULL,
    attrs CHAR(255) DEFAULT NULL,
    description CHAR(128) DEFAULT NULL,
    CONSTRAINT dr_carriers_dr_carrier_idx UNIQUE (carrierid)
)`}},
	{Name: "dr_groups", Version: 2, Create: []string{`CREATE TABLE IF NOT EXISTS dr_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    username CHAR(64) NOT NULL,
    domain CHAR(128) DEFAULT NULL,
    groupid INTEGER DEFAULT 0 NOT NULL,
    description CHAR(128) DEFAULT NULL
)`}},
	// userblacklist (userblacklist 2, globalblacklist 2).
	{Name: "userblacklist", Version: 2, Create: []string{`CREATE TABLE IF NOT EXISTS userblacklist (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    username CHAR(64) DEFAULT '' NOT NULL,
    domain CHAR(64) DEFAULT '' NOT NULL,
    prefix CHAR(64) DEFAULT '' NOT NULL,
    whitelist TINYINT(1) DEFAULT 0 NOT NULL
)`, `CREATE INDEX IF NOT EXISTS userblacklist_idx ON userblacklist (username, domain, prefix)`}},
	{Name: "globalblacklist", Version: 2, Create: []string{`CREATE TABLE IF NOT EXISTS globalblacklist (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    prefix CHAR(64) DEFAULT '' NOT NULL,
    whitelist TINYINT(1) DEFAULT 0 NOT NULL,
    description CHAR(255) DEFAULT NULL
)`, `CREATE INDEX IF NOT EXISTS globalblacklist_idx ON globalblacklist (prefix)`}},
}

// TableVersion is the version the schema defines for a table (0: unknown).
func TableVersion(name string) int {
	for _, t := range Tables {
		if t.Name == name {
			return t.Version
		}
	}
	return 0
}

// Init creates every missing table and its version row. Existing tables
// and rows are left alone, so it can run on a database in use.
func (d *DB) Init(ctx context.Context) error {
	return d.Tx(ctx, func(tx *sql.Tx) error {
		for _, t := range Tables {
			for _, stmt := range t.Create {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("creating %s: %w", t.Name, err)
				}
			}
			if t.Version > 0 {
				if _, err := tx.ExecContext(ctx,
					`INSERT OR IGNORE INTO version (table_name, table_version) VALUES (?, ?)`,
					t.Name, t.Version); err != nil {
					return fmt.Errorf("versioning %s: %w", t.Name, err)
				}
			}
		}
		return nil
	})
}

// ErrNoVersion is returned by Version for a table with no version row.
var ErrNoVersion = errors.New("no version row")

// Version reads a table's row in the version table.
func (d *DB) Version(ctx context.Context, table string) (int, error) {
	var v int
	err := d.r.QueryRowContext(ctx, `SELECT table_version FROM version WHERE table_name = ?`, table).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNoVersion
	}
	if err != nil && strings.Contains(err.Error(), "no such table") {
		return 0, ErrNoVersion
	}
	return v, err
}

// CheckVersion is OpenSIPS's db_check_table_version: the table must exist
// with the version row sipedge expects for its name (tables the schema does
// not know, such as a custom subscriber-like table, only need to exist).
func (d *DB) CheckVersion(ctx context.Context, table string, want int) error {
	if err := CheckIdent("table", table); err != nil {
		return err
	}
	var n int
	if err := d.r.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_master WHERE type IN ('table','view') AND name = ?`, table).Scan(&n); err != nil {
		return fmt.Errorf("%s: %w", d.Path, err)
	}
	if n == 0 {
		return fmt.Errorf("%s has no table %q (create the schema with `sipedge db init -url %s`)", d.Path, table, d.URL)
	}
	if want == 0 {
		return nil
	}
	v, err := d.Version(ctx, table)
	if errors.Is(err, ErrNoVersion) {
		return fmt.Errorf("%s: table %q has no row in the version table (want version %d)", d.Path, table, want)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", d.Path, err)
	}
	if v != want {
		return fmt.Errorf("%s: table %q is version %d, sipedge needs version %d", d.Path, table, v, want)
	}
	return nil
}
