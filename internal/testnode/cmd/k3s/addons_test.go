package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

func testImages() addonImages {
	return addonImages{
		CoreDNS:       "lab-test.invalid/coredns:1",
		MetricsServer: "lab-test.invalid/metrics-server:2",
		LocalPath:     "lab-test.invalid/local-path-provisioner:3",
		Helper:        "lab-test.invalid/busybox:4",
	}
}

// TestRenderManifestsDisable: --disable leaves an add-on's manifest out, and
// only that one.
func TestRenderManifestsDisable(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		disable []string
		want    []string
	}{
		{nil, []string{"coredns.yaml", "local-storage.yaml", "metrics-server.yaml"}},
		{[]string{"coredns"}, []string{"local-storage.yaml", "metrics-server.yaml"}},
		{[]string{"metrics-server"}, []string{"coredns.yaml", "local-storage.yaml"}},
		{[]string{"local-storage"}, []string{"coredns.yaml", "metrics-server.yaml"}},
		{[]string{"traefik", "servicelb"}, []string{"coredns.yaml", "local-storage.yaml", "metrics-server.yaml"}},
		{[]string{"coredns", "local-storage", "metrics-server"}, nil},
	} {
		t.Run(strings.Join(tt.disable, ",")+"-", func(t *testing.T) {
			t.Parallel()
			got, err := renderManifests(testImages(), tt.disable)
			if err != nil {
				t.Fatal(err)
			}
			var files []string
			for f := range got {
				files = append(files, f)
			}
			slices.Sort(files)
			if diff := cmp.Diff(tt.want, files); diff != "" {
				t.Errorf("rendered files (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRenderManifestsNeedImages: an enabled add-on without its image is an
// error that names the variable; a disabled one needs none.
func TestRenderManifestsNeedImages(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		drop    func(*addonImages)
		disable []string
		want    string
	}{
		{"coredns", func(i *addonImages) { i.CoreDNS = "" }, nil, "LAB_K3S_COREDNS_IMAGE"},
		{"metrics-server", func(i *addonImages) { i.MetricsServer = "" }, nil, "LAB_K3S_METRICS_SERVER_IMAGE"},
		{"local-path", func(i *addonImages) { i.LocalPath = "" }, nil, "LAB_K3S_LOCAL_PATH_IMAGE"},
		{"helper", func(i *addonImages) { i.Helper = "" }, nil, "LAB_K3S_HELPER_IMAGE"},
		{"disabled", func(i *addonImages) { *i = addonImages{} }, []string{"coredns", "metrics-server", "local-storage"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			imgs := testImages()
			tt.drop(&imgs)
			_, err := renderManifests(imgs, tt.disable)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one naming %s", err, tt.want)
			}
		})
	}
}

// objects decodes a rendered manifest into objects by kind/name.
func objects(t *testing.T, b []byte) map[string]*unstructured.Unstructured {
	t.Helper()
	objs, err := decodeManifest(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	out := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		out[o.GetKind()+"/"+o.GetName()] = o
	}
	return out
}

func typed[T any](t *testing.T, objs map[string]*unstructured.Unstructured, key string) *T {
	t.Helper()
	o, ok := objs[key]
	if !ok {
		var names []string
		for k := range objs {
			names = append(names, k)
		}
		slices.Sort(names)
		t.Fatalf("no %s among %v", key, names)
	}
	var v T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, &v, true); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return &v
}

// TestManifestsAsK3sShipsThem checks the rendered add-ons for what k3s
// ships and what k3d relies on.
func TestManifestsAsK3sShipsThem(t *testing.T) {
	t.Parallel()
	imgs := testImages()
	rendered, err := renderManifests(imgs, nil)
	if err != nil {
		t.Fatal(err)
	}
	image := func(d *appsv1.Deployment) string { return d.Spec.Template.Spec.Containers[0].Image }

	t.Run("coredns", func(t *testing.T) {
		t.Parallel()
		objs := objects(t, rendered["coredns.yaml"])
		var configMaps int
		for _, o := range objs {
			if o.GetKind() == "ConfigMap" {
				configMaps++
			}
		}
		// k3d sets NodeHosts in every ConfigMap of the file.
		if configMaps != 1 {
			t.Errorf("coredns.yaml has %d ConfigMaps, want 1 (k3d writes NodeHosts into each)", configMaps)
		}
		cm := typed[corev1.ConfigMap](t, objs, "ConfigMap/coredns")
		if _, ok := cm.Data["NodeHosts"]; !ok {
			t.Error("the coredns ConfigMap has no NodeHosts key")
		}
		for _, want := range []string{"hosts /etc/coredns/NodeHosts", "kubernetes cluster.local in-addr.arpa ip6.arpa", "forward . /etc/resolv.conf"} {
			if !strings.Contains(cm.Data["Corefile"], want) {
				t.Errorf("the Corefile lacks %q:\n%s", want, cm.Data["Corefile"])
			}
		}
		svc := typed[corev1.Service](t, objs, "Service/kube-dns")
		if svc.Namespace != "kube-system" || svc.Spec.ClusterIP != clusterDNS {
			t.Errorf("kube-dns: %s at %s, want kube-system at %s (the kubelets' clusterDNS)", svc.Namespace, svc.Spec.ClusterIP, clusterDNS)
		}
		d := typed[appsv1.Deployment](t, objs, "Deployment/coredns")
		if image(d) != imgs.CoreDNS || d.Namespace != "kube-system" || d.Spec.Template.Spec.DNSPolicy != corev1.DNSDefault {
			t.Errorf("coredns Deployment: image %s, namespace %s, dnsPolicy %s", image(d), d.Namespace, d.Spec.Template.Spec.DNSPolicy)
		}
	})
	t.Run("metrics-server", func(t *testing.T) {
		t.Parallel()
		objs := objects(t, rendered["metrics-server.yaml"])
		as, ok := objs["APIService/v1beta1.metrics.k8s.io"]
		if !ok {
			t.Fatal("no APIService v1beta1.metrics.k8s.io")
		}
		name, _, _ := unstructured.NestedString(as.Object, "spec", "service", "name")
		ns, _, _ := unstructured.NestedString(as.Object, "spec", "service", "namespace")
		if name != "metrics-server" || ns != "kube-system" {
			t.Errorf("the APIService points at %s/%s, want kube-system/metrics-server", ns, name)
		}
		d := typed[appsv1.Deployment](t, objs, "Deployment/metrics-server")
		args := d.Spec.Template.Spec.Containers[0].Args
		if image(d) != imgs.MetricsServer || slices.Contains(args, "--kubelet-insecure-tls") {
			t.Errorf("metrics-server Deployment: image %s, args %v; want the kubelets verified", image(d), args)
		}
	})
	t.Run("local-storage", func(t *testing.T) {
		t.Parallel()
		objs := objects(t, rendered["local-storage.yaml"])
		sc := typed[storagev1.StorageClass](t, objs, "StorageClass/local-path")
		if sc.Annotations["storageclass.kubernetes.io/is-default-class"] != "true" || sc.Provisioner != "rancher.io/local-path" ||
			sc.VolumeBindingMode == nil || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
			t.Errorf("StorageClass local-path: %+v", sc)
		}
		cm := typed[corev1.ConfigMap](t, objs, "ConfigMap/local-path-config")
		if !strings.Contains(cm.Data["config.json"], `"/var/lib/rancher/k3s/storage"`) || !strings.Contains(cm.Data["helperPod.yaml"], "image: "+imgs.Helper) {
			t.Errorf("local-path-config: %v", cm.Data)
		}
		d := typed[appsv1.Deployment](t, objs, "Deployment/local-path-provisioner")
		if image(d) != imgs.LocalPath || d.Namespace != "kube-system" {
			t.Errorf("local-path-provisioner Deployment: image %s, namespace %s", image(d), d.Namespace)
		}
	})
}

// TestWriteManifestsRemovesDisabled: a restart with --disable removes the
// add-on's manifest (the deploy loop would apply it again otherwise) and
// leaves other files alone.
func TestWriteManifestsRemovesDisabled(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := writeManifests(dir, testImages(), nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mine.yaml"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeManifests(dir, testImages(), []string{"metrics-server"}); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if diff := cmp.Diff([]string{"coredns.yaml", "local-storage.yaml", "mine.yaml"}, got); diff != "" {
		t.Errorf("manifests directory (-want +got):\n%s", diff)
	}
}

// TestDeployerSync: files are applied in name order and object order,
// again only when they change; a failed file is tried again; .skip files
// and other extensions are left alone.
func TestDeployerSync(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cm := func(name string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n"
	}
	var applied []string
	failing := map[string]bool{}
	apply := func(_ context.Context, o *unstructured.Unstructured) error {
		if failing[o.GetName()] {
			return errors.New("refused")
		}
		applied = append(applied, o.GetName())
		return nil
	}
	d := newDeployer(slog.New(slog.DiscardHandler), dir, apply)
	rounds := []struct {
		name   string
		before func()
		want   []string
	}{
		{"first round: all, in order", func() {
			write("b.yaml", cm("b1")+"---\n"+cm("b2"))
			write("a.json", `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}]}`)
			write("c.yaml", cm("c"))
			write("c.yaml.skip", "")
			write("notes.txt", cm("txt"))
		}, []string{"a", "b1", "b2"}},
		{"unchanged: nothing", func() {}, nil},
		{"changed: that file again", func() { write("b.yaml", cm("b1")+"---\n"+cm("b3")) }, []string{"b1", "b3"}},
		{"a failure", func() { failing["d"] = true; write("d.yaml", cm("d")) }, nil},
		{"tried again until it works", func() { failing["d"] = false }, []string{"d"}},
		{"skip removed", func() { _ = os.Remove(filepath.Join(dir, "c.yaml.skip")) }, []string{"c"}},
	}
	for _, r := range rounds {
		applied = nil
		r.before()
		d.sync(t.Context())
		if diff := cmp.Diff(r.want, applied); diff != "" {
			t.Errorf("%s: applied (-want +got):\n%s", r.name, diff)
		}
	}
}
