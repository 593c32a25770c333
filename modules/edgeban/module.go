// Package edgeban is a sipedge-only module (OpenSIPS has no equivalent):
// the in-process answer to the seed's "weaknesses of fail2ban". It counts
// suspicious events per source IP address (the script calls
// edgeban_event(), or every L_ALERT line of the alert stream counts),
// bans an address that reaches `threshold` events within `window`
// seconds for `ban_time` seconds, and the SIP runtime then drops that
// address's packets before parsing them (see gate). An address a
// registered contact uses (received or Contact host in the usrloc table)
// is never banned, and whitelisted networks never are. Bans are kept in a
// SQLite table (db_url) so they survive restarts.
package edgeban

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/modules/edgeban/gate"
	"github.com/sipedge/sipedge/runtime/mi"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "edgeban"

// Defaults of the modparams.
const (
	DefaultThreshold  = 5
	DefaultWindow     = 600  // seconds
	DefaultBanTime    = 3600 // seconds
	DefaultTable      = "edgeban"
	DefaultMaxTracked = 100000
	DefaultLogLevel   = msgctx.LNotice
)

// Return codes of the script functions.
const (
	RetCounted   = 1  // edgeban_event: counted, under the threshold
	RetBanned    = 2  // edgeban_event: the address is banned (now or before)
	RetError     = -1 // bad address
	RetExempt    = -2 // whitelisted, or used by a registered contact
	RetNotBanned = -1 // edgeban_check / edgeban_del
)

type config struct {
	threshold        int
	window           int64 // nanoseconds
	banTime          int64 // seconds; 0: bans never end
	db               *store.DB
	table            string
	whitelist        []netip.Prefix
	exemptRegistered bool
	locations        []string // usrloc tables checked for registered contacts
	countAlerts      bool
	dropEarly        bool
	maxTracked       int
	logLevel         int
}

func (c *config) whitelisted(ip netip.Addr) bool {
	for _, p := range c.whitelist {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func defaultConfig() *config {
	return &config{threshold: DefaultThreshold, window: DefaultWindow * int64(time.Second), banTime: DefaultBanTime,
		table: DefaultTable, exemptRegistered: true, locations: []string{"location"}, dropEarly: true,
		maxTracked: DefaultMaxTracked, logLevel: DefaultLogLevel}
}

var (
	cur       atomic.Pointer[config]
	sweepOnce sync.Once
)

func init() {
	cur.Store(defaultConfig())
	optStr := check.ArgSpec{Kind: check.ArgStr, Optional: true}
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "threshold", Kind: modules.ParamInt, Default: value.I(DefaultThreshold)},
			{Name: "window", Kind: modules.ParamInt, Default: value.I(DefaultWindow)},
			{Name: "ban_time", Kind: modules.ParamInt, Default: value.I(DefaultBanTime)},
			{Name: "db_url", Kind: modules.ParamStr},
			{Name: "table", Kind: modules.ParamStr, Default: value.S(DefaultTable)},
			{Name: "whitelist", Kind: modules.ParamStr, Multi: true},
			{Name: "exempt_registered", Kind: modules.ParamInt, Default: value.I(1)},
			{Name: "location_table", Kind: modules.ParamStr, Multi: true},
			{Name: "count_alerts", Kind: modules.ParamInt, Default: value.I(0)},
			{Name: "drop_early", Kind: modules.ParamInt, Default: value.I(1)},
			{Name: "max_tracked", Kind: modules.ParamInt, Default: value.I(DefaultMaxTracked)},
			{Name: "log_level", Kind: modules.ParamInt, Default: value.I(DefaultLogLevel)},
		},
		Configure: configure,
		Funcs: []*modules.Func{
			{Name: "edgeban_event", Args: []check.ArgSpec{optStr, optStr}, Fixup: fixupIP(0), Call: callEvent},
			{Name: "edgeban_check", Args: []check.ArgSpec{optStr}, Fixup: fixupIP(0), Call: callCheck},
			{Name: "edgeban_add", Args: []check.ArgSpec{optStr, {Kind: check.ArgInt, Optional: true}, optStr},
				Fixup: fixupIP(0), Call: callAdd},
			{Name: "edgeban_del", Args: []check.ArgSpec{optStr}, Fixup: fixupIP(0), Call: callDel},
		},
		MI: []modules.MICommand{
			{Name: "edgeban_list", Help: "Params: none ; the banned addresses", Run: miList},
			{Name: "edgeban_add", Help: "Params: ip [, seconds [, reason]] ; ban an address (no exemptions apply)", Run: miAdd},
			{Name: "edgeban_rm", Help: "Params: ip ; lift a ban", Run: miRemove},
			{Name: "edgeban_counters", Help: "Params: none ; event counts per address inside the window", Run: miCounters},
		},
	})
	mi.DeclareParams("edgeban_list", []string{})
	mi.DeclareParams("edgeban_counters", []string{})
	mi.DeclareParams("edgeban_add", []string{"ip"}, []string{"ip", "seconds"}, []string{"ip", "seconds", "reason"})
	mi.DeclareParams("edgeban_rm", []string{"ip"})
}

// parseNet reads a whitelist entry: an address or a CIDR network.
func parseNet(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, ok := parseIP(s)
	if !ok {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or network", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func configure(p modules.Params) (func(), error) {
	c := &config{
		threshold:        p.Int("threshold"),
		window:           int64(p.Int("window")) * int64(time.Second),
		banTime:          int64(p.Int("ban_time")),
		table:            strings.TrimSpace(p.Str("table")),
		exemptRegistered: p.Int("exempt_registered") != 0,
		countAlerts:      p.Int("count_alerts") != 0,
		dropEarly:        p.Int("drop_early") != 0,
		maxTracked:       p.Int("max_tracked"),
		logLevel:         p.Int("log_level"),
	}
	switch {
	case c.threshold < 1:
		return nil, fmt.Errorf("threshold must be at least 1 (got %d)", c.threshold)
	case c.window <= 0:
		return nil, fmt.Errorf("window must be a positive number of seconds (got %d)", p.Int("window"))
	case c.banTime < 0:
		return nil, fmt.Errorf("ban_time cannot be negative (0 bans for good; got %d)", c.banTime)
	case c.maxTracked < 1:
		return nil, fmt.Errorf("max_tracked must be positive (got %d)", c.maxTracked)
	case c.logLevel < msgctx.LAlert || c.logLevel > msgctx.LDbg:
		return nil, fmt.Errorf("log_level %d: want -3 (L_ALERT) … 4 (L_DBG)", c.logLevel)
	}
	if err := store.CheckIdent("table", c.table); err != nil {
		return nil, err
	}
	for _, v := range p.All("whitelist") {
		for _, item := range strings.FieldsFunc(v.AsString(), func(r rune) bool { return r == ',' || r == ' ' || r == ';' }) {
			n, err := parseNet(item)
			if err != nil {
				return nil, fmt.Errorf("whitelist: %v", err)
			}
			c.whitelist = append(c.whitelist, n)
		}
	}
	for _, v := range p.All("location_table") {
		if t := strings.TrimSpace(v.AsString()); t != "" {
			c.locations = append(c.locations, t)
		}
	}
	if len(c.locations) == 0 {
		c.locations = []string{"location"}
	}
	var restored []*ban
	var dbPath string
	create := false
	if u := strings.TrimSpace(p.Str("db_url")); u != "" {
		db, err := store.Open(u)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// sipedge's own table, created when the generation goes live if
		// missing (a load that is only checked changes nothing)
		if err := db.CheckVersion(ctx, c.table, 0); err != nil {
			create = true
		} else if restored, err = readBans(ctx, db, c.table, clock()/int64(time.Second)); err != nil {
			return nil, fmt.Errorf("reading table %s: %w", c.table, err)
		}
		c.db, dbPath = db, db.Path
	}
	return func() {
		if create {
			if err := c.createTable(); err != nil {
				logBackground(msgctx.LErr, fmt.Sprintf("edgeban: creating table %s: %v (bans are not kept)", c.table, err))
				c.db = nil
			}
		}
		cur.Store(c)
		st.restore(c, dbPath, restored)
		if err := c.deleteExpired(); err != nil {
			logBackground(msgctx.LErr, fmt.Sprintf("edgeban: deleting ended bans: %v", err))
		}
		if c.countAlerts {
			gate.SetAlertHandler(onAlert)
		} else {
			gate.SetAlertHandler(nil)
		}
		sweepOnce.Do(func() { go sweeper() })
	}, nil
}

// sweeper lifts expired bans every second, for the life of the process.
func sweeper() {
	for {
		time.Sleep(time.Second)
		c := cur.Load()
		for _, ip := range st.sweep(c) {
			logBackground(c.logLevel, "edgeban: ban of "+ip.String()+" expired")
		}
	}
}

func logBackground(level int, text string) {
	gate.Log(level, text)
}

// ---- arguments ----

// parseIP reads an address, with or without brackets or a :port.
func parseIP(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}, false
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

func fixupIP(i int) func([]check.FixupArg) (any, error) {
	return func(args []check.FixupArg) (any, error) {
		if a := args[i]; a.Present && a.Const && strings.TrimSpace(a.Str) != "" {
			if _, ok := parseIP(a.Str); !ok {
				return nil, check.ArgError(i, "%q is not an IP address", a.Str)
			}
		}
		return nil, nil
	}
}

// ipArg is argument i, or the message's source address ($si) when absent
// or empty.
func ipArg(m *msgctx.Msg, a *modules.Args, i int, fn string) (netip.Addr, bool) {
	s := ""
	if a.Has(i) {
		s = strings.TrimSpace(a.Str(i))
	}
	if s == "" {
		s = m.Src.IP
	}
	ip, ok := parseIP(s)
	if !ok {
		logMsg(m, msgctx.LErr, fmt.Sprintf("edgeban: %s: %q is not an IP address", fn, s))
	}
	return ip, ok
}

func logMsg(m *msgctx.Msg, level int, text string) {
	if m != nil && m.Host != nil {
		m.Host.Log(m, level, text)
		return
	}
	logBackground(level, text)
}

func banLine(b *ban) string {
	d := "for good"
	if b.until != 0 {
		d = fmt.Sprintf("for %ds", b.until-b.since)
	}
	line := fmt.Sprintf("edgeban: banned %s %s", b.ip, d)
	if b.events > 0 {
		line += fmt.Sprintf(" after %d events", b.events)
	}
	if b.reason != "" {
		line += " (" + b.reason + ")"
	}
	return line
}

// ---- script functions ----

// edgeban_event([ip[, reason]]): count one event for ip ($si by default).
func callEvent(m *msgctx.Msg, a *modules.Args) int {
	ip, ok := ipArg(m, a, 0, "edgeban_event")
	if !ok {
		return RetError
	}
	reason := ""
	if a.Has(1) {
		reason = a.Str(1)
	}
	return record(m, cur.Load(), ip, reason)
}

func record(m *msgctx.Msg, c *config, ip netip.Addr, reason string) int {
	res, b := st.event(c, ip, reason)
	switch res {
	case evBanned:
		logMsg(m, c.logLevel, banLine(b))
		return RetBanned
	case evAlready:
		return RetBanned
	case evExempt:
		if !c.whitelisted(ip) {
			logMsg(m, c.logLevel, fmt.Sprintf("edgeban: not banning %s: a registered contact uses it", ip))
		}
		return RetExempt
	}
	return RetCounted
}

// edgeban_check([ip]): 1 when ip ($si) is banned, -1 when not.
func callCheck(m *msgctx.Msg, a *modules.Args) int {
	ip, ok := ipArg(m, a, 0, "edgeban_check")
	if !ok {
		return RetError
	}
	if st.banned(ip) != nil {
		return 1
	}
	return RetNotBanned
}

// edgeban_add([ip[, seconds[, reason]]]): ban ip ($si) for seconds
// (absent or 0: ban_time). Exempt addresses are refused (-2).
func callAdd(m *msgctx.Msg, a *modules.Args) int {
	ip, ok := ipArg(m, a, 0, "edgeban_add")
	if !ok {
		return RetError
	}
	c := cur.Load()
	secs := c.banTime
	if a.Has(1) {
		n, ok := a.Val(1).AsInt()
		if !ok {
			if n2, err := strconv.Atoi(strings.TrimSpace(a.Str(1))); err == nil {
				n, ok = n2, true
			}
		}
		if !ok || n < 0 {
			logMsg(m, msgctx.LErr, fmt.Sprintf("edgeban: edgeban_add: bad duration %q", a.Str(1)))
			return RetError
		}
		if n > 0 {
			secs = int64(n)
		}
	}
	if c.whitelisted(ip) || (c.exemptRegistered && registered(c, ip)) {
		logMsg(m, c.logLevel, fmt.Sprintf("edgeban: not banning %s: exempt (whitelisted or registered)", ip))
		return RetExempt
	}
	reason := "edgeban_add"
	if a.Has(2) && a.Str(2) != "" {
		reason = a.Str(2)
	}
	b := newBan(ip, secs, reason)
	st.add(c, b)
	logMsg(m, c.logLevel, banLine(b))
	return 1
}

func newBan(ip netip.Addr, secs int64, reason string) *ban {
	now := clock() / int64(time.Second)
	b := &ban{ip: ip, since: now, reason: reason}
	if secs > 0 {
		b.until = now + secs
	}
	return b
}

// edgeban_del([ip]): lift the ban of ip ($si): 1, or -1 when not banned.
func callDel(m *msgctx.Msg, a *modules.Args) int {
	ip, ok := ipArg(m, a, 0, "edgeban_del")
	if !ok {
		return RetError
	}
	c := cur.Load()
	if !st.remove(c, ip) {
		return RetNotBanned
	}
	logMsg(m, c.logLevel, "edgeban: ban of "+ip.String()+" lifted")
	return 1
}

// ---- the alert stream (count_alerts) ----

// onAlert counts an alert line for the address it starts with, read as
// scripts/fail2ban's filter reads it: the first word must be "IP:port"
// ($si:$sp) — "[IPv6]:port" or a bare IPv6 address followed by ":port".
// Lines that do not start so are not counted. The second word (the
// category) is the reason.
func onAlert(text string) {
	c := cur.Load()
	if !c.countAlerts {
		return
	}
	fields := strings.Fields(text)
	if len(fields) == 0 {
		return
	}
	ip, ok := alertAddr(fields[0])
	if !ok {
		return
	}
	reason := ""
	if len(fields) > 1 {
		reason = fields[1]
	}
	record(nil, c, ip, reason)
}

// alertAddr reads "IP:port", "[IPv6]:port" or "IPv6:port" (the port is
// required, as fail2ban's filter requires it, so "2001:db8::5:5060" is
// 2001:db8::5 for both).
func alertAddr(tok string) (netip.Addr, bool) {
	if strings.HasPrefix(tok, "[") {
		ap, err := netip.ParseAddrPort(tok)
		if err != nil || ap.Addr().Zone() != "" {
			return netip.Addr{}, false
		}
		return ap.Addr().Unmap(), true
	}
	i := strings.LastIndexByte(tok, ':')
	if i <= 0 || i == len(tok)-1 {
		return netip.Addr{}, false
	}
	if _, err := strconv.ParseUint(tok[i+1:], 10, 16); err != nil {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(tok[:i])
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// ---- Go API ----

// Banned tells whether ip is banned now.
func Banned(ip string) bool {
	a, ok := parseIP(ip)
	return ok && st.banned(a) != nil
}

// Ban bans ip for d (0: ban_time), as the MI command does (no exemptions).
func Ban(ip string, d time.Duration, reason string) error {
	a, ok := parseIP(ip)
	if !ok {
		return fmt.Errorf("bad IP %q", ip)
	}
	c := cur.Load()
	secs := int64(d / time.Second)
	if secs <= 0 {
		secs = c.banTime
	}
	st.add(c, newBan(a, secs, reason))
	return nil
}

// Unban lifts the ban of ip; it reports whether there was one.
func Unban(ip string) bool {
	a, ok := parseIP(ip)
	return ok && st.remove(cur.Load(), a)
}

// ---- MI ----

type miError struct {
	code int
	msg  string
}

func (e *miError) Error() string { return e.msg }
func (e *miError) MICode() int   { return e.code }

func ipParam(params map[string]any) (netip.Addr, error) {
	v, ok := params["ip"]
	if !ok {
		return netip.Addr{}, &miError{code: mi.CodeInvalidParams, msg: "missing parameter ip"}
	}
	s, _ := v.(string)
	ip, ok := parseIP(s)
	if !ok {
		return netip.Addr{}, &miError{code: 400, msg: "bad IP"}
	}
	return ip, nil
}

func miList(map[string]any) (any, error) {
	now := clock() / int64(time.Second)
	list := st.list()
	out := make([]any, 0, len(list))
	for _, b := range list {
		var left any = "never"
		if b.until != 0 {
			left = b.until - now
		}
		var dropped uint64
		if b.entry != nil {
			dropped = b.entry.Dropped.Load()
		}
		out = append(out, map[string]any{
			"ip":      b.ip.String(),
			"since":   time.Unix(b.since, 0).UTC().Format(time.RFC3339),
			"expires": left,
			"reason":  b.reason,
			"events":  b.events,
			"dropped": dropped,
		})
	}
	return map[string]any{"Bans": out, "Dropped": gate.Dropped()}, nil
}

func miAdd(params map[string]any) (any, error) {
	ip, err := ipParam(params)
	if err != nil {
		return nil, err
	}
	c := cur.Load()
	secs := c.banTime
	if v, ok := params["seconds"]; ok {
		var n int64
		switch v := v.(type) {
		case int:
			n = int64(v)
		case int64:
			n = v
		case float64:
			n = int64(v)
		case string:
			x, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return nil, &miError{code: mi.CodeInvalidParams, msg: "Bad type for parameter 'seconds'"}
			}
			n = x
		default:
			return nil, &miError{code: mi.CodeInvalidParams, msg: "Bad type for parameter 'seconds'"}
		}
		if n < 0 {
			return nil, &miError{code: 400, msg: "negative duration"}
		}
		if n > 0 {
			secs = n
		}
	}
	reason := "mi"
	if v, ok := params["reason"].(string); ok && v != "" {
		reason = v
	}
	b := newBan(ip, secs, reason)
	st.add(c, b)
	logBackground(c.logLevel, banLine(b))
	return "OK", nil
}

func miRemove(params map[string]any) (any, error) {
	ip, err := ipParam(params)
	if err != nil {
		return nil, err
	}
	c := cur.Load()
	if !st.remove(c, ip) {
		return nil, &miError{code: 404, msg: "IP not banned"}
	}
	logBackground(c.logLevel, "edgeban: ban of "+ip.String()+" lifted")
	return "OK", nil
}

func miCounters(map[string]any) (any, error) {
	counts := st.counts(cur.Load())
	ips := make([]netip.Addr, 0, len(counts))
	for ip := range counts {
		ips = append(ips, ip)
	}
	sortAddrs(ips)
	out := make([]any, 0, len(ips))
	for _, ip := range ips {
		out = append(out, map[string]any{"ip": ip.String(), "events": counts[ip]})
	}
	return map[string]any{"Counters": out}, nil
}
