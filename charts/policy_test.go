package charts

import (
	"bufio"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
)

// policyCheck checks one rule on a rendered stack.
type policyCheck func(*renderedStack) []error

// policies are the rules every rendering of the chart must follow.
var policies = map[string]policyCheck{
	"workloads":  checkWorkloads,
	"containers": checkContainers,
	"pdb":        checkDisruptionBudgets,
	"autoscaler": checkAutoscaler,
	"sentinel":   checkSentinel,
	"patroni":    checkPatroni,
	"labels":     checkLabels,
	"nginx":      checkNginx,
}

// TestPolicy checks every rule on the chart rendered with every profile,
// and with the offline stack's values.
func TestPolicy(t *testing.T) {
	t.Parallel()
	variants := map[string]map[string]any{}
	for _, profile := range Profiles() {
		variants[profile] = nil
		variants[profile+"-offline"] = OfflineValues()
	}
	for name, extra := range variants {
		profile, _, _ := strings.Cut(name, "-")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := decodeStrict(t, renderProfile(t, profile, extra))
			for name, check := range policies {
				for _, err := range check(s) {
					t.Errorf("%s: %v", name, err)
				}
			}
		})
	}
}

// TestPolicyCatches breaks each rule in a rendered stack and checks that
// its policy check notices, so that a passing TestPolicy means something.
func TestPolicyCatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		policy string
		// values are rendered with; break changes the decoded objects.
		values map[string]any
		brk    func(*renderedStack)
		want   string
	}{
		{
			policy: "containers", brk: func(s *renderedStack) { s.deployments[0].Spec.Template.Spec.Containers[0].LivenessProbe = nil },
			want: "needs both a readiness and a liveness probe",
		},
		{policy: "containers", brk: func(s *renderedStack) {
			delete(s.statefulSets[0].Spec.Template.Spec.InitContainers[0].Resources.Limits, corev1.ResourceMemory)
		}, want: "no memory limit"},
		{
			policy: "containers", brk: func(s *renderedStack) { s.deployments[0].Spec.Template.Spec.Containers[0].Image = "nginx:latest" },
			want: "uses the latest tag",
		},
		{
			policy: "containers", brk: func(s *renderedStack) {
				s.deployments[0].Spec.Template.Spec.Containers[0].Image = "docker.io/library/nginx"
			},
			want: "has no tag",
		},
		{policy: "pdb", brk: func(s *renderedStack) { s.pdbs = s.pdbs[1:] }, want: "PodDisruptionBudgets cover it"},
		{policy: "autoscaler", values: map[string]any{"web": map[string]any{"autoscaling": map[string]any{"behavior": map[string]any{
			"scaleDown": map[string]any{"stabilizationWindowSeconds": 300},
		}}}}, want: "s to scale down from 10 to 3 replicas"},
		{
			policy: "autoscaler", values: map[string]any{"web": map[string]any{"autoscaling": map[string]any{"behavior": map[string]any{
				"scaleDown": map[string]any{"policies": []any{map[string]any{"type": "Pods", "value": 1, "periodSeconds": 60}}},
			}}}},
			want: "s to scale down from 10 to 3 replicas",
		},
		{
			policy: "autoscaler", values: map[string]any{"web": map[string]any{"autoscaling": map[string]any{"targetMemoryUtilizationPercentage": 90}}},
			want: "HPA utilisation targets",
		},
		{
			policy: "sentinel", values: map[string]any{"redis": map[string]any{"sentinel": map[string]any{"downAfterMilliseconds": 12000}}},
			want: "down-after-milliseconds 12000",
		},
		{policy: "sentinel", brk: func(s *renderedStack) {
			cm := s.configMaps["jewelry-shop-redis"]
			cm.Data["sentinel.conf"] = strings.Replace(cm.Data["sentinel.conf"], "sentinel resolve-hostnames yes\n", "", 1) + "sentinel resolve-hostnames yes\n"
		}, want: "`sentinel resolve-hostnames yes` before `sentinel monitor`"},
		{policy: "sentinel", values: map[string]any{"redis": map[string]any{"sentinel": map[string]any{"quorum": 1}}}, want: "want a majority"},
		{
			policy: "patroni", values: map[string]any{"postgresql": map[string]any{"patroni": map[string]any{"ttl": 30, "loop_wait": 10, "retry_timeout": 10}}},
			want: "ttl 30 + loop_wait 10 > 30 s",
		},
		{policy: "patroni", brk: func(s *renderedStack) { s.postgresql.Spec.Patroni.RetryTimeout = 11 }, want: "Patroni's rule"},
		{
			policy: "patroni", values: map[string]any{"postgresql": map[string]any{"patroni": map[string]any{"ttl": 20, "loop_wait": 5, "retry_timeout": 5}}},
			want: "retry_timeout 5 < 10 s",
		},
		{
			policy: "patroni", values: map[string]any{"postgresql": map[string]any{"patroni": map[string]any{"synchronous_mode": false}}},
			want: "synchronous_mode is off",
		},
		{policy: "workloads", values: map[string]any{"nodeFailureTolerationSeconds": 120}, want: "no toleration of node.kubernetes.io/not-ready of at most 60 s"},
		{policy: "workloads", brk: func(s *renderedStack) { s.statefulSets[0].Spec.Template.Spec.Affinity = nil }, want: "no required pod anti-affinity"},
		{policy: "nginx", brk: func(s *renderedStack) {
			cm := s.configMaps["jewelry-shop-nginx"]
			cm.Data["default.conf"] = strings.Replace(cm.Data["default.conf"], "proxy_next_upstream off;", "proxy_next_upstream error timeout http_502 http_503;\n        proxy_next_upstream_tries 2;", 1)
		}, want: "retries a failed request on upstream web, which has 1 peer"},
		{policy: "labels", brk: func(s *renderedStack) {
			delete(s.hpas[0].Labels, "app.kubernetes.io/version")
		}, want: "has no label app.kubernetes.io/version"},
	}
	for _, tt := range tests {
		t.Run(tt.policy+"/"+tt.want, func(t *testing.T) {
			t.Parallel()
			s := decodeStrict(t, renderProfile(t, "quick", tt.values))
			if tt.brk != nil {
				tt.brk(s)
			}
			errs := policies[tt.policy](s)
			if !slices.ContainsFunc(errs, func(err error) bool { return strings.Contains(err.Error(), tt.want) }) {
				t.Errorf("policy %s did not catch the violation; want an error containing %q, got %v", tt.policy, tt.want, errs)
			}
		})
	}
}

// checkWorkloads: the workloads of the issue exist with their replica
// counts, the stateless ones spread over nodes and leave a failed node fast.
func checkWorkloads(s *renderedStack) (errs []error) {
	replicas := map[string]int32{}
	for _, d := range s.deployments {
		replicas[d.Name] = ptr.Deref(d.Spec.Replicas, 1)
		spec := d.Spec.Template.Spec
		if len(spec.TopologySpreadConstraints) == 0 || spec.TopologySpreadConstraints[0].TopologyKey != "kubernetes.io/hostname" {
			errs = append(errs, fmt.Errorf("Deployment %s does not spread its pods over nodes", d.Name))
		}
		for _, key := range []string{"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"} {
			i := slices.IndexFunc(spec.Tolerations, func(tol corev1.Toleration) bool { return tol.Key == key })
			if i < 0 || spec.Tolerations[i].TolerationSeconds == nil || *spec.Tolerations[i].TolerationSeconds > 60 {
				errs = append(errs, fmt.Errorf("Deployment %s: no toleration of %s of at most 60 s (Kubernetes' default is 300 s)", d.Name, key))
			}
		}
	}
	for _, st := range s.statefulSets {
		replicas[st.Name] = *st.Spec.Replicas
		if *st.Spec.Replicas == 1 {
			continue // postgresql.mode=single: one server, nothing to keep apart
		}
		aa := st.Spec.Template.Spec.Affinity
		if aa == nil || aa.PodAntiAffinity == nil || len(aa.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) == 0 {
			errs = append(errs, fmt.Errorf("StatefulSet %s: no required pod anti-affinity, two members could share a node", st.Name))
		}
	}
	for name, want := range map[string]int32{
		"jewelry-shop-web": 3, "jewelry-shop-beat": 1, "jewelry-shop-probe": 1, "jewelry-shop-redis": 3,
	} {
		if got, ok := replicas[name]; !ok || got != want {
			errs = append(errs, fmt.Errorf("%s: replicas %d (present %t), want %d", name, got, ok, want))
		}
	}
	for _, name := range []string{"jewelry-shop-nginx", "jewelry-shop-worker"} {
		if replicas[name] < 2 {
			errs = append(errs, fmt.Errorf("%s: %d replicas, want at least 2", name, replicas[name]))
		}
	}
	return errs
}

// checkContainers: probes, requests and limits, pinned images.
func checkContainers(s *renderedStack) (errs []error) {
	for w, tpl := range s.podTemplates() {
		all := append(slices.Clone(tpl.Spec.InitContainers), tpl.Spec.Containers...)
		for i, c := range all {
			init := i < len(tpl.Spec.InitContainers)
			where := fmt.Sprintf("%s container %s", w, c.Name)
			if !init && (c.ReadinessProbe == nil || c.LivenessProbe == nil) {
				errs = append(errs, fmt.Errorf("%s: needs both a readiness and a liveness probe", where))
			}
			for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if _, ok := c.Resources.Requests[res]; !ok {
					errs = append(errs, fmt.Errorf("%s: no %s request", where, res))
				}
				if _, ok := c.Resources.Limits[res]; !ok {
					errs = append(errs, fmt.Errorf("%s: no %s limit", where, res))
				}
			}
			if err := checkImagePinned(c.Image); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
			if c.ImagePullPolicy != corev1.PullIfNotPresent {
				errs = append(errs, fmt.Errorf("%s: imagePullPolicy %q, want IfNotPresent (the shop image is imported, never pulled)", where, c.ImagePullPolicy))
			}
		}
	}
	return errs
}

// checkImagePinned refuses images without a tag or digest, and latest.
func checkImagePinned(image string) error {
	if strings.Contains(image, "@sha256:") {
		return nil
	}
	name := image[strings.LastIndex(image, "/")+1:]
	_, tag, ok := strings.Cut(name, ":")
	switch {
	case !ok || tag == "":
		return fmt.Errorf("image %q has no tag", image)
	case tag == "latest":
		return fmt.Errorf("image %q uses the latest tag", image)
	}
	return nil
}

// checkDisruptionBudgets: every workload that can have more than one pod
// is covered by exactly one PodDisruptionBudget.
func checkDisruptionBudgets(s *renderedStack) (errs []error) {
	multi := map[string]bool{}
	for _, d := range s.deployments {
		multi["Deployment/"+d.Name] = ptr.Deref(d.Spec.Replicas, 1) > 1
	}
	for _, st := range s.statefulSets {
		multi["StatefulSet/"+st.Name] = *st.Spec.Replicas > 1
	}
	for w, tpl := range s.podTemplates() {
		if !multi[w] {
			continue
		}
		n := 0
		for _, pdb := range s.pdbs {
			sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err != nil {
				return append(errs, fmt.Errorf("PodDisruptionBudget %s: %w", pdb.Name, err))
			}
			if sel.Matches(labels.Set(tpl.Labels)) {
				n++
			}
		}
		if n != 1 {
			errs = append(errs, fmt.Errorf("%s can run several pods but %d PodDisruptionBudgets cover it, want 1", w, n))
		}
	}
	return errs
}

// checkAutoscaler: web scales 3..10 on 70 % CPU and 80 % memory, and
// returns to its minimum about a minute after the load stops.
func checkAutoscaler(s *renderedStack) (errs []error) {
	if len(s.hpas) != 1 {
		return append(errs, fmt.Errorf("%d HorizontalPodAutoscalers, want 1 (web)", len(s.hpas)))
	}
	h := s.hpas[0]
	if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != "jewelry-shop-web" {
		errs = append(errs, fmt.Errorf("HPA targets %s/%s, want Deployment/jewelry-shop-web", h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name))
	}
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != 3 || h.Spec.MaxReplicas != 10 {
		errs = append(errs, fmt.Errorf("HPA replicas %v..%d, want 3..10", h.Spec.MinReplicas, h.Spec.MaxReplicas))
	}
	targets := map[corev1.ResourceName]int32{}
	for _, m := range h.Spec.Metrics {
		if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource.Target.AverageUtilization != nil {
			targets[m.Resource.Name] = *m.Resource.Target.AverageUtilization
		}
	}
	if diff := cmp.Diff(map[corev1.ResourceName]int32{corev1.ResourceCPU: 70, corev1.ResourceMemory: 80}, targets); diff != "" {
		errs = append(errs, fmt.Errorf("HPA utilisation targets (-want +got):\n%s", diff))
	}
	b := h.Spec.Behavior
	if b == nil || b.ScaleDown == nil || b.ScaleUp == nil {
		return append(errs, errors.New("HPA has no explicit scale-up and scale-down behaviour (the default scale-down waits 300 s)"))
	}
	if got := scaleDownSeconds(b.ScaleDown, h.Spec.MaxReplicas, *h.Spec.MinReplicas); got > 90 {
		errs = append(errs, fmt.Errorf("HPA needs %d s to scale down from %d to %d replicas after the load stops, want about a minute (at most 90 s)",
			got, h.Spec.MaxReplicas, *h.Spec.MinReplicas))
	}
	if w := b.ScaleUp.StabilizationWindowSeconds; w == nil || *w > 30 {
		errs = append(errs, fmt.Errorf("HPA scale-up stabilisation window %v, want at most 30 s", w))
	}
	return errs
}

// scaleDownSeconds is how long the scale-down rules need, at the least, to
// go from maxReplicas to minReplicas: the stabilisation window, then as many
// policy periods as the most generous policy needs.
func scaleDownSeconds(r *autoscalingv2.HPAScalingRules, maxReplicas, minReplicas int32) int32 {
	total := int32(300)
	if r.StabilizationWindowSeconds != nil {
		total = *r.StabilizationWindowSeconds
	}
	best := int32(-1)
	for _, p := range r.Policies {
		replicas, periods := maxReplicas, int32(0)
		for replicas > minReplicas && periods < 100 {
			step := p.Value
			if p.Type == autoscalingv2.PercentScalingPolicy {
				step = replicas * p.Value / 100
			}
			replicas -= max(step, 1)
			periods++
		}
		if d := periods * p.PeriodSeconds; best < 0 || d < best {
			best = d
		}
	}
	return total + max(best, 0)
}

// checkSentinel: Sentinel's timing allows a failover within 30 s, and host
// names are resolved and announced before the master is named by one.
func checkSentinel(s *renderedStack) (errs []error) {
	cm, ok := s.configMaps["jewelry-shop-redis"]
	if !ok {
		return append(errs, errors.New("no ConfigMap jewelry-shop-redis with sentinel.conf"))
	}
	var order []string
	settings := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(cm.Data["sentinel.conf"]))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "sentinel" {
			continue
		}
		order = append(order, f[1])
		settings[f[1]] = f[2:]
	}
	for _, key := range []string{"resolve-hostnames", "announce-hostnames"} {
		i, m := slices.Index(order, key), slices.Index(order, "monitor")
		if i < 0 || m < 0 || i > m || settings[key][0] != "yes" {
			errs = append(errs, fmt.Errorf("sentinel.conf: want `sentinel %s yes` before `sentinel monitor`, got order %v", key, order))
		}
	}
	num := func(key string, arg int) int {
		v := settings[key]
		if len(v) <= arg {
			errs = append(errs, fmt.Errorf("sentinel.conf has no %s", key))
			return 0
		}
		n, err := strconv.Atoi(v[arg])
		if err != nil {
			errs = append(errs, fmt.Errorf("sentinel.conf %s: %w", key, err))
		}
		return n
	}
	if d := num("down-after-milliseconds", 1); d <= 0 || d > 10000 {
		errs = append(errs, fmt.Errorf("sentinel down-after-milliseconds %d, want 1..10000 so that a failover fits in 30 s", d))
	}
	if f := num("failover-timeout", 1); f <= 0 || f > 30000 {
		errs = append(errs, fmt.Errorf("sentinel failover-timeout %d, want at most 30000", f))
	}
	var redis *appsv1.StatefulSet
	for _, st := range s.statefulSets {
		if st.Name == "jewelry-shop-redis" {
			redis = st
		}
	}
	if redis == nil {
		return append(errs, errors.New("no StatefulSet jewelry-shop-redis"))
	}
	if q, n := num("monitor", 3), int(*redis.Spec.Replicas); q <= n/2 || q > n {
		errs = append(errs, fmt.Errorf("sentinel quorum %d with %d Sentinels, want a majority", q, n))
	}
	return errs
}

// checkPatroni: Patroni's timing allows a failover within 30 s and
// synchronous replication keeps every acknowledged write.
func checkPatroni(s *renderedStack) (errs []error) {
	pg := s.postgresql
	if pg == nil {
		if slices.ContainsFunc(s.statefulSets, func(st *appsv1.StatefulSet) bool { return st.Name == "jewelry-shop-db" }) {
			return nil // postgresql.mode=single: no Patroni
		}
		return append(errs, errors.New("no postgresql resource rendered"))
	}
	p := pg.Spec.Patroni
	if p.LoopWait+2*p.RetryTimeout > p.TTL {
		errs = append(errs, fmt.Errorf("patroni loop_wait %d + 2 × retry_timeout %d > ttl %d (Patroni's rule)", p.LoopWait, p.RetryTimeout, p.TTL))
	}
	if p.RetryTimeout < 10 {
		errs = append(errs, fmt.Errorf("patroni retry_timeout %d < 10 s: a primary gives up its role when the Kubernetes API (one k3s server's datastore, slow under load) stalls for longer; the control plane's own leader election tolerates 10 s", p.RetryTimeout))
	}
	if p.TTL+p.LoopWait > 30 {
		errs = append(errs, fmt.Errorf("patroni ttl %d + loop_wait %d > 30 s: the leader key may outlive a dead primary for longer than the failover budget", p.TTL, p.LoopWait))
	}
	if !p.SynchronousMode {
		errs = append(errs, errors.New("patroni synchronous_mode is off: a failover could lose acknowledged writes"))
	}
	if pg.Spec.NumberOfInstances != 3 {
		errs = append(errs, fmt.Errorf("postgresql numberOfInstances %d, want 3", pg.Spec.NumberOfInstances))
	}
	if !strings.HasPrefix(pg.Name, pg.Spec.TeamID+"-") {
		errs = append(errs, fmt.Errorf("postgresql name %q does not start with teamId %q and a dash", pg.Name, pg.Spec.TeamID))
	}
	return errs
}

// checkNginx: nginx claims no retry it cannot make. proxy_next_upstream
// retries on the next peer of the upstream; a Service address is one peer
// (kube-proxy balances behind it), so a retry needs several servers or one
// that nginx re-resolves to the pods (`resolve`).
func checkNginx(s *renderedStack) (errs []error) {
	cm, ok := s.configMaps["jewelry-shop-nginx"]
	if !ok {
		return append(errs, errors.New("no ConfigMap jewelry-shop-nginx with default.conf"))
	}
	peers := map[string]int{}
	var upstream, pass string
	retries := false
	for _, line := range strings.Split(cm.Data["default.conf"], "\n") {
		f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), ";"))
		switch {
		case len(f) >= 2 && f[0] == "upstream":
			upstream = f[1]
		case len(f) >= 2 && f[0] == "server" && upstream != "":
			peers[upstream]++
			if slices.Contains(f, "resolve") {
				peers[upstream] += 2 // re-resolved to every pod
			}
		case len(f) == 1 && f[0] == "}":
			upstream = ""
		case len(f) >= 2 && f[0] == "proxy_pass":
			pass = strings.TrimPrefix(strings.TrimPrefix(f[1], "http://"), "https://")
		case len(f) >= 2 && f[0] == "proxy_next_upstream":
			retries = retries || f[1] != "off"
		case len(f) >= 2 && f[0] == "proxy_next_upstream_tries":
			retries = retries || f[1] != "1"
		}
	}
	if pass == "" {
		return append(errs, errors.New("nginx default.conf proxies nowhere"))
	}
	if n, ok := peers[pass]; ok && retries && n < 2 {
		errs = append(errs, fmt.Errorf("nginx retries a failed request on upstream %s, which has %d peer: the retry can never happen", pass, n))
	}
	return errs
}

// checkLabels: every object carries the standard labels.
func checkLabels(s *renderedStack) (errs []error) {
	for _, obj := range s.all {
		m, err := metaOf(obj)
		if err != nil {
			return append(errs, err)
		}
		for _, key := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "app.kubernetes.io/component", "helm.sh/chart"} {
			if m.GetLabels()[key] == "" {
				errs = append(errs, fmt.Errorf("%T %s has no label %s", obj, m.GetName(), key))
			}
		}
	}
	return errs
}

func metaOf(obj runtime.Object) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no object metadata", obj)
	}
	return m, nil
}
