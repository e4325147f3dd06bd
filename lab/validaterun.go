package lab

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/jewelry-shop/lab/chaosmesh"
	"github.com/jewelry-shop/lab/charts"
	"github.com/jewelry-shop/lab/cluster"
	"github.com/jewelry-shop/lab/load"
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
		cfg, pl = l.notStarted(v, err)
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
func (l *Lab) notStarted(v validationRun, why error) (RunnerConfig, *Plan) {
	pl, err := NewPlan(v.profile, chaosmesh.Catalogue(chartTargets(StackNamespace, StackRelease), chaosmesh.DefaultTiming()))
	if err != nil { // the profile was validated with the configuration
		pl = &Plan{Profile: v.profile}
	}
	unavailable := map[Capability]string{}
	for _, c := range []Capability{CapProber, CapChaos, CapNodes, CapReplicas, CapLeaders, CapMetrics, CapHealth, CapHealthPoll} {
		unavailable[c] = "the run did not start"
	}
	return RunnerConfig{
		Preflight:   func(context.Context) error { return why },
		Unavailable: unavailable,
		RunID:       v.runID,
		Seed:        int64(v.seed),
		Environment: l.environment(v.profile.Name, ""),
		Now:         v.now,
		Log:         l.log,
		Progress:    l.progress,
	}, pl
}

// runnerConfig composes everything `lab validate` runs against one target:
// the load generator, the prober, Chaos Mesh, node failure, the observers
// and the health checks, the preflight and the sweep, and the plan with the
// targets found in the cluster. It is the one place that wires a
// validation: the command uses it, and so do the tests, with a target whose
// boundaries (load, node stopper, health URL, prober) stand in for what a
// simulated cluster cannot run.
func (l *Lab) runnerConfig(ctx context.Context, target validationTarget, v validationRun) (RunnerConfig, *Plan, error) {
	p := v.profile
	rc, kube, err := kubeClients(target.kubeconfig)
	if err != nil {
		return RunnerConfig{}, nil, err
	}
	chaosClient, err := chaosmesh.NewClient(rc)
	if err != nil {
		return RunnerConfig{}, nil, err
	}
	engine := chaosmesh.NewEngine(chaosClient, l.log)
	execer := PodExecer{Config: rc, Kube: kube}
	redisLabels := defaultStackTargets("").RedisLabels

	targets := chartTargets(StackNamespace, StackRelease)
	unavailable := map[Capability]string{}
	nodes := NodeFailer(nil)
	stopper := target.stopper
	if stopper == nil && target.lab != nil {
		stopper = l.stopper
	}
	if stopper == nil {
		unavailable[CapNodes] = "not a lab cluster: stopping a node needs the lab's k3d cluster"
	}
	if err := l.step("Finding the targets", func() error {
		var found []string
		if slices.Contains(p.Experiments, chaosmesh.RedisMasterFailure) {
			var err error
			targets.RedisMasterPod, _, err = RedisMaster(ctx, execer, kube, StackNamespace, redisLabels, "sentinel", "mymaster")
			if err != nil {
				return err
			}
			found = append(found, "Redis master "+targets.RedisMasterPod)
		}
		if slices.Contains(p.Experiments, chaosmesh.NodeFailure) && stopper != nil {
			var err error
			if targets.Node, err = busiestAgent(ctx, kube, StackNamespace); err != nil {
				return err
			}
			found = append(found, "node to stop "+targets.Node)
		}
		l.progress.Update(strings.Join(found, ", "))
		return nil
	}); err != nil {
		return RunnerConfig{}, nil, err
	}
	if stopper != nil {
		nodes = ClusterNodeFailer{Stopper: stopper, Kube: kube, Cluster: target.name, Namespace: StackNamespace, Now: v.now, Log: l.log}
	}
	pl, err := NewPlan(p, chaosmesh.Catalogue(targets, chaosmesh.DefaultTiming()))
	if err != nil {
		return RunnerConfig{}, nil, err
	}

	loadRunner := target.load
	if loadRunner == nil {
		loadRunner = GeneratorLoad(load.Options{
			Target:      target.shopURL,
			AllowHosts:  []string{target.shopHost},
			Scenario:    load.DefaultScenario(),
			Model:       load.Closed,
			Users:       p.Users,
			SpawnRate:   p.SpawnRate,
			MaxRequests: 100_000_000,
			Timeout:     10 * time.Second,
			Seed:        v.seed,
			Logger:      l.log,
			OnProgress: func(lp load.Progress) {
				l.progress.Update(fmt.Sprintf("%s; %s of load left", load.FormatProgress(lp), fmtDur(max(p.Load-lp.Elapsed, 0))))
			},
		}, v.now)
	}
	prober := target.prober
	if prober == nil {
		proxyClient, err := rest.HTTPClientFor(rc)
		if err != nil {
			return RunnerConfig{}, nil, fmt.Errorf("create the service proxy client: %w", err)
		}
		prober = HTTPProber{Client: proxyClient, Base: strings.TrimSuffix(rc.Host, "/") + "/api/v1/namespaces/" + StackNamespace + "/services/" + StackRelease + "-probe:http/proxy"}
	}
	healthURL := target.healthURL
	if healthURL == "" {
		healthURL = strings.TrimSuffix(target.shopURL, "/") + "/healthz"
	}
	return RunnerConfig{
		Load:        loadRunner,
		Prober:      prober,
		Chaos:       engine,
		Nodes:       nodes,
		Unavailable: unavailable,
		Leaders: StackLeaders{
			Exec: execer, Kube: kube, Namespace: StackNamespace,
			Postgres: targets.Postgres, Redis: redisLabels,
		},
		Metrics:    KubeMetrics{Kube: kube},
		Replicas:   KubeReplicaObserver{Kube: kube, Namespace: StackNamespace, Deployment: StackRelease + "-web", HPA: StackRelease + "-web", Now: v.now},
		Health:     KubeHealthChecks{Kube: kube, Namespace: StackNamespace},
		HealthPoll: HTTPHealthPoller{URL: healthURL, Now: v.now},
		Preflight: func(ctx context.Context) error {
			if target.lab != nil {
				if err := l.startStoppedNodes(ctx, target.lab); err != nil {
					return err
				}
			}
			if err := chaosMeshReady(ctx, kube); err != nil {
				return err
			}
			rd, err := target.probe.Check(ctx, target.kubeconfig)
			if err != nil {
				return err
			}
			if !rd.Ready() {
				return fmt.Errorf("the lab is not ready: %s\n  fix: `lab status` shows what is missing; `lab up` repairs an incomplete stack", rd.Summary())
			}
			removed, err := engine.Sweep(ctx, StackNamespace)
			if len(removed) > 0 {
				l.log.Info("removed leftovers of an earlier run", "objects", removed)
			}
			return err
		},
		Sweep:       func(ctx context.Context) ([]string, error) { return engine.Sweep(ctx, StackNamespace) },
		RunID:       v.runID,
		Seed:        int64(v.seed),
		Environment: l.environment(p.Name, target.name),
		Now:         v.now,
		Log:         l.log,
		Progress:    l.progress,
	}, pl, nil
}

// validationTarget is the cluster a validation runs against.
type validationTarget struct {
	name       string
	kubeconfig []byte
	shopURL    string
	shopHost   string
	probe      StackProbe
	// lab is the k3d cluster when it is the lab's; nil for another cluster.
	lab *cluster.Info

	// The boundaries that the validation reaches outside the Kubernetes
	// API; empty means the real ones: the load generator against shopURL,
	// the prober through the API server's service proxy, shopURL's
	// /healthz, and the lab's node stopper on a lab cluster (none
	// elsewhere). Tests on a simulated cluster set stand-ins.
	load      LoadRunner
	prober    ProberReader
	healthURL string
	stopper   NodeStopper
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
		return validationTarget{
			name: name, kubeconfig: kc, shopURL: opts.Target, shopHost: u.Hostname(),
			probe: newKubeProbe(defaultStackTargets(opts.Target)),
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

// chaosMeshReady checks that Chaos Mesh's controller and its daemon on
// every node are ready: without them every fault would be "not injected".
func chaosMeshReady(ctx context.Context, kube kubernetes.Interface) error {
	ns := charts.ChaosMeshNamespace
	deps, err := kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("check Chaos Mesh: %w", err)
	}
	sets, err := kube.AppsV1().DaemonSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("check Chaos Mesh: %w", err)
	}
	fix := "  fix: `kubectl -n " + ns + " get pods` shows why; `lab up` installs or repairs Chaos Mesh"
	if len(deps.Items) == 0 {
		return fmt.Errorf("chaos mesh is not installed: no Deployment in namespace %s\n%s", ns, fix)
	}
	var problems []string
	for _, d := range deps.Items {
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		if d.Status.ReadyReplicas < want {
			problems = append(problems, fmt.Sprintf("Deployment %s has %d of %d replicas ready", d.Name, d.Status.ReadyReplicas, want))
		}
	}
	for _, ds := range sets.Items {
		if ds.Status.NumberReady < ds.Status.DesiredNumberScheduled || ds.Status.DesiredNumberScheduled == 0 {
			problems = append(problems, fmt.Sprintf("DaemonSet %s is ready on %d of %d nodes", ds.Name, ds.Status.NumberReady, ds.Status.DesiredNumberScheduled))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("chaos mesh is not ready: %s\n%s", strings.Join(problems, "; "), fix)
	}
	return nil
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

// environment lists the versions the report states.
func (l *Lab) environment(profile, clusterName string) map[string]string {
	env := map[string]string{
		"k3s image":               l.cfg.Cluster.Image,
		"k3d helpers":             l.cfg.Cluster.HelperImageTag,
		"profile":                 profile,
		"stack profile":           l.cfg.Stack.Profile,
		"shop image file":         l.cfg.ShopImageArchive(),
		"chart chaos-mesh":        charts.ChaosMeshVersion,
		"chart postgres-operator": charts.PostgresOperatorVersion,
		"lab":                     l.build,
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

// busiestAgent picks the agent node that runs the most pods of the
// namespace, so that the node-failure experiment moves as much as it can.
func busiestAgent(ctx context.Context, kube kubernetes.Interface, namespace string) (string, error) {
	nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("list nodes: %w", err)
	}
	count := map[string]int{}
	for _, n := range nodes.Items {
		if _, server := n.Labels["node-role.kubernetes.io/control-plane"]; !server {
			count[n.Name] = 0
		}
	}
	if len(count) == 0 {
		return "", errors.New("no agent node to stop: the node-failure experiment needs a cluster with agents")
	}
	pods, err := kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("list pods: %w", err)
	}
	for _, p := range pods.Items {
		if _, ok := count[p.Spec.NodeName]; ok {
			count[p.Spec.NodeName]++
		}
	}
	names := make([]string, 0, len(count))
	for n := range count {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if count[names[i]] != count[names[j]] {
			return count[names[i]] > count[names[j]]
		}
		return names[i] < names[j]
	})
	return names[0], nil
}
