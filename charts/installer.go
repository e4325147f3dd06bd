package charts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Installer upgrades or installs the lab's Helm releases in one cluster.
type Installer struct {
	src       *Source
	log       *slog.Logger
	clientset kubernetes.Interface
	// actionConfig returns Helm's configuration for a namespace; tests
	// replace it with an in-memory one.
	actionConfig func(namespace string) (*action.Configuration, error)
	// pollInterval is how often progress is reported while waiting.
	pollInterval time.Duration
}

// Result says what Install did.
type Result struct {
	Release   string
	Namespace string
	// Chart and Version are the installed chart's name and version,
	// AppVersion the version of what it deploys.
	Chart      string
	Version    string
	AppVersion string
	// Revision is the release's revision after Install; Upgraded is true
	// when the release existed before (a revision above 1).
	Revision int
	Upgraded bool
	// Recovered names a previous revision left pending by an interrupted
	// run, which Install marked failed so that it could upgrade.
	Recovered string
	Elapsed   time.Duration
	// Notes are the chart's rendered NOTES.txt.
	Notes string
}

// Progress is the state of a release while Install waits for it: its pods
// (in the release's namespace) and how many are ready.
type Progress struct {
	Release string
	Ready   int
	Total   int
	// Waiting are the pods that are not ready, each as "name: reason".
	Waiting []string
	Elapsed time.Duration
}

// String is the progress line, e.g. "jewelry-shop: 9/12 pods ready, waiting
// for jewelry-shop-web-5d9c-x2k (ContainerCreating), … (1m10s)".
func (p Progress) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d/%d pods ready", p.Release, p.Ready, p.Total)
	if len(p.Waiting) > 0 {
		shown := p.Waiting
		if len(shown) > 3 {
			shown = shown[:3]
		}
		fmt.Fprintf(&b, ", waiting for %s", strings.Join(shown, ", "))
		if len(p.Waiting) > len(shown) {
			fmt.Fprintf(&b, " and %d more", len(p.Waiting)-len(shown))
		}
	}
	fmt.Fprintf(&b, " (%s)", p.Elapsed.Round(time.Second))
	return b.String()
}

// NewInstaller returns an Installer for the cluster that kubeconfig (the
// bytes of a kubeconfig file; its current context) reaches.
func NewInstaller(kubeconfig []byte, opts Options) (*Installer, error) {
	kc, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("parse the kubeconfig: %w", err)
	}
	rc, err := restConfig(clientcmd.NewDefaultClientConfig(*kc, nil))
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("create a Kubernetes client: %w", err)
	}
	in := newInstaller(cs, opts)
	in.actionConfig = func(namespace string) (*action.Configuration, error) {
		getter, err := newRESTGetter(kc, namespace)
		if err != nil {
			return nil, err
		}
		cfg := new(action.Configuration)
		if err := cfg.Init(getter, namespace, "secret", in.helmLog); err != nil {
			return nil, fmt.Errorf("initialise Helm for namespace %s: %w", namespace, err)
		}
		return cfg, nil
	}
	return in, nil
}

// newInstaller returns an Installer without Helm's configuration.
func newInstaller(cs kubernetes.Interface, opts Options) *Installer {
	src := NewSource(opts)
	return &Installer{src: src, log: src.log, clientset: cs, pollInterval: 5 * time.Second}
}

// helmLog is Helm's debug log, sent to the injected logger.
func (in *Installer) helmLog(format string, args ...any) {
	in.log.Debug(fmt.Sprintf(format, args...), "source", "helm")
}

// Source returns the installer's chart source.
func (in *Installer) Source() *Source { return in.src }

// Install upgrades the release, or installs it when it does not exist, and
// waits up to rel.Timeout for its workloads to be ready. Values are exactly
// rel.Values (a previous revision's values are not reused), so running it
// again with the same release changes nothing. A revision left pending by an
// interrupted run is marked failed first. When the wait times out, the error
// is a *NotReadyError that says which pods are not ready and why.
func (in *Installer) Install(ctx context.Context, rel Release) (*Result, error) {
	start := time.Now()
	if rel.Name == "" || rel.Namespace == "" {
		return nil, errors.New("install: the release needs a name and a namespace")
	}
	c, err := in.src.Load(ctx, rel.Chart)
	if err != nil {
		return nil, err
	}
	for _, api := range rel.RequiresAPIs {
		if err := in.waitAPI(ctx, rel, api); err != nil {
			return nil, err
		}
	}
	cfg, err := in.actionConfig(rel.Namespace)
	if err != nil {
		return nil, err
	}
	res := &Result{Release: rel.Name, Namespace: rel.Namespace, Chart: c.Metadata.Name, Version: c.Metadata.Version, AppVersion: c.Metadata.AppVersion}

	last, err := cfg.Releases.Last(rel.Name)
	switch {
	case errors.Is(err, driver.ErrReleaseNotFound):
		last = nil
	case err != nil:
		return nil, fmt.Errorf("read the history of release %s: %w", rel.Name, err)
	}
	if last != nil && last.Info.Status.IsPending() {
		res.Recovered = fmt.Sprintf("revision %d (%s)", last.Version, last.Info.Status)
		in.log.InfoContext(ctx, "marking a revision left pending by an interrupted run as failed", "release", rel.Name, "revision", last.Version, "status", last.Info.Status)
		last.SetStatus(release.StatusFailed, "interrupted; marked failed by lab before an upgrade")
		if err := cfg.Releases.Update(last); err != nil {
			return nil, fmt.Errorf("mark the pending revision %d of release %s failed: %w", last.Version, rel.Name, err)
		}
	}

	wctx, stopProgress := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		in.reportProgress(wctx, rel, start)
	}()
	var r *release.Release
	verb := "install"
	if last == nil || last.Info.Status == release.StatusUninstalled {
		r, err = in.install(ctx, cfg, c, rel)
	} else {
		verb = "upgrade"
		r, err = in.upgrade(ctx, cfg, c, rel)
	}
	stopProgress()
	<-done
	if err != nil {
		if isWaitTimeout(ctx, err) {
			return nil, in.notReady(ctx, rel, err)
		}
		return nil, fmt.Errorf("%s release %s (%s) in namespace %s: %w", verb, rel.Name, rel.Chart, rel.Namespace, err)
	}
	res.Revision = r.Version
	res.Upgraded = r.Version > 1
	res.Notes = r.Info.Notes
	res.Elapsed = time.Since(start)
	in.log.InfoContext(ctx, "release ready", "release", rel.Name, "revision", r.Version, "elapsed", res.Elapsed)
	return res, nil
}

func (in *Installer) install(ctx context.Context, cfg *action.Configuration, c *chart.Chart, rel Release) (*release.Release, error) {
	a := action.NewInstall(cfg)
	a.ReleaseName = rel.Name
	a.Namespace = rel.Namespace
	a.CreateNamespace = true
	a.Wait = true
	a.Timeout = timeout(rel)
	// A revision that is uninstalled but kept in the history is replaced.
	a.Replace = true
	return a.RunWithContext(ctx, c, copyValues(rel.Values))
}

func (in *Installer) upgrade(ctx context.Context, cfg *action.Configuration, c *chart.Chart, rel Release) (*release.Release, error) {
	a := action.NewUpgrade(cfg)
	a.Namespace = rel.Namespace
	a.ResetValues = true
	a.Wait = true
	a.Timeout = timeout(rel)
	a.MaxHistory = 5
	return a.RunWithContext(ctx, rel.Name, c, copyValues(rel.Values))
}

// timeout is the release's wait timeout, 5 minutes when unset.
func timeout(rel Release) time.Duration {
	if rel.Timeout > 0 {
		return rel.Timeout
	}
	return 5 * time.Minute
}

// isWaitTimeout tells a wait that ran out of time from other failures.
// Helm's wait returns its own context's deadline error.
func isWaitTimeout(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	return errors.Is(err, context.DeadlineExceeded) || wait.Interrupted(err) ||
		strings.Contains(err.Error(), context.DeadlineExceeded.Error()) ||
		strings.Contains(err.Error(), "timed out waiting for the condition")
}

// reportProgress sends rel.Progress the state of the release's pods until
// ctx ends.
func (in *Installer) reportProgress(ctx context.Context, rel Release, start time.Time) {
	if rel.Progress == nil {
		return
	}
	t := time.NewTicker(in.pollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pods, err := in.clientset.CoreV1().Pods(rel.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			in.log.DebugContext(ctx, "list pods for progress", "namespace", rel.Namespace, "err", err)
			continue
		}
		p := Progress{Release: rel.Name, Elapsed: time.Since(start)}
		for i := range pods.Items {
			pod := &pods.Items[i]
			if pod.Status.Phase == corev1.PodSucceeded || pod.DeletionTimestamp != nil {
				continue
			}
			p.Total++
			if podReady(pod) {
				p.Ready++
				continue
			}
			p.Waiting = append(p.Waiting, fmt.Sprintf("%s (%s)", pod.Name, shortPodState(pod)))
		}
		rel.Progress(p)
	}
}

// waitAPI waits until the API server serves api ("group/version/resource"),
// reporting progress, for at most the release's timeout.
func (in *Installer) waitAPI(ctx context.Context, rel Release, api string) error {
	i := strings.LastIndex(api, "/")
	if i < 0 {
		return fmt.Errorf("release %s: %q is not group/version/resource", rel.Name, api)
	}
	gv, resource := api[:i], api[i+1:]
	start := time.Now()
	served := func(ctx context.Context) (bool, error) {
		list, err := in.clientset.Discovery().ServerResourcesForGroupVersion(gv)
		if err != nil {
			in.log.DebugContext(ctx, "discover API", "groupVersion", gv, "err", err)
			return false, nil // not served yet, or the API server is busy
		}
		for _, r := range list.APIResources {
			if r.Name == resource {
				return true, nil
			}
		}
		return false, nil
	}
	report := func(ctx context.Context) (bool, error) {
		ok, err := served(ctx)
		if !ok && rel.Progress != nil {
			rel.Progress(Progress{Release: rel.Name, Waiting: []string{"API " + api}, Elapsed: time.Since(start)})
		}
		return ok, err
	}
	err := wait.PollUntilContextTimeout(ctx, in.pollInterval, timeout(rel), true, report)
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("release %s needs the API %s, which the cluster does not serve after %s: install the operator that provides it first (for postgresql: charts.PostgresOperator) and check that its pod runs",
			rel.Name, api, timeout(rel))
	}
	if err != nil {
		return fmt.Errorf("wait for the API %s: %w", api, err)
	}
	return nil
}

// Uninstall removes a release and waits for its resources to be deleted,
// then deletes the PersistentVolumeClaims its StatefulSets left (labelled
// app.kubernetes.io/instance=<release>). A missing release is not an error.
func (in *Installer) Uninstall(ctx context.Context, name, namespace string, timeout time.Duration) error {
	cfg, err := in.actionConfig(namespace)
	if err != nil {
		return err
	}
	a := action.NewUninstall(cfg)
	a.Wait = true
	a.Timeout = timeout
	if _, err := a.Run(name); err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
		return fmt.Errorf("uninstall release %s in namespace %s: %w", name, namespace, err)
	}
	err = in.clientset.CoreV1().PersistentVolumeClaims(namespace).DeleteCollection(ctx, metav1.DeleteOptions{},
		metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + name})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete the volume claims of release %s in namespace %s: %w", name, namespace, err)
	}
	return nil
}
