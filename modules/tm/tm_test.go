package tm_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/sipedge/sipedge/modules/all"
	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/scripttest"
)

// TestFixtures runs testdata/*.txtar through `sipedge test`'s runner.
func TestFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txtar")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			res, err := scripttest.Run(f, data)
			if err != nil {
				t.Fatal(err)
			}
			if !res.OK() {
				t.Errorf("--- want\n%s--- got\n%s", res.Want, res.Got)
			}
		})
	}
}

func TestRelayFlags(t *testing.T) {
	cases := []struct {
		in   string
		want msgctx.RelayFlags
		err  bool
	}{
		{"", 0, false},
		{"no-auto-477", msgctx.RelayNoAuto477, false},
		{"no-auto-477, pass-reason-hdr", msgctx.RelayNoAuto477 | msgctx.RelayPassReason, false},
		{"0x02", msgctx.RelayNoAuto477, false},
		{"0x1c", msgctx.RelayNoDNSFailover | msgctx.RelayPassReason | msgctx.RelayAllowNoCancel, false},
		{"bogus", 0, true},
	}
	for _, c := range cases {
		got, err := tm.ParseRelayFlags(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("ParseRelayFlags(%q) = %v, %v; want %v (error %v)", c.in, got, err, c.want, c.err)
		}
	}
}

// A bad constant flag is a load-time error pointing at the argument.
func TestRelayFlagsCheckedAtLoad(t *testing.T) {
	files := map[string][]byte{
		"script.cfg": []byte("loadmodule \"tm.so\"\nroute {\n\tt_relay(\"no-auto-4777\");\n}\n"),
		"in.sip":     []byte("OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: x\nCSeq: 1 OPTIONS\n\n"),
	}
	_, err := scripttest.Execute(files, "", "")
	if err == nil || !strings.Contains(err.Error(), "script.cfg:3:10") || !strings.Contains(err.Error(), "no-auto-4777") {
		t.Fatalf("error = %v", err)
	}
}
