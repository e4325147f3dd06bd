package main

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	listersv1 "k8s.io/client-go/listers/core/v1"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// TestBackend routes requests as the Ingress rules say: class, host,
// path type, the longest path, port by number or name, the default
// backend.
func TestBackend(t *testing.T) {
	t.Parallel()
	prefix, exact := networkingv1.PathTypePrefix, networkingv1.PathTypeExact
	backend := func(svc string, port int32, name string) networkingv1.IngressBackend {
		return networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Number: port, Name: name}}}
	}
	path := func(p string, typ *networkingv1.PathType, b networkingv1.IngressBackend) networkingv1.HTTPIngressPath {
		return networkingv1.HTTPIngressPath{Path: p, PathType: typ, Backend: b}
	}
	rule := func(host string, paths ...networkingv1.HTTPIngressPath) networkingv1.IngressRule {
		return networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}}}
	}
	ingresses := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	services := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, o := range []*networkingv1.Ingress{
		{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "shop"}, Spec: networkingv1.IngressSpec{
			IngressClassName: ptr.To("traefik"),
			Rules:            []networkingv1.IngressRule{rule("", path("/", &prefix, backend("nginx", 80, "")), path("/api/admin", &prefix, backend("admin", 0, "http")))},
		}},
		{ObjectMeta: metav1.ObjectMeta{Name: "docs", Namespace: "docs"}, Spec: networkingv1.IngressSpec{
			Rules: []networkingv1.IngressRule{rule("docs.example", path("/exact", &exact, backend("docs", 8080, "")))},
		}},
		{ObjectMeta: metav1.ObjectMeta{Name: "other-class", Namespace: "shop"}, Spec: networkingv1.IngressSpec{
			IngressClassName: ptr.To("nginx"),
			Rules:            []networkingv1.IngressRule{rule("", path("/other", &prefix, backend("other", 80, "")))},
		}},
	} {
		if err := ingresses.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []*corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Name: "nginx", Namespace: "shop"}, Spec: corev1.ServiceSpec{ClusterIP: "10.43.0.20", Ports: []corev1.ServicePort{{Port: 80}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "admin", Namespace: "shop"}, Spec: corev1.ServiceSpec{ClusterIP: "10.43.0.21", Ports: []corev1.ServicePort{{Name: "http", Port: 8000}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "docs", Namespace: "docs"}, Spec: corev1.ServiceSpec{ClusterIP: "10.43.0.22", Ports: []corev1.ServicePort{{Port: 8080}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "shop"}, Spec: corev1.ServiceSpec{ClusterIP: "10.43.0.23", Ports: []corev1.ServicePort{{Port: 80}}}},
	} {
		if err := services.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	r := &router{class: "traefik", ingresses: networkinglisters.NewIngressLister(ingresses), services: listersv1.NewServiceLister(services)}
	tests := []struct {
		host, path, want string
	}{
		{"127.0.0.1:8080", "/api/products", "10.43.0.20:80"},
		{"127.0.0.1", "/api/admin/users", "10.43.0.21:8000"},
		{"127.0.0.1", "/api/administrator", "10.43.0.20:80"}, // a Prefix matches whole path elements
		{"docs.example", "/exact", "10.43.0.22:8080"},
		{"docs.example", "/exact/more", "10.43.0.20:80"},
		{"127.0.0.1", "/other", "10.43.0.20:80"}, // another class's Ingress is not served
	}
	for _, tt := range tests {
		got, err := r.backend(tt.host, tt.path)
		if err != nil || got != tt.want {
			t.Errorf("backend(%q, %q) = %q, %v; want %q", tt.host, tt.path, got, err, tt.want)
		}
	}
	empty := &router{class: "traefik", ingresses: networkinglisters.NewIngressLister(cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})), services: r.services}
	if got, err := empty.backend("x", "/"); err == nil {
		t.Errorf("backend without rules = %q, want an error (404)", got)
	}
}
