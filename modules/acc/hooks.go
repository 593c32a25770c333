package acc

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/modules/dialog"
	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

// dlgKey is the dialog value that carries a call's CDR data from its 2xx
// to its end; dialogs kept in the database (db_mode) keep it over a restart.
const dlgKey = "accX_cdr"

// cdrInfo is what the CDR needs at the end of the call.
type cdrInfo struct {
	Backends uint8             `json:"b"`
	Table    string            `json:"t,omitempty"`
	Created  int64             `json:"c"` // unix ms: the initial request
	Start    int64             `json:"s"` // unix ms: the 2xx
	Method   string            `json:"m"`
	FromTag  string            `json:"f"`
	ToTag    string            `json:"tt"`
	CallID   string            `json:"i"`
	Code     string            `json:"sc"`
	Reason   string            `json:"sr"`
	Extra    map[string]string `json:"x,omitempty"`
}

func init() {
	tm.OnResponseOut(onResponseOut)
	tm.OnFailure(onFailure)
	dialog.OnEnd(onDialogEnd)
}

func unixMS(t time.Time) int64 { return t.UnixMilli() }

func fromMS(ms int64) time.Time { return time.UnixMilli(ms) }

// created returns the setuptime/created values of a call with the cdr flag.
func (c *accCtx) createdAt(now time.Time) (time.Time, int64) {
	if c.created.IsZero() {
		return now, 0
	}
	return c.created, int64(now.Sub(c.created) / time.Second)
}

// missed builds the missed-call record and clears the missed flags (they
// are re-armed by calling do_accounting again, in a failure_route).
// c.mu is held.
func (c *accCtx) missed(req *sip.Request, code int, res *sip.Response, now time.Time) (uint8, *record) {
	be := c.m[optMissed]
	if be == 0 || !req.IsInvite() || code < 300 {
		return 0, nil
	}
	c.m[optMissed] = 0
	r := coreFrom(req, res, code, reasonFor(code, res), c.upstream)
	r.at = now
	r.extra = c.snapshotExtra()
	if c.m.any(optCDR) {
		r.withCreated = true
		r.created, r.setup = c.createdAt(now)
	}
	return be, &r
}

// onFailure accounts a missed call when a failure_route is about to run
// (OpenSIPS's TMCB_ON_FAILURE).
func onFailure(mod map[string]any, req *sip.Request, code int, res *sip.Response) {
	c, cfg := ctxOf(mod), live.Load()
	if c == nil || cfg == nil || req == nil {
		return
	}
	c.mu.Lock()
	be, r := c.missed(req, code, res, clock())
	c.mu.Unlock()
	if r != nil {
		cfg.emit(kindMissed, be, cfg.tableMissed, r)
	}
}

// onResponseOut accounts a transaction on the replies it sends upstream.
func onResponseOut(mod map[string]any, req *sip.Request, code int, res *sip.Response) {
	c, cfg := ctxOf(mod), live.Load()
	if c == nil || cfg == nil || req == nil {
		return
	}
	if code < 200 && !(cfg.earlyMedia && res != nil && len(res.Body()) > 0) {
		return
	}
	now := clock()
	toTag := ""
	if res != nil {
		if t := res.To(); t != nil {
			toTag = tagOf(t.Params)
		}
	}
	key := strconv.Itoa(code) + "/" + toTag

	c.mu.Lock()
	if c.done[key] {
		c.mu.Unlock()
		return // a 2xx retransmission
	}
	if c.done == nil {
		c.done = map[string]bool{}
	}
	c.done[key] = true

	var missBe uint8
	var miss *record
	if code >= 300 {
		missBe, miss = c.missed(req, code, res, now)
	}
	accBe := c.m[optAcc]
	should := accBe != 0 && (code < 300 || c.m.any(optFailed))
	var cdr *cdrInfo
	var rec *record
	if should {
		d := dialog.Current(&msgctx.Msg{Mod: mod})
		if req.IsInvite() && !hasToTag(req) && c.m.any(optCDR) && code >= 200 && code < 300 && d != nil {
			if !c.cdrSaved {
				c.cdrSaved = true
				r := coreFrom(req, res, code, reasonFor(code, res), false)
				created := c.created
				if created.IsZero() {
					created = now
				}
				cdr = &cdrInfo{Backends: accBe, Table: c.table, Created: unixMS(created), Start: unixMS(now),
					Method: r.method, FromTag: r.fromTag, ToTag: r.toTag, CallID: r.callID,
					Code: r.code, Reason: r.reason, Extra: c.snapshotExtra()}
				if cdr.Table == "" {
					cdr.Table = cfg.tableAcc
				}
			}
			if cdr != nil {
				c.mu.Unlock()
				if b, err := json.Marshal(cdr); err == nil {
					d.SetValue(dlgKey, string(b), false)
				}
				c.mu.Lock()
			}
		} else {
			// plain records have no setuptime/created, even with cdr on
			// (OpenSIPS adds them to missed calls only)
			r := coreFrom(req, res, code, reasonFor(code, res), c.upstream)
			r.at = now
			r.extra = c.snapshotExtra()
			rec = &r
		}
	}
	table := c.table
	c.mu.Unlock()
	if table == "" {
		table = cfg.tableAcc
	}
	if miss != nil {
		cfg.emit(kindMissed, missBe, cfg.tableMissed, miss)
	}
	if rec != nil {
		cfg.emit(kindAnswered, accBe, table, rec)
	}
}

// onDialogEnd writes the CDR of a call whose 2xx was accounted with the
// cdr flag.
func onDialogEnd(d *dialog.Dialog, failed bool, _ int64) {
	if failed {
		return
	}
	v, ok := d.Value(dlgKey)
	if !ok {
		return
	}
	cfg := live.Load()
	if cfg == nil {
		return
	}
	var info cdrInfo
	if err := json.Unmarshal([]byte(v), &info); err != nil {
		tm.Log(msgctx.LErr, Name, "bad CDR data in dialog "+d.DID()+": "+err.Error())
		return
	}
	end := clock()
	start, created := fromMS(info.Start), fromMS(info.Created)
	r := record{method: info.Method, fromTag: info.FromTag, toTag: info.ToTag, callID: info.CallID,
		code: info.Code, reason: info.Reason, at: start, extra: info.Extra,
		cdr: true, created: created, setup: int64(start.Sub(created) / time.Second)}
	if end.After(start) {
		r.duration = end.Sub(start)
	}
	if err := cfg.emit(kindCDR, info.Backends, info.Table, &r); err != nil {
		tm.Log(msgctx.LErr, Name, "CDR of "+info.CallID+": "+err.Error())
	}
}
