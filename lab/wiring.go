package lab

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/jewelry-shop/lab/chaosmesh"
	"github.com/jewelry-shop/lab/charts"
	"github.com/jewelry-shop/lab/cluster"
	"github.com/jewelry-shop/lab/lab/internal/kube"
	"github.com/jewelry-shop/lab/lab/judge"
	"github.com/jewelry-shop/lab/load"
)

// runnerConfig composes everything `lab validate` runs against one target:
// the load generator, the prober, Chaos Mesh, node failure, the observers
// and the health checks, the preflight and the sweep, and the plan with the
// targets found in the cluster. It is the one place that wires a
// validation: the command uses it, and so do the tests, with a target whose
// boundaries (load, node stopper, health URL, prober) stand in for what a
// simulated cluster cannot run.
func (l *Lab) runnerConfig(ctx context.Context, target validationTarget, v validationRun) (RunnerConfig, *Plan, error) {
	p := v.profile
	rc, cs, err := kube.Clients(target.kubeconfig)
	if err != nil {
		return RunnerConfig{}, nil, err
	}
	chaosClient, err := chaosmesh.NewClient(rc)
	if err != nil {
		return RunnerConfig{}, nil, err
	}
	engine := chaosmesh.NewEngine(chaosClient, l.log)
	execer := kube.PodExecer{Config: rc, Kube: cs}
	redisLabels := defaultStackTargets("").RedisLabels

	targets := chartTargets(StackNamespace, StackRelease)
	unavailable := map[Capability]string{}
	notRun := map[string]string{}
	environment := l.environment(p.Name, target.name, target.lab == nil)
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
			targets.RedisMasterPod, _, err = kube.RedisMaster(ctx, execer, cs, StackNamespace, redisLabels, "sentinel", "mymaster")
			if err != nil {
				return err
			}
			found = append(found, "Redis master "+targets.RedisMasterPod)
		}
		// A cluster lab did not create, or an offline lab, may run
		// PostgreSQL without the postgres-operator: then nothing is a
		// primary pod.
		dyn, err := dynamic.NewForConfig(rc)
		if err != nil {
			return fmt.Errorf("create Kubernetes client: %w", err)
		}
		why, err := kube.PostgresWithoutOperator(ctx, dyn, cs, StackNamespace, defaultStackTargets("").PostgresName)
		if err != nil {
			return err
		}
		if why != "" {
			if target.lab != nil && l.cfg.Stack.Offline {
				why = "one server without the operator (stack.offline: postgresql.mode=single, no replica, no failover); " + why
			}
			environment["postgresql"] = why
			for _, e := range p.Experiments {
				if r := faultRole(e); r == judge.RolePostgresPrimary || r == judge.RolePartition {
					notRun[e] = "no PostgreSQL pod to target: " + why
				}
			}
		}
		facts, err := kube.ClusterFacts(ctx, cs, charts.ChaosMeshNamespace, StackNamespace)
		if err != nil {
			return err
		}
		maps.Copy(environment, facts)
		if target.lab != nil {
			if node := testNode(target.lab, facts); node != "" {
				environment["k3s"] = node
			}
		}
		if slices.Contains(p.Experiments, chaosmesh.NodeFailure) && stopper != nil {
			var err error
			if targets.Node, err = kube.BusiestAgent(ctx, cs, StackNamespace, proberLabels()); err != nil {
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
		nodes = kube.NodeFailer{Stopper: stopper, Kube: cs, Cluster: target.name, Namespace: StackNamespace, Now: v.now, Log: l.log}
	}
	settings, reported, settingsWhy := l.validationSettings(ctx, target)
	pl, err := NewPlan(p, catalogue(targets, settings))
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
		healthURL = strings.TrimSuffix(target.shopURL, "/") + shopHealthPath
	}
	return RunnerConfig{
		Load:        loadRunner,
		Prober:      prober,
		Chaos:       engine,
		Nodes:       nodes,
		Unavailable: unavailable,
		NotRun:      notRun,
		Leaders: kube.Leaders{
			Exec: execer, Kube: cs, Namespace: StackNamespace,
			Postgres: targets.Postgres, Redis: redisLabels,
		},
		Metrics:    kube.Metrics{Kube: cs},
		Replicas:   kube.ReplicaObserver{Kube: cs, Namespace: StackNamespace, Deployment: StackRelease + "-web", HPA: StackRelease + "-web", Now: v.now},
		Health:     kube.HealthChecks{Kube: cs, Namespace: StackNamespace},
		HealthPoll: HTTPHealthPoller{URL: healthURL, Now: v.now},
		Preflight: func(ctx context.Context) error {
			if target.lab != nil {
				if err := l.startStoppedNodes(ctx, target.lab); err != nil {
					return err
				}
			}
			if err := kube.ChaosMeshReady(ctx, cs, charts.ChaosMeshNamespace); err != nil {
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
		Settings:    reported,
		SettingsWhy: settingsWhy,
		RunID:       v.runID,
		Seed:        int64(v.seed),
		Environment: environment,
		Now:         v.now,
		Log:         l.log,
		Progress:    l.progress,
	}, pl, nil
}

// proberLabels select the prober's pod, which node failure spares: its
// record of the run must survive the experiment (the runner also reads it
// as the run goes).
func proberLabels() map[string]string {
	return map[string]string{"app.kubernetes.io/instance": StackRelease, "app.kubernetes.io/component": "probe"}
}

// shopHealthPath is the health endpoint the run polls through the shop's
// URL: whether a web pod reaches PostgreSQL and Redis. The web pods'
// readiness (/readyz) does not ask the stores, so that a store fault does
// not empty the Service; this is where the stores' health is seen, all run.
const shopHealthPath = "/healthz/stores"

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
	// shopHealthPath, and the lab's node stopper on a lab cluster (none
	// elsewhere). Tests on a simulated cluster set stand-ins.
	load      LoadRunner
	prober    ProberReader
	healthURL string
	stopper   NodeStopper
}

// testNode names the k3s of a lab whose nodes run lab's test-only node
// image (internal/testnode) instead of rancher/k3s: a k3s-compatible node
// made of upstream Kubernetes parts, whose version is the kubelets'.
// It is empty for any other image.
func testNode(info *cluster.Info, facts map[string]string) string {
	for _, n := range info.Nodes {
		if n.TestImage == "node" {
			return fmt.Sprintf("k3s-compatible test node from Kubernetes %s parts (image %s, a test fixture: not k3s)", facts[kube.FactKubelet], n.Image)
		}
	}
	return ""
}
