package permissions

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/sipedge/sipedge/runtime/store"
)

// anyProto is a rule's or a query's protocol "any" (OpenSIPS PROTO_NONE).
const anyProto = ""

// rule is one row of the address table.
type rule struct {
	id      int64
	grp     int
	ip      netip.Addr // as written (for dumps)
	mask    int
	net     netip.Prefix // ip/mask, masked
	port    int          // 0: any port
	proto   string       // anyProto or "udp", "tcp", "tls", "sctp", "ws", "wss"
	pattern string       // shell wildcard; "" when the row has none
	hasPat  bool
	info    string
}

// table is one partition's cached address table: single addresses (a full
// mask) in a map by address, subnets in a list ordered by group, as
// OpenSIPS keeps its hash and subnet tables. A table is never changed once
// built; a reload builds a new one and swaps it in.
type table struct {
	hosts      map[netip.Addr][]*rule
	hostGroups map[int]bool
	hostList   []*rule // every host rule, in table order (dumps)
	subnets    []*rule // ordered by group (stable: table order within a group)
	subGroups  map[int]bool
	skipped    int // rows ignored (bad IP, mask, protocol "none" …)
}

func newTable() *table {
	return &table{hosts: map[netip.Addr][]*rule{}, hostGroups: map[int]bool{}, subGroups: map[int]bool{}}
}

func (t *table) add(r *rule) {
	if r.mask == r.ip.BitLen() {
		t.hosts[r.ip] = append(t.hosts[r.ip], r)
		t.hostGroups[r.grp] = true
		t.hostList = append(t.hostList, r)
		return
	}
	t.subnets = append(t.subnets, r)
	t.subGroups[r.grp] = true
}

func (t *table) finish() {
	sort.SliceStable(t.subnets, func(i, j int) bool { return t.subnets[i].grp < t.subnets[j].grp })
}

// query is what check_address / check_source_address look for.
type query struct {
	grp     int // 0: any group
	ip      netip.Addr
	port    int    // 0: any port
	proto   string // anyProto: any protocol
	pattern string
	hasPat  bool
}

func (r *rule) matches(q *query) bool {
	if !(r.grp == 0 || r.grp == q.grp || q.grp == 0) {
		return false
	}
	if !(r.proto == anyProto || r.proto == q.proto || q.proto == anyProto) {
		return false
	}
	if !(r.port == 0 || r.port == q.port || q.port == 0) {
		return false
	}
	if r.hasPat && q.hasPat && !globMatch(r.pattern, q.pattern) {
		return false
	}
	return true
}

// Results of match, as OpenSIPS's check_address.
const (
	retMatch    = 1
	retNoMatch  = -1
	retNoGroup  = -2 // the group has no entry at all (or the tables are empty)
	retBadInput = -1
)

// match looks q up: the single addresses first, then the subnets. It
// returns the matching rule (nil if none) and OpenSIPS's code: 1, -1 no
// match, -2 when the group is in neither table.
func (t *table) match(q *query) (*rule, int) {
	hostRet := retNoMatch
	if q.grp != 0 && !t.hostGroups[q.grp] {
		hostRet = retNoGroup
	} else {
		for _, r := range t.hosts[q.ip] {
			if r.matches(q) {
				return r, retMatch
			}
		}
	}
	subRet := retNoMatch
	switch {
	case len(t.subnets) == 0:
		subRet = retNoGroup
	case q.grp != 0 && !t.subGroups[q.grp]:
		subRet = retNoGroup
	default:
		for _, r := range t.subnets {
			if r.grp > q.grp && q.grp != 0 {
				break
			}
			if r.net.Contains(q.ip) && r.matches(q) {
				return r, retMatch
			}
		}
	}
	return nil, max(hostRet, subRet)
}

// sourceGroup is get_source_group: the group of the first rule, single
// addresses first, whose address and port (0: any) match; -1 when none.
func (t *table) sourceGroup(ip netip.Addr, port int) int {
	for _, r := range t.hosts[ip] {
		if r.port == 0 || r.port == port {
			return r.grp
		}
	}
	for _, r := range t.subnets {
		if (r.port == 0 || r.port == port) && r.net.Contains(ip) {
			return r.grp
		}
	}
	return -1
}

// parseProto reads a protocol name: "" and "any" (any case) are any.
func parseProto(s string) (string, bool) {
	switch p := strings.ToLower(strings.TrimSpace(s)); p {
	case "", "any":
		return anyProto, true
	case "udp", "tcp", "tls", "sctp", "ws", "wss":
		return p, true
	}
	return "", false
}

// parseIP reads an IPv4 or IPv6 address (brackets allowed), unmapping
// IPv4-mapped IPv6 addresses so ::ffff:1.2.3.4 and 1.2.3.4 are one address.
func parseIP(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// columns are the address table's column names (the *_col modparams).
type columns struct {
	table, id, grp, ip, mask, port, proto, pattern, info string
}

func (c columns) check() error {
	for _, x := range []struct{ what, v string }{
		{"address_table", c.table}, {"grp_col", c.grp}, {"ip_col", c.ip}, {"mask_col", c.mask},
		{"port_col", c.port}, {"proto_col", c.proto}, {"pattern_col", c.pattern}, {"info_col", c.info},
	} {
		if err := store.CheckIdent(x.what, x.v); err != nil {
			return err
		}
	}
	return nil
}

// TableVersion is the address table version the module checks for (3.x).
const TableVersion = 5

// load reads a partition's address table. Rows OpenSIPS would skip (no or
// bad IP, a mask too long for the address family, protocol "none" or
// unknown) are skipped and counted; a NULL group, mask or port is an error
// for that row only.
func load(ctx context.Context, db *store.DB, cols columns) (*table, error) {
	q := fmt.Sprintf("SELECT %s, %s, %s, %s, %s, %s, %s, %s FROM %s ORDER BY %s",
		cols.id, cols.grp, cols.ip, cols.mask, cols.port, cols.proto, cols.pattern, cols.info, cols.table, cols.id)
	rows, err := db.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", cols.table, err)
	}
	defer rows.Close()
	t := newTable()
	for rows.Next() {
		var (
			id                   sql.NullInt64
			grp, mask, port      sql.NullInt64
			ip, proto, pat, info sql.NullString
		)
		if err := rows.Scan(&id, &grp, &ip, &mask, &port, &proto, &pat, &info); err != nil {
			return nil, fmt.Errorf("reading %s: %w", cols.table, err)
		}
		r, ok := makeRule(id.Int64, grp, ip, mask, port, proto, pat, info)
		if !ok {
			t.skipped++
			continue
		}
		t.add(r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", cols.table, err)
	}
	t.finish()
	return t, nil
}

func makeRule(id int64, grp sql.NullInt64, ip sql.NullString, mask, port sql.NullInt64, proto, pat, info sql.NullString) (*rule, bool) {
	if !grp.Valid || grp.Int64 < 0 || !mask.Valid || mask.Int64 < 0 || !port.Valid || !ip.Valid || !proto.Valid {
		return nil, false
	}
	addr, ok := parseIP(ip.String)
	if !ok {
		return nil, false
	}
	if int(mask.Int64) > addr.BitLen() {
		return nil, false
	}
	if strings.EqualFold(strings.TrimSpace(proto.String), "none") {
		return nil, false
	}
	p, ok := parseProto(proto.String)
	if !ok {
		return nil, false
	}
	pfx, err := addr.Prefix(int(mask.Int64))
	if err != nil {
		return nil, false
	}
	r := &rule{id: id, grp: int(grp.Int64), ip: addr, mask: int(mask.Int64), net: pfx,
		port: int(port.Int64), proto: p, info: info.String}
	if pat.Valid && pat.String != "" {
		r.pattern, r.hasPat = pat.String, true
	}
	return r, true
}

// ---- dumps (MI) ----

func protoName(p string) string {
	if p == anyProto {
		return "any"
	}
	return p
}

func (r *rule) dump(mask string) map[string]any {
	return map[string]any{
		"grp":          r.grp,
		"ip":           r.ip.String(),
		"mask":         mask,
		"port":         r.port,
		"proto":        protoName(r.proto),
		"pattern":      r.pattern,
		"context_info": r.info,
	}
}

// hostDump lists the single addresses (address_dump).
func (t *table) hostDump() []any {
	out := make([]any, 0, len(t.hostList))
	for _, r := range t.hostList {
		out = append(out, r.dump(strconv.Itoa(r.mask)))
	}
	return out
}

// subnetDump lists the subnets (subnet_dump); the mask is written as an
// address (255.255.255.0), as OpenSIPS prints it.
func (t *table) subnetDump() []any {
	out := make([]any, 0, len(t.subnets))
	for _, r := range t.subnets {
		d := r.dump(maskAddr(r.ip.BitLen(), r.mask).String())
		d["ip"] = r.net.Addr().String()
		out = append(out, d)
	}
	return out
}

func maskAddr(bits, ones int) netip.Addr {
	b := make([]byte, bits/8)
	for i := range b {
		switch {
		case ones >= 8:
			b[i] = 0xff
			ones -= 8
		case ones > 0:
			b[i] = byte(0xff << (8 - ones))
			ones = 0
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
