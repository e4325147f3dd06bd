package load

import (
	"bytes"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestTemplates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src, want, err string
	}{
		{src: "/plain", want: "/plain"},
		{src: "/p/{{ id }}?x={{id}}", want: "/p/42?x=42"},
		{src: "{{ randint 7 7 }}-{{ pick a }}-{{ pick \"b c\" }}", want: "7-a-b c"},
		{src: "u{{ vu }}i{{ iteration }}", want: "u3i5"},
		{src: "/{{ missing }}", err: `variable "missing" is not set`},
		{src: "/{{ id", err: `template column 2: "{{" is not closed by "}}"`},
		{src: "{{ }}", err: "empty expression"},
		{src: "{{ randint 1 }}", err: "randint takes 2 integers, got 1 arguments"},
		{src: "{{ randint 2 1 }}", err: "randint range 2..1 is empty"},
		{src: "{{ randint a b }}", err: "randint takes 2 integers"},
		{src: "{{ pick }}", err: "pick needs at least one word"},
		{src: "{{ vu 1 }}", err: "vu takes no arguments"},
		{src: "{{ id 1 }}", err: `variable "id" takes no arguments`},
		{src: "{{ 9lives }}", err: "neither a function"},
		{src: `{{ pick "open }}`, err: "unterminated quoted word"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			t.Parallel()
			tmpl, err := compileTemplate(tt.src)
			var got []byte
			if err == nil {
				env := &tmplEnv{vars: map[string]string{"id": "42"}, rng: rand.New(rand.NewPCG(1, 1)), vu: 3, iteration: 5}
				got, err = tmpl.appendTo(nil, env)
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("rendered %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRandIntCoversItsRange(t *testing.T) {
	t.Parallel()
	tmpl, err := compileTemplate("{{ randint -2 2 }}")
	if err != nil {
		t.Fatal(err)
	}
	env := &tmplEnv{rng: rand.New(rand.NewPCG(1, 2))}
	seen := map[string]int{}
	for range 1000 {
		b, _ := tmpl.appendTo(nil, env)
		seen[string(b)]++
	}
	if len(seen) != 5 || seen["-2"] == 0 || seen["2"] == 0 {
		t.Errorf("randint -2 2 gave %v", seen)
	}
}

func TestExtract(t *testing.T) {
	t.Parallel()
	body := []byte(`{"order_id": 17, "ok": true, "name": "ring", "items": [{"id": 5}, {"id": 6}], "none": null, "obj": {"a": 1}}`)
	resp := &response{
		header:  http.Header{"X-Req": {"r-1"}}.Get,
		cookies: []*http.Cookie{{Name: "session", Value: "abc", Path: "/"}},
		url:     func() *url.URL { return &url.URL{Scheme: "http", Host: "127.0.0.1", Path: "/"} },
	}
	rng := rand.New(rand.NewPCG(3, 4))
	tests := []struct {
		name string
		e    extractor
		want string
		err  string
	}{
		{name: "number", e: extractor{json: mustPath(t, "order_id")}, want: "17"},
		{name: "dollar", e: extractor{json: mustPath(t, "$.items[1].id")}, want: "6"},
		{name: "bool", e: extractor{json: mustPath(t, "ok")}, want: "true"},
		{name: "string", e: extractor{json: mustPath(t, "name")}, want: "ring"},
		{name: "object", e: extractor{json: mustPath(t, "obj")}, want: `{"a":1}`},
		{name: "null", e: extractor{json: mustPath(t, "none")}, err: "null"},
		{name: "missing key", e: extractor{json: mustPath(t, "nope")}, err: `no key "nope"`},
		{name: "index out of range", e: extractor{json: mustPath(t, "items.5.id")}, err: "out of range"},
		{name: "not an array", e: extractor{json: mustPath(t, "name.0")}, err: "not an array"},
		{name: "header", e: extractor{header: "X-Req"}, want: "r-1"},
		{name: "header missing", e: extractor{header: "X-No"}, err: "missing"},
		{name: "cookie", e: extractor{cookie: "session"}, want: "abc"},
		{name: "cookie missing", e: extractor{cookie: "other"}, err: "not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.e.extract(resp, body, nil, rand.New(rand.NewPCG(1, 1)))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	// "*" picks every element over many draws.
	star := extractor{json: mustPath(t, "items.*.id")}
	seen := map[string]bool{}
	for range 100 {
		v, err := star.extract(resp, body, nil, rng)
		if err != nil {
			t.Fatal(err)
		}
		seen[v] = true
	}
	if d := cmp.Diff(map[string]bool{"5": true, "6": true}, seen); d != "" {
		t.Errorf("items.*.id drew (-want +got):\n%s", d)
	}
	if _, err := (&extractor{json: mustPath(t, "a")}).extract(resp, []byte("<html>"), nil, rng); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Errorf("HTML body: %v", err)
	}
}

func mustPath(t *testing.T, s string) []pathElem {
	t.Helper()
	p, err := parseJSONPath(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseThreshold(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src  string
		want Threshold
		err  string
	}{
		{src: "p95 < 2s", want: Threshold{Source: "p95 < 2s", Metric: "p95", Op: "<", Limit: 2000}},
		{src: " p99.9{view product} <= 500ms ", want: Threshold{Source: "p99.9{view product} <= 500ms", Endpoint: "view product", Metric: "p99.9", Op: "<=", Limit: 500}},
		{src: "raw_p50<250", want: Threshold{Source: "raw_p50<250", Metric: "raw_p50", Op: "<", Limit: 250}},
		{src: "error_rate < 1%", want: Threshold{Source: "error_rate < 1%", Metric: "error_rate", Op: "<", Limit: 0.01}},
		{src: "error_rate{checkout} < 0.05", want: Threshold{Source: "error_rate{checkout} < 0.05", Endpoint: "checkout", Metric: "error_rate", Op: "<", Limit: 0.05}},
		{src: "rps >= 100", want: Threshold{Source: "rps >= 100", Metric: "rps", Op: ">=", Limit: 100}},
		{src: "avg < 1s", want: Threshold{Source: "avg < 1s", Metric: "avg", Op: "<", Limit: 1000}},
		{src: "p95 2s", err: "is not METRIC"},
		{src: "latency < 2s", err: "unknown metric"},
		{src: "p0 < 2s", err: "percentile"},
		{src: "p95 < fast", err: "bad value"},
		{src: "error_rate < x%", err: "bad value"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			t.Parallel()
			got, err := ParseThreshold(tt.src)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-12 })); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestThresholdEvaluate(t *testing.T) {
	t.Parallel()
	res := &Result{
		Overall: Stats{
			Name: "all", Requests: 100, Failures: 2, ErrorRate: 0.02, RPS: 50,
			Latency: Latency{P95: 1500 * time.Millisecond, P99: 3 * time.Second, Mean: 200 * time.Millisecond}, RawLatency: Latency{P95: 100 * time.Millisecond},
		},
		Endpoints: []Stats{{Name: "checkout", Requests: 10, Latency: Latency{P99: 4 * time.Second}}},
	}
	tests := []struct {
		src     string
		pass    bool
		actual  float64
		problem string
	}{
		{src: "p95 < 2s", pass: true, actual: 1500},
		{src: "raw_p95 < 200ms", pass: true, actual: 100},
		{src: "p99 < 2s", pass: false, actual: 3000},
		{src: "error_rate < 1%", pass: false, actual: 0.02},
		{src: "failures <= 2", pass: true, actual: 2},
		{src: "rps > 40", pass: true, actual: 50},
		{src: "avg < 250ms", pass: true, actual: 200},
		{src: "p99{checkout} < 5s", pass: true, actual: 4000},
		{src: "p99{nope} < 5s", pass: false, problem: `no endpoint "nope" in this run`},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			t.Parallel()
			th, err := ParseThreshold(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			got := th.evaluate(res)
			if got.Pass != tt.pass || math.Abs(got.Actual-tt.actual) > 1e-9 || got.Problem != tt.problem {
				t.Errorf("got pass=%v actual=%v problem=%q; want %v %v %q", got.Pass, got.Actual, got.Problem, tt.pass, tt.actual, tt.problem)
			}
		})
	}
}

// TestThresholdsWithoutSuccess: when no request succeeded, the latencies
// are those of failures (a refused connection is fast): a latency threshold
// is then not measured, and fails, instead of passing on them.
func TestThresholdsWithoutSuccess(t *testing.T) {
	t.Parallel()
	down := &Result{Overall: Stats{
		Name: "all", Requests: 120, Failures: 120, ErrorRate: 1, RPS: 60,
		Latency: Latency{P95: time.Millisecond, Max: 2 * time.Millisecond}, RawLatency: Latency{P95: time.Millisecond},
	}}
	down.Overall.ByClass[ClassRefused] = 120
	tests := []struct {
		src     string
		pass    bool
		problem string
	}{
		{src: "p95 < 2s", problem: "not measured: no request succeeded (all 120 failed)"},
		{src: "raw_p99 < 2s", problem: "not measured: no request succeeded (all 120 failed)"},
		{src: "max < 1s", problem: "not measured: no request succeeded (all 120 failed)"},
		{src: "avg < 1s", problem: "not measured: no request succeeded (all 120 failed)"},
		{src: "error_rate < 1%"},
		{src: "failures >= 100", pass: true},
		{src: "requests > 100", pass: true},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			t.Parallel()
			th, err := ParseThreshold(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			got := th.evaluate(down)
			if got.Pass != tt.pass || got.Problem != tt.problem {
				t.Errorf("got pass=%v problem=%q; want %v %q", got.Pass, got.Problem, tt.pass, tt.problem)
			}
		})
	}
}

func TestNoSuccess(t *testing.T) {
	t.Parallel()
	result := func(requests, failures int64, classes map[Class]int64) *Result {
		r := &Result{Overall: Stats{Requests: requests, Failures: failures}}
		for c, n := range classes {
			r.Overall.ByClass[c] = n
		}
		return r
	}
	tests := []struct {
		name string
		res  *Result
		want string
	}{
		{"refused", result(120, 120, map[Class]int64{ClassRefused: 120}), "target down: all 120 requests failed: connection refused"},
		{"transport failures", result(10, 10, map[Class]int64{ClassRefused: 4, ClassTimeout: 6}), "target down: all 10 requests failed: 6 timed out, 4 connection refused"},
		{"only error responses", result(10, 10, map[Class]int64{Class5xx: 9, ClassRefused: 1}), "no request succeeded: all 10 requests failed: 9 5xx, 1 connection refused"},
		{"one success", result(10, 9, map[Class]int64{ClassRefused: 9}), ""},
		{"nothing sent", result(0, 0, nil), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.res.NoSuccess(); got != tt.want {
				t.Errorf("NoSuccess() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSchedule(t *testing.T) {
	t.Parallel()
	count := func(s *schedule) (n int, last time.Duration) {
		for i := int64(0); ; i++ {
			off, ok := s.at(i)
			if !ok {
				return int(i), last
			}
			if off < last {
				t.Fatalf("arrival %d at %s goes back in time from %s", i, off, last)
			}
			last = off
		}
	}
	tests := []struct {
		name   string
		rate   float64
		stages []Stage
		total  time.Duration
		want   int
	}{
		{"constant", 100, nil, 10 * time.Second, 1000},
		{"ramp up", 0, []Stage{{10 * time.Second, 100}}, 10 * time.Second, 500},
		{"ramp then hold", 0, []Stage{{10 * time.Second, 100}}, 20 * time.Second, 1500},
		{"ramp down", 100, []Stage{{10 * time.Second, 0}}, 10 * time.Second, 500},
		{"stages past the end", 10, []Stage{{5 * time.Second, 10}, {time.Hour, 1000}}, 5 * time.Second, 50},
		{"zero", 0, nil, 10 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n, last := count(newSchedule(tt.rate, tt.stages, tt.total))
			if math.Abs(float64(n-tt.want)) > 1 {
				t.Errorf("%d arrivals, want %d", n, tt.want)
			}
			if last >= tt.total {
				t.Errorf("last arrival at %s, not before the end %s", last, tt.total)
			}
		})
	}
}

func TestSeriesStaysBounded(t *testing.T) {
	t.Parallel()
	start := time.Unix(1_000_000, 0)
	var called int
	rec := newRecorder(start, []string{"e"}, 4, func(Point) { called++ })
	rec.maxPoints = 10
	const seconds = 1000
	for sec := range seconds {
		at := start.Add(time.Duration(sec)*time.Second + time.Millisecond)
		s := sample{endpoint: 0, due: at, sent: at, done: at.Add(time.Duration(sec+1) * time.Millisecond)}
		rec.record(&s)
		rec.close(int64(sec))
	}
	rec.close(seconds)
	if called != seconds {
		t.Errorf("OnSecond called %d times, want %d", called, seconds)
	}
	pts := rec.series.Points
	if len(pts) > rec.maxPoints || len(pts) < rec.maxPoints/2 {
		t.Errorf("%d points kept, want at most %d and at least half", len(pts), rec.maxPoints)
	}
	var total int64
	for i, p := range pts {
		total += p.Requests
		if want := start.Add(time.Duration(i) * rec.series.Interval); !p.Time.Equal(want) {
			t.Errorf("point %d at %s, want %s", i, p.Time, want)
		}
	}
	for _, p := range rec.pending {
		total += p.Requests
	}
	if total != seconds {
		t.Errorf("series holds %d requests, want %d", total, seconds)
	}
	if rec.series.Interval != 128*time.Second {
		t.Errorf("interval %s, want 128s after halving from 1s", rec.series.Interval)
	}
	// A merged point keeps the highest percentile of its seconds.
	if last := pts[len(pts)-1]; last.P99 < time.Duration(len(pts)*128-1)*time.Millisecond*9/10 {
		t.Errorf("last point p99 %s lost the slowest second", last.P99)
	}
}

func TestWriteSummary(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			w.WriteHeader(500)
		}
	}))
	t.Cleanup(srv.Close)
	sc := mustScenario(t, `
thresholds: ["error_rate < 1%"]
behaviours:
  - {name: a, steps: [{name: good, path: /good}, {name: bad, path: /bad}]}`)
	res := mustRun(t, Options{Target: srv.URL, Scenario: sc, Users: 1, Think: noThink, Duration: 5 * time.Second, MaxRequests: 10})
	var b bytes.Buffer
	if err := WriteSummary(&b, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"endpoint", "good", "bad", "all", "failures: 5xx 5", "FAIL  error_rate < 1%  (actual 50.000%)", "generator:"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}

// TestWriteSummaryTargetDown runs against a loopback port nothing listens
// on: the summary says the target is down, and the latency threshold is
// not measured rather than passed on the refusals' latency.
func TestWriteSummaryTargetDown(t *testing.T) {
	t.Parallel()
	l, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	sc := mustScenario(t, `
thresholds: ["p95 < 2s"]
behaviours: [{name: a, steps: [{name: home, path: /}]}]`)
	res := mustRun(t, Options{Target: dead, Scenario: sc, Users: 1, Think: noThink, Duration: 5 * time.Second, MaxRequests: 20})
	var b bytes.Buffer
	if err := WriteSummary(&b, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"target down: all 20 requests failed: connection refused\n",
		"FAIL  p95 < 2s  (not measured: no request succeeded (all 20 failed))",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
	if res.Passed() {
		t.Errorf("a run in which no request succeeded passed its latency threshold:\n%s", b.String())
	}
}
