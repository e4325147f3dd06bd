package charts

import (
	"flag"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/jewelry-shop/lab/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestLint runs `helm lint --strict` on the chart with its defaults and with
// every profile's values.
func TestLint(t *testing.T) {
	t.Parallel()
	kv, err := chartutil.ParseKubeVersion(RenderKubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	for _, profile := range Profiles() {
		t.Run(profile, func(t *testing.T) {
			t.Parallel()
			vals, err := ProfileValues(profile)
			if err != nil {
				t.Fatal(err)
			}
			lint := action.NewLint()
			lint.Strict = true
			lint.Namespace = JewelryShopNamespace
			lint.KubeVersion = kv
			res := lint.Run([]string{jewelryShopDir}, vals)
			for _, m := range res.Messages {
				t.Logf("lint: %s", m)
			}
			if len(res.Errors) > 0 || res.TotalChartsLinted != 1 {
				t.Errorf("helm lint --strict: %d charts linted, errors: %v", res.TotalChartsLinted, res.Errors)
			}
		})
	}
}

// renderedStack is the jewelry-shop chart rendered for a profile, with
// every object decoded strictly into its Kubernetes type.
type renderedStack struct {
	deployments  []*appsv1.Deployment
	statefulSets []*appsv1.StatefulSet
	pdbs         []*policyv1.PodDisruptionBudget
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	configMaps   map[string]*corev1.ConfigMap
	postgresql   *postgresqlObject
	all          []runtime.Object
}

// postgresqlObject is the part of the Zalando postgresql kind the chart
// renders; decoding into it strictly catches fields the operator does not
// know (the API server test checks the real CRD schema).
type postgresqlObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		TeamID            string `json:"teamId"`
		NumberOfInstances int    `json:"numberOfInstances"`
		PostgreSQL        struct {
			Version    string            `json:"version"`
			Parameters map[string]string `json:"parameters"`
		} `json:"postgresql"`
		Volume struct {
			Size         string `json:"size"`
			StorageClass string `json:"storageClass,omitempty"`
		} `json:"volume"`
		Users     map[string][]string `json:"users"`
		Databases map[string]string   `json:"databases"`
		Patroni   struct {
			TTL                   int  `json:"ttl"`
			LoopWait              int  `json:"loop_wait"`
			RetryTimeout          int  `json:"retry_timeout"`
			SynchronousMode       bool `json:"synchronous_mode"`
			SynchronousModeStrict bool `json:"synchronous_mode_strict"`
			MaximumLagOnFailover  int  `json:"maximum_lag_on_failover"`
		} `json:"patroni"`
		Resources corev1.ResourceRequirements `json:"resources"`
	} `json:"spec"`
}

// renderProfile renders the chart for a profile with extra values on top.
func renderProfile(t *testing.T, profile string, extra map[string]any) *Rendered {
	t.Helper()
	c, err := LoadJewelryShop()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := JewelryShop(profile, "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Render(t.Context(), c, rel.WithValues(extra))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// decodeStrict decodes every rendered object into its Go type, rejecting
// unknown and duplicate fields.
func decodeStrict(t *testing.T, r *Rendered) *renderedStack {
	t.Helper()
	s := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, clientgoscheme.Scheme, clientgoscheme.Scheme,
		kjson.SerializerOptions{Yaml: true, Strict: true})
	out := &renderedStack{configMaps: map[string]*corev1.ConfigMap{}}
	for _, m := range r.Manifests {
		var head metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(m.Content), &head); err != nil {
			t.Fatalf("%s: %v", m.Source, err)
		}
		if head.Kind == "postgresql" {
			pg := &postgresqlObject{}
			if err := yaml.UnmarshalStrict([]byte(m.Content), pg); err != nil {
				t.Errorf("%s: decode postgresql strictly: %v", m.Source, err)
			}
			out.postgresql = pg
			continue
		}
		obj, _, err := s.Decode([]byte(m.Content), nil, nil)
		if err != nil {
			t.Errorf("%s: decode %s strictly: %v", m.Source, head.Kind, err)
			continue
		}
		out.all = append(out.all, obj)
		switch o := obj.(type) {
		case *appsv1.Deployment:
			out.deployments = append(out.deployments, o)
		case *appsv1.StatefulSet:
			out.statefulSets = append(out.statefulSets, o)
		case *policyv1.PodDisruptionBudget:
			out.pdbs = append(out.pdbs, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			out.hpas = append(out.hpas, o)
		case *corev1.ConfigMap:
			out.configMaps[o.Name] = o
		}
	}
	return out
}

// TestRenderGolden renders every profile and compares the manifests with
// testdata/render-<profile>.golden.yaml (rewritten with -update).
//
// The offline stack's rendering (postgresql.mode=single) is
// render-quick-offline, with a fixed password: the chart makes one at
// random otherwise.
func TestRenderGolden(t *testing.T) {
	t.Parallel()
	variants := map[string]map[string]any{}
	for _, profile := range Profiles() {
		variants[profile] = nil
	}
	variants["quick-offline"] = mergeValues(OfflineValues(), map[string]any{"postgresql": map[string]any{"single": map[string]any{"password": "golden-password"}}})
	for name, extra := range variants {
		profile, _, _ := strings.Cut(name, "-")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := renderProfile(t, profile, extra)
			var b strings.Builder
			for _, m := range r.Manifests {
				b.WriteString("---\n" + strings.TrimSpace(m.Content) + "\n")
			}
			b.WriteString("--- # NOTES.txt\n# " + strings.ReplaceAll(strings.TrimSpace(r.Notes), "\n", "\n# ") + "\n")
			golden.Check(t, filepath.Join("testdata", "render-"+name+".golden.yaml"), []byte(b.String()), *update)
		})
	}
}

// podTemplates returns every workload's pod template, by "Kind/name".
func (s *renderedStack) podTemplates() map[string]corev1.PodTemplateSpec {
	out := map[string]corev1.PodTemplateSpec{}
	for _, d := range s.deployments {
		out["Deployment/"+d.Name] = d.Spec.Template
	}
	for _, st := range s.statefulSets {
		out["StatefulSet/"+st.Name] = st.Spec.Template
	}
	return out
}

// TestSchemaRejects checks that bad values are refused with a message that
// names the field.
func TestSchemaRejects(t *testing.T) {
	t.Parallel()
	c, err := LoadJewelryShop()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		values string
		want   []string
	}{
		{"replicas not a number", `web: {replicas: three}`, []string{"/web/replicas", "string"}},
		{"unknown top-level key", `webb: {replicas: 3}`, []string{"webb"}},
		{"unknown workload key", `worker: {replica: 3}`, []string{"/worker", "replica"}},
		{"latest tag", `image: {tag: latest}`, []string{"/image/tag"}},
		{"latest tag of nginx", `nginx: {image: {tag: latest}}`, []string{"/nginx/image/tag"}},
		{"missing limits", `web: {resources: {limits: null}}`, []string{"/web/resources", "limits"}},
		{"slow sentinel", `redis: {sentinel: {downAfterMilliseconds: 30000}}`, []string{"/redis/sentinel/downAfterMilliseconds"}},
		{"long patroni ttl", `postgresql: {patroni: {ttl: 60}}`, []string{"/postgresql/patroni/ttl"}},
		{"hpa target over 100 %", `web: {autoscaling: {targetCPUUtilizationPercentage: 170}}`, []string{"/web/autoscaling/targetCPUUtilizationPercentage"}},
		{"probe without a handler", `web: {readinessProbe: {httpGet: null, periodSeconds: 5}}`, []string{"/web/readinessProbe"}},
		{"patroni rule", `postgresql: {patroni: {ttl: 10, loop_wait: 5, retry_timeout: 5}}`, []string{"postgresql.patroni", "loop_wait + 2 * retry_timeout"}},
		{"cluster name without team", `postgresql: {clusterName: shop-db}`, []string{"postgresql.clusterName", "jewelry-"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			vals := map[string]any{}
			if err := yaml.Unmarshal([]byte(tt.values), &vals); err != nil {
				t.Fatal(err)
			}
			rel, err := JewelryShop("quick", "")
			if err != nil {
				t.Fatal(err)
			}
			_, err = Render(t.Context(), c, rel.WithValues(vals))
			if err == nil {
				t.Fatalf("values %s were accepted", tt.values)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestImages lists the images of the embedded chart.
func TestImages(t *testing.T) {
	t.Parallel()
	rel, err := JewelryShop("full", "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Images(t.Context(), NewSource(Options{}), []Release{rel})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"docker.io/library/nginx:1.27.3-alpine", "docker.io/library/redis:7.4.2", "jewelry-shop/shop:1.2.3"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("images (-want +got):\n%s", diff)
	}
}

// TestProfileValuesUnknown names the known profiles.
func TestProfileValuesUnknown(t *testing.T) {
	t.Parallel()
	_, err := ProfileValues("medium")
	if err == nil || !strings.Contains(err.Error(), "full") || !strings.Contains(err.Error(), "quick") {
		t.Errorf("ProfileValues(medium) = %v, want an error listing full and quick", err)
	}
}

// TestImageOverride replaces the shop by another application through
// values only, as the production Django image would be.
func TestImageOverride(t *testing.T) {
	t.Parallel()
	s := decodeStrict(t, renderProfile(t, "quick", map[string]any{"web": map[string]any{
		"image":          map[string]any{"repository": "registry.example.com/shop/django", "tag": "2026.11.3"},
		"command":        []any{"gunicorn"},
		"args":           []any{"shop.wsgi", "--bind=0.0.0.0:8000"},
		"readinessProbe": map[string]any{"httpGet": map[string]any{"path": "/health/ready/", "port": "http"}},
	}}))
	var web *appsv1.Deployment
	for _, d := range s.deployments {
		if d.Name == "jewelry-shop-web" {
			web = d
		}
	}
	if web == nil {
		t.Fatal("no web Deployment")
	}
	c := web.Spec.Template.Spec.Containers[0]
	got := []string{c.Image, strings.Join(c.Command, " "), strings.Join(c.Args, " "), c.ReadinessProbe.HTTPGet.Path}
	want := []string{"registry.example.com/shop/django:2026.11.3", "gunicorn", "shop.wsgi --bind=0.0.0.0:8000", "/health/ready/"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("web container (-want +got):\n%s", diff)
	}
	for _, d := range s.deployments {
		if d.Name == "jewelry-shop-worker" && d.Spec.Template.Spec.Containers[0].Image != "jewelry-shop/shop:0.1.0" {
			t.Errorf("worker image %s changed with web's", d.Spec.Template.Spec.Containers[0].Image)
		}
	}
}
