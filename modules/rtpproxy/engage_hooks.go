package rtpproxy

import (
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/modules/dialog"
	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

// rtpproxy_engage finishes its job on its own, through tm's hooks and the
// dialog module, as OpenSIPS does with dialog callbacks (the SIP runtime
// needs no rtpproxy code):
//
//   - rtpproxy_engage creates the INVITE's dialog if the script did not,
//     and keeps the Engagement with it (engaged, below) and, through
//     msgctx.Msg.Mod, with the INVITE's transaction;
//   - tm.OnResponseOut: every reply the transaction sends upstream goes
//     through Handle before it is sent (18x/2xx SDP, failure);
//   - tm.OnRequest: a sequential request of an engaged dialog (matched by
//     the dialog module's own OnRequest hook, which runs first) gets the
//     engagement and its source address in its module data, so its
//     transaction's replies go through Handle too;
//   - tm.OnRequestOut: the sequential request itself (ACK, re-INVITE,
//     UPDATE, PRACK) goes through Handle after the script routed it and
//     before it is sent: its SDP is rewritten for its destination;
//   - dialog.OnEnd: the dialog ended (BYE, lifetime, dlg_end_dlg, media
//     timeout, failed INVITE): End, the call's media is released.

// srcKey keeps a sequential request's source in its module data, for
// RequestOut hooks (which see only the outgoing copy).
const srcKey = Name + ".src"

// engaged maps the dialogs of engaged calls to their Engagement.
var engaged sync.Map // *dialog.Dialog → *Engagement

func engage(d *dialog.Dialog, e *Engagement) { engaged.Store(d, e) }

// EngagedDialog returns the engagement kept with a dialog, or nil.
func EngagedDialog(d *dialog.Dialog) *Engagement {
	if v, ok := engaged.Load(d); ok {
		return v.(*Engagement)
	}
	return nil
}

func init() {
	tm.OnRequest(engageRequest)
	tm.OnRequestOut(engageRequestOut)
	tm.OnResponseOut(engageResponseOut)
	dialog.OnEnd(func(d *dialog.Dialog, _ bool, _ int64) {
		if v, ok := engaged.LoadAndDelete(d); ok {
			v.(*Engagement).End()
		}
	})
}

func logf(format string, args ...any) {
	tm.Log(msgctx.LErr, Name, fmt.Sprintf(format, args...))
}

// engageRequest gives a sequential request of an engaged dialog the
// engagement (for its RequestOut hook and its transaction's replies).
func engageRequest(m *msgctx.Msg) {
	d := dialog.Current(m)
	if d == nil {
		return
	}
	e := EngagedDialog(d)
	if e == nil {
		return
	}
	if m.Mod == nil {
		m.Mod = make(map[string]any, 4)
	}
	m.Mod[Name] = e
	m.Mod[srcKey] = m.Src
}

// engageRequestOut rewrites the SDP of a sequential request of an engaged
// dialog as it leaves. The initial INVITE (no To tag) was offered by
// rtpproxy_engage itself.
func engageRequestOut(mod map[string]any, out *sip.Request) {
	e, ok := mod[Name].(*Engagement)
	if !ok {
		return
	}
	if to := out.To(); to == nil || !hasTag(to.Params) {
		return
	}
	src, _ := mod[srcKey].(msgctx.Addr)
	m := msgctx.Msg{Req: out, Src: src, Kind: ast.RequestRoute}
	e.handle(&m, logf)
}

// engageResponseOut runs Handle on a reply going upstream.
func engageResponseOut(mod map[string]any, req *sip.Request, code int, res *sip.Response) {
	e, ok := mod[Name].(*Engagement)
	if !ok || code <= 100 {
		return
	}
	if res == nil {
		// sent by the SIP stack itself: the 487 of a cancelled INVITE
		if code >= 300 && req != nil && req.IsInvite() && !e.confirmed(e.st.prof.Relay()) {
			e.End()
		}
		return
	}
	m := msgctx.Msg{Resp: res, Src: sourceOf(res), Kind: ast.OnReplyRoute}
	e.handle(&m, logf)
}

func hasTag(p sip.HeaderParams) bool {
	if p == nil {
		return false
	}
	t, _ := p.Get("tag")
	return t != ""
}

// sourceOf is where a reply came from ("" for one generated here).
func sourceOf(res *sip.Response) msgctx.Addr {
	host, port, err := net.SplitHostPort(res.Source())
	if err != nil {
		return msgctx.Addr{}
	}
	p, _ := strconv.Atoi(port)
	return msgctx.Addr{IP: host, Port: p, Proto: "udp"}
}

func replyOrRequest(reply bool, code int) string {
	if reply {
		return "reply " + strconv.Itoa(code)
	}
	return "request"
}
