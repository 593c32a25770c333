package dialog

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/events"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

// modKey is where a message keeps its dialog (msgctx.Msg.Mod).
const modKey = "dialog"

// msgDlg is the dialog a message belongs to.
type msgDlg struct {
	d       *Dialog
	dir     int  // DirDownstream / DirUpstream for sequential requests
	created bool // create_dialog ran on this request
}

// Current returns the dialog of the message being processed, or nil.
func Current(m *msgctx.Msg) *Dialog {
	if md, ok := m.Mod[modKey].(*msgDlg); ok {
		return md.d
	}
	return nil
}

func currentCtx(m *msgctx.Msg) *msgDlg {
	md, _ := m.Mod[modKey].(*msgDlg)
	return md
}

func setCurrent(m *msgctx.Msg, md *msgDlg) {
	if m.Mod == nil {
		m.Mod = make(map[string]any, 2)
	}
	m.Mod[modKey] = md
}

// ---- hooks for modules built on dialogs (fraud_detection) ----

// EndHook runs when a dialog ends. failed is true for a dialog that was
// never confirmed; duration is the seconds since confirmation.
type EndHook func(d *Dialog, failed bool, duration int64)

// LoadHook runs for every dialog restored from the database at start.
type LoadHook func(d *Dialog)

var (
	hookMu    sync.Mutex
	endHooks  atomic.Pointer[[]EndHook]
	loadHooks atomic.Pointer[[]LoadHook]
)

// OnEnd registers an EndHook (modules call it in init).
func OnEnd(h EndHook) {
	hookMu.Lock()
	defer hookMu.Unlock()
	var cur []EndHook
	if p := endHooks.Load(); p != nil {
		cur = *p
	}
	next := append(append([]EndHook(nil), cur...), h)
	endHooks.Store(&next)
}

// OnLoad registers a LoadHook.
func OnLoad(h LoadHook) {
	hookMu.Lock()
	defer hookMu.Unlock()
	var cur []LoadHook
	if p := loadHooks.Load(); p != nil {
		cur = *p
	}
	next := append(append([]LoadHook(nil), cur...), h)
	loadHooks.Store(&next)
}

// ---- creation ----

func tagOf(p sip.HeaderParams) string {
	if p == nil {
		return ""
	}
	t, _ := p.Get("tag")
	return t
}

func uriString(u *sip.Uri) string { return u.String() }

// Ensure returns the message's dialog, creating it for an initial request
// as create_dialog() does (check_fraud uses it).
func Ensure(m *msgctx.Msg) (*Dialog, error) {
	if d := Current(m); d != nil {
		return d, nil
	}
	return create(m, 0)
}

// create builds the dialog of an initial request.
func create(m *msgctx.Msg, cflags uint8) (*Dialog, error) {
	req := m.Req
	if req == nil {
		return nil, fmt.Errorf("no request")
	}
	if req.IsAck() || req.IsCancel() {
		return nil, fmt.Errorf("a dialog cannot be created by %s", req.Method)
	}
	from, to, cid, cseq := req.From(), req.To(), req.CallID(), req.CSeq()
	if from == nil || to == nil || cid == nil || cseq == nil {
		return nil, fmt.Errorf("request without From, To, Call-ID or CSeq")
	}
	if tagOf(to.Params) != "" {
		return nil, fmt.Errorf("not an initial request (the To header has a tag)")
	}
	cfg := liveConfig()
	now := tmr.now()
	d := &Dialog{
		callID:     strings.Clone(cid.Value()),
		fromTag:    strings.Clone(tagOf(from.Params)),
		fromURI:    from.Address.String(),
		toURI:      to.Address.String(),
		callerCSeq: cseq.SeqNo,
		callerSock: sockString(m.Local),
		state:      StateUnconfirmed,
		cflags:     cflags,
		created:    now,
		timeout:    int32(cfg.defaultTimeout),
	}
	if c := req.Contact(); c != nil {
		d.callerContact = c.Address.String()
	}
	d.callerRoute = joinRoutes(req.GetHeaders("Record-Route"))
	tbl.insert(d, cfg.hashSize)
	// until a final reply confirms or fails it, the dialog lives at most
	// its lifetime (a transaction always ends sooner)
	d.mu.Lock()
	d.expires = now + int64(d.timeout)
	exp := d.expires
	d.mu.Unlock()
	tmr.schedule(d, exp)
	setCurrent(m, &msgDlg{d: d, created: true, dir: DirDownstream})
	if cfg.rrParam != "" && cfg.matchMode != 2 {
		m.RR.Params += ";" + cfg.rrParam + "=" + d.DID()
	}
	raiseState(d, 0, StateUnconfirmed)
	return d, nil
}

func sockString(a msgctx.Addr) string {
	if a.IP == "" {
		return ""
	}
	proto := a.Proto
	if proto == "" {
		proto = "udp"
	}
	return proto + ":" + a.IP + ":" + strconv.Itoa(a.Port)
}

// joinRoutes flattens Record-Route headers into one comma-separated list.
func joinRoutes(hs []sip.Header) string {
	if len(hs) == 0 {
		return ""
	}
	parts := make([]string, 0, len(hs))
	for _, h := range hs {
		parts = append(parts, strings.TrimSpace(h.Value()))
	}
	return strings.Join(parts, ",")
}

// calleeRouteSet is the route set toward the callee: the 2xx's
// Record-Route entries above ours (marked with our did), in reverse.
func calleeRouteSet(res *sip.Response, did, rrParam string, callerN int) string {
	all := msgctx.SplitRouteList(joinRoutes(res.GetHeaders("Record-Route")))
	mark := rrParam + "=" + did
	n := -1
	for i, r := range all {
		if strings.Contains(r, mark) {
			n = i
			break
		}
	}
	if n < 0 {
		n = len(all) - callerN
	}
	if n <= 0 {
		return ""
	}
	rev := make([]string, 0, n)
	for i := n - 1; i >= 0; i-- {
		rev = append(rev, all[i])
	}
	return strings.Join(rev, ",")
}

// ---- state changes ----

var stateNames = [...]string{"", "unconfirmed", "early", "confirmed_not_acked", "confirmed", "deleted"}

func raiseState(d *Dialog, old, next State) {
	if !events.HasSubscribers() {
		return
	}
	d.mu.Lock()
	params := []events.Param{
		events.Int("hash_entry", int(d.entry)),
		events.Int("hash_id", int(d.hid)),
		events.Str("id", strconv.FormatUint(d.ID(), 10)),
		events.Str("callid", d.callID),
		events.Str("from_tag", d.fromTag),
		events.Str("to_tag", d.toTag),
		events.Int("old_state", int(old)),
		events.Int("new_state", int(next)),
	}
	d.mu.Unlock()
	events.Raise("E_DLG_STATE_CHANGED", params...)
}

// onResponseOut follows the replies to the dialog's initial request.
func onResponseOut(mod map[string]any, req *sip.Request, code int, res *sip.Response) {
	md, ok := mod[modKey].(*msgDlg)
	if !ok || md.d == nil || req == nil {
		return
	}
	if to := req.To(); to == nil || tagOf(to.Params) != "" || !req.IsInvite() {
		return // a sequential request's transaction
	}
	d := md.d
	switch {
	case code < 200:
		if code <= 100 {
			return
		}
		d.mu.Lock()
		old := d.state
		if old != StateUnconfirmed {
			d.mu.Unlock()
			return
		}
		d.state = StateEarly
		d.mu.Unlock()
		tbl.early.Add(1)
		raiseState(d, old, StateEarly)
	case code < 300:
		confirm(d, res)
	default:
		d.mu.Lock()
		st := d.state
		d.mu.Unlock()
		if st < StateConfirmedNA {
			tbl.failed.Add(1)
			end(d, ReasonFailed)
		}
	}
}

// confirm moves a dialog to confirmed on its first 2xx.
func confirm(d *Dialog, res *sip.Response) {
	cfg := liveConfig()
	now := tmr.now()
	d.mu.Lock()
	old := d.state
	if old >= StateConfirmedNA {
		d.mu.Unlock()
		return
	}
	d.state = StateConfirmedNA
	if res != nil {
		if to := res.To(); to != nil {
			d.toTag = strings.Clone(tagOf(to.Params))
		}
		if c := res.Contact(); c != nil {
			d.calleeContact = c.Address.String()
		}
		d.calleeRoute = calleeRouteSet(res, d.DID(), cfg.rrParam, len(msgctx.SplitRouteList(d.callerRoute)))
		if src := res.Source(); src != "" {
			d.calleeSock = src
		}
	}
	d.start = now
	d.expires = now + int64(d.timeout)
	exp := d.expires
	d.persisted = dbOn()
	d.mu.Unlock()
	if old == StateEarly {
		tbl.early.Add(-1)
	}
	tmr.schedule(d, exp)
	persistUpdate(d)
	raiseState(d, old, StateConfirmedNA)
}

// onRequest matches sequential requests to their dialog before the script
// runs, and moves the dialog on ACK and BYE.
func onRequest(m *msgctx.Msg) {
	req := m.Req
	if req == nil {
		return
	}
	to := req.To()
	if to == nil {
		return
	}
	toTag := tagOf(to.Params)
	if toTag == "" {
		return
	}
	from, cid := req.From(), req.CallID()
	if from == nil || cid == nil {
		return
	}
	d, dir := tbl.match(cid.Value(), tagOf(from.Params), toTag)
	if d == nil {
		return
	}
	setCurrent(m, &msgDlg{d: d, dir: dir})
	var seq uint32
	if cs := req.CSeq(); cs != nil {
		seq = cs.SeqNo
	}
	switch {
	case req.IsAck():
		d.mu.Lock()
		old := d.state
		if old != StateConfirmedNA {
			d.mu.Unlock()
			return
		}
		d.state = StateConfirmed
		p := d.persisted
		d.mu.Unlock()
		if p {
			persistUpdate(d)
		}
		raiseState(d, old, StateConfirmed)
	case req.Method == sip.BYE:
		reason := ReasonDownstreamBYE
		if dir == DirUpstream {
			reason = ReasonUpstreamBYE
		}
		end(d, reason)
	default:
		d.mu.Lock()
		if dir == DirDownstream && seq > d.callerCSeq {
			d.callerCSeq = seq
		} else if dir == DirUpstream && seq > d.calleeCSeq {
			d.calleeCSeq = seq
		}
		d.mu.Unlock()
	}
}

// onRouteDone drops a dialog created by a request that was not relayed
// statefully (OpenSIPS destroys dialogs whose request was not sent out).
func onRouteDone(m *msgctx.Msg, stateful bool) {
	md := currentCtx(m)
	if md == nil || !md.created || stateful {
		return
	}
	d := md.d
	d.mu.Lock()
	st := d.state
	d.mu.Unlock()
	if st == StateUnconfirmed {
		tbl.failed.Add(1)
		end(d, ReasonFailed)
	}
}

// end terminates a dialog: out of the table and its profiles, out of the
// database, end hooks and the state event. It is safe to call twice.
func end(d *Dialog, reason string) bool {
	now := tmr.now()
	d.mu.Lock()
	old := d.state
	if old == StateDeleted {
		d.mu.Unlock()
		return false
	}
	d.state = StateDeleted
	d.endReason = reason
	links := d.profiles
	d.profiles = nil
	failed := old < StateConfirmedNA
	var dur int64
	if d.start > 0 {
		dur = now - d.start
	}
	persisted := d.persisted
	d.mu.Unlock()
	if old == StateEarly {
		tbl.early.Add(-1)
	}
	tbl.remove(d)
	for _, l := range links {
		l.p.add(l.val, -1)
	}
	if persisted {
		persistDelete(d)
	}
	if p := endHooks.Load(); p != nil {
		for _, h := range *p {
			h(d, failed, dur)
		}
	}
	raiseState(d, old, StateDeleted)
	return true
}

// timeoutDialog ends a dialog whose lifetime is over, sending BYEs to both
// sides when create_dialog("B") asked for it.
func timeoutDialog(d *Dialog) {
	d.mu.Lock()
	bye := d.cflags&FlagByeOnTimeout != 0 && d.state >= StateConfirmedNA && d.state != StateDeleted
	d.mu.Unlock()
	tbl.expired.Add(1)
	if bye {
		sendByes(d, "")
	}
	end(d, ReasonTimeout)
}

// sendByes sends a BYE to each side of a confirmed dialog.
func sendByes(d *Dialog, extra string) []error {
	d.mu.Lock()
	caller := buildBye(d, true, extra)
	callee := buildBye(d, false, extra)
	d.mu.Unlock()
	var errs []error
	for _, r := range []*sip.Request{callee, caller} {
		if r == nil {
			continue
		}
		if err := tm.SendRequest(r, ""); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// buildBye makes the BYE the proxy sends to one side (d.mu held).
func buildBye(d *Dialog, toCaller bool, extra string) *sip.Request {
	target, routes := d.calleeContact, d.calleeRoute
	fromURI, fromTag, toURI, toTag := d.fromURI, d.fromTag, d.toURI, d.toTag
	seq := d.callerCSeq + 1
	if toCaller {
		target, routes = d.callerContact, d.callerRoute
		fromURI, fromTag, toURI, toTag = d.toURI, d.toTag, d.fromURI, d.fromTag
		seq = d.calleeCSeq + 1
	}
	if target == "" {
		return nil
	}
	var ru sip.Uri
	if err := sip.ParseUri(strings.Trim(target, "<>"), &ru); err != nil {
		return nil
	}
	req := sip.NewRequest(sip.BYE, ru)
	for _, r := range msgctx.SplitRouteList(routes) {
		req.AppendHeader(sip.NewHeader("Route", r))
	}
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	var fu, tu sip.Uri
	if sip.ParseUri(fromURI, &fu) != nil || sip.ParseUri(toURI, &tu) != nil {
		return nil
	}
	fh := &sip.FromHeader{Address: fu, Params: sip.NewParams()}
	fh.Params.Add("tag", fromTag)
	th := &sip.ToHeader{Address: tu, Params: sip.NewParams()}
	th.Params.Add("tag", toTag)
	req.AppendHeader(fh)
	req.AppendHeader(th)
	cid := sip.CallIDHeader(d.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: sip.BYE})
	for _, line := range strings.Split(strings.TrimSpace(extra), "\n") {
		if name, val, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			req.AppendHeader(sip.NewHeader(strings.TrimSpace(name), strings.TrimSpace(val)))
		}
	}
	cl := sip.ContentLengthHeader(0)
	req.AppendHeader(&cl)
	return req
}

func init() {
	tm.OnRequest(onRequest)
	tm.OnRouteDone(onRouteDone)
	tm.OnResponseOut(onResponseOut)
}

// ForEach calls fn for every live dialog until fn returns false.
func ForEach(fn func(d *Dialog) bool) { tbl.each(fn) }

// SetClock replaces the dialog clock (unix seconds) and returns a function
// that restores it. For tests of modules built on dialogs.
func SetClock(now func() int64) (restore func()) {
	old := clock.Swap(&now)
	return func() { clock.Store(old) }
}
