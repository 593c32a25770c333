// Package prometheus is OpenSIPS 3.x's prometheus module: the statistics
// of runtime/stats in the Prometheus exposition format, served by the httpd
// module at http://[httpd ip]:[httpd port]/[root] (default /metrics).
//
// As in OpenSIPS, only the statistics the "statistics" modparam names are
// exported ("all", "group:" or names, space separated, the parameter may
// be repeated; empty by default), and a statistic's metric name is
// prefix + delimiter + name ("opensips_rcv_requests"); group_mode 1 puts
// the group in the name (group_prefix + group + delimiter:
// "opensips_core_rcv_requests"), group_mode 2 in a label
// (group_label="core"). Characters outside [a-zA-Z0-9_:] become '_'.
// Incremental statistics are counters; gauges and computed statistics are
// gauges.
//
// The exposition is github.com/prometheus/client_golang's rather than
// hand-written: it does the text and OpenMetrics formats, content
// negotiation, compression and escaping the way every Prometheus server
// expects, and is what the Go ecosystem scrapes daily; writing that again
// would only add a format to keep correct. To keep scrapes cheap the
// collector builds one metric object per exported statistic once (again
// only when statistics are registered) and reads the atomic counters at
// scrape time; nothing per statistic is allocated by the collector itself.
package prometheus

import (
	"fmt"
	"net/http"
	"strings"
	"sync"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/modules/httpd"
	"github.com/sipedge/sipedge/runtime/stats"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module's name.
const Name = "prometheus"

// Group modes (OpenSIPS's group_mode values).
const (
	GroupNone  = 0 // no group
	GroupName  = 1 // group in the metric name
	GroupLabel = 2 // group as a label
)

func init() {
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "root", Kind: modules.ParamStr, Default: value.S("metrics")},
			{Name: "prefix", Kind: modules.ParamStr, Default: value.S("opensips")},
			{Name: "group_prefix", Kind: modules.ParamStr, Default: value.S("")},
			{Name: "delimiter", Kind: modules.ParamStr, Default: value.S("_")},
			{Name: "group_label", Kind: modules.ParamStr, Default: value.S("group")},
			{Name: "group_mode", Kind: modules.ParamInt, Default: value.I(GroupNone)},
			{Name: "statistics", Kind: modules.ParamStr, Multi: true},
			{Name: "labels", Kind: modules.ParamStr, Multi: true},
			{Name: "script_route", Kind: modules.ParamStr},
		},
		Configure: func(p modules.Params) (func(), error) {
			_, err := ReadConfig(p)
			return nil, err
		},
	})
	httpd.RegisterRoot(Name, route)
}

// Config is one generation's modparams.
type Config struct {
	Root        string
	Prefix      string
	GroupPrefix string
	Delimiter   string
	GroupLabel  string
	GroupMode   int
	Statistics  []string // specs: "all", "group:", names
}

// ReadConfig validates and reads the modparams.
func ReadConfig(p modules.Params) (Config, error) {
	c := Config{Root: p.Str("root"), Prefix: p.Str("prefix"), GroupPrefix: p.Str("group_prefix"),
		Delimiter: p.Str("delimiter"), GroupLabel: p.Str("group_label"), GroupMode: p.Int("group_mode")}
	if err := httpd.ValidRoot(c.Root); err != nil {
		return c, err
	}
	if c.GroupMode < GroupNone || c.GroupMode > GroupLabel {
		return c, fmt.Errorf("invalid group_mode %d (0, 1 or 2)", c.GroupMode)
	}
	if c.GroupMode == GroupLabel && !validLabel(c.GroupLabel) {
		return c, fmt.Errorf("invalid group_label %q", c.GroupLabel)
	}
	for _, v := range p.All("statistics") {
		c.Statistics = append(c.Statistics, strings.Fields(v.AsString())...)
	}
	if len(p.All("labels")) > 0 {
		return c, fmt.Errorf("the labels parameter is not supported yet")
	}
	if p.Str("script_route") != "" {
		return c, fmt.Errorf("the script_route parameter is not supported yet")
	}
	return c, nil
}

func validLabel(s string) bool {
	if s == "" || strings.HasPrefix(s, "__") {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func route(p modules.Params) (string, http.Handler, error) {
	cfg, err := ReadConfig(p)
	if err != nil {
		return "", nil, err
	}
	h, err := NewHandler(cfg)
	return cfg.Root, h, err
}

// NewHandler serves cfg's metrics.
func NewHandler(cfg Config) (http.Handler, error) {
	reg := prom.NewRegistry()
	if err := reg.Register(NewCollector(cfg)); err != nil {
		return nil, err
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}), nil
}

// Collector exports statistics to a client_golang registry. It is
// unchecked (it describes nothing up front) because statistics may be
// registered after it is.
type Collector struct {
	cfg     Config
	mu      sync.Mutex
	version uint64
	built   bool
	metrics []prom.Metric
}

// NewCollector makes a collector for cfg.
func NewCollector(cfg Config) *Collector { return &Collector{cfg: cfg} }

// Describe sends nothing: the collector is unchecked.
func (c *Collector) Describe(chan<- *prom.Desc) {}

// Collect sends the metrics, rebuilding them first if statistics were
// registered since the last scrape.
func (c *Collector) Collect(ch chan<- prom.Metric) {
	c.mu.Lock()
	if v := stats.Version(); !c.built || v != c.version {
		c.metrics = c.build()
		c.version, c.built = v, true
	}
	ms := c.metrics
	c.mu.Unlock()
	for _, m := range ms {
		ch <- m
	}
}

func (c *Collector) build() []prom.Metric {
	sel, _ := stats.Select(c.cfg.Statistics)
	var out []prom.Metric
	kinds := map[string]bool{} // metric name -> counter?
	for _, st := range sel {
		st := st
		name := c.MetricName(st)
		counter := st.Incremental()
		if prev, dup := kinds[name]; dup && (c.cfg.GroupMode != GroupLabel || prev != counter) {
			continue // same name from another group: first wins
		}
		kinds[name] = counter
		var labels prom.Labels
		if c.cfg.GroupMode == GroupLabel {
			labels = prom.Labels{c.cfg.GroupLabel: c.cfg.GroupPrefix + st.Group()}
		}
		help := "sipedge statistic " + st.Name()
		read := func() float64 { return float64(st.Value()) }
		if counter {
			out = append(out, prom.NewCounterFunc(prom.CounterOpts{Name: name, Help: help, ConstLabels: labels}, read))
		} else {
			out = append(out, prom.NewGaugeFunc(prom.GaugeOpts{Name: name, Help: help, ConstLabels: labels}, read))
		}
	}
	return out
}

// MetricName is a statistic's metric name under the collector's config.
func (c *Collector) MetricName(st *stats.Counter) string {
	cfg := c.cfg
	prefix := cfg.Prefix
	name := st.Name()
	if prefix == "" && cfg.Delimiter == "" && cfg.GroupMode == GroupNone && name != "" && name[0] >= '0' && name[0] <= '9' {
		prefix = "_" // a metric name cannot start with a digit
	}
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteString(cfg.Delimiter)
	if cfg.GroupMode == GroupName {
		b.WriteString(cfg.GroupPrefix)
		b.WriteString(st.Group())
		b.WriteString(cfg.Delimiter)
	}
	b.WriteString(name)
	return sanitize(b.String())
}

func sanitize(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if !(ch == '_' || ch == ':' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
			b[i] = '_'
		}
	}
	if len(b) > 0 && b[0] >= '0' && b[0] <= '9' {
		return "_" + string(b)
	}
	return string(b)
}
