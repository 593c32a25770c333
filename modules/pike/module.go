// Package pike is OpenSIPS's pike module: flood detection per source IP.
// pike_check_req() counts the requests of the current source address per
// sampling unit and reports the address as flooding once it sends more than
// reqs_density_per_unit of them; what to do about it is up to the script.
package pike

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/internal/bglog"
	"github.com/sipedge/sipedge/lang/ast"
	"github.com/sipedge/sipedge/lang/check"
	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "pike"

// Defaults of the modparams (OpenSIPS's, plus sipedge's max_ips).
const (
	DefaultSamplingTimeUnit = 2   // seconds
	DefaultDensity          = 30  // requests per unit
	DefaultRemoveLatency    = 120 // seconds
	DefaultLogLevel         = msgctx.LWarn
	DefaultMaxIPs           = 1000000
)

// Return codes of pike_check_req.
const (
	RetOK      = 1
	RetBlocked = -1 // flooding, detected before
	RetNewRed  = -2 // flooding, detected by this request
)

var (
	cur       atomic.Pointer[params]
	sweepOnce sync.Once
)

func init() {
	cur.Store(&params{unit: DefaultSamplingTimeUnit * int64(time.Second), density: DefaultDensity,
		latency: DefaultRemoveLatency * int64(time.Second), logLvl: DefaultLogLevel, maxIPs: DefaultMaxIPs})
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "sampling_time_unit", Kind: modules.ParamInt, Default: value.I(DefaultSamplingTimeUnit)},
			{Name: "reqs_density_per_unit", Kind: modules.ParamInt, Default: value.I(DefaultDensity)},
			{Name: "remove_latency", Kind: modules.ParamInt, Default: value.I(DefaultRemoveLatency)},
			{Name: "pike_log_level", Kind: modules.ParamInt, Default: value.I(DefaultLogLevel)},
			{Name: "check_route", Kind: modules.ParamStr},
			// sipedge: the most source addresses tracked at once.
			{Name: "max_ips", Kind: modules.ParamInt, Default: value.I(DefaultMaxIPs)},
		},
		Configure: configure,
		Funcs: []*modules.Func{
			{Name: "pike_check_req", Routes: check.Routes(ast.RequestRoute), Call: callCheck},
		},
		MI: []modules.MICommand{
			{Name: "pike_list", Help: "Params: none ; list the IP addresses currently blocked", Run: miList},
			{Name: "pike_rm", Help: "Params: ip ; unblock an IP address", Run: miRemove},
		},
	})
}

func configure(mp modules.Params) (func(), error) {
	unit := mp.Int("sampling_time_unit")
	if unit <= 0 {
		return nil, fmt.Errorf("sampling_time_unit must be a positive number of seconds (got %d)", unit)
	}
	density := mp.Int("reqs_density_per_unit")
	if density <= 0 || density > 1<<31 {
		return nil, fmt.Errorf("reqs_density_per_unit must be a positive number (got %d)", density)
	}
	latency := mp.Int("remove_latency")
	if latency < 0 {
		return nil, fmt.Errorf("remove_latency cannot be negative (got %d)", latency)
	}
	if latency < unit {
		// as OpenSIPS: an address must outlive its sampling unit, or its
		// unblocking would go unnoticed
		latency = unit + 1
	}
	if r := mp.Str("check_route"); r != "" {
		return nil, fmt.Errorf("check_route %q: sipedge has no automatic pike mode; call pike_check_req() in the request route instead", r)
	}
	maxIPs := mp.Int("max_ips")
	if maxIPs <= 0 {
		return nil, fmt.Errorf("max_ips must be positive (got %d)", maxIPs)
	}
	p := &params{unit: int64(unit) * int64(time.Second), density: uint32(density),
		latency: int64(latency) * int64(time.Second), logLvl: mp.Int("pike_log_level"), maxIPs: int64(maxIPs)}
	return func() {
		cur.Store(p)
		sweepOnce.Do(func() { go sweeper() })
	}, nil
}

// pike_check_req(): 1 when the source address is not flooding (or cannot be
// tracked), -1 while it is blocked, -2 on the request that blocks it.
func callCheck(m *msgctx.Msg, _ *modules.Args) int {
	ip := m.Src.IP
	if ip == "" {
		return RetOK
	}
	p := cur.Load()
	switch ips.hit(p, ip, now()) {
	case blocked:
		return RetBlocked
	case newlyBlocked:
		if m.Host != nil {
			m.Host.Log(m, p.logLvl, "PIKE - BLOCKing ip "+ip)
		}
		return RetNewRed
	}
	return RetOK
}

// sweeper rolls the windows every sampling unit, logs the addresses that
// stop flooding and forgets idle ones, for the life of the process.
func sweeper() {
	for {
		p := cur.Load()
		time.Sleep(time.Duration(p.unit))
		p = cur.Load()
		for _, ip := range ips.sweep(p, now()) {
			logBackground(p.logLvl, "PIKE - UNBLOCKing ip "+ip)
		}
	}
}

var logger bglog.Logger

// SetLogger routes the module's background messages (the UNBLOCK lines;
// level in OpenSIPS numbering) to the SIP runtime's log; by default they go
// to log/slog.
func SetLogger(f func(level int, text string)) { logger.Set(f) }

func logBackground(level int, text string) { logger.Log(level, text) }

// Tracked is how many source addresses are tracked now.
func Tracked() int { return int(ips.size.Load()) }

func miList(map[string]any) (any, error) {
	list := ips.blockedIPs(cur.Load(), now())
	out := make([]any, len(list))
	for i, ip := range list {
		out[i] = ip
	}
	return map[string]any{"IPs": out}, nil
}

func miRemove(params map[string]any) (any, error) {
	raw, ok := params["ip"]
	if !ok {
		return nil, errors.New("missing parameter ip")
	}
	s, ok := raw.(string)
	if !ok {
		return nil, errors.New("parameter ip must be a string")
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return nil, errors.New("bad IP")
	}
	ip := addr.String()
	found, wasRed := ips.unblock(ip)
	if !found && addr.Is4In6() {
		found, wasRed = ips.unblock(addr.Unmap().String())
		ip = addr.Unmap().String()
	}
	switch {
	case !found:
		return nil, errors.New("match not found")
	case !wasRed:
		return nil, errors.New("IP not blocked")
	}
	logBackground(cur.Load().logLvl, "PIKE - UNBLOCKing ip "+ip)
	return "OK", nil
}
