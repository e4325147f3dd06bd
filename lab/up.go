package lab

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jewelry-shop/lab/cluster"
)

// UpResult says what `lab up` did and how to reach the cluster.
type UpResult struct {
	Cluster string
	// Reused is true when a healthy cluster existed and was kept.
	Reused        bool
	DockerVersion string
	Kubeconfig    string
	// DefaultKubeconfig is set when the cluster was merged into it.
	DefaultKubeconfig string
	APIServer         string
	IngressURL        string
	Nodes             []cluster.NodeStatus
	// Stack is what was installed into the cluster; nil when
	// stack.install is off.
	Stack   *StackResult
	Elapsed time.Duration
}

// UpOptions change how Up behaves on failure.
type UpOptions struct {
	// KeepOnFailure keeps a cluster this run created when a later step
	// fails, to look into it; by default a failed Up removes it.
	KeepOnFailure bool
}

// BrokenClusterError says that a cluster of the lab's name exists but cannot
// be used as it is.
type BrokenClusterError struct {
	Name    string
	Problem string
	Fix     string
}

func (e *BrokenClusterError) Error() string {
	return fmt.Sprintf("cluster %s exists but %s\n  fix: %s", e.Name, e.Problem, e.Fix)
}

func (l *Lab) spec() cluster.Spec {
	c := l.cfg.Cluster
	return cluster.Spec{
		Name:              c.Name,
		Servers:           c.Servers,
		Agents:            c.Agents,
		Image:             c.Image,
		LoadBalancerImage: c.LoadBalancerRef(),
		ToolsImage:        c.ToolsRef(),
		APIHost:           c.APIHost,
		APIPort:           c.APIPort,
		IngressHost:       c.IngressHost,
		IngressPort:       c.IngressPort,
		ServerArgs:        c.ServerArgs,
	}
}

// Up brings the lab's cluster up: preflight, images, creation, kubeconfig and
// the wait for every node to be Ready. An existing healthy cluster is reused.
// Everything the run needs from this machine (Docker, host ports, the stack's
// image archive and charts, the node images) is checked before anything is
// created. When Up fails or ctx is cancelled after it created the cluster, it
// deletes the cluster again, so a failed Up leaves nothing behind (unless
// opts.KeepOnFailure, and it was not cancelled).
func (l *Lab) Up(ctx context.Context, opts UpOptions) (res *UpResult, err error) {
	start := time.Now()
	c := l.cfg.Cluster
	res = l.upURLs()
	kcPath, err := l.cfg.KubeconfigPath()
	if err != nil {
		return nil, err
	}
	res.Kubeconfig = kcPath

	var undo cleanups
	defer func() {
		if err == nil || len(undo) == 0 {
			return
		}
		if opts.KeepOnFailure && ctx.Err() == nil {
			l.keep(ctx)
			return
		}
		l.progress.Start("Removing what this run created")
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		cerr := undo.run(cctx)
		l.progress.End(cerr)
		err = errors.Join(err, cerr)
	}()

	if err := l.step("Checking Docker", func() error {
		info, err := l.checkDocker(ctx)
		res.DockerVersion = info.Version
		if err == nil {
			l.progress.Update(fmt.Sprintf("Docker %s at %s", info.Version, info.Endpoint))
		}
		return err
	}); err != nil {
		return nil, err
	}
	var inputs *stackInputs
	if l.cfg.Stack.Install {
		if err := l.step("Checking the stack's image and charts", func() error {
			inputs, err = l.checkStackInputs(ctx)
			return err
		}); err != nil {
			return nil, err
		}
	}

	existing, err := l.clusters.Get(ctx, c.Name)
	switch {
	case errors.Is(err, cluster.ErrNotFound):
		if err := l.create(ctx, &undo, opts); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		if err := l.reusable(existing); err != nil {
			return nil, err
		}
		l.progress.Start("Reusing existing cluster " + c.Name)
		l.progress.End(nil)
		res.Reused = true
	}

	var kubeconfig []byte
	if err := l.step("Writing kubeconfig", func() error {
		kubeconfig, err = l.clusters.Kubeconfig(ctx, c.Name)
		if err != nil {
			return err
		}
		if err := writeKubeconfig(kcPath, kubeconfig); err != nil {
			return err
		}
		if c.UpdateDefaultKubeconfig {
			res.DefaultKubeconfig, err = mergeIntoDefaultKubeconfig(kubeconfig)
			return err
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if !res.Reused {
		undo.push("remove kubeconfig "+kcPath, func(context.Context) error {
			_, err := removeKubeconfig(kcPath, c.Kubeconfig == "")
			return err
		})
	}

	want := c.Servers + c.Agents
	if err := l.step(fmt.Sprintf("Waiting for %d nodes to be Ready", want), func() error {
		wctx, cancel := context.WithTimeout(ctx, c.ReadyTimeout)
		defer cancel()
		err := l.nodes.WaitReady(wctx, kubeconfig, want, func(ns []cluster.NodeStatus) {
			res.Nodes = ns
			l.progress.Update(fmt.Sprintf("%d/%d Ready", countReady(ns), want))
		})
		if err != nil && ctx.Err() == nil && wctx.Err() != nil {
			return fmt.Errorf("%w\n  fix: look at the node logs (`docker logs %s`), or raise cluster.readyTimeout (now %s)",
				err, "k3d-"+c.Name+"-server-0", c.ReadyTimeout)
		}
		return err
	}); err != nil {
		return nil, err
	}
	if inputs != nil {
		res.Stack, err = l.installStack(ctx, kubeconfig, inputs)
		if err != nil {
			return nil, err
		}
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// keep says what a failed Up leaves behind under --keep-on-failure: the
// cluster's containers, network and volumes as Docker has them now.
func (l *Lab) keep(ctx context.Context) {
	name := l.cfg.Cluster.Name
	l.progress.Start("Keeping what this run created, to look into (--keep-on-failure)")
	r, err := l.clusters.Residue(context.WithoutCancel(ctx), name)
	switch {
	case err != nil:
		l.progress.Update("could not list it: " + err.Error())
	case r.Empty():
		l.progress.Update("nothing: the creation failed before k3d made any container, network or volume")
	default:
		l.progress.Update(fmt.Sprintf("%s; `lab down` removes them", r))
	}
	l.progress.End(err)
}

// create runs the steps that make a new cluster and registers its removal.
func (l *Lab) create(ctx context.Context, undo *cleanups, opts UpOptions) error {
	spec := l.spec()
	if err := l.step("Checking host ports", func() error { return l.checkPorts(ctx) }); err != nil {
		return err
	}
	if err := l.step("Checking images", func() error {
		return l.clusters.EnsureImages(ctx, spec.Images(), func(image string) {
			l.progress.Update("pulling " + image)
		})
	}); err != nil {
		return err
	}
	undo.push("delete cluster "+spec.Name, func(ctx context.Context) error {
		_, err := l.clusters.Delete(ctx, spec.Name, false)
		return err
	})
	return l.step(fmt.Sprintf("Creating cluster %s (%d server, %d agents)", spec.Name, spec.Servers, spec.Agents), func() error {
		return l.clusters.Create(ctx, spec, cluster.CreateOptions{Timeout: l.cfg.Cluster.CreateTimeout, KeepOnFailure: opts.KeepOnFailure})
	})
}

// reusable accepts an existing cluster only when lab made it with the
// configured shape and every node container runs; otherwise it says what is
// wrong and how to recover.
func (l *Lab) reusable(info *cluster.Info) error {
	c := l.cfg.Cluster
	if !info.Managed {
		return &BrokenClusterError{
			Name: c.Name, Problem: "was not created by lab, so lab will not use or change it",
			Fix: "choose another name with cluster.name (or --name), or remove it yourself with `k3d cluster delete " + c.Name + "` (or `lab down --force`)",
		}
	}
	servers, agents := len(info.NodesByRole("server")), len(info.NodesByRole("agent"))
	if servers != c.Servers || agents != c.Agents {
		return &BrokenClusterError{
			Name:    c.Name,
			Problem: fmt.Sprintf("has %d servers and %d agents, the configuration asks for %d and %d", servers, agents, c.Servers, c.Agents),
			Fix:     "run `lab down` and then `lab up` to recreate it with the configured shape",
		}
	}
	var stopped []string
	for _, n := range info.Nodes {
		if !n.Running {
			stopped = append(stopped, fmt.Sprintf("%s (%s)", n.Name, n.Status))
		}
	}
	if len(stopped) > 0 {
		return &BrokenClusterError{
			Name:    c.Name,
			Problem: "these node containers are not running: " + strings.Join(stopped, ", "),
			Fix:     "start them with `docker start " + firstWord(stopped) + " …`, or run `lab down` and then `lab up` to recreate the cluster",
		}
	}
	return nil
}

func firstWord(s []string) string {
	if len(s) == 0 {
		return ""
	}
	f, _, _ := strings.Cut(s[0], " ")
	return f
}

func countReady(ns []cluster.NodeStatus) int {
	n := 0
	for _, s := range ns {
		if s.Ready {
			n++
		}
	}
	return n
}

// step runs fn as one progress step.
func (l *Lab) step(name string, fn func() error) error {
	l.progress.Start(name)
	err := fn()
	l.progress.End(err)
	return err
}

// cleanups is a stack of undo actions run in reverse order, keeping every
// error (like chainsaw's cleaner).
type cleanups []cleanup

type cleanup struct {
	what string
	fn   func(context.Context) error
}

func (c *cleanups) push(what string, fn func(context.Context) error) {
	*c = append(*c, cleanup{what, fn})
}

func (c cleanups) run(ctx context.Context) error {
	var errs []error
	for i := len(c) - 1; i >= 0; i-- {
		if err := c[i].fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c[i].what, err))
		}
	}
	return errors.Join(errs...)
}
