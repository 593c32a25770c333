package maxfwd

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

func withMF(v string) string {
	if v == "" {
		return strings.Replace(inviteText, "Max-Forwards: 70\r\n", "", 1)
	}
	return strings.Replace(inviteText, "Max-Forwards: 70", "Max-Forwards: "+v, 1)
}

func mfHeaders(m *msgctx.Msg) []string {
	var out []string
	for i, h := range m.Req.Headers() {
		if strings.EqualFold(h.Name(), "Max-Forwards") {
			out = append(out, string(rune('0'+i))+":"+h.Value())
		}
	}
	return out
}

func setLimit(t *testing.T, n int) {
	t.Helper()
	apply, err := configure(modules.Params{"max_limit": {value.I(n)}})
	if err != nil {
		t.Fatal(err)
	}
	apply()
	t.Cleanup(func() { maxLimit.Store(UpperLimit) })
}

func TestProcessMaxfwd(t *testing.T) {
	cases := []struct {
		name  string
		msg   string
		limit int
		arg   int
		rc    int
		want  []string // position:value of the Max-Forwards headers after
	}{
		{"decrement", withMF("70"), 0, 10, 1, []string{"1:69"}},
		{"one left", withMF("1"), 0, 10, 1, []string{"1:0"}},
		{"zero", withMF("0"), 0, 10, -1, []string{"1:0"}},
		{"missing: added first", withMF(""), 0, 10, 2, []string{"0:10"}},
		{"above max_limit", withMF("70"), 32, 10, 1, []string{"1:32"}},
		{"missing, value above max_limit", withMF(""), 5, 10, 2, []string{"0:5"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.limit != 0 {
				setLimit(t, c.limit)
			}
			m, _ := newMsg(t, c.msg)
			before := len(m.Req.Headers())
			if rc := call(t, m, "mf_process_maxfwd_header", c.arg); rc != c.rc {
				t.Fatalf("rc = %d, want %d", rc, c.rc)
			}
			if got := mfHeaders(m); strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Fatalf("Max-Forwards = %v, want %v", got, c.want)
			}
			if c.rc == 2 {
				before++
			}
			if len(m.Req.Headers()) != before {
				t.Fatalf("header count %d, want %d", len(m.Req.Headers()), before)
			}
			if m.Req.MaxForwards() == nil {
				t.Fatal("typed Max-Forwards lost")
			}
			if !strings.Contains(m.Req.String(), "\r\nVia: SIP/2.0/UDP 10.0.0.1:5060") {
				t.Fatalf("message broken:\n%s", m.Req.String())
			}
		})
	}
}

func TestIsMaxfwdLt(t *testing.T) {
	cases := []struct {
		msg string
		arg int
		rc  int
	}{
		{withMF("5"), 5, -1},
		{withMF("5"), 6, 1},
		{withMF("0"), 1, 1},
		{withMF(""), 1, -2},
	}
	for _, c := range cases {
		m, _ := newMsg(t, c.msg)
		if rc := call(t, m, "is_maxfwd_lt", c.arg); rc != c.rc {
			t.Errorf("%q: is_maxfwd_lt(%d) = %d, want %d", mfHeaders(m), c.arg, rc, c.rc)
		}
	}
	// a header added by mf_process_maxfwd_header counts
	m, _ := newMsg(t, withMF(""))
	call(t, m, "mf_process_maxfwd_header", 3)
	if rc := call(t, m, "is_maxfwd_lt", 4); rc != 1 {
		t.Fatalf("after add: %d", rc)
	}
}

func TestBadValue(t *testing.T) {
	m, h := newMsg(t, withMF(""))
	m.Req.AppendHeader(sip.NewHeader("max-forwards", "lots"))
	if rc := call(t, m, "mf_process_maxfwd_header", 10); rc != -2 {
		t.Fatalf("process rc = %d", rc)
	}
	if rc := call(t, m, "is_maxfwd_lt", 10); rc != -3 {
		t.Fatalf("is_maxfwd_lt rc = %d", rc)
	}
	if len(h.Logs) != 2 {
		t.Fatalf("logs = %v", h.Logs)
	}
	// a generic (untyped) numeric header is decremented too
	m, _ = newMsg(t, withMF(""))
	m.Req.AppendHeader(sip.NewHeader("max-forwards", " 7 "))
	if rc := call(t, m, "mf_process_maxfwd_header", 10); rc != 1 || m.Req.MaxForwards() == nil || m.Req.MaxForwards().Val() != 6 {
		t.Fatalf("rc = %d, headers %v", rc, mfHeaders(m))
	}
}

func TestFixupAndConfigure(t *testing.T) {
	for _, name := range []string{"mf_process_maxfwd_header", "is_maxfwd_lt"} {
		for _, v := range []int{0, -1, 257} {
			if _, err := fixup(t, fn(t, name), ci(v)); err == nil {
				t.Errorf("%s(%d) accepted", name, v)
			}
		}
		if _, err := fixup(t, fn(t, name), ci(70)); err != nil {
			t.Errorf("%s(70): %v", name, err)
		}
	}
	for _, v := range []int{0, 257} {
		if _, err := configure(modules.Params{"max_limit": {value.I(v)}}); err == nil {
			t.Errorf("max_limit %d accepted", v)
		}
	}
	if p, _ := modules.Lookup("maxfwd").ParamSpec("max_limit"); p == nil || p.Default != value.I(256) {
		t.Errorf("max_limit default = %v", p)
	}
}
