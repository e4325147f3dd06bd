//go:build !race

package testnode_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// addonsCase is what checkAddons needs of the cluster of
// TestK3dPodsRunInRealContainers.
type addonsCase struct {
	cs       kubernetes.Interface
	docker   *client.Client
	workload string // busybox
	agent    string // the agent node
	// service is a Service of the test in namespace default, resolved by
	// name.
	service *corev1.Service
	// pod is a running pod of the test, whose metrics must appear.
	pod string
}

// checkAddons checks k3s's add-ons as the stand-in's server deploys them
// from its manifests directory: CoreDNS answers the cluster's names to a
// pod (the API's Service and the test's, by full and short name), the
// metrics API (metrics-server through the API server's aggregation layer)
// returns every node's and the test pod's usage, and a claim of the default
// StorageClass binds to a volume on the node its pod was scheduled to,
// where the pod's write lands.
func checkAddons(ctx context.Context, t *testing.T, c addonsCase) {
	t.Helper()
	begin := time.Now()
	for _, d := range []string{"coredns", "metrics-server", "local-path-provisioner"} {
		if err := waitDeploymentAvailable(ctx, c.cs, "kube-system", d, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("the add-ons' Deployments Available %v after the check began", time.Since(begin).Round(time.Millisecond))

	t.Run("dns", func(t *testing.T) {
		dns, err := c.cs.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get kube-system/kube-dns: %v", err)
		}
		if dns.Spec.ClusterIP != "10.43.0.10" {
			t.Errorf("kube-dns at %s, want the kubelets' clusterDNS 10.43.0.10", dns.Spec.ClusterIP)
		}
		// k3d rewrites coredns.yaml in the manifests directory with its
		// NodeHosts; the server applies the changed file again.
		var hosts string
		if !poll(ctx, time.Minute, time.Second, func() bool {
			cm, err := c.cs.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
			if err == nil {
				hosts = cm.Data["NodeHosts"]
			}
			return strings.Contains(hosts, "host.k3d.internal")
		}) {
			t.Errorf("the coredns ConfigMap's NodeHosts lack k3d's host.k3d.internal within 1m: %q", hosts)
		}
		names := map[string]string{
			"kubernetes.default.svc.cluster.local":                            "10.43.0.1",
			c.service.Name + "." + c.service.Namespace + ".svc.cluster.local": c.service.Spec.ClusterIP,
			c.service.Name: c.service.Spec.ClusterIP, // through the pod's search path
		}
		var script []string
		for name, ip := range names {
			// Up to 10 tries until the answer has the address. busybox
			// nslookup fails when any name of the search path is unknown,
			// even though the short name resolved through another.
			script = append(script, fmt.Sprintf(`n=0; until busybox nslookup %[1]s >/tmp/out 2>&1; busybox grep -q -F "Address: %[2]s" /tmp/out; do `+
				`n=$((n+1)); [ "$n" -lt 10 ] || { cat /tmp/out; exit 1; }; sleep 1; done; echo "== %[1]s"; cat /tmp/out`, name, ip))
		}
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "dns-client", Labels: map[string]string{"app.kubernetes.io/managed-by": "lab-test"}},
			Spec: corev1.PodSpec{
				NodeSelector:  map[string]string{"kubernetes.io/hostname": c.agent},
				RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{
					Name: "nslookup", Image: c.workload, ImagePullPolicy: corev1.PullNever,
					Command: []string{"sh", "-c", strings.Join(script, "; ")},
				}},
			},
		}
		if _, err := c.cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod %s: %v", pod.Name, err)
		}
		phase, err := waitPodDone(ctx, c.cs, "default", pod.Name, 2*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		logs := podLogs(ctx, t, c.cs, "default", pod.Name)
		if phase != corev1.PodSucceeded {
			t.Fatalf("pod %s on %s: %s; output:\n%s", pod.Name, c.agent, phase, logs)
		}
		for name, ip := range names {
			_, answer, _ := strings.Cut(logs, "== "+name+"\n")
			answer, _, _ = strings.Cut(answer, "== ")
			if !strings.Contains(answer, "10.43.0.10") || !strings.Contains(answer, ip) {
				t.Errorf("%s through CoreDNS (10.43.0.10): want %s, got:\n%s", name, ip, answer)
			}
		}
	})

	t.Run("metrics", func(t *testing.T) {
		started := time.Now()
		var last string
		ok := poll(ctx, 2*time.Minute, 2*time.Second, func() bool {
			var nodes, pods struct {
				Items []struct {
					Metadata struct{ Name string }
					Usage    map[string]resource.Quantity
				}
			}
			for _, q := range []struct {
				path string
				into any
			}{
				{"/apis/metrics.k8s.io/v1beta1/nodes", &nodes},
				{"/apis/metrics.k8s.io/v1beta1/namespaces/default/pods", &pods},
			} {
				b, err := c.cs.Discovery().RESTClient().Get().AbsPath(q.path).DoRaw(ctx)
				if err != nil {
					last = fmt.Sprintf("%s: %v %s", q.path, err, b)
					return false
				}
				if err := json.Unmarshal(b, q.into); err != nil {
					last = fmt.Sprintf("%s: %v", q.path, err)
					return false
				}
			}
			var named []string
			for _, n := range nodes.Items {
				if _, ok := n.Usage["cpu"]; ok {
					named = append(named, n.Metadata.Name)
				}
			}
			podSeen := false
			for _, p := range pods.Items {
				podSeen = podSeen || p.Metadata.Name == c.pod
			}
			last = fmt.Sprintf("node metrics for %v, pod %s among the pod metrics: %v", named, c.pod, podSeen)
			return len(named) == 2 && podSeen
		})
		if !ok {
			t.Fatalf("the metrics API within 2m: %s", last)
		}
		t.Logf("the metrics API returned both nodes' and pod %s's usage %v after the check began", c.pod, time.Since(started).Round(time.Millisecond))
		// The API server reached the metrics-server pod: the APIService is
		// Available.
		b, err := c.cs.Discovery().RESTClient().Get().AbsPath("/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io").DoRaw(ctx)
		if err != nil {
			t.Fatalf("get APIService v1beta1.metrics.k8s.io: %v", err)
		}
		var as struct {
			Status struct {
				Conditions []struct{ Type, Status, Message string }
			}
		}
		if err := json.Unmarshal(b, &as); err != nil {
			t.Fatalf("decode APIService v1beta1.metrics.k8s.io: %v", err)
		}
		if !slices.ContainsFunc(as.Status.Conditions, func(c struct{ Type, Status, Message string }) bool {
			return c.Type == "Available" && c.Status == "True"
		}) {
			t.Errorf("APIService v1beta1.metrics.k8s.io not Available: %+v", as.Status.Conditions)
		}
		if pods, err := c.cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=metrics-server"}); err == nil && len(pods.Items) > 0 {
			t.Logf("metrics-server runs on %s", pods.Items[0].Spec.NodeName)
		}
	})

	t.Run("local-path", func(t *testing.T) {
		classes, err := c.cs.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("list StorageClasses: %v", err)
		}
		var defaults []string
		for _, sc := range classes.Items {
			if sc.Annotations["storageclass.kubernetes.io/is-default-class"] == "true" {
				defaults = append(defaults, sc.Name)
				if sc.Provisioner != "rancher.io/local-path" || sc.VolumeBindingMode == nil || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
					t.Errorf("StorageClass %s: provisioner %s, binding %v", sc.Name, sc.Provisioner, sc.VolumeBindingMode)
				}
			}
		}
		if len(defaults) != 1 || defaults[0] != "local-path" {
			t.Fatalf("default StorageClasses %v, want [local-path]", defaults)
		}
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "data"},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("16Mi")}},
			},
		}
		if _, err := c.cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create claim %s: %v", pvc.Name, err)
		}
		const line = "written by the pod through its claim"
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "writer", Labels: map[string]string{"app.kubernetes.io/managed-by": "lab-test"}},
			Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{
					Name: "writer", Image: c.workload, ImagePullPolicy: corev1.PullNever,
					Command:      []string{"sh", "-c", `echo "` + line + `" >/data/file && cat /data/file`},
					VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
				}},
				Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
					PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: pvc.Name},
				}}},
			},
		}
		started := time.Now()
		if _, err := c.cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod %s: %v", pod.Name, err)
		}
		phase, err := waitPodDone(ctx, c.cs, "default", pod.Name, 2*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if logs := podLogs(ctx, t, c.cs, "default", pod.Name); phase != corev1.PodSucceeded || !strings.Contains(logs, line) {
			t.Fatalf("pod %s: %s, output %q", pod.Name, phase, logs)
		}
		t.Logf("pod %s wrote to its claim %v after its creation", pod.Name, time.Since(started).Round(time.Millisecond))
		got, err := c.cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, pvc.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get claim %s: %v", pvc.Name, err)
		}
		if got.Status.Phase != corev1.ClaimBound || got.Spec.StorageClassName == nil || *got.Spec.StorageClassName != "local-path" {
			t.Fatalf("claim %s: phase %s, class %v; want Bound, local-path", pvc.Name, got.Status.Phase, got.Spec.StorageClassName)
		}
		pv, err := c.cs.CoreV1().PersistentVolumes().Get(ctx, got.Spec.VolumeName, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get volume %s: %v", got.Spec.VolumeName, err)
		}
		ran, err := c.cs.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get pod %s: %v", pod.Name, err)
		}
		node := ran.Spec.NodeName
		if pv.Spec.HostPath == nil || !strings.HasPrefix(pv.Spec.HostPath.Path, "/var/lib/rancher/k3s/storage/") {
			t.Fatalf("volume %s: %+v, want a hostPath under /var/lib/rancher/k3s/storage", pv.Name, pv.Spec.PersistentVolumeSource)
		}
		if affinity := fmt.Sprint(pv.Spec.NodeAffinity); !strings.Contains(affinity, node) {
			t.Errorf("volume %s's node affinity %s does not name %s, where its pod ran", pv.Name, affinity, node)
		}
		if content := containerFile(ctx, t, c.docker, node, path.Join(pv.Spec.HostPath.Path, "file")); !strings.Contains(content, line) {
			t.Errorf("on node %s, %s holds %q, want the pod's line", node, pv.Spec.HostPath.Path, content)
		}
	})
}

// waitDeploymentAvailable waits until the Deployment exists and is
// Available.
func waitDeploymentAvailable(ctx context.Context, cs kubernetes.Interface, ns, name string, timeout time.Duration) error {
	var last string
	ok := poll(ctx, timeout, time.Second, func() bool {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		last = fmt.Sprintf("%+v", d.Status)
		return false
	})
	if !ok {
		return fmt.Errorf("deployment %s/%s not Available within %v; last seen: %s", ns, name, timeout, last)
	}
	return nil
}

// poll calls cond every interval until it returns true (true) or timeout
// passes or ctx ends (false).
func poll(ctx context.Context, timeout, interval time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(interval):
		}
	}
}
