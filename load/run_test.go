package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func mustScenario(t *testing.T, src string) *Scenario {
	t.Helper()
	s, err := ParseScenario([]byte(src))
	if err != nil {
		t.Fatalf("parse scenario: %v", err)
	}
	return s
}

func mustRun(t *testing.T, opts Options) *Result {
	t.Helper()
	if opts.MaxRequests == 0 {
		opts.MaxRequests = 1_000_000
	}
	if opts.Model == "" {
		opts.Model = Closed
	}
	res, err := Run(t.Context(), opts)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return res
}

var noThink = &ThinkTime{}

func TestDefaultScenarioAgainstStandInShop(t *testing.T) {
	t.Parallel()
	shop := newStandInShop()
	srv := httptest.NewServer(shop)
	t.Cleanup(srv.Close)

	res := mustRun(t, Options{
		Target: srv.URL, Scenario: DefaultScenario(), Users: 20, Think: &ThinkTime{Max: 2 * time.Millisecond},
		Duration: 2 * time.Second, MaxRequests: 3000, Seed: 1,
	})
	if res.Overall.Requests < 100 {
		t.Fatalf("only %d requests", res.Overall.Requests)
	}
	if res.Overall.Failures != 0 {
		t.Errorf("failures %v, want none", res.Overall.ByClass)
	}
	if len(shop.problems) > 0 {
		t.Errorf("the shop saw %d problems, first: %s", len(shop.problems), shop.problems[0])
	}
	for _, path := range []string{"GET /api/products", "GET /api/search", "POST /api/cart/items", "POST /api/checkout", "POST /api/login", "GET /api/orders", "GET /api/account", "GET /api/cart"} {
		if shop.hits[path] == 0 {
			t.Errorf("no request to %s", path)
		}
	}
	want := []string{"add to cart", "checkout", "list products", "log in", "search", "view account", "view cart", "view orders", "view product"}
	var got []string
	for _, e := range res.Endpoints {
		got = append(got, e.Name)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("endpoints (-want +got):\n%s", d)
	}
	if !res.Passed() {
		t.Errorf("default thresholds failed: %+v", res.Thresholds)
	}
}

func TestWeightsRespected(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	hits := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.URL.Path]++
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	sc := mustScenario(t, `
behaviours:
  - {name: a, weight: 1, steps: [{path: /a}]}
  - {name: b, weight: 3, steps: [{path: /b}]}
  - {name: c, weight: 6, steps: [{path: /c}]}
`)
	const n = 6000
	res := mustRun(t, Options{Target: srv.URL, Scenario: sc, Users: 4, Think: noThink, Duration: 20 * time.Second, MaxRequests: n, Seed: 42})
	if res.StopReason != "request cap" || res.Overall.Requests != n {
		t.Fatalf("stopped by %s after %d requests, want the cap of %d", res.StopReason, res.Overall.Requests, n)
	}
	for path, w := range map[string]float64{"/a": 0.1, "/b": 0.3, "/c": 0.6} {
		// Binomial: 5 standard deviations, a false alarm about once in 3.5 million runs.
		sd := math.Sqrt(n * w * (1 - w))
		if got := float64(hits[path]); math.Abs(got-n*w) > 5*sd {
			t.Errorf("%s: %v requests, want %v ± %.0f", path, got, n*w, 5*sd)
		}
	}
}

func TestExtractionAndTemplating(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := new(bytes.Buffer)
		_, _ = body.ReadFrom(r.Body)
		c, _ := r.Cookie("sid")
		host := ""
		if !strings.HasPrefix(r.Host, "127.0.0.1:") {
			host = " host=" + r.Host // a Host header of the scenario's
		}
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s %s %s cookie=%v token=%s%s", r.Method, r.URL.RequestURI(), body, c != nil, r.Header.Get("X-Token"), host))
		mu.Unlock()
		switch r.URL.Path {
		case "/login":
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: "abc"})
			w.Header().Set("X-Token", "tok-7")
			fmt.Fprint(w, `{"user": {"id": 7, "tags": ["x", "y"]}}`)
		case "/page":
			fmt.Fprint(w, `<a href="/item/99">`)
		}
	}))
	t.Cleanup(srv.Close)
	sc := mustScenario(t, `
vars: {site: shop}
behaviours:
  - name: flow
    steps:
      - name: login
        method: post
        path: /login
        body: '{"who": "u{{ vu }}-{{ iteration }}", "pick": "{{ pick only }}", "n": {{ randint 5 5 }}}'
        extract:
          uid: {json: $.user.id}
          tag: {json: "user.tags[1]"}
          token: {header: x-token}
          sid: {cookie: sid}
      - name: page
        path: /page?u={{ uid }}&t={{ tag }}&s={{ sid }}&site={{ site }}
        headers: {X-Token: "{{ token }}"}
        extract:
          item: {regex: 'href="/item/(\d+)"'}
      - name: item
        path: /item/{{ item }}
        headers: {Host: shop.example}
`)
	res := mustRun(t, Options{Target: srv.URL, Scenario: sc, Users: 1, Think: noThink, Duration: 5 * time.Second, MaxRequests: 3})
	if res.Overall.Failures != 0 {
		t.Fatalf("failures: %v", res.Overall.ByClass)
	}
	want := []string{
		`POST /login {"who": "u0-0", "pick": "only", "n": 5} cookie=false token=`,
		`GET /page?u=7&t=y&s=abc&site=shop  cookie=true token=tok-7`,
		`GET /item/99  cookie=true token= host=shop.example`,
	}
	if d := cmp.Diff(want, seen); d != "" {
		t.Errorf("requests (-want +got):\n%s", d)
	}
}

func TestThinkTimeAndSpawnRate(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	first := map[string]time.Time{}
	count := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := first[r.URL.Path]; !ok {
			first[r.URL.Path] = time.Now()
		}
		count[r.URL.Path]++
	}))
	t.Cleanup(srv.Close)
	sc := mustScenario(t, `
think: 200ms
behaviours: [{name: b, steps: [{path: "/u{{ vu }}"}]}]
`)
	start := time.Now()
	res := mustRun(t, Options{Target: srv.URL, Scenario: sc, Users: 5, SpawnRate: 5, Duration: 2 * time.Second})
	if res.Overall.Failures != 0 {
		t.Fatalf("failures: %v", res.Overall.ByClass)
	}
	for i := range 5 {
		path := fmt.Sprintf("/u%d", i)
		// Spawn rate 5/s: user i starts no earlier than i × 200 ms.
		if at := first[path].Sub(start); at < time.Duration(i)*200*time.Millisecond-5*time.Millisecond {
			t.Errorf("user %d started after %s, before its spawn time", i, at)
		}
		// Think 200 ms: at most one request per 200 ms of its life, and
		// (on a machine that is not starved for seconds) most of them.
		life := 2*time.Second - time.Duration(i)*200*time.Millisecond
		maxN := int(life/(200*time.Millisecond)) + 1
		if n := count[path]; n > maxN || n < maxN/2 {
			t.Errorf("user %d sent %d requests in %s with 200ms think time, want %d..%d", i, n, life, maxN/2, maxN)
		}
	}
	if res.Generator.MaxUsers != 5 {
		t.Errorf("max users %d, want 5", res.Generator.MaxUsers)
	}
}

func TestOpenModelRateAccuracy(t *testing.T) {
	t.Parallel()
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served.Add(1) }))
	t.Cleanup(srv.Close)
	sc := mustScenario(t, `behaviours: [{name: b, steps: [{path: /}]}]`)
	res := mustRun(t, Options{Target: srv.URL, Scenario: sc, Model: Open, Rate: 300, Duration: 3 * time.Second})
	// The schedule holds exactly 900 arrivals; sending is what is tested.
	if got := served.Load(); math.Abs(float64(got)-900) > 9 {
		t.Errorf("server received %d requests, want 900 ± 1%%", got)
	}
	if got := res.Overall.RPS; math.Abs(got-300) > 3 {
		t.Errorf("measured %.1f req/s, want 300 ± 1%%", got)
	}
	if res.Generator.DroppedStarts != 0 {
		t.Errorf("dropped %d starts", res.Generator.DroppedStarts)
	}
	// Each second of the series got its share: arrivals are spread, not bursts.
	for _, p := range res.Series.Points[:3] {
		if math.Abs(float64(p.Requests)-300) > 3 {
			t.Errorf("second %s: %d requests, want 300 ± 1%%", p.Time.Sub(res.Start), p.Requests)
		}
	}
}

func TestOpenModelRamp(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(srv.Close)
	sc := mustScenario(t, `behaviours: [{name: b, steps: [{path: /}]}]`)
	res := mustRun(t, Options{
		Target: srv.URL, Scenario: sc, Model: Open, Rate: 0,
		Stages: []Stage{{Duration: 2 * time.Second, Rate: 400}}, Duration: 2 * time.Second,
	})
	// 0 → 400/s over 2 s: 400 arrivals, 100 in the first second, 300 in the second.
	if got := res.Overall.Requests; math.Abs(float64(got)-400) > 4 {
		t.Errorf("%d requests, want 400", got)
	}
	if p := res.Series.Points; len(p) < 2 || math.Abs(float64(p[0].Requests)-100) > 2 || math.Abs(float64(p[1].Requests)-300) > 2 {
		t.Errorf("per second %+v, want 100 then 300", p)
	}
}

// resetOnce closes the connection without a response: RST with linger 0.
func resetHandler(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

func TestErrorClassification(t *testing.T) {
	t.Parallel()
	closed := httptest.NewServer(http.NotFoundHandler())
	refusedURL := closed.URL
	closed.Close()

	tests := []struct {
		name    string
		handler http.HandlerFunc
		target  string
		step    string
		want    Class
	}{
		{name: "reset", handler: resetHandler, want: ClassReset},
		{name: "timeout", handler: func(_ http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
		}, want: ClassTimeout},
		{name: "500", handler: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) }, want: Class5xx},
		{name: "404", handler: http.NotFound, want: Class4xx},
		{name: "unexpected status", handler: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(202) }, step: "status: 200", want: ClassStatus},
		{name: "redirect not expected", handler: func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) }, want: ClassStatus},
		{
			name: "wrong body", handler: func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `{"products": []}`) },
			step: "extract: {id: {json: products.*.id}}", want: ClassExtract,
		},
		{
			name: "not json", handler: func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `<html>`) },
			step: "extract: {id: {json: id}}", want: ClassExtract,
		},
		{
			name: "body_contains", handler: func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `hello`) },
			step: "body_contains: goodbye", want: ClassExtract,
		},
		{name: "refused", target: refusedURL, want: ClassRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			target := tt.target
			if tt.handler != nil {
				srv := httptest.NewServer(tt.handler)
				t.Cleanup(srv.Close)
				target = srv.URL
			}
			step := "{path: /x}"
			if tt.step != "" {
				step = "{path: /x, " + tt.step + "}"
			}
			sc := mustScenario(t, "behaviours: [{name: b, steps: ["+step+"]}]")
			res := mustRun(t, Options{
				Target: target, Scenario: sc, Users: 1, Think: noThink,
				Duration: 5 * time.Second, MaxRequests: 3, Timeout: 200 * time.Millisecond,
			})
			want := ClassCounts{}
			want[tt.want] = 3
			if d := cmp.Diff(want, res.Overall.ByClass); d != "" {
				t.Errorf("failures by class (-want +got):\n%s", d)
			}
			if res.Overall.Failures != 3 || res.Overall.ErrorRate != 1 {
				t.Errorf("failures %d, error rate %v; want 3 and 1", res.Overall.Failures, res.Overall.ErrorRate)
			}
		})
	}
}

// freezer serves in about 1 ms but freezes for 200 ms of every second,
// starting 400 ms after it is made: a request arriving in a freeze waits
// until it ends.
func freezer() http.HandlerFunc {
	start := time.Now().Add(-600 * time.Millisecond)
	return func(http.ResponseWriter, *http.Request) {
		if in := time.Since(start) % time.Second; in < 200*time.Millisecond {
			time.Sleep(200*time.Millisecond - in)
		}
		time.Sleep(time.Millisecond)
	}
}

// With arrivals spread evenly, 20 % land in a freeze and wait uniformly
// 0..200 ms: p90 ≈ 100 ms and p99 ≈ 190 ms (plus the 1 ms of service).
func TestFreezingTargetShowsInCorrectedPercentiles(t *testing.T) {
	t.Parallel()
	sc := mustScenario(t, `behaviours: [{name: b, steps: [{path: /}]}]`)
	const truthP90, truthP99 = 101 * time.Millisecond, 191 * time.Millisecond
	// 10 % is the bar for the benchmark; a shared test machine
	// gets 20 % so that the test never flakes, and still catches a generator
	// that hides the freeze (a p90 of a few ms). The race detector slows the
	// generator so much that its own lag adds up: there, only the lower
	// bound holds.
	within := func(got, want time.Duration) bool {
		if raceEnabled {
			return got >= want*8/10
		}
		return math.Abs(float64(got-want)) <= 0.2*float64(want)
	}
	t.Run("open", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(freezer())
		t.Cleanup(srv.Close)
		res := mustRun(t, Options{Target: srv.URL, Scenario: sc, Model: Open, Rate: 400, Duration: 4 * time.Second})
		l := res.Overall.Latency
		t.Logf("open model: p90 %s p99 %s", l.P90, l.P99)
		if !within(l.P90, truthP90) || !within(l.P99, truthP99) {
			t.Errorf("open model p90 %s p99 %s, want ≈ %s and %s", l.P90, l.P99, truthP90, truthP99)
		}
	})
	t.Run("closed", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(freezer())
		t.Cleanup(srv.Close)
		res := mustRun(t, Options{Target: srv.URL, Scenario: sc, Users: 10, Think: noThink, Duration: 4 * time.Second})
		c, raw := res.Overall.Latency, res.Overall.RawLatency
		t.Logf("closed model: corrected p90 %s p99 %s, raw p90 %s p99 %s", c.P90, c.P99, raw.P90, raw.P99)
		if !within(c.P90, truthP90) || !within(c.P99, truthP99) {
			t.Errorf("closed model corrected p90 %s p99 %s, want ≈ %s and %s (raw p90 %s p99 %s)", c.P90, c.P99, truthP90, truthP99, raw.P90, raw.P99)
		}
		// The raw figure is what a naive generator reports: the freeze
		// hides in it (10 users wait in it, thousands of requests do not).
		if raw.P90 > c.P90*3/4 {
			t.Errorf("raw p90 %s is close to the corrected %s: where is the coordinated-omission blind spot?", raw.P90, c.P90)
		}
	})
}

func TestThresholdsOnRun(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1)%10 == 0 {
			w.WriteHeader(500)
		}
	}))
	t.Cleanup(srv.Close)
	sc := mustScenario(t, `
thresholds: ["error_rate < 1%", "p99 < 10s"]
behaviours: [{name: b, steps: [{name: get, path: /}]}]`)
	extra, err := ParseThreshold("error_rate{get} < 20%")
	if err != nil {
		t.Fatal(err)
	}
	res := mustRun(t, Options{
		Target: srv.URL, Scenario: sc, Users: 1, Think: noThink, Duration: 5 * time.Second,
		MaxRequests: 100, Thresholds: []Threshold{extra},
	})
	var got []bool
	for _, tr := range res.Thresholds {
		got = append(got, tr.Pass)
	}
	if d := cmp.Diff([]bool{false, true, true}, got); d != "" {
		t.Errorf("threshold passes (-want +got):\n%s\n%+v", d, res.Thresholds)
	}
	if res.Passed() {
		t.Error("Passed() with a failing threshold")
	}
	if math.Abs(res.Thresholds[0].Actual-0.1) > 1e-9 {
		t.Errorf("error rate %v, want 0.1", res.Thresholds[0].Actual)
	}
}

func TestRunRefusesRemoteTargetsAndUnboundedRuns(t *testing.T) {
	t.Parallel()
	sc := mustScenario(t, `behaviours: [{name: b, steps: [{path: /}]}]`)
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"remote host", Options{Target: "http://example.com", Model: Closed, Users: 1, Scenario: sc, Duration: time.Second, MaxRequests: 1}, "not loopback"},
		{"no duration", Options{Target: "http://127.0.0.1:1", Model: Closed, Users: 1, Scenario: sc, MaxRequests: 1}, "duration must be positive"},
		{"no cap", Options{Target: "http://127.0.0.1:1", Model: Closed, Users: 1, Scenario: sc, Duration: time.Second}, "max requests must be positive"},
		{"no users", Options{Target: "http://127.0.0.1:1", Model: Closed, Scenario: sc, Duration: time.Second, MaxRequests: 1}, "users > 0"},
		{"no rate", Options{Target: "http://127.0.0.1:1", Model: Open, Scenario: sc, Duration: time.Second, MaxRequests: 1}, "rate > 0"},
		{"too many users", Options{Target: "http://127.0.0.1:1", Model: Closed, Users: MaxUsers + 1, Scenario: sc, Duration: time.Second, MaxRequests: 1}, "users 10001 is above MaxUsers (10000)"},
		{"too many in flight", Options{Target: "http://127.0.0.1:1", Model: Open, Rate: 1, MaxInFlight: MaxUsers + 1, Scenario: sc, Duration: time.Second, MaxRequests: 1}, "max in flight 10001 is above MaxUsers (10000)"},
		{"spawn rate not a number", Options{Target: "http://127.0.0.1:1", Model: Closed, Users: 1, SpawnRate: math.NaN(), Scenario: sc, Duration: time.Second, MaxRequests: 1}, "spawn rate must be a finite number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Run(t.Context(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
			var oe *OptionsError
			if !errors.As(err, &oe) {
				t.Errorf("error %T is not an *OptionsError: callers cannot tell a refused run from a failed one", err)
			}
		})
	}
}

func TestCheckTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		target string
		allow  []string
		ok     bool
	}{
		{"http://127.0.0.1:8080", nil, true},
		{"http://127.9.9.9", nil, true},
		{"http://[::1]:80/", nil, true},
		{"http://localhost:3000", nil, true},
		{"http://10.0.0.1", nil, false},
		{"http://shop.example", nil, false},
		{"http://shop.example", []string{"SHOP.example"}, true},
		{"https://anything", []string{"*"}, true},
		{"ftp://127.0.0.1", nil, false},
		{"127.0.0.1:80", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			t.Parallel()
			_, err := CheckTarget(tt.target, tt.allow)
			if (err == nil) != tt.ok {
				t.Errorf("CheckTarget(%q, %v) = %v, want ok=%v", tt.target, tt.allow, err, tt.ok)
			}
			// Only a well-formed URL to a host that is not allowed is a
			// *HostNotAllowedError: the fix is then to allow the host.
			var he *HostNotAllowedError
			if wantHost := !tt.ok && strings.HasPrefix(tt.target, "http"); errors.As(err, &he) != wantHost {
				t.Errorf("CheckTarget(%q) = %v (%T): *HostNotAllowedError %v, want %v", tt.target, err, err, !wantHost, wantHost)
			}
		})
	}
}

func TestCancelStopsTheRun(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(srv.Close)
	sc := mustScenario(t, `behaviours: [{name: b, steps: [{path: /}]}]`)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	res, err := Run(ctx, Options{
		Target: srv.URL, Scenario: sc, Model: Closed, Users: 2, Think: &ThinkTime{Min: 10 * time.Millisecond, Max: 10 * time.Millisecond},
		Duration: time.Minute, MaxRequests: 1_000_000,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.StopReason != "cancelled" || res.Duration > 10*time.Second {
		t.Errorf("stopped by %q after %s, want cancelled soon", res.StopReason, res.Duration)
	}
}

// Cancelling the run ends a request in flight at once, not when its
// timeout would, and counts it as aborted, not as the target's failure.
func TestCancelEndsRequestsInFlight(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	sc := mustScenario(t, `behaviours: [{name: b, steps: [{path: /}]}]`)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan *Result, 1)
	go func() {
		res, err := Run(ctx, Options{
			Target: srv.URL, Scenario: sc, Model: Closed, Users: 1, Think: noThink,
			Duration: time.Minute, MaxRequests: 10, Timeout: time.Minute,
		})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	select {
	case <-arrived:
	case <-done:
		t.Fatal("the run ended before its request arrived")
	}
	cancel()
	select {
	case res := <-done:
		if res == nil {
			return
		}
		if res.Generator.Aborted != 1 || res.Overall.Failures != 0 || res.StopReason != "cancelled" {
			t.Errorf("aborted %d, failures %d, stop %q; want 1, 0, cancelled", res.Generator.Aborted, res.Overall.Failures, res.StopReason)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the request in flight outlived the cancelled run (its timeout is a minute)")
	}
}

// A keep-alive connection the target closed while it was idle is not the
// target's failure: the request is sent again on a new connection, once,
// as browsers do. A connection closed with the request on it is a failure.
func TestClosedKeepAliveConnections(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler http.HandlerFunc
		idle    bool // the server closes every connection once it is idle
		method  string
		want    ClassCounts
		retried int64 // -1: not checked
	}{
		// The first request opens the connection; each later one finds it
		// closed and is sent again.
		{name: "idle GET", idle: true, method: "GET", want: ClassCounts{}, retried: 4},
		// fasthttp opens a new connection for each HEAD to this server
		// (measured): nothing is stale.
		{name: "idle HEAD", idle: true, method: "HEAD", want: ClassCounts{}, retried: -1},
		// Each request is sent twice, and fails.
		{name: "closed with the request on it", method: "GET", want: ClassCounts{ClassReset: 5}, retried: 5, handler: func(w http.ResponseWriter, _ *http.Request) {
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = conn.Close() // FIN, no response
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var conns atomic.Int64
			h := tt.handler
			if h == nil {
				h = func(http.ResponseWriter, *http.Request) {}
			}
			srv := httptest.NewUnstartedServer(h)
			srv.Config.ConnState = func(c net.Conn, st http.ConnState) {
				switch {
				case st == http.StateNew:
					conns.Add(1)
				case st == http.StateIdle && tt.idle:
					_ = c.Close()
				}
			}
			srv.Start()
			t.Cleanup(srv.Close)
			sc := mustScenario(t, "behaviours: [{name: b, steps: [{path: /, method: "+tt.method+"}]}]")
			res := mustRun(t, Options{
				Target: srv.URL, Scenario: sc, Users: 1,
				Think:    &ThinkTime{Min: 20 * time.Millisecond, Max: 20 * time.Millisecond},
				Duration: 30 * time.Second, MaxRequests: 5, Timeout: 5 * time.Second,
			})
			if d := cmp.Diff(tt.want, res.Overall.ByClass); d != "" {
				t.Errorf("failures by class (-want +got):\n%s", d)
			}
			if res.Overall.Requests != 5 {
				t.Errorf("%d requests, want 5", res.Overall.Requests)
			}
			if tt.idle && conns.Load() < 5 {
				t.Errorf("%d connections: the server did not close them as the test means", conns.Load())
			}
			// Every retry is reported.
			if g := res.Generator; tt.retried >= 0 && (g.Retried != tt.retried || !slices.ContainsFunc(g.Warnings, func(w string) bool { return strings.Contains(w, "sent again") })) {
				t.Errorf("retried %d, warnings %q; want %d and a warning", g.Retried, g.Warnings, tt.retried)
			}
		})
	}
}

// MaxConns bounds the connections the population shares: users wait for
// a free one (within the request timeout) instead of failing.
func TestMaxConnsIsShared(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var opened, open, peak int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		time.Sleep(5 * time.Millisecond)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch st {
		case http.StateNew:
			opened++
			open++
			peak = max(peak, open)
		case http.StateClosed, http.StateHijacked:
			open--
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	sc := mustScenario(t, `behaviours: [{name: b, steps: [{path: /}]}]`)
	res := mustRun(t, Options{
		Target: srv.URL, Scenario: sc, Users: 10, Think: noThink, MaxConns: 2,
		Duration: 30 * time.Second, MaxRequests: 200, Timeout: 10 * time.Second,
	})
	if res.Overall.Failures != 0 || res.Overall.Requests != 200 {
		t.Errorf("%d requests, failures %v; want 200 and none", res.Overall.Requests, res.Overall.ByClass)
	}
	mu.Lock()
	defer mu.Unlock()
	if peak > 2 || opened > 2 {
		t.Errorf("%d connections opened, %d at once; want at most 2", opened, peak)
	}
}

func TestSeriesAndProgressOnTheInjectedClock(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(srv.Close)
	sc := mustScenario(t, `behaviours: [{name: b, steps: [{path: /}]}]`)
	clock := offsetClock{offset: 1000 * time.Hour}
	var mu sync.Mutex
	var seconds []Point
	var progress []Progress
	res := mustRun(t, Options{
		Target: srv.URL, Scenario: sc, Model: Open, Rate: 50, Duration: 2500 * time.Millisecond, Timeout: time.Second, Clock: clock,
		OnSecond:   func(p Point) { mu.Lock(); seconds = append(seconds, p); mu.Unlock() },
		OnProgress: func(p Progress) { mu.Lock(); progress = append(progress, p); mu.Unlock() },
	})
	if d := time.Until(res.Start); d < 999*time.Hour {
		t.Errorf("start %s is not on the injected clock", res.Start)
	}
	if len(progress) < 2 {
		t.Errorf("%d progress reports in 2.5 s, want at least 2", len(progress))
	}
	if d := cmp.Diff(res.Series.Points, seconds); d != "" {
		t.Errorf("OnSecond points differ from the series (-series +callback):\n%s", d)
	}
	var total int64
	for i, p := range res.Series.Points {
		if want := res.Start.Add(time.Duration(i) * time.Second); !p.Time.Equal(want) {
			t.Errorf("point %d at %s, want %s", i, p.Time, want)
		}
		total += p.Requests
	}
	if total != res.Overall.Requests {
		t.Errorf("series holds %d requests, totals %d", total, res.Overall.Requests)
	}
}

type offsetClock struct{ offset time.Duration }

func (c offsetClock) Now() time.Time { return time.Now().Add(c.offset) }

func TestResultJSONRoundTrip(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }))
	t.Cleanup(srv.Close)
	sc := mustScenario(t, `behaviours: [{name: b, steps: [{path: /}]}]`)
	res := mustRun(t, Options{Target: srv.URL, Scenario: sc, Users: 1, Think: noThink, Duration: time.Second, MaxRequests: 20})
	var buf bytes.Buffer
	if err := WriteJSON(&buf, res); err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatalf("decode: %v\n%s", err, buf.String())
	}
	if d := cmp.Diff(res, &back, cmp.AllowUnexported(Stats{}), cmp.Comparer(func(a, b time.Duration) bool {
		return (a - b).Abs() < time.Microsecond
	}), cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }),
		cmp.FilterPath(func(p cmp.Path) bool {
			return strings.HasSuffix(p.String(), ".raw") || strings.HasSuffix(p.String(), ".corrected")
		}, cmp.Ignore())); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
	if !strings.Contains(buf.String(), `"5xx": 20`) {
		t.Errorf("JSON lacks the failure classes:\n%s", buf.String())
	}
}

func TestGeneratorSaysWhenItCannotKeepTheRate(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { time.Sleep(50 * time.Millisecond) }))
	t.Cleanup(srv.Close)
	sc := mustScenario(t, `behaviours: [{name: b, steps: [{path: /}]}]`)
	// 2 workers at 50 ms each hold 40/s at most; 200/s are offered.
	res := mustRun(t, Options{Target: srv.URL, Scenario: sc, Model: Open, Rate: 200, MaxInFlight: 2, Duration: time.Second})
	g := res.Generator
	if g.DroppedStarts < 100 {
		t.Errorf("dropped %d starts, want most of the 200 offered", g.DroppedStarts)
	}
	if len(g.Warnings) == 0 || !strings.Contains(g.Warnings[0], "offered rate was not held") {
		t.Errorf("warnings %q, want one about the offered rate", g.Warnings)
	}
	if g.DroppedStarts+res.Overall.Requests != 200 {
		t.Errorf("%d dropped + %d sent, want the 200 offered", g.DroppedStarts, res.Overall.Requests)
	}
}
