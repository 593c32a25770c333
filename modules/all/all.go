// Package all links every sipedge module into a binary: import it for its
// side effects (each module registers itself in init).
package all

import (
	_ "github.com/sipedge/sipedge/modules/auth"
	_ "github.com/sipedge/sipedge/modules/auth_db"
	_ "github.com/sipedge/sipedge/modules/avpops"
	_ "github.com/sipedge/sipedge/modules/cachedb_local"
	_ "github.com/sipedge/sipedge/modules/cfgutils"
	_ "github.com/sipedge/sipedge/modules/core"
	_ "github.com/sipedge/sipedge/modules/corefwd"
	_ "github.com/sipedge/sipedge/modules/db_sqlite"
	_ "github.com/sipedge/sipedge/modules/dialog"
	_ "github.com/sipedge/sipedge/modules/fraud_detection"
	_ "github.com/sipedge/sipedge/modules/httpd"
	_ "github.com/sipedge/sipedge/modules/maxfwd"
	_ "github.com/sipedge/sipedge/modules/mi_http"
	_ "github.com/sipedge/sipedge/modules/pike"
	_ "github.com/sipedge/sipedge/modules/prometheus"
	_ "github.com/sipedge/sipedge/modules/ratelimit"
	_ "github.com/sipedge/sipedge/modules/registrar"
	_ "github.com/sipedge/sipedge/modules/rr"
	_ "github.com/sipedge/sipedge/modules/rtpengine"
	_ "github.com/sipedge/sipedge/modules/rtpproxy"
	_ "github.com/sipedge/sipedge/modules/sipmsgops"
	_ "github.com/sipedge/sipedge/modules/sl"
	_ "github.com/sipedge/sipedge/modules/sqlops"
	_ "github.com/sipedge/sipedge/modules/textops"
	_ "github.com/sipedge/sipedge/modules/tm"
	_ "github.com/sipedge/sipedge/modules/usrloc"
	_ "github.com/sipedge/sipedge/runtime/events"
)
