package textops

import (
	"testing"

	"github.com/sipedge/sipedge/internal/modtest"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

// Thin names over internal/modtest, bound to this module.

type (
	testHost = modtest.Host
)

const inviteText = modtest.InviteText

var (
	cs = modtest.CS
)

func newMsg(t *testing.T, text string) (*msgctx.Msg, *testHost) { return modtest.NewMsg(t, text) }
func fn(t *testing.T, name string) *modules.Func                { return modtest.Fn(t, "textops", name) }
func fixup(t *testing.T, f *modules.Func, args ...check.FixupArg) (any, error) {
	return modtest.Fixup(t, f, args...)
}
func call(t *testing.T, m *msgctx.Msg, name string, vals ...any) int {
	return modtest.Call(t, "textops", m, name, vals...)
}
