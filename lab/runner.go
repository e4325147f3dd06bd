package lab

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/jewelry-shop/lab/chaosmesh"
	"github.com/jewelry-shop/lab/lab/judge"
	"github.com/jewelry-shop/lab/lab/measure"
	"github.com/jewelry-shop/lab/load"
	"github.com/jewelry-shop/lab/reports"
	"github.com/jewelry-shop/lab/shop/probeapi"
)

// The boundaries a validation run talks to, each owned here and kept small.
type (
	// LoadRunner sends the validation's user load for d, or until ctx ends,
	// and returns what it measured, also when ctx was cancelled.
	LoadRunner interface {
		RunLoad(ctx context.Context, d time.Duration) (*load.Result, error)
	}
	// ProberReader reads the in-cluster prober: its timeline with the
	// writes after sequence number since (the runner reads it piece by
	// piece during the run), and the verification of the acknowledged
	// writes.
	ProberReader interface {
		Timeline(ctx context.Context, since int64) (probeapi.Timeline, error)
		Verify(ctx context.Context) (probeapi.Verification, error)
	}
	// ChaosApplier applies Chaos Mesh experiments and confirms their
	// injection; *chaosmesh.Engine implements it. The undo must work after
	// ctx was cancelled.
	ChaosApplier interface {
		Apply(ctx context.Context, exp chaosmesh.Experiment, runID string) (*chaosmesh.Applied, func(context.Context) error, error)
		WaitInjected(ctx context.Context, a *chaosmesh.Applied, timeout time.Duration) (chaosmesh.Injection, error)
	}
	// NodeFailer runs the node-failure experiment: the node stays down for
	// down, and is started again on every path.
	NodeFailer interface {
		FailNode(ctx context.Context, exp chaosmesh.Experiment, down time.Duration) (*judge.NodeFailure, error)
	}
	// LeaderReader names the current leader (PostgreSQL primary, Redis
	// master) that an experiment targets; "" with a nil error for
	// experiments without one.
	LeaderReader interface {
		Leader(ctx context.Context, experiment string) (string, error)
	}
	// ReplicaObserver watches the web workload and its autoscaler while the
	// run lasts: Observe records until ctx ends, then returns what it saw.
	ReplicaObserver interface {
		Observe(ctx context.Context) (judge.Replicas, error)
	}
	// MetricsReader reads the current usage of the pods a selector picks,
	// from the metrics API (metrics-server).
	MetricsReader interface {
		Usage(ctx context.Context, namespace string, selector map[string]string) (judge.Usage, error)
	}
	// HealthChecker reads the readiness and liveness probes of the stack's
	// live workloads.
	HealthChecker interface {
		Probes(ctx context.Context) ([]reports.WorkloadProbes, error)
	}
	// HealthPoller polls the shop's health endpoint while the run lasts: Poll
	// records until ctx ends and returns one sample per poll.
	HealthPoller interface {
		Poll(ctx context.Context) []measure.Sample
	}
)

// Capability is one thing a validation measures with, beside its load.
type Capability string

// The capabilities of a runner. A RunnerConfig without one must say why in
// Unavailable (what it measures is then reported not run or not measured,
// with that reason); a capability that is neither wired nor explained stops
// the run before it starts, so that a wiring mistake can never pass as "not
// measured".
const (
	CapProber     Capability = "prober"
	CapChaos      Capability = "chaos engine"
	CapNodes      Capability = "node failure"
	CapReplicas   Capability = "replica observer"
	CapLeaders    Capability = "leader reader"
	CapMetrics    Capability = "resource metrics reader"
	CapHealth     Capability = "health-check inspection"
	CapHealthPoll Capability = "health endpoint poll"
)

// capabilities lists every Capability, in a fixed order.
func capabilities() []Capability {
	return []Capability{CapProber, CapChaos, CapNodes, CapReplicas, CapLeaders, CapMetrics, CapHealth, CapHealthPoll}
}

// RunnerConfig is what a Runner works with. Load is required; every other
// capability is wired or named in Unavailable with the reason.
type RunnerConfig struct {
	Load   LoadRunner
	Prober ProberReader
	Chaos  ChaosApplier
	Nodes  NodeFailer
	// Unavailable says, per capability that is not wired, why (e.g. node
	// failure on a cluster lab did not create), for the report.
	Unavailable map[Capability]string
	// NotRun says, per experiment of the plan that cannot run on this
	// cluster although everything is wired, why (e.g. a PostgreSQL that no
	// operator manages has no primary pod to fail); the experiment is then
	// reported not run, with that reason, and not attempted.
	NotRun map[string]string
	// Replicas watches the web workload and its HPA from the load's start
	// to the end of the scale-down watch.
	Replicas ReplicaObserver
	// Leaders names the PostgreSQL primary or the Redis master an
	// experiment targets, asked before it and again before the next one
	// starts (or after the load), so the report says whether another pod
	// took over or the old one came back.
	Leaders LeaderReader
	// Metrics reads the pods' usage before and during each stress, to
	// confirm the stress really ran before it is reported on.
	Metrics MetricsReader
	// Health reads the probes of the live workloads, at collection.
	Health HealthChecker
	// HealthPoll polls the shop's health endpoint from the load's start to
	// the end of the scale-down watch.
	HealthPoll HealthPoller
	// Preflight, when set, runs first; its failure stops the run.
	Preflight func(ctx context.Context) error
	// Sweep, when set, runs last on every path after the load started,
	// bounded by UndoTimeout even after cancellation, and removes what the
	// run may have left behind, such as an object whose creation was
	// interrupted: e.g. a wrapper of (*chaosmesh.Engine).Sweep on the
	// stack's namespace. It returns what it removed.
	Sweep func(ctx context.Context) ([]string, error)
	// Settings are the chart's and the cluster's values the experiments'
	// figures depend on, for the report's "depends on" rows; nil with
	// SettingsWhy saying why they are not known.
	Settings    *judge.Settings
	SettingsWhy string
	// RunID labels every chaos object; Seed and Title and Environment go
	// into the report as they are.
	RunID       string
	Seed        int64
	Title       string
	Environment map[string]string
	// Now is the clock of every time that reaches the report; time.Now
	// when nil. Waits are real time.
	Now func() time.Time
	// Scale multiplies the plan's offsets and durations (load, baseline,
	// spacing, fault holds, scale-down watch); 0 means 1. Tests use it to
	// run a plan in seconds.
	Scale float64
	// Sustain is how long successes must last for a recovery (default 5s).
	Sustain time.Duration
	// InjectTimeout bounds the wait for an injection (default 2m);
	// UndoTimeout each removal, also after cancellation (default 2m).
	InjectTimeout, UndoTimeout time.Duration
	// CollectTimeout bounds reading the prober at the collection (default
	// 1m); ProberReadTimeout each read of it during the run (default 15s).
	CollectTimeout, ProberReadTimeout time.Duration
	Log                               *slog.Logger
	Progress                          Progress
}

// unwired lists the capabilities the plan needs that are neither wired nor
// explained in Unavailable.
func (c RunnerConfig) unwired(pl *Plan) []string {
	need := map[Capability]bool{
		CapProber: c.Prober != nil, CapReplicas: c.Replicas != nil,
		CapHealth: c.Health != nil, CapHealthPoll: c.HealthPoll != nil,
	}
	for _, s := range pl.Steps {
		e := s.Experiment
		if e == nil {
			continue
		}
		if e.Kind == chaosmesh.KindNodeFailure {
			need[CapNodes] = c.Nodes != nil
			continue
		}
		need[CapChaos] = c.Chaos != nil
		if faultRole(e.Name).Store() != "" {
			need[CapLeaders] = c.Leaders != nil
		}
		if _, _, stress := e.StressSelector(); stress {
			need[CapMetrics] = c.Metrics != nil
		}
	}
	var missing []string
	for _, cap := range capabilities() {
		if wired, needed := need[cap]; needed && !wired && c.Unavailable[cap] == "" {
			missing = append(missing, string(cap))
		}
	}
	return slices.Clip(missing)
}

// Runner executes a validation plan and turns what it measured into a
// report.
type Runner struct {
	cfg RunnerConfig
}

// NewRunner returns a Runner, filling in the defaults.
func NewRunner(cfg RunnerConfig) *Runner {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Scale <= 0 {
		cfg.Scale = 1
	}
	if cfg.Sustain <= 0 {
		cfg.Sustain = 5 * time.Second
	}
	if cfg.InjectTimeout <= 0 {
		cfg.InjectTimeout = 2 * time.Minute
	}
	if cfg.UndoTimeout <= 0 {
		cfg.UndoTimeout = 2 * time.Minute
	}
	if cfg.CollectTimeout <= 0 {
		cfg.CollectTimeout = time.Minute
	}
	if cfg.ProberReadTimeout <= 0 {
		cfg.ProberReadTimeout = 15 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Progress == nil {
		cfg.Progress = noProgress{}
	}
	if cfg.Title == "" {
		cfg.Title = "jewelry-shop lab validation"
	}
	return &Runner{cfg: cfg}
}

// why says why a capability is not wired.
func (r *Runner) why(c Capability) string {
	return r.cfg.Unavailable[c]
}

func (r *Runner) scale(d time.Duration) time.Duration {
	return time.Duration(float64(d) * r.cfg.Scale)
}

// event prints a line of the run's own (an experiment starting) where the
// progress view can keep it apart from the load's running figures.
func (r *Runner) event(line string) {
	if e, ok := r.cfg.Progress.(interface{ Event(string) }); ok {
		e.Event(line)
		return
	}
	r.cfg.Progress.Update(line)
}

// sleepUntil waits until t on the real clock; false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	if ctx.Err() != nil {
		return false
	}
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
