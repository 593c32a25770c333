// Package msgctx is the per-message state a script run sees: the SIP message,
// where it came from, flags, script variables, AVPs, and the Host that carries
// out what the script asks (replies, relays, logging). A Msg is pooled and
// reset between messages; nothing in it is shared between goroutines.
package msgctx

import (
	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/runtime/value"
)

// Log levels use OpenSIPS's numbering (L_ALERT=-3 … L_DBG=4).
const (
	LAlert  = -3
	LCrit   = -2
	LErr    = -1
	LWarn   = 1
	LNotice = 2
	LInfo   = 3
	LDbg    = 4
)

// LevelNames maps script level names to numbers (L_ERR and L_ERROR both exist in configs).
var LevelNames = map[string]int{
	"L_ALERT": LAlert, "L_CRIT": LCrit, "L_ERR": LErr, "L_ERROR": LErr, "L_WARN": LWarn,
	"L_NOTICE": LNotice, "L_INFO": LInfo, "L_DBG": LDbg, "L_DEBUG": LDbg,
}

// LevelName is the inverse of LevelNames for log output.
func LevelName(l int) string {
	switch l {
	case LAlert:
		return "ALERT"
	case LCrit:
		return "CRITICAL"
	case LErr:
		return "ERROR"
	case LWarn:
		return "WARNING"
	case LNotice:
		return "NOTICE"
	case LInfo:
		return "INFO"
	}
	return "DBG"
}

// Addr is one end of the transport a message used.
type Addr struct {
	IP    string
	Port  int
	Proto string // "udp", "tcp", "tls", "ws", "wss"
}

// Host carries out what a script asks of the outside world. The SIP runtime
// implements it over sipgo; `sipedge test` implements it with a recorder.
type Host interface {
	// Log writes one script log line (xlog, log) at an OpenSIPS level.
	Log(m *Msg, level int, text string)
	// Reply sends a stateless reply to the current request (sl_send_reply),
	// with m.ReplyHeaders and m.ReplyBody added.
	Reply(m *Msg, code int, reason string) error
}

// Branch is one extra destination added by append_branch.
type Branch struct {
	URI   string
	Dst   string
	Q     int
	Flags uint64
}

// Msg is one message's script state.
type Msg struct {
	Req  *sip.Request  // nil in startup/timer/event routes
	Resp *sip.Response // set in onreply_route
	Kind ast.RouteKind

	Src   Addr // $si $sp $pr
	Local Addr // $Ri $Rp

	Host Host

	Flags       uint64 // setflag/isflagset
	BranchFlags uint64 // setbflag on branch 0
	DstURI      string // $du
	Branches    []Branch
	RetCode     int // $retcode / $rc: the last function or route's return

	// Vars holds $var(...) values by slot; slots are assigned at compile time.
	// They are reset for every message (see runtime README: OpenSIPS keeps
	// them per process, which only matters for scripts that forget to set them).
	Vars []value.Value
	// AVPs holds $avp(...) stacks by slot; index 0 is the newest value.
	AVPs [][]value.Value

	// ReplyHeaders/ReplyBody are added to the next locally generated reply
	// (append_to_reply, append_body_to_reply).
	ReplyHeaders []sip.Header
	ReplyBody    []byte

	// Mod keeps per-message state of modules (tm transaction, dialog …),
	// keyed by module name. Lazily allocated.
	Mod map[string]any

	// Params are the arguments of the running route(name, a, b) call
	// ($param(1) …); the VM swaps them on route calls.
	Params []value.Value
	// Event carries the parameters of an event_route run ($param(name)).
	Event map[string]value.Value

	// OnReply, OnFailure and OnBranch are the routes armed by t_on_reply,
	// t_on_failure and t_on_branch, as route index + 1 (0: none armed).
	OnReply, OnFailure, OnBranch int
	// T is what the SIP runtime tells the tm functions and pvars about the
	// transaction this message belongs to (see TransInfo).
	T TransInfo
	// RR is the Record-Route that record_route()/add_rr_param() asked for.
	// The SIP runtime renders it when it sends the request, since its
	// address depends on the outgoing socket.
	RR RecordRoute
}

// Reset readies a pooled Msg for a new message, keeping slice capacity.
func (m *Msg) Reset(nVars, nAVPs int) {
	vars, avps, hdrs, br := m.Vars[:0], m.AVPs, m.ReplyHeaders[:0], m.Branches[:0]
	*m = Msg{}
	for range nVars {
		vars = append(vars, value.Null)
	}
	if cap(avps) < nAVPs {
		avps = make([][]value.Value, nAVPs)
	}
	avps = avps[:nAVPs]
	for i := range avps {
		avps[i] = avps[i][:0]
	}
	m.Vars, m.AVPs, m.ReplyHeaders, m.Branches = vars, avps, hdrs, br
}

// ModData returns module state for this message, creating it with mk.
func (m *Msg) ModData(module string, mk func() any) any {
	if v, ok := m.Mod[module]; ok {
		return v
	}
	if m.Mod == nil {
		m.Mod = make(map[string]any, 2)
	}
	v := mk()
	m.Mod[module] = v
	return v
}

// Method is the request method, or the CSeq method of a reply.
func (m *Msg) Method() string {
	if m.Req != nil {
		return string(m.Req.Method)
	}
	if m.Resp != nil {
		if cs := m.Resp.CSeq(); cs != nil {
			return string(cs.MethodName)
		}
	}
	return ""
}

// Headers is the header list of whichever message the route runs on.
func (m *Msg) Headers() []sip.Header {
	if m.Req != nil {
		return m.Req.Headers()
	}
	if m.Resp != nil {
		return m.Resp.Headers()
	}
	return nil
}
