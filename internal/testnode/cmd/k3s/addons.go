package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"text/template"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
)

// The add-ons' manifests, templates of what k3s writes into its manifests
// directory. go:embed needs a package-level variable; nothing writes it.
//
//go:embed manifests/*.yaml
var manifestTemplates embed.FS

// storageDir is where local-path puts its volumes on every node, as on k3s:
// in the node image's /var/lib/rancher/k3s volume.
const storageDir = dataDir + "/storage"

// addon is one of k3s's bundled add-ons that the stand-in deploys: its name
// for --disable and its file in the manifests directory.
type addon struct {
	name string
	file string
}

// addons are the add-ons the stand-in deploys, as k3s does, unless
// --disable names them.
func addons() []addon {
	return []addon{
		{name: "coredns", file: "coredns.yaml"},
		{name: "local-storage", file: "local-storage.yaml"},
		{name: "metrics-server", file: "metrics-server.yaml"},
	}
}

// addonImages are the add-ons' images, which the node image carries in its
// air-gap images directory (imported into containerd at every start) and
// names in LAB_K3S_*_IMAGE.
type addonImages struct {
	CoreDNS       string // LAB_K3S_COREDNS_IMAGE
	MetricsServer string // LAB_K3S_METRICS_SERVER_IMAGE
	LocalPath     string // LAB_K3S_LOCAL_PATH_IMAGE: local-path-provisioner
	Helper        string // LAB_K3S_HELPER_IMAGE: local-path's helper pods (sh, mkdir, rm, chmod)
}

// manifestValues fill the manifest templates.
type manifestValues struct {
	ClusterDNS    string
	ClusterDomain string
	StorageDir    string
	Images        addonImages
}

// renderManifests returns the manifests of the add-ons that disable does not
// name, by file name. An enabled add-on whose image is unknown is an error.
func renderManifests(images addonImages, disable []string) (map[string][]byte, error) {
	need := map[string]string{
		"coredns":        images.CoreDNS,
		"metrics-server": images.MetricsServer,
		"local-storage":  images.LocalPath,
	}
	vars := map[string]string{
		"coredns":        "LAB_K3S_COREDNS_IMAGE",
		"metrics-server": "LAB_K3S_METRICS_SERVER_IMAGE",
		"local-storage":  "LAB_K3S_LOCAL_PATH_IMAGE",
	}
	out := map[string][]byte{}
	for _, a := range addons() {
		if slices.Contains(disable, a.name) {
			continue
		}
		if need[a.name] == "" {
			return nil, fmt.Errorf("render the %s add-on: no image (the node image sets %s)", a.name, vars[a.name])
		}
		if a.name == "local-storage" && images.Helper == "" {
			return nil, errors.New("render the local-storage add-on: no helper image (the node image sets LAB_K3S_HELPER_IMAGE)")
		}
		t, err := template.New(a.file).Option("missingkey=error").ParseFS(manifestTemplates, "manifests/"+a.file)
		if err != nil {
			return nil, fmt.Errorf("render the %s add-on: %w", a.name, err)
		}
		var b bytes.Buffer
		v := manifestValues{ClusterDNS: clusterDNS, ClusterDomain: clusterDomain, StorageDir: storageDir, Images: images}
		if err := t.Execute(&b, v); err != nil {
			return nil, fmt.Errorf("render the %s add-on: %w", a.name, err)
		}
		out[a.file] = b.Bytes()
	}
	return out, nil
}

// writeManifests writes the bundled manifests into dir, as k3s does at every
// start (k3d then rewrites coredns.yaml with NodeHosts: the cluster's
// containers and host.k3d.internal), and removes those of disabled add-ons,
// so that the deploy loop does not apply them again.
func writeManifests(dir string, images addonImages, disable []string) error {
	rendered, err := renderManifests(images, disable)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write the bundled manifests: %w", err)
	}
	for _, a := range addons() {
		path := filepath.Join(dir, a.file)
		b, ok := rendered[a.file]
		if !ok {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove the manifest of disabled add-on %s: %w", a.name, err)
			}
			continue
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return fmt.Errorf("write the bundled manifests: %w", err)
		}
	}
	return nil
}

// deployInterval is how often the deploy loop looks for new or changed
// manifests.
const deployInterval = 5 * time.Second

// applyFunc applies one object (server-side apply).
type applyFunc func(ctx context.Context, obj *unstructured.Unstructured) error

// deployer is the stand-in's version of k3s's deploy controller: every file
// of the manifests directory (*.yaml, *.yml, *.json; not those with a
// <file>.skip beside them) is applied, object by object, in the order of the
// file names and of the objects in each file, and applied again whenever its
// content changes. A file that fails is tried again at the next round.
type deployer struct {
	log   *slog.Logger
	dir   string
	apply applyFunc
	// applied is the SHA-256 of each file's content as last applied.
	applied map[string]string
	// failed is the content hash and error last logged for each file, so
	// that a failure is logged once, not every round.
	failed map[string]string
}

func newDeployer(log *slog.Logger, dir string, apply applyFunc) *deployer {
	return &deployer{log: log, dir: dir, apply: apply, applied: map[string]string{}, failed: map[string]string{}}
}

// run syncs every deployInterval until ctx ends.
func (d *deployer) run(ctx context.Context) {
	for {
		d.sync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(deployInterval):
		}
	}
}

// sync applies the files that are new or changed since they were last
// applied.
func (d *deployer) sync(ctx context.Context) {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			d.log.Warn("could not list the manifests", "dir", d.dir, "err", err)
		}
		return
	}
	names := make(map[string]bool, len(entries))
	for _, e := range entries {
		names[e.Name()] = true
	}
	for _, e := range entries {
		n := e.Name()
		ext := filepath.Ext(n)
		if e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") || names[n+".skip"] {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d.dir, n))
		if err != nil {
			d.log.Warn("could not read a manifest", "file", n, "err", err)
			continue
		}
		h := sha256.Sum256(b)
		sum := hex.EncodeToString(h[:])
		if d.applied[n] == sum {
			continue
		}
		count, err := d.applyFile(ctx, b)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if msg := sum + err.Error(); d.failed[n] != msg {
				d.failed[n] = msg
				d.log.Warn("could not apply a manifest; trying again", "file", n, "err", err)
			}
			continue
		}
		d.applied[n] = sum
		delete(d.failed, n)
		d.log.Info("applied manifest", "file", n, "objects", count)
	}
}

// applyFile applies every object of a manifest and returns how many.
func (d *deployer) applyFile(ctx context.Context, b []byte) (int, error) {
	objs, err := decodeManifest(b)
	if err != nil {
		return 0, err
	}
	for _, o := range objs {
		if err := d.apply(ctx, o); err != nil {
			return 0, fmt.Errorf("apply %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return len(objs), nil
}

// decodeManifest reads the objects of a YAML (several documents) or JSON
// manifest; a List's items are objects of their own.
func decodeManifest(b []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("decode the manifest: %w", err)
		}
		if len(m) == 0 {
			continue // an empty document
		}
		o := &unstructured.Unstructured{Object: m}
		if o.GetAPIVersion() == "" || o.GetKind() == "" {
			return nil, fmt.Errorf("decode the manifest: an object without apiVersion or kind (%q)", o.GetName())
		}
		if o.IsList() {
			l, err := o.ToList()
			if err != nil {
				return nil, fmt.Errorf("decode the manifest: %w", err)
			}
			for i := range l.Items {
				objs = append(objs, &l.Items[i])
			}
			continue
		}
		objs = append(objs, o)
	}
}

// fieldManager is the stand-in's field manager in server-side apply.
const fieldManager = "k3s-standin-deploy"

// serverSideApply returns an applyFunc that applies objects through the API
// with the admin kubeconfig. Namespaced objects without a namespace go to
// kube-system, as with k3s's deploy controller; the resource of a kind is
// looked up through discovery, again when the kind is new (an APIService or
// CRD applied before).
func serverSideApply(kubeconfigFile string) (applyFunc, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfigFile)
	if err != nil {
		return nil, fmt.Errorf("make the deploy client from %s: %w", kubeconfigFile, err)
	}
	rc.Timeout = 30 * time.Second
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("make the deploy client: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("make the deploy client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	return func(ctx context.Context, o *unstructured.Unstructured) error {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			mapper.Reset()
			return fmt.Errorf("find the resource of %s: %w", gvk, err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			if o.GetNamespace() == "" {
				o.SetNamespace(metav1.NamespaceSystem)
			}
			ri = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		_, err = ri.Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: fieldManager, Force: true})
		return err
	}, nil
}

// startDeployer starts the deploy loop of the manifests directory; it runs
// until ctx ends. It does not wait for anything to be applied: the server
// is up without its add-ons, as k3s is.
func startDeployer(ctx context.Context, log *slog.Logger, dir, kubeconfigFile string) error {
	apply, err := serverSideApply(kubeconfigFile)
	if err != nil {
		return err
	}
	go newDeployer(log.With("component", "deploy"), dir, apply).run(ctx)
	log.Info("deploying the manifests", "dir", dir)
	return nil
}
