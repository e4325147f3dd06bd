package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/chaos-mesh/chaos-mesh/api/v1alpha1"

	"github.com/jewelry-shop/lab/chaosmesh"
	"github.com/jewelry-shop/lab/lab/measure"
	"github.com/jewelry-shop/lab/load"
	"github.com/jewelry-shop/lab/reports"
	"github.com/jewelry-shop/lab/shop/probeapi"
)

// LoadRunner sends the validation's user load for d, or until ctx ends, and
// returns what it measured, also when ctx was cancelled.
type LoadRunner interface {
	RunLoad(ctx context.Context, d time.Duration) (*load.Result, error)
}

// LoadFunc adapts a function to a LoadRunner.
type LoadFunc func(ctx context.Context, d time.Duration) (*load.Result, error)

// RunLoad calls f.
func (f LoadFunc) RunLoad(ctx context.Context, d time.Duration) (*load.Result, error) {
	return f(ctx, d)
}

// GeneratorLoad is the real LoadRunner: the load generator with opts, its
// Duration replaced by the plan's and its clock by now, so that its series
// lines up with the fault windows.
func GeneratorLoad(opts load.Options, now func() time.Time) LoadRunner {
	return LoadFunc(func(ctx context.Context, d time.Duration) (*load.Result, error) {
		o := opts
		o.Duration = d
		if now != nil {
			o.Clock = clockFunc(now)
		}
		return load.Run(ctx, o)
	})
}

type clockFunc func() time.Time

func (c clockFunc) Now() time.Time { return c() }

// ProberReader reads the in-cluster prober: its timeline, with every write,
// and the verification of the acknowledged writes.
type ProberReader interface {
	Timeline(ctx context.Context) (probeapi.Timeline, error)
	Verify(ctx context.Context) (probeapi.Verification, error)
}

// HTTPProber reads the prober over HTTP. Base is the prober's URL: a
// loopback address in tests, or the API server's service proxy,
// <rest.Config.Host>/api/v1/namespaces/jewelry-shop/services/jewelry-shop-probe:http/proxy,
// with a Client that carries the kubeconfig's credentials
// (rest.HTTPClientFor).
type HTTPProber struct {
	Client *http.Client
	Base   string
}

// Timeline fetches GET /timeline?samples=true.
func (p HTTPProber) Timeline(ctx context.Context) (probeapi.Timeline, error) {
	var tl probeapi.Timeline
	if err := p.get(ctx, "/timeline?samples=true", &tl, false); err != nil {
		return tl, fmt.Errorf("read the prober timeline: %w", err)
	}
	return tl, nil
}

// Verify fetches GET /verify. A store the prober could not read back is
// reported in its StoreVerification.Error, not as an error here.
func (p HTTPProber) Verify(ctx context.Context) (probeapi.Verification, error) {
	var v probeapi.Verification
	if err := p.get(ctx, "/verify", &v, true); err != nil {
		return v, fmt.Errorf("verify the prober's writes: %w", err)
	}
	return v, nil
}

func (p HTTPProber) get(ctx context.Context, path string, out any, accept503 bool) error {
	c := p.Client
	if c == nil {
		c = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(p.Base, "/")+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK && (!accept503 || resp.StatusCode != http.StatusServiceUnavailable) {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("GET %s: decode: %w", path, err)
	}
	return nil
}

// LeaderReader names the current leader (PostgreSQL primary, Redis master)
// that an experiment targets; "" with a nil error for experiments without one.
type LeaderReader interface {
	Leader(ctx context.Context, experiment string) (string, error)
}

// ChaosApplier applies Chaos Mesh experiments and confirms their injection;
// *chaosmesh.Engine implements it. The undo must work after ctx was
// cancelled.
type ChaosApplier interface {
	Apply(ctx context.Context, exp chaosmesh.Experiment, runID string) (*chaosmesh.Applied, func(context.Context) error, error)
	WaitInjected(ctx context.Context, a *chaosmesh.Applied, timeout time.Duration) (chaosmesh.Injection, error)
}

// NodeFailer runs the node-failure experiment: the node stays down for
// down, and is started again on every path.
type NodeFailer interface {
	FailNode(ctx context.Context, exp chaosmesh.Experiment, down time.Duration) (*NodeFailure, error)
}

// ClusterNodeFailer is the real NodeFailer: [RunNodeFailure] on a k3d
// cluster, watching the stack's namespace through the API.
type ClusterNodeFailer struct {
	Stopper   NodeStopper
	Kube      kubernetes.Interface
	Cluster   string
	Namespace string
	// ReadyTimeout and Poll are passed on; zero takes 2m and 1s.
	ReadyTimeout, Poll time.Duration
	Now                func() time.Time
	Log                *slog.Logger
}

// FailNode stops exp.Node for down and starts it again.
func (f ClusterNodeFailer) FailNode(ctx context.Context, exp chaosmesh.Experiment, down time.Duration) (*NodeFailure, error) {
	if exp.Node == "" {
		return nil, fmt.Errorf("experiment %s: no node chosen", exp.Name)
	}
	rt, poll := f.ReadyTimeout, f.Poll
	if rt == 0 {
		rt = 2 * time.Minute
	}
	if poll == 0 {
		poll = time.Second
	}
	return RunNodeFailure(ctx, f.Stopper, f.Kube, NodeFailureOptions{
		Cluster: f.Cluster, Node: exp.Node, Namespace: f.Namespace, Down: down,
		ReadyTimeout: rt, Poll: poll, Log: f.Log, Now: f.Now,
	})
}

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
	// CollectTimeout bounds reading the prober (default 1m).
	CollectTimeout time.Duration
	Log            *slog.Logger
	Progress       Progress
}

// unwired lists the capabilities the plan needs that are neither wired nor
// explained in Unavailable.
func (c RunnerConfig) unwired(pl *Plan) []string {
	need := map[Capability]bool{
		CapProber: c.Prober != nil, CapReplicas: c.Replicas != nil,
		CapHealth: c.Health != nil, CapHealthPoll: c.HealthPoll != nil,
	}
	for _, s := range pl.Steps {
		if s.Experiment == nil {
			continue
		}
		switch e := s.Experiment; {
		case e.Kind == chaosmesh.KindNodeFailure:
			need[CapNodes] = c.Nodes != nil
		default:
			need[CapChaos] = c.Chaos != nil
			if proberStore(e.Name) != "" {
				need[CapLeaders] = c.Leaders != nil
			}
			if _, _, stress := stressTarget(*e); stress {
				need[CapMetrics] = c.Metrics != nil
			}
		}
	}
	var missing []string
	for cap, wired := range need {
		if !wired && c.Unavailable[cap] == "" {
			missing = append(missing, string(cap))
		}
	}
	slices.Sort(missing)
	return missing
}

// why says why a capability is not wired.
func (r *Runner) why(c Capability) string {
	return r.cfg.Unavailable[c]
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

// observed is everything one run saw, on the runner's clock, before it is
// judged and mapped into a report.
type observed struct {
	plan              *Plan
	started, finished time.Time
	reached           string
	// stopped says why the run stopped early; nil if it completed.
	stopped error

	loadRan            bool
	loadStart, loadEnd time.Time
	load               *load.Result
	loadErr            error

	timeline    *probeapi.Timeline
	timelineErr error
	verify      *probeapi.Verification
	// verifyWhy says why there is no verification.
	verifyWhy string

	// probes are the live workloads' probes; probesWhy says why not read.
	probes    []reports.WorkloadProbes
	probesWhy string
	// health are the polls of the health endpoint; healthFrom/To bound
	// the polling.
	health               []measure.Sample
	healthFrom, healthTo time.Time
	healthPolled         bool

	scaleDownWatched bool
	// replicas is what the replica observer saw until observedUntil.
	replicas      *Replicas
	replicasErr   error
	observedUntil time.Time
	experiments   []*expRun
	notRun        []reports.Skipped
}

// expRun is one experiment of the plan and what happened to it.
type expRun struct {
	exp chaosmesh.Experiment
	// notRun says why the experiment did not run; empty if it ran.
	notRun string
	// failure says why a run experiment has no injection.
	failure                          string
	appliedAt, injectedAt, removedAt time.Time
	applied, undone                  bool
	node                             *NodeFailure
	events                           []reports.Event
	// leaderBefore and leaderAfter are the primary or master before the
	// experiment and once it settled; leaderWhy says why one is missing.
	leaderBefore, leaderAfter, leaderWhy string
	// usageBefore and usageDuring are the stressed pods' usage; usageWhy
	// says why one is missing.
	usageBefore, usageDuring *Usage
	usageWhy                 string
}

func (x *expRun) event(at time.Time, source, what string) {
	x.events = append(x.events, reports.Event{At: at.UTC(), Source: source, What: what})
}

// Run executes the plan: preflight, the load from its start for its
// duration with every experiment at its offset under it, the scale-down
// watch, the collection of the prober's figures, and the report. It always
// returns the report of what it measured. When ctx is cancelled the run
// stops, every applied fault is removed (each removal bounded by
// UndoTimeout, whatever ctx says), and the report is marked interrupted with
// the rest not run. The error joins the interruption and every failed
// removal.
func (r *Runner) Run(ctx context.Context, pl *Plan) (*reports.Run, error) {
	o := &observed{plan: pl, started: r.cfg.Now()}
	var errs []error
	p := pl.Profile

	o.reached = StepPreflight
	r.cfg.Progress.Start("Preflight")
	preflight := r.cfg.Preflight
	if missing := r.cfg.unwired(pl); len(missing) > 0 {
		preflight = func(context.Context) error {
			return fmt.Errorf("lab wired this validation without its %s, and without saying why: this is a bug in lab, please report it", strings.Join(missing, ", "))
		}
	}
	if preflight != nil {
		if err := preflight(ctx); err != nil {
			r.cfg.Progress.End(err)
			o.stopped = fmt.Errorf("preflight: %w", err)
			r.skipRest(o, pl.Steps, "the preflight failed")
			for _, step := range []string{StepLoad, StepScaleDown, StepCollect} {
				o.notRun = append(o.notRun, reports.Skipped{Name: step, Reason: "the preflight failed"})
			}
			o.finished = r.cfg.Now()
			return r.report(o), o.stopped
		}
	}
	r.cfg.Progress.End(nil)

	// Load runs concurrently from here; experiments are placed on the real
	// timer relative to its start.
	base := time.Now()
	o.loadRan, o.loadStart, o.reached = true, r.cfg.Now(), StepLoad
	r.cfg.Progress.Start(fmt.Sprintf("Load: %d users for %s", p.Users, r.scale(p.Load)))
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		o.load, o.loadErr = r.cfg.Load.RunLoad(loadCtx, r.scale(p.Load))
	}()
	stopObserving := r.observe(ctx, o)

	var prev *expRun
	for _, s := range pl.Steps {
		if s.Kind != StepExperiment || s.Experiment == nil {
			continue
		}
		x := &expRun{exp: *s.Experiment}
		o.experiments = append(o.experiments, x)
		if !sleepUntil(ctx, base.Add(r.scale(s.Offset-pl.LoadStart))) {
			x.notRun = "the run was interrupted before this experiment"
			continue
		}
		r.leaderAfter(ctx, prev)
		o.reached = s.Name
		r.cfg.Progress.Update(s.Experiment.Name)
		r.leaderBefore(ctx, x)
		if err := r.experiment(ctx, x); err != nil {
			errs = append(errs, err)
		}
		prev = x
	}
	<-loadDone
	r.leaderAfter(ctx, prev)
	o.loadEnd = r.cfg.Now()
	r.cfg.Progress.End(o.loadErr)
	if o.loadErr != nil {
		r.cfg.Log.Warn("load failed", "error", o.loadErr)
	}

	if ctx.Err() == nil {
		o.reached = StepScaleDown
		r.cfg.Progress.Start(fmt.Sprintf("Watching the scale-down for %s", r.scale(p.ScaleDownWatch)))
		o.scaleDownWatched = sleepUntil(ctx, time.Now().Add(r.scale(p.ScaleDownWatch)))
		r.cfg.Progress.End(ctx.Err())
	}
	stopObserving()

	r.collect(ctx, o)
	r.readProbes(ctx, o)
	if r.cfg.Sweep != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.UndoTimeout)
		removed, err := r.cfg.Sweep(sctx)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("sweep leftovers: %w", err))
		}
		if len(removed) > 0 {
			r.cfg.Log.Warn("removed leftovers", "objects", removed)
		}
	}
	if err := ctx.Err(); err != nil {
		o.stopped = fmt.Errorf("validation interrupted: %w", err)
		errs = append(errs, o.stopped)
		if !o.scaleDownWatched {
			o.notRun = append(o.notRun, reports.Skipped{Name: StepScaleDown, Reason: "the run was interrupted"})
		}
	} else {
		o.reached = StepReport
	}
	o.finished = r.cfg.Now()
	return r.report(o), errors.Join(errs...)
}

// observe starts the replica observer, if any; the returned function stops
// it and waits for what it saw.
func (r *Runner) observe(ctx context.Context, o *observed) (stop func()) {
	if r.cfg.Replicas == nil {
		o.replicasErr = errors.New(r.why(CapReplicas))
		stopHealth := r.pollHealth(ctx, o)
		return func() {
			o.observedUntil = r.cfg.Now()
			stopHealth()
		}
	}
	octx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		rs, err := r.cfg.Replicas.Observe(octx)
		if err != nil {
			o.replicasErr = fmt.Errorf("replica observer: %w", err)
			return
		}
		o.replicas = &rs
	}()
	stopHealth := r.pollHealth(ctx, o)
	return func() {
		o.observedUntil = r.cfg.Now()
		cancel()
		<-done
		stopHealth()
	}
}

// pollHealth starts the health endpoint's poller, if any; the returned
// function stops it and keeps its samples.
func (r *Runner) pollHealth(ctx context.Context, o *observed) (stop func()) {
	if r.cfg.HealthPoll == nil {
		return func() {}
	}
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan []measure.Sample, 1)
	o.healthFrom, o.healthPolled = r.cfg.Now(), true
	go func() { done <- r.cfg.HealthPoll.Poll(hctx) }()
	return func() {
		o.healthTo = r.cfg.Now()
		cancel()
		o.health = <-done
	}
}

// skipRest marks every planned experiment not run.
func (r *Runner) skipRest(o *observed, steps []Step, why string) {
	for _, s := range steps {
		if s.Experiment != nil {
			o.experiments = append(o.experiments, &expRun{exp: *s.Experiment, notRun: why})
		}
	}
}

// experiment applies one fault, confirms its injection, holds it for its
// scaled duration and removes it. The removal runs on every path, bounded
// by UndoTimeout even after ctx was cancelled; its failure is returned.
func (r *Runner) experiment(ctx context.Context, x *expRun) (err error) {
	e := x.exp
	hold := r.scale(e.Duration)
	log := r.cfg.Log.With("experiment", e.Name)
	if e.Kind == chaosmesh.KindNodeFailure {
		if r.cfg.Nodes == nil {
			x.notRun = r.why(CapNodes)
			return nil
		}
		nf, err := r.cfg.Nodes.FailNode(ctx, e, hold)
		x.node, x.applied = nf, true
		if nf != nil && !nf.StoppedAt.IsZero() {
			x.injectedAt, x.removedAt, x.undone = nf.StoppedAt, nf.StartedAt, !nf.StartedAt.IsZero()
			x.event(nf.StoppedAt, "lab", "node "+nf.Node+" stopped")
			if !nf.StartedAt.IsZero() {
				x.event(nf.StartedAt, "lab", "node "+nf.Node+" started again")
			}
		} else {
			x.failure = "the node was not stopped"
		}
		if err != nil {
			x.failure = strings.TrimSpace(x.failure + " " + err.Error())
			return fmt.Errorf("experiment %s: %w", e.Name, err)
		}
		return nil
	}
	if r.cfg.Chaos == nil {
		x.notRun = r.why(CapChaos)
		return nil
	}
	stressNS, stressSel, isStress := stressTarget(e)
	if isStress {
		x.usageBefore = r.usage(ctx, x, stressNS, stressSel)
	}
	a, undo, err := r.cfg.Chaos.Apply(ctx, e, r.cfg.RunID)
	if err != nil {
		x.failure = fmt.Sprintf("could not be applied: %v", err)
		x.event(r.cfg.Now(), "lab", "apply failed: "+err.Error())
		log.Warn("apply failed", "error", err)
		return nil
	}
	x.applied, x.appliedAt = true, r.cfg.Now()
	x.event(x.appliedAt, "chaos", "experiment applied")
	remove := func() error {
		if x.undone || undo == nil {
			return nil
		}
		x.undone = true
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.UndoTimeout)
		defer cancel()
		uerr := undo(cctx)
		x.removedAt = r.cfg.Now()
		if uerr != nil {
			x.event(x.removedAt, "lab", "removal failed: "+uerr.Error())
			return fmt.Errorf("remove experiment %s: %w", e.Name, uerr)
		}
		x.event(x.removedAt, "chaos", "experiment removed")
		return nil
	}
	defer func() { err = errors.Join(err, remove()) }()

	inj, err := r.cfg.Chaos.WaitInjected(ctx, a, r.cfg.InjectTimeout)
	if err != nil {
		x.failure = fmt.Sprintf("injection not confirmed: %v", err)
		log.Warn("not injected", "error", err)
		return nil
	}
	x.injectedAt = inj.At
	if x.injectedAt.IsZero() {
		x.injectedAt = r.cfg.Now()
	}
	how := "Chaos Mesh reports the fault injected"
	if inj.FromRecords {
		how += " (time from its records)"
	}
	x.event(x.injectedAt, "chaos", how)
	end := time.Now().Add(hold)
	if isStress && hold > 0 && sleepUntil(ctx, time.Now().Add(hold/2)) {
		x.usageDuring = r.usage(ctx, x, stressNS, stressSel)
	}
	if hold > 0 && !sleepUntil(ctx, end) {
		x.event(r.cfg.Now(), "lab", "run interrupted while the fault was held")
	}
	return remove()
}

// stressTarget returns the namespace and labels a StressChaos selects.
func stressTarget(e chaosmesh.Experiment) (string, map[string]string, bool) {
	sc, ok := e.Object.(*v1alpha1.StressChaos)
	if !ok || len(sc.Spec.Selector.Namespaces) != 1 {
		return "", nil, false
	}
	return sc.Spec.Selector.Namespaces[0], sc.Spec.Selector.LabelSelectors, true
}

// usage reads the stressed pods' usage, or records why it could not.
func (r *Runner) usage(ctx context.Context, x *expRun, namespace string, selector map[string]string) *Usage {
	if r.cfg.Metrics == nil {
		x.usageWhy = r.why(CapMetrics)
		return nil
	}
	u, err := r.cfg.Metrics.Usage(ctx, namespace, selector)
	if err != nil {
		x.usageWhy = "the pods' usage could not be read from the metrics API: " + err.Error()
		return nil
	}
	x.event(r.cfg.Now(), "kubernetes", fmt.Sprintf("usage of the %d stressed pods: %dm CPU, %d MiB memory", u.Pods, u.CPUMilli, u.MemoryBytes>>20))
	return &u
}

// readProbes reads the live workloads' probes, bounded even after an
// interruption: they describe the stack, not the run.
func (r *Runner) readProbes(ctx context.Context, o *observed) {
	if r.cfg.Health == nil {
		o.probesWhy = r.why(CapHealth)
		return
	}
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.CollectTimeout)
	defer cancel()
	p, err := r.cfg.Health.Probes(hctx)
	if err != nil {
		o.probesWhy = "the workloads' probes could not be read: " + err.Error()
		return
	}
	o.probes = p
}

// leaderBefore asks who leads before the experiment starts.
func (r *Runner) leaderBefore(ctx context.Context, x *expRun) {
	if r.cfg.Leaders == nil || ctx.Err() != nil {
		return
	}
	l, err := r.cfg.Leaders.Leader(ctx, x.exp.Name)
	if err != nil {
		x.leaderWhy = "the leader before the fault could not be read: " + err.Error()
		return
	}
	x.leaderBefore = l
	if l != "" {
		x.event(r.cfg.Now(), "lab", "leader before the fault: "+l)
	}
}

// leaderAfter asks again once the experiment had its time to settle.
func (r *Runner) leaderAfter(ctx context.Context, x *expRun) {
	if x == nil || x.leaderBefore == "" || ctx.Err() != nil {
		return
	}
	l, err := r.cfg.Leaders.Leader(ctx, x.exp.Name)
	if err != nil {
		x.leaderWhy = "the leader after the fault could not be read: " + err.Error()
		return
	}
	x.leaderAfter = l
	x.event(r.cfg.Now(), "lab", "leader after the fault: "+l)
}

// collect reads the prober's timeline and verification. The timeline is
// read even after an interruption (bounded by CollectTimeout), so that the
// experiments that ran keep their figures; the verification only when the
// run completed its load.
func (r *Runner) collect(ctx context.Context, o *observed) {
	if r.cfg.Prober == nil {
		o.timelineErr = errors.New(r.why(CapProber))
		o.verifyWhy = r.why(CapProber)
		return
	}
	interrupted := ctx.Err() != nil
	if !interrupted {
		o.reached = StepCollect
		r.cfg.Progress.Start("Collecting the prober's timeline and verification")
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.CollectTimeout)
	defer cancel()
	tl, err := r.cfg.Prober.Timeline(cctx)
	if err != nil {
		o.timelineErr = err
	} else {
		o.timeline = &tl
	}
	if interrupted {
		o.verifyWhy = "the run was interrupted before the collection"
		o.notRun = append(o.notRun, reports.Skipped{Name: StepCollect + ": prober verification", Reason: "the run was interrupted"})
		return
	}
	v, verr := r.cfg.Prober.Verify(cctx)
	if verr != nil {
		o.verifyWhy = verr.Error()
	} else {
		o.verify = &v
	}
	r.cfg.Progress.End(errors.Join(o.timelineErr, verr))
}

func (r *Runner) scale(d time.Duration) time.Duration {
	return time.Duration(float64(d) * r.cfg.Scale)
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
