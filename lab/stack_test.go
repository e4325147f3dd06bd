package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/jewelry-shop/lab/charts"
	"github.com/jewelry-shop/lab/cluster"
)

// writeShopArchive writes a small image archive tagged like `make image`'s.
func writeShopArchive(t *testing.T, tag string) string {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "shop.tar")
	if err := tarball.WriteToFile(path, ref, img); err != nil {
		t.Fatal(err)
	}
	return path
}

type fakeImages struct {
	local    map[string]bool
	imported []string
}

func (f *fakeImages) LocalImages(_ context.Context, images []string) ([]string, error) {
	var out []string
	for _, i := range images {
		if f.local[i] {
			out = append(out, i)
		}
	}
	return out, nil
}

func (f *fakeImages) ImportImages(_ context.Context, _ string, images []string) error {
	f.imported = append(f.imported, images...)
	return nil
}

type fakeInstaller struct {
	installed []string
	values    []map[string]any
	failOn    string
}

func (f *fakeInstaller) Install(_ context.Context, rel charts.Release) (*charts.Result, error) {
	if rel.Name == f.failOn {
		return nil, errors.New("pod x not ready: ImagePullBackOff")
	}
	f.installed = append(f.installed, fmt.Sprintf("%s/%s", rel.Namespace, rel.Name))
	f.values = append(f.values, rel.Values)
	return &charts.Result{Release: rel.Name, Namespace: rel.Namespace, Chart: rel.Chart.Name}, nil
}

func (f *fakeInstaller) Images(context.Context, []charts.Release) ([]string, error) {
	return []string{"ghcr.io/chaos-mesh/chaos-mesh:v2.8.3", "redis:8.2.1", "jewelry-shop/shop:1.2.3"}, nil
}

// fakeCharts is where the charts come from: err fails every fetch.
type fakeCharts struct {
	err     error
	fetched []string
}

func (f *fakeCharts) Fetch(_ context.Context, releases []charts.Release) error {
	for _, r := range releases {
		f.fetched = append(f.fetched, r.Chart.Name)
	}
	return f.err
}

// readyAfter reports the stack not ready for n checks, then ready.
type readyAfter struct{ n, calls int }

func (r *readyAfter) Check(context.Context, []byte) (Readiness, error) {
	r.calls++
	ok := r.calls > r.n
	return Readiness{Checks: []Check{{Name: "PostgreSQL", OK: ok, Detail: "primary x"}, {Name: "metrics API", OK: true}}}, nil
}

func TestUpInstallsStack(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Stack.Install = true
	cfg.Stack.ShopImageArchive = writeShopArchive(t, "jewelry-shop/shop:1.2.3")
	imgs := &fakeImages{local: map[string]bool{"redis:8.2.1": true}}
	inst := &fakeInstaller{}
	probe := &readyAfter{n: 0}
	rec := &recorder{}
	l := New(cfg, WithClusters(&fakeClusters{}), WithNodes(&fakeNodes{nodes: readyNodes()}), WithProgress(rec),
		WithImages(imgs), WithStackProbe(probe), WithCharts(&fakeCharts{}), WithInstaller(func([]byte) (StackInstaller, error) { return inst, nil }))
	l.listen = func(context.Context, string) error { return nil }
	res, err := l.Up(context.Background(), UpOptions{})
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	if diff := cmp.Diff([]string{"postgres-operator/postgres-operator", "chaos-mesh/chaos-mesh", "jewelry-shop/jewelry-shop"}, inst.installed); diff != "" {
		t.Errorf("releases (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{cfg.Stack.ShopImageArchive, "redis:8.2.1"}, imgs.imported); diff != "" {
		t.Errorf("imported (-want +got):\n%s", diff)
	}
	if res.Stack == nil || res.Stack.ShopImage != "jewelry-shop/shop:1.2.3" || !res.Stack.Readiness.Ready() {
		t.Errorf("stack result %+v", res.Stack)
	}
	if !strings.Contains(strings.Join(rec.steps, "\n"), "Waiting for the stack to be ready: ok") {
		t.Errorf("steps %v", rec.steps)
	}
}

// TestUpOfflineStack: offline, lab up installs the jewelry-shop chart
// alone, with one PostgreSQL server, and stack.values over the profile's;
// lab status names what was left out.
func TestUpOfflineStack(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Stack.Install = true
	cfg.Stack.Offline = true
	cfg.Stack.ShopImageArchive = writeShopArchive(t, "jewelry-shop/shop:1.2.3")
	cfg.Stack.Values = filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(cfg.Stack.Values, []byte("redis: {image: {repository: 127.0.0.1:5999/redis, tag: '7'}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inst := &fakeInstaller{}
	fch := &fakeCharts{}
	l := New(cfg, WithClusters(&fakeClusters{}), WithNodes(&fakeNodes{nodes: readyNodes()}), WithImages(&fakeImages{}),
		WithStackProbe(&readyAfter{}), WithCharts(fch), WithInstaller(func([]byte) (StackInstaller, error) { return inst, nil }))
	l.listen = func(context.Context, string) error { return nil }
	if _, err := l.Up(context.Background(), UpOptions{}); err != nil {
		t.Fatalf("Up: %v", err)
	}
	if diff := cmp.Diff([]string{"jewelry-shop/jewelry-shop"}, inst.installed); diff != "" {
		t.Fatalf("releases (-want +got):\n%s", diff)
	}
	vals := inst.values[0]
	if got := vals["postgresql"].(map[string]any)["mode"]; got != "single" {
		t.Errorf("postgresql.mode = %v, want single", got)
	}
	if got := vals["redis"].(map[string]any)["image"].(map[string]any)["repository"]; got != "127.0.0.1:5999/redis" {
		t.Errorf("redis.image.repository = %v, want stack.values' 127.0.0.1:5999/redis", got)
	}
	if got := vals["web"]; got == nil {
		t.Errorf("the quick profile's values are gone: %v", vals)
	}
}

// TestStackValuesRefused: a stack.values file that cannot be read, is not
// a map or that the chart refuses stops lab up before anything is created,
// naming the key.
func TestStackValuesRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, content string // content "" leaves the file out
		want          []string
	}{
		{"missing", "", []string{"stack.values", "no such file"}},
		{"not a map", "- a\n- b\n", []string{"stack.values", "not a YAML map"}},
		{"refused by the chart", "web: {replicas: three}\n", []string{"stack.values", "refuses", "/web/replicas"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			cfg.Stack.Install = true
			cfg.Stack.ShopImageArchive = writeShopArchive(t, "jewelry-shop/shop:1.2.3")
			cfg.Stack.Values = filepath.Join(t.TempDir(), "values.yaml")
			if tt.content != "" {
				if err := os.WriteFile(cfg.Stack.Values, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			fc := &fakeClusters{}
			l := New(cfg, WithClusters(fc), WithNodes(&fakeNodes{nodes: readyNodes()}), WithImages(&fakeImages{}), WithCharts(&fakeCharts{}),
				WithStackProbe(&readyAfter{}), WithInstaller(func([]byte) (StackInstaller, error) { return &fakeInstaller{}, nil }))
			l.listen = func(context.Context, string) error { return nil }
			_, err := l.Up(context.Background(), UpOptions{})
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Up = %v, want an error containing %q", err, w)
				}
			}
			if slices.ContainsFunc(fc.calls, func(c string) bool { return strings.HasPrefix(c, "Create") }) {
				t.Errorf("a cluster was created (calls %v)", fc.calls)
			}
		})
	}
}

// TestUpStackFailures: what the stack needs from this machine is checked
// before anything is created; a later failure removes the cluster, or keeps
// it when asked.
func TestUpStackFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		archive   bool
		chartsErr error
		failOn    string
		keep      bool
		want      string
		created   bool
		deleted   bool
	}{
		{"no shop image", false, nil, "", false, "make image", false, false},
		{"charts unavailable", true, &charts.ChartUnavailableError{Chart: charts.ChaosMesh().Chart, Err: errors.New("no route to host")}, "", false, "no route to host", false, false},
		{"release not ready", true, nil, "chaos-mesh", false, "ImagePullBackOff", true, true},
		{"kept on failure", true, nil, "jewelry-shop", true, "ImagePullBackOff", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			cfg.Stack.Install = true
			cfg.Stack.ShopImageArchive = filepath.Join(t.TempDir(), "missing.tar")
			if tt.archive {
				cfg.Stack.ShopImageArchive = writeShopArchive(t, "jewelry-shop/shop:1.2.3")
			}
			fc := &fakeClusters{}
			l := New(cfg, WithClusters(fc), WithNodes(&fakeNodes{nodes: readyNodes()}), WithImages(&fakeImages{}), WithCharts(&fakeCharts{err: tt.chartsErr}),
				WithStackProbe(&readyAfter{}), WithInstaller(func([]byte) (StackInstaller, error) { return &fakeInstaller{failOn: tt.failOn}, nil }))
			l.listen = func(context.Context, string) error { return nil }
			_, err := l.Up(context.Background(), UpOptions{KeepOnFailure: tt.keep})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Up = %v, want an error containing %q", err, tt.want)
			}
			calls := strings.Join(fc.calls, ",")
			if created := strings.Contains(calls, "Create"); created != tt.created {
				t.Errorf("cluster created = %v, want %v (calls %v)", created, tt.created, fc.calls)
			}
			if deleted := strings.Contains(calls, "Delete"); deleted != tt.deleted {
				t.Errorf("cluster deleted = %v, want %v (calls %v)", deleted, tt.deleted, fc.calls)
			}
		})
	}
}

func TestWaitStackReadyNamesWhatIsMissing(t *testing.T) {
	t.Parallel()
	l := New(testConfig(t), WithClusters(&fakeClusters{}), WithNodes(&fakeNodes{}), WithStackProbe(&readyAfter{n: 1000}))
	_, err := l.waitStackReady(context.Background(), nil, 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "PostgreSQL: primary x") || !strings.Contains(err.Error(), "lab status") {
		t.Fatalf("waitStackReady = %v", err)
	}
}

func TestArchiveTag(t *testing.T) {
	t.Parallel()
	ref, err := cluster.ArchiveRef(writeShopArchive(t, "jewelry-shop/shop:v9"))
	if err != nil || ref != "jewelry-shop/shop:v9" || imageTag(ref) != "v9" {
		t.Fatalf("ArchiveRef = %q, %v; tag %q", ref, err, imageTag(ref))
	}
	if got := imageTag("127.0.0.1:5000/shop"); got != "" {
		t.Errorf("imageTag of an untagged reference with a port = %q", got)
	}
}
