// Package lab is the orchestration behind the lab command: its configuration,
// bringing the lab up and down, reporting its status, and (later) the
// validation plan. It talks to the outside world only through the small
// interfaces declared here, which the leaf packages implement.
package lab

import (
	"context"
	"log/slog"

	"github.com/jewelry-shop/lab/chaosmesh"
	"github.com/jewelry-shop/lab/charts"
	"github.com/jewelry-shop/lab/cluster"
	"github.com/jewelry-shop/lab/lab/internal/kube"
)

// Clusters is what the lab needs of the container runtime and k3d; it is
// implemented by *cluster.Manager.
type Clusters interface {
	Docker(ctx context.Context) (cluster.DockerInfo, error)
	EnsureImages(ctx context.Context, images []string, pulling func(image string)) error
	Create(ctx context.Context, spec cluster.Spec, opts cluster.CreateOptions) error
	Get(ctx context.Context, name string) (*cluster.Info, error)
	Delete(ctx context.Context, name string, force bool) (existed bool, err error)
	Residue(ctx context.Context, name string) (cluster.Residue, error)
	Kubeconfig(ctx context.Context, name string) ([]byte, error)
}

// Nodes is what the lab needs of the Kubernetes API to judge the nodes.
type Nodes interface {
	WaitReady(ctx context.Context, kubeconfig []byte, want int, report func([]cluster.NodeStatus)) error
	Statuses(ctx context.Context, kubeconfig []byte) ([]cluster.NodeStatus, error)
}

// Progress shows the user which step runs and how it ended. It is not
// logging: cmd draws it (a spinner on a terminal, plain lines otherwise).
type Progress interface {
	// Start begins a step, ending any step still open.
	Start(step string)
	// Update shows a detail of the running step, e.g. "2/3 nodes Ready".
	Update(detail string)
	// End ends the running step, failed when err is not nil.
	End(err error)
}

// Lab runs the lab's commands with the given configuration.
type Lab struct {
	cfg      Config
	clusters Clusters
	nodes    Nodes
	images   ImageLoader
	stopper  NodeStopper
	probe    StackProbe
	charts   ChartFetcher
	// newInstaller makes the chart installer once the cluster exists.
	newInstaller func(kubeconfig []byte) (StackInstaller, error)
	log          *slog.Logger
	progress     Progress
	// build names this lab binary (version and commit) in reports.
	build string
	// listen checks that a host port is free; replaced in tests.
	listen func(ctx context.Context, addr string) error
}

// Option changes how a Lab is built.
type Option func(*Lab)

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(x *Lab) { x.log = l } }

// WithProgress sets where step progress goes; the default shows nothing.
func WithProgress(p Progress) Option { return func(x *Lab) { x.progress = p } }

// WithClusters replaces the k3d adapter, e.g. by a fake in tests.
func WithClusters(c Clusters) Option { return func(x *Lab) { x.clusters = c } }

// WithNodes replaces the Kubernetes node adapter, e.g. by a fake in tests.
func WithNodes(n Nodes) Option { return func(x *Lab) { x.nodes = n } }

// WithBuild names the lab binary (version, commit) for the reports.
func WithBuild(version, commit string) Option {
	return func(x *Lab) { x.build = version + " (" + commit + ")" }
}

// WithImages replaces the image loader, e.g. by a fake in tests.
func WithImages(i ImageLoader) Option { return func(x *Lab) { x.images = i } }

// WithStackProbe replaces the stack's readiness checks, e.g. by a fake in tests.
func WithStackProbe(p StackProbe) Option { return func(x *Lab) { x.probe = p } }

// WithCharts replaces where the stack's charts come from, e.g. by a fake in tests.
func WithCharts(c ChartFetcher) Option { return func(x *Lab) { x.charts = c } }

// WithInstaller replaces the chart installer, e.g. by a fake in tests.
func WithInstaller(f func(kubeconfig []byte) (StackInstaller, error)) Option {
	return func(x *Lab) { x.newInstaller = f }
}

// New returns a Lab for a validated configuration, wired to the real k3d and
// Kubernetes adapters unless options replace them.
func New(cfg Config, opts ...Option) *Lab {
	l := &Lab{
		cfg:      cfg,
		log:      slog.New(slog.DiscardHandler),
		progress: noProgress{},
		listen:   checkPortFree,
	}
	for _, o := range opts {
		o(l)
	}
	m := cluster.New(l.log)
	if l.clusters == nil {
		l.clusters = m
	}
	if l.nodes == nil {
		l.nodes = m
	}
	if l.images == nil {
		l.images = m
	}
	if l.stopper == nil {
		l.stopper = m
	}
	if l.probe == nil {
		targets := defaultStackTargets(l.upURLs().IngressURL)
		// Offline, PostgreSQL is one server without the operator.
		targets.WithoutOperator = cfg.Stack.Offline
		l.probe = kube.NewStackProbe(targets)
	}
	if l.charts == nil {
		l.charts = charts.NewSource(charts.Options{Logger: l.log, CacheDir: cfg.chartCache()})
	}
	if l.newInstaller == nil {
		l.newInstaller = func(kubeconfig []byte) (StackInstaller, error) {
			in, err := charts.NewInstaller(kubeconfig, charts.Options{Logger: l.log, CacheDir: cfg.chartCache()})
			if err != nil {
				return nil, err
			}
			return helmStack{in}, nil
		}
	}
	return l
}

// SetupLibraries routes the logging of the libraries lab drives (k3d,
// client-go, controller-runtime) into log and pins k3d's helper images. cmd
// calls it once at start-up.
func SetupLibraries(log *slog.Logger, cfg Config) {
	cluster.SetupLibraries(log, cfg.Cluster.HelperImageTag, cfg.Cluster.ToolsRef())
	chaosmesh.SetupLibraries(log)
}

type noProgress struct{}

func (noProgress) Start(string)  {}
func (noProgress) Update(string) {}
func (noProgress) End(error)     {}
