//go:build !race

package realnode_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/jewelry-shop/lab/charts"
	"github.com/jewelry-shop/lab/internal/controlplane"
	"github.com/jewelry-shop/lab/internal/realnode"
	"github.com/jewelry-shop/lab/internal/services"
	"github.com/jewelry-shop/lab/shop/image"
)

// What `lab up` would install on k3s and this tier cannot have, each made
// here from what can be had, and said so in the report's environment (what
// lab reads from the cluster) and in the README.

// shopImage builds the reference shop's image for this machine, as `make
// image` does, and returns the archive and its tag.
func shopImage(t *testing.T) (archive, tag string) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("find the module: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	tag = "realnode"
	meta := image.Metadata{Version: tag, Commit: "test", Created: time.Unix(0, 0).UTC(), Source: "https://github.com/jewelry-shop/lab"}
	bin, err := image.BuildBinary(t.Context(), root, "./cmd/shop", runtime.GOARCH, meta)
	if err != nil {
		t.Fatal(err)
	}
	img, err := image.Build(bin, runtime.GOARCH, meta)
	if err != nil {
		t.Fatal(err)
	}
	archive = filepath.Join(t.TempDir(), "shop-image-linux-"+runtime.GOARCH+".tar")
	if err := image.WriteTarball(archive, image.Repository+":"+tag, img); err != nil {
		t.Fatal(err)
	}
	return archive, tag
}

// postgresStandIn stands in for what the postgres-operator publishes for
// the chart's PostgreSQL cluster: the primary Service jewelry-shop-db with
// its endpoint, and the shop user's credentials Secret, leading to one
// PostgreSQL 15 that the test runs on the host's bridge address. There is
// no postgresql resource, no Patroni, no replica: nothing to fail over.
func postgresStandIn(t *testing.T, c *realnode.Cluster, cs kubernetes.Interface, ns string) *services.Postgres {
	t.Helper()
	ctx := t.Context()
	pg := services.StartPostgresWith(t, services.PostgresOptions{
		Listen: []string{c.HostIP},
		HBA:    []string{"host all all " + c.ClusterCIDR + " scram-sha-256"},
	})
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	password := hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE ROLE shop LOGIN PASSWORD '" + password + "'",
		"CREATE DATABASE shop OWNER shop",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", strings.Fields(q)[0]+" "+strings.Fields(q)[1], err)
		}
	}
	_ = conn.Close(ctx)

	const name = "jewelry-shop-db"
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"lab.jewelry-shop.dev/stand-in": "postgres-operator"}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "postgresql", Port: 5432, TargetPort: intstr.FromInt32(int32(pg.Port))}}},
	}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ep := &corev1.Endpoints{ //nolint:staticcheck // what the operator writes; mirrored into EndpointSlices
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Subsets: []corev1.EndpointSubset{{ //nolint:staticcheck // see above
			Addresses: []corev1.EndpointAddress{{IP: c.HostIP}},                                           //nolint:staticcheck // see above
			Ports:     []corev1.EndpointPort{{Name: "postgresql", Port: int32(pg.Port), Protocol: "TCP"}}, //nolint:staticcheck // see above
		}},
	}
	if _, err := cs.CoreV1().Endpoints(ns).Create(ctx, ep, metav1.CreateOptions{}); err != nil { //nolint:staticcheck // see above
		t.Fatal(err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "shop." + name + ".credentials.postgresql.acid.zalan.do"},
		StringData: map[string]string{"username": "shop", "password": password},
	}
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return pg
}

// chaosMeshStandIn runs, in namespace chaos-mesh, a Deployment and a
// DaemonSet named like Chaos Mesh's controller and daemon, of the pause
// image (so that lab's check that Chaos Mesh is ready passes and the report
// names the stand-in), and, until the test ends, the stand-in for the
// controller's work on the lab namespace's PodChaos: the pod deletions and
// image swaps Chaos Mesh does through the API, which the real kubelets then
// carry out.
func chaosMeshStandIn(t *testing.T, env *controlplane.Env, c *realnode.Cluster, stackNS string) {
	t.Helper()
	ctx := t.Context()
	if err := controlplane.InstallChaosStandIn(ctx, env.Client, charts.ChaosMeshNamespace, c.Images.Pause.Ref); err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		// With the pause image a pod-failure really stops the pod's
		// containers, as Chaos Mesh's does; without it, it would only get
		// its status, and the Redis master would never go down.
		controlplane.RunChaosStandInWith(sctx, env.Client, stackNS, controlplane.StandIn{PauseImage: c.Images.Pause.Ref, OnKill: func(k controlplane.Kill) {
			t.Logf("chaos stand-in: %s: %s pod %s at %s", k.Chaos, k.Action, k.Pod, k.At.Format(time.TimeOnly))
		}})
	}()
	t.Cleanup(func() { stop(); <-done })
}

// installChart installs the jewelry-shop chart with the Helm SDK as `lab up`
// does, with the quick profile's values; only the image references change
// (to the images built here, never pulled), and the postgresql resource is
// left out: no operator would act on it, and the stand-in publishes what
// the operator would.
func installChart(t *testing.T, c *realnode.Cluster, kubeconfig []byte, shopTag string) *charts.Result {
	t.Helper()
	in, err := charts.NewInstaller(kubeconfig, charts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rel, err := charts.JewelryShop("quick", shopTag)
	if err != nil {
		t.Fatal(err)
	}
	img := func(ref string) map[string]any {
		repo, tag, _ := strings.Cut(ref, ":")
		return map[string]any{"repository": repo, "tag": tag, "pullPolicy": "Never"}
	}
	rel = rel.WithValues(map[string]any{
		"image":      map[string]any{"pullPolicy": "Never"},
		"redis":      map[string]any{"image": img(c.Images.Redis.Ref)},
		"nginx":      map[string]any{"image": img(c.Images.Nginx.Ref)},
		"postgresql": map[string]any{"enabled": false},
	})
	rel.RequiresAPIs = nil
	rel.Timeout = 6 * time.Minute
	begin := time.Now()
	res, err := in.Install(t.Context(), rel)
	if err != nil {
		t.Fatalf("install the chart: %v", err)
	}
	t.Logf("chart %s %s installed and ready in %v", res.Chart, res.Version, time.Since(begin).Round(time.Millisecond))
	return res
}

// createNamespace creates a namespace; the control plane ends with the test
// binary.
func createNamespace(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	if _, err := cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond every second until it holds, for at most timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func(ctx context.Context) (bool, string)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(t.Context(), time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		ok, detail := cond(ctx)
		last = detail
		return ok, nil
	})
	if err != nil {
		t.Fatalf("wait for %s (last: %s): %v", what, last, err)
	}
}

// readFile reads a file or ends the test.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(fmt.Errorf("read %s: %w", path, err))
	}
	return b
}
