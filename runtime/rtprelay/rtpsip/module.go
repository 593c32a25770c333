package rtpsip

import (
	"errors"

	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/rtprelay"
	"github.com/sipedge/sipedge/runtime/value"
)

// Params are the relay modparams both modules declare (see Settings), to
// put first in their modules.Info.
func Params() []modules.Param {
	return []modules.Param{
		{Name: "interfaces", Kind: modules.ParamStr, Multi: true},
		{Name: "port_min", Kind: modules.ParamInt, Default: value.I(rtprelay.DefaultMinPort)},
		{Name: "port_max", Kind: modules.ParamInt, Default: value.I(rtprelay.DefaultMaxPort)},
		{Name: "media_timeout", Kind: modules.ParamInt, Default: value.I(int(rtprelay.DefaultTimeout.Seconds()))},
		{Name: "hold_timeout", Kind: modules.ParamInt, Default: value.I(int(rtprelay.DefaultHoldTimeout.Seconds()))},
		{Name: "setup_timeout", Kind: modules.ParamInt, Default: value.I(int(rtprelay.DefaultSetupTimeout.Seconds()))},
		{Name: "drain_time", Kind: modules.ParamInt, Default: value.I(int(rtprelay.DefaultDrainTime.Seconds()))},
	}
}

// ProfileConfig reads the Params modparams into a relay profile
// configuration.
func ProfileConfig(p modules.Params) (rtprelay.ProfileConfig, error) {
	set := Settings{
		PortMin: p.Int("port_min"), PortMax: p.Int("port_max"),
		Timeout: p.Int("media_timeout"), HoldTimeout: p.Int("hold_timeout"),
		SetupTimeout: p.Int("setup_timeout"), DrainTime: p.Int("drain_time"),
	}
	for _, v := range p.All("interfaces") {
		set.Interfaces = append(set.Interfaces, v.AsString())
	}
	return set.Profile()
}

// MIShow is the modules' *_show MI command on the live profile p (nil when
// none is configured).
func MIShow(p *rtprelay.Profile) (any, error) {
	if p == nil {
		return nil, errors.New("the media relay is not configured")
	}
	return StatsMap(p), nil
}

// MIList is the modules' *_list_sessions MI command: the relay sessions,
// of one call when params has "callid".
func MIList(params map[string]any) (any, error) {
	callID, _ := params["callid"].(string)
	var out []any
	for _, si := range rtprelay.Default().Sessions() {
		if callID == "" || si.CallID == callID {
			out = append(out, SessionMap(si))
		}
	}
	return map[string]any{"sessions": out}, nil
}

// FixupFlags parses a constant flags argument (argument 0) at load time
// with parse; the fixup value is then a *F for FlagsOf.
func FixupFlags[F any](arg check.FixupArg, parse func(string) (F, error)) (any, error) {
	if arg.Present && arg.Const {
		f, err := parse(arg.Str)
		if err != nil {
			return nil, check.ArgError(0, "%v", err)
		}
		return &f, nil
	}
	return nil, nil
}

// FlagsOf is a call's flags: FixupFlags's when the argument was constant,
// else argument 0 (absent: "") parsed now; a parse error is logged for
// function fn.
func FlagsOf[F any](m *msgctx.Msg, a *modules.Args, fn string, parse func(string) (F, error)) (*F, bool) {
	if f, ok := a.Fix.(*F); ok {
		return f, true
	}
	s := ""
	if a.Has(0) {
		s = a.Str(0)
	}
	f, err := parse(s)
	if err != nil {
		Logf(m, msgctx.LErr, "%s: %v", fn, err)
		return nil, false
	}
	return &f, true
}
