package services_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/jewelry-shop/lab/charts"
	"github.com/jewelry-shop/lab/internal/controlplane"
	"github.com/jewelry-shop/lab/internal/services"
)

func TestMain(m *testing.M) { controlplane.Main(m) }

// chartPostgresql renders the jewelry-shop chart's default values and
// returns its postgresql resource.
func chartPostgresql(t *testing.T) services.PostgresqlSpec {
	t.Helper()
	c, err := charts.LoadJewelryShop()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := charts.JewelryShop("quick", "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := charts.Render(t.Context(), c, rel)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := r.Objects()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() == "postgresql" {
			spec, err := services.ParsePostgresql(o.Object)
			if err != nil {
				t.Fatalf("the chart's postgresql resource: %v", err)
			}
			return spec
		}
	}
	t.Fatal("the chart renders no postgresql resource")
	return services.PostgresqlSpec{}
}

func TestParsePostgresql(t *testing.T) {
	t.Parallel()
	obj := func(patroni map[string]any) map[string]any {
		return map[string]any{
			"apiVersion": "acid.zalan.do/v1", "kind": "postgresql",
			"metadata": map[string]any{"name": "jewelry-db"},
			"spec": map[string]any{
				"patroni":    patroni,
				"postgresql": map[string]any{"version": "17", "parameters": map[string]any{"max_connections": "200"}},
			},
		}
	}
	full := func() map[string]any {
		return map[string]any{
			"ttl": 20, "loop_wait": 5, "retry_timeout": 5, "maximum_lag_on_failover": 1048576,
			"synchronous_mode": true, "synchronous_mode_strict": false,
		}
	}
	with := func(k string, v any) map[string]any { p := full(); p[k] = v; return p }
	without := func(k string) map[string]any { p := full(); delete(p, k); return p }
	tests := []struct {
		name    string
		obj     map[string]any
		want    services.PostgresqlSpec
		wantErr string
	}{
		{
			name: "every setting",
			obj:  obj(full()),
			want: services.PostgresqlSpec{
				Name:       "jewelry-db",
				Patroni:    services.PatroniSettings{TTL: 20, LoopWait: 5, RetryTimeout: 5, MaximumLagOnFailover: 1048576, SynchronousMode: true},
				Parameters: map[string]string{"max_connections": "200"},
				Version:    "17",
			},
		},
		{name: "a setting the test does not apply", obj: obj(with("synchronous_node_count", 2)), wantErr: "spec.patroni.synchronous_node_count is not applied"},
		{name: "a setting missing", obj: obj(without("retry_timeout")), wantErr: "spec.patroni.retry_timeout is not set"},
		{name: "a setting of the wrong type", obj: obj(with("ttl", "20s")), wantErr: "spec.patroni.ttl"},
		{name: "another kind", obj: map[string]any{"apiVersion": "v1", "kind": "ConfigMap"}, wantErr: "not a postgresql resource"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := services.ParsePostgresql(tt.obj)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPatroniCluster starts the chart's PostgreSQL cluster as three Patroni
// members on the test control plane and checks that it runs the way Spilo
// does under the operator: the chart's settings in Patroni's DCS
// configuration, the leader lock and the configuration in ConfigMaps, the
// role labels on the pods, writes through the primary Service replicated
// synchronously.
func TestPatroniCluster(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{Nodes: true})
	ns := env.Namespace(t)
	spec := chartPostgresql(t)
	begin := time.Now()
	c := services.StartPatroni(t, services.PatroniOptions{Kubeconfig: env.Kubeconfig, Namespace: ns, Nodes: env.Nodes(), Spec: spec})
	t.Logf("Patroni cluster %s of %d members healthy in %s", c.Scope, len(c.Members), time.Since(begin).Round(time.Millisecond))
	ctx := t.Context()
	kube := kubeClient(t, env.Kubeconfig)

	t.Run("DCS configuration is the chart's", func(t *testing.T) {
		cm, err := kube.CoreV1().ConfigMaps(ns).Get(ctx, c.Scope+"-config", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var dcs services.PatroniSettings
		if err := json.Unmarshal([]byte(cm.Annotations["config"]), &dcs); err != nil {
			t.Fatalf("decode the DCS configuration %q: %v", cm.Annotations["config"], err)
		}
		if diff := cmp.Diff(spec.Patroni, dcs); diff != "" {
			t.Errorf("Patroni's DCS configuration (-chart +DCS):\n%s", diff)
		}
	})

	t.Run("leader lock and role labels", func(t *testing.T) {
		lock, err := c.LeaderLock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if lock.Holder != c.Members[0].Name {
			t.Errorf("leader %q, want the bootstrapping member %s", lock.Holder, c.Members[0].Name)
		}
		pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "application=spilo,cluster-name=" + c.Scope})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, p := range pods.Items {
			got[p.Name] = p.Labels["spilo-role"]
			if p.Annotations["status"] == "" {
				t.Errorf("pod %s has no Patroni status annotation", p.Name)
			}
		}
		want := map[string]string{c.Members[0].Name: "master", c.Members[1].Name: "replica", c.Members[2].Name: "replica"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("spilo-role labels (-want +got):\n%s", diff)
		}
	})

	t.Run("writes through the primary Service reach a synchronous standby", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, c.PrimaryDSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close(ctx) }()
		var port int
		var sync string
		if err := conn.QueryRow(ctx, "SELECT current_setting('port')::int, current_setting('synchronous_standby_names')").Scan(&port, &sync); err != nil {
			t.Fatal(err)
		}
		if port != c.Members[0].Port {
			t.Errorf("the primary Service reached port %d, want the leader's %d", port, c.Members[0].Port)
		}
		if sync == "" {
			t.Errorf("synchronous_standby_names is empty with synchronous_mode %t", spec.Patroni.SynchronousMode)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		t.Logf("synchronous_standby_names = %s", sync)
	})
}

// TestPatroniStartFailure checks that a member whose Patroni fails to start
// is named with the end of its log.
func TestPatroniStartFailure(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{Nodes: true})
	// Not t.TempDir: the postgres user must be able to run it.
	dir, err := os.MkdirTemp("", "fake-patroni-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(dir, "patroni")
	script := "#!/bin/sh\necho \"fake patroni: cannot reach the DCS with $1\" >&2\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := chartPostgresql(t)
	rec := &fatalRecorder{TB: t}
	var wg sync.WaitGroup
	wg.Go(func() {
		services.StartPatroni(rec, services.PatroniOptions{Kubeconfig: env.Kubeconfig, Namespace: env.Namespace(t), Nodes: env.Nodes(), Spec: spec, Binary: fake})
	})
	wg.Wait()
	if rec.msg == "" {
		t.Fatal("StartPatroni succeeded with a patroni that exits at once")
	}
	t.Logf("StartPatroni failed with: %s", rec.msg)
	for _, want := range []string{spec.Name + "-0", "exited during start-up", "fake patroni: cannot reach the DCS"} {
		if !strings.Contains(rec.msg, want) {
			t.Errorf("failure %q does not contain %q", rec.msg, want)
		}
	}
}

// fatalRecorder records the first Fatal and ends the goroutine that called
// it, as testing does, without failing the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func kubeClient(t *testing.T, kubeconfig string) kubernetes.Interface {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return kube
}
