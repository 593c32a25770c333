package db_sqlite

import (
	"testing"

	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/value"
)

func TestConfigure(t *testing.T) {
	cfg := modules.Lookup("db_sqlite").Configure
	if _, err := cfg(modules.Params{"alloc_limit": {value.I(10)}}); err != nil {
		t.Error(err)
	}
	if _, err := cfg(modules.Params{"alloc_limit": {value.I(10)}, "load_extension": {value.S("/usr/lib/pcre.so")}}); err == nil {
		t.Error("load_extension accepted")
	}
}
