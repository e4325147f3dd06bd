package charts

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/repo"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// TestStack checks the pinned releases: order, versions, and the values
// that must be passed on every install and upgrade.
func TestStack(t *testing.T) {
	t.Parallel()
	stack, err := Stack("full", "2.0.0", false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range stack {
		got = append(got, r.Name+"@"+r.Namespace+" "+r.Chart.String())
	}
	want := []string{
		"postgres-operator@postgres-operator postgres-operator 2.0.1 from https://opensource.zalando.com/postgres-operator/charts/postgres-operator",
		"chaos-mesh@chaos-mesh chaos-mesh 2.8.3 from https://charts.chaos-mesh.org",
		"jewelry-shop@jewelry-shop jewelry-shop (embedded)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stack (-want +got):\n%s", diff)
	}
	chaos := stack[1].Values["chaosDaemon"].(map[string]any)
	if chaos["runtime"] != "containerd" || chaos["socketPath"] != "/run/k3s/containerd/containerd.sock" {
		t.Errorf("Chaos Mesh daemon values %v, want containerd at k3s' socket", chaos)
	}
	if tag := stack[2].Values["image"].(map[string]any)["tag"]; tag != "2.0.0" {
		t.Errorf("shop image tag %v, want 2.0.0", tag)
	}
	// WithValues leaves the original alone.
	shop := stack[2]
	_ = shop.WithValues(map[string]any{"image": map[string]any{"tag": "3.0.0"}})
	if tag := shop.Values["image"].(map[string]any)["tag"]; tag != "2.0.0" {
		t.Errorf("WithValues changed the original release's values: tag %v", tag)
	}
}

// TestObjectImages checks where images are found in rendered objects.
func TestObjectImages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		obj  string
		want []string
	}{
		{
			"deployment", `{apiVersion: apps/v1, kind: Deployment, spec: {template: {spec: {initContainers: [{image: "a:1"}], containers: [{image: "b:2"}, {image: "c:3"}]}}}}`,
			[]string{"a:1", "b:2", "c:3"},
		},
		{"daemonset", `{apiVersion: apps/v1, kind: DaemonSet, spec: {template: {spec: {containers: [{image: "d:1"}]}}}}`, []string{"d:1"}},
		{"cronjob", `{apiVersion: batch/v1, kind: CronJob, spec: {jobTemplate: {spec: {template: {spec: {containers: [{image: "e:1"}]}}}}}}`, []string{"e:1"}},
		{"pod", `{apiVersion: v1, kind: Pod, spec: {containers: [{image: "f:1"}]}}`, []string{"f:1"}},
		{
			"operator configuration", `{apiVersion: acid.zalan.do/v1, kind: OperatorConfiguration, configuration: {docker_image: "ghcr.io/zalando/spilo-18:1"}}`,
			[]string{"ghcr.io/zalando/spilo-18:1"},
		},
		{"operator configmap", `{apiVersion: v1, kind: ConfigMap, data: {docker_image: "ghcr.io/zalando/spilo-18:1"}}`, []string{"ghcr.io/zalando/spilo-18:1"}},
		{
			"image a controller starts", `{apiVersion: apps/v1, kind: Deployment, spec: {template: {spec: {containers: [{image: "ghcr.io/chaos-mesh/chaos-mesh:v2.8.3", env: [{name: TZ, value: UTC}, {name: POD_FAILURE_PAUSE_IMAGE, value: "registry.k8s.io/pause:3.10"}]}]}}}}`,
			[]string{"ghcr.io/chaos-mesh/chaos-mesh:v2.8.3", "registry.k8s.io/pause:3.10"},
		},
		{"service", `{apiVersion: v1, kind: Service, spec: {ports: [{port: 80}]}}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			obj := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(tt.obj), &obj.Object); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, objectImages(obj)); diff != "" {
				t.Errorf("images (-want +got):\n%s", diff)
			}
		})
	}
}

// chaosMeshTemplate is the part of Chaos Mesh 2.8.3's controller-manager
// Deployment that concerns the pause image: its controller reads the image
// pod-failure puts into pods from POD_FAILURE_PAUSE_IMAGE, which the chart
// sets from controllerManager.podChaos.podFailure.pauseImage (default
// gcr.io/google-containers/pause:latest).
const chaosMeshTemplate = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: chaos-controller-manager
spec:
  selector: {matchLabels: {app.kubernetes.io/component: controller-manager}}
  template:
    metadata: {labels: {app.kubernetes.io/component: controller-manager}}
    spec:
      containers:
        - name: chaos-mesh
          image: ghcr.io/chaos-mesh/chaos-mesh:v2.8.3
          env:
            - name: POD_FAILURE_PAUSE_IMAGE
              value: {{ .Values.controllerManager.podChaos.podFailure.pauseImage }}
`

// TestChaosMeshPauseImage: the pinned Chaos Mesh release replaces the
// chart's default pause image (old, unpinned, no arm64) by a pinned
// multi-arch one, and Images (`lab images`, and what `lab up` imports)
// lists it. The chart is a stand-in of the upstream one with the same value
// path and environment variable, served on loopback.
func TestChaosMeshPauseImage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := &chart.Chart{
		Metadata:  &chart.Metadata{APIVersion: chart.APIVersionV2, Name: ChaosMeshChart, Version: ChaosMeshVersion, Type: "application"},
		Templates: []*chart.File{{Name: "templates/controller-manager-deployment.yaml", Data: []byte(chaosMeshTemplate)}},
		Values: map[string]any{"controllerManager": map[string]any{"podChaos": map[string]any{"podFailure": map[string]any{
			"pauseImage": "gcr.io/google-containers/pause:latest",
		}}}},
	}
	if _, err := chartutil.Save(c, dir); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	index, err := repo.IndexDirectory(dir, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := index.WriteFile(filepath.Join(dir, "index.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	rel := ChaosMesh()
	rel.Chart.Repo = srv.URL
	got, err := Images(t.Context(), NewSource(Options{}), []Release{rel})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got, ChaosMeshPauseImage) || slices.Contains(got, "gcr.io/google-containers/pause:latest") {
		t.Errorf("images of the Chaos Mesh release %v, want the pinned pause image %s instead of the chart's default", got, ChaosMeshPauseImage)
	}
	if err := checkImagePinned(ChaosMeshPauseImage); err != nil {
		t.Errorf("pause image: %v", err)
	}
}
