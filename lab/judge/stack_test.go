package judge

import (
	"strings"
	"testing"
	"time"

	"github.com/jewelry-shop/lab/lab/measure"
	"github.com/jewelry-shop/lab/reports"
)

func TestStressRose(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		cpu            bool
		before, during Usage
		want           bool
	}{
		{true, Usage{CPUMilli: 300}, Usage{CPUMilli: 900}, true},
		{true, Usage{CPUMilli: 300}, Usage{CPUMilli: 380}, false},  // less than 100m more
		{true, Usage{CPUMilli: 900}, Usage{CPUMilli: 1100}, false}, // not half again
		{false, Usage{MemoryBytes: 100 << 20}, Usage{MemoryBytes: 300 << 20}, true},
		{false, Usage{MemoryBytes: 100 << 20}, Usage{MemoryBytes: 200 << 20}, false},
	} {
		if got := StressRose(tt.cpu, tt.before, tt.during, 0); got != tt.want {
			t.Errorf("StressRose(cpu=%v, %+v, %+v) = %v, want %v", tt.cpu, tt.before, tt.during, got, tt.want)
		}
	}
}

// TestHealth judges R33 on the probes found on the live workloads.
func TestHealth(t *testing.T) {
	t.Parallel()
	probes := []reports.WorkloadProbes{{Workload: "Deployment/web", Readiness: true, Liveness: true}, {Workload: "StatefulSet/db", Readiness: true, Liveness: false}}
	row := (&judgement{o: &Observation{Probes: probes}}).health()
	if row.Status != reports.Fail || !strings.Contains(row.Reason, "StatefulSet/db has no liveness probe") || row.Measured != "1 of 2 workloads have both probes" {
		t.Errorf("R33 = %+v, want a failure naming StatefulSet/db", row)
	}
	if row := (&judgement{o: &Observation{ProbesWhy: "forbidden"}}).health(); row.Status != reports.NotMeasured || !strings.Contains(row.Reason, "forbidden") {
		t.Errorf("R33 without probes = %+v", row)
	}
}

func TestHealthPolled(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	samples := func(secs ...int) []measure.Sample {
		var out []measure.Sample
		for i, s := range secs {
			out = append(out, measure.Sample{At: t0.Add(time.Duration(s) * time.Second), OK: i%4 != 3})
		}
		return out
	}
	tests := []struct {
		name string
		o    Observation
		want measure.Status
		text string
	}{
		{"not polled", Observation{}, measure.NotMeasured, ""},
		{"polled all run", Observation{HealthPolled: true, HealthFrom: t0, HealthTo: t0.Add(4 * time.Second), Health: samples(0, 1, 2, 3, 4)}, measure.Pass, "health endpoint polled 5 times over 4s, 80"},
		{"a gap", Observation{HealthPolled: true, HealthFrom: t0, HealthTo: t0.Add(20 * time.Second), Health: samples(0, 1, 19)}, measure.NotMeasured, "polled 3 times"},
	}
	for _, tt := range tests {
		v, text, _ := healthPolled(&tt.o)
		if v.Status != tt.want || !strings.Contains(text, tt.text) {
			t.Errorf("%s: %v %q, want %v with %q", tt.name, v, text, tt.want, tt.text)
		}
	}
}
