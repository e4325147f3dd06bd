package charts

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/kube"
	kubefake "helm.sh/helm/v3/pkg/kube/fake"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes/fake"
)

// timingOutKubeClient is Helm's printing fake whose wait always times out,
// like Helm's real wait does.
type timingOutKubeClient struct {
	kubefake.PrintingKubeClient
}

func (timingOutKubeClient) Wait(kube.ResourceList, time.Duration) error {
	return context.DeadlineExceeded
}

// memoryInstaller returns an Installer on Helm's in-memory release storage
// and printing fake client, with a fake clientset holding objs, and the
// storage to inspect.
func memoryInstaller(t *testing.T, kc kube.Interface, opts Options, objs ...runtime.Object) (*Installer, *storage.Storage) {
	t.Helper()
	kv, err := chartutil.ParseKubeVersion(RenderKubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	store := storage.Init(driver.NewMemory())
	if kc == nil {
		kc = &kubefake.PrintingKubeClient{Out: io.Discard}
	}
	cs := fake.NewClientset(objs...)
	// The API the jewelry-shop chart requires, as if the operator ran.
	cs.Discovery().(*fakediscovery.FakeDiscovery).Resources = []*metav1.APIResourceList{
		{GroupVersion: "acid.zalan.do/v1", APIResources: []metav1.APIResource{{Name: "postgresqls", Kind: "postgresql", Namespaced: true}}},
	}
	in := newInstaller(cs, opts)
	in.pollInterval = 10 * time.Millisecond
	in.actionConfig = func(string) (*action.Configuration, error) {
		return &action.Configuration{Releases: store, KubeClient: kc, Capabilities: caps, Log: t.Logf}, nil
	}
	return in, store
}

// TestInstallConverges: the first Install installs, the next ones upgrade,
// and the values are always exactly the release's.
func TestInstallConverges(t *testing.T) {
	t.Parallel()
	in, store := memoryInstaller(t, nil, Options{})
	rel, err := JewelryShop("quick", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	steps := []struct {
		rel          Release
		wantRevision int
		wantUpgraded bool
	}{
		{rel.WithValues(map[string]any{"web": map[string]any{"port": 9000}}), 1, false},
		{rel, 2, true},
		{rel, 3, true},
	}
	for _, s := range steps {
		res, err := in.Install(ctx, s.rel)
		if err != nil {
			t.Fatalf("Install: %v", err)
		}
		if res.Revision != s.wantRevision || res.Upgraded != s.wantUpgraded {
			t.Errorf("Install: revision %d upgraded %t, want %d %t", res.Revision, res.Upgraded, s.wantRevision, s.wantUpgraded)
		}
		if res.Chart != JewelryShopChart || res.Version == "" || !strings.Contains(res.Notes, "jewelry-shop") {
			t.Errorf("Install result %+v lacks the chart, version or notes", res)
		}
		got, err := store.Get(rel.Name, res.Revision)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(s.rel.Values, got.Config); diff != "" {
			t.Errorf("revision %d values are not exactly the release's (-want +got):\n%s", res.Revision, diff)
		}
	}
	// The first and third revisions differ only by the port; the second
	// and third are the same.
	r2, _ := store.Get(rel.Name, 2)
	r3, _ := store.Get(rel.Name, 3)
	if r2.Manifest != r3.Manifest {
		t.Error("installing the same release twice rendered different manifests")
	}
}

// TestInstallRecoversPending: a revision left pending-upgrade by an
// interrupted run does not block the next Install.
func TestInstallRecoversPending(t *testing.T) {
	t.Parallel()
	in, store := memoryInstaller(t, nil, Options{})
	rel, err := JewelryShop("quick", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Install(t.Context(), rel); err != nil {
		t.Fatal(err)
	}
	stuck, err := store.Get(rel.Name, 1)
	if err != nil {
		t.Fatal(err)
	}
	pending := *stuck
	info := *stuck.Info
	pending.Info = &info
	pending.Version = 2
	pending.SetStatus(release.StatusPendingUpgrade, "interrupted")
	if err := store.Create(&pending); err != nil {
		t.Fatal(err)
	}
	res, err := in.Install(t.Context(), rel)
	if err != nil {
		t.Fatalf("Install after an interrupted upgrade: %v", err)
	}
	if res.Revision != 3 || res.Recovered != "revision 2 (pending-upgrade)" {
		t.Errorf("Install: revision %d, recovered %q; want 3 and revision 2 (pending-upgrade)", res.Revision, res.Recovered)
	}
	r2, err := store.Get(rel.Name, 2)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Info.Status != release.StatusFailed {
		t.Errorf("revision 2 is %s, want failed", r2.Info.Status)
	}
}

// TestInstallTimeoutExplains: when Helm's wait times out, Install says
// which pods are not ready and why, and still unwraps to Helm's error.
func TestInstallTimeoutExplains(t *testing.T) {
	t.Parallel()
	rel, err := JewelryShop("quick", "")
	if err != nil {
		t.Fatal(err)
	}
	rel.Namespace = "shop"
	rel.Timeout = time.Second
	pods := []runtime.Object{
		pod("web-1", withWaiting("web", "jewelry-shop/shop:0.1.0", "ErrImagePull", "pull access denied")),
		pod("web-2", withReady()),
	}
	in, _ := memoryInstaller(t, &timingOutKubeClient{kubefake.PrintingKubeClient{Out: io.Discard}}, Options{}, pods...)
	in.pollInterval = time.Millisecond
	_, err = in.Install(t.Context(), rel)
	var nre *NotReadyError
	if !errors.As(err, &nre) {
		t.Fatalf("Install = %v, want a *NotReadyError", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the error does not unwrap to Helm's %v", context.DeadlineExceeded)
	}
	want := []PodProblem{{
		Pod: "web-1", Node: "node-a", Reason: "ImagePull",
		Detail: "container web cannot get image jewelry-shop/shop:0.1.0 (ErrImagePull): pull access denied",
	}}
	if diff := cmp.Diff(want, nre.Pods); diff != "" {
		t.Errorf("pods not ready (-want +got):\n%s", diff)
	}
	for _, w := range []string{"release jewelry-shop in namespace shop is not ready after 1s", "pod web-1 on node-a: ImagePull", "kubectl -n shop describe pods"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not say %q:\n%v", w, err)
		}
	}
}

// TestProgressString checks the progress line.
func TestProgressString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    Progress
		want string
	}{
		{Progress{Release: "r", Ready: 2, Total: 2, Elapsed: 1500 * time.Millisecond}, "r: 2/2 pods ready (2s)"},
		{
			Progress{Release: "r", Ready: 0, Total: 5, Waiting: []string{"a (X)", "b (Y)", "c (Z)", "d (W)", "e (V)"}, Elapsed: time.Minute},
			"r: 0/5 pods ready, waiting for a (X), b (Y), c (Z) and 2 more (1m0s)",
		},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

// podOption changes a test pod.
type podOption func(*corev1.Pod)

// pod returns a running pod on node-a in namespace shop.
func pod(name string, opts ...podOption) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec:       corev1.PodSpec{NodeName: "node-a"},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func withReady() podOption {
	return func(p *corev1.Pod) {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue})
	}
}

func withWaiting(container, image, reason, message string) podOption {
	return func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodPending
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: container, Image: image, RestartCount: 4,
			State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error"}},
		})
	}
}

// TestInstallWaitsForAPIs: a release whose chart needs an operator's API
// fails clearly when the cluster does not serve it.
func TestInstallWaitsForAPIs(t *testing.T) {
	t.Parallel()
	in, _ := memoryInstaller(t, nil, Options{})
	in.clientset.Discovery().(*fakediscovery.FakeDiscovery).Resources = nil
	rel, err := JewelryShop("quick", "")
	if err != nil {
		t.Fatal(err)
	}
	rel.Timeout = 50 * time.Millisecond
	var waiting []string
	rel.Progress = func(p Progress) { waiting = append(waiting, p.Waiting...) }
	_, err = in.Install(t.Context(), rel)
	if err == nil || !strings.Contains(err.Error(), "needs the API acid.zalan.do/v1/postgresqls, which the cluster does not serve after 50ms") {
		t.Fatalf("Install without the postgresql API = %v, want an error naming the API", err)
	}
	if len(waiting) == 0 || waiting[0] != "API acid.zalan.do/v1/postgresqls" {
		t.Errorf("progress while waiting for the API: %v", waiting)
	}
}
