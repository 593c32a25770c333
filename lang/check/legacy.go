package check

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sipedge/sipedge/lang/ast"
)

// What OpenSIPS 1.x/2.x scripts write that 3.x spells differently. The
// checker uses these tables to say what to write instead: in its error
// when sipedge rejects the old form, and in the porting report (CheckReport)
// as a warning when sipedge still accepts it.

// legacyGlobals are old core parameter names sipedge still accepts.
var legacyGlobals = map[string]string{
	"listen":       "OpenSIPS 3.x declares sockets with socket= (listen= is the older name)",
	"debug":        "the older name of log_level=: write log_level=",
	"children":     "OpenSIPS 3.x calls it udp_workers=",
	"tcp_children": "OpenSIPS 3.x calls it tcp_workers=",
	"log_stderror": "newer OpenSIPS 3.x writes stderror_enabled= (OpenSIPS 4.0 drops log_stderror)",
	"log_facility": "newer OpenSIPS 3.x writes syslog_facility=",
	"log_name":     "newer OpenSIPS 3.x writes syslog_name=",
}

// removedGlobals are core parameters sipedge rejects, with what to do.
var removedGlobals = map[string]string{
	"port":               "OpenSIPS 1.x: give the port in the socket, socket=udp:IP:PORT",
	"avp_aliases":        "OpenSIPS 1.x: AVPs have names now, $avp(name)",
	"tls_certificate":    "OpenSIPS 1.x: TLS settings are tls_mgm modparams now",
	"tls_private_key":    "OpenSIPS 1.x: TLS settings are tls_mgm modparams now",
	"tls_ca_list":        "OpenSIPS 1.x: TLS settings are tls_mgm modparams now",
	"tls_method":         "OpenSIPS 1.x: TLS settings are tls_mgm modparams now",
	"debug_mode":         "an OpenSIPS 3.x core parameter sipedge does not implement (it runs in the foreground already)",
	"poll_method":        "an OpenSIPS 3.x core parameter sipedge does not implement (Go's netpoller is used)",
	"dns_try_naptr":      "an OpenSIPS 3.x core parameter sipedge does not implement (DNS A/AAAA only)",
	"dns_retr_time":      "an OpenSIPS core parameter sipedge does not implement (the system resolver is used)",
	"dns_retr_no":        "an OpenSIPS core parameter sipedge does not implement (the system resolver is used)",
	"dns_servers_no":     "an OpenSIPS core parameter sipedge does not implement (the system resolver is used)",
	"tcp_listen_backlog": "an OpenSIPS core parameter sipedge does not implement",
}

// legacyFuncs are 1.x/2.x functions 3.x no longer has: module (in the
// old release) and what to write instead.
var legacyFuncs = map[string][2]string{
	"rewritehost":     {"core", "sethost()"},
	"rewritehostport": {"core", "sethostport()"},
	"rewriteuri":      {"core", "seturi()"},
	"rewriteuser":     {"core", "setuser()"},
	"rewriteuserpass": {"core", "setuserpass()"},
	"rewriteport":     {"core", "setport()"},
	"setbranchflag":   {"core", "setbflag()"},
	"resetbranchflag": {"core", "resetbflag()"},
	"isbranchflagset": {"core", "isbflagset()"},
	"setsflag":        {"core", "a message flag (setflag()) or a $var(): script flags are gone"},
	"resetsflag":      {"core", "a message flag (resetflag()) or a $var(): script flags are gone"},
	"issflagset":      {"core", "a message flag (isflagset()) or a $var(): script flags are gone"},
	"forward_udp":     {"core", `forward("udp:HOST:PORT")`},
	"forward_tcp":     {"core", `forward("tcp:HOST:PORT")`},
	"forward_tls":     {"core", `forward("tls:HOST:PORT")`},
	"t_relay_to_udp":  {"tm", `t_relay(, "udp:HOST:PORT")`},
	"t_relay_to_tcp":  {"tm", `t_relay(, "tcp:HOST:PORT")`},
	"t_relay_to_tls":  {"tm", `t_relay(, "tls:HOST:PORT")`},
	"t_relay_to":      {"tm", `t_relay(, "PROTO:HOST:PORT")`},
	"avp_db_query":    {"avpops", "sql_query() of module sqlops (OpenSIPS 3.2+)"},
	"avp_db_load":     {"avpops", "sql_avp_load() of module sqlops (OpenSIPS 3.2+)"},
	"avp_db_store":    {"avpops", "sql_avp_store() of module sqlops (OpenSIPS 3.2+)"},
	"avp_db_delete":   {"avpops", "sql_avp_delete() of module sqlops (OpenSIPS 3.2+)"},
	"ds_is_from_list": {"dispatcher", "ds_is_in_list($si, $sp)"},
	"check_to":        {"uri", "db_is_to_authorized() of module auth_db"},
	"check_from":      {"uri", "db_is_from_authorized() of module auth_db"},
	"does_uri_exist":  {"uri", "db_does_uri_exist() of module auth_db"},
	"get_auth_id":     {"uri", "db_get_auth_id() of module auth_db"},
	"is_user_in":      {"group", "db_is_user_in() of module group"},
	"sip_trace":       {"siptrace", "trace() of module tracer"},
}

// legacyModParams are module parameters of older releases: module.param
// → what to write instead. accepted tells whether sipedge still takes it.
var legacyModParams = map[string]struct {
	note     string
	accepted bool
}{
	"cachedb_local.cache_table_size":   {"OpenSIPS 2.x: 3.x sizes each collection with cache_collections (\"name = size\")", true},
	"dispatcher.ds_probing_threshhold": {"the 2.x spelling: write ds_probing_threshold", true},
	"dispatcher.list_file":             {"OpenSIPS 2.x+ reads destinations from the database only; sipedge accepts list_file (format in modules/dispatcher/README.md)", true},
	"dispatcher.flags":                 {"OpenSIPS 2.1 moved the flags to ds_select_dst()'s flags argument", false},
	"dispatcher.force_dst":             {"OpenSIPS 2.1 dropped it (ds_select_dst() always sets $du)", false},
	"dispatcher.use_default":           {"OpenSIPS 2.1 moved it to ds_select_dst()'s \"d\" flag", false},
	"uac.credential":                   {"OpenSIPS 3.x moved it to module uac_auth: modparam(\"uac_auth\", \"credential\", …)", false},
	"uac.auth_username_avp":            {"OpenSIPS 3.x moved it to module uac_auth", false},
	"uac.auth_password_avp":            {"OpenSIPS 3.x moved it to module uac_auth", false},
	"uac.auth_realm_avp":               {"OpenSIPS 3.x moved it to module uac_auth", false},
	"uac.from_restore_mode":            {"OpenSIPS 1.x: write restore_mode", false},
	"uac.from_passwd":                  {"OpenSIPS 1.x: write restore_passwd", false},
	"tm.fr_timer":                      {"the older name of fr_timeout: write fr_timeout", false},
	"tm.fr_inv_timer":                  {"the older name of fr_inv_timeout: write fr_inv_timeout", false},
	"rr.enable_full_lr":                {"removed: OpenSIPS always writes ;lr", false},
	"nathelper.rtpproxy_sock":          {"OpenSIPS 1.x: rtpproxy is module rtpproxy now (modparam(\"rtpproxy\", \"rtpproxy_sock\", …))", false},
}

// moduleNotes say what to do about modules sipedge lacks (or renamed);
// they are used only while sipedge lacks the module.
var moduleNotes = map[string]string{
	"signaling":   "sipedge has no signaling module: send_reply() → sl_send_reply(), or t_reply() once a transaction exists",
	"db_mysql":    "sipedge's only database driver is SQLite: db_url \"sqlite:///path/to/sipedge.db\"",
	"db_postgres": "sipedge's only database driver is SQLite: db_url \"sqlite:///path/to/sipedge.db\"",
	"db_text":     "sipedge's only database driver is SQLite: db_url \"sqlite:///path/to/sipedge.db\"",
	"mi_fifo":     "sipedge serves MI over HTTP (loadmodule \"mi_http.so\") and with `sipedge mi`",
	"mi_datagram": "sipedge serves MI over HTTP (loadmodule \"mi_http.so\") and with `sipedge mi`",
	"mi_xmlrpc":   "sipedge serves MI over HTTP (loadmodule \"mi_http.so\") and with `sipedge mi`",
	"mi_json":     "OpenSIPS 3.x: mi_http speaks JSON-RPC (loadmodule \"mi_http.so\")",
	"siptrace":    "OpenSIPS 2.2+ calls it tracer (trace())",
	"uac_auth":    "sipedge does not implement uac_auth: failure_route cannot see the 401/407 challenge yet",
	"uri_db":      "OpenSIPS 2.x merged it into uri; 3.x has the checks in auth_db (db_does_uri_exist() …)",
}

// funcNotes say what to do about OpenSIPS 3.x functions sipedge lacks.
var funcNotes = map[string]string{
	"uac_auth":     "not implemented: failure_route does not see the 401/407 challenge yet",
	"uac_inc_cseq": "not implemented",
	"send_reply":   "sipedge has no signaling module: write sl_send_reply(), or t_reply() once a transaction exists",
}

// keywordNotes are the 1.x/2.x bare condition operands OpenSIPS 2.4
// removed; sipedge still reads them.
var keywordNotes = map[string]string{
	"method": "$rm", "uri": "$ru", "status": "$rs", "src_ip": "$si", "src_port": "$sp",
	"dst_ip": "$Ri", "dst_port": "$Rp", "proto": "$pr", "af": "$af", "from_uri": "$fu",
	"to_uri": "$tu", "myself": "is_myself(\"$rd\") (or $ru/$fd …)", "msg:len": "$ml",
}

// legacyArgs spot 1.x/2.x argument forms that sipedge still accepts.
var legacyArgs = map[string]func(args []ast.Expr) string{
	"nat_uac_test": func(args []ast.Expr) string {
		n, ok := intArg(args, 0)
		if !ok {
			return ""
		}
		return fmt.Sprintf("OpenSIPS 3.x takes check names: nat_uac_test(%q)", bitNames(n, natTestNames))
	},
	"fix_nated_sdp": func(args []ast.Expr) string {
		n, ok := intArg(args, 0)
		if !ok {
			return ""
		}
		return fmt.Sprintf("OpenSIPS 3.x takes flag names: fix_nated_sdp(%q…)", bitNames(n, sdpFlagNames))
	},
	"t_relay": func(args []ast.Expr) string {
		n, ok := intArg(args, 0)
		if !ok || n == 0 {
			return ""
		}
		return fmt.Sprintf("OpenSIPS 3.x takes flag names: t_relay(%q)", bitNames(n, relayFlagNames))
	},
	"ds_select_dst":    dsFlagsNote,
	"ds_select_domain": dsFlagsNote,
	"uac_replace_from": uacOneArg,
	"uac_replace_to":   uacOneArg,
	"save":             registrarNumeric,
	"lookup":           registrarNumeric,
	"ds_is_in_list": func(args []ast.Expr) string {
		if _, ok := intArg(args, 3); !ok {
			return ""
		}
		return "OpenSIPS 2.x's 4th argument (active_only) is the 5th in 3.x, after the partition: ds_is_in_list(ip, port, set, , 1)"
	},
	"setflag":    numericFlag,
	"resetflag":  numericFlag,
	"isflagset":  numericFlag,
	"setbflag":   numericFlag,
	"resetbflag": numericFlag,
	"isbflagset": numericFlag,
}

var (
	natTestNames = []string{"private-contact", "diff-ip-src-via", "private-via", "private-sdp",
		"diff-port-src-via", "diff-ip-src-contact", "diff-port-src-contact", "carrier-grade-nat"}
	sdpFlagNames   = []string{"add-dir-active", "rewrite-media-ip", "add-no-rtpproxy", "rewrite-origin-ip", "rewrite-null-ips"}
	relayFlagNames = []string{"", "no-auto-477", "no-dns-failover", "pass-reason-hdr", "allow-no-cancel"}
)

func literal(args []ast.Expr, i int) (*ast.Literal, bool) {
	if i >= len(args) {
		return nil, false
	}
	l, ok := args[i].(*ast.Literal)
	return l, ok
}

// intArg reads argument i as an integer constant (decimal or 0x…).
func intArg(args []ast.Expr, i int) (int, bool) {
	l, ok := literal(args, i)
	if !ok {
		return 0, false
	}
	if l.Kind == ast.IntLit {
		return l.Int, true
	}
	n, err := strconv.ParseInt(strings.TrimSpace(l.Str), 0, 32)
	return int(n), err == nil
}

func bitNames(n int, names []string) string {
	var out []string
	for i, name := range names {
		if n&(1<<i) != 0 && name != "" {
			out = append(out, name)
		}
	}
	return strings.Join(out, ",")
}

func dsFlagsNote(args []ast.Expr) string {
	l, ok := literal(args, 2)
	if !ok || l.Kind != ast.StringLit || !strings.ContainsAny(l.Str, "Mm") {
		return ""
	}
	return "OpenSIPS 2.x \"flags M max\": 3.x takes max_res as the 5th argument, ds_select_dst(set, alg, \"flags\", , max)"
}

func uacOneArg(args []ast.Expr) string {
	if len(args) != 1 {
		return ""
	}
	return "OpenSIPS 3.x needs the display argument, even empty: uac_replace_from(, \"sip:…\")"
}

func numericFlag(args []ast.Expr) string {
	n, ok := intArg(args, 0)
	if !ok {
		return ""
	}
	return fmt.Sprintf("OpenSIPS 3.x flags are names (%d is taken as the name \"%d\", not bit %d): name it, e.g. NAT, and use the same name in modparams", n, n, n)
}

func registrarNumeric(args []ast.Expr) string {
	if _, ok := intArg(args, 1); !ok {
		return ""
	}
	return "OpenSIPS 3.x takes letter flags (\"m\", \"r\", \"p0\"…), not a number"
}
