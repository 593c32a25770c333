package dispatcher

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/check"
	lsource "github.com/sipedge/sipedge/lang/source"
	"github.com/sipedge/sipedge/lang/syntax"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/pvar"
	"github.com/sipedge/sipedge/runtime/value"
)

// Algorithms (ds_select_dst's alg).
const (
	AlgCallID     = 0
	AlgFrom       = 1
	AlgTo         = 2
	AlgRURI       = 3
	AlgRoundRobin = 4
	AlgAuthUser   = 5
	AlgRandom     = 6
	AlgHashPVar   = 7
	AlgFirst      = 8
	AlgPVarLoad   = 9  // not supported: first available
	AlgRoute      = 10 // not supported: first available
)

// Flags are ds_select_dst's flags.
type Flags struct {
	Failover   bool // f: keep the other destinations for ds_next_dst
	UserOnly   bool // u: hash the URI user only
	UseDefault bool // d: the set's last destination is the last resort
	Append     bool // a: add to the current list instead of replacing it
	MaxResults int  // M<n> (2.x syntax inside flags); 0: no limit
}

// ParseFlags reads the flags string. OpenSIPS 2.x's "M<n>" (max results)
// and 's' (force destination, a no-op since 2.1) are accepted.
func ParseFlags(s string) (Flags, error) {
	var f Flags
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 'f', 'F':
			f.Failover = true
		case 'u', 'U':
			f.UserOnly = true
		case 'd', 'D':
			f.UseDefault = true
		case 'a', 'A':
			f.Append = true
		case 's', 'S', ' ', ',':
		case 'M', 'm':
			j := i + 1
			for j < len(s) && s[j] == ' ' {
				j++
			}
			k := j
			for k < len(s) && s[k] >= '0' && s[k] <= '9' {
				k++
			}
			n, err := strconv.Atoi(s[j:k])
			if err != nil || n < 0 {
				return f, fmt.Errorf("flags %q: M must be followed by a number", s)
			}
			f.MaxResults, i = n, k-1
		default:
			return f, fmt.Errorf("unknown flag %q in %q (f failover, u user only, d use default, a append)", string(c), s)
		}
	}
	return f, nil
}

func fixupSelect(args []check.FixupArg) (any, error) {
	if a := args[0]; a.Present && a.Const && a.Int < 0 {
		return nil, check.ArgError(0, "set id %d is negative", a.Int)
	}
	if a := args[1]; a.Present && a.Const && (a.Int == AlgPVarLoad || a.Int == AlgRoute) {
		return nil, check.ArgError(1, "algorithm %d is not supported yet", a.Int)
	}
	if a := args[2]; a.Present && a.Const {
		if _, err := ParseFlags(a.Str); err != nil {
			return nil, check.ArgError(2, "%v", err)
		}
	}
	if a := args[4]; a.Present && a.Const && a.Int < 0 {
		return nil, check.ArgError(4, "max_res %d is negative", a.Int)
	}
	return nil, nil
}

func fixupMark(args []check.FixupArg) (any, error) {
	if a := args[0]; a.Present && a.Const && a.Str != "" {
		if _, ok := ParseState(a.Str); !ok {
			return nil, check.ArgError(0, "state %q: want i (inactive), a (active) or p (probing)", a.Str)
		}
	}
	return nil, nil
}

func fixupInList(args []check.FixupArg) (any, error) {
	if a := args[0]; a.Present && a.Const && net.ParseIP(strings.Trim(a.Str, "[]")) == nil {
		return nil, check.ArgError(0, "%q is not an IP address", a.Str)
	}
	if a := args[5]; a.Present && (!a.Const || a.Str != "") {
		return nil, check.ArgError(5, "the pattern argument is not supported yet")
	}
	return nil, nil
}

// countFilter is ds_count's state filter.
type countFilter struct{ active, inactive, probing bool }

func parseCountFilter(s string) (countFilter, error) {
	var f countFilter
	for _, c := range s {
		switch c {
		case 'a', 'A', '1':
			f.active = true
		case 'i', 'I', '0':
			f.inactive = true
		case 'p', 'P', '2':
			f.probing = true
		default:
			return f, fmt.Errorf("state filter %q: use a (active), i (inactive) and p (probing)", s)
		}
	}
	if !f.active && !f.inactive && !f.probing {
		return f, fmt.Errorf("empty state filter")
	}
	return f, nil
}

func fixupCount(args []check.FixupArg) (any, error) {
	if a := args[1]; a.Present && a.Const {
		f, err := parseCountFilter(a.Str)
		if err != nil {
			return nil, check.ArgError(1, "%v", err)
		}
		return f, nil
	}
	return nil, nil
}

// ---- per-message state ----

// selection is what ds_select_dst left for one partition: the current
// destination first, then the failover ones, then the default.
type selection struct {
	list []*Dest
}

type msgState struct {
	parts map[string]*selection
}

func getState(m *msgctx.Msg) *msgState {
	return m.ModData(Name, func() any { return &msgState{parts: map[string]*selection{}} }).(*msgState)
}

func peekSelection(m *msgctx.Msg, part string) *selection {
	s, ok := m.Mod[Name].(*msgState)
	if !ok {
		return nil
	}
	return s.parts[part]
}

// Current is the destination ds_select_dst/ds_next_dst last chose for m in
// the default partition ("" when none), for other modules and tests.
func Current(m *msgctx.Msg) string {
	if s := peekSelection(m, DefaultPartition); s != nil && len(s.list) > 0 {
		return s.list[0].URI
	}
	return ""
}

func logErr(m *msgctx.Msg, format string, args ...any) {
	if m.Host != nil {
		m.Host.Log(m, msgctx.LErr, "dispatcher: "+fmt.Sprintf(format, args...))
	}
}

// ---- hashing ----

func hashString(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(strings.TrimSpace(s)))
	v := h.Sum32()
	if v == 0 {
		v = 1 // 0 means "no hash" to the selection
	}
	return v
}

// uriKey is what the URI algorithms hash: user@host[:port] without the
// protocol's default port, or the user alone with the u flag.
func uriKey(u *sip.Uri, userOnly bool) string {
	if userOnly {
		return u.User
	}
	k := u.User + "@" + strings.ToLower(u.Host)
	def := 5060
	if strings.EqualFold(u.Scheme, "sips") {
		def = 5061
	}
	if u.Port != 0 && u.Port != def {
		k += ":" + strconv.Itoa(u.Port)
	}
	return k
}

func authUser(req *sip.Request) string {
	for _, name := range []string{"Proxy-Authorization", "Authorization"} {
		h := req.GetHeader(name)
		if h == nil {
			continue
		}
		v := h.Value()
		i := strings.Index(strings.ToLower(v), "username=")
		if i < 0 {
			continue
		}
		v = strings.TrimSpace(v[i+len("username="):])
		if strings.HasPrefix(v, `"`) {
			if j := strings.IndexByte(v[1:], '"'); j >= 0 {
				return v[1 : j+1]
			}
		}
		if j := strings.IndexAny(v, ", "); j >= 0 {
			v = v[:j]
		}
		return v
	}
	return ""
}

// format is a hash_pvar string: text with pseudo-variables.
type format struct {
	parts []fpart
}

type fpart struct {
	text string
	ref  *pvar.Ref
}

func compileFormat(s string) (*format, error) {
	f := &format{}
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '$' && i+1 < len(s) && s[i+1] != '$' {
			pv, n, err := syntax.ParsePVar(s[i:], lsource.Pos{})
			if err != nil {
				return nil, err
			}
			if pv.Name == "var" || pv.Name == "avp" {
				return nil, fmt.Errorf("$%s cannot be used here yet (a module has no access to script variables when the script loads)", pv.Name)
			}
			ref, err := pvar.Compile(pv, nil)
			if err != nil {
				return nil, err
			}
			if lit.Len() > 0 {
				f.parts = append(f.parts, fpart{text: lit.String()})
				lit.Reset()
			}
			f.parts = append(f.parts, fpart{ref: ref})
			i += n - 1
			continue
		}
		lit.WriteByte(s[i])
	}
	if lit.Len() > 0 {
		f.parts = append(f.parts, fpart{text: lit.String()})
	}
	return f, nil
}

func (f *format) expand(m *msgctx.Msg) string {
	var b strings.Builder
	for _, p := range f.parts {
		if p.ref != nil {
			b.WriteString(p.ref.Get(m).AsString())
		} else {
			b.WriteString(p.text)
		}
	}
	return b.String()
}

// hashFor computes the hash an algorithm uses (0, false: none).
func hashFor(m *msgctx.Msg, alg int, f Flags, c *config) (uint32, bool, error) {
	req := m.Req
	switch alg {
	case AlgCallID:
		if req == nil || req.CallID() == nil {
			return 0, false, fmt.Errorf("cannot hash the Call-ID")
		}
		return hashString(req.CallID().Value()), true, nil
	case AlgFrom:
		if req == nil || req.From() == nil {
			return 0, false, fmt.Errorf("cannot hash the From URI")
		}
		return hashString(uriKey(&req.From().Address, f.UserOnly)), true, nil
	case AlgTo:
		if req == nil || req.To() == nil {
			return 0, false, fmt.Errorf("cannot hash the To URI")
		}
		return hashString(uriKey(&req.To().Address, f.UserOnly)), true, nil
	case AlgRURI:
		if req == nil {
			return 0, false, fmt.Errorf("cannot hash the Request-URI")
		}
		return hashString(uriKey(&req.Recipient, f.UserOnly)), true, nil
	case AlgAuthUser:
		if req == nil {
			return 0, false, nil
		}
		if u := authUser(req); u != "" {
			return hashString(u), true, nil
		}
		return 0, false, nil // round robin
	case AlgRandom:
		return rand.Uint32() | 1, true, nil
	case AlgHashPVar:
		if c.hash == nil {
			return 0, false, fmt.Errorf("algorithm 7 needs the hash_pvar modparam")
		}
		s := strings.TrimSpace(c.hash.expand(m))
		if s == "" {
			return 0, false, fmt.Errorf("hash_pvar is empty for this message")
		}
		return hashString(s), true, nil
	}
	return 0, false, nil
}

// ---- selection ----

func (d *Dest) active() bool { return d.state == Active }

// pick chooses a destination of s (OpenSIPS's ds_select_dst): a candidate
// by the algorithm and weights, then the next usable one. It returns the
// index or -1. s.mu must be held.
func (s *Set) pick(alg int, hash uint32, hashed bool, f Flags) int {
	nr := len(s.Dests)
	if nr == 0 {
		return -1
	}
	activeNr := 0
	for _, d := range s.Dests {
		if d.active() {
			activeNr++
		}
	}
	if activeNr == 0 {
		return -1
	}
	size := nr
	if f.UseDefault && nr > 1 {
		size = nr - 1
	}
	if s.last >= size {
		s.last = 0
	}
	id := -1
	switch {
	case hashed:
	case alg == AlgRoundRobin:
		if d := s.Dests[s.last]; d.rrCount < d.Weight {
			id = s.last
		} else {
			d.rrCount = 0
			id = (s.last + 1) % size
		}
	case alg == AlgAuthUser: // no credentials: plain round robin
		id = (s.last + 1) % size
	default: // 8 first, unknown algorithms: the first entry
		id = 0
	}
	if id < 0 {
		total := 0
		for _, d := range s.Dests[:size] {
			total += d.Weight
		}
		if total > 0 {
			r := int(hash % uint32(total))
			for id = 0; id < size; id++ {
				if r < s.Dests[id].Weight {
					break
				}
				r -= s.Dests[id].Weight
			}
		} else {
			id = int(hash % uint32(size))
		}
	}
	if s.Dests[id].active() {
		return id
	}
	if !hashed {
		for i := (id + 1) % size; i != id; i = (i + 1) % size {
			if s.Dests[i].active() {
				return i
			}
		}
	} else {
		// rehash over the usable destinations, by their weights
		var act []int
		total := 0
		for i, d := range s.Dests[:size] {
			if d.active() {
				act = append(act, i)
				total += d.Weight
			}
		}
		if len(act) > 0 {
			if total > 0 {
				r := int(hash % uint32(total))
				for _, i := range act {
					if r < s.Dests[i].Weight {
						return i
					}
					r -= s.Dests[i].Weight
				}
			}
			return act[int(hash%uint32(len(act)))]
		}
	}
	if f.UseDefault && s.Dests[nr-1].active() {
		return nr - 1
	}
	return -1
}

// failoverList is the destinations after the chosen one (id) in set order,
// wrapping around, usable ones only, at most max in all (0: no limit), the
// default last.
func (s *Set) failoverList(id int, f Flags) []*Dest {
	nr := len(s.Dests)
	list := []*Dest{s.Dests[id]}
	if !f.Failover {
		return list
	}
	defIdx := -1
	if f.UseDefault && nr > 1 {
		defIdx = nr - 1
	}
	for k := 1; k < nr; k++ {
		i := (id + k) % nr
		if i == defIdx || !s.Dests[i].active() {
			continue
		}
		if f.MaxResults > 0 && len(list) >= f.MaxResults {
			break
		}
		list = append(list, s.Dests[i])
	}
	if defIdx >= 0 && defIdx != id {
		list = append(list, s.Dests[defIdx])
	}
	return list
}

// pointAt points the message at d: $du, or the R-URI's host and port.
func pointAt(m *msgctx.Msg, d *Dest, domain bool) error {
	if !domain {
		m.DstURI = d.DstURI
		return nil
	}
	if m.Req == nil {
		return fmt.Errorf("there is no request")
	}
	host := d.uri.Host
	if strings.IndexByte(host, ':') >= 0 && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	m.Req.Recipient.Host = host
	m.Req.Recipient.Port = d.uri.Port
	return nil
}

func selectCall(m *msgctx.Msg, a *modules.Args, domain bool) int {
	fn := "ds_select_dst"
	if domain {
		fn = "ds_select_domain"
	}
	setID, alg := a.Int(0), a.Int(1)
	var f Flags
	if a.Has(2) {
		var err error
		if f, err = ParseFlags(a.Str(2)); err != nil {
			logErr(m, "%s: %v", fn, err)
			return -1
		}
	}
	partName := DefaultPartition
	if a.Has(3) && strings.TrimSpace(a.Str(3)) != "" {
		partName = strings.TrimSpace(a.Str(3))
	}
	if a.Has(4) && a.Int(4) > 0 {
		f.MaxResults = a.Int(4)
	}
	p, err := lookupPartition(partName)
	if err != nil {
		logErr(m, "%s: %v", fn, err)
		return -1
	}
	c := cur.Load()
	s := p.d.Load().set(setID)
	if s == nil {
		logErr(m, "%s: destination set [%d] not found in partition [%s]", fn, setID, partName)
		return -1
	}
	if alg == AlgPVarLoad || alg == AlgRoute {
		alg = AlgFirst
	}
	hash, hashed, err := hashFor(m, alg, f, c)
	if err != nil {
		logErr(m, "%s: %v", fn, err)
		return -1
	}
	s.mu.Lock()
	id := s.pick(alg, hash, hashed, f)
	if id < 0 {
		s.mu.Unlock()
		return -1
	}
	s.last = id
	if alg == AlgRoundRobin {
		s.Dests[id].rrCount++
	}
	list := s.failoverList(id, f)
	s.mu.Unlock()
	if err := pointAt(m, list[0], domain); err != nil {
		logErr(m, "%s: %v", fn, err)
		return -1
	}
	list[0].hits.Add(1)
	st := getState(m)
	sel := st.parts[partName]
	if sel != nil && f.Append {
		sel.list = append(list, sel.list...)
	} else {
		st.parts[partName] = &selection{list: list}
	}
	return 1
}

// ds_select_dst(set, alg[, flags[, partition[, max_res]]])
func callSelectDst(m *msgctx.Msg, a *modules.Args) int { return selectCall(m, a, false) }

// ds_select_domain(set, alg[, flags[, partition[, max_res]]])
func callSelectDomain(m *msgctx.Msg, a *modules.Args) int { return selectCall(m, a, true) }

func partArg(a *modules.Args, i int) string {
	if a.Has(i) {
		if s := strings.TrimSpace(a.Str(i)); s != "" {
			return s
		}
	}
	return DefaultPartition
}

func nextCall(m *msgctx.Msg, a *modules.Args, domain bool) int {
	sel := peekSelection(m, partArg(a, 0))
	if sel == nil || len(sel.list) < 2 {
		if sel != nil {
			sel.list = nil
		}
		return -1
	}
	sel.list = sel.list[1:]
	if err := pointAt(m, sel.list[0], domain); err != nil {
		logErr(m, "ds_next: %v", err)
		return -1
	}
	return 1
}

// ds_next_dst([partition])
func callNextDst(m *msgctx.Msg, a *modules.Args) int { return nextCall(m, a, false) }

// ds_next_domain([partition])
func callNextDomain(m *msgctx.Msg, a *modules.Args) int { return nextCall(m, a, true) }

// ds_mark_dst([state[, partition]])
func callMarkDst(m *msgctx.Msg, a *modules.Args) int {
	st := Inactive
	if a.Has(0) && strings.TrimSpace(a.Str(0)) != "" {
		var ok bool
		if st, ok = ParseState(a.Str(0)); !ok {
			logErr(m, "ds_mark_dst: bad state %q", a.Str(0))
			return -1
		}
	}
	partName := partArg(a, 1)
	sel := peekSelection(m, partName)
	if sel == nil || len(sel.list) == 0 {
		return -1
	}
	p, err := lookupPartition(partName)
	if err != nil {
		logErr(m, "ds_mark_dst: %v", err)
		return -1
	}
	d := sel.list[0]
	s, dst := p.d.Load().find(d.Set, d.URI)
	if dst == nil {
		return -1 // reloaded away
	}
	p.setState(s, dst, st, st == Probing)
	return 1
}

func sameIP(a, b net.IP) bool { return a.Equal(b) }

// InList tells whether ip:port (port 0: any) is a destination of set (-1:
// any set) of a partition.
func InList(partName, ipStr string, port, set int, activeOnly bool) (bool, error) {
	p, err := lookupPartition(partName)
	if err != nil {
		return false, err
	}
	ip := net.ParseIP(strings.Trim(strings.TrimSpace(ipStr), "[]"))
	if ip == nil {
		return false, fmt.Errorf("%q is not an IP address", ipStr)
	}
	d := p.d.Load()
	for _, id := range d.order {
		if set != -1 && set != id {
			continue
		}
		s := d.sets[id]
		s.mu.Lock()
		for _, dst := range s.Dests {
			if port != 0 && port != dst.port {
				continue
			}
			if activeOnly && !dst.active() {
				continue
			}
			for _, dip := range dst.ips {
				if sameIP(dip, ip) {
					s.mu.Unlock()
					return true, nil
				}
			}
		}
		s.mu.Unlock()
	}
	return false, nil
}

// ds_is_in_list(ip, port[, set[, partition[, active_only]]])
func callIsInList(m *msgctx.Msg, a *modules.Args) int {
	set := -1
	if a.Has(2) {
		set = a.Int(2)
	}
	port, _ := a.Val(1).AsInt()
	ok, err := InList(partArg(a, 3), a.Str(0), port, set, a.Has(4) && a.Int(4) != 0)
	if err != nil {
		logErr(m, "ds_is_in_list: %v", err)
		return -1
	}
	if ok {
		return 1
	}
	return -1
}

// Count is ds_count: the destinations of a set whose state the filter
// takes (letters a, i, p).
func Count(partName string, set int, filter string) (int, error) {
	f, err := parseCountFilter(filter)
	if err != nil {
		return 0, err
	}
	return count(partName, set, f)
}

func count(partName string, set int, f countFilter) (int, error) {
	p, err := lookupPartition(partName)
	if err != nil {
		return 0, err
	}
	s := p.d.Load().set(set)
	if s == nil {
		return 0, fmt.Errorf("set %d not found", set)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, d := range s.Dests {
		switch {
		case d.active():
			if f.active {
				n++
			}
		case d.state&Inactive != 0:
			if f.inactive {
				n++
			}
		default:
			if f.probing {
				n++
			}
		}
	}
	return n, nil
}

// ds_count(set, filter, result[, partition])
func callCount(m *msgctx.Msg, a *modules.Args) int {
	f, ok := a.Fix.(countFilter)
	if !ok {
		var err error
		if f, err = parseCountFilter(a.Str(1)); err != nil {
			logErr(m, "ds_count: %v", err)
			return -1
		}
	}
	n, err := count(partArg(a, 3), a.Int(0), f)
	if err != nil {
		logErr(m, "ds_count: %v", err)
		return -1
	}
	if err := a.Ref(2).Set(m, "=", value.I(n)); err != nil {
		logErr(m, "ds_count: setting %s: %v", a.Ref(2).Text, err)
		return -1
	}
	return 1
}
