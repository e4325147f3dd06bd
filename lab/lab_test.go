package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jewelry-shop/lab/cluster"
)

// fakeClusters is the k3d boundary, recording what was asked of it.
type fakeClusters struct {
	docker      cluster.DockerInfo
	dockerErr   error
	existing    *cluster.Info
	imagesErr   error
	createErr   error
	createBlock bool // Create waits for ctx to end
	calls       []string
	deleteErr   error // the state of the context Delete was called with
	createOpts  cluster.CreateOptions
	residue     cluster.Residue
}

func (f *fakeClusters) Residue(context.Context, string) (cluster.Residue, error) {
	f.calls = append(f.calls, "Residue")
	return f.residue, nil
}

func (f *fakeClusters) Docker(context.Context) (cluster.DockerInfo, error) {
	f.calls = append(f.calls, "Docker")
	return f.docker, f.dockerErr
}

func (f *fakeClusters) EnsureImages(_ context.Context, images []string, pulling func(string)) error {
	f.calls = append(f.calls, "EnsureImages")
	pulling(images[0])
	return f.imagesErr
}

func (f *fakeClusters) Create(ctx context.Context, spec cluster.Spec, opts cluster.CreateOptions) error {
	f.calls = append(f.calls, "Create "+spec.Name)
	f.createOpts = opts
	if f.createBlock {
		<-ctx.Done()
		return ctx.Err()
	}
	if f.createErr == nil {
		f.existing = healthy(spec.Name)
	}
	return f.createErr
}

func (f *fakeClusters) Get(_ context.Context, name string) (*cluster.Info, error) {
	f.calls = append(f.calls, "Get")
	if f.existing == nil {
		return nil, fmt.Errorf("get cluster %s: %w", name, cluster.ErrNotFound)
	}
	return f.existing, nil
}

func (f *fakeClusters) Delete(ctx context.Context, name string, force bool) (bool, error) {
	f.calls = append(f.calls, fmt.Sprintf("Delete %s force=%v", name, force))
	f.deleteErr = ctx.Err()
	existed := f.existing != nil
	if existed && !f.existing.Managed && !force {
		return true, fmt.Errorf("delete cluster %s: %w", name, cluster.ErrNotManaged)
	}
	f.existing = nil
	return existed, nil
}

func (f *fakeClusters) Kubeconfig(context.Context, string) ([]byte, error) {
	f.calls = append(f.calls, "Kubeconfig")
	return []byte("apiVersion: v1\nkind: Config\n"), nil
}

// fakeNodes is the Kubernetes boundary.
type fakeNodes struct {
	nodes   []cluster.NodeStatus
	waitErr error
}

func (f *fakeNodes) WaitReady(ctx context.Context, _ []byte, _ int, report func([]cluster.NodeStatus)) error {
	report(f.nodes)
	if f.waitErr != nil {
		return f.waitErr
	}
	return ctx.Err()
}

func (f *fakeNodes) Statuses(context.Context, []byte) ([]cluster.NodeStatus, error) {
	return f.nodes, nil
}

// recorder is a Progress that remembers the steps, how they ended and
// their details.
type recorder struct{ steps, details []string }

func (r *recorder) Start(step string)    { r.steps = append(r.steps, step) }
func (r *recorder) Update(detail string) { r.details = append(r.details, detail) }
func (r *recorder) End(err error) {
	mark := "ok"
	if err != nil {
		mark = "failed"
	}
	r.steps[len(r.steps)-1] += ": " + mark
}

func healthy(name string) *cluster.Info {
	return &cluster.Info{Name: name, Managed: true, Nodes: []cluster.Node{
		{Name: "k3d-" + name + "-agent-0", Role: "agent", Running: true, Status: "running"},
		{Name: "k3d-" + name + "-agent-1", Role: "agent", Running: true, Status: "running"},
		{Name: "k3d-" + name + "-server-0", Role: "server", Running: true, Status: "running"},
		{Name: "k3d-" + name + "-serverlb", Role: "loadbalancer", Running: true, Status: "running"},
	}}
}

func readyNodes() []cluster.NodeStatus {
	return []cluster.NodeStatus{
		{Name: "k3d-jewelry-shop-agent-0", Ready: true},
		{Name: "k3d-jewelry-shop-agent-1", Ready: true},
		{Name: "k3d-jewelry-shop-server-0", Ready: true},
	}
}

func testConfig(t *testing.T) Config {
	t.Helper()
	c := DefaultConfig()
	c.Cluster.Kubeconfig = filepath.Join(t.TempDir(), "kube", "config")
	c.Stack.Install = false // the stack has tests of its own
	return c
}

func newTestLab(cfg Config, c *fakeClusters, n *fakeNodes, p *recorder) *Lab {
	l := New(cfg, WithClusters(c), WithNodes(n), WithProgress(p))
	l.listen = func(context.Context, string) error { return nil }
	return l
}

func TestUpCreates(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	fc := &fakeClusters{docker: cluster.DockerInfo{Version: "28.2.2", MemTotal: 16 << 30}}
	rec := &recorder{}
	res, err := newTestLab(cfg, fc, &fakeNodes{nodes: readyNodes()}, rec).Up(context.Background(), UpOptions{})
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	wantSteps := []string{
		"Checking Docker: ok",
		"Checking host ports: ok",
		"Checking images: ok",
		"Creating cluster jewelry-shop (1 server, 2 agents): ok",
		"Writing kubeconfig: ok",
		"Waiting for 3 nodes to be Ready: ok",
	}
	if diff := cmp.Diff(wantSteps, rec.steps); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if res.Reused || res.DockerVersion != "28.2.2" || res.APIServer != "https://127.0.0.1:6550" || res.IngressURL != "http://127.0.0.1:8080" || len(res.Nodes) != 3 {
		t.Errorf("result = %+v", res)
	}
	fi, err := os.Stat(cfg.Cluster.Kubeconfig)
	if err != nil {
		t.Fatalf("kubeconfig not written: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestUpReusesHealthyCluster(t *testing.T) {
	t.Parallel()
	fc := &fakeClusters{existing: healthy("jewelry-shop")}
	rec := &recorder{}
	res, err := newTestLab(testConfig(t), fc, &fakeNodes{nodes: readyNodes()}, rec).Up(context.Background(), UpOptions{})
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	if !res.Reused {
		t.Error("Reused = false, want true")
	}
	for _, c := range fc.calls {
		if strings.HasPrefix(c, "Create") || strings.HasPrefix(c, "Delete") {
			t.Errorf("reusing called %s", c)
		}
	}
}

func TestUpRefusesBrokenCluster(t *testing.T) {
	t.Parallel()
	stopped := healthy("jewelry-shop")
	stopped.Nodes[0].Running, stopped.Nodes[0].Status = false, "exited"
	foreign := healthy("jewelry-shop")
	foreign.Managed = false
	small := healthy("jewelry-shop")
	small.Nodes = small.Nodes[1:]
	tests := []struct {
		name     string
		existing *cluster.Info
		want     []string
	}{
		{"stopped node", stopped, []string{"k3d-jewelry-shop-agent-0 (exited)", "docker start k3d-jewelry-shop-agent-0", "lab down"}},
		{"not created by lab", foreign, []string{"not created by lab", "cluster.name", "k3d cluster delete jewelry-shop"}},
		{"other shape", small, []string{"has 1 servers and 1 agents", "lab down"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fc := &fakeClusters{existing: tt.existing}
			_, err := newTestLab(testConfig(t), fc, &fakeNodes{}, &recorder{}).Up(context.Background(), UpOptions{})
			var be *BrokenClusterError
			if !errors.As(err, &be) {
				t.Fatalf("Up error = %v, want a BrokenClusterError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for _, c := range fc.calls {
				if strings.HasPrefix(c, "Create") || strings.HasPrefix(c, "Delete") {
					t.Errorf("a broken cluster was changed: %s", c)
				}
			}
		})
	}
}

// TestUpFailureRemovesWhatItCreated fails each step after the creation and
// checks that the cluster and the kubeconfig are removed again.
func TestUpFailureRemovesWhatItCreated(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		fc        *fakeClusters
		fn        *fakeNodes
		cancel    bool
		wantErr   string
		wantCalls []string
	}{
		{
			name:      "nodes never Ready",
			fc:        &fakeClusters{},
			fn:        &fakeNodes{waitErr: context.DeadlineExceeded},
			wantErr:   "deadline exceeded",
			wantCalls: []string{"Docker", "Get", "EnsureImages", "Create jewelry-shop", "Kubeconfig", "Delete jewelry-shop force=false"},
		},
		{
			name:      "creation fails",
			fc:        &fakeClusters{createErr: errors.New("k3d broke")},
			fn:        &fakeNodes{},
			wantErr:   "k3d broke",
			wantCalls: []string{"Docker", "Get", "EnsureImages", "Create jewelry-shop", "Delete jewelry-shop force=false"},
		},
		{
			name:      "interrupted while creating",
			fc:        &fakeClusters{createBlock: true},
			fn:        &fakeNodes{},
			cancel:    true,
			wantErr:   "context canceled",
			wantCalls: []string{"Docker", "Get", "EnsureImages", "Create jewelry-shop", "Delete jewelry-shop force=false"},
		},
		{
			name:      "image missing: nothing created, nothing deleted",
			fc:        &fakeClusters{imagesErr: &cluster.ImageUnavailableError{Image: "k3s", Err: errors.New("no internet")}},
			fn:        &fakeNodes{},
			wantErr:   "no internet",
			wantCalls: []string{"Docker", "Get", "EnsureImages"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				time.AfterFunc(10*time.Millisecond, cancel)
			}
			_, err := newTestLab(cfg, tt.fc, tt.fn, &recorder{}).Up(ctx, UpOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Up error = %v, want one containing %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantCalls, tt.fc.calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
			if tt.fc.deleteErr != nil {
				t.Errorf("cleanup ran with a dead context: %v", tt.fc.deleteErr)
			}
			if _, err := os.Stat(cfg.Cluster.Kubeconfig); !os.IsNotExist(err) {
				t.Errorf("kubeconfig left behind: %v", err)
			}
		})
	}
}

// TestUpKeepsOnFailure: with --keep-on-failure a failed creation is kept,
// not removed, and the user is told what is left and how to remove it, or
// that nothing was left to keep.
func TestUpKeepsOnFailure(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		residue cluster.Residue
		want    string
	}{
		{"node failed to start", cluster.Residue{Containers: []string{"k3d-jewelry-shop-server-0"}, Networks: []string{"k3d-jewelry-shop"}}, "1 container (k3d-jewelry-shop-server-0), 1 network (k3d-jewelry-shop); `lab down` removes them"},
		{"nothing made", cluster.Residue{}, "nothing: the creation failed before k3d made any container"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fc := &fakeClusters{createErr: errors.New("node k3d-jewelry-shop-agent-1 failed to start"), residue: tt.residue}
			rec := &recorder{}
			_, err := newTestLab(testConfig(t), fc, &fakeNodes{}, rec).Up(context.Background(), UpOptions{KeepOnFailure: true})
			if err == nil {
				t.Fatal("Up succeeded")
			}
			if !fc.createOpts.KeepOnFailure {
				t.Error("Create was not asked to keep what it made")
			}
			if slices.ContainsFunc(fc.calls, func(c string) bool { return strings.HasPrefix(c, "Delete") }) {
				t.Errorf("the kept cluster was deleted: %v", fc.calls)
			}
			if got := strings.Join(rec.details, "\n"); !strings.Contains(got, tt.want) {
				t.Errorf("progress says %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUpPreflight(t *testing.T) {
	t.Parallel()
	busy, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() }) // after the parallel subtests
	busyPort := busy.Addr().(*net.TCPAddr).Port

	tests := []struct {
		name   string
		modify func(*Config, *fakeClusters)
		want   []string
	}{
		{"docker down", func(_ *Config, f *fakeClusters) {
			f.dockerErr = &cluster.DockerUnavailableError{Endpoint: "unix:///var/run/docker.sock", Err: errors.New("connection refused")}
		}, []string{"cannot reach the Docker daemon", "fix:"}},
		{"too little memory", func(_ *Config, f *fakeClusters) { f.docker.MemTotal = 2 << 30 }, []string{"has 2GiB of memory, the lab needs at least 6GiB", "preflight.minMemory"}},
		{"ingress port busy", func(c *Config, _ *fakeClusters) { c.Cluster.IngressPort = busyPort }, []string{fmt.Sprintf("the ingress port 127.0.0.1:%d is not free", busyPort), "cluster.ingressPort"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			fc := &fakeClusters{docker: cluster.DockerInfo{MemTotal: 16 << 30}}
			tt.modify(&cfg, fc)
			l := New(cfg, WithClusters(fc), WithNodes(&fakeNodes{}))
			_, err := l.Up(context.Background(), UpOptions{})
			if err == nil {
				t.Fatal("Up succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for _, c := range fc.calls {
				if strings.HasPrefix(c, "Create") || strings.HasPrefix(c, "EnsureImages") {
					t.Errorf("preflight failure still called %s", c)
				}
			}
		})
	}
}

func TestDown(t *testing.T) {
	t.Parallel()
	t.Run("nothing there", func(t *testing.T) {
		t.Parallel()
		res, err := newTestLab(testConfig(t), &fakeClusters{}, &fakeNodes{}, &recorder{}).Down(context.Background(), false)
		if err != nil || res.Existed || res.Kubeconfig != "" {
			t.Fatalf("Down = %+v, %v; want nothing removed and no error", res, err)
		}
	})
	t.Run("removes cluster and kubeconfig", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig(t)
		if err := writeKubeconfig(cfg.Cluster.Kubeconfig, []byte("x")); err != nil {
			t.Fatal(err)
		}
		fc := &fakeClusters{existing: healthy("jewelry-shop")}
		res, err := newTestLab(cfg, fc, &fakeNodes{}, &recorder{}).Down(context.Background(), true)
		if err != nil || !res.Existed || res.Kubeconfig != cfg.Cluster.Kubeconfig {
			t.Fatalf("Down = %+v, %v", res, err)
		}
		if diff := cmp.Diff([]string{"Docker", "Delete jewelry-shop force=true"}, fc.calls); diff != "" {
			t.Errorf("calls (-want +got):\n%s", diff)
		}
		if _, err := os.Stat(cfg.Cluster.Kubeconfig); !os.IsNotExist(err) {
			t.Errorf("kubeconfig still there: %v", err)
		}
	})
	t.Run("interrupted, finishes the removal", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig(t)
		if err := writeKubeconfig(cfg.Cluster.Kubeconfig, []byte("x")); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel() // Ctrl-C
		fc := &fakeClusters{existing: healthy("jewelry-shop")}
		res, err := newTestLab(cfg, fc, &fakeNodes{}, &recorder{}).Down(ctx, false)
		if err != nil || !res.Existed || res.Kubeconfig != cfg.Cluster.Kubeconfig {
			t.Fatalf("Down = %+v, %v; want the cluster and the kubeconfig removed", res, err)
		}
		if fc.deleteErr != nil {
			t.Errorf("the deletion ran with a cancelled context: %v", fc.deleteErr)
		}
	})
}

// TestDownForeign refuses a cluster lab did not create and says how to
// remove it anyway.
func TestDownForeign(t *testing.T) {
	t.Parallel()
	foreign := healthy("jewelry-shop")
	foreign.Managed = false
	fc := &fakeClusters{existing: foreign}
	_, err := newTestLab(testConfig(t), fc, &fakeNodes{}, &recorder{}).Down(context.Background(), false)
	for _, want := range []string{"was not created by lab", "lab down --force", "k3d cluster delete jewelry-shop"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Down of a foreign cluster = %v, want it to say %q", err, want)
		}
	}
	if fc.existing == nil {
		t.Error("the foreign cluster was removed")
	}
}

// TestStatusSaysWhyUpWouldRefuse: for a half-created or foreign cluster,
// status gives the recovery that lab up would give, not "run lab up".
func TestStatusSaysWhyUpWouldRefuse(t *testing.T) {
	t.Parallel()
	stopped := healthy("jewelry-shop")
	stopped.Nodes[0].Running, stopped.Nodes[0].Status = false, "exited"
	short := healthy("jewelry-shop")
	short.Nodes = short.Nodes[1:]
	foreign := healthy("jewelry-shop")
	foreign.Managed = false
	for _, tt := range []struct {
		name string
		info *cluster.Info
		fix  string
	}{
		{"healthy", healthy("jewelry-shop"), ""},
		{"a node stopped", stopped, "docker start k3d-jewelry-shop-agent-0"},
		{"a node missing", short, "lab down` and then `lab up"},
		{"not lab's", foreign, "lab down --force"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, err := newTestLab(testConfig(t), &fakeClusters{existing: tt.info}, &fakeNodes{nodes: readyNodes()}, &recorder{}).Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if (tt.fix == "") != (st.Fix == "") || !strings.Contains(st.Fix, tt.fix) {
				t.Errorf("Status fix = %q (problem %q), want one containing %q", st.Fix, st.Problem, tt.fix)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	st, err := newTestLab(testConfig(t), &fakeClusters{}, &fakeNodes{}, &recorder{}).Status(context.Background())
	if err != nil || st.Exists {
		t.Fatalf("Status of nothing = %+v, %v", st, err)
	}
	st, err = newTestLab(testConfig(t), &fakeClusters{existing: healthy("jewelry-shop")}, &fakeNodes{nodes: readyNodes()}, &recorder{}).Status(context.Background())
	if err != nil || !st.Exists || !st.Managed || len(st.Containers) != 4 || len(st.Nodes) != 3 || st.Kubeconfig != "" {
		t.Fatalf("Status = %+v, %v", st, err)
	}
}

func TestKubeconfigPathDefault(t *testing.T) {
	t.Parallel()
	p, err := DefaultConfig().KubeconfigPath()
	if err != nil {
		t.Fatalf("KubeconfigPath: %v", err)
	}
	if !strings.HasSuffix(p, filepath.Join("lab", "jewelry-shop", "kubeconfig")) {
		t.Errorf("KubeconfigPath() = %s", p)
	}
}
