package corefwd_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/sipedge/sipedge/modules/all"
	"github.com/sipedge/sipedge/runtime/scripttest"
)

func TestFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txtar")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		res, err := scripttest.Run(f, data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !res.OK() {
			t.Errorf("%s\n--- want\n%s--- got\n%s", f, res.Want, res.Got)
		}
	}
}

// A bad constant destination is refused when the script loads.
func TestBadDestination(t *testing.T) {
	files := map[string][]byte{
		"script.cfg": []byte("route {\n\tforward(\"udp:host:notaport\");\n}\n"),
		"in.sip":     []byte("OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: x\nCSeq: 1 OPTIONS\n\n"),
	}
	_, err := scripttest.Execute(files, "", "")
	if err == nil || !strings.Contains(err.Error(), "script.cfg:2:10") {
		t.Fatalf("error = %v", err)
	}
}
