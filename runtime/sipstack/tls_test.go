package sipstack

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sipedge/sipedge/lang/syntax"
	_ "github.com/sipedge/sipedge/modules/proto"
	"github.com/sipedge/sipedge/runtime/engine"
)

// A socket= line without a port takes the proto_<p> module's <p>_port,
// else the protocol's well-known port.
func TestScriptSocketsProtoPort(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.cfg")
	script := `
socket = tls:127.0.0.1
socket = ws:127.0.0.1
socket = wss:127.0.0.1:4443
socket = udp:127.0.0.1
loadmodule "proto_tls.so"
loadmodule "proto_ws.so"
modparam("proto_tls", "tls_port", 5071)
route { exit; }
`
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	sc, err := engine.Load(path, syntax.Options{})
	if err != nil {
		t.Fatal(err)
	}
	specs, err := ScriptSockets(sc)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"tls:127.0.0.1:5071", "ws:127.0.0.1:80", "wss:127.0.0.1:4443", "udp:127.0.0.1:5060"}
	if len(specs) != len(want) {
		t.Fatalf("%v", specs)
	}
	for i, sp := range specs {
		if sp.String() != want[i] {
			t.Errorf("socket %d = %s, want %s", i, sp, want[i])
		}
	}
}
