package controlplane_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/kube"
	"helm.sh/helm/v3/pkg/storage/driver"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jewelry-shop/lab/internal/controlplane"
)

// TestHelmInstall installs a small chart with --wait (its pods must really
// be scheduled and become Ready) and uninstalls it.
func TestHelmInstall(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{Nodes: true})
	ctx := t.Context()
	ns := env.Namespace(t)

	chrt, err := loader.Load("testdata/smoke")
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	cfg := new(action.Configuration)
	if err := cfg.Init(kube.GetConfig(env.Kubeconfig, "", ns), ns, "secret", t.Logf); err != nil {
		t.Fatalf("init helm: %v", err)
	}

	install := action.NewInstall(cfg)
	install.ReleaseName = "smoke"
	install.Namespace = ns
	install.Wait = true
	install.Timeout = 2 * time.Minute
	begin := time.Now()
	rel, err := install.RunWithContext(ctx, chrt, nil)
	if err != nil {
		t.Fatalf("helm install --wait: %v", err)
	}
	t.Logf("helm install --wait of %s took %v", rel.Name, time.Since(begin).Round(time.Millisecond))

	var dep appsv1.Deployment
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "smoke"}, &dep); err != nil {
		t.Fatalf("get deployment: %v", err)
	}
	if dep.Status.ReadyReplicas != 2 {
		t.Errorf("deployment has %d ready replicas after install --wait, want 2", dep.Status.ReadyReplicas)
	}

	uninstall := action.NewUninstall(cfg)
	uninstall.Wait = true
	uninstall.Timeout = time.Minute
	if _, err := uninstall.Run(rel.Name); err != nil {
		t.Fatalf("helm uninstall: %v", err)
	}
	if _, err := action.NewHistory(cfg).Run(rel.Name); !errors.Is(err, driver.ErrReleaseNotFound) {
		t.Errorf("release history after uninstall: %v, want %v", err, driver.ErrReleaseNotFound)
	}
	for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}, &autoscalingv2.HorizontalPodAutoscaler{}} {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "smoke"}, obj)
		if !apierrors.IsNotFound(err) {
			t.Errorf("%T smoke after uninstall: %v, want not found", obj, err)
		}
	}
	// The garbage collector removes the ReplicaSet, whose pods kwok then
	// deletes.
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return len(listPods(t, env, ns, "smoke")) == 0, nil
	})
	if err != nil {
		t.Errorf("pods left after uninstall: %v", fmt.Sprint(len(listPods(t, env, ns, "smoke"))))
	}
}
