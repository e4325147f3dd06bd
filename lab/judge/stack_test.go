package judge

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jewelry-shop/lab/lab/measure"
	"github.com/jewelry-shop/lab/reports"
)

// pods is a usage of pods named web-1… with these CPU (milli) usages, each
// limited to limitMilli, 200 MiB of memory each limited to 256 MiB.
func pods(limitMilli int64, cpu ...int64) *Usage {
	u := &Usage{}
	for i, c := range cpu {
		u.PerPod = append(u.PerPod, PodUsage{Pod: fmt.Sprintf("web-%d", i+1), CPUMilli: c, MemoryBytes: 200 << 20, CPULimitMilli: limitMilli, MemoryLimitBytes: 256 << 20})
		u.CPUMilli += c
		u.MemoryBytes += 200 << 20
		u.Pods++
	}
	return u
}

// TestCheckStress compares the same pods before and during a stress: an
// HPA scale-out between the reads does not pass as a stress, and pods at
// their limit are named instead of hiding a real stress.
func TestCheckStress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		before, during *Usage
		perPod         int64
		rose, atLimit  int
		shown          bool
	}{
		{"every pod rose", pods(500, 100, 100, 100), pods(500, 350, 340, 360), 250, 3, 0, true},
		{"scale-out between the reads", pods(500, 100, 100, 100), pods(500, 110, 105, 100, 150, 160, 170), 250, 0, 0, false},
		{"one pod flat", pods(500, 100, 100, 100), pods(500, 350, 100, 360), 250, 2, 0, false},
		{"at the CPU limit", pods(500, 495, 500, 490), pods(500, 500, 500, 500), 250, 0, 3, false},
		{"one at the limit, the others rose", pods(500, 495, 100, 100), pods(500, 500, 350, 360), 250, 2, 1, true},
		{"size not known", pods(0, 100), pods(0, 160), 0, 1, 0, true},
		{"the pods were replaced", pods(500, 100), &Usage{PerPod: []PodUsage{{Pod: "web-9", CPUMilli: 400}}}, 250, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := CheckStress(true, *tt.before, *tt.during, tt.perPod)
			if len(c.Rose) != tt.rose || len(c.AtLimit) != tt.atLimit || c.Shown() != tt.shown {
				t.Errorf("CheckStress = %+v (shown %v), want %d rose, %d at the limit, shown %v", c, c.Shown(), tt.rose, tt.atLimit, tt.shown)
			}
		})
	}
}

// TestStressVerdict judges R34's stress figures: only the pods read before
// and during count, and pods at their limit are named.
func TestStressVerdict(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		before, during *Usage
		status         measure.Status
		reason         string
	}{
		{"scale-out is no stress", pods(500, 100, 100, 100), pods(500, 110, 105, 100, 150, 160, 170), measure.NotMeasured, "the stress did not show in the usage of web-1, web-2, web-3 (CPU 300m → 315m over the 3 pods read before and during"},
		{"at the limit", pods(500, 495, 500, 490), pods(500, 500, 500, 500), measure.NotMeasured, "every stressed pod was at its CPU limit before the stress (web-1, web-2, web-3)"},
		{"no pod read twice", pods(500, 100), &Usage{PerPod: []PodUsage{{Pod: "web-9"}}}, measure.NotMeasured, "no pod was read both before and during the stress"},
		{"rose, one at the limit", pods(500, 495, 100, 100), pods(500, 500, 350, 360), measure.Pass, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			x := &Fault{Name: "web-cpu-stress", Role: RoleCPUStress, InjectedAt: time.Unix(100, 0), StressCPUMilli: 250, UsageBefore: tt.before, UsageDuring: tt.during}
			j := &judgement{o: &Observation{Replicas: &Replicas{
				HPA: "ns/web", Min: 3, Max: 10,
				HPAReplicas: []measure.ReplicaPoint{{At: time.Unix(0, 0), Replicas: 3}, {At: time.Unix(110, 0), Replicas: 5}},
			}}, crit: Criteria{Thresholds: Thresholds{ErrorRateInside: 0.25}}}
			f := &figures{x: x, window: measure.Window{Start: time.Unix(100, 0), End: time.Unix(160, 0)}}
			v, measured, _ := j.stressVerdict(f)
			if tt.status == measure.Pass {
				// No load here: the error rate is not known, so the verdict
				// is not a pass; the stress itself must have been accepted.
				if !strings.Contains(measured, "at their CPU limit before the stress, where it cannot show: web-1") || !strings.Contains(measured, "CPU 695m → 1210m over the 3 pods") {
					t.Errorf("measured %q, want the common pods' figures and web-1 named at its limit", measured)
				}
				return
			}
			if v.Status != tt.status || !strings.Contains(v.Reason, tt.reason) {
				t.Errorf("verdict %s (%s), want %s containing %q", v.Status, v.Reason, tt.status, tt.reason)
			}
		})
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
