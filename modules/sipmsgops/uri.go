package sipmsgops

import (
	"fmt"
	"slices"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

func isTel(u *sip.Uri) bool {
	s := strings.ToLower(u.Scheme)
	return u.Raw() != "" && (s == "tel" || s == "tels")
}

// params lists the URI parameters of a SIP or tel: URI.
func params(u *sip.Uri) []sip.HeaderKV {
	if !isTel(u) {
		return u.UriParams
	}
	parts := strings.Split(u.Raw(), ";")
	var out []sip.HeaderKV
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		out = append(out, sip.HeaderKV{K: k, V: v})
	}
	return out
}

// setParams rebuilds the parameters of a copy of u.
func setParams(u *sip.Uri, ps []sip.HeaderKV) (*sip.Uri, error) {
	c := u.Clone()
	if !isTel(u) {
		c.UriParams = ps
		return c, nil
	}
	num, _, _ := strings.Cut(u.Raw(), ";")
	var b strings.Builder
	b.WriteString(u.Scheme + ":" + num)
	for _, p := range ps {
		b.WriteString(";" + p.K)
		if p.V != "" {
			b.WriteString("=" + p.V)
		}
	}
	var nu sip.Uri
	if err := sip.ParseUri(b.String(), &nu); err != nil {
		return nil, err
	}
	return &nu, nil
}

func ruri(m *msgctx.Msg, fname string) (*sip.Uri, bool) {
	if m.Req == nil {
		errf(m, fname, "there is no request (and no Request-URI) in this route")
		return nil, false
	}
	u := &m.Req.Recipient
	if u.Raw() != "" && !isTel(u) {
		errf(m, fname, "cannot handle the parameters of a %s: Request-URI", u.Scheme)
		return nil, false
	}
	return u, true
}

// ruri_has_param(name[, value]): without a value the parameter must have
// none; names and values are compared with case, as in OpenSIPS.
func callRuriHasParam(m *msgctx.Msg, a *modules.Args) int {
	u, ok := ruri(m, "ruri_has_param")
	if !ok {
		return -1
	}
	name := a.Str(0)
	for _, p := range params(u) {
		if p.K != name {
			continue
		}
		if a.Has(1) {
			if p.V == a.Str(1) {
				return 1
			}
			return -1
		}
		if p.V == "" {
			return 1
		}
		return -1
	}
	return -1
}

func callRuriAddParam(m *msgctx.Msg, a *modules.Args) int {
	s := strings.TrimSpace(a.Str(0))
	if s == "" {
		return 1
	}
	u, ok := ruri(m, "ruri_add_param")
	if !ok {
		return -1
	}
	if strings.ContainsAny(s, " \t;?@<>") {
		return errf(m, "ruri_add_param", "bad URI parameter %q", s)
	}
	k, v, _ := strings.Cut(s, "=")
	nu, err := setParams(u, append(slices.Clone(params(u)), sip.HeaderKV{K: k, V: v}))
	if err != nil {
		return errf(m, "ruri_add_param", "%v", err)
	}
	m.Req.Recipient = *nu
	return 1
}

// ruri_del_param(name) removes the first parameter with that name.
func callRuriDelParam(m *msgctx.Msg, a *modules.Args) int {
	name := a.Str(0)
	if name == "" {
		return 1
	}
	u, ok := ruri(m, "ruri_del_param")
	if !ok {
		return -1
	}
	ps := slices.Clone(params(u))
	i := slices.IndexFunc(ps, func(p sip.HeaderKV) bool { return p.K == name })
	if i < 0 {
		return -1
	}
	nu, err := setParams(u, slices.Delete(ps, i, i+1))
	if err != nil {
		return errf(m, "ruri_del_param", "%v", err)
	}
	m.Req.Recipient = *nu
	return 1
}

// ruri_tel2sip() turns tel:NUMBER;params into
// sip:NUMBER;params@FROMHOST;user=phone; other URIs are left alone.
func callRuriTel2sip(m *msgctx.Msg, _ *modules.Args) int {
	if m.Req == nil {
		return errf(m, "ruri_tel2sip", "there is no request in this route")
	}
	u := &m.Req.Recipient
	if !isTel(u) {
		return 1
	}
	from := m.Req.From()
	if from == nil || from.Address.Host == "" {
		return errf(m, "ruri_tel2sip", "no From URI host to build the SIP URI with")
	}
	s := "sip:" + u.Raw() + "@" + from.Address.Host + ";user=phone"
	var nu sip.Uri
	if err := sip.ParseUri(s, &nu); err != nil {
		return errf(m, "ruri_tel2sip", "bad result %q: %v", s, err)
	}
	m.Req.Recipient = nu
	return 1
}

// isE164 is OpenSIPS's check: '+' and 2 to 15 digits.
func isE164(user string) bool {
	if len(user) < 3 || len(user) > 16 || user[0] != '+' {
		return false
	}
	for i := 1; i < len(user); i++ {
		if user[i] < '0' || user[i] > '9' {
			return false
		}
	}
	return true
}

func callIsURIUserE164(m *msgctx.Msg, a *modules.Args) int {
	s := strings.TrimSpace(a.Str(0))
	if s == "" {
		return -1
	}
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return errf(m, "is_uri_user_e164", "bad URI %q: %v", s, err)
	}
	user := u.User
	if isTel(&u) {
		user, _, _ = strings.Cut(u.Raw(), ";")
	} else if u.Raw() != "" {
		return errf(m, "is_uri_user_e164", "%s", fmt.Sprintf("%s: URIs have no user part", u.Scheme))
	}
	if isE164(user) {
		return 1
	}
	return -1
}
