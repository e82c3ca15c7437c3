package configs

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/keyshare/keyshare/internal/coordinator"
	"github.com/keyshare/keyshare/internal/holder"
	"github.com/keyshare/keyshare/internal/kmsplugin"
	"github.com/keyshare/keyshare/internal/unsealer"
)

// The alerting rules (prometheus/keyshare-alerts.yml), their tests' input
// series and the Grafana dashboard (grafana/keyshare.json) may use only
// metric names and labels that the daemons really export: those of the
// registries holder, unsealer and kmsplugin serve on metrics_listen. So a
// renamed metric or label breaks this test instead of silently emptying a
// panel or an alert.

// prometheusMade are series Prometheus makes itself for every target.
var prometheusMade = map[string]labelSet{"up": {}}

// targetLabels are added by Prometheus to every scraped series.
var targetLabels = []string{"job", "instance"}

type labelSet map[string]bool

// exported maps every metric name the daemons export to its label names.
// A name may be a histogram or summary, so name_bucket (with le), name_sum
// and name_count are accepted too.
func exported(t *testing.T) map[string]labelSet {
	t.Helper()
	ureg, err := unsealer.Registry(unsealer.Config{}, coordinator.NewMetrics())
	if err != nil {
		t.Fatal(err)
	}
	kreg := prometheus.NewRegistry()
	kmsplugin.NewMetrics(kreg)
	regs := map[string]*prometheus.Registry{"holder": holder.NewMetrics().Registry, "unsealer": ureg, "kmsplugin": kreg}

	out := map[string]labelSet{}
	for name, ls := range prometheusMade {
		out[name] = ls
	}
	for daemon, reg := range regs {
		ch := make(chan *prometheus.Desc, 64)
		go func() { reg.Describe(ch); close(ch) }()
		n := 0
		for d := range ch {
			name, labels, err := parseDesc(d.String())
			if err != nil {
				t.Fatalf("%s registry: %v", daemon, err)
			}
			n++
			out[name] = labels
			out[name+"_sum"], out[name+"_count"] = labels, labels
			b := labelSet{"le": true}
			for l := range labels {
				b[l] = true
			}
			out[name+"_bucket"] = b
		}
		if n < 5 {
			t.Fatalf("%s registry describes %d metrics: want its whole set", daemon, n)
		}
	}
	for _, ls := range out {
		for _, l := range targetLabels {
			ls[l] = true
		}
	}
	return out
}

var (
	descName     = regexp.MustCompile(`^Desc\{fqName: "([^"]+)"`)
	descConst    = regexp.MustCompile(`constLabels: \{(.*)\}, variableLabels`)
	descVariable = regexp.MustCompile(`variableLabels: \{([^}]*)\}\}$`)
	constName    = regexp.MustCompile(`(?:^|,)([a-zA-Z_][a-zA-Z0-9_]*)="`)
)

// parseDesc reads the name and label names out of prometheus.Desc.String,
// the only place client_golang shows them.
func parseDesc(s string) (string, labelSet, error) {
	m := descName.FindStringSubmatch(s)
	if m == nil {
		return "", nil, fmt.Errorf("cannot read a metric name in %q", s)
	}
	ls := labelSet{}
	if c := descConst.FindStringSubmatch(s); c != nil {
		for _, l := range constName.FindAllStringSubmatch(c[1], -1) {
			ls[l[1]] = true
		}
	}
	if v := descVariable.FindStringSubmatch(s); v != nil && v[1] != "" {
		for _, l := range strings.Split(v[1], ",") {
			l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")")
			ls[l] = true
		}
	}
	return m[1], ls, nil
}

var (
	quoted   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	selector = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}`)
	matcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	grouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	ranges   = regexp.MustCompile(`\[[^\]]*\]`)
	ident    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*\s*\(?`)
	number   = regexp.MustCompile(`\b[0-9][0-9.e+]*[a-z]*\b`)
	keywords = map[string]bool{"and": true, "or": true, "unless": true, "offset": true, "bool": true, "inf": true, "nan": true}
)

// checkExpr returns what in the PromQL expression expr is not exported.
func checkExpr(expr string, known map[string]labelSet) []string {
	var bad []string
	// Matchers first, on the text with its strings blanked (a string may
	// hold braces).
	blank := quoted.ReplaceAllString(expr, `""`)
	for _, s := range selector.FindAllStringSubmatch(blank, -1) {
		name := s[1]
		if name == "" {
			bad = append(bad, fmt.Sprintf("a selector without a metric name ({%s}): write the name out so this test can check it", s[2]))
			continue
		}
		ls, ok := known[name]
		for _, m := range matcher.FindAllStringSubmatch(s[2], -1) {
			if m[1] == "__name__" {
				bad = append(bad, "a __name__ matcher: write the names out so this test can check them")
			} else if ok && !ls[m[1]] {
				bad = append(bad, fmt.Sprintf("label %q on %s, which has %v", m[1], name, keys(ls)))
			}
		}
	}
	// The names stay in the text (and are collected below) with their
	// matchers gone.
	var names []string
	rest := selector.ReplaceAllString(blank, " $1 ")
	var grouped []string
	for _, g := range grouping.FindAllStringSubmatch(rest, -1) {
		for _, l := range strings.Split(g[2], ",") {
			if l = strings.TrimSpace(l); l != "" {
				grouped = append(grouped, l)
			}
		}
	}
	rest = grouping.ReplaceAllString(rest, " ")
	rest = ranges.ReplaceAllString(rest, " ")
	rest = number.ReplaceAllString(rest, " ")
	for _, id := range ident.FindAllString(rest, -1) {
		if strings.HasSuffix(id, "(") {
			continue // a function, or an operator before a parenthesis
		}
		if id = strings.TrimSpace(id); !keywords[strings.ToLower(id)] {
			names = append(names, id)
		}
	}
	for _, n := range names {
		if _, ok := known[n]; !ok {
			bad = append(bad, fmt.Sprintf("metric %s is not exported by holder, unsealer or kmsplugin", n))
		}
	}
	// A grouping label must belong to at least one metric of the expression.
	for _, l := range grouped {
		found := false
		for _, n := range names {
			if known[n][l] {
				found = true
			}
		}
		if !found {
			bad = append(bad, fmt.Sprintf("grouping label %q is on none of %v", l, names))
		}
	}
	return bad
}

func keys(ls labelSet) []string {
	var k []string
	for l := range ls {
		k = append(k, l)
	}
	sort.Strings(k)
	return k
}

// usedExprs gathers every PromQL expression of the rules, the input series
// of their tests, and the dashboard's targets, by where they are.
func usedExprs(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Record, Expr string
			}
		}
	}
	readYAML(t, "prometheus/keyshare-alerts.yml", &rules)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out["prometheus/keyshare-alerts.yml "+r.Alert+r.Record] = r.Expr
		}
	}
	var tests struct {
		Tests []struct {
			InputSeries []struct{ Series string } `yaml:"input_series"`
		}
	}
	readYAML(t, "prometheus/keyshare-alerts_test.yml", &tests)
	for i, tc := range tests.Tests {
		for j, s := range tc.InputSeries {
			out[fmt.Sprintf("prometheus/keyshare-alerts_test.yml test %d series %d", i, j)] = s.Series
		}
	}
	b, err := os.ReadFile("grafana/keyshare.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana/keyshare.json: %v", err)
	}
	n := 0
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if s, ok := c.(string); ok && k == "expr" {
					title, _ := v["refId"].(string)
					out[fmt.Sprintf("grafana/keyshare.json %s target %s", path, title)] = s
					n++
				}
				p := path
				if tl, ok := v["title"].(string); ok {
					p = fmt.Sprintf("panel %q", tl)
				}
				walk(p, c)
			}
		case []any:
			for _, c := range v {
				walk(path, c)
			}
		}
	}
	walk("", dash)
	if n < 20 {
		t.Fatalf("grafana/keyshare.json: found %d expressions, want the whole dashboard", n)
	}
	return out
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestMonitoringUsesExportedMetrics(t *testing.T) {
	known := exported(t)
	exprs := usedExprs(t)
	if len(exprs) < 30 {
		t.Fatalf("found %d expressions in the rules, their tests and the dashboard: the files moved?", len(exprs))
	}
	for where, e := range exprs {
		for _, b := range checkExpr(e, known) {
			t.Errorf("%s: %s\n\t%s", where, b, e)
		}
	}
}

// TestCheckExprCatches keeps the checker honest: each case must be caught.
func TestCheckExprCatches(t *testing.T) {
	known := map[string]labelSet{
		"keyshare_holder_releases_total": {"decision": true, "reason": true, "job": true, "instance": true},
		"up":                             {"job": true, "instance": true},
	}
	for _, tc := range []struct{ name, expr string }{
		{"fail/unknown-name", `keyshare_holder_release_total > 0`},
		{"fail/unknown-name-in-function", `rate(keyshare_holder_denials_total[5m])`},
		{"fail/unknown-label", `keyshare_holder_releases_total{peer="x"}`},
		{"fail/unknown-grouping-label", `sum by (peer) (keyshare_holder_releases_total)`},
		{"fail/name-regex", `{__name__=~"keyshare_.+"}`},
		{"fail/unknown-after-or", `up == 0 or keyshare_kms_health == 0`},
	} {
		if bad := checkExpr(tc.expr, known); len(bad) == 0 {
			t.Errorf("%s: %s passed the check", tc.name, tc.expr)
		}
	}
	for _, tc := range []struct{ name, expr string }{
		{"ok/selector", `increase(keyshare_holder_releases_total{decision="deny",reason!="a{b}"}[15m]) > 0`},
		{"ok/grouping", `sum by (instance, reason) (rate(keyshare_holder_releases_total[$__rate_interval])) or on (job) up == 0`},
		{"ok/offset", `keyshare_holder_releases_total unless keyshare_holder_releases_total offset 15m`},
	} {
		if bad := checkExpr(tc.expr, known); len(bad) != 0 {
			t.Errorf("%s: %s: %v", tc.name, tc.expr, bad)
		}
	}
}
