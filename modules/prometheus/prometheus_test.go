package prometheus

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/modules/httpd"
	"github.com/sipedge/sipedge/runtime/stats"
	"github.com/sipedge/sipedge/runtime/value"
)

func params(module string, set map[string]any) modules.Params {
	p := modules.Params{}
	for _, spec := range modules.Lookup(module).Params {
		if !spec.Default.IsNull() {
			p[spec.Name] = []value.Value{spec.Default}
		}
	}
	for k, v := range set {
		switch v := v.(type) {
		case string:
			p[k] = []value.Value{value.S(v)}
		case int:
			p[k] = []value.Value{value.I(v)}
		case []string:
			for _, s := range v {
				p[k] = append(p[k], value.S(s))
			}
		}
	}
	return p
}

// scrape serves the module on the real httpd (127.0.0.1, a free port) and
// GETs /<root>.
func scrape(t *testing.T, set map[string]any) string {
	t.Helper()
	hp := params(httpd.Name, map[string]any{"ip": "127.0.0.1", "port": 0})
	pp := params(Name, set)
	if _, err := modules.Lookup(Name).Configure(pp); err != nil {
		t.Fatal(err)
	}
	if err := httpd.Sync(map[string]modules.Params{httpd.Name: hp, Name: pp}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + httpd.Addr() + "/" + pp.Str("root"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

func has(t *testing.T, body, line string) {
	t.Helper()
	for _, l := range strings.Split(body, "\n") {
		if l == line {
			return
		}
	}
	t.Errorf("scrape lacks %q:\n%s", line, body)
}

func TestScrapeGroupInName(t *testing.T) {
	defer httpd.Close()
	stats.RcvRequests.Set(0)
	stats.RcvRequests.Add(7)
	stats.FwdRequests.Inc()
	body := scrape(t, map[string]any{"statistics": []string{"all"}, "group_mode": 1})
	has(t, body, "# TYPE opensips_core_rcv_requests counter")
	has(t, body, "opensips_core_rcv_requests 7")
	has(t, body, "# TYPE opensips_core_timestamp gauge")
	if !regexp.MustCompile(`(?m)^opensips_core_fwd_requests [1-9]`).MatchString(body) {
		t.Errorf("fwd_requests missing:\n%s", body)
	}
	// Counters move between scrapes without re-registration.
	stats.RcvRequests.Inc()
	body = scrape(t, map[string]any{"statistics": []string{"all"}, "group_mode": 1})
	has(t, body, "opensips_core_rcv_requests 8")
}

func TestScrapeDefaultsExportNothing(t *testing.T) {
	defer httpd.Close()
	body := scrape(t, nil)
	if strings.Contains(body, "opensips_") {
		t.Errorf("default statistics parameter exported something:\n%s", body)
	}
}

func TestScrapeSelectionAndNaming(t *testing.T) {
	defer httpd.Close()
	g := stats.NewGauge("promtest", "inuse_transactions")
	g.Set(3)
	body := scrape(t, map[string]any{"statistics": []string{"rcv_requests promtest:", "nope"}, "root": "prom"})
	has(t, body, "# TYPE opensips_rcv_requests counter")
	has(t, body, "# TYPE opensips_inuse_transactions gauge")
	has(t, body, "opensips_inuse_transactions 3")
	if strings.Contains(body, "fwd_requests") {
		t.Errorf("unselected statistic exported:\n%s", body)
	}

	body = scrape(t, map[string]any{"statistics": []string{"promtest:", "rcv_requests"}, "group_mode": 2,
		"group_label": "grp", "group_prefix": "x_", "prefix": "sipedge"})
	has(t, body, `sipedge_inuse_transactions{grp="x_promtest"} 3`)
	if !regexp.MustCompile(`(?m)^sipedge_rcv_requests\{grp="x_core"\} \d+$`).MatchString(body) {
		t.Errorf("label mode:\n%s", body)
	}

	body = scrape(t, map[string]any{"statistics": []string{"promtest:"}, "group_mode": 1, "group_prefix": "g", "delimiter": ":"})
	has(t, body, "opensips:gpromtest:inuse_transactions 3")
}

func TestNewStatisticsAppear(t *testing.T) {
	defer httpd.Close()
	body := scrape(t, map[string]any{"statistics": []string{"promlate:"}})
	if strings.Contains(body, "late_one") {
		t.Fatal("not yet registered")
	}
	stats.NewCounter("promlate", "late_one").Add(2)
	body = scrape(t, map[string]any{"statistics": []string{"promlate:"}})
	has(t, body, "opensips_late_one 2")
}

func TestMetricNames(t *testing.T) {
	c := stats.NewCounter("promnames", "2xx-replies.total")
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Prefix: "opensips", Delimiter: "_"}, "opensips_2xx_replies_total"},
		{Config{Prefix: "", Delimiter: ""}, "_2xx_replies_total"},
		{Config{Prefix: "", Delimiter: "_"}, "_2xx_replies_total"},
		{Config{Prefix: "a", Delimiter: "_", GroupMode: GroupName, GroupPrefix: "p"}, "a_ppromnames_2xx_replies_total"},
	}
	for _, tc := range cases {
		if got := NewCollector(tc.cfg).MetricName(c); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.cfg, got, tc.want)
		}
	}
}

func TestDuplicateNamesDoNotBreakScrape(t *testing.T) {
	defer httpd.Close()
	stats.NewCounter("promdup1", "same_name").Add(1)
	stats.NewCounter("promdup2", "same_name").Add(2)
	body := scrape(t, map[string]any{"statistics": []string{"promdup1: promdup2:"}})
	has(t, body, "opensips_same_name 1") // first group wins
	body = scrape(t, map[string]any{"statistics": []string{"promdup1: promdup2:"}, "group_mode": 2})
	has(t, body, `opensips_same_name{group="promdup1"} 1`)
	has(t, body, `opensips_same_name{group="promdup2"} 2`)
}

func TestConfigureRejects(t *testing.T) {
	for _, bad := range []map[string]any{
		{"group_mode": 3},
		{"root": "a/b"},
		{"labels": []string{"core: /^(.*)$/\\1:x=\"y\"/"}},
		{"script_route": "prom"},
		{"group_mode": 2, "group_label": "1bad"},
	} {
		if _, err := modules.Lookup(Name).Configure(params(Name, bad)); err == nil {
			t.Errorf("Configure accepted %v", bad)
		}
	}
}

func TestCollectDoesNotAllocate(t *testing.T) {
	col := NewCollector(Config{Prefix: "opensips", Delimiter: "_", Statistics: []string{"all"}})
	ch := make(chan prom.Metric, 1024)
	drain := func() {
		col.Collect(ch)
		for len(ch) > 0 {
			<-ch
		}
	}
	drain() // builds the metric objects once
	if n := testing.AllocsPerRun(100, drain); n != 0 {
		t.Errorf("Collect allocates %v times per scrape", n)
	}
}

func BenchmarkScrape(b *testing.B) {
	h, err := NewHandler(Config{Root: "metrics", Prefix: "opensips", Delimiter: "_", Statistics: []string{"all"}})
	if err != nil {
		b.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "/metrics", nil)
	for b.Loop() {
		h.ServeHTTP(discard{}, req)
	}
}

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) WriteHeader(int)             {}
