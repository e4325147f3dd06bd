package lab

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/jewelry-shop/lab/chaosmesh"
	"github.com/jewelry-shop/lab/charts"
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

// catalogue is the experiment catalogue for targets on the stack with
// settings s: the stresses sized from the web container's rendered limits.
func catalogue(targets chaosmesh.Targets, s charts.ShopSettings) []chaosmesh.Experiment {
	targets.WebLimits = chaosmesh.Load{CPUMilli: s.Web.CPULimitMilli, MemoryBytes: s.Web.MemoryLimitBytes}
	return chaosmesh.Catalogue(targets, chaosmesh.DefaultTiming())
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
