package realnode

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Expose makes a Service reachable from the host as a k3d cluster's
// ingress is: a port on 127.0.0.1 (k3d's load balancer) relays each
// connection to port 80 of the nodes in turn, where an HTTP proxy on every
// node (k3s' Traefik, here nginx from the workload image, in kube-system
// with a host port) sends the request to the Service by its name. It
// returns the URL, and removes what it made when the test ends.
func (c *Cluster) Expose(tb testing.TB, namespace, service string, port int) string {
	tb.Helper()
	ctx := tb.Context()
	name := "realnode-ingress-" + service
	labels := map[string]string{"app.kubernetes.io/name": name}
	conf := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system"},
		Data: map[string]string{"default.conf": fmt.Sprintf(`upstream backend {
    server %s.%s.svc.cluster.local:%d;
    keepalive 64;
}

server {
    listen 80;
    location = /realnode-ingress-healthz {
        access_log off;
        return 200 "ok\n";
    }
    location / {
        access_log off;
        proxy_pass http://backend;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_read_timeout 60s;
    }
}
`, service, namespace, port)},
	}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name: "proxy", Image: c.Images.Nginx.Ref, ImagePullPolicy: corev1.PullNever,
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80, HostPort: 80}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/realnode-ingress-healthz", Port: intstr.FromString("http")}},
							PeriodSeconds: 2,
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "conf", MountPath: "/etc/nginx/conf.d"}},
					}},
					Volumes:                       []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}}}},
					TerminationGracePeriodSeconds: ptr.To(int64(5)),
				},
			},
		},
	}
	for _, o := range []client.Object{conf, ds} {
		if err := c.env.Client.Create(ctx, o); err != nil {
			tb.Fatalf("expose %s/%s: create %T: %v", namespace, service, o, err)
		}
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		for _, o := range []client.Object{ds, conf} {
			_ = c.env.Client.Delete(ctx, o)
		}
	})
	var last string
	err := wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		var got appsv1.DaemonSet
		if err := c.env.Client.Get(ctx, client.ObjectKeyFromObject(ds), &got); err != nil {
			return false, err
		}
		last = fmt.Sprintf("%d of %d ready", got.Status.NumberReady, got.Status.DesiredNumberScheduled)
		return got.Status.DesiredNumberScheduled == int32(len(c.Nodes)) && got.Status.NumberReady == got.Status.DesiredNumberScheduled, nil
	})
	if err != nil {
		tb.Fatalf("expose %s/%s: the proxies on the nodes are not ready (%s): %v", namespace, service, last, err)
	}
	var targets []string
	for _, n := range c.Nodes {
		targets = append(targets, net.JoinHostPort(n.IP, "80"))
	}
	f, err := listenForward(ctx, "127.0.0.1:0", targets...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(f.close)
	return "http://" + f.addr()
}
