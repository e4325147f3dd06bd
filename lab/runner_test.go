package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/jewelry-shop/lab/chaosmesh"
	"github.com/jewelry-shop/lab/lab/measure"
	"github.com/jewelry-shop/lab/load"
	"github.com/jewelry-shop/lab/reports"
	"github.com/jewelry-shop/lab/shop/probeapi"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// testScale runs shortProfile's plan 20 times faster than written: load 8s,
// experiments at 1s, 3s and 5s of it, the PostgreSQL fault held 1s.
const testScale = 0.05

// shortProfile is a plan that passes NewPlan's budget checks and, scaled by
// testScale, runs in about 9 seconds.
func shortProfile(experiments ...string) Profile {
	return Profile{
		Name: "test", Description: "short test profile", Budget: 10 * time.Minute,
		Users: 10, SpawnRate: 10,
		Load: 160 * time.Second, Baseline: 20 * time.Second,
		Experiments: experiments, Spacing: 40 * time.Second,
		ScaleDownWatch: 20 * time.Second,
		Thresholds:     DefaultThresholds(),
	}
}

// shortPlan lays out shortProfile with a 20s primary failure, node failure
// and stress (1s scaled).
func shortPlan(t *testing.T, experiments ...string) *Plan {
	t.Helper()
	tm := chaosmesh.DefaultTiming()
	tm.PrimaryDown, tm.NodeDown, tm.Stress = 20*time.Second, 20*time.Second, 20*time.Second
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

func (f fakeProber) Timeline(context.Context) (probeapi.Timeline, error) {
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
			st.Samples = append(st.Samples, s)
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

func (f fakeReplicas) Observe(ctx context.Context) (Replicas, error) {
	<-ctx.Done()
	f.w.mu.Lock()
	defer f.w.mu.Unlock()
	r := Replicas{
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

func TestRunnerRunsPlanToReport(t *testing.T) {
	t.Parallel()
	w := newWorld()
	pl := shortPlan(t, chaosmesh.WebPodKill, chaosmesh.PostgresPrimaryFailure, chaosmesh.RedisMasterFailure)
	r, fl, fp := newTestRunner(w, pl.Profile.Users, true)
	run, err := r.Run(t.Context(), pl)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	md := checkRenders(t, run)
	t.Logf("report:\n%s", md)

	if !run.Progress.Completed || run.Progress.Reached != StepReport {
		t.Errorf("progress = %+v, want completed up to %q", run.Progress, StepReport)
	}
	if diff := cmp.Diff(w.applied, w.undone); diff != "" {
		t.Errorf("undone experiments differ from applied (-applied +undone):\n%s", diff)
	}
	if want := pl.Profile.Experiments; !slices.Equal(w.applied, want) {
		t.Errorf("applied %v, want %v in plan order", w.applied, want)
	}

	// RTOs from the prober's timeline, as the fake prober wrote it.
	for _, tc := range []struct {
		exp, store, req string
	}{
		{chaosmesh.PostgresPrimaryFailure, probeapi.StorePostgres, "R29"},
		{chaosmesh.RedisMasterFailure, probeapi.StoreRedis, "R30"},
	} {
		t.Run(tc.req, func(t *testing.T) {
			inj, rec := fp.recoveredAt(tc.store)
			e := experimentNamed(run, tc.exp)
			if e == nil || e.RTO == nil {
				t.Fatalf("experiment %s = %+v, want an RTO", tc.exp, e)
			}
			want := rec.Sub(inj)
			t.Logf("%s: injected %s, RTO %s (prober: recovered at +%s)", tc.exp, e.InjectedAt.Format(time.StampMilli), time.Duration(*e.RTO), want)
			if got := time.Duration(*e.RTO); got != want || !e.InjectedAt.Equal(inj) || !e.RecoveredAt.Equal(rec) {
				t.Errorf("RTO %s injected %s recovered %s, want %s, %s, %s", got, e.InjectedAt, e.RecoveredAt, want, inj, rec)
			}
			q := requirementRows(run)[tc.req]
			if q.Status != reports.Pass || !strings.Contains(q.Measured, want.Round(time.Millisecond).String()) {
				t.Errorf("%s = %+v, want a pass measuring RTO %s", tc.req, q, want)
			}
		})
	}

	// Errors inside each fault window: exactly the failures the fake load
	// reported for that fault.
	for _, name := range pl.Profile.Experiments {
		e := experimentNamed(run, name)
		if e.Errors == nil {
			t.Errorf("%s: no error count", name)
			continue
		}
		if want := failuresFor(run, fl, name); e.Errors.Failures != want || want == 0 {
			t.Errorf("%s: %d failures inside its window, want %d (> 0)", name, e.Errors.Failures, want)
		}
	}
	if run.Load == nil || run.Load.OutsideFaults.Failures != 1 {
		t.Errorf("load outside faults = %+v, want the one baseline failure", run.Load)
	}

	got := map[string]reports.Status{}
	for id, q := range requirementRows(run) {
		got[id] = q.Status
		if q.Status != reports.Pass && q.Reason == "" {
			t.Errorf("%s is %s without a reason", id, q.Status)
		}
		if q.Status == reports.Pass && q.Measured == "" {
			t.Errorf("%s passes without a measured value", id)
		}
	}
	want := map[string]reports.Status{
		"R25": reports.Pass, "R26": reports.Pass, "R27": reports.Pass, "R28": reports.NotInProfile,
		"R29": reports.Pass, "R30": reports.Pass, "R31": reports.Pass, "R32": reports.NotInProfile,
		"R33": reports.NotMeasured, "R34": reports.NotInProfile, "R35": reports.Pass, "no-data-loss": reports.Fail,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requirement statuses (-want +got):\n%s", diff)
	}
	q := requirementRows(run)
	for id, reason := range map[string]string{
		"R27": "Ready again after " + podBack.String(), "R35": "back to 3 after " + hpaBack.String(),
		"R28": "not in the profile", "R33": "no health-check inspection in this test", "no-data-loss": "redis: 2 acknowledged writes lost",
	} {
		if !strings.Contains(q[id].Reason, reason) {
			t.Errorf("%s reason %q, want it to say %q", id, q[id].Reason, reason)
		}
	}
	// The lost writes belong to the fault whose horizon they were sent in.
	lostOf := func(name string) []int64 {
		if e := experimentNamed(run, name); e != nil && e.LostWrites != nil {
			return *e.LostWrites
		}
		return nil
	}
	if got := lostOf(chaosmesh.RedisMasterFailure); !slices.Equal(got, fp.lostRedis()) {
		t.Errorf("redis experiment lost writes = %v, want %v", got, fp.lostRedis())
	}
	if got := lostOf(chaosmesh.PostgresPrimaryFailure); got == nil || len(got) != 0 {
		t.Errorf("postgres experiment lost writes = %v, want an empty list", got)
	}
	if run.ExitCode() != 1 {
		t.Errorf("exit code %d, want 1 (a write was lost)", run.ExitCode())
	}
	inj, _ := w.injectedAt(chaosmesh.WebPodKill)
	if e := experimentNamed(run, chaosmesh.WebPodKill); !e.SteadyAt.Equal(inj.Add(podBack)) {
		t.Errorf("web pod kill steady at %s, want %s after the injection at %s", e.SteadyAt, podBack, inj)
	}
	a := run.Autoscaling
	if a == nil || a.Peak == nil || *a.Peak != 5 || a.ScaleDown == nil || time.Duration(*a.ScaleDown) != hpaBack || !a.LoadStoppedAt.Equal(w.loadEnd) {
		t.Errorf("autoscaling = %+v, want a peak of 5 and back to 3 after %s from the load's end at %s", a, hpaBack, w.loadEnd)
	}
}

func TestRunnerInterrupted(t *testing.T) {
	t.Parallel()
	w := newWorld()
	pl := shortPlan(t, chaosmesh.WebPodKill, chaosmesh.PostgresPrimaryFailure, chaosmesh.RedisMasterFailure)
	r, _, _ := newTestRunner(w, pl.Profile.Users, false)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Ctrl-C while the PostgreSQL fault is held.
	w.onInjected = func(name string) {
		if name == chaosmesh.PostgresPrimaryFailure {
			time.AfterFunc(200*time.Millisecond, cancel)
		}
	}
	swept := false
	r.cfg.Sweep = func(ctx context.Context) ([]string, error) {
		swept = ctx.Err() == nil
		return nil, nil
	}
	run, err := r.Run(ctx, pl)
	if !swept {
		t.Error("leftovers not swept with a live context after the interruption")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("run error = %v, want it to say it was cancelled", err)
	}
	checkRenders(t, run)
	if run.Progress.Completed || !strings.Contains(run.Progress.Error, "interrupted") {
		t.Errorf("progress = %+v, want interrupted", run.Progress)
	}
	if want := []string{chaosmesh.WebPodKill, chaosmesh.PostgresPrimaryFailure}; !slices.Equal(w.applied, want) || !slices.Equal(w.undone, want) {
		t.Errorf("applied %v, undone %v; want both %v", w.applied, w.undone, want)
	}
	e := experimentNamed(run, chaosmesh.RedisMasterFailure)
	if e == nil || e.NotRunReason == "" {
		t.Errorf("redis experiment = %+v, want not run", e)
	}
	q := requirementRows(run)
	for _, id := range []string{"R25", "R30", "R31", "R35", "no-data-loss"} {
		if q[id].Status != reports.NotRun {
			t.Errorf("%s = %+v, want not run", id, q[id])
		}
	}
	if q["R27"].Status != reports.NotMeasured || !strings.Contains(q["R27"].Reason, "no replica observer in this test") {
		t.Errorf("R27 = %+v, want not measured: no replica observer", q["R27"])
	}
	var skipped []string
	for _, s := range run.NotRun {
		skipped = append(skipped, s.Name)
	}
	t.Logf("not run: %v", skipped)
	for _, want := range []string{"experiment " + chaosmesh.RedisMasterFailure, StepScaleDown} {
		if !slices.Contains(skipped, want) {
			t.Errorf("not run %v, want %q in it", skipped, want)
		}
	}
	if run.ExitCode() != 2 {
		t.Errorf("exit code %d, want 2 (incomplete)", run.ExitCode())
	}
}

func TestRunnerNotInjectedIsUndoneAndNotMeasured(t *testing.T) {
	t.Parallel()
	w := newWorld()
	w.notInjected[chaosmesh.RedisMasterFailure] = true
	pl := shortPlan(t, chaosmesh.RedisMasterFailure)
	r, _, _ := newTestRunner(w, pl.Profile.Users, false)
	run, err := r.Run(t.Context(), pl)
	if err != nil {
		t.Fatal(err)
	}
	checkRenders(t, run)
	if !slices.Equal(w.undone, []string{chaosmesh.RedisMasterFailure}) {
		t.Errorf("undone %v, want the experiment that was not injected removed", w.undone)
	}
	q := requirementRows(run)
	if q["R30"].Status != reports.NotMeasured || !strings.Contains(q["R30"].Reason, "not injected") {
		t.Errorf("R30 = %+v, want not measured: not injected", q["R30"])
	}
	if q["R29"].Status != reports.NotInProfile {
		t.Errorf("R29 = %+v, want not in the profile", q["R29"])
	}
	if len(run.FaultWindows) != 0 {
		t.Errorf("fault windows %v, want none", run.FaultWindows)
	}
}

// TestKubeReplicaObserver follows a Deployment and an HPA through the
// client-go fake clientset: the observer records each change of the Ready
// replicas and of the HPA's replicas, and says when the HPA is missing.
func TestKubeReplicaObserver(t *testing.T) {
	t.Parallel()
	const ns = "jewelry-shop"
	three, ten := int32(3), int32(10)
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec:       appsv1.DeploymentSpec{Replicas: &three},
		Status:     appsv1.DeploymentStatus{ReadyReplicas: 3},
	}
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec:       autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: &three, MaxReplicas: ten},
		Status:     autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: 3},
	}
	tests := []struct {
		name        string
		hpa         string
		ready, hpas []int32 // the counts set one after the other
		wantReady   []int32
		wantHPA     []int32
		wantMissing string
	}{
		{
			name: "pod kill and scale", hpa: "web", ready: []int32{2, 2, 3}, hpas: []int32{5, 7, 3},
			wantReady: []int32{3, 2, 3}, wantHPA: []int32{3, 5, 7, 3},
		},
		{
			name: "no such HPA", hpa: "other", ready: []int32{3}, hpas: []int32{3},
			wantReady: []int32{3}, wantMissing: "HPA jewelry-shop/other not found",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kube := fake.NewClientset(deploy.DeepCopy(), hpa.DeepCopy())
			var polls atomic.Int64
			obs := KubeReplicaObserver{
				Kube: kube, Namespace: ns, Deployment: "web", HPA: tt.hpa, Poll: 5 * time.Millisecond,
				Now: func() time.Time { polls.Add(1); return time.Now() },
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			type result struct {
				r   Replicas
				err error
			}
			done := make(chan result, 1)
			go func() {
				r, err := obs.Observe(ctx)
				done <- result{r, err}
			}()
			// waitPolls lets the observer poll twice more.
			waitPolls := func() {
				n := polls.Load()
				for polls.Load() < n+4 {
					time.Sleep(time.Millisecond)
				}
			}
			waitPolls()
			for i := range tt.ready {
				d := deploy.DeepCopy()
				d.Status.ReadyReplicas = tt.ready[i]
				if _, err := kube.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
				h := hpa.DeepCopy()
				h.Status.CurrentReplicas = tt.hpas[i]
				if _, err := kube.AutoscalingV2().HorizontalPodAutoscalers(ns).UpdateStatus(ctx, h, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
				waitPolls()
			}
			cancel()
			res := <-done
			if res.err != nil {
				t.Fatal(res.err)
			}
			counts := func(ps []measure.ReplicaPoint) []int32 {
				var out []int32
				for _, p := range ps {
					out = append(out, p.Replicas)
				}
				return out
			}
			got := struct {
				Ready, HPA []int32
				Missing    string
			}{counts(res.r.Ready), counts(res.r.HPAReplicas), res.r.HPAMissing}
			want := struct {
				Ready, HPA []int32
				Missing    string
			}{tt.wantReady, tt.wantHPA, tt.wantMissing}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("observed (-want +got):\n%s", diff)
			}
			if tt.wantMissing == "" && (res.r.Min != 3 || res.r.Max != 10) {
				t.Errorf("HPA bounds %d..%d, want 3..10", res.r.Min, res.r.Max)
			}
		})
	}
}

func TestRunnerPreflightFailure(t *testing.T) {
	t.Parallel()
	w := newWorld()
	pl := shortPlan(t, chaosmesh.WebPodKill, chaosmesh.RedisMasterFailure)
	broken := errors.New("chaos mesh is not ready")
	r := NewRunner(RunnerConfig{
		Load: fakeLoad{w: w}, Prober: fakeProber{w: w}, Chaos: fakeChaos{w: w}, RunID: "test-run", Unavailable: testUnavailable(),
		Preflight: func(context.Context) error { return broken },
	})
	run, err := r.Run(t.Context(), pl)
	if !errors.Is(err, broken) {
		t.Errorf("run error = %v, want the preflight's", err)
	}
	checkRenders(t, run)
	if len(w.applied) != 0 || run.Load != nil || run.Progress.Completed || run.Progress.Reached != StepPreflight {
		t.Errorf("applied %v, load %v, progress %+v; want nothing run after the preflight", w.applied, run.Load, run.Progress)
	}
	for _, q := range run.Requirements {
		if q.Status != reports.NotRun && q.Status != reports.NotMeasured && q.Status != reports.NotInProfile || q.Reason == "" {
			t.Errorf("%s = %+v, want not run, not measured or not in the profile, with a reason", q.ID, q)
		}
	}
	if run.ExitCode() != 2 {
		t.Errorf("exit code %d, want 2", run.ExitCode())
	}
}

// fakeNodeFailer stops a node for the time asked; one Deployment pod and one
// StatefulSet pod ran on it, and the Deployment's is Ready elsewhere
// movedAfter the stop.
type fakeNodeFailer struct{ stopped, started *time.Time }

const movedAfter = 800 * time.Millisecond

func (f fakeNodeFailer) FailNode(ctx context.Context, _ chaosmesh.Experiment, down time.Duration) (*NodeFailure, error) {
	nf := &NodeFailure{Node: "k3d-lab-agent-1", StoppedAt: time.Now()}
	select {
	case <-ctx.Done():
	case <-time.After(down):
	}
	nf.StartedAt, nf.ReadyAgainAt = time.Now(), time.Now()
	*f.stopped, *f.started = nf.StoppedAt, nf.StartedAt
	nf.Pods = []PodMove{
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

// fakeLeaders answers a different primary after the PostgreSQL fault and the
// same master after the Redis one.
type fakeLeaders struct {
	mu    sync.Mutex
	asked map[string]int
}

func (f *fakeLeaders) Leader(_ context.Context, exp string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked[exp]++
	switch exp {
	case chaosmesh.PostgresPrimaryFailure:
		return fmt.Sprintf("jewelry-shop-db-%d", f.asked[exp]-1), nil // db-0 before, db-1 after
	case chaosmesh.RedisMasterFailure:
		return "jewelry-shop-redis-2", nil
	}
	return "", nil
}

// TestRunnerRecordsLeaders: the primary and master are asked before each
// store fault and once it settled; the report says failover or restart in
// place from those answers.
func TestRunnerRecordsLeaders(t *testing.T) {
	t.Parallel()
	w := newWorld()
	pl := shortPlan(t, chaosmesh.WebPodKill, chaosmesh.PostgresPrimaryFailure, chaosmesh.RedisMasterFailure)
	r, _, _ := newTestRunner(w, pl.Profile.Users, false)
	fl := &fakeLeaders{asked: map[string]int{}}
	r.cfg.Leaders = fl
	run, err := r.Run(t.Context(), pl)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	tests := []struct {
		exp  string
		want reports.Leader
	}{
		{chaosmesh.PostgresPrimaryFailure, reports.Leader{Old: "jewelry-shop-db-0", New: "jewelry-shop-db-1", Path: "failover to another pod"}},
		{chaosmesh.RedisMasterFailure, reports.Leader{Old: "jewelry-shop-redis-2", New: "jewelry-shop-redis-2", Path: "restart in place: the old leader came back, no failover"}},
	}
	for _, tt := range tests {
		e := experimentNamed(run, tt.exp)
		if e == nil || e.Leader == nil {
			t.Fatalf("%s: no leader in %+v", tt.exp, e)
		}
		if diff := cmp.Diff(tt.want, *e.Leader); diff != "" {
			t.Errorf("%s leader (-want +got):\n%s", tt.exp, diff)
		}
	}
	if e := experimentNamed(run, chaosmesh.WebPodKill); e == nil || e.Leader != nil {
		t.Errorf("web pod kill has a leader: %+v", e)
	}
	checkRenders(t, run)
}

// fakeMetrics answers usages in call order: before and during each stress.
type fakeMetrics struct {
	mu     sync.Mutex
	usages []Usage
	calls  int
}

func (f *fakeMetrics) Usage(context.Context, string, map[string]string) (Usage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls >= len(f.usages) {
		return Usage{}, errors.New("metrics API not available")
	}
	f.calls++
	return f.usages[f.calls-1], nil
}

// TestRunnerStress: a stress is only reported on when the pods' usage shows
// it; then R34 needs the error rate inside its window and an HPA reaction.
func TestRunnerStress(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	tests := []struct {
		name   string
		usages []Usage // CPU before, during; memory before, during
		want   reports.Status
		reason string
	}{
		{"memory stress did not show", []Usage{{CPUMilli: 300}, {CPUMilli: 900}, {MemoryBytes: 400 * mib}, {MemoryBytes: 420 * mib}}, reports.NotMeasured, "did not show in the pods' usage"},
		{"HPA did not react to memory", []Usage{{CPUMilli: 300}, {CPUMilli: 900}, {MemoryBytes: 400 * mib}, {MemoryBytes: 800 * mib}}, reports.Fail, "the HPA did not react"},
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
			if tt.usages != nil && !strings.Contains(q.Measured, "web-cpu-stress: CPU 300m → 900m") || (tt.usages != nil && !strings.Contains(q.Measured, "HPA 5 → 7 replicas")) {
				t.Errorf("R34 measured %q lacks the CPU stress figures", q.Measured)
			}
			checkRenders(t, run)
		})
	}
}

func TestParsePodMetrics(t *testing.T) {
	t.Parallel()
	raw := []byte(`{"kind":"PodMetricsList","items":[
		{"metadata":{"name":"web-1"},"containers":[{"name":"web","usage":{"cpu":"250m","memory":"100Mi"}},{"name":"sidecar","usage":{"cpu":"1500000n","memory":"1Mi"}}]},
		{"metadata":{"name":"web-2"},"containers":[{"name":"web","usage":{"cpu":"1","memory":"128Mi"}}]}]}`)
	got, err := parsePodMetrics(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := Usage{CPUMilli: 250 + 2 + 1000, MemoryBytes: (100 + 1 + 128) << 20, Pods: 2}
	if got != want {
		t.Errorf("parsePodMetrics = %+v, want %+v", got, want)
	}
	if _, err := parsePodMetrics([]byte("not json")); err == nil {
		t.Error("bad JSON accepted")
	}
}

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
		if got := stressRose(tt.cpu, tt.before, tt.during); got != tt.want {
			t.Errorf("stressRose(cpu=%v, %+v, %+v) = %v, want %v", tt.cpu, tt.before, tt.during, got, tt.want)
		}
	}
}

func TestHealthRow(t *testing.T) {
	t.Parallel()
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}}}
	kube := fake.NewClientset(
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}, Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "web", ReadinessProbe: probe, LivenessProbe: probe}},
		}}}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"}, Spec: appsv1.StatefulSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "postgres", ReadinessProbe: probe}, {Name: "exporter", ReadinessProbe: probe, LivenessProbe: probe}},
		}}}},
	)
	probes, err := KubeHealthChecks{Kube: kube, Namespace: "shop"}.Probes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []reports.WorkloadProbes{{Workload: "Deployment/web", Readiness: true, Liveness: true}, {Workload: "StatefulSet/db", Readiness: true, Liveness: false}}
	if diff := cmp.Diff(want, probes); diff != "" {
		t.Fatalf("probes (-want +got):\n%s", diff)
	}
	row := NewRunner(RunnerConfig{}).healthRow(&observed{probes: probes})
	if row.Status != reports.Fail || !strings.Contains(row.Reason, "StatefulSet/db has no liveness probe") || row.Measured != "1 of 2 workloads have both probes" {
		t.Errorf("R33 = %+v, want a failure naming StatefulSet/db", row)
	}
	if row := NewRunner(RunnerConfig{}).healthRow(&observed{probesWhy: "forbidden"}); row.Status != reports.NotMeasured || !strings.Contains(row.Reason, "forbidden") {
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
		o    observed
		want measure.Status
		text string
	}{
		{"not polled", observed{}, measure.NotMeasured, ""},
		{"polled all run", observed{healthPolled: true, healthFrom: t0, healthTo: t0.Add(4 * time.Second), health: samples(0, 1, 2, 3, 4)}, measure.Pass, "health endpoint polled 5 times over 4s, 80"},
		{"a gap", observed{healthPolled: true, healthFrom: t0, healthTo: t0.Add(20 * time.Second), health: samples(0, 1, 19)}, measure.NotMeasured, "polled 3 times"},
	}
	for _, tt := range tests {
		v, text := NewRunner(RunnerConfig{}).healthPolled(&tt.o)
		if v.Status != tt.want || !strings.Contains(text, tt.text) {
			t.Errorf("%s: %v %q, want %v with %q", tt.name, v, text, tt.want, tt.text)
		}
	}
}

func TestChaosMeshReady(t *testing.T) {
	t.Parallel()
	one := int32(1)
	dep := func(ready int32) *appsv1.Deployment {
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "chaos-controller-manager", Namespace: "chaos-mesh"},
			Spec:       appsv1.DeploymentSpec{Replicas: &one}, Status: appsv1.DeploymentStatus{ReadyReplicas: ready},
		}
	}
	daemon := func(ready, want int32) *appsv1.DaemonSet {
		return &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Name: "chaos-daemon", Namespace: "chaos-mesh"},
			Status:     appsv1.DaemonSetStatus{NumberReady: ready, DesiredNumberScheduled: want},
		}
	}
	tests := []struct {
		name string
		objs []runtime.Object
		want string
	}{
		{"ready", []runtime.Object{dep(1), daemon(3, 3)}, ""},
		{"not installed", nil, "chaos mesh is not installed"},
		{"controller down", []runtime.Object{dep(0), daemon(3, 3)}, "chaos-controller-manager has 0 of 1 replicas ready"},
		{"daemon missing on a node", []runtime.Object{dep(1), daemon(2, 3)}, "chaos-daemon is ready on 2 of 3 nodes"},
	}
	for _, tt := range tests {
		err := chaosMeshReady(t.Context(), fake.NewClientset(tt.objs...))
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestRunnerRefusesUnwiredCapabilities: a capability the plan needs that is
// neither wired nor explained stops the run before it starts, naming it,
// so that a wiring mistake is never reported as "not measured".
func TestRunnerRefusesUnwiredCapabilities(t *testing.T) {
	t.Parallel()
	w := newWorld()
	pl := shortPlan(t, chaosmesh.WebPodKill, chaosmesh.NodeFailure)
	unavailable := testUnavailable()
	delete(unavailable, CapHealth)
	delete(unavailable, CapNodes)
	r := NewRunner(RunnerConfig{Load: fakeLoad{w: w}, Prober: fakeProber{w: w}, Chaos: fakeChaos{w: w}, RunID: "test-run", Unavailable: unavailable})
	run, err := r.Run(t.Context(), pl)
	if err == nil || !strings.Contains(err.Error(), "without its health-check inspection, node failure") {
		t.Fatalf("Run error = %v, want it to name the unwired capabilities", err)
	}
	if len(w.applied) != 0 || run.Load != nil || run.ExitCode() != 2 {
		t.Errorf("applied %v, load %v, exit code %d; want nothing run, exit code 2", w.applied, run.Load, run.ExitCode())
	}
}
