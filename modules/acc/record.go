package acc

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/events"
	"github.com/sipedge/sipedge/runtime/store"
)

// Leading texts of log records (OpenSIPS's).
const (
	textRequest  = "ACC: request accounted: "
	textMissed   = "ACC: call missed: "
	textAnswered = "ACC: transaction answered: "
	textEnded    = "ACC: call ended: "
)

// Event names.
const (
	EventAcc    = "E_ACC_EVENT"
	EventMissed = "E_ACC_MISSED_EVENT"
	EventCDR    = "E_ACC_CDR"
)

// record is one accounting record: the fixed core values, extras, and the
// CDR values when it is a CDR or a record of a call with the cdr flag.
type record struct {
	method, fromTag, toTag, callID string
	code, reason                   string
	at                             time.Time // transaction end, or call start for a CDR
	extra                          map[string]string

	withCreated bool // setuptime and created are recorded
	created     time.Time
	setup       int64 // seconds from creation to answer (or to now)

	cdr      bool
	duration time.Duration
}

// kind of record, for the DB table shape and the log text.
type kind uint8

const (
	kindRequest kind = iota // acc_*_request from the script
	kindAnswered
	kindMissed
	kindCDR
)

func tagOf(p sip.HeaderParams) string {
	if p == nil {
		return ""
	}
	t, _ := p.Get("tag")
	return t
}

// coreFrom fills the core values from a request and the reply that ended
// it (res may be nil: a reply generated here, or a script comment).
func coreFrom(req *sip.Request, res *sip.Response, code int, reason string, upstream bool) record {
	r := record{code: strconv.Itoa(code), reason: reason}
	if code == 0 {
		r.code = ""
	}
	if req == nil {
		return r
	}
	r.method = string(req.Method)
	if f := req.From(); f != nil {
		r.fromTag = tagOf(f.Params)
	}
	if res != nil {
		if t := res.To(); t != nil {
			r.toTag = tagOf(t.Params)
		}
	} else if t := req.To(); t != nil {
		r.toTag = tagOf(t.Params)
	}
	if upstream {
		r.fromTag, r.toTag = r.toTag, r.fromTag
	}
	if c := req.CallID(); c != nil {
		r.callID = c.Value()
	}
	return r
}

// reasonFor is the reason phrase accounted for a reply: the reply's own, or
// the standard phrase of a code generated here.
func reasonFor(code int, res *sip.Response) string {
	if res != nil && res.Reason != "" {
		return res.Reason
	}
	return defaultReason(code)
}

func defaultReason(code int) string {
	if r, ok := reasons[code]; ok {
		return r
	}
	switch {
	case code >= 600:
		return "Global Failure"
	case code >= 500:
		return "Server Internal Error"
	case code >= 400:
		return "Client Error"
	case code >= 300:
		return "Redirection"
	case code >= 200:
		return "OK"
	case code >= 100:
		return "Provisional"
	}
	return "Unspecified"
}

var reasons = map[int]string{
	100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK", 202: "Accepted",
	400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
	405: "Method Not Allowed", 407: "Proxy Authentication Required", 408: "Request Timeout",
	480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist", 483: "Too Many Hops",
	486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
	500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
	503: "Service Unavailable", 504: "Server Time-out", 600: "Busy Everywhere",
	603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}

// parseComment splits an acc_*_request comment: "404 Not here" gives code
// 404 and reason "Not here"; a comment without a leading code has code 0
// and is all reason. An empty reason gets the code's standard phrase.
func parseComment(c string) (int, string) {
	code := 0
	if len(c) >= 3 && isDigit(c[0]) && isDigit(c[1]) && isDigit(c[2]) {
		code = int(c[0]-'0')*100 + int(c[1]-'0')*10 + int(c[2]-'0')
		c = strings.TrimLeft(c[3:], " \t")
	}
	if c == "" {
		c = defaultReason(code)
	}
	return code, c
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

const timeLayout = "2006-01-02 15:04:05"

// ---- log backend ----

func (cfg *config) logRecord(k kind, r *record) {
	var b strings.Builder
	switch k {
	case kindRequest:
		b.WriteString(textRequest)
	case kindMissed:
		b.WriteString(textMissed)
	case kindAnswered:
		b.WriteString(textAnswered)
	case kindCDR:
		b.WriteString(textEnded)
	}
	if k == kindCDR {
		fmt.Fprintf(&b, "created=%d;call_start_time=%d;duration=%d;ms_duration=%d;setuptime=%d",
			r.created.Unix(), r.at.Unix(), int64(r.duration/time.Second), r.duration.Milliseconds(), r.setup)
	} else {
		fmt.Fprintf(&b, "timestamp=%d", r.at.Unix())
		if r.withCreated {
			fmt.Fprintf(&b, ";created=%d;setuptime=%d", r.created.Unix(), r.setup)
		}
	}
	for _, kv := range [...][2]string{{"method", r.method}, {"from_tag", r.fromTag}, {"to_tag", r.toTag},
		{"call_id", r.callID}, {"code", r.code}, {"reason", r.reason}} {
		b.WriteByte(';')
		b.WriteString(kv[0])
		b.WriteByte('=')
		b.WriteString(kv[1])
	}
	for _, e := range cfg.extras {
		if e.backends&beLog == 0 {
			continue
		}
		b.WriteByte(';')
		b.WriteString(e.name)
		b.WriteByte('=')
		b.WriteString(r.extra[e.tag])
	}
	tm.Log(cfg.logLevel, Name, b.String())
}

// ---- database backend ----

// dbRecord queues the row of a record into table: the acc shape (with
// duration columns for a CDR) or, for the missed calls table, the
// missed_calls shape.
func (cfg *config) dbRecord(k kind, table string, r *record) error {
	if cfg.db == nil {
		return fmt.Errorf("db accounting needs modparam(\"acc\", \"db_url\", ...)")
	}
	if err := store.CheckIdent("acc table", table); err != nil {
		return err
	}
	cols := []string{cfg.cols.method, cfg.cols.fromTag, cfg.cols.toTag, cfg.cols.callID,
		cfg.cols.code, cfg.cols.reason, cfg.cols.time}
	args := []any{r.method, r.fromTag, r.toTag, r.callID, r.code, r.reason, r.at.Format(timeLayout)}
	for _, e := range cfg.extras {
		if e.backends&beDB == 0 {
			continue
		}
		cols = append(cols, e.name)
		if v, ok := r.extra[e.tag]; ok {
			args = append(args, v)
		} else {
			args = append(args, nil)
		}
	}
	if r.withCreated || k == kindCDR {
		cols = append(cols, "setuptime", "created")
		args = append(args, r.setup, r.created.Format(timeLayout))
	}
	if k == kindCDR {
		cols = append(cols, "duration", "ms_duration")
		args = append(args, int64(r.duration/time.Second), r.duration.Milliseconds())
	}
	q := "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES (?" + strings.Repeat(", ?", len(cols)-1) + ")"
	enqueue(cfg.db, q, args)
	return nil
}

// ---- event backend ----

func (cfg *config) eviRecord(k kind, r *record) {
	name := EventAcc
	switch k {
	case kindMissed:
		name = EventMissed
	case kindCDR:
		name = EventCDR
	case kindRequest:
		if c, _ := strconv.Atoi(r.code); c >= 300 || r.code == "" {
			name = EventMissed
		}
	}
	ps := []events.Param{
		events.Str("method", r.method), events.Str("from_tag", r.fromTag), events.Str("to_tag", r.toTag),
		events.Str("callid", r.callID), events.Str("sip_code", r.code), events.Str("sip_reason", r.reason),
		events.Int("time", int(r.at.Unix())),
	}
	for _, e := range cfg.extras {
		if e.backends&beEVI == 0 {
			continue
		}
		ps = append(ps, events.Str(e.name, r.extra[e.tag]))
	}
	if k == kindCDR {
		ps = append(ps, events.Int("duration", int(r.duration/time.Second)),
			events.Int("ms_duration", int(r.duration.Milliseconds())))
	}
	if r.withCreated || k == kindCDR {
		ps = append(ps, events.Int("setuptime", int(r.setup)), events.Int("created", int(r.created.Unix())))
	}
	events.Raise(name, ps...)
}

// emit sends a record to the backends in be; table is the DB table.
func (cfg *config) emit(k kind, be uint8, table string, r *record) error {
	var err error
	if be&beEVI != 0 {
		cfg.eviRecord(k, r)
	}
	if be&beLog != 0 {
		cfg.logRecord(k, r)
	}
	if be&beDB != 0 {
		err = cfg.dbRecord(k, table, r)
	}
	return err
}
