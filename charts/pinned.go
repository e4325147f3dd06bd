package charts

import (
	"fmt"
	"time"
)

// The pinned upstream charts and the namespaces of the lab's releases. Bump
// a version here only after re-checking DESIGN.md's pitfalls for it.
const (
	ChaosMeshChart   = "chaos-mesh"
	ChaosMeshVersion = "2.8.3"
	ChaosMeshRepo    = "https://charts.chaos-mesh.org"

	PostgresOperatorChart   = "postgres-operator"
	PostgresOperatorVersion = "2.0.1"
	PostgresOperatorRepo    = "https://opensource.zalando.com/postgres-operator/charts/postgres-operator"

	// JewelryShopChart is the embedded chart (see LoadJewelryShop).
	JewelryShopChart = "jewelry-shop"

	ChaosMeshNamespace        = "chaos-mesh"
	PostgresOperatorNamespace = "postgres-operator"
	JewelryShopNamespace      = "jewelry-shop"

	// PostgresqlAPI is the postgres-operator's resource that the
	// jewelry-shop chart creates.
	PostgresqlAPI = "acid.zalan.do/v1/postgresqls"

	// RenderKubeVersion is the Kubernetes version charts are rendered for
	// without a cluster: the k3s version lab pins.
	RenderKubeVersion = "v1.33.6"

	// K3sContainerdSocket is where k3s' containerd listens on every node;
	// Chaos Mesh's daemon needs it to reach the containers.
	K3sContainerdSocket = "/run/k3s/containerd/containerd.sock"

	// ChaosMeshPauseImage is the image Chaos Mesh's pod-failure puts in
	// place of a pod's containers. The chart's default,
	// gcr.io/google-containers/pause:latest, is years old, unpinned and has
	// no arm64 variant; this one is multi-arch (amd64, arm64, …).
	ChaosMeshPauseImage = "registry.k8s.io/pause:3.10"
	// chaosMeshPauseEnv is the controller manager's environment variable
	// that the chart sets from controllerManager.podChaos.podFailure.pauseImage.
	chaosMeshPauseEnv = "POD_FAILURE_PAUSE_IMAGE"
)

// Ref names a chart: an upstream chart in a repository at a pinned version,
// or the embedded jewelry-shop chart when Repo is empty.
type Ref struct {
	Name    string
	Version string
	// Repo is the chart repository's URL (the directory of its index.yaml).
	Repo string
}

// Embedded reports whether r is the embedded jewelry-shop chart.
func (r Ref) Embedded() bool { return r.Repo == "" }

func (r Ref) String() string {
	if r.Embedded() {
		return r.Name + " (embedded)"
	}
	return fmt.Sprintf("%s %s from %s", r.Name, r.Version, r.Repo)
}

// Release is one Helm release the lab installs.
type Release struct {
	// Name is the release name; Namespace is created when missing.
	Name      string
	Namespace string
	Chart     Ref
	// Values are the values the release gets, exactly: an upgrade does not
	// reuse the values of the previous revision.
	Values map[string]any
	// Timeout bounds the wait for the release's workloads to be ready.
	Timeout time.Duration
	// RequiresAPIs are resources, as "group/version/resource", that the
	// chart creates but another release provides (a CRD an operator
	// registers). Install waits, within Timeout, until the API server
	// serves them.
	RequiresAPIs []string
	// Progress, when set, receives the state of the release while it is
	// installed and waited for.
	Progress func(Progress)
}

// WithValues returns a copy of r whose values have vals merged on top,
// recursively (maps merge, anything else replaces).
func (r Release) WithValues(vals map[string]any) Release {
	r.Values = mergeValues(r.Values, vals)
	return r
}

// ChaosMesh is the pinned Chaos Mesh release, configured for k3s: the
// containerd runtime and k3s' socket are set on every install and upgrade
// (the chart's default is Docker).
func ChaosMesh() Release {
	return Release{
		Name:      "chaos-mesh",
		Namespace: ChaosMeshNamespace,
		Chart:     Ref{Name: ChaosMeshChart, Version: ChaosMeshVersion, Repo: ChaosMeshRepo},
		Values: map[string]any{
			"chaosDaemon": map[string]any{
				"runtime":    "containerd",
				"socketPath": K3sContainerdSocket,
			},
			// The lab only creates experiments through the API.
			"dashboard": map[string]any{"create": false},
			"controllerManager": map[string]any{
				"podChaos": map[string]any{"podFailure": map[string]any{"pauseImage": ChaosMeshPauseImage}},
			},
		},
		Timeout: 5 * time.Minute,
	}
}

// PostgresOperator is the pinned Zalando postgres-operator release. Its
// configuration keeps a cluster's instances on different nodes (required
// pod anti-affinity) and gives the pods a readiness probe.
func PostgresOperator() Release {
	return Release{
		Name:      "postgres-operator",
		Namespace: PostgresOperatorNamespace,
		Chart:     Ref{Name: PostgresOperatorChart, Version: PostgresOperatorVersion, Repo: PostgresOperatorRepo},
		Values: map[string]any{
			"configKubernetes": map[string]any{
				"enable_pod_antiaffinity":                      true,
				"pod_antiaffinity_preferred_during_scheduling": false,
				"enable_readiness_probe":                       true,
				"enable_pod_disruption_budget":                 true,
				"watched_namespace":                            "*",
			},
		},
		Timeout: 5 * time.Minute,
	}
}

// JewelryShop is the jewelry-shop release with the values of a profile
// ("quick" or "full", see Profiles) and the tag of the locally built shop
// image (empty keeps the chart's appVersion).
func JewelryShop(profile, shopImageTag string) (Release, error) {
	vals, err := ProfileValues(profile)
	if err != nil {
		return Release{}, err
	}
	if shopImageTag != "" {
		vals = mergeValues(vals, map[string]any{"image": map[string]any{"tag": shopImageTag}})
	}
	return Release{
		Name:      "jewelry-shop",
		Namespace: JewelryShopNamespace,
		Chart:     Ref{Name: JewelryShopChart},
		Values:    vals,
		Timeout:   10 * time.Minute,
		// The postgres-operator registers the postgresql kind when it starts.
		RequiresAPIs: []string{PostgresqlAPI},
	}, nil
}

// Stack is every release of the lab in installation order: the operators
// first, because the jewelry-shop chart creates a postgresql resource.
//
// Offline, the stack is the jewelry-shop chart alone, which is embedded:
// the postgres-operator and Chaos Mesh come from their repositories on the
// internet, and PostgreSQL runs without the operator (OfflineValues).
func Stack(profile, shopImageTag string, offline bool) ([]Release, error) {
	shop, err := JewelryShop(profile, shopImageTag)
	if err != nil {
		return nil, err
	}
	if offline {
		shop = shop.WithValues(OfflineValues())
		shop.RequiresAPIs = nil
		return []Release{shop}, nil
	}
	return []Release{PostgresOperator(), ChaosMesh(), shop}, nil
}

// OfflineValues are the jewelry-shop values of a stack without the
// postgres-operator: one PostgreSQL server (postgresql.mode=single), on
// the k3s server node, which node failure never stops.
func OfflineValues() map[string]any {
	return map[string]any{"postgresql": map[string]any{
		"mode":   "single",
		"single": map[string]any{"nodeSelector": map[string]any{"node-role.kubernetes.io/control-plane": "true"}},
	}}
}

// NotInstalledOffline says which upstream charts an offline stack leaves
// out, one line each, with what that means.
func NotInstalledOffline() []string {
	return []string{
		PostgresOperatorChart + ": not installed offline; PostgreSQL runs as one server (postgresql.mode=single): no replica, no failover",
		ChaosMeshChart + ": not installed offline; lab validate needs Chaos Mesh, or a stand-in acting on its resources",
	}
}
