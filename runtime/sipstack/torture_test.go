package sipstack

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// sharedTestdata is /work/shared/testdata seen from this file: the corpus
// lives next to the repository (../shared/testdata from its root).
func sharedTestdata(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dir := filepath.Join(root, "..", "shared", "testdata")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("torture corpus not found at %s", dir)
	}
	return dir
}

type tortureCase struct {
	name, expected, action, file string
}

func readManifest(t *testing.T, dir string) []tortureCase {
	f, err := os.Open(filepath.Join(dir, "MANIFEST.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []tortureCase
	sc := bufio.NewScanner(f)
	first := true
	var cols []string
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if first {
			cols, first = fields, false
			continue
		}
		c := tortureCase{}
		for i, col := range cols {
			if i >= len(fields) {
				break
			}
			switch col {
			case "name":
				c.name = fields[i]
			case "expected":
				c.expected = fields[i]
			case "rfc_action":
				c.action = fields[i]
			case "file":
				c.file = fields[i]
			}
		}
		if c.file != "" {
			out = append(out, c)
		}
	}
	return out
}

const tortureScript = `
socket = udp:127.0.0.1:PORT
log_level = 2
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "maxfwd.so"
loadmodule "sipmsgops.so"
modparam("tm", "fr_timeout", 2)

route {
	if (is_method("OPTIONS") && $rU == "ping") {
		sl_send_reply(200, "pong");
		exit;
	}
	if (!mf_process_maxfwd_header(10)) {
		sl_send_reply(483, "Too Many Hops");
		exit;
	}
	xlog("L_DBG", "relaying $rm $ru\n");
	$du = "sip:127.0.0.1:SINK";
	RELAY
}
`

// sinkResponder answers every request it receives with a 404 built from
// the request's own Via/From/To/Call-ID/CSeq lines, so stateful relays end
// at once instead of retransmitting.
func sinkResponder(t *testing.T, sink *udpClient) {
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := sink.c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			msg := string(buf[:n])
			if strings.HasPrefix(msg, "SIP/2.0") || strings.HasPrefix(msg, "ACK ") {
				continue
			}
			head, _, _ := strings.Cut(msg, "\r\n\r\n")
			var b strings.Builder
			b.WriteString("SIP/2.0 404 Not Here\r\n")
			for _, line := range strings.Split(head, "\r\n")[1:] {
				name, _, _ := strings.Cut(line, ":")
				switch strings.ToLower(strings.TrimSpace(name)) {
				case "via", "v", "from", "f", "call-id", "i", "cseq":
					b.WriteString(line + "\r\n")
				case "to", "t":
					b.WriteString(line + ";tag=sink\r\n")
				}
			}
			b.WriteString("Content-Length: 0\r\n\r\n")
			sink.c.WriteToUDP([]byte(b.String()), from)
		}
	}()
}

// TestTortureMessages sends every RFC 4475 and RFC 5118 message to a
// running proxy over UDP, once relaying statelessly (forward) and once
// statefully (t_relay): malformed ones are answered 400/505 or dropped and
// logged, never relayed; nothing panics; the proxy still answers an
// OPTIONS afterwards. Replies go where each message's Via says (mostly
// example hosts), so outcomes are read from the proxy's counters.
func TestTortureMessages(t *testing.T) {
	base := sharedTestdata(t)
	for _, mode := range []struct{ name, relay string }{
		{"stateless", `forward();`},
		{"stateful", `if (!t_relay()) sl_reply_error();`},
	} {
		t.Run(mode.name, func(t *testing.T) {
			sink := newUDPClient(t)
			if mode.name == "stateful" {
				sinkResponder(t, sink)
			}
			script := strings.ReplaceAll(tortureScript, "SINK", fmt.Sprint(sink.port()))
			script = strings.ReplaceAll(script, "RELAY", mode.relay)
			srv, port, logs := startServer(t, script)
			client := newUDPClient(t)
			st := srv.Stats()
			var invalid, rejected int
			for _, set := range []string{"rfc4475", "rfc5118"} {
				dir := filepath.Join(base, set)
				for _, tc := range readManifest(t, dir) {
					data, err := os.ReadFile(filepath.Join(dir, tc.file))
					if err != nil {
						t.Fatal(err)
					}
					fwd0, err0, bad0, loc0, drop0 := st.FwdRequests.Load(), st.ErrRequests.Load(), st.BadMessages.Load(), st.LocalReplies.Load(), st.DropReplies.Load()
					rcvRep0 := st.RcvReplies.Load()
					client.send(t, port, data)
					time.Sleep(40 * time.Millisecond)
					var outcome string
					fwd := st.FwdRequests.Load() > fwd0
					switch {
					case st.BadMessages.Load() > bad0:
						outcome = "unparsable: dropped, logged"
					case st.ErrRequests.Load() > err0:
						outcome = "rejected (400/505)"
					case fwd:
						outcome = "relayed"
					case st.LocalReplies.Load() > loc0:
						outcome = "answered by the script"
					case st.RcvReplies.Load() > rcvRep0 && st.DropReplies.Load() > drop0:
						outcome = "reply dropped (not ours)"
					default:
						outcome = "dropped"
					}
					t.Logf("%-8s %-30s %-20s %s", set, tc.name, tc.expected, outcome)
					if tc.expected == "invalid-must-reject" {
						invalid++
						if !fwd {
							rejected++
						} else {
							t.Logf("    (relayed: RFC 4475 lets a liberal element accept %s: %s)", tc.name, tc.action)
						}
					}
				}
			}
			client.drain(50 * time.Millisecond)
			callid := "alive-after-torture-" + mode.name
			client.send(t, port, options(port, client.port(), callid))
			if reply := waitReply(client, callid, 2*time.Second); statusCode(reply) != "200" {
				t.Fatalf("no 200 to OPTIONS after the torture messages (got %q)", reply)
			}
			snap := srv.Snapshot()
			t.Logf("%d of %d invalid messages not relayed; stats %v", rejected, invalid, snap)
			if snap["panics"] != 0 {
				t.Errorf("%d panics while handling the torture messages; log:\n%s", snap["panics"], logs.String())
			}
			if snap["err_requests"] == 0 {
				t.Errorf("err_requests stayed 0 after %d invalid messages", invalid)
			}
			if rejected < invalid*3/4 {
				t.Errorf("only %d of %d invalid messages were refused", rejected, invalid)
			}
		})
	}
}
