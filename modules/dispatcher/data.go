package dispatcher

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/runtime/store"
)

// State is a destination's state: active, or one of the flags.
type State uint8

const (
	Active   State = 0
	Inactive State = 1 // set by ds_mark_dst(), ds_set_state or the table; never probed
	Probing  State = 2 // failed probes or requests; probed until it answers
)

func (s State) String() string {
	switch {
	case s&Inactive != 0:
		return "Inactive"
	case s&Probing != 0:
		return "Probing"
	}
	return "Active"
}

// dbState is the state column's value (0 active, 1 inactive, 2 probing).
func (s State) dbState() int {
	switch {
	case s&Inactive != 0:
		return 1
	case s&Probing != 0:
		return 2
	}
	return 0
}

func stateFromDB(n int) (State, error) {
	switch n {
	case 0:
		return Active, nil
	case 1:
		return Inactive, nil
	case 2:
		return Probing, nil
	}
	return 0, fmt.Errorf("unknown state %d (0 active, 1 inactive, 2 probing)", n)
}

// ParseState reads a state as ds_mark_dst, ds_set_state and the list file
// write it: a/A/1 active, i/I/0 inactive, p/P/2 probing.
func ParseState(s string) (State, bool) {
	switch strings.TrimSpace(s) {
	case "a", "A", "1":
		return Active, true
	case "i", "I", "0":
		return Inactive, true
	case "p", "P", "2":
		return Probing, true
	}
	return 0, false
}

// Dest is one destination of a set.
type Dest struct {
	URI         string // as provisioned (the destination column)
	DstURI      string // what $du gets: the URI without its user part
	Set         int
	Weight      int
	Priority    int
	Attrs       string
	Socket      string // accepted and listed; not used to send yet
	Description string

	uri  sip.Uri
	host string   // the URI's host, without brackets
	port int      // the URI's port or its protocol's default
	ips  []net.IP // host resolved when the table was loaded

	// guarded by the set's mu
	state    State
	failures int // consecutive failures towards the probing threshold
	rrCount  int // weighted round robin: times chosen in this turn
	hits     atomic.Int64
}

// Set is a destination set, destinations ordered by descending priority
// (load order among equal priorities), as OpenSIPS orders them.
type Set struct {
	ID    int
	Dests []*Dest
	mu    sync.Mutex
	last  int // the last destination chosen (round robin)
}

// data is one loaded table of a partition.
type data struct {
	sets  map[int]*Set
	order []int // set ids, in the order OpenSIPS lists them
}

func (d *data) set(id int) *Set { return d.sets[id] }

// source is where a partition's destinations come from.
type source struct {
	db        *store.DB
	table     string
	cols      columns
	file      string   // list_file
	inline    []string // destination modparams
	persist   bool     // persistent_state: read and write the state column
	hasProbe  bool     // the table has a probe_mode column (version 9)
	hasDescr  bool
	hasSocket bool
}

type columns struct {
	setid, destination, state, weight, priority, attrs, socket string
}

func (c columns) check() error {
	for what, v := range map[string]string{"setid_col": c.setid, "destination_col": c.destination, "state_col": c.state,
		"weight_col": c.weight, "priority_col": c.priority, "attrs_col": c.attrs, "socket_col": c.socket} {
		if err := store.CheckIdent(what, v); err != nil {
			return err
		}
	}
	return nil
}

// newDest validates and resolves one destination.
func newDest(set int, uri string, state State, weight, prio int, attrs, sock, descr string) (*Dest, error) {
	uri = strings.TrimSpace(uri)
	d := &Dest{URI: uri, Set: set, Weight: weight, Priority: prio, Attrs: attrs, Socket: sock, Description: descr, state: state}
	if set < 0 {
		return nil, fmt.Errorf("destination %q: set id %d is negative", uri, set)
	}
	if weight < 0 {
		return nil, fmt.Errorf("destination %q: weight %d is negative", uri, weight)
	}
	if err := sip.ParseUri(uri, &d.uri); err != nil || d.uri.Host == "" {
		return nil, fmt.Errorf("destination %q is not a SIP URI", uri)
	}
	low := strings.ToLower(uri)
	if !strings.HasPrefix(low, "sip:") && !strings.HasPrefix(low, "sips:") {
		return nil, fmt.Errorf("destination %q is not a SIP URI", uri)
	}
	d.host = strings.Trim(d.uri.Host, "[]")
	d.port = d.uri.Port
	if d.port == 0 {
		d.port = 5060
		tr, _ := d.uri.UriParams.Get("transport")
		if strings.EqualFold(d.uri.Scheme, "sips") || strings.EqualFold(tr, "tls") {
			d.port = 5061
		}
	}
	// $du: scheme:host[:port][;params], without the user part
	u := d.uri.Clone()
	u.User, u.Password = "", ""
	u.Headers = nil
	d.DstURI = u.String()
	return d, nil
}

// resolveTimeout bounds the DNS lookup of one destination's host.
var resolveTimeout = 3 * time.Second

// resolve fills ips: an IP literal as is, a name through DNS. A name that
// does not resolve keeps the destination (it is still selectable) but
// ds_is_in_list cannot match it.
func (d *Dest) resolve(ctx context.Context) {
	if ip := net.ParseIP(d.host); ip != nil {
		d.ips = []net.IP{ip}
		return
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, d.host)
	if err != nil {
		return
	}
	for _, a := range addrs {
		d.ips = append(d.ips, a.IP)
	}
}

// build orders the destinations of each set and the sets themselves.
func build(dests []*Dest) *data {
	d := &data{sets: map[int]*Set{}}
	for _, dst := range dests {
		s := d.sets[dst.Set]
		if s == nil {
			s = &Set{ID: dst.Set}
			d.sets[dst.Set] = s
			d.order = append(d.order, dst.Set)
		}
		s.Dests = append(s.Dests, dst)
	}
	for _, s := range d.sets {
		sort.SliceStable(s.Dests, func(i, j int) bool { return s.Dests[i].Priority > s.Dests[j].Priority })
	}
	// OpenSIPS lists the sets newest first
	for i, j := 0, len(d.order)-1; i < j; i, j = i+1, j-1 {
		d.order[i], d.order[j] = d.order[j], d.order[i]
	}
	return d
}

// inherit keeps the runtime state of destinations that are still there
// (same set, same URI), as OpenSIPS does on ds_reload.
func (d *data) inherit(old *data) {
	if old == nil {
		return
	}
	for id, s := range d.sets {
		prev := old.sets[id]
		if prev == nil {
			continue
		}
		prev.mu.Lock()
		for _, nd := range s.Dests {
			for _, od := range prev.Dests {
				if strings.EqualFold(nd.URI, od.URI) {
					nd.state, nd.failures = od.state, od.failures
					nd.hits.Store(od.hits.Load())
					break
				}
			}
		}
		prev.mu.Unlock()
	}
}

// load reads a partition's destinations.
func (src *source) load(ctx context.Context) (*data, error) {
	var dests []*Dest
	if src.db != nil {
		ds, err := src.loadDB(ctx)
		if err != nil {
			return nil, err
		}
		dests = append(dests, ds...)
	}
	if src.file != "" {
		f, err := os.Open(src.file)
		if err != nil {
			return nil, fmt.Errorf("list_file: %w", err)
		}
		ds, err := parseList(f, src.file)
		f.Close()
		if err != nil {
			return nil, err
		}
		dests = append(dests, ds...)
	}
	for i, line := range src.inline {
		ds, err := parseList(strings.NewReader(line), fmt.Sprintf("destination modparam #%d", i+1))
		if err != nil {
			return nil, err
		}
		dests = append(dests, ds...)
	}
	var wg sync.WaitGroup
	for _, d := range dests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
			defer cancel()
			d.resolve(rctx)
		}()
	}
	wg.Wait()
	return build(dests), nil
}

func (src *source) loadDB(ctx context.Context) ([]*Dest, error) {
	c := src.cols
	cols := []string{c.setid, c.destination, c.state, c.weight, c.priority, c.attrs, c.socket, "description"}
	if !src.hasDescr {
		cols[7] = "''"
	}
	if !src.hasSocket {
		cols[6] = "NULL"
	}
	q := fmt.Sprintf("SELECT %s FROM %s ORDER BY id", strings.Join(cols, ", "), src.table)
	rows, err := src.db.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", src.table, err)
	}
	defer rows.Close()
	var out []*Dest
	for rows.Next() {
		var (
			set, state, prio           sql.NullInt64
			dest, weight, attrs, sockS sql.NullString
			descr                      sql.NullString
		)
		if err := rows.Scan(&set, &dest, &state, &weight, &prio, &attrs, &sockS, &descr); err != nil {
			return nil, fmt.Errorf("reading %s: %w", src.table, err)
		}
		w := 1
		if weight.Valid && strings.TrimSpace(weight.String) != "" {
			n, err := strconv.Atoi(strings.TrimSpace(weight.String))
			if err != nil {
				return nil, fmt.Errorf("%s: destination %q: weight %q is not a number (FreeSWITCH weights are not supported)", src.table, dest.String, weight.String)
			}
			w = n
		}
		st := Active
		if src.persist {
			if st, err = stateFromDB(int(state.Int64)); err != nil {
				return nil, fmt.Errorf("%s: destination %q: %v", src.table, dest.String, err)
			}
		}
		d, err := newDest(int(set.Int64), dest.String, st, w, int(prio.Int64), attrs.String, sockS.String, descr.String)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", src.table, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", src.table, err)
	}
	return out, nil
}

// saveState writes a destination's state to the table (persistent_state).
func (src *source) saveState(ctx context.Context, d *Dest, st State) error {
	if src.db == nil || !src.persist {
		return nil
	}
	q := fmt.Sprintf("UPDATE %s SET %s = ? WHERE %s = ? AND %s = ?", src.table, src.cols.state, src.cols.setid, src.cols.destination)
	_, err := src.db.Exec(ctx, q, st.dbState(), d.Set, d.URI)
	return err
}

// parseList reads destinations in sipedge's list format, one per line:
//
//	SETID URI [key=value ...]
//
// keys: weight, priority, state (a/i/p), attrs, socket, description. A bare
// number after the URI is OpenSIPS 1.x's flags column (1 inactive, 2
// probing). Blank lines and lines starting with # are skipped.
func parseList(r interface{ Read([]byte) (int, error) }, name string) ([]*Dest, error) {
	sc := bufio.NewScanner(r)
	var out []*Dest
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f, err := splitFields(line)
		if err != nil || len(f) < 2 {
			return nil, fmt.Errorf("%s:%d: want \"SETID URI [weight=N] [priority=N] [state=a|i|p] [attrs=...]\"", name, n)
		}
		set, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: set id %q is not a number", name, n, f[0])
		}
		st, w, prio := Active, 1, 0
		var attrs, sock, descr string
		for i, kv := range f[2:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				flags, err := strconv.Atoi(kv)
				if i != 0 || err != nil {
					return nil, fmt.Errorf("%s:%d: %q is not key=value", name, n, kv)
				}
				switch {
				case flags&1 != 0:
					st = Inactive
				case flags&2 != 0:
					st = Probing
				}
				continue
			}
			switch strings.ToLower(k) {
			case "weight":
				if w, err = strconv.Atoi(v); err != nil {
					return nil, fmt.Errorf("%s:%d: weight %q is not a number", name, n, v)
				}
			case "priority":
				if prio, err = strconv.Atoi(v); err != nil {
					return nil, fmt.Errorf("%s:%d: priority %q is not a number", name, n, v)
				}
			case "state":
				var ok bool
				if st, ok = ParseState(v); !ok {
					return nil, fmt.Errorf("%s:%d: state %q: want a, i or p", name, n, v)
				}
			case "attrs":
				attrs = v
			case "socket":
				sock = v
			case "description":
				descr = v
			default:
				return nil, fmt.Errorf("%s:%d: unknown key %q (weight, priority, state, attrs, socket, description)", name, n, k)
			}
		}
		d, err := newDest(set, f[1], st, w, prio, attrs, sock, descr)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, n, err)
		}
		out = append(out, d)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// splitFields splits on blanks; a value may be double-quoted (attrs="a b").
func splitFields(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inQ, has := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			inQ, has = !inQ, true
		case !inQ && (c == ' ' || c == '\t'):
			if has {
				out = append(out, cur.String())
				cur.Reset()
				has = false
			}
		default:
			cur.WriteByte(c)
			has = true
		}
	}
	if inQ {
		return nil, fmt.Errorf("unclosed quote")
	}
	if has {
		out = append(out, cur.String())
	}
	return out, nil
}
