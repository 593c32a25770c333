package events_test

import (
	"strings"
	"testing"

	_ "github.com/sipedge/sipedge/modules/core"
	"github.com/sipedge/sipedge/runtime/events"
	"github.com/sipedge/sipedge/runtime/scripttest"
)

func run(t *testing.T, script string) ([]events.Event, string, error) {
	t.Helper()
	var got []events.Event
	cancel := events.Subscribe(func(e events.Event) { got = append(got, e) })
	defer cancel()
	out, err := scripttest.Execute(map[string][]byte{
		"script.cfg": []byte(script),
		"in.sip":     []byte("OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: x\nCSeq: 1 OPTIONS\n\n"),
	}, "", "")
	return got, out, err
}

func TestRaiseEvent(t *testing.T) {
	evs, out, err := run(t, `route {
	raise_event("E_PLAIN");
	$avp(names) = "from";
	$avp(names) = "to";
	$avp(vals) = "alice";
	$avp(vals) = 42;
	raise_event("E_NAMED", $avp(names), $avp(vals));
	raise_event("E_VALUES", $avp(vals));
	$avp(vals) = "extra";
	if (!raise_event("E_BAD", $avp(names), $avp(vals)))
		xlog("L_INFO", "mismatch refused\n");
}`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "log ERROR raise_event E_BAD: 2 attribute names but 3 values") || !strings.Contains(out, "mismatch refused") {
		t.Errorf("output:\n%s", out)
	}
	if len(evs) != 3 {
		t.Fatalf("events %v", evs)
	}
	if evs[0].Name != "E_PLAIN" || len(evs[0].Params) != 0 {
		t.Errorf("plain: %+v", evs[0])
	}
	// AVPs pair by position, newest first
	if e := evs[1]; e.Name != "E_NAMED" || e.Get("to").String() != "42" || e.Get("from").String() != "alice" {
		t.Errorf("named: %+v", e)
	}
	if e := evs[2]; len(e.Params) != 2 || e.Params[0].Name != "" || e.Params[0].Value.String() != "42" {
		t.Errorf("values: %+v", e)
	}
}

func TestRaiseEventChecks(t *testing.T) {
	_, _, err := run(t, `route { raise_event("E_X", "$var(a)"); }`)
	if err == nil || !strings.Contains(err.Error(), "AVPs") {
		t.Errorf("error = %v", err)
	}
	_, _, err = run(t, `route { raise_event(""); }`)
	if err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("error = %v", err)
	}
}

func TestSubscribeCancel(t *testing.T) {
	n := 0
	cancel := events.Subscribe(func(events.Event) { n++ })
	events.Raise("E_A")
	cancel()
	events.Raise("E_A")
	if n != 1 {
		t.Errorf("handler ran %d times", n)
	}
}
