package tm

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/emiago/sipgo/sip"
)

// Requests the proxy originates and whose outcome matters: dispatcher's
// OPTIONS probes of its destinations, nathelper's pings of registered
// contacts. The SIP runtime's UAC (see SetUAC) implements ReplyUAC.

// ReplyUAC is a UAC that also reports the final status of each request.
type ReplyUAC interface {
	// SendRequestWithReply sends req like SendRequest and later calls done
	// once, from another goroutine, with the final status code: the final
	// reply's, or 408 when none came before the transaction timed out. It
	// returns an error (and never calls done) when req cannot be sent.
	SendRequestWithReply(req *sip.Request, dst string, done func(code int)) error
}

// ErrNoReplyUAC is returned when the running UAC cannot report replies.
var ErrNoReplyUAC = errors.New("the SIP runtime cannot report the replies of the requests it sends")

// SendRequestWithReply sends a locally generated request through the
// running SIP runtime and reports its final status code to done.
func SendRequestWithReply(req *sip.Request, dst string, done func(code int)) error {
	b := uac.Load()
	if b == nil {
		return ErrNoUAC
	}
	r, ok := b.u.(ReplyUAC)
	if !ok {
		return ErrNoReplyUAC
	}
	return r.SendRequestWithReply(req, dst, done)
}

// RandomToken is a random hex string for tags and Call-IDs.
func RandomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// NewOutOfDialogRequest builds a request outside any dialog (an OPTIONS
// probe, a keepalive): R-URI and To are to, From is from with a fresh tag,
// a fresh Call-ID, CSeq 1, Max-Forwards maxFwd (70 when negative) and an
// empty body. The runtime adds Via when it sends it.
func NewOutOfDialogRequest(method sip.RequestMethod, from, to string, maxFwd int) (*sip.Request, error) {
	var fu, tu sip.Uri
	if err := sip.ParseUri(from, &fu); err != nil {
		return nil, fmt.Errorf("bad From URI %q: %v", from, err)
	}
	if err := sip.ParseUri(to, &tu); err != nil {
		return nil, fmt.Errorf("bad URI %q: %v", to, err)
	}
	req := sip.NewRequest(method, *tu.Clone())
	if maxFwd < 0 {
		maxFwd = 70
	}
	mf := sip.MaxForwardsHeader(maxFwd)
	req.AppendHeader(&mf)
	fh := &sip.FromHeader{Address: fu, Params: sip.NewParams()}
	fh.Params.Add("tag", RandomToken(6))
	req.AppendHeader(fh)
	req.AppendHeader(&sip.ToHeader{Address: tu, Params: sip.NewParams()})
	cid := sip.CallIDHeader(RandomToken(12) + "@sipedge")
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: method})
	cl := sip.ContentLengthHeader(0)
	req.AppendHeader(&cl)
	return req, nil
}
