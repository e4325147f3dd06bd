package load

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"
)

// BenchmarkClosedMaxRate measures the generator's cost per request: 50
// users without think time against an in-process target that answers at
// once (the target's cost is in the figure too; hack/bench-load.sh
// measures the generator alone, pinned to its own core).
func BenchmarkClosedMaxRate(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	b.Cleanup(srv.Close)
	sc, err := ParseScenario([]byte(`behaviours: [{name: get, steps: [{name: get, path: /}]}]`))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	res, err := Run(b.Context(), Options{
		Target: srv.URL, Scenario: sc, Model: Closed, Users: 50, Think: &ThinkTime{},
		Duration: time.Hour, MaxRequests: int64(b.N),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.Overall.RPS, "req/s")
}

// BenchmarkThousandUsers runs 1,000 closed-model users with 0.5-1.5 s think
// time for 5 s per iteration and reports the generator's heap and
// goroutines at the end of the ramp.
func BenchmarkThousandUsers(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	b.Cleanup(srv.Close)
	sc, err := ParseScenario([]byte(`behaviours: [{name: get, steps: [{name: get, path: /}]}]`))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		var peak uint64
		var goroutines int
		res, err := Run(b.Context(), Options{
			Target: srv.URL, Scenario: sc, Model: Closed, Users: 1000, SpawnRate: 500,
			Think:    &ThinkTime{Min: 500 * time.Millisecond, Max: 1500 * time.Millisecond},
			Duration: 5 * time.Second, MaxRequests: 1_000_000,
			OnProgress: func(Progress) {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
				goroutines = max(goroutines, runtime.NumGoroutine())
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.Overall.RPS, "req/s")
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(goroutines), "goroutines")
	}
}
