package proto

import (
	"testing"

	"github.com/sipedge/sipedge/modules"
	_ "github.com/sipedge/sipedge/modules/core"
	_ "github.com/sipedge/sipedge/modules/sl"
	"github.com/sipedge/sipedge/runtime/scripttest"
	"github.com/sipedge/sipedge/runtime/value"
)

func TestRegistered(t *testing.T) {
	for _, m := range Modules {
		info := modules.Lookup(m.Name)
		if info == nil {
			t.Fatalf("%s not registered", m.Name)
		}
		if _, err := info.ParamSpec(m.Proto + "_port"); err != nil {
			t.Errorf("%s: %v", m.Name, err)
		}
		fn, err := info.Configure(modules.Params{m.Proto + "_port": {value.I(0)}})
		if err == nil || fn != nil {
			t.Errorf("%s accepted port 0", m.Name)
		}
		if _, err := info.Configure(modules.Params{m.Proto + "_port": {value.I(m.Port)}}); err != nil {
			t.Errorf("%s: %v", m.Name, err)
		}
	}
	if Lookup("proto_tcp") == nil || Lookup("proto_sctp") != nil {
		t.Error("Lookup")
	}
}

// An OpenSIPS 3.x module section with the transport modules loads.
func TestScriptLoads(t *testing.T) {
	files := map[string][]byte{
		"script.cfg": []byte(`
socket=udp:127.0.0.1:5060
socket=tcp:127.0.0.1:5060
loadmodule "proto_udp.so"
loadmodule "proto_tcp.so"
loadmodule "proto_tls.so"
loadmodule "proto_ws.so"
loadmodule "sl.so"
modparam("proto_udp", "udp_port", 5070)
modparam("proto_tcp", "tcp_async", 0)
modparam("proto_tcp", "tcp_send_timeout", 200)
modparam("proto_tls", "tls_port", 5071)
modparam("proto_ws", "ws_resource", "/sip")
route { sl_send_reply(200, "OK"); }
`),
		"in.sip": []byte("OPTIONS sip:a@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK-1\nFrom: <sip:b@x>;tag=1\nTo: <sip:a@127.0.0.1>\nCall-ID: p1\nCSeq: 1 OPTIONS\nMax-Forwards: 70\nContent-Length: 0\n\n"),
	}
	got, err := scripttest.Execute(files, ".", "")
	if err != nil {
		t.Fatal(err)
	}
	if got != "reply 200 OK\noutcome returned 1\n" {
		t.Errorf("got %q", got)
	}
}
