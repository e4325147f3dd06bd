package lab

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jewelry-shop/lab/chaosmesh"
	"github.com/jewelry-shop/lab/reports"
	"github.com/jewelry-shop/lab/shop/probeapi"
)

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
	if err == nil || !strings.Contains(err.Error(), "without its node failure, health-check inspection") {
		t.Fatalf("Run error = %v, want it to name the unwired capabilities", err)
	}
	if len(w.applied) != 0 || run.Load != nil || run.ExitCode() != 2 {
		t.Errorf("applied %v, load %v, exit code %d; want nothing run, exit code 2", w.applied, run.Load, run.ExitCode())
	}
}

// eventRecorder is a progress view that keeps lines of their own apart
// from the running step's details.
type eventRecorder struct {
	mu     sync.Mutex
	events []string
}

func (e *eventRecorder) Start(string)  {}
func (e *eventRecorder) Update(string) {}
func (e *eventRecorder) End(error)     {}
func (e *eventRecorder) Event(line string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, line)
}

// TestRunnerPrintsExperimentsAsEvents: each experiment gets a progress line
// of its own, which the load's running figures cannot overwrite.
func TestRunnerPrintsExperimentsAsEvents(t *testing.T) {
	t.Parallel()
	w := newWorld()
	pl := shortPlan(t, chaosmesh.WebPodKill, chaosmesh.RedisMasterFailure)
	ev := &eventRecorder{}
	r := NewRunner(RunnerConfig{
		Load: fakeLoad{w: w, users: pl.Profile.Users}, Prober: fakeProber{w: w}, Chaos: fakeChaos{w: w},
		RunID: "test-run", Scale: testScale, Sustain: 500 * time.Millisecond, Unavailable: testUnavailable(), Progress: ev,
	})
	if _, err := r.Run(t.Context(), pl); err != nil {
		t.Fatal(err)
	}
	if want := []string{chaosmesh.WebPodKill, chaosmesh.RedisMasterFailure}; !slices.Equal(ev.events, want) {
		t.Errorf("events %v, want %v", ev.events, want)
	}
}
