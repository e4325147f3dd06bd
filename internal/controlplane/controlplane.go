// Package controlplane gives tests a real Kubernetes control plane (tier 3 of
// the verification in DESIGN.md): etcd and kube-apiserver through
// controller-runtime's envtest and, on demand, kube-controller-manager,
// kube-scheduler and kwok with three simulated nodes named and labelled like
// the k3d cluster's, so that pods are scheduled and become Running. The Chaos
// Mesh CRDs and a CRD for the Zalando postgresql kind are installed.
//
// One control plane is started per test binary, lazily, by the first test that
// asks for it, and stopped when the binary's tests are done. A test package
// that uses it declares
//
//	func TestMain(m *testing.M) { controlplane.Main(m) }
//
// and each test calls Start, then works in a namespace of its own
// (Env.Namespace). The binaries come from hack/test-assets.sh; when they are
// missing the test fails under CI=true and skips elsewhere, naming the command
// that builds them.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	chaosv1alpha1 "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"

	"github.com/jewelry-shop/lab/internal/ci"
)

// Options choose what a test needs beyond etcd, kube-apiserver and the CRDs.
type Options struct {
	// Nodes starts kube-controller-manager, kube-scheduler and kwok with the
	// three simulated nodes, so that workloads get pods that are scheduled
	// and become Running. Tests that only talk to the API leave it false and
	// start faster.
	Nodes bool
	// RealNodes prepares the control plane for nodes whose kubelets really
	// run (internal/realnode): the API server reaches kubelets by their
	// InternalIP and sends aggregated API requests (metrics-server) to the
	// addresses of the APIService's endpoints with a front-proxy client
	// certificate; kube-controller-manager, with the controllers real nodes
	// and volumes need and lab's node monitor timing, and kube-scheduler
	// run, but no kwok and no simulated node. The first Start of a test
	// binary decides it, and it excludes Nodes.
	RealNodes bool
}

// Env is a running control plane.
type Env struct {
	// Config reaches the API server as a cluster administrator.
	Config *rest.Config
	// Client is a controller-runtime client whose scheme knows the core
	// Kubernetes types and the Chaos Mesh ones.
	Client client.Client
	// Kubeconfig is the path of a kubeconfig file (mode 0600) for Config,
	// for code that wants a file, such as Helm.
	Kubeconfig string

	assets  string
	workDir string // logs of the processes and the kubeconfig
	logger  *slog.Logger
	testEnv *envtest.Environment
	procs   []*process // started by the helper, in start order
	logs    []*os.File // output of envtest's processes
	// pidsRecord lists the PIDs of etcd and kube-apiserver, so that a later
	// test binary can kill them should this one die without stopping them.
	pidsRecord string
	nodes      bool // whether kwok runs the simulated nodes
	realNodes  bool // whether the API server is set up for real nodes
	// controllers says whether kube-controller-manager and kube-scheduler
	// run.
	controllers bool
}

// shared is the control plane of this test binary. It is the package's one
// piece of global state: a test binary has exactly one, started by the first
// test that needs it and stopped by Main after the last.
var shared struct {
	mu       sync.Mutex
	main     bool  // Main is running the tests
	env      *Env  // started control plane, nil until then
	startErr error // a failed start is not retried by every later test
}

// Main runs the tests of a package that uses the control plane and stops it
// afterwards. Call it from TestMain:
//
//	func TestMain(m *testing.M) { controlplane.Main(m) }
//
// The testing package exits with the tests' status when TestMain returns.
// Logs of the control plane's processes are kept when a test failed.
func Main(m *testing.M) {
	// envtest logs through controller-runtime's global logger; without one
	// set it complains with a stack trace.
	ctrllog.SetLogger(logr.Discard())

	shared.mu.Lock()
	shared.main = true
	shared.mu.Unlock()

	code := m.Run()

	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.main = false
	if shared.env == nil {
		return
	}
	if err := shared.env.stop(code != 0); err != nil {
		fmt.Fprintf(os.Stderr, "controlplane: stop: %v\n", err)
	}
	shared.env = nil
}

// Start returns the test binary's control plane, starting what opts ask for
// that is not running yet. It logs how long the start took. A test that
// changes cluster-wide state (stops a node, say) must restore it in
// t.Cleanup: the control plane is shared by every test of the binary.
func Start(tb testing.TB, opts Options) *Env {
	tb.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.main {
		tb.Fatal("controlplane.Start needs the package's TestMain to call controlplane.Main: func TestMain(m *testing.M) { controlplane.Main(m) }")
	}
	assets, err := checkAssets()
	if err != nil {
		ci.Missing(tb, "%v", err)
	}
	if shared.startErr != nil {
		tb.Fatalf("the control plane failed to start earlier in this test binary: %v", shared.startErr)
	}

	ctx := tb.Context()
	if shared.env == nil {
		begin := time.Now()
		env, err := newEnv(ctx, assets, slog.New(slog.DiscardHandler), opts.RealNodes)
		if err != nil {
			shared.startErr = err
			tb.Fatalf("start the control plane: %v", err)
		}
		shared.env = env
		tb.Logf("control plane (etcd, kube-apiserver, CRDs) started in %v", time.Since(begin).Round(time.Millisecond))
	}
	switch {
	case opts.RealNodes && !shared.env.realNodes:
		tb.Fatal("controlplane.Start: RealNodes must be asked for by the first Start of the test binary; the control plane runs without")
	case opts.Nodes && shared.env.realNodes:
		tb.Fatal("controlplane.Start: simulated nodes (Nodes) and real nodes (RealNodes) do not mix in one test binary")
	}
	if opts.RealNodes && !shared.env.controllers {
		begin := time.Now()
		if err := shared.env.startControllers(ctx); err != nil {
			shared.startErr = err
			tb.Fatalf("start controllers and scheduler: %v", err)
		}
		tb.Logf("controllers and scheduler for real nodes started in %v", time.Since(begin).Round(time.Millisecond))
	}
	if opts.Nodes && !shared.env.nodes {
		begin := time.Now()
		if err := shared.env.startNodes(ctx); err != nil {
			shared.startErr = err
			tb.Fatalf("start controllers, scheduler and simulated nodes: %v", err)
		}
		tb.Logf("controllers, scheduler and %d Ready simulated nodes started in %v", len(nodeNames()), time.Since(begin).Round(time.Millisecond))
	}
	return shared.env
}

// newEnv starts etcd and kube-apiserver with envtest, installs the CRDs and
// writes the kubeconfig.
func newEnv(ctx context.Context, assets string, logger *slog.Logger, realNodes bool) (env *Env, err error) {
	workDir, err := os.MkdirTemp("", "lab-controlplane-")
	if err != nil {
		return nil, fmt.Errorf("make a work directory: %w", err)
	}
	env = &Env{assets: assets, workDir: workDir, logger: logger, realNodes: realNodes}
	defer func() {
		if err != nil {
			err = errors.Join(err, env.stop(true))
		}
	}()

	if err := reapOrphans(ctx, logger, assets); err != nil {
		return env, err
	}
	crdDir, err := chaosMeshCRDs(ctx, filepath.Join(assets, "controller-gen"))
	if err != nil {
		return env, err
	}
	postgresql, err := postgresqlCRD()
	if err != nil {
		return env, err
	}

	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, chaosv1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			return env, fmt.Errorf("build the client scheme: %w", err)
		}
	}

	env.testEnv = &envtest.Environment{
		BinaryAssetsDirectory: assets,
		Scheme:                scheme,
		CRDDirectoryPaths:     []string{crdDir},
		CRDs:                  []*apiextensionsv1.CustomResourceDefinition{postgresql},
		ErrorIfCRDPathMissing: true,
		// A cold start on a busy 2-core machine can be slow.
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	api := env.testEnv.ControlPlane.GetAPIServer()
	// Serve and advertise on loopback only. The endpoint reconciler refuses
	// a loopback advertise address, and nothing here needs the endpoints of
	// the kubernetes Service, so it is turned off.
	api.Configure().
		Set("bind-address", "127.0.0.1").
		Set("advertise-address", "127.0.0.1").
		Set("endpoint-reconciler-type", "none")
	if realNodes {
		if err := realNodeFlags(api.Configure(), workDir); err != nil {
			return env, err
		}
	}
	apiLog, err := env.logFile("kube-apiserver")
	if err != nil {
		return env, err
	}
	api.Out, api.Err = apiLog, apiLog
	etcdLog, err := env.logFile("etcd")
	if err != nil {
		return env, err
	}
	env.testEnv.ControlPlane.Etcd = &envtest.Etcd{Out: etcdLog, Err: etcdLog}
	env.Config, err = env.testEnv.Start()
	if err != nil {
		return env, fmt.Errorf("start etcd and kube-apiserver (logs in %s): %w", workDir, err)
	}
	if env.pidsRecord, err = recordChildren(assets); err != nil {
		return env, err
	}

	env.Kubeconfig = filepath.Join(workDir, "kubeconfig")
	if err := os.WriteFile(env.Kubeconfig, env.testEnv.KubeConfig, 0o600); err != nil {
		return env, fmt.Errorf("write the kubeconfig: %w", err)
	}
	env.Client, err = client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		return env, fmt.Errorf("make the client: %w", err)
	}
	return env, nil
}

// logFile opens <workDir>/<name>.log for a process's output; it is closed
// when the control plane stops.
func (e *Env) logFile(name string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(e.workDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the log of %s: %w", name, err)
	}
	e.logs = append(e.logs, f)
	return f, nil
}

// stop stops every process, the helper's in reverse start order, then
// envtest's. The work directory (logs) is kept when keepLogs is set.
func (e *Env) stop(keepLogs bool) error {
	var errs []error
	for i := len(e.procs) - 1; i >= 0; i-- {
		errs = append(errs, e.procs[i].stop(10*time.Second))
	}
	e.procs = nil
	if e.testEnv != nil {
		if err := e.testEnv.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop etcd and kube-apiserver: %w", err))
		}
	}
	for _, f := range e.logs {
		_ = f.Close()
	}
	e.logs = nil
	if e.pidsRecord != "" {
		if err := os.Remove(e.pidsRecord); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove the PID record: %w", err))
		}
	}
	if keepLogs {
		fmt.Fprintf(os.Stderr, "controlplane: logs kept in %s\n", e.workDir)
	} else if err := os.RemoveAll(e.workDir); err != nil {
		errs = append(errs, fmt.Errorf("remove the work directory: %w", err))
	}
	return errors.Join(errs...)
}

// LogDir returns the directory that holds the logs of the processes the
// helper started (kube-controller-manager, kube-scheduler, kwok).
func (e *Env) LogDir() string { return e.workDir }

// processError describes a process that exited early, with the end of its log.
func processError(p *process) error {
	status := p.err
	if status == nil {
		status = errors.New("exit status 0") // worded like exec's *ExitError
	}
	return fmt.Errorf("%s exited: %w; end of %s:\n%s", p.name, status, p.log, strings.TrimSpace(p.tail(2000)))
}

// Namespace creates a namespace of the test's own, named after the test, and
// deletes it when the test ends. With the namespace controller running
// (Options.Nodes) the deletion also removes what the test left in it.
func (e *Env) Namespace(tb testing.TB) string {
	tb.Helper()
	ctx := tb.Context()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: namespacePrefix(tb.Name())}}
	if err := e.Client.Create(ctx, ns); err != nil {
		tb.Fatalf("create a namespace for the test: %v", err)
	}
	tb.Cleanup(func() {
		// tb.Context is cancelled before cleanups run.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := e.Client.Delete(ctx, ns); err != nil && !apierrors.IsNotFound(err) {
			tb.Errorf("delete namespace %s: %v", ns.Name, err)
		}
	})
	return ns.Name
}

// namespacePrefix turns a test name into a valid namespace name prefix.
func namespacePrefix(test string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(test) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	p := strings.Trim(b.String(), "-")
	const maxLen = 40 // leaves room for the random suffix within 63 characters
	if len(p) > maxLen {
		p = strings.TrimRight(p[:maxLen], "-")
	}
	if p == "" {
		p = "test"
	}
	return p + "-"
}

// ReapOrphans kills the control plane processes that test binaries which no
// longer run left behind, as every start of a control plane does first: for
// a test that kills a test binary of its own and must leave nothing.
func ReapOrphans(ctx context.Context) error {
	assets, err := AssetsDir()
	if err != nil {
		return err
	}
	return reapOrphans(ctx, slog.New(slog.DiscardHandler), assets)
}
