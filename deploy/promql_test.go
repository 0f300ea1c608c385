package deploy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// metricRef is one metric selector found in a PromQL expression.
type metricRef struct {
	name string
	// matchers is the text between the braces after the name ("" for none).
	matchers string
	// fn is the innermost function or aggregation the selector is an argument
	// of ("" at the top level or inside plain parentheses).
	fn string
}

// promqlKeywords are identifiers that are not metric names when they are not
// followed by a parenthesis.
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"on": true, "ignoring": true, "group_left": true, "group_right": true,
	"by": true, "without": true, "inf": true, "nan": true, "atan2": true,
}

// aggregationOps may be followed by a by/without clause before their (.
var aggregationOps = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
}

// labelListKeywords take a parenthesised list of label names, not expressions.
var labelListKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// promqlMetricRefs returns the metric selectors of a PromQL expression: every
// identifier that is not a function, an aggregation, a keyword, a label name in
// by/without/on/ignoring/group_* lists, a label matcher, a duration, a string,
// or a Grafana variable ($job, ${x}, $__rate_interval). It is a lexer, not a
// parser: it assumes the expression is valid (promtool checks that).
func promqlMetricRefs(expr string) ([]metricRef, error) {
	var refs []metricRef
	var stack []string // function names of the open parentheses
	pending := ""      // an aggregation written `sum by (x) (...)`, until its (
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	skipSpace := func(i int) int {
		for i < len(expr) && (expr[i] == ' ' || expr[i] == '\t' || expr[i] == '\n' || expr[i] == '\r') {
			i++
		}
		return i
	}
	// skipString returns the index after the string literal starting at i.
	skipString := func(i int) (int, error) {
		q := expr[i]
		for j := i + 1; j < len(expr); j++ {
			switch {
			case expr[j] == '\\' && q != '`':
				j++
			case expr[j] == q:
				return j + 1, nil
			}
		}
		return 0, fmt.Errorf("unterminated string at %d in %q", i, expr)
	}
	// skipGroup returns the index after the group opened at i ({, [ or (),
	// skipping strings and nested groups, and the text inside it.
	skipGroup := func(i int) (int, string, error) {
		closer := map[byte]byte{'{': '}', '[': ']', '(': ')'}
		want := []byte{closer[expr[i]]}
		for j := i + 1; j < len(expr); j++ {
			switch c := expr[j]; {
			case c == '"' || c == '\'' || c == '`':
				end, err := skipString(j)
				if err != nil {
					return 0, "", err
				}
				j = end - 1
			case c == '{' || c == '[' || c == '(':
				want = append(want, closer[c])
			case c == want[len(want)-1]:
				want = want[:len(want)-1]
				if len(want) == 0 {
					return j + 1, expr[i+1 : j], nil
				}
			}
		}
		return 0, "", fmt.Errorf("unbalanced %q at %d in %q", expr[i], i, expr)
	}

	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '#': // comment to the end of the line
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '$': // Grafana variable: $name or ${name}
			i++
			if i < len(expr) && expr[i] == '{' {
				end, _, err := skipGroup(i)
				if err != nil {
					return nil, err
				}
				i = end
				continue
			}
			for i < len(expr) && isIdent(expr[i]) {
				i++
			}
		case c == '{' || c == '[': // matchers of a selector without a name, ranges, subqueries
			end, _, err := skipGroup(i)
			if err != nil {
				return nil, err
			}
			i = end
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(expr) && expr[i+1] >= '0' && expr[i+1] <= '9':
			// Numbers and durations: 0.99, 1e3, 0x1f, 5m, 1h30m.
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case c == '(':
			stack = append(stack, pending)
			pending = ""
			i++
		case c == ')':
			if len(stack) == 0 {
				return nil, fmt.Errorf("unbalanced ) at %d in %q", i, expr)
			}
			stack = stack[:len(stack)-1]
			i++
		case isIdentStart(c):
			start := i
			for i < len(expr) && isIdent(expr[i]) {
				i++
			}
			word := expr[start:i]
			next := skipSpace(i)
			switch {
			case labelListKeywords[word] && next < len(expr) && expr[next] == '(':
				end, _, err := skipGroup(next)
				if err != nil {
					return nil, err
				}
				i = end
			case next < len(expr) && expr[next] == '(':
				stack = append(stack, word)
				i = next + 1
			case aggregationOps[word] && (strings.HasPrefix(expr[next:], "by") || strings.HasPrefix(expr[next:], "without")):
				pending = word
			case promqlKeywords[strings.ToLower(word)]:
			default:
				ref := metricRef{name: word}
				if len(stack) > 0 {
					ref.fn = stack[len(stack)-1]
				}
				if next < len(expr) && expr[next] == '{' {
					end, inside, err := skipGroup(next)
					if err != nil {
						return nil, err
					}
					ref.matchers = strings.TrimSpace(inside)
					i = end
				}
				refs = append(refs, ref)
			}
		default:
			i++
		}
	}
	if len(stack) != 0 {
		return nil, fmt.Errorf("unbalanced ( in %q", expr)
	}
	return refs, nil
}

func TestPromqlMetricRefs(t *testing.T) {
	for expr, want := range map[string][]string{
		`up`: {"up"},
		`sum(max without (instance, pod) (provisioner_consumer_lag_records{job=~"$job", topic=~"$topic"}))`:                           {"provisioner_consumer_lag_records"},
		`histogram_quantile(0.99, sum by (le, endpoint) (rate(provisioner_webex_request_duration_seconds_bucket[$__rate_interval])))`: {"provisioner_webex_request_duration_seconds_bucket"},
		`sum(rate(a_total{code="429"}[5m])) / ignoring (reason) group_left sum without (instance) (rate(b_total[5m])) > 0.05`:         {"a_total", "b_total"},
		`x unless x offset 15m and on (job) y == bool 1`:                                                                              {"x", "x", "y"},
		`topic:lag:sum > 100 and min_over_time(topic:lag:sum[10m]) > 0`:                                                               {"topic:lag:sum", "topic:lag:sum"},
		`label_replace(m, "dst", "$1", "src", "(.*)") * 1e3`:                                                                          {"m"},
		`sum by (code) (rate(m{code=~"5..|error", path="}"}[${__range}]))`:                                                            {"m"},
		`max_over_time(m[1h:5m]) @ end()`:                                                                                             {"m"},
		`sum(m) by (job)`:                                                                                                             {"m"},
		`{__name__="unnamed"}`:                                                                                                        nil,
	} {
		refs, err := promqlMetricRefs(expr)
		if err != nil {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		var got []string
		for _, r := range refs {
			got = append(got, r.name)
		}
		if !slices.Equal(got, want) {
			t.Errorf("promqlMetricRefs(%s) = %q, want %q", expr, got, want)
		}
	}
	refs, err := promqlMetricRefs(`sum(rate(c_total{job=~"$job"}[1m])) + deriv(g[5m]) + h`)
	if err != nil {
		t.Fatal(err)
	}
	want := []metricRef{{"c_total", `job=~"$job"`, "rate"}, {"g", "", "deriv"}, {"h", "", ""}}
	if !slices.Equal(refs, want) {
		t.Errorf("refs = %+v, want %+v", refs, want)
	}
	for _, bad := range []string{`sum(x`, `x{a="b}`, `rate(x[5m]))`} {
		if _, err := promqlMetricRefs(bad); err == nil {
			t.Errorf("promqlMetricRefs(%s): no error", bad)
		}
	}
}
