package lab

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jewelry-shop/lab/chaosmesh"
	"github.com/jewelry-shop/lab/lab/judge"
	"github.com/jewelry-shop/lab/reports"
)

// fakeNodeFailer stops a node for the time asked; one Deployment pod and one
// StatefulSet pod ran on it, and the Deployment's is Ready elsewhere
// movedAfter the stop.
type fakeNodeFailer struct{ stopped, started *time.Time }

const movedAfter = 800 * time.Millisecond

func (f fakeNodeFailer) FailNode(ctx context.Context, _ chaosmesh.Experiment, down time.Duration) (*judge.NodeFailure, error) {
	nf := &judge.NodeFailure{Node: "k3d-lab-agent-1", StoppedAt: time.Now()}
	select {
	case <-ctx.Done():
	case <-time.After(down):
	}
	nf.StartedAt, nf.ReadyAgainAt = time.Now(), time.Now()
	*f.stopped, *f.started = nf.StoppedAt, nf.StartedAt
	nf.Pods = []judge.PodMove{
		{Pod: "web-abc-1", Owner: "ReplicaSet/web-abc", Replacement: "web-abc-2", ReplacementNode: "k3d-lab-agent-0", ReadyAt: nf.StoppedAt.Add(movedAfter)},
		{Pod: "pg-0", Owner: "StatefulSet/pg"},
	}
	return nf, nil
}

func TestRunnerNodeFailure(t *testing.T) {
	t.Parallel()
	w := newWorld()
	pl := shortPlan(t, chaosmesh.NodeFailure)
	var stopped, started time.Time
	r := NewRunner(RunnerConfig{
		Load: fakeLoad{w: w, users: pl.Profile.Users}, Prober: fakeProber{w: w}, Chaos: fakeChaos{w: w},
		Nodes: fakeNodeFailer{&stopped, &started}, RunID: "test-run", Scale: testScale, Sustain: 500 * time.Millisecond, Unavailable: testUnavailable(),
	})
	run, err := r.Run(t.Context(), pl)
	if err != nil {
		t.Fatal(err)
	}
	checkRenders(t, run)
	q := requirementRows(run)["R28"]
	t.Logf("R28: %s: %s (%s)", q.Status, q.Measured, q.Reason)
	if q.Status != reports.Pass || !strings.Contains(q.Measured, "1 pods Ready elsewhere within "+movedAfter.String()) {
		t.Errorf("R28 = %+v, want a pass: the Deployment pod moved within %s", q, movedAfter)
	}
	e := experimentNamed(run, chaosmesh.NodeFailure)
	if !e.InjectedAt.Equal(stopped) || len(run.FaultWindows) != 1 || run.FaultWindows[0].End.Before(started) {
		t.Errorf("node failure injected %s, windows %v; want the stop at %s and a window to the start at %s", e.InjectedAt, run.FaultWindows, stopped, started)
	}
	if len(w.applied) != 0 {
		t.Errorf("chaos applied %v for a node failure", w.applied)
	}
}

// fakeLeaders answers a different primary after each PostgreSQL fault and
// the same master after the Redis one.
type fakeLeaders struct {
	mu    sync.Mutex
	asked map[string]int
}

func (f *fakeLeaders) Leader(_ context.Context, exp string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked[exp]++
	switch exp {
	case chaosmesh.PostgresPrimaryFailure, chaosmesh.PostgresPrimaryIsolation:
		return fmt.Sprintf("jewelry-shop-db-%d", f.asked[exp]-1), nil // db-0 before, db-1 after
	case chaosmesh.RedisMasterFailure:
		return "jewelry-shop-redis-2", nil
	}
	return "", nil
}

// TestRunnerRecordsLeaders: the primary and master are asked before each
// store fault and once it settled; the report names the path each took,
// from those answers and how the fault takes the leader down, and its
// "depends on" rows are the settings of that path, from the runner's
// settings: a stopped primary is a switchover that never exercises
// Patroni's ttl, a cut-off one a failover after ttl, a Redis master that
// came back a restart in place.
func TestRunnerRecordsLeaders(t *testing.T) {
	t.Parallel()
	w := newWorld()
	p := shortProfile(chaosmesh.WebPodKill, chaosmesh.PostgresPrimaryFailure, chaosmesh.PostgresPrimaryIsolation, chaosmesh.RedisMasterFailure)
	p.Load = 240 * time.Second
	tm := chaosmesh.DefaultTiming()
	tm.PrimaryDown = 20 * time.Second
	pl, err := NewPlan(p, chaosmesh.Catalogue(chartTargets(StackNamespace, StackRelease), tm))
	if err != nil {
		t.Fatal(err)
	}
	r, _, _ := newTestRunner(w, pl.Profile.Users, false)
	fl := &fakeLeaders{asked: map[string]int{}}
	r.cfg.Leaders = fl
	r.cfg.Settings = &judge.Settings{
		Source:     "the test's",
		PatroniTTL: 22 * time.Second, PatroniLoopWait: 2 * time.Second, PatroniRetryTimeout: 10 * time.Second, PatroniSynchronousMode: true,
		SentinelDownAfter: 5 * time.Second, SentinelFailoverTimeout: 30 * time.Second,
	}
	run, err := r.Run(t.Context(), pl)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	tests := []struct {
		exp  string
		want reports.Leader
		rows []string
	}{
		{
			chaosmesh.PostgresPrimaryFailure,
			reports.Leader{
				Old: "jewelry-shop-db-0", New: "jewelry-shop-db-1",
				Path: "switchover: the stopped primary released the leader key on SIGTERM and a replica took over; Patroni's ttl was not exercised",
			},
			[]string{"postgresql.patroni.loop_wait=2s", "postgresql.patroni.synchronous_mode=true"},
		},
		{
			chaosmesh.PostgresPrimaryIsolation,
			reports.Leader{
				Old: "jewelry-shop-db-0", New: "jewelry-shop-db-1",
				Path: "failover: the cut-off primary's leader key expired after Patroni's ttl and a replica took over",
			},
			[]string{"postgresql.patroni.ttl=22s", "postgresql.patroni.loop_wait=2s", "postgresql.patroni.retry_timeout=10s", "postgresql.patroni.synchronous_mode=true", "fault held=1s"},
		},
		{
			chaosmesh.RedisMasterFailure,
			reports.Leader{
				Old: "jewelry-shop-redis-2", New: "jewelry-shop-redis-2",
				Path: "restart in place: the old master answered again before Sentinel failed over, no failover; the RTO is a restart time",
			},
			[]string{"redis.sentinel.downAfterMilliseconds=5000 (5s)", "fault held=1.5s"},
		},
	}
	for _, tt := range tests {
		e := experimentNamed(run, tt.exp)
		if e == nil || e.Leader == nil {
			t.Fatalf("%s: no leader in %+v", tt.exp, e)
		}
		if diff := cmp.Diff(tt.want, *e.Leader); diff != "" {
			t.Errorf("%s leader (-want +got):\n%s", tt.exp, diff)
		}
		var rows []string
		for _, s := range e.DependsOn {
			rows = append(rows, s.Name+"="+s.Value)
		}
		if diff := cmp.Diff(tt.rows, rows); diff != "" {
			t.Errorf("%s depends on (-want +got):\n%s", tt.exp, diff)
		}
	}
	if e := experimentNamed(run, chaosmesh.WebPodKill); e == nil || e.Leader != nil || e.DependsOn != nil {
		t.Errorf("web pod kill has a leader or settings: %+v", e)
	}
	checkRenders(t, run)
}

// fakeMetrics answers usages in call order: before and during each stress.
type fakeMetrics struct {
	mu     sync.Mutex
	usages []judge.Usage
	calls  int
}

func (f *fakeMetrics) Usage(context.Context, string, map[string]string) (judge.Usage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls >= len(f.usages) {
		return judge.Usage{}, errors.New("metrics API not available")
	}
	f.calls++
	return f.usages[f.calls-1], nil
}

// webUsage is the usage of the web pods web-1… with these CPU (milli) and
// memory (MiB) figures, limited to 500m and 256 MiB each.
func webUsage(cpu []int64, memMiB ...int64) judge.Usage {
	var u judge.Usage
	for i := range max(len(cpu), len(memMiB)) {
		p := judge.PodUsage{Pod: fmt.Sprintf("web-%d", i+1), CPULimitMilli: 500, MemoryLimitBytes: 256 << 20}
		if i < len(cpu) {
			p.CPUMilli = cpu[i]
		}
		if i < len(memMiB) {
			p.MemoryBytes = memMiB[i] << 20
		}
		u.PerPod = append(u.PerPod, p)
		u.Pods++
		u.CPUMilli += p.CPUMilli
		u.MemoryBytes += p.MemoryBytes
	}
	return u
}

// TestRunnerStress: a stress is only reported on when the same pods' usage
// shows it; then R34 needs the error rate inside its window and an HPA
// reaction. Pods that the HPA added between the reads are no evidence.
func TestRunnerStress(t *testing.T) {
	t.Parallel()
	cpuRose := []judge.Usage{webUsage([]int64{100, 100, 100}), webUsage([]int64{300, 300, 300})}
	tests := []struct {
		name   string
		usages []judge.Usage // CPU before, during; memory before, during
		want   reports.Status
		reason string
	}{
		{"memory stress did not show", append(cpuRose, webUsage(nil, 130, 130, 140), webUsage(nil, 135, 140, 140)), reports.NotMeasured, "the stress did not show in the usage of web-1, web-2, web-3"},
		{"HPA scale-out is no memory stress", append(cpuRose, webUsage(nil, 130, 130, 140), webUsage(nil, 135, 140, 140, 150, 150, 150)), reports.NotMeasured, "the stress did not show in the usage of web-1, web-2, web-3"},
		{"HPA did not react to memory", append(cpuRose, webUsage(nil, 60, 60, 60), webUsage(nil, 150, 160, 170)), reports.Fail, "the HPA did not react"},
		{"no metrics API", nil, reports.NotMeasured, "metrics API not available"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld()
			pl := shortPlan(t, chaosmesh.WebCPUStress, chaosmesh.WebMemoryStress)
			r, _, _ := newTestRunner(w, pl.Profile.Users, true)
			r.cfg.Metrics = &fakeMetrics{usages: tt.usages}
			run, err := r.Run(t.Context(), pl)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			q := requirementRows(run)["R34"]
			if q.Status != tt.want || !strings.Contains(q.Reason, tt.reason) {
				t.Errorf("R34 = %s (%s), want %s with a reason containing %q", q.Status, q.Reason, tt.want, tt.reason)
			}
			if tt.usages != nil && !strings.Contains(q.Measured, "web-cpu-stress: CPU 300m → 900m over the 3 pods read before and during") || (tt.usages != nil && !strings.Contains(q.Measured, "HPA 5 → 7 replicas")) {
				t.Errorf("R34 measured %q lacks the CPU stress figures", q.Measured)
			}
			checkRenders(t, run)
		})
	}
}

// TestRunnerNotRunExperiment: an experiment the cluster cannot have (a
// PostgreSQL no operator manages has no primary pod) is reported not run
// with the reason, and nothing is applied for it; the others run.
func TestRunnerNotRunExperiment(t *testing.T) {
	t.Parallel()
	w := newWorld()
	pl := shortPlan(t, chaosmesh.PostgresPrimaryFailure, chaosmesh.RedisMasterFailure)
	r, _, _ := newTestRunner(w, pl.Profile.Users, false)
	r.cfg.NotRun = map[string]string{chaosmesh.PostgresPrimaryFailure: "no PostgreSQL pod to target: a stand-in"}
	run, err := r.Run(t.Context(), pl)
	if err != nil {
		t.Fatal(err)
	}
	checkRenders(t, run)
	if q := requirementRows(run)["R29"]; q.Status != reports.NotRun || !strings.Contains(q.Reason, "a stand-in") {
		t.Errorf("R29 = %+v, want not run with the reason", q)
	}
	if diff := cmp.Diff([]string{chaosmesh.RedisMasterFailure}, w.applied); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
}

// truncatingChaos reports every injection with Chaos Mesh's record time
// truncated to the second, as its status keeps it.
type truncatingChaos struct{ fakeChaos }

func (f truncatingChaos) WaitInjected(ctx context.Context, a *chaosmesh.Applied, timeout time.Duration) (chaosmesh.Injection, error) {
	inj, err := f.fakeChaos.WaitInjected(ctx, a, timeout)
	inj.At, inj.FromRecords = inj.At.Truncate(time.Second).Add(-time.Second), true
	return inj, err
}

// TestRunnerInjectionNotBeforeApplied: a record time before the experiment
// was applied (Chaos Mesh keeps whole seconds) is not taken as the
// injection; the application time is, and the timeline says why.
func TestRunnerInjectionNotBeforeApplied(t *testing.T) {
	t.Parallel()
	w := newWorld()
	pl := shortPlan(t, chaosmesh.WebPodKill)
	r, _, _ := newTestRunner(w, pl.Profile.Users, false)
	r.cfg.Chaos = truncatingChaos{fakeChaos{w: w}}
	run, err := r.Run(t.Context(), pl)
	if err != nil {
		t.Fatal(err)
	}
	e := experimentNamed(run, chaosmesh.WebPodKill)
	var applied time.Time
	for _, ev := range e.Timeline {
		if ev.What == "experiment applied" {
			applied = ev.At
		}
	}
	if applied.IsZero() || !e.InjectedAt.Equal(applied) {
		t.Errorf("injected at %s, applied at %s; want the application time", e.InjectedAt, applied)
	}
	if md := checkRenders(t, run); !strings.Contains(md, "before lab applied it") {
		t.Errorf("the report does not say why the record time was not taken:\n%s", md)
	}
}
