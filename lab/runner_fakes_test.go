package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jewelry-shop/lab/chaosmesh"
	"github.com/jewelry-shop/lab/lab/judge"
	"github.com/jewelry-shop/lab/lab/measure"
	"github.com/jewelry-shop/lab/load"
	"github.com/jewelry-shop/lab/reports"
	"github.com/jewelry-shop/lab/shop/probeapi"
)

// testScale runs shortProfile's plan 20 times faster than written: load 9s,
// experiments at 1s, 3s and 5s of it, the PostgreSQL and Redis faults held
// 1s.
const testScale = 0.05

// shortProfile is a plan that passes NewPlan's budget checks and, scaled by
// testScale, runs in about 10 seconds.
func shortProfile(experiments ...string) Profile {
	return Profile{
		Name: "test", Description: "short test profile", Budget: 10 * time.Minute,
		Users: 10, SpawnRate: 10,
		Load: 180 * time.Second, Baseline: 20 * time.Second,
		Experiments: experiments, Spacing: 40 * time.Second,
		ScaleDownWatch: 20 * time.Second,
		Thresholds:     DefaultThresholds(),
	}
}

// shortPlan lays out shortProfile with a 20s primary and master failure,
// node failure and stress (1s scaled).
func shortPlan(t *testing.T, experiments ...string) *Plan {
	t.Helper()
	tm := chaosmesh.DefaultTiming()
	tm.PrimaryDown, tm.MasterDown, tm.NodeDown, tm.Stress = 20*time.Second, 20*time.Second, 20*time.Second, 20*time.Second
	pl, err := NewPlan(shortProfile(experiments...), chaosmesh.Catalogue(chartTargets(StackNamespace, StackRelease), tm))
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// outage is a period relative to an injection.
type outage struct{ from, to time.Duration }

// world is what the fakes share: the faults the fake chaos engine
// injected, from which the fake load and the fake prober derive the
// failures they report, as a real service would fail under the fault.
type world struct {
	mu sync.Mutex
	t0 time.Time
	// injected maps an experiment to its injection time.
	injected map[string]time.Time
	applied  []string
	undone   []string
	// notInjected lists experiments whose injection is never confirmed.
	notInjected map[string]bool
	// onInjected is called after an injection is confirmed.
	onInjected func(name string)
	// loadEnd is when the fake load stopped sending.
	loadEnd time.Time
}

func newWorld() *world {
	return &world{t0: time.Now(), injected: map[string]time.Time{}, notInjected: map[string]bool{}}
}

// User requests fail during these periods after each injection.
var loadOutages = map[string]outage{
	chaosmesh.WebPodKill:             {0, 400 * time.Millisecond},
	chaosmesh.PostgresPrimaryFailure: {200 * time.Millisecond, time.Second},
	chaosmesh.RedisMasterFailure:     {200 * time.Millisecond, time.Second},
}

// Prober writes fail during these periods after the store's experiment.
var storeOutages = map[string]struct {
	exp string
	outage
}{
	probeapi.StorePostgres: {chaosmesh.PostgresPrimaryFailure, outage{200 * time.Millisecond, 900 * time.Millisecond}},
	probeapi.StoreRedis:    {chaosmesh.RedisMasterFailure, outage{300 * time.Millisecond, 1500 * time.Millisecond}},
}

func (w *world) injectedAt(name string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.injected[name]
	return t, ok
}

// fakeChaos records every apply and undo and confirms the injection at the
// time it is asked.
type fakeChaos struct{ w *world }

func (f fakeChaos) Apply(_ context.Context, exp chaosmesh.Experiment, runID string) (*chaosmesh.Applied, func(context.Context) error, error) {
	if runID == "" {
		return nil, nil, errors.New("no run id")
	}
	f.w.mu.Lock()
	f.w.applied = append(f.w.applied, exp.Name)
	f.w.mu.Unlock()
	undo := func(ctx context.Context) error {
		if ctx.Err() != nil {
			return fmt.Errorf("undo with a dead context: %w", ctx.Err())
		}
		f.w.mu.Lock()
		defer f.w.mu.Unlock()
		f.w.undone = append(f.w.undone, exp.Name)
		return nil
	}
	return &chaosmesh.Applied{Experiment: exp, CreatedAt: time.Now()}, undo, nil
}

func (f fakeChaos) WaitInjected(ctx context.Context, a *chaosmesh.Applied, timeout time.Duration) (chaosmesh.Injection, error) {
	name := a.Experiment.Name
	if f.w.notInjected[name] {
		return chaosmesh.Injection{}, &chaosmesh.NotInjectedError{Experiment: name, Timeout: timeout, Reason: "no status conditions at all"}
	}
	at := time.Now()
	f.w.mu.Lock()
	f.w.injected[name] = at
	hook := f.w.onInjected
	f.w.mu.Unlock()
	if hook != nil {
		hook(name)
	}
	return chaosmesh.Injection{Injected: true, At: at}, ctx.Err()
}

// fakeLoad reports a series of 200 ms points, 100 requests each; a point
// overlapping a load outage has 2 failures, the very first point 1 (a
// failure outside every fault window).
type fakeLoad struct {
	w     *world
	users int
}

const (
	fakeInterval      = 200 * time.Millisecond
	fakePerPoint      = 100
	fakeOutageFailure = 2
)

func (f fakeLoad) RunLoad(ctx context.Context, d time.Duration) (*load.Result, error) {
	start := time.Now()
	stop := "duration"
	select {
	case <-ctx.Done():
		stop = "cancelled"
	case <-time.After(d):
	}
	end := time.Now()
	f.w.mu.Lock()
	f.w.loadEnd = end
	f.w.mu.Unlock()
	res := &load.Result{Scenario: "fake", Model: load.Closed, Start: start, End: end, Duration: end.Sub(start), StopReason: stop}
	res.Series.Interval = fakeInterval
	res.Generator.MaxUsers = f.users
	for at := start; at.Before(end); at = at.Add(fakeInterval) {
		p := load.Point{Time: at, Requests: fakePerPoint, RPS: fakePerPoint / fakeInterval.Seconds(), P95: 120 * time.Millisecond}
		if at.Equal(start) {
			p.Failures = 1
		}
		if f.failing(at) != "" {
			p.Failures = fakeOutageFailure
		}
		res.Series.Points = append(res.Series.Points, p)
		res.Overall.Requests += p.Requests
		res.Overall.Failures += p.Failures
	}
	res.Overall.Name = "all"
	res.Overall.Latency.P95 = 120 * time.Millisecond
	res.Endpoints = []load.Stats{res.Overall}
	res.Endpoints[0].Name = "list products"
	return res, nil
}

// failing returns the experiment whose load outage the point at overlaps.
func (f fakeLoad) failing(at time.Time) string {
	for name, o := range loadOutages {
		inj, ok := f.w.injectedAt(name)
		if ok && at.Before(inj.Add(o.to)) && at.Add(fakeInterval).After(inj.Add(o.from)) {
			return name
		}
	}
	return ""
}

// failuresFor counts the failures the fake load reported for name.
func failuresFor(res *reports.Run, f fakeLoad, name string) int64 {
	var n int64
	for _, p := range res.Charts[2].Points {
		if f.failing(p.At) == name {
			n += int64(p.Value)
		}
	}
	return n
}

// fakeProber writes every 100 ms from t0; a write sent during its store's
// outage fails, every other is acknowledged 5 ms later. Redis loses two
// acknowledged writes.
type fakeProber struct{ w *world }

const fakeProbeInterval = 100 * time.Millisecond

func (f fakeProber) Timeline(_ context.Context, since int64) (probeapi.Timeline, error) {
	now := time.Now()
	tl := probeapi.Timeline{Run: "fake", IntervalMS: fakeProbeInterval.Milliseconds(), Started: f.w.t0, Now: now, Stores: map[string]probeapi.StoreTimeline{}}
	for store, so := range storeOutages {
		inj, injected := f.w.injectedAt(so.exp)
		st := probeapi.StoreTimeline{}
		seq := int64(0)
		for sent := f.w.t0; sent.Before(now); sent = sent.Add(fakeProbeInterval) {
			seq++
			s := probeapi.Sample{Seq: seq, Sent: sent}
			if injected && !sent.Before(inj.Add(so.from)) && sent.Before(inj.Add(so.to)) {
				s.Error = "connection refused"
				st.Failed++
			} else {
				s.Acked = sent.Add(5 * time.Millisecond)
				st.Acked++
			}
			st.Attempted++
			st.LastSeq = seq
			if seq > since {
				st.Samples = append(st.Samples, s)
			}
		}
		tl.Stores[store] = st
	}
	return tl, nil
}

// recoveredAt is the acknowledgement of the first write sent after the
// store's outage: the recovery the prober's timeline shows.
func (f fakeProber) recoveredAt(store string) (time.Time, time.Time) {
	so := storeOutages[store]
	inj, _ := f.w.injectedAt(so.exp)
	end := inj.Add(so.to)
	k := (end.Sub(f.w.t0) + fakeProbeInterval - 1) / fakeProbeInterval
	return inj, f.w.t0.Add(k * fakeProbeInterval).Add(5 * time.Millisecond)
}

func (f fakeProber) Verify(context.Context) (probeapi.Verification, error) {
	return probeapi.Verification{Run: "fake", Checked: time.Now(), Stores: map[string]probeapi.StoreVerification{
		probeapi.StorePostgres: {Acked: 100, Found: 100, Missing: []int64{}, Duplicates: []int64{}},
		probeapi.StoreRedis:    {Acked: 100, Found: 98, Missing: f.lostRedis(), Duplicates: []int64{}},
	}}, nil
}

// lostRedis are the first two Redis writes sent after the master was
// killed, acknowledged before the outage showed and never replicated: the
// asynchronous-replication loss the no-data-loss row must catch.
func (f fakeProber) lostRedis() []int64 {
	inj, ok := f.w.injectedAt(chaosmesh.RedisMasterFailure)
	if !ok {
		return []int64{}
	}
	d := inj.Sub(f.w.t0)
	n := int64((d + fakeProbeInterval - 1) / fakeProbeInterval) // the first write sent at or after the kill is seq n+1
	return []int64{n + 1, n + 2}
}

// fakeReplicas is the web Deployment (3 replicas) and its HPA (3..10) as
// the fakes make them behave: a killed web pod is Ready again after
// podBack; the HPA is at 5 replicas from 1s after t0 until hpaBack after
// the load stopped.
type fakeReplicas struct{ w *world }

const (
	podBack = 700 * time.Millisecond
	hpaBack = 300 * time.Millisecond
)

func (f fakeReplicas) Observe(ctx context.Context) (judge.Replicas, error) {
	<-ctx.Done()
	f.w.mu.Lock()
	defer f.w.mu.Unlock()
	r := judge.Replicas{
		Workload: "Deployment/web", HPA: "jewelry-shop/web", Min: 3, Max: 10,
		Ready:       []measure.ReplicaPoint{{At: f.w.t0, Replicas: 3}},
		Desired:     []measure.ReplicaPoint{{At: f.w.t0, Replicas: 3}},
		HPAReplicas: []measure.ReplicaPoint{{At: f.w.t0, Replicas: 3}, {At: f.w.t0.Add(time.Second), Replicas: 5}},
	}
	if inj, ok := f.w.injected[chaosmesh.WebPodKill]; ok {
		r.Ready = append(r.Ready, measure.ReplicaPoint{At: inj.Add(100 * time.Millisecond), Replicas: 2}, measure.ReplicaPoint{At: inj.Add(podBack), Replicas: 3})
	}
	if inj, ok := f.w.injected[chaosmesh.WebCPUStress]; ok {
		r.HPAReplicas = append(r.HPAReplicas, measure.ReplicaPoint{At: inj.Add(200 * time.Millisecond), Replicas: 7})
	}
	if !f.w.loadEnd.IsZero() {
		r.HPAReplicas = append(r.HPAReplicas, measure.ReplicaPoint{At: f.w.loadEnd.Add(hpaBack), Replicas: 3})
	}
	return r, nil
}

// testUnavailable explains the capabilities the runner tests leave out.
func testUnavailable() map[Capability]string {
	m := map[Capability]string{}
	for _, c := range []Capability{CapProber, CapChaos, CapNodes, CapReplicas, CapLeaders, CapMetrics, CapHealth, CapHealthPoll} {
		m[c] = "no " + string(c) + " in this test"
	}
	return m
}

func newTestRunner(w *world, users int, observe bool) (*Runner, fakeLoad, fakeProber) {
	fl, fp := fakeLoad{w: w, users: users}, fakeProber{w: w}
	cfg := RunnerConfig{
		Load: fl, Prober: fp, Chaos: fakeChaos{w: w}, Unavailable: testUnavailable(),
		RunID: "test-run", Seed: 7, Scale: testScale, Sustain: 500 * time.Millisecond,
	}
	if observe {
		cfg.Replicas = fakeReplicas{w: w}
	}
	return NewRunner(cfg), fl, fp
}

func requirementRows(run *reports.Run) map[string]reports.Requirement {
	m := map[string]reports.Requirement{}
	for _, q := range run.Requirements {
		m[q.ID] = q
	}
	return m
}

func experimentNamed(run *reports.Run, name string) *reports.Experiment {
	for i := range run.Experiments {
		if run.Experiments[i].Name == name {
			return &run.Experiments[i]
		}
	}
	return nil
}

// checkRenders writes the report in every format and reads the JSON back,
// which checks that its verdict follows from its rows.
func checkRenders(t *testing.T, run *reports.Run) string {
	t.Helper()
	var md, js, ju bytes.Buffer
	if err := reports.WriteMarkdown(&md, run); err != nil {
		t.Fatal(err)
	}
	if err := reports.WriteJSON(&js, run); err != nil {
		t.Fatal(err)
	}
	if err := reports.WriteJUnit(&ju, run); err != nil {
		t.Fatal(err)
	}
	back, err := reports.ReadJSON(&js)
	if err != nil {
		t.Fatalf("read back the report: %v", err)
	}
	if back.ExitCode() != run.ExitCode() {
		t.Errorf("exit code read back %d, want %d", back.ExitCode(), run.ExitCode())
	}
	return md.String()
}
