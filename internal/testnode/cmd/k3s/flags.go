package main

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// config is what the command line and the K3S_* environment ask of the
// stand-in. Flags win over the environment, as in k3s.
type config struct {
	role string // "server" or "agent"

	nodeName   string   // --node-name, K3S_NODE_NAME; empty: the host name
	nodeLabels []string // --node-label key=value
	nodeTaints []string // --node-taint key=value:Effect
	token      string   // --token, K3S_TOKEN
	serverURL  string   // agent: --server, K3S_URL
	// extra arguments of the node's own components, key=value
	kubeletArgs   []string // --kubelet-arg
	kubeProxyArgs []string // --kube-proxy-arg
	// pauseImage is the pods' sandbox image, imported from the node image
	// at every start: LAB_K3S_PAUSE_IMAGE, which the image sets.
	pauseImage string
	// images are the server's add-ons' images (LAB_K3S_*_IMAGE, which the
	// image sets).
	images addonImages

	// server only
	tlsSANs          []string // --tls-san
	kubeconfigOutput string   // --write-kubeconfig, K3S_KUBECONFIG_OUTPUT
	kubeconfigMode   string   // --write-kubeconfig-mode
	disable          []string // --disable: bundled components not to deploy
	// extra arguments of the components, as key=value without the dashes
	apiserverArgs         []string // --kube-apiserver-arg
	controllerManagerArgs []string // --kube-controller-manager-arg
	schedulerArgs         []string // --kube-scheduler-arg
	etcdArgs              []string // --etcd-arg
}

// flagSpec is one flag the stand-in knows: its names (the first is the
// canonical one), the roles it is valid for and what it sets. A nil set means
// the flag is known but refused, with refused as the reason.
type flagSpec struct {
	names   []string
	roles   []string
	set     func(c *config, v string) error
	refused string
}

const (
	server = "server"
	agent  = "agent"
)

// bundled lists the components k3s deploys unless --disable names them. The
// stand-in deploys coredns, local-storage and metrics-server (see addons);
// it has none of the others, so disabling them is always satisfied.
func bundled() []string {
	return []string{"coredns", "servicelb", "traefik", "local-storage", "metrics-server", "runtimes"}
}

func flagSpecs() []flagSpec {
	both := []string{server, agent}
	srv := []string{server}
	appendTo := func(field func(*config) *[]string) func(*config, string) error {
		return func(c *config, v string) error {
			*field(c) = append(*field(c), v)
			return nil
		}
	}
	componentArg := func(field func(*config) *[]string) func(*config, string) error {
		return func(c *config, v string) error {
			if v == "" || strings.HasPrefix(v, "-") {
				return fmt.Errorf("want key=value without leading dashes, e.g. v=2, got %q", v)
			}
			*field(c) = append(*field(c), v)
			return nil
		}
	}
	return []flagSpec{
		{names: []string{"node-name"}, roles: both, set: func(c *config, v string) error { c.nodeName = v; return nil }},
		{names: []string{"node-label"}, roles: both, set: func(c *config, v string) error {
			if _, _, ok := strings.Cut(v, "="); !ok {
				return fmt.Errorf("want key=value, got %q", v)
			}
			c.nodeLabels = append(c.nodeLabels, v)
			return nil
		}},
		{names: []string{"node-taint"}, roles: both, set: func(c *config, v string) error {
			if _, err := parseTaint(v); err != nil {
				return err
			}
			c.nodeTaints = append(c.nodeTaints, v)
			return nil
		}},
		{names: []string{"token", "t"}, roles: both, set: func(c *config, v string) error { c.token = v; return nil }},
		{names: []string{"server", "s"}, roles: []string{agent}, set: func(c *config, v string) error { c.serverURL = v; return nil }},
		{names: []string{"kubelet-arg"}, roles: both, set: componentArg(func(c *config) *[]string { return &c.kubeletArgs })},
		{names: []string{"kube-proxy-arg"}, roles: both, set: componentArg(func(c *config) *[]string { return &c.kubeProxyArgs })},
		{names: []string{"tls-san"}, roles: srv, set: appendTo(func(c *config) *[]string { return &c.tlsSANs })},
		{names: []string{"write-kubeconfig", "o"}, roles: srv, set: func(c *config, v string) error { c.kubeconfigOutput = v; return nil }},
		{names: []string{"write-kubeconfig-mode"}, roles: srv, set: func(c *config, v string) error { c.kubeconfigMode = v; return nil }},
		{names: []string{"disable"}, roles: srv, set: func(c *config, v string) error {
			for _, d := range strings.Split(v, ",") {
				if !slices.Contains(bundled(), d) {
					return fmt.Errorf("unknown component %q (k3s bundles %s)", d, strings.Join(bundled(), ", "))
				}
				c.disable = append(c.disable, d)
			}
			return nil
		}},
		{names: []string{"kube-apiserver-arg"}, roles: srv, set: componentArg(func(c *config) *[]string { return &c.apiserverArgs })},
		{names: []string{"kube-controller-manager-arg"}, roles: srv, set: componentArg(func(c *config) *[]string { return &c.controllerManagerArgs })},
		{names: []string{"kube-scheduler-arg"}, roles: srv, set: componentArg(func(c *config) *[]string { return &c.schedulerArgs })},
		{names: []string{"etcd-arg"}, roles: srv, set: componentArg(func(c *config) *[]string { return &c.etcdArgs })},
		// Known to k3s, but the stand-in cannot do what they ask: refused
		// rather than ignored.
		{names: []string{"cluster-init"}, roles: srv, refused: "the stand-in runs exactly one server with its own etcd; create the cluster with 1 server"},
	}
}

// parseArgs reads the k3s command line (without the program name) and the
// K3S_* variables that getenv returns. It accepts --flag=value, --flag value
// and a single leading dash, as k3s does, and fails on anything it does not
// know, naming what it accepts.
func parseArgs(args []string, getenv func(string) string) (config, error) {
	if len(args) == 0 || (args[0] != server && args[0] != agent) {
		return config{}, errors.New(`usage: k3s server|agent [flags] (lab's test stand-in for k3s knows no other command)`)
	}
	c := config{
		role:             args[0],
		nodeName:         getenv("K3S_NODE_NAME"),
		token:            getenv("K3S_TOKEN"),
		kubeconfigOutput: getenv("K3S_KUBECONFIG_OUTPUT"),
		pauseImage:       getenv("LAB_K3S_PAUSE_IMAGE"),
		images: addonImages{
			CoreDNS:       getenv("LAB_K3S_COREDNS_IMAGE"),
			MetricsServer: getenv("LAB_K3S_METRICS_SERVER_IMAGE"),
			LocalPath:     getenv("LAB_K3S_LOCAL_PATH_IMAGE"),
			Helper:        getenv("LAB_K3S_HELPER_IMAGE"),
		},
	}
	if c.role == agent {
		c.serverURL = getenv("K3S_URL")
	} else if u := getenv("K3S_URL"); u != "" {
		return config{}, fmt.Errorf("k3s server: K3S_URL=%s asks this server to join another one; the stand-in runs exactly one server", u)
	}
	specs := flagSpecs()
	rest := args[1:]
	for i := 0; i < len(rest); i++ {
		arg := rest[i]
		if !strings.HasPrefix(arg, "-") || arg == "-" || arg == "--" {
			return config{}, fmt.Errorf("k3s %s: unexpected argument %q (the stand-in takes flags only)", c.role, arg)
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		spec, ok := lookup(specs, name, c.role)
		if !ok {
			return config{}, fmt.Errorf("k3s %s: unknown flag %q: lab's k3s stand-in accepts only %s", c.role, "--"+name, known(specs, c.role))
		}
		if spec.refused != "" {
			return config{}, fmt.Errorf("k3s %s: flag --%s is not supported: %s", c.role, name, spec.refused)
		}
		if !hasValue {
			if i+1 >= len(rest) {
				return config{}, fmt.Errorf("k3s %s: flag --%s needs a value", c.role, name)
			}
			i++
			value = rest[i]
		}
		if err := spec.set(&c, value); err != nil {
			return config{}, fmt.Errorf("k3s %s: flag --%s: %w", c.role, name, err)
		}
	}
	if c.token == "" {
		return config{}, fmt.Errorf("k3s %s: no token: set K3S_TOKEN or --token (k3d sets K3S_TOKEN)", c.role)
	}
	if strings.ContainsAny(c.token, ",\"\n") {
		return config{}, fmt.Errorf("k3s %s: the token must not contain commas, quotes or newlines", c.role)
	}
	if c.role == agent && c.serverURL == "" {
		return config{}, errors.New("k3s agent: no server: set K3S_URL or --server (k3d sets K3S_URL)")
	}
	return c, nil
}

// lookup finds the flag called name that is valid for role.
func lookup(specs []flagSpec, name, role string) (flagSpec, bool) {
	for _, s := range specs {
		if slices.Contains(s.names, name) && slices.Contains(s.roles, role) {
			return s, true
		}
	}
	return flagSpec{}, false
}

// known lists the flags accepted for role, for error messages.
func known(specs []flagSpec, role string) string {
	var names []string
	for _, s := range specs {
		if s.refused == "" && slices.Contains(s.roles, role) {
			names = append(names, "--"+s.names[0])
		}
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// componentArgs returns a component's command line: defaults (key=value, in
// order) with the user's extra arguments applied. As in k3s, an extra
// argument replaces the default of the same key, and new keys are appended in
// the order given; a key given twice keeps its last value.
func componentArgs(defaults, extra []string) []string {
	keys := make([]string, 0, len(defaults)+len(extra))
	values := make(map[string]string, len(defaults)+len(extra))
	for _, kv := range append(slices.Clone(defaults), extra...) {
		k, _, _ := strings.Cut(kv, "=")
		if _, seen := values[k]; !seen {
			keys = append(keys, k)
		}
		values[k] = kv
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, "--"+values[k])
	}
	return out
}
