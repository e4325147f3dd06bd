package lab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/jewelry-shop/lab/charts"
	"github.com/jewelry-shop/lab/cluster"
	"github.com/jewelry-shop/lab/lab/internal/kube"
	"github.com/jewelry-shop/lab/reports"
)

// ValidateResult says where the report of a run went and how it ended.
type ValidateResult struct {
	RunID    string
	Dir      string
	Files    []string
	Report   *reports.Run
	ExitCode int
}

// NotALabError says that the cluster is missing or was not made by lab.
type NotALabError struct{ Problem, Fix string }

func (e *NotALabError) Error() string { return e.Problem + "\n  fix: " + e.Fix }

// Validate runs the profile's plan against the lab: load, the experiments at
// their offsets, the scale-down watch, collection, and writes the report
// (Markdown, JSON, JUnit, chart SVGs) to the run's directory. Once the
// request itself is valid (a known profile, a readable --compare report) the
// report is written on every path: also when the run cannot start (no
// cluster, an unreachable API), and when ctx is cancelled.
func (l *Lab) Validate(ctx context.Context, opts ValidateOptions) (*ValidateResult, error) {
	if _, ok := l.cfg.Profiles[opts.Profile]; !ok {
		return nil, &UnknownProfileError{Name: opts.Profile, Known: l.cfg.ProfileNames()}
	}
	p := l.cfg.Profile(opts.Profile)
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	runID := now().UTC().Format("20060102-150405")

	var previous *reports.Previous
	if opts.Compare != "" {
		prev, err := reports.Load(opts.Compare)
		if err != nil {
			return nil, &NotALabError{Problem: fmt.Sprintf("--compare %s: %v", opts.Compare, err), Fix: "pass the report.json an earlier lab validate wrote"}
		}
		previous = reports.Summarize(prev)
	}
	dir := opts.Out
	if dir == "" {
		dir = filepath.Join("lab-reports", runID+"-"+p.Name)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create the report directory: %w", err)
	}

	v := validationRun{profile: p, runID: runID, seed: opts.Seed, now: now}
	cfg, pl, err := l.validation(ctx, opts, v)
	if err != nil {
		cfg, pl = l.notStarted(ctx, v, err, opts.Kubeconfig != "")
	}
	run, runErr := NewRunner(cfg).Run(ctx, pl)
	run.Previous = previous
	res := &ValidateResult{RunID: runID, Dir: dir, Report: run, ExitCode: run.ExitCode()}
	files, werr := writeReports(ctx, dir, run)
	res.Files = files
	return res, errors.Join(runErr, werr)
}

// validationRun is what names and seeds one validation.
type validationRun struct {
	profile Profile
	runID   string
	seed    uint64
	now     func() time.Time
}

// validation resolves the cluster the validation runs against and composes
// the runner's configuration and plan for it.
func (l *Lab) validation(ctx context.Context, opts ValidateOptions, v validationRun) (RunnerConfig, *Plan, error) {
	var target validationTarget
	err := l.step("Finding the cluster", func() error {
		var err error
		target, err = l.validationTarget(ctx, opts)
		if err == nil {
			l.progress.Update(target.name)
		}
		return err
	})
	if err != nil {
		return RunnerConfig{}, nil, err
	}
	return l.runnerConfig(ctx, target, v)
}

// notStarted is the configuration of a run that cannot start: its preflight
// fails with why, so that the report says so and marks every step not run.
func (l *Lab) notStarted(ctx context.Context, v validationRun, why error, foreign bool) (RunnerConfig, *Plan) {
	settings, _ := l.stackSettings(ctx) // a plan of names and offsets: zero limits do
	pl, err := NewPlan(v.profile, catalogue(chartTargets(StackNamespace, StackRelease), settings))
	if err != nil {
		// A profile whose plan does not fit (its experiments outlast its
		// load, say): the run is only its preflight, which fails with why,
		// so that the report says it instead of describing a run of
		// nothing that completed.
		pl = &Plan{Profile: v.profile, Steps: []Step{{Kind: StepPreflight, Name: "preflight"}}}
	}
	unavailable := map[Capability]string{}
	for _, c := range []Capability{CapProber, CapChaos, CapNodes, CapReplicas, CapLeaders, CapMetrics, CapHealth, CapHealthPoll} {
		unavailable[c] = "the run did not start"
	}
	return RunnerConfig{
		Preflight:   func(context.Context) error { return why },
		Unavailable: unavailable,
		SettingsWhy: "the run did not start",
		RunID:       v.runID,
		Seed:        int64(v.seed),
		Environment: l.environment(v.profile.Name, "", foreign),
		Now:         v.now,
		Log:         l.log,
		Progress:    l.progress,
	}, pl
}

// validationTarget resolves where the validation runs: the lab's k3d
// cluster, or with opts.Kubeconfig an existing cluster, which always needs
// the flag that allows chaos on a cluster lab did not create.
func (l *Lab) validationTarget(ctx context.Context, opts ValidateOptions) (validationTarget, error) {
	c := l.cfg.Cluster
	if opts.Kubeconfig != "" {
		if !opts.AllowForeignCluster {
			return validationTarget{}, &NotALabError{
				Problem: "the cluster of " + opts.Kubeconfig + " was not created by lab; lab breaks things on purpose and will not do it there",
				Fix:     "pass --allow-chaos-on-foreign-cluster if you really mean it (a shared staging cluster, say)",
			}
		}
		if opts.Target == "" {
			return validationTarget{}, &NotALabError{Problem: "no shop URL for the cluster of " + opts.Kubeconfig, Fix: "pass --target with the URL the shop answers on there"}
		}
		kc, name, err := kubeconfigContext(opts.Kubeconfig, opts.Context)
		if err != nil {
			return validationTarget{}, err
		}
		u, err := url.Parse(opts.Target)
		if err != nil || u.Host == "" {
			return validationTarget{}, &NotALabError{Problem: fmt.Sprintf("--target %q is not a URL", opts.Target), Fix: "pass it like https://shop.staging.example"}
		}
		targets := defaultStackTargets(opts.Target)
		targets.WithoutOperator = true
		return validationTarget{
			name: name, kubeconfig: kc, shopURL: opts.Target, shopHost: u.Hostname(),
			probe: kube.NewStackProbe(targets),
		}, nil
	}
	info, err := l.clusters.Get(ctx, c.Name)
	switch {
	case errors.Is(err, cluster.ErrNotFound):
		return validationTarget{}, &NotALabError{Problem: fmt.Sprintf("there is no lab: cluster %s does not exist", c.Name), Fix: "bring it up first with `lab up`"}
	case err != nil:
		return validationTarget{}, err
	case !info.Managed && !opts.AllowForeignCluster:
		return validationTarget{}, &NotALabError{
			Problem: fmt.Sprintf("cluster %s was not created by lab; lab breaks things on purpose and will not do it there", c.Name),
			Fix:     "validate a lab made by `lab up`, or pass --allow-chaos-on-foreign-cluster if you really mean it",
		}
	}
	kc, err := l.clusters.Kubeconfig(ctx, c.Name)
	if err != nil {
		return validationTarget{}, err
	}
	up := l.upURLs()
	return validationTarget{name: c.Name, kubeconfig: kc, shopURL: up.IngressURL, shopHost: c.IngressHost, probe: l.probe, lab: info}, nil
}

// kubeconfigContext reads a kubeconfig file and returns it with the given
// context (or its current one) made current, and that context's name.
func kubeconfigContext(path, context string) ([]byte, string, error) {
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("read kubeconfig %s: %w", path, err)
	}
	if context == "" {
		context = cfg.CurrentContext
	}
	if _, ok := cfg.Contexts[context]; !ok {
		var names []string
		for n := range cfg.Contexts {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, "", &NotALabError{Problem: fmt.Sprintf("kubeconfig %s has no context %q", path, context), Fix: fmt.Sprintf("pass --context with one of %v", names)}
	}
	cfg.CurrentContext = context
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, "", fmt.Errorf("write kubeconfig for context %s: %w", context, err)
	}
	return b, context, nil
}

// startStoppedNodes starts the node containers an earlier, interrupted run
// left stopped (a node failure whose restart never came), so that this run
// starts from a whole cluster.
func (l *Lab) startStoppedNodes(ctx context.Context, info *cluster.Info) error {
	for _, n := range info.Nodes {
		if n.Running || n.Role == "loadbalancer" {
			continue
		}
		l.log.Warn("starting a node an earlier run left stopped", "node", n.Name, "state", n.Status)
		if err := l.stopper.StartNode(ctx, info.Name, n.Name); err != nil {
			return fmt.Errorf("start node %s that an earlier run left stopped: %w", n.Name, err)
		}
	}
	return nil
}

// environment lists the versions the report states. Of a cluster lab did
// not create (foreign), the k3d, k3s and chart versions lab would install
// say nothing: runnerConfig reads that cluster's own facts instead.
func (l *Lab) environment(profile, clusterName string, foreign bool) map[string]string {
	env := map[string]string{
		"profile":         profile,
		"shop image file": l.cfg.ShopImageArchive(),
		"lab":             l.build,
	}
	if !foreign {
		maps.Copy(env, map[string]string{
			"k3s image":               l.cfg.Cluster.Image,
			"k3d helpers":             l.cfg.Cluster.HelperImageTag,
			"stack profile":           l.cfg.Stack.Profile,
			"chart chaos-mesh":        charts.ChaosMeshVersion,
			"chart postgres-operator": charts.PostgresOperatorVersion,
		})
		if l.cfg.Stack.Offline {
			// lab up installed neither (stack.offline): the rows of
			// what runs instead (postgresql, chaos mesh controller)
			// come from the cluster.
			env["chart chaos-mesh"] = "not installed (stack.offline)"
			env["chart postgres-operator"] = "not installed (stack.offline)"
		}
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/k3d-io/k3d/v5" {
				env["k3d library"] = d.Version
			}
		}
	}
	if ref, err := cluster.ArchiveRef(l.cfg.ShopImageArchive()); err == nil {
		env["shop image"] = ref
	}
	if clusterName != "" {
		env["cluster"] = clusterName
	}
	return env
}

// writeReports writes report.md, report.json, report.xml (JUnit) and the
// charts' SVGs under charts/.
func writeReports(ctx context.Context, dir string, run *reports.Run) ([]string, error) {
	var files []string
	var errs []error
	for _, f := range []struct {
		name  string
		write func(*os.File) error
	}{
		{"report.md", func(w *os.File) error { return reports.WriteMarkdown(w, run) }},
		{"report.json", func(w *os.File) error { return reports.WriteJSON(w, run) }},
		{"report.xml", func(w *os.File) error { return reports.WriteJUnit(w, run) }},
	} {
		path := filepath.Join(dir, f.name)
		file, err := os.Create(path)
		if err == nil {
			err = f.write(file)
			if cerr := file.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", path, err))
			continue
		}
		files = append(files, path)
	}
	svgs, err := reports.WriteChartSVGs(context.WithoutCancel(ctx), dir, run)
	files = append(files, svgs...)
	return files, errors.Join(append(errs, err)...)
}
