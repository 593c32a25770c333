package syntax

import (
	"fmt"
	"strings"
	"testing"
)

// genConfig writes a realistic script of about n lines: core parameters,
// modules, and routes full of if/switch/xlog/t_relay and pvars with
// transformations.
func genConfig(n int) []byte {
	var b strings.Builder
	b.WriteString(`#
# generated benchmark configuration
#
log_level = 3
xlog_level = 3
log_stderror = no
log_facility = LOG_LOCAL0
udp_workers = 8
socket = udp:127.0.0.1:5060 as 1.2.3.4:5060
socket = tcp:127.0.0.1:5060 use_workers 4
mpath = "/usr/lib/x86_64-linux-gnu/opensips/modules/"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "sl.so"
loadmodule "dialog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("tm", "fr_timeout", 5)
modparam("tm", "fr_inv_timeout", 30)
modparam("usrloc", "db_url", "mysql://opensips:opensipsrw@localhost/opensips")
modparam("dialog", "profiles_with_value", "concurrent")

route {
	if (!mf_process_maxfwd_header(10)) {
		send_reply(483, "Too Many Hops");
		exit;
	}
	route(checks);
	exit;
}
`)
	lines := strings.Count(b.String(), "\n")
	for r := 0; lines < n; r++ {
		chunk := fmt.Sprintf(`
# route number %[1]d
route[r%[1]d] {
	xlog("L_INFO", "[%[1]d] $rm from $si:$sp to $ru ($ci)\n");
	if ($ua =~ "friendly|sipcli|VaxSIPUser" || $fU == "nm") {
		xlog("L_WARN", "scanner $si blocked\n");
		exit;
	}
	$var(prefix) = $(rU{s.substr,0,4});
	$var(user) = $(tu{uri.user}{s.tolower});
	if (is_method("INVITE") && !has_totag()) {
		if ($(hdr(Via)[0]{via.branch}) == NULL || $var(count) >= 10) {
			send_reply(403, "Forbidden");
			exit;
		}
		$avp(dest) = "sip:" + $rU + "@" + $rd;
		switch ($retcode) {
			case -1:
				xlog("L_ALERT", "$si:$sp unknown user From=$fu\n");
				break;
			case -2:
				xlog("L_ALERT", "$si:$sp bad password From=$fu\n");
				break;
			default:
				route(relay);
		}
	} else if (is_method("BYE|CANCEL")) {
		t_check_trans();
	}
	$var(i) = 0;
	while ($var(i) < 3) {
		$var(i) = $var(i) + 1;
	}
	if (t_check_status("486") && $T_reply_code == 486) {
		$avp(x) := $(avp(y)[*]);
	}
	if (!t_relay()) {
		sl_reply_error();
	}
	return(1);
}
`, r)
		b.WriteString(chunk)
		lines += strings.Count(chunk, "\n")
	}
	return []byte(b.String())
}

func TestGeneratedConfigParses(t *testing.T) {
	src := genConfig(3000)
	if _, err := Parse("bench.cfg", src); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkParse(b *testing.B) {
	src := genConfig(3000)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	b.ReportMetric(float64(strings.Count(string(src), "\n")), "lines")
	for i := 0; i < b.N; i++ {
		if _, err := Parse("bench.cfg", src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkScan(b *testing.B) {
	src := genConfig(3000)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		scan("bench.cfg", src, nil)
	}
}
