// Package all links every sipedge module into a binary: import it for its
// side effects (each module registers itself in init).
package all

import (
	_ "github.com/sipedge/sipedge/modules/cachedb_local"
	_ "github.com/sipedge/sipedge/modules/cfgutils"
	_ "github.com/sipedge/sipedge/modules/core"
	_ "github.com/sipedge/sipedge/modules/corefwd"
	_ "github.com/sipedge/sipedge/modules/maxfwd"
	_ "github.com/sipedge/sipedge/modules/pike"
	_ "github.com/sipedge/sipedge/modules/ratelimit"
	_ "github.com/sipedge/sipedge/modules/rr"
	_ "github.com/sipedge/sipedge/modules/sipmsgops"
	_ "github.com/sipedge/sipedge/modules/sl"
	_ "github.com/sipedge/sipedge/modules/textops"
	_ "github.com/sipedge/sipedge/modules/tm"
)
