package pvar

import (
	"strings"

	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

// Digest credential pvars ($au $ad $aU $ar $adu $an $auth.*), read from the
// Proxy-Authorization header, else Authorization, as OpenSIPS does. ACK and
// CANCEL carry no credentials to look at.

var (
	hProxyAuth = mustHdr("Proxy-Authorization")
	hAuth      = mustHdr("Authorization")
)

// digestParam finds one parameter of a "Digest a=b, c=\"d\"" value.
func digestParam(cred, name string) (string, bool) {
	p := trimLeftWS(cred)
	if i := strings.IndexAny(p, " \t"); i >= 0 {
		p = p[i:] // skip the scheme
	} else {
		return "", false
	}
	for {
		p = trimLeftWS(p)
		for p != "" && p[0] == ',' {
			p = trimLeftWS(p[1:])
		}
		if p == "" {
			return "", false
		}
		eq := strings.IndexByte(p, '=')
		if eq < 0 {
			return "", false
		}
		n := trimWS(p[:eq])
		p = trimLeftWS(p[eq+1:])
		var v string
		if p != "" && p[0] == '"' {
			end := 1
			for end < len(p) && p[end] != '"' {
				if p[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(p) {
				return "", false
			}
			v, p = p[1:end], p[end+1:]
		} else {
			c := strings.IndexByte(p, ',')
			if c < 0 {
				c = len(p)
			}
			v, p = trimRightWS(p[:c]), p[c:]
		}
		if strings.EqualFold(n, name) {
			return v, true
		}
	}
}

func credentials(m *msgctx.Msg) (string, bool) {
	if m.Req == nil || m.Req.Method == "ACK" || m.Req.Method == "CANCEL" {
		return "", false
	}
	if v, ok := firstHeaderValue(m, hProxyAuth); ok {
		return v, true
	}
	return firstHeaderValue(m, hAuth)
}

// authGetter reads digest parameter param; part selects the user ("user")
// or domain ("domain") half of username.
func authGetter(param, part string) func(*msgctx.Msg, any, Index) value.Value {
	return func(m *msgctx.Msg, _ any, _ Index) value.Value {
		cred, ok := credentials(m)
		if !ok {
			return value.Null
		}
		v, ok := digestParam(cred, param)
		if !ok {
			return value.Null
		}
		switch part {
		case "user":
			if at := strings.IndexByte(v, '@'); at >= 0 {
				v = v[:at]
			}
		case "domain":
			at := strings.IndexByte(v, '@')
			if at < 0 {
				return value.Null
			}
			v = v[at+1:]
		}
		return vStrNull(v)
	}
}

func init() {
	for _, s := range []*Spec{
		{Name: "au", Get: authGetter("username", "user")},
		{Name: "ad", Get: authGetter("username", "domain")},
		{Name: "aU", Get: authGetter("username", "")},
		{Name: "ar", Get: authGetter("realm", "")},
		{Name: "adu", Get: authGetter("uri", "")},
		{Name: "an", Get: authGetter("nonce", "")},
		{Name: "auth.nonce", Get: authGetter("nonce", "")},
		{Name: "auth.resp", Get: authGetter("response", "")},
		{Name: "auth.cnonce", Get: authGetter("cnonce", "")},
		{Name: "auth.opaque", Get: authGetter("opaque", "")},
		{Name: "auth.alg", Get: authGetter("algorithm", "")},
		{Name: "auth.qop", Get: authGetter("qop", "")},
		{Name: "auth.nc", Get: authGetter("nc", "")},
	} {
		Register(s)
	}
}
