package msgctx

import (
	"reflect"
	"testing"
)

func TestParseHop(t *testing.T) {
	cases := []struct {
		in   string
		want Hop
		err  bool
	}{
		{"udp:10.0.0.1:5070", Hop{Proto: "udp", Host: "10.0.0.1", Port: 5070}, false},
		{"tcp:example.com", Hop{Proto: "tcp", Host: "example.com", Default: true}, false},
		{"10.0.0.1", Hop{Proto: "udp", Host: "10.0.0.1", Default: true}, false},
		{"[2001:db8::1]:5062", Hop{Proto: "udp", Host: "2001:db8::1", Port: 5062}, false},
		{"sip:bob@10.0.0.2:5090;transport=TCP", Hop{Proto: "tcp", Host: "10.0.0.2", Port: 5090}, false},
		{"sips:bob@example.com", Hop{Proto: "tls", Host: "example.com", Default: true}, false},
		{"sip:10.0.0.3;maddr=10.0.0.4;lr", Hop{Proto: "udp", Host: "10.0.0.4", Default: true}, false},
		{"udp:10.0.0.1:notaport", Hop{}, true},
		{"", Hop{}, true},
	}
	for _, c := range cases {
		got, err := ParseHop(c.in)
		if (err != nil) != c.err || (!c.err && got != c.want) {
			t.Errorf("ParseHop(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	if s := (Hop{Proto: "tls", Host: "example.com"}).String(); s != "tls:example.com:5061" {
		t.Errorf("String = %s", s)
	}
}

func TestRecordRouteValues(t *testing.T) {
	in := RRAddr{Proto: "udp", Host: "10.0.0.1", Port: 5060}
	out := RRAddr{Proto: "tcp", Host: "10.0.0.1", Port: 5060}
	rr := RecordRoute{On: true, Params: ";did=1"}
	if got, want := rr.Values(in, in, true, "ft", ""), []string{"<sip:10.0.0.1:5060;lr;ftag=ft;did=1>"}; !reflect.DeepEqual(got, want) {
		t.Errorf("same socket: %v", got)
	}
	want := []string{"<sip:10.0.0.1:5060;transport=tcp;r2=on;lr;ftag=ft;did=1>", "<sip:10.0.0.1:5060;r2=on;lr;ftag=ft;did=1>"}
	if got := rr.Values(in, out, true, "ft", ""); !reflect.DeepEqual(got, want) {
		t.Errorf("double: %v", got)
	}
	if got := rr.Values(in, out, false, "", "bob"); !reflect.DeepEqual(got, []string{"<sip:bob@10.0.0.1:5060;transport=tcp;lr;did=1>"}) {
		t.Errorf("double disabled: %v", got)
	}
	preset := RecordRoute{On: true, Preset: "203.0.113.1:5080", Preset2: "sip:10.0.0.1"}
	if got := preset.Values(in, out, true, "ft", ""); !reflect.DeepEqual(got, []string{"<sip:203.0.113.1:5080;lr>", "<sip:10.0.0.1;lr>"}) {
		t.Errorf("preset: %v", got)
	}
	if got := (RecordRoute{Params: ";x=1"}).Values(in, in, true, "", ""); got != nil {
		t.Errorf("not on: %v", got)
	}
}
