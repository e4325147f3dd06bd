package measure_test

import (
	"fmt"
	"time"

	"github.com/jewelry-shop/lab/lab/measure"
)

// A prober writes every 100 ms; the primary is killed at +0.4 s and writes
// fail until the failover completes.
func ExampleRecover() {
	start := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	var samples []measure.Sample
	for i, c := range "....xxxxxxxx........" {
		samples = append(samples, measure.Sample{At: start.Add(time.Duration(i) * 100 * time.Millisecond), OK: c == '.'})
	}
	r := measure.Recover(samples, start.Add(400*time.Millisecond), 500*time.Millisecond)
	fmt.Println("first error:", r.FirstError.Sub(start))
	fmt.Println("recovered:", r.RecoveredAt.Sub(start))
	fmt.Println("RTO:", r.RTO.V, "failed writes:", r.Failures)
	fmt.Println(r.Below(30 * time.Second))
	// Output:
	// first error: 400ms
	// recovered: 1.2s
	// RTO: 800ms failed writes: 8
	// pass: 800ms < 30s
}

// The HPA scaled up under load; the load stopped at +10 m.
func ExampleScaleDown() {
	start := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	m := func(minutes float64) time.Time { return start.Add(time.Duration(minutes * float64(time.Minute))) }
	replicas := []measure.ReplicaPoint{{At: m(0), Replicas: 3}, {At: m(2), Replicas: 7}, {At: m(12), Replicas: 5}, {At: m(13.5), Replicas: 3}}
	sd := measure.ScaleDown(replicas, m(10), m(20), 3)
	fmt.Println("peak:", sd.Peak.V, "back to min after:", sd.After.V)
	fmt.Println(sd.Within(5 * time.Minute))
	fmt.Println(measure.AtLeast(sd.Peak, 4))
	// Output:
	// peak: 7 back to min after: 3m30s
	// pass: 3m30s <= 5m0s
	// pass: 7 >= 4
}
