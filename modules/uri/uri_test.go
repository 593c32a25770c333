package uri

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/modules"
	_ "github.com/sipedge/sipedge/modules/core"
	"github.com/sipedge/sipedge/runtime/scripttest"
)

func TestAliases(t *testing.T) {
	src := modules.Lookup("sipmsgops")
	for _, a := range Aliases {
		var alias, target *modules.Func
		for _, f := range modules.Lookup(Name).Funcs {
			if f.Name == a.Name {
				alias = f
			}
		}
		for _, f := range src.Funcs {
			if f.Name == a.Target {
				target = f
			}
		}
		if alias == nil || target == nil || len(alias.Args) != len(target.Args) || alias.Routes != target.Routes {
			t.Errorf("%s -> %s", a.Name, a.Target)
		}
	}
}

const fixture = `-- script.cfg --
loadmodule "uri.so"
route {
    if (!has_totag())
        xlog("L_INFO", "initial\n");
    if (uri_param("transport", "udp"))
        xlog("L_INFO", "udp\n");
    if (!uri_param("lr"))
        xlog("L_INFO", "no lr\n");
    add_uri_param("lr");
    if (uri_param("lr"))
        xlog("L_INFO", "$ru\n");
    del_uri_param("transport");
    xlog("L_INFO", "$ru\n");
    if (is_uri_user_e164("$fu"))
        xlog("L_INFO", "e164 caller\n");
    $ru = "tel:+4930123";
    tel2sip();
    xlog("L_INFO", "$ru\n");
    exit;
}
-- in.sip --
INVITE sip:100@192.0.2.1;transport=udp SIP/2.0
Via: SIP/2.0/UDP 192.0.2.11:5060;branch=z9hG4bK-uri1
From: <sip:+4930555@example.org>;tag=1
To: <sip:100@192.0.2.1>
Call-ID: uri-1
CSeq: 1 INVITE
Max-Forwards: 70
Content-Length: 0

-- want --
log INFO initial
log INFO udp
log INFO no lr
log INFO sip:100@192.0.2.1;transport=udp;lr
log INFO sip:100@192.0.2.1;lr
log INFO e164 caller
log INFO sip:+4930123@example.org;user=phone
outcome exited
`

func TestScript(t *testing.T) {
	for _, f := range []string{fixture, strings.Replace(fixture, `loadmodule "uri.so"`, "loadmodule \"uri.so\"\nloadmodule \"sipmsgops.so\"", 1)} {
		res, err := scripttest.Run(filepath.Join(t.TempDir(), "uri.txtar"), []byte(f))
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK() {
			t.Fatalf("got\n%swant\n%s", res.Got, res.Want)
		}
	}
}
