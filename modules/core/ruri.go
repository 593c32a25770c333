package core

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

// isSIP reports whether u has the structured sip:/sips: form; other schemes
// (tel:, urn: …) keep their text in Raw.
func isSIP(u *sip.Uri) bool { return u.Raw() == "" }

// isTel reports a tel: URI, whose number works as the user part.
func isTel(u *sip.Uri) bool {
	s := strings.ToLower(u.Scheme)
	return s == "tel" || s == "tels"
}

// URIUser returns the user part of a URI: the user of a SIP URI or the
// number of a tel: URI. ok is false for schemes without one.
func URIUser(u *sip.Uri) (user string, ok bool) {
	switch {
	case isSIP(u):
		return u.User, true
	case isTel(u):
		raw := u.Raw()
		if i := strings.IndexByte(raw, ';'); i >= 0 {
			return raw[:i], true
		}
		return raw, true
	}
	return "", false
}

// SetURIUser replaces the user part of a SIP or tel: URI in place.
func SetURIUser(u *sip.Uri, user string) error {
	switch {
	case isSIP(u):
		u.User = user
		return nil
	case isTel(u):
		if user == "" {
			return errors.New("a tel: URI cannot have an empty number")
		}
		raw := u.Raw()
		rest := ""
		if i := strings.IndexByte(raw, ';'); i >= 0 {
			rest = raw[i:]
		}
		var nu sip.Uri
		if err := sip.ParseUri(u.Scheme+":"+user+rest, &nu); err != nil {
			return err
		}
		*u = nu
		return nil
	}
	return fmt.Errorf("%s: URIs have no user part", u.Scheme)
}

// rewriteRURI applies fn to a copy of the Request-URI and stores it back
// when fn succeeds, so a failed rewrite leaves the message untouched.
func rewriteRURI(m *msgctx.Msg, fname string, fn func(u *sip.Uri) error) int {
	if m.Req == nil {
		logf(m, msgctx.LErr, fname+": there is no request (and no Request-URI) in this route")
		return -1
	}
	u := m.Req.Recipient.Clone()
	if err := fn(u); err != nil {
		logf(m, msgctx.LErr, fmt.Sprintf("%s: %v", fname, err))
		return -1
	}
	m.Req.Recipient = *u
	return 1
}

func needSIP(u *sip.Uri) error {
	if !isSIP(u) {
		return fmt.Errorf("the Request-URI is a %s: URI, which has no host part", u.Scheme)
	}
	return nil
}

func checkHost(h string) error {
	if h == "" {
		return errors.New("empty host")
	}
	if strings.HasPrefix(h, "[") {
		if !strings.HasSuffix(h, "]") || strings.Count(h, "]") != 1 {
			return fmt.Errorf("bad IPv6 host %q", h)
		}
		return nil
	}
	if strings.ContainsAny(h, " \t;?@<>:,\"") {
		return fmt.Errorf("bad host %q", h)
	}
	return nil
}

func parsePort(p string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(p))
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("bad port %q", p)
	}
	return n, nil
}

// splitHostPort splits "host", "host:port", "[v6]" or "[v6]:port".
func splitHostPort(s string) (string, int, error) {
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", 0, fmt.Errorf("bad IPv6 host %q", s)
		}
		host = s[:end+1]
		if rest := s[end+1:]; rest != "" {
			if rest[0] != ':' {
				return "", 0, fmt.Errorf("bad host:port %q", s)
			}
			port = rest[1:]
		}
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i+1:]
	}
	if err := checkHost(host); err != nil {
		return "", 0, err
	}
	if port == "" {
		return host, 0, nil
	}
	n, err := parsePort(port)
	return host, n, err
}

func callSeturi(m *msgctx.Msg, a *modules.Args) int {
	s := strings.TrimSpace(a.Str(0))
	return rewriteRURI(m, "seturi", func(u *sip.Uri) error {
		var nu sip.Uri
		if err := sip.ParseUri(s, &nu); err != nil {
			return fmt.Errorf("bad URI %q: %v", s, err)
		}
		*u = nu
		return nil
	})
}

func callSethost(m *msgctx.Msg, a *modules.Args) int {
	h := a.Str(0)
	return rewriteRURI(m, "sethost", func(u *sip.Uri) error {
		if err := needSIP(u); err != nil {
			return err
		}
		if err := checkHost(h); err != nil {
			return err
		}
		u.Host = h
		u.UriParams.Remove("maddr")
		return nil
	})
}

func callSethostport(m *msgctx.Msg, a *modules.Args) int {
	s := a.Str(0)
	return rewriteRURI(m, "sethostport", func(u *sip.Uri) error {
		if err := needSIP(u); err != nil {
			return err
		}
		h, p, err := splitHostPort(s)
		if err != nil {
			return err
		}
		u.Host, u.Port = h, p
		u.UriParams.Remove("maddr")
		return nil
	})
}

func callSetuser(m *msgctx.Msg, a *modules.Args) int {
	s := a.Str(0)
	return rewriteRURI(m, "setuser", func(u *sip.Uri) error { return SetURIUser(u, s) })
}

func callSetuserpass(m *msgctx.Msg, a *modules.Args) int {
	s := a.Str(0)
	return rewriteRURI(m, "setuserpass", func(u *sip.Uri) error {
		if err := needSIP(u); err != nil {
			return err
		}
		user, pass, _ := strings.Cut(s, ":")
		u.User, u.Password = user, pass
		return nil
	})
}

func fixupPort(args []check.FixupArg) (any, error) {
	if s, ok := constStr(args[0]); ok && s != "" {
		if _, err := parsePort(s); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

func callSetport(m *msgctx.Msg, a *modules.Args) int {
	s := strings.TrimSpace(a.Str(0))
	return rewriteRURI(m, "setport", func(u *sip.Uri) error {
		if err := needSIP(u); err != nil {
			return err
		}
		if s == "" {
			u.Port = 0
			return nil
		}
		n, err := parsePort(s)
		if err != nil {
			return err
		}
		u.Port = n
		return nil
	})
}

func callPrefix(m *msgctx.Msg, a *modules.Args) int {
	p := a.Str(0)
	return rewriteRURI(m, "prefix", func(u *sip.Uri) error {
		user, ok := URIUser(u)
		if !ok {
			return fmt.Errorf("%s: URIs have no user part", u.Scheme)
		}
		return SetURIUser(u, p+user)
	})
}

func fixupStripCount(args []check.FixupArg) (any, error) {
	if args[0].Const && args[0].Int < 0 {
		return nil, fmt.Errorf("cannot strip a negative number of characters (%d)", args[0].Int)
	}
	return nil, nil
}

func strip(m *msgctx.Msg, a *modules.Args, fname string, tail bool) int {
	n := a.Int(0)
	return rewriteRURI(m, fname, func(u *sip.Uri) error {
		if n < 0 {
			return fmt.Errorf("cannot strip a negative number of characters (%d)", n)
		}
		user, ok := URIUser(u)
		if !ok {
			return fmt.Errorf("%s: URIs have no user part", u.Scheme)
		}
		switch {
		case n >= len(user):
			if n > len(user) {
				logf(m, msgctx.LWarn, fmt.Sprintf("%s: asked to strip %d characters from %q, deleting the user", fname, n, user))
			}
			user = ""
		case tail:
			user = user[:len(user)-n]
		default:
			user = user[n:]
		}
		return SetURIUser(u, user)
	})
}

func callStrip(m *msgctx.Msg, a *modules.Args) int     { return strip(m, a, "strip", false) }
func callStripTail(m *msgctx.Msg, a *modules.Args) int { return strip(m, a, "strip_tail", true) }

func checkDstURI(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("empty destination URI")
	}
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return fmt.Errorf("bad destination URI %q: %v", s, err)
	}
	if !isSIP(&u) || u.Host == "" {
		return fmt.Errorf("destination URI %q must be a sip: or sips: URI with a host", s)
	}
	return nil
}

func fixupDstURI(args []check.FixupArg) (any, error) {
	if s, ok := constStr(args[0]); ok {
		if err := checkDstURI(s); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

func callSetdsturi(m *msgctx.Msg, a *modules.Args) int {
	s := strings.TrimSpace(a.Str(0))
	if err := checkDstURI(s); err != nil {
		logf(m, msgctx.LErr, "setdsturi: "+err.Error())
		return -1
	}
	m.DstURI = s
	return 1
}

func callResetdsturi(m *msgctx.Msg, _ *modules.Args) int {
	m.DstURI = ""
	return 1
}

func callIsdsturiset(m *msgctx.Msg, _ *modules.Args) int {
	if m.DstURI == "" {
		return -1
	}
	return 1
}

func callPvPrintf(m *msgctx.Msg, a *modules.Args) int {
	if err := a.Ref(0).Set(m, "=", value.S(a.Str(1))); err != nil {
		logf(m, msgctx.LErr, "pv_printf: "+err.Error())
		return -1
	}
	return 1
}

func fixupGetTimestamp(args []check.FixupArg) (any, error) {
	for i, a := range args {
		if a.Present && a.PVar != "" && a.PVar != "avp" {
			return nil, fmt.Errorf("argument %d of get_timestamp() must be an AVP, not $%s", i+1, a.PVar)
		}
	}
	return nil, nil
}

// now is replaced by tests.
var now = time.Now

func callGetTimestamp(m *msgctx.Msg, a *modules.Args) int {
	t := now()
	if err := a.Ref(0).Set(m, "=", value.I(int(t.Unix()))); err != nil {
		logf(m, msgctx.LErr, "get_timestamp: "+err.Error())
		return -1
	}
	if err := a.Ref(1).Set(m, "=", value.I(t.Nanosecond()/1000)); err != nil {
		logf(m, msgctx.LErr, "get_timestamp: "+err.Error())
		return -1
	}
	return 1
}
