package vm_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/internal/txtar"
	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/syntax"
	_ "github.com/sipedge/sipedge/modules/all"
	"github.com/sipedge/sipedge/runtime/engine"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/scripttest"
	"github.com/sipedge/sipedge/runtime/vm"
)

var update = flag.Bool("update", false, "rewrite the want sections of testdata/*.txtar")

// TestGolden runs each testdata fixture (script + message → recorded
// actions) through the VM.
func TestGolden(t *testing.T) {
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
			if res.OK() {
				return
			}
			if *update {
				a := txtar.Parse(data)
				a.Set("want", []byte(res.Got))
				if err := os.WriteFile(f, txtar.Format(a), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			t.Errorf("want:\n%sgot:\n%s", res.Want, res.Got)
		})
	}
}

const scannerScript = `
route {
    if ($ua =~ "friendly|sipcli|VaxSIPUser|VoIP.*v1")
        exit;
    if ($fd == "1.1.1.1" || $fU == "nm")
        exit;
}
`

const seedOptions = "OPTIONS sip:100@123.45.251.24 SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:6241;branch=z9hG4bK-2252719110;rport\r\n" +
	"Content-Length: 0\r\n" +
	"From: \"sipvicious\"<sip:100@%s>;tag=303539631363413939373134\r\n" +
	"Accept: application/sdp\r\n" +
	"User-Agent: %s\r\n" +
	"To: \"sipvicious\"<sip:100@1.1.1.1>\r\n" +
	"Contact: sip:100@127.0.0.1:6241\r\n" +
	"CSeq: 1 OPTIONS\r\n" +
	"Call-ID: 10971752559881716145531\r\n" +
	"Max-Forwards: 70\r\n\r\n"

func loadScript(tb testing.TB, src string) *engine.Script {
	tb.Helper()
	f, err := syntax.Parse("bench.cfg", []byte(src))
	if err != nil {
		tb.Fatal(err)
	}
	s, err := engine.Build(f)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func parseRequest(tb testing.TB, fromDomain, ua string) *sip.Request {
	tb.Helper()
	msg, err := sip.ParseMessage([]byte(sprintf(seedOptions, fromDomain, ua)))
	if err != nil {
		tb.Fatal(err)
	}
	return msg.(*sip.Request)
}

type quietHost struct{}

func (quietHost) Log(*msgctx.Msg, int, string)         {}
func (quietHost) Reply(*msgctx.Msg, int, string) error { return nil }

// BenchmarkRoute measures the seed's scanner checks on a real OPTIONS: a
// scanner's (stopped by the first check) and an ordinary phone's (both
// checks run in full, the slow path).
func BenchmarkRoute(b *testing.B) {
	s := loadScript(b, scannerScript)
	r, _ := s.Prog.Lookup(ast.RequestRoute, "")
	for _, c := range []struct{ name, domain, ua string }{
		{"scanner", "1.1.1.1", "friendly-scanner"},
		{"phone", "example.com", "Linphone/5.2.0 (belle-sip/5.2.0)"},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := parseRequest(b, c.domain, c.ua)
			m := &msgctx.Msg{}
			b.ReportAllocs()
			for b.Loop() {
				m.Reset(s.Image.NumVars(), s.Image.NumAVPs())
				m.Req, m.Host = req, quietHost{}
				s.Image.Run(m, r)
			}
		})
	}
}

func TestScannerOutcomes(t *testing.T) {
	s := loadScript(t, scannerScript)
	r, _ := s.Prog.Lookup(ast.RequestRoute, "")
	for _, c := range []struct {
		domain, ua string
		want       vm.Outcome
	}{
		{"example.com", "friendly-scanner", vm.Exited},
		{"example.com", "sipcli/v1.8", vm.Exited},
		{"example.com", "VoIP SIP v11.2", vm.Exited},
		{"1.1.1.1", "Linphone/5.2.0", vm.Exited},
		{"example.com", "Linphone/5.2.0", vm.Returned},
	} {
		m := &msgctx.Msg{}
		m.Reset(s.Image.NumVars(), s.Image.NumAVPs())
		m.Req, m.Host = parseRequest(t, c.domain, c.ua), quietHost{}
		if got := s.Image.Run(m, r); got != c.want {
			t.Errorf("From @%s UA %q: outcome %v, want %v", c.domain, c.ua, got, c.want)
		}
	}
}
