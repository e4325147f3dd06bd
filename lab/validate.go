package lab

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/jewelry-shop/lab/chaosmesh"
	"github.com/jewelry-shop/lab/charts"
	"github.com/jewelry-shop/lab/lab/judge"
)

// Selectors of the jewelry-shop chart's workloads, as the catalogue targets
// them. They follow the chart's standard labels and the postgres-operator's.
func chartTargets(namespace, release string) chaosmesh.Targets {
	return chaosmesh.Targets{
		Namespace: namespace,
		Web: map[string]string{
			"app.kubernetes.io/name":      "jewelry-shop",
			"app.kubernetes.io/instance":  release,
			"app.kubernetes.io/component": "web",
		},
		Postgres: map[string]string{"application": "spilo", "cluster-name": "jewelry-shop-db"},
	}
}

// stackSettings renders the jewelry-shop chart as lab up installs it (the
// configuration's stack profile) and reads the settings the experiments
// depend on from the rendered objects.
func (l *Lab) stackSettings(ctx context.Context) (charts.ShopSettings, error) {
	rel, err := charts.JewelryShop(l.cfg.Stack.Profile, "")
	if err != nil {
		return charts.ShopSettings{}, err
	}
	s, err := charts.JewelrySettings(ctx, rel)
	if err != nil {
		return charts.ShopSettings{}, fmt.Errorf("read the settings of the stack (profile %s): %w", l.cfg.Stack.Profile, err)
	}
	return s, nil
}

// failoverMargin is how much longer than the failover's timers a leader is
// held down: the takeover and the promotion take a few seconds more.
const failoverMargin = 10 * time.Second

// catalogue is the experiment catalogue for targets on the stack with
// settings s: the stresses sized from the web container's limits, the
// leaders held down for longer than the timers of their failover.
func catalogue(targets chaosmesh.Targets, s charts.ShopSettings) []chaosmesh.Experiment {
	targets.WebLimits = chaosmesh.Load{CPUMilli: s.Web.CPULimitMilli, MemoryBytes: s.Web.MemoryLimitBytes}
	tm := chaosmesh.DefaultTiming()
	tm.PrimaryDown = max(tm.PrimaryDown, s.Patroni.TTL+s.Patroni.LoopWait+failoverMargin)
	tm.MasterDown = max(tm.MasterDown, s.Sentinel.DownAfter+failoverMargin)
	return chaosmesh.Catalogue(targets, tm)
}

// validationSettings are the settings a validation's experiments are sized
// by, and the report's "depends on" rows: those of the jewelry-shop release
// deployed on the target. When they cannot be read the experiments are
// sized by the chart as lab up would install it, and the report states no
// settings, saying why.
func (l *Lab) validationSettings(ctx context.Context, target validationTarget) (charts.ShopSettings, *judge.Settings, string) {
	in, err := charts.NewInstaller(target.kubeconfig, charts.Options{Logger: l.log})
	var s charts.ShopSettings
	if err == nil {
		s, err = in.DeployedSettings(ctx, StackRelease, StackNamespace)
	}
	if err != nil {
		rendered, rerr := l.stackSettings(ctx)
		if rerr != nil {
			l.log.Warn("the stresses are sized without the web limits", "error", rerr)
		}
		return rendered, nil, "the settings of the jewelry-shop release could not be read from the cluster: " + err.Error()
	}
	js := &judge.Settings{
		Source:     "those of the release " + StackRelease + " deployed in namespace " + StackNamespace,
		PatroniTTL: s.Patroni.TTL, PatroniLoopWait: s.Patroni.LoopWait, PatroniRetryTimeout: s.Patroni.RetryTimeout, PatroniSynchronousMode: s.Patroni.SynchronousMode,
		SentinelDownAfter: s.Sentinel.DownAfter, SentinelFailoverTimeout: s.Sentinel.FailoverTimeout,
		NodeFailureToleration: s.NodeFailureToleration,
		WebCPULimitMilli:      s.Web.CPULimitMilli, WebMemoryLimitBytes: s.Web.MemoryLimitBytes,
	}
	if target.lab != nil {
		// Set on the k3s server by lab up; lab knows it only for its own cluster.
		js.NodeMonitorGracePeriod = l.cfg.Cluster.nodeMonitorGracePeriod()
		js.Source += " and the k3s arguments of lab's configuration"
	}
	return s, js, ""
}

// Lab namespace and release of the stack.
const (
	StackNamespace = "jewelry-shop"
	StackRelease   = "jewelry-shop"
)

// ValidateOptions are the choices of one `lab validate`.
type ValidateOptions struct {
	Profile string
	// Out is the directory for the plan, the chaos objects and the report;
	// empty means ./lab-reports/<run id>.
	Out    string
	DryRun bool
	// Seed seeds the load's random choices; the report states it.
	Seed uint64
	// AllowForeignCluster allows faults on a cluster lab did not create.
	AllowForeignCluster bool
	// Kubeconfig and Context point the validation at an existing cluster
	// (a shared staging cluster) instead of the lab's; Target is then the
	// shop's URL there. Node failure needs k3d and is not run.
	Kubeconfig, Context, Target string
	// Compare is an earlier run's report.json whose figures the report
	// shows beside this run's.
	Compare string
	// Now is the clock that names the run; time.Now when nil.
	Now func() time.Time
}

// DryRunResult says what a dry run wrote.
type DryRunResult struct {
	RunID string
	Plan  *Plan
	Dir   string
	Files []string
}

// ValidateDryRun lays out the profile's plan and writes it with every Chaos
// Mesh object it would create, touching no cluster and needing no Docker.
func (l *Lab) ValidateDryRun(ctx context.Context, opts ValidateOptions) (*DryRunResult, error) {
	if _, ok := l.cfg.Profiles[opts.Profile]; !ok {
		return nil, &UnknownProfileError{Name: opts.Profile, Known: l.cfg.ProfileNames()}
	}
	p := l.cfg.Profile(opts.Profile)
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	runID := now().UTC().Format("20060102-150405")
	settings, err := l.stackSettings(ctx)
	if err != nil {
		return nil, err
	}
	pl, err := NewPlan(p, catalogue(chartTargets(StackNamespace, StackRelease), settings))
	if err != nil {
		return nil, err
	}
	dir := opts.Out
	if dir == "" {
		dir = filepath.Join("lab-reports", runID+"-"+p.Name)
	}
	l.progress.Start(fmt.Sprintf("Writing the %s plan to %s", p.Name, dir))
	files, err := DryRun(ctx, pl, dir, runID)
	l.progress.End(err)
	if err != nil {
		return nil, err
	}
	return &DryRunResult{RunID: runID, Plan: pl, Dir: dir, Files: files}, nil
}

// UnknownProfileError names a profile that does not exist and those that do.
type UnknownProfileError struct {
	Name  string
	Known []string
}

func (e *UnknownProfileError) Error() string {
	return fmt.Sprintf("no profile %q; the profiles are %v", e.Name, e.Known)
}
