package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/docker/go-units"
)

// Config is the whole configuration of lab: what lab.yaml, LAB_* environment
// variables and command-line flags set, in that order of precedence, over the
// values of DefaultConfig. Keys are the mapstructure tags, dotted by section,
// e.g. cluster.ingressPort or LAB_CLUSTER_INGRESSPORT.
type Config struct {
	Cluster   ClusterConfig   `mapstructure:"cluster" json:"cluster"`
	Stack     StackConfig     `mapstructure:"stack" json:"stack"`
	Preflight PreflightConfig `mapstructure:"preflight" json:"preflight"`
	// Profiles are the validation profiles by name: the built-in quick and
	// full, whose every key (thresholds included) lab.yaml can override, and
	// any custom profile lab.yaml adds.
	Profiles map[string]Profile `mapstructure:"profiles" json:"profiles"`
}

// StackConfig describes what `lab up` installs into the cluster.
type StackConfig struct {
	// Install is false to create only the cluster.
	Install bool `mapstructure:"install" json:"install"`
	// Profile picks the chart values of a validation profile: quick or full.
	Profile string `mapstructure:"profile" json:"profile"`
	// ShopImageArchive is the reference shop's image as `make image` writes
	// it; empty means dist/shop-image-linux-<this machine's arch>.tar.
	ShopImageArchive string `mapstructure:"shopImageArchive" json:"shopImageArchive"`
	// ChartCache keeps downloaded upstream charts so later runs work
	// offline; empty means <user cache dir>/lab/charts.
	ChartCache string `mapstructure:"chartCache" json:"chartCache"`
	// ReadyTimeout bounds the wait for the whole stack to be ready.
	ReadyTimeout time.Duration `mapstructure:"readyTimeout" json:"readyTimeout"`
	// Offline installs what needs no internet: the jewelry-shop chart
	// alone, with one PostgreSQL server (postgresql.mode=single) instead
	// of the postgres-operator's HA cluster. Neither the postgres-operator
	// nor Chaos Mesh is installed: their charts are on the internet. The
	// images must be on this machine (`lab up` imports them).
	Offline bool `mapstructure:"offline" json:"offline"`
	// Values is a YAML file of jewelry-shop chart values merged over the
	// profile's (images of a mirror, say); empty adds none.
	Values string `mapstructure:"values" json:"values"`
}

// ClusterConfig describes the k3d cluster that `lab up` creates.
type ClusterConfig struct {
	// Name of the k3d cluster; its Docker objects are named k3d-<name>-….
	Name string `mapstructure:"name" json:"name"`
	// Servers and Agents are the k3s node counts.
	Servers int `mapstructure:"servers" json:"servers"`
	Agents  int `mapstructure:"agents" json:"agents"`
	// Image is the k3s node image, always pinned to a version.
	Image string `mapstructure:"image" json:"image"`
	// HelperImageTag pins k3d's helper images (load balancer, tools).
	HelperImageTag string `mapstructure:"helperImageTag" json:"helperImageTag"`
	// LoadBalancerImage and ToolsImage name k3d's helper images in full,
	// e.g. on a mirror or an air-gapped registry; empty means k3d's own at
	// HelperImageTag (ghcr.io/k3d-io/k3d-proxy:<tag>, ghcr.io/k3d-io/k3d-tools:<tag>).
	LoadBalancerImage string `mapstructure:"loadBalancerImage" json:"loadBalancerImage"`
	ToolsImage        string `mapstructure:"toolsImage" json:"toolsImage"`
	// APIHost and APIPort are where the Kubernetes API is published on the host.
	APIHost string `mapstructure:"apiHost" json:"apiHost"`
	APIPort int    `mapstructure:"apiPort" json:"apiPort"`
	// IngressHost and IngressPort are where the load balancer's port 80
	// (the cluster's ingress) is published on the host.
	IngressHost string `mapstructure:"ingressHost" json:"ingressHost"`
	IngressPort int    `mapstructure:"ingressPort" json:"ingressPort"`
	// ServerArgs are extra k3s arguments for the server nodes. The defaults
	// shorten how long pods stay on a dead node, so that a node failure is
	// observable within a minute instead of five.
	ServerArgs []string `mapstructure:"serverArgs" json:"serverArgs"`
	// Kubeconfig is the file lab writes the cluster's credentials to (mode
	// 0600); empty means <user config dir>/lab/<name>/kubeconfig.
	Kubeconfig string `mapstructure:"kubeconfig" json:"kubeconfig"`
	// UpdateDefaultKubeconfig also merges the cluster into ~/.kube/config.
	UpdateDefaultKubeconfig bool `mapstructure:"updateDefaultKubeconfig" json:"updateDefaultKubeconfig"`
	// CreateTimeout bounds the creation of the containers, ReadyTimeout the
	// wait for every node to become Ready.
	CreateTimeout time.Duration `mapstructure:"createTimeout" json:"createTimeout"`
	ReadyTimeout  time.Duration `mapstructure:"readyTimeout" json:"readyTimeout"`
}

// PreflightConfig sets what `lab up` checks before it creates anything.
type PreflightConfig struct {
	// MinMemory is the least memory the Docker host must have, e.g. "6GiB".
	MinMemory string `mapstructure:"minMemory" json:"minMemory"`
}

// nodeMonitorGracePeriod is the controller manager's
// node-monitor-grace-period the server arguments set; zero when they do not.
func (c ClusterConfig) nodeMonitorGracePeriod() time.Duration {
	const flag = "--kube-controller-manager-arg=node-monitor-grace-period="
	var d time.Duration
	for _, a := range c.ServerArgs {
		if v, ok := strings.CutPrefix(a, flag); ok {
			if p, err := time.ParseDuration(v); err == nil {
				d = p
			}
		}
	}
	return d
}

// Pinned defaults. Bump them together and re-check DESIGN.md's pitfalls.
const (
	DefaultClusterName    = "jewelry-shop"
	DefaultK3sImage       = "docker.io/rancher/k3s:v1.33.6-k3s1"
	DefaultHelperImageTag = "5.9.0" // k3d-proxy and k3d-tools of the k3d library in go.mod
)

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{
		Cluster: ClusterConfig{
			Name:           DefaultClusterName,
			Servers:        1,
			Agents:         2,
			Image:          DefaultK3sImage,
			HelperImageTag: DefaultHelperImageTag,
			APIHost:        "127.0.0.1",
			APIPort:        6550,
			IngressHost:    "127.0.0.1",
			IngressPort:    8080,
			ServerArgs: []string{
				// Pods get these tolerations unless they set their own: evicted
				// 30 s after their node is NotReady or unreachable (default 300 s).
				"--kube-apiserver-arg=default-not-ready-toleration-seconds=30",
				"--kube-apiserver-arg=default-unreachable-toleration-seconds=30",
				// A node that stops reporting is marked NotReady after 40 s
				// (default 50 s): four missed 10 s lease renewals, so that a
				// node slowed by load and stress, which can miss two, is not
				// taken for dead (20 s was two).
				"--kube-controller-manager-arg=node-monitor-grace-period=40s",
			},
			CreateTimeout: 5 * time.Minute,
			ReadyTimeout:  3 * time.Minute,
		},
		Stack: StackConfig{
			Install:      true,
			Profile:      "quick",
			ReadyTimeout: 15 * time.Minute,
		},
		Preflight: PreflightConfig{MinMemory: "6GiB"},
		Profiles:  BuiltinProfiles(),
	}
}

// clusterNamePattern is what k3d accepts and what Docker object names allow,
// kept short enough for the node host names derived from it.
var clusterNamePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

// Validate reports every problem of the configuration at once, each naming
// the key and what to set instead.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	cl := c.Cluster
	if !clusterNamePattern.MatchString(cl.Name) {
		bad("cluster.name", "%q is not a valid cluster name: use 1-32 lower-case letters, digits and '-', starting and ending with a letter or digit", cl.Name)
	}
	if cl.Servers < 1 || cl.Servers > 3 {
		bad("cluster.servers", "must be between 1 and 3, got %d", cl.Servers)
	}
	if cl.Agents < 0 || cl.Agents > 9 {
		bad("cluster.agents", "must be between 0 and 9, got %d", cl.Agents)
	}
	if err := checkPinnedImage(cl.Image); err != nil {
		bad("cluster.image", "%v", err)
	}
	if strings.TrimSpace(cl.HelperImageTag) == "" || cl.HelperImageTag == "latest" {
		bad("cluster.helperImageTag", "must pin a k3d helper image version such as %q, got %q", DefaultHelperImageTag, cl.HelperImageTag)
	}
	for _, h := range []struct{ key, value string }{{"cluster.loadBalancerImage", cl.LoadBalancerImage}, {"cluster.toolsImage", cl.ToolsImage}} {
		if h.value == "" {
			continue
		}
		if err := checkPinnedImage(h.value); err != nil {
			bad(h.key, "%v (or leave it empty for k3d's own image at cluster.helperImageTag)", err)
		}
	}
	for _, h := range []struct{ key, value string }{{"cluster.apiHost", cl.APIHost}, {"cluster.ingressHost", cl.IngressHost}} {
		if _, err := netip.ParseAddr(h.value); err != nil {
			bad(h.key, "%q is not an IP address: use 127.0.0.1 to keep the lab private to this machine", h.value)
		}
	}
	for _, p := range []struct {
		key   string
		value int
	}{{"cluster.apiPort", cl.APIPort}, {"cluster.ingressPort", cl.IngressPort}} {
		if p.value < 1 || p.value > 65535 {
			bad(p.key, "must be a TCP port between 1 and 65535, got %d", p.value)
		}
	}
	if cl.APIPort == cl.IngressPort && cl.APIHost == cl.IngressHost {
		bad("cluster.ingressPort", "must differ from cluster.apiPort (both are %d)", cl.APIPort)
	}
	for i, a := range cl.ServerArgs {
		if !strings.HasPrefix(a, "--") {
			bad(fmt.Sprintf("cluster.serverArgs[%d]", i), "%q is not a k3s flag: write it as --flag=value", a)
		}
	}
	if cl.CreateTimeout <= 0 {
		bad("cluster.createTimeout", "must be a positive duration such as 5m, got %s", cl.CreateTimeout)
	}
	if cl.ReadyTimeout <= 0 {
		bad("cluster.readyTimeout", "must be a positive duration such as 3m, got %s", cl.ReadyTimeout)
	}
	if c.Stack.Profile != "quick" && c.Stack.Profile != "full" {
		bad("stack.profile", "must be quick or full, got %q", c.Stack.Profile)
	}
	if c.Stack.ReadyTimeout <= 0 {
		bad("stack.readyTimeout", "must be a positive duration such as 15m, got %s", c.Stack.ReadyTimeout)
	}
	if _, err := units.RAMInBytes(c.Preflight.MinMemory); err != nil {
		bad("preflight.minMemory", "%q is not a size: write it like 6GiB", c.Preflight.MinMemory)
	}
	for _, name := range c.ProfileNames() {
		if err := c.Profile(name).Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkPinnedImage accepts image references that name an explicit version:
// a tag other than latest, or a digest.
func checkPinnedImage(ref string) error {
	if strings.TrimSpace(ref) == "" {
		return errors.New("must name an image such as " + DefaultK3sImage)
	}
	if strings.Contains(ref, "@sha256:") {
		return nil
	}
	name := ref[strings.LastIndex(ref, "/")+1:]
	i := strings.LastIndex(name, ":")
	if i < 0 || i == len(name)-1 {
		return fmt.Errorf("%q has no tag: pin a version such as %s", ref, DefaultK3sImage)
	}
	if name[i+1:] == "latest" {
		return fmt.Errorf("%q uses the latest tag: pin a version such as %s", ref, DefaultK3sImage)
	}
	return nil
}

// k3d's helper images, as k3d names them.
const (
	k3dLoadBalancerRepo = "ghcr.io/k3d-io/k3d-proxy"
	k3dToolsRepo        = "ghcr.io/k3d-io/k3d-tools"
)

// LoadBalancerRef is the load balancer image the cluster uses.
func (c ClusterConfig) LoadBalancerRef() string {
	if c.LoadBalancerImage != "" {
		return c.LoadBalancerImage
	}
	return k3dLoadBalancerRepo + ":" + c.HelperImageTag
}

// ToolsRef is the tools image k3d starts to import images into the nodes.
func (c ClusterConfig) ToolsRef() string {
	if c.ToolsImage != "" {
		return c.ToolsImage
	}
	return k3dToolsRepo + ":" + c.HelperImageTag
}

// MinMemoryBytes returns Preflight.MinMemory in bytes; Validate has checked it.
func (c Config) MinMemoryBytes() int64 {
	n, _ := units.RAMInBytes(c.Preflight.MinMemory)
	return n
}

// Effective returns the configuration as lab uses it: every profile with
// the thresholds it leaves unset filled in from DefaultThresholds, as
// Profile returns it.
func (c Config) Effective() Config {
	out := c
	out.Profiles = make(map[string]Profile, len(c.Profiles))
	for name := range c.Profiles {
		out.Profiles[name] = c.Profile(name)
	}
	return out
}

// ProfileNames lists the configured profiles, sorted.
func (c Config) ProfileNames() []string {
	names := make([]string, 0, len(c.Profiles))
	for n := range c.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Profile returns the named profile with its Name set from its key and
// every threshold it leaves unset (zero) taken from DefaultThresholds, so a
// custom profile names only the thresholds it changes.
func (c Config) Profile(name string) Profile {
	p := c.Profiles[name]
	p.Name = name
	d := DefaultThresholds()
	t := &p.Thresholds
	for _, f := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&t.P95, d.P95}, {&t.Failover, d.Failover}, {&t.PodRecovery, d.PodRecovery}, {&t.NodeRecovery, d.NodeRecovery}, {&t.PartitionRecovery, d.PartitionRecovery}, {&t.ScaleDown, d.ScaleDown}} {
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	for _, f := range []struct {
		v   *float64
		def float64
	}{{&t.ErrorRateOutside, d.ErrorRateOutside}, {&t.ErrorRateInside, d.ErrorRateInside}, {&t.Availability, d.Availability}} {
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	return p
}
