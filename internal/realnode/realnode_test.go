package realnode_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	chaosv1alpha1 "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/utils/ptr"

	"github.com/jewelry-shop/lab/internal/controlplane"
	"github.com/jewelry-shop/lab/internal/realnode"
)

func TestMain(m *testing.M) { controlplane.Main(m) }

// TestRealNodes brings three real nodes up and checks, in order, what the
// chart needs of them: pods run in containers whose probes are really
// called (a failing readiness probe keeps a pod out of Ready), exec reaches
// a container through the API server and the kubelet, Service names resolve
// through CoreDNS and reach pods on other nodes through kube-proxy, the API
// server reaches pods (its service proxy), and metrics-server reports the
// pods' usage.
func TestRealNodes(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{RealNodes: true})
	c := realnode.Start(t, env, realnode.Options{})
	ctx := t.Context()
	cs := kubernetes.NewForConfigOrDie(env.Config)
	ns := env.Namespace(t)

	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		t.Logf("node %s: %s, kubelet %s, %s, %s", n.Name, n.Status.Addresses, n.Status.NodeInfo.KubeletVersion, n.Status.NodeInfo.ContainerRuntimeVersion, n.Status.NodeInfo.OSImage)
	}

	web := nginxDeployment(t, cs, ns, c.Images.Nginx.Ref, "web", 3, "/")
	failing := nginxDeployment(t, cs, ns, c.Images.Nginx.Ref, "failing", 1, "/nowhere")
	redis := deployment(ns, "redis", 1, c.Images.Redis.Ref, corev1.Container{
		Command:        []string{"redis-server", "--protected-mode", "no"},
		Ports:          []corev1.ContainerPort{{Name: "redis", ContainerPort: 6379}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "redis-cli ping | grep -q PONG"}}}, PeriodSeconds: 2},
	})
	client := deployment(ns, "client", 1, c.Images.Redis.Ref, corev1.Container{Command: []string{"sleep", "infinity"}})
	for _, d := range []*appsv1.Deployment{redis, client} {
		if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []struct {
		name   string
		port   int32
		target string
	}{{"web", 80, "http"}, {"redis", 6379, "redis"}} {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: s.name},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": s.name},
				Ports:    []corev1.ServicePort{{Name: s.target, Port: s.port, TargetPort: intstr.FromString(s.target)}},
			},
		}
		if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("pods become Ready through their probes", func(t *testing.T) {
		begin := time.Now()
		for _, d := range []string{web.Name, "redis", "client"} {
			waitReady(t, cs, ns, d)
		}
		t.Logf("web, redis and client Ready in %v", time.Since(begin).Round(time.Millisecond))
		pods := podsOf(t, cs, ns, "web")
		spread := map[string]bool{}
		for _, p := range pods {
			spread[p.Spec.NodeName] = true
			if p.Status.PodIP == "" || !strings.HasPrefix(p.Status.PodIP, "198.18.") {
				t.Errorf("pod %s has IP %q, want one of the tier's", p.Name, p.Status.PodIP)
			}
		}
		if len(spread) < 2 {
			t.Errorf("the web pods all run on %v, want them spread", spread)
		}
		// A readiness probe that fails keeps the pod out of Ready: the
		// probes are really called.
		for _, p := range podsOf(t, cs, ns, failing.Name) {
			if p.Status.Phase != corev1.PodRunning || podReady(&p) {
				t.Errorf("pod %s with a failing readiness probe: phase %s, ready %t; want Running and not Ready", p.Name, p.Status.Phase, podReady(&p))
			}
		}
	})

	t.Run("exec, DNS and Services across nodes", func(t *testing.T) {
		clientPod := podsOf(t, cs, ns, "client")[0]
		out := exec(t, env, cs, ns, clientPod.Name, "sh", "-c", "redis-cli -h redis."+ns+".svc.cluster.local ping")
		if strings.TrimSpace(out) != "PONG" {
			t.Errorf("redis-cli through the redis Service = %q, want PONG", out)
		}
		seen := map[string]bool{}
		for range 20 {
			out := exec(t, env, cs, ns, clientPod.Name, "bash", "-c",
				`exec 3<>/dev/tcp/web.`+ns+`.svc.cluster.local/80 && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3`)
			body := out[strings.LastIndex(out, "\n")+1:]
			seen[body] = true
		}
		t.Logf("the web Service answered from %v", seen)
		if len(seen) < 2 {
			t.Errorf("20 requests through the web Service reached %v, want several pods", seen)
		}
	})

	t.Run("the API server reaches pods", func(t *testing.T) {
		body, err := cs.CoreV1().Services(ns).ProxyGet("http", "web", "80", "/", nil).DoRaw(ctx)
		if err != nil || !strings.HasPrefix(string(body), "web-") {
			t.Errorf("GET / through the API server's service proxy = %q, %v; want a web pod's name", body, err)
		}
	})

	t.Run("a pod-failure stops the containers and readiness comes back", func(t *testing.T) {
		sctx, stop := context.WithCancel(ctx)
		defer stop()
		var mu sync.Mutex
		var failed []string
		go controlplane.RunChaosStandInWith(sctx, env.Client, ns, controlplane.StandIn{PauseImage: c.Images.Pause.Ref, OnKill: func(k controlplane.Kill) {
			mu.Lock()
			defer mu.Unlock()
			failed = append(failed, k.Pod)
		}})
		pc := &chaosv1alpha1.PodChaos{
			ObjectMeta: metav1.ObjectMeta{Name: "web-failure", Namespace: ns},
			Spec: chaosv1alpha1.PodChaosSpec{
				ContainerSelector: chaosv1alpha1.ContainerSelector{PodSelector: chaosv1alpha1.PodSelector{
					Selector: chaosv1alpha1.PodSelectorSpec{GenericSelectorSpec: chaosv1alpha1.GenericSelectorSpec{Namespaces: []string{ns}, LabelSelectors: map[string]string{"app": "web"}}},
					Mode:     chaosv1alpha1.OneMode,
				}},
				Action:   chaosv1alpha1.PodFailureAction,
				Duration: ptr.To("20s"),
			},
		}
		if err := env.Client.Create(ctx, pc); err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		var victim string
		if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			if len(failed) > 0 {
				victim = failed[0]
			}
			return victim != "", nil
		}); err != nil {
			t.Fatal("the pod-failure was not injected")
		}
		readiness := func(want bool) time.Duration {
			t.Helper()
			err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
				p, err := cs.CoreV1().Pods(ns).Get(ctx, victim, metav1.GetOptions{})
				if err != nil {
					return false, err
				}
				return podReady(p) == want, nil
			})
			if err != nil {
				t.Fatalf("pod %s not ready=%t: %v", victim, want, err)
			}
			return time.Since(begin).Round(100 * time.Millisecond)
		}
		down := readiness(false)
		up := readiness(true)
		p, err := cs.CoreV1().Pods(ns).Get(ctx, victim, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		restarts := int32(0)
		for _, st := range p.Status.ContainerStatuses {
			restarts += st.RestartCount
		}
		t.Logf("pod %s not Ready %v after the pod-failure, Ready again %v after it (held 20s), %d container restarts", victim, down, up, restarts)
		if p.Spec.Containers[0].Image != c.Images.Nginx.Ref || restarts < 2 {
			t.Errorf("after the pod-failure the pod runs %s with %d restarts; want its image back, restarted twice (to the pause image and back)", p.Spec.Containers[0].Image, restarts)
		}
		if err := env.Client.Delete(ctx, pc); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("metrics-server reports the pods' usage", func(t *testing.T) {
		var last string
		err := wait.PollUntilContextTimeout(ctx, 2*time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			raw, err := cs.Discovery().RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1/namespaces/" + ns + "/pods").DoRaw(ctx)
			if err != nil {
				last = err.Error()
				return false, nil
			}
			var list struct {
				Items []struct {
					Metadata   metav1.ObjectMeta `json:"metadata"`
					Containers []struct {
						Usage corev1.ResourceList `json:"usage"`
					} `json:"containers"`
				} `json:"items"`
			}
			if err := json.Unmarshal(raw, &list); err != nil {
				return false, err
			}
			last = fmt.Sprintf("%d pods", len(list.Items))
			for _, it := range list.Items {
				if strings.HasPrefix(it.Metadata.Name, "web-") && len(it.Containers) > 0 {
					mem := it.Containers[0].Usage[corev1.ResourceMemory]
					t.Logf("pod %s uses %v", it.Metadata.Name, it.Containers[0].Usage)
					return mem.Value() > 0, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Errorf("no usage of a web pod from the metrics API (last: %s): %v", last, err)
		}
	})
}

// nginxDeployment creates a Deployment of the nginx image that answers its
// pod's name on port 8080, with its readiness probe on path.
func nginxDeployment(t *testing.T, cs kubernetes.Interface, ns, image, name string, replicas int32, path string) *appsv1.Deployment {
	t.Helper()
	conf := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Data: map[string]string{"default.conf": `server {
    listen 8080;
    location = / { default_type text/plain; return 200 "$hostname"; }
}
`},
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(t.Context(), conf, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	d := deployment(ns, name, replicas, image, corev1.Container{
		Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}}, PeriodSeconds: 2},
		LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromString("http")}}, PeriodSeconds: 5},
		VolumeMounts:   []corev1.VolumeMount{{Name: "conf", MountPath: "/etc/nginx/conf.d"}},
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi"),
		}},
	})
	d.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}}}}
	d.Spec.Template.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
		MaxSkew: 1, TopologyKey: "kubernetes.io/hostname", WhenUnsatisfiable: corev1.DoNotSchedule,
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
	}}
	if _, err := cs.AppsV1().Deployments(ns).Create(t.Context(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return d
}

func deployment(ns, name string, replicas int32, image string, ctr corev1.Container) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	ctr.Name, ctr.Image, ctr.ImagePullPolicy = name, image, corev1.PullNever
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{ctr}, TerminationGracePeriodSeconds: ptr.To(int64(2))},
			},
		},
	}
}

func waitReady(t *testing.T, cs kubernetes.Interface, ns, name string) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(t.Context(), time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = fmt.Sprintf("%d/%d ready", d.Status.ReadyReplicas, *d.Spec.Replicas)
		return d.Status.ReadyReplicas == *d.Spec.Replicas, nil
	})
	if err != nil {
		for _, p := range podsOf(t, cs, ns, name) {
			t.Logf("pod %s on %s: %s %+v", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.ContainerStatuses)
		}
		t.Fatalf("deployment %s not ready (%s): %v", name, last, err)
	}
}

func podsOf(t *testing.T, cs kubernetes.Interface, ns, app string) []corev1.Pod {
	t.Helper()
	pods, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// exec runs a command in a pod's first container through the API server, as
// kubectl exec does, and returns its standard output.
func exec(t *testing.T, env *controlplane.Env, cs kubernetes.Interface, ns, pod string, cmd ...string) string {
	t.Helper()
	req := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(env.Config, "POST", req.URL())
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := ex.StreamWithContext(t.Context(), remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}); err != nil {
		t.Fatalf("exec %v in %s: %v (%s)", cmd, pod, err, stderr.String())
	}
	return stdout.String()
}
