package reports

import (
	"time"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// at returns t0 plus s seconds.
func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func i32(v int32) *int32 { return &v }

func seqs(v ...int64) *[]int64 {
	if v == nil {
		v = []int64{}
	}
	return &v
}

// passingRun is a complete quick run in which every requirement passed.
func passingRun() *Run {
	return &Run{
		Title:    "jewelry-shop lab validation",
		Profile:  "quick",
		Seed:     42,
		Started:  t0,
		Finished: at(600),
		Progress: Progress{Completed: true, Reached: "report"},
		Environment: map[string]string{
			"k3s":                     "v1.33.6-k3s1",
			"k3d":                     "v5.9.0",
			"chart/chaos-mesh":        "2.8.3",
			"chart/postgres-operator": "2.0.1",
			"image/web":               "jewelry-shop/shop:dev-3f2a1c",
			"lab":                     "3f2a1c9 (clean)",
		},
		Requirements: []Requirement{
			{ID: "R25", Title: "100 concurrent users", Threshold: "p95 < 2s, error rate outside faults < 1 %", Measured: "p95 412 ms, error rate 0.08 %", Status: Pass, Evidence: []string{AnchorLoad}},
			{ID: "R29", Title: "PostgreSQL failover", Threshold: "RTO < 30s", Measured: "RTO 11.84s", Status: Pass, Evidence: []string{ExperimentAnchor("pg-primary-kill")}, Values: []Value{Seconds("rto pg-primary-kill", 11840*time.Millisecond)}},
			{ID: "R31", Title: "Service availability", Threshold: ">= 99 % whole run", Measured: "99.912 %", Status: Pass, Evidence: []string{AnchorAvailability}, Values: []Value{Ratio("availability", 0.99912)}},
			{ID: "R33", Title: "Health checks", Threshold: "readiness and liveness on every workload", Measured: "2 of 2 workloads", Status: Pass, Evidence: []string{AnchorHealthChecks}},
			{ID: "R35", Title: "Automatic scale-down", Threshold: "> min under load, back to min <= 5m", Measured: "peak 6, back in 2m40s", Status: Pass, Evidence: []string{AnchorAutoscaling}},
			{ID: "no-data-loss", Title: "No acknowledged write lost", Threshold: "0 lost writes", Measured: "0 of 5885 acknowledged", Status: Pass, Evidence: []string{ExperimentAnchor("pg-primary-kill")}, Values: []Value{Number("lost writes", 0)}},
		},
		Load: &LoadSummary{
			Scenario: "shop", Model: "closed", Users: 100, Duration: Duration(420 * time.Second),
			Endpoints: []Endpoint{
				{Name: "browse catalogue", Count: Count{Requests: 30000, Failures: 20}, FailuresByClass: map[string]int64{"5xx": 15, "timeout": 5}, P50MS: 41.2, P95MS: 380.5, P99MS: 910, RPS: 71.43},
				{Name: "checkout", Count: Count{Requests: 6000, Failures: 9}, FailuresByClass: map[string]int64{"5xx": 9}, P50MS: 88, P95MS: 512.25, P99MS: 1204.7, RPS: 14.29},
			},
			Overall:       Endpoint{Name: "all", Count: Count{Requests: 36000, Failures: 29}, FailuresByClass: map[string]int64{"5xx": 24, "timeout": 5}, P50MS: 45, P95MS: 412, P99MS: 1010.3, RPS: 85.71},
			InsideFaults:  Count{Requests: 1100, Failures: 26},
			OutsideFaults: Count{Requests: 34900, Failures: 3},
		},
		Availability: []Availability{
			{Scope: "whole run", Source: "load", Count: Count{Requests: 36000, Failures: 29}},
			{Scope: "whole run", Source: "prober postgres", Count: Count{Requests: 6000, Failures: 115}},
			{Scope: "pg-primary-kill", Source: "prober postgres", Count: Count{Requests: 119, Failures: 115}},
		},
		HealthChecks: []WorkloadProbes{
			{Workload: "Deployment/web", Readiness: true, Liveness: true},
			{Workload: "StatefulSet/redis", Readiness: true, Liveness: true},
		},
		Autoscaling: &Autoscaling{
			HPA: "jewelry-shop/web", Min: 3, Max: 10, Peak: i32(6), PeakAt: at(200),
			LoadStoppedAt: at(430), ReachedMinAt: at(590), ScaleDown: Dur(160 * time.Second),
			Timeline:      []ReplicaPoint{{At: t0, Replicas: 3}, {At: at(120), Replicas: 5}, {At: at(200), Replicas: 6}, {At: at(540), Replicas: 4}, {At: at(590), Replicas: 3}},
			ObservedUntil: at(598),
			DependsOn:     []Setting{{Name: "behavior.scaleDown.stabilizationWindowSeconds", Value: "60", Why: "replicas only fall after the desired count stayed lower this long"}},
		},
		Experiments: []Experiment{{
			Name: "pg-primary-kill", Title: "Kill the PostgreSQL primary", Requirements: []string{"R26", "R29", "no-data-loss"},
			Fault: "PodChaos pod-failure for 40s", Target: "pod jewelry-shop/shop-pg-0 (spilo-role=master)",
			InjectedAt: at(180), FirstError: at(180.3), RecoveredAt: at(191.84), SteadyAt: at(236.5),
			RTO: Dur(11840 * time.Millisecond), Leader: &Leader{Old: "shop-pg-0", New: "shop-pg-1", Path: "failover"},
			Errors: &Count{Requests: 1100, Failures: 26}, LostWrites: seqs(), Duplicates: seqs(),
			// Every 100 ms: acknowledged until 180.2, failed from 180.3 to
			// 191.7, acknowledged again from 191.8.
			ProberWrites: writes("postgres", 150, 222, func(s float64) int64 {
				switch {
				case s == 180:
					return 7
				case s > 180 && s < 191:
					return 10
				case s == 191:
					return 8
				}
				return 0
			}),
			Timeline: []Event{
				{At: at(179.9), Source: "chaos", What: "PodChaos pg-primary-kill created"},
				{At: at(180), Source: "chaos", What: "AllInjected"},
				{At: at(180.3), Source: "prober", What: "first failed write (seq 1803): connection refused"},
				{At: at(190.2), Source: "kubernetes", What: "pod shop-pg-1 labelled spilo-role=master"},
				{At: at(191.84), Source: "prober", What: "first acknowledged write of a sustained run (seq 1919)"},
				{At: at(236.5), Source: "kubernetes", What: "3/3 PostgreSQL pods Ready"},
			},
			DependsOn: []Setting{
				{Name: "patroni.ttl", Value: "20", Why: "the leader key expires this long after the primary stops renewing it"},
				{Name: "patroni.loop_wait", Value: "5", Why: "a replica notices the expired key within one loop"},
			},
		}},
		FaultWindows: []FaultWindow{{Experiment: "pg-primary-kill", Start: at(180), End: at(191.84)}},
		Charts: []Chart{
			{ID: "rps", Title: "User requests per second", Unit: "req/s", Aggregate: "mean", Points: samples(0, 600, 10, func(s float64) float64 {
				if s >= 180 && s < 192 {
					return 60
				}
				return 85.5
			})},
			{ID: "p95", Title: "User request p95 latency", Unit: "ms", Aggregate: "max", Points: samples(0, 600, 10, func(s float64) float64 {
				if s >= 180 && s < 192 {
					return 1480
				}
				return 380 + float64(int(s)%70)
			})},
			// 26 failures inside the fault window and 3 outside, as in Load.
			{ID: "failures", Title: "Failed user requests", Unit: "requests", Aggregate: "sum", Points: samples(0, 600, 10, func(s float64) float64 {
				switch s {
				case 180, 190:
					return 13
				case 60, 420, 500:
					return 1
				}
				return 0
			})},
		},
	}
}

// writes counts the prober's writes every second in [from, to): 10 a
// second, of which f says how many failed.
func writes(store string, from, to float64, f func(s float64) int64) *ProberWrites {
	w := &ProberWrites{Store: store, Interval: Duration(time.Second)}
	for s := from; s < to; s++ {
		failed := f(s)
		w.Points = append(w.Points, WritePoint{At: at(s), Acknowledged: 10 - failed, Failed: failed})
	}
	return w
}

// samples samples f every step seconds in [from, to).
func samples(from, to, step float64, f func(float64) float64) []Point {
	var p []Point
	for s := from; s < to; s += step {
		p = append(p, Point{At: at(s), Value: f(s)})
	}
	return p
}

// failingRun is a complete run in which the Redis failover was too slow and
// writes were lost.
func failingRun() *Run {
	r := passingRun()
	r.Profile = "full"
	r.Seed = 7
	r.Requirements = append(r.Requirements[:2:2],
		Requirement{
			ID: "R30", Title: "Redis failover", Threshold: "RTO < 30s", Measured: "RTO 41.2s", Status: Fail,
			Reason: "41.2s is not < 30s", Evidence: []string{ExperimentAnchor("redis-master-kill")},
		},
		Requirement{
			ID: "no-data-loss", Title: "No acknowledged write lost", Threshold: "0 lost writes", Measured: "12 lost (redis)", Status: Fail,
			Reason: "asynchronous replication lost 12 acknowledged writes", Evidence: []string{ExperimentAnchor("redis-master-kill")},
			Values: []Value{Number("lost writes", 12)},
		},
	)
	r.Experiments = append(r.Experiments, Experiment{
		Name: "redis-master-kill", Title: "Kill the Redis master", Requirements: []string{"R26", "R30", "no-data-loss"},
		Fault: "PodChaos pod-kill", Target: "pod jewelry-shop/redis-1 (master per Sentinel)",
		InjectedAt: at(300), FirstError: at(300.1), RecoveredAt: at(341.2),
		RTO: Dur(41200 * time.Millisecond), Leader: &Leader{Old: "redis-1", New: "redis-2", Path: "failover"},
		Errors: &Count{Requests: 3900, Failures: 410},
		// Every 100 ms: acknowledged until 300.0, failed from 300.1 to
		// 341.1, acknowledged again from 341.2.
		ProberWrites: writes("redis", 270, 372, func(s float64) int64 {
			switch {
			case s == 300:
				return 9
			case s > 300 && s < 341:
				return 10
			case s == 341:
				return 2
			}
			return 0
		}),
		LostWrites: seqs(3001, 3002, 3003, 3004, 3005, 3006, 3007, 3008, 3009, 3010, 3011, 3012), Duplicates: seqs(),
		Timeline: []Event{
			{At: at(300), Source: "chaos", What: "AllInjected"},
			{At: at(300.1), Source: "prober", What: "first failed write | READONLY"},
			{At: at(335), Source: "kubernetes", What: "+switch-master mymaster redis-1 redis-2"},
			{At: at(341.2), Source: "prober", What: "first acknowledged write of a sustained run"},
		},
		DependsOn:   []Setting{{Name: "sentinel down-after-milliseconds", Value: "30000", Why: "Sentinel waits this long before it calls the master down; the default is too slow for < 30 s"}},
		NotMeasured: map[string]string{"steady_at": "the readiness watch ended before redis-1 was Ready again"},
	})
	r.FaultWindows = append(r.FaultWindows, FaultWindow{Experiment: "redis-master-kill", Start: at(300), End: at(341.2)})
	r.Availability = append(r.Availability,
		Availability{Scope: "whole run", Source: "prober redis", Count: Count{Requests: 6000, Failures: 411}},
		Availability{Scope: "redis-master-kill", Source: "prober redis", Count: Count{Requests: 412, Failures: 411}},
	)
	// The load saw the Redis fault too: 410 failed requests inside it.
	for i, p := range r.Charts[2].Points {
		if s := p.At.Sub(t0).Seconds(); s >= 300 && s < 341 {
			r.Charts[2].Points[i].Value = 82
		}
	}
	l := r.Load
	l.Endpoints[0].Failures, l.Endpoints[0].FailuresByClass["5xx"] = 370, 365
	l.Endpoints[1].Failures, l.Endpoints[1].FailuresByClass["5xx"] = 69, 69
	l.Overall.Failures, l.Overall.FailuresByClass["5xx"] = 439, 434
	l.InsideFaults, l.OutsideFaults = Count{Requests: 5000, Failures: 436}, Count{Requests: 31000, Failures: 3}
	r.Availability[0].Failures = 439
	r.Autoscaling.Stalled = ""
	return r
}

// interruptedRun is a run cancelled during an experiment: what it reached
// is measured, the rest is not run.
func interruptedRun() *Run {
	return &Run{
		Title:       "jewelry-shop lab validation",
		Profile:     "quick",
		Seed:        42,
		Started:     t0,
		Finished:    at(250),
		Progress:    Progress{Reached: "experiment pg-primary-kill", Error: "interrupted by the user (SIGINT); every experiment created was removed"},
		Environment: map[string]string{"k3d": "v5.9.0", "k3s": "v1.33.6-k3s1"},
		Requirements: []Requirement{
			{ID: "R25", Title: "100 concurrent users", Threshold: "p95 < 2s, error rate outside faults < 1 %", Measured: "p95 398 ms, error rate 0.01 %", Status: Pass, Evidence: []string{AnchorLoad}},
			{
				ID: "R29", Title: "PostgreSQL failover", Threshold: "RTO < 30s", Status: NotMeasured,
				Reason: "recovery not confirmed: successes from 9.1s after the injection, but the data ends before the sustain period of 5s", Evidence: []string{ExperimentAnchor("pg-primary-kill")},
			},
			{ID: "R30", Title: "Redis failover", Threshold: "RTO < 30s", Status: NotRun, Reason: "the run was interrupted before this experiment"},
			{
				ID: "R34", Title: "Resource exhaustion", Threshold: "availability >= 99 % under CPU stress, HPA reacts", Status: NotMeasured,
				Reason: "StressChaos was injected but web CPU usage did not rise: the stress did not really run",
			},
		},
		Load: &LoadSummary{
			Scenario: "shop", Model: "closed", Users: 100, Duration: Duration(250 * time.Second),
			Endpoints:     []Endpoint{{Name: "browse catalogue", Count: Count{Requests: 21000, Failures: 2}, FailuresByClass: map[string]int64{"reset": 2}, P50MS: 40, P95MS: 398, P99MS: 870, RPS: 84}},
			Overall:       Endpoint{Name: "all", Count: Count{Requests: 21000, Failures: 2}, FailuresByClass: map[string]int64{"reset": 2}, P50MS: 40, P95MS: 398, P99MS: 870, RPS: 84},
			OutsideFaults: Count{Requests: 21000, Failures: 2},
			Warnings:      []string{"the run was cancelled: 37 requests in flight were aborted and are not in the figures"},
		},
		Availability: []Availability{
			{Scope: "whole run", Source: "load", Count: Count{Requests: 21000, Failures: 2}},
			{Scope: "pg-primary-kill", Source: "prober postgres", NotMeasured: "the prober's timeline could not be read: the run was interrupted"},
		},
		Autoscaling: &Autoscaling{
			HPA: "jewelry-shop/web", Min: 3, Max: 10, Peak: i32(4), PeakAt: at(150),
			Timeline:    []ReplicaPoint{{At: t0, Replicas: 3}, {At: at(150), Replicas: 4}},
			NotMeasured: map[string]string{"load_stopped_at": "the load was cancelled", "reached_min_at": "the run ended under load", "scale_down": "the run ended under load"},
		},
		Experiments: []Experiment{
			{
				Name: "pg-primary-kill", Title: "Kill the PostgreSQL primary", Requirements: []string{"R26", "R29"}, Fault: "PodChaos pod-failure for 40s",
				InjectedAt: at(240), FirstError: at(240.2),
				Timeline: []Event{{At: at(240), Source: "chaos", What: "AllInjected"}, {At: at(249.1), Source: "prober", What: "write acknowledged"}, {At: at(250), Source: "lab", What: "interrupted"}},
				NotMeasured: map[string]string{
					"recovered_at":  "recovery not confirmed before the run was interrupted",
					"rto":           "recovery not confirmed: successes from 9.1s after the injection, but the data ends before the sustain period of 5s",
					"steady_at":     "the run was interrupted",
					"errors":        "the load was cancelled before the window closed",
					"lost_writes":   "the prober's verification did not run",
					"prober_writes": "the prober's timeline could not be read: the run was interrupted",
					"leader":        "the run was interrupted before the new primary was read",
				},
			},
			{Name: "redis-master-kill", Title: "Kill the Redis master", Requirements: []string{"R26", "R30"}, NotRunReason: "the run was interrupted before this experiment"},
		},
		FaultWindows: []FaultWindow{{Experiment: "pg-primary-kill", Start: at(240), End: at(250)}},
		NotRun: []Skipped{
			{Name: "redis-master-kill", Reason: "the run was interrupted before this experiment"},
			{Name: "scale-down", Reason: "the run was interrupted under load"},
		},
	}
}
