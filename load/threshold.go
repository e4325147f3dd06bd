package load

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// A Threshold is a pass criterion in k6's style, evaluated on the result at
// the end of a run:
//
//	p95 < 2s                  overall 95th percentile latency
//	p99{view product} < 500ms  one endpoint (step name)
//	raw_p99 < 1s              latency from the moment of sending, not from due
//	error_rate < 1%           failures / requests
//	avg, min, max, rps, requests, failures
//
// Latency metrics (pNN, avg, min, max) use the corrected figures by default:
// latency from the time each request was due.
type Threshold struct {
	// Source is the threshold as written.
	Source string `json:"threshold"`
	// Endpoint is the step name, or "" for all requests.
	Endpoint string `json:"endpoint,omitempty"`
	Metric   string `json:"metric"`
	Op       string `json:"op"`
	// Limit is in the metric's unit: milliseconds for latency, a fraction
	// for error_rate, requests per second for rps, a count otherwise.
	Limit float64 `json:"limit"`
}

// ThresholdResult is a threshold with the measured value.
type ThresholdResult struct {
	Threshold
	Actual float64 `json:"actual"`
	Pass   bool    `json:"pass"`
	// Problem says why a threshold could not be evaluated, e.g. an unknown
	// endpoint, or a latency when no request succeeded; such a threshold
	// fails, and Actual is 0.
	Problem string `json:"problem,omitempty"`
}

var thresholdRE = regexp.MustCompile(`^\s*([a-z_]+[0-9.]*)\s*(?:\{([^}]*)\})?\s*(<=|>=|==|<|>)\s*(\S+)\s*$`)

var latencyMetric = regexp.MustCompile(`^(raw_)?(p\d+(\.\d+)?|avg|min|max)$`)

// ParseThreshold parses a threshold such as "p95 < 2s" or
// "error_rate{checkout} < 1%".
func ParseThreshold(s string) (Threshold, error) {
	m := thresholdRE.FindStringSubmatch(s)
	if m == nil {
		return Threshold{}, fmt.Errorf("threshold %q is not METRIC[{endpoint}] OP VALUE, e.g. \"p95 < 2s\"", s)
	}
	t := Threshold{Source: strings.TrimSpace(s), Metric: m[1], Endpoint: strings.TrimSpace(m[2]), Op: m[3]}
	v := m[4]
	var err error
	switch {
	case latencyMetric.MatchString(t.Metric):
		if q, ok := strings.CutPrefix(strings.TrimPrefix(t.Metric, "raw_"), "p"); ok {
			if f, perr := strconv.ParseFloat(q, 64); perr != nil || f <= 0 || f > 100 {
				return Threshold{}, fmt.Errorf("threshold %q: percentile %s is not in (0, 100]", s, q)
			}
		}
		var d time.Duration
		if d, err = time.ParseDuration(v); err == nil {
			t.Limit = float64(d) / float64(time.Millisecond)
		} else if f, ferr := strconv.ParseFloat(v, 64); ferr == nil {
			t.Limit, err = f, nil // plain numbers are milliseconds
		}
	case t.Metric == "error_rate":
		if p, ok := strings.CutSuffix(v, "%"); ok {
			t.Limit, err = strconv.ParseFloat(p, 64)
			t.Limit /= 100
		} else {
			t.Limit, err = strconv.ParseFloat(v, 64)
		}
	case t.Metric == "rps" || t.Metric == "requests" || t.Metric == "failures":
		t.Limit, err = strconv.ParseFloat(v, 64)
	default:
		return Threshold{}, fmt.Errorf("threshold %q: unknown metric %q (pNN, avg, min, max, raw_pNN, error_rate, rps, requests, failures)", s, t.Metric)
	}
	if err != nil {
		return Threshold{}, fmt.Errorf("threshold %q: bad value %q", s, v)
	}
	return t, nil
}

// evaluate measures the threshold on r.
func (t Threshold) evaluate(r *Result) ThresholdResult {
	out := ThresholdResult{Threshold: t}
	st := &r.Overall
	if t.Endpoint != "" {
		st = nil
		for i := range r.Endpoints {
			if r.Endpoints[i].Name == t.Endpoint {
				st = &r.Endpoints[i]
			}
		}
		if st == nil {
			out.Problem = fmt.Sprintf("no endpoint %q in this run", t.Endpoint)
			return out
		}
	}
	if st.Requests == 0 && t.Metric != "requests" && t.Metric != "failures" {
		out.Problem = "no requests were measured"
		return out
	}
	// Failures count in the latencies, and a refused connection is fast:
	// with no success at all, the figures say nothing of the service.
	if st.Requests == st.Failures && latencyMetric.MatchString(t.Metric) {
		out.Problem = fmt.Sprintf("not measured: no request succeeded (all %d failed)", st.Requests)
		return out
	}
	lat := st.Latency
	metric := t.Metric
	if m, ok := strings.CutPrefix(metric, "raw_"); ok {
		lat, metric = st.RawLatency, m
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	switch metric {
	case "error_rate":
		out.Actual = st.ErrorRate
	case "rps":
		out.Actual = st.RPS
	case "requests":
		out.Actual = float64(st.Requests)
	case "failures":
		out.Actual = float64(st.Failures)
	case "avg":
		out.Actual = ms(lat.Mean)
	case "min":
		out.Actual = ms(lat.Min)
	case "max":
		out.Actual = ms(lat.Max)
	default:
		q, _ := strconv.ParseFloat(metric[1:], 64)
		out.Actual = ms(st.percentile(q, t.Metric != metric))
	}
	switch t.Op {
	case "<":
		out.Pass = out.Actual < t.Limit
	case "<=":
		out.Pass = out.Actual <= t.Limit
	case ">":
		out.Pass = out.Actual > t.Limit
	case ">=":
		out.Pass = out.Actual >= t.Limit
	case "==":
		out.Pass = out.Actual == t.Limit
	}
	return out
}
