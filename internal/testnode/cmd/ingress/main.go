// Command ingress is the k3s stand-in's ingress controller, in the place of
// the Traefik that k3s bundles: an HTTP reverse proxy that routes every
// request by the cluster's Ingress rules (of the class traefik, or of none)
// to the backend Service's cluster IP, where kube-proxy picks a pod. It
// runs on every node with a host port 80, as Traefik behind k3s's servicelb
// does, so that k3d's load balancer reaches it on any node.
//
// It implements what the stand-in's clusters use of an Ingress: host and
// path rules (Exact, Prefix, and ImplementationSpecific as a prefix), the
// longest path winning, backends by port number or name, and the default
// backend. TLS, annotations and middlewares are not implemented.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/rest"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("ingress stand-in", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	listen := flag.String("listen", ":8000", "address of the HTTP entry point")
	ping := flag.String("ping", ":8082", "address of /ping, which answers once the rules are read")
	class := flag.String("ingress-class", "traefik", "the IngressClass served, besides Ingresses of none")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rc, err := rest.InClusterConfig()
	if err != nil {
		return fmt.Errorf("read the in-cluster configuration: %w", err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("create the Kubernetes client: %w", err)
	}
	factory := informers.NewSharedInformerFactory(cs, 10*time.Minute)
	r := &router{
		class:     *class,
		ingresses: factory.Networking().V1().Ingresses().Lister(),
		services:  factory.Core().V1().Services().Lister(),
		log:       log,
	}
	r.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetXForwarded()
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = pr.In.Context().Value(backendKey{}).(string)
			pr.Out.Host = pr.In.Host
		},
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     30 * time.Second,
		},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			log.Warn("backend", "host", req.Host, "path", req.URL.Path, "err", err)
			http.Error(w, "Bad Gateway", http.StatusBadGateway)
		},
	}
	factory.Start(ctx.Done())
	synced := make(chan struct{})
	go func() {
		defer close(synced)
		for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
			if !ok {
				log.Error("the rules could not be read", "type", typ)
			}
		}
	}()

	pingMux := http.NewServeMux()
	pingMux.HandleFunc("/ping", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-synced:
			fmt.Fprintln(w, "OK")
		default:
			http.Error(w, "reading the rules", http.StatusServiceUnavailable)
		}
	})
	servers := []*http.Server{
		{Addr: *listen, Handler: r, ReadHeaderTimeout: 10 * time.Second},
		{Addr: *ping, Handler: pingMux, ReadHeaderTimeout: 10 * time.Second},
	}
	errs := make(chan error, len(servers))
	for _, s := range servers {
		go func() {
			if err := s.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("serve %s: %w", s.Addr, err)
			}
		}()
	}
	log.Info("serving", "listen", *listen, "ping", *ping, "class", *class)
	select {
	case <-ctx.Done():
	case err := <-errs:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(sctx)
	}
	return nil
}

// backendKey is the request context's key of the backend address.
type backendKey struct{}

// router proxies each request to the backend its Ingress rules name.
type router struct {
	class     string
	ingresses networkinglisters.IngressLister
	services  listersv1.ServiceLister
	proxy     *httputil.ReverseProxy
	log       *slog.Logger
}

func (r *router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	addr, err := r.backend(req.Host, req.URL.Path)
	if err != nil {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	r.proxy.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), backendKey{}, addr)))
}

// backend returns the address (cluster IP:port) of the Service that the
// rules route host and path to.
func (r *router) backend(host, path string) (string, error) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	all, err := r.ingresses.List(labels.Everything())
	if err != nil {
		return "", err
	}
	var (
		best     *networkingv1.IngressBackend
		bestNS   string
		bestLen  = -1
		fallback *networkingv1.IngressBackend
		fallNS   string
	)
	for _, ing := range all {
		if !r.serves(ing) {
			continue
		}
		if ing.Spec.DefaultBackend != nil && fallback == nil {
			fallback, fallNS = ing.Spec.DefaultBackend, ing.Namespace
		}
		for _, rule := range ing.Spec.Rules {
			if !hostMatches(rule.Host, host) || rule.HTTP == nil {
				continue
			}
			for i := range rule.HTTP.Paths {
				p := &rule.HTTP.Paths[i]
				if n, ok := pathMatches(p, path); ok && n > bestLen {
					best, bestNS, bestLen = &p.Backend, ing.Namespace, n
				}
			}
		}
	}
	if best == nil {
		best, bestNS = fallback, fallNS
	}
	if best == nil || best.Service == nil {
		return "", errors.New("no rule")
	}
	return r.serviceAddr(bestNS, best.Service)
}

// serves reports whether the Ingress is of the class served, or of none.
func (r *router) serves(ing *networkingv1.Ingress) bool {
	if c := ing.Spec.IngressClassName; c != nil {
		return *c == r.class
	}
	c, ok := ing.Annotations["kubernetes.io/ingress.class"]
	return !ok || c == r.class
}

// serviceAddr is the cluster IP and port of a backend Service.
func (r *router) serviceAddr(ns string, b *networkingv1.IngressServiceBackend) (string, error) {
	svc, err := r.services.Services(ns).Get(b.Name)
	if err != nil {
		return "", err
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return "", fmt.Errorf("service %s/%s has no cluster IP", ns, b.Name)
	}
	for _, p := range svc.Spec.Ports {
		if (b.Port.Name != "" && p.Name == b.Port.Name) || (b.Port.Name == "" && p.Port == b.Port.Number) {
			return net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(p.Port))), nil
		}
	}
	return "", fmt.Errorf("service %s/%s has no port %s", ns, b.Name, portName(b.Port))
}

func portName(p networkingv1.ServiceBackendPort) string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(int(p.Number))
}

// hostMatches matches a rule's host ("" any, "*.example.com" one label)
// against the request's.
func hostMatches(rule, host string) bool {
	switch {
	case rule == "":
		return true
	case strings.HasPrefix(rule, "*."):
		label, rest, ok := strings.Cut(host, ".")
		return ok && label != "" && "*."+rest == rule
	default:
		return strings.EqualFold(rule, host)
	}
}

// pathMatches matches a rule's path against the request's and returns the
// length of the match: Exact whole paths, Prefix by path elements, and
// ImplementationSpecific (Traefik's PathPrefix) by characters.
func pathMatches(p *networkingv1.HTTPIngressPath, path string) (int, bool) {
	rule := p.Path
	if rule == "" {
		rule = "/"
	}
	typ := networkingv1.PathTypeImplementationSpecific
	if p.PathType != nil {
		typ = *p.PathType
	}
	switch typ {
	case networkingv1.PathTypeExact:
		return len(rule), path == rule
	case networkingv1.PathTypePrefix:
		trimmed := strings.TrimSuffix(rule, "/")
		if trimmed == "" {
			return 0, true
		}
		return len(trimmed), path == trimmed || strings.HasPrefix(path, trimmed+"/")
	default:
		return len(rule), strings.HasPrefix(path, rule)
	}
}
