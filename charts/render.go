package charts

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Rendered is a chart rendered without a cluster, as `helm template` does.
type Rendered struct {
	// Manifests are the rendered documents in Helm's install order, hooks
	// last, each named by the template it came from.
	Manifests []Manifest
	// Notes is the rendered NOTES.txt.
	Notes string
}

// Objects decodes every rendered document into an unstructured object.
func (r *Rendered) Objects() ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for _, m := range r.Manifests {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(m.Content), &obj.Object); err != nil {
			return nil, fmt.Errorf("decode %s: %w", m.Source, err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// Render renders a chart with a release's name, namespace and values,
// validating the values against the chart's schema. No cluster is involved:
// the capabilities are Helm's defaults with RenderKubeVersion.
func Render(ctx context.Context, c *chart.Chart, rel Release) (*Rendered, error) {
	kv, err := chartutil.ParseKubeVersion(RenderKubeVersion)
	if err != nil {
		return nil, fmt.Errorf("parse the Kubernetes version %s: %w", RenderKubeVersion, err)
	}
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.KubeVersion = kv
	install.DryRun = true
	install.ClientOnly = true
	install.Replace = true
	install.IncludeCRDs = true
	install.ReleaseName = rel.Name
	install.Namespace = rel.Namespace
	r, err := install.RunWithContext(ctx, c, copyValues(rel.Values))
	if err != nil {
		return nil, fmt.Errorf("render chart %s: %w", rel.Chart, err)
	}
	out := &Rendered{Notes: r.Info.Notes}
	docs := releaseutil.SplitManifests(r.Manifest)
	keys := slices.Collect(maps.Keys(docs))
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	for _, k := range keys {
		out.Manifests = append(out.Manifests, Manifest{Source: manifestSource(docs[k]), Content: docs[k]})
	}
	for _, h := range r.Hooks {
		out.Manifests = append(out.Manifests, Manifest{Source: h.Path, Content: h.Manifest})
	}
	return out, nil
}

// Manifest is one rendered document.
type Manifest struct {
	// Source is the chart template it was rendered from, e.g.
	// jewelry-shop/templates/web.yaml.
	Source  string
	Content string
}

// manifestSource reads the "# Source: …" line Helm puts above a document.
func manifestSource(doc string) string {
	for line := range strings.Lines(doc) {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "# Source: "); ok {
			return s
		}
	}
	return ""
}

// Images lists every container image that the releases' rendered charts
// reference, sorted and without duplicates: the images of every pod
// template, the Spilo image the postgres-operator is configured to run (it
// creates those pods itself) and the pause image Chaos Mesh's controller
// puts into pods for pod-failure. Upstream charts are fetched through src.
func Images(ctx context.Context, src *Source, releases []Release) ([]string, error) {
	seen := map[string]bool{}
	for _, rel := range releases {
		c, err := src.Load(ctx, rel.Chart)
		if err != nil {
			return nil, err
		}
		r, err := Render(ctx, c, rel)
		if err != nil {
			return nil, err
		}
		objs, err := r.Objects()
		if err != nil {
			return nil, err
		}
		for _, obj := range objs {
			for _, img := range objectImages(obj) {
				seen[img] = true
			}
		}
	}
	images := make([]string, 0, len(seen))
	for img := range seen {
		images = append(images, img)
	}
	slices.Sort(images)
	return images, nil
}

// podSpecPath says where a workload kind keeps its pod spec.
func podSpecPath(kind string) ([]string, bool) {
	switch kind {
	case "Pod":
		return []string{"spec"}, true
	case "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job":
		return []string{"spec", "template", "spec"}, true
	case "CronJob":
		return []string{"spec", "jobTemplate", "spec", "template", "spec"}, true
	}
	return nil, false
}

// objectImages returns the images one object references.
func objectImages(obj *unstructured.Unstructured) []string {
	var images []string
	if path, ok := podSpecPath(obj.GetKind()); ok {
		spec, _, _ := unstructured.NestedMap(obj.Object, path...)
		for _, field := range []string{"initContainers", "containers", "ephemeralContainers"} {
			containers, _, _ := unstructured.NestedSlice(spec, field)
			for _, c := range containers {
				m, ok := c.(map[string]any)
				if !ok {
					continue
				}
				if img, ok := m["image"].(string); ok && img != "" {
					images = append(images, img)
				}
				// An image a controller starts, named in its environment.
				env, _, _ := unstructured.NestedSlice(m, "env")
				for _, e := range env {
					if v, ok := e.(map[string]any); ok && v["name"] == chaosMeshPauseEnv {
						if img, ok := v["value"].(string); ok && img != "" {
							images = append(images, img)
						}
					}
				}
			}
		}
	}
	// The postgres-operator's configuration names the Spilo image of the
	// database pods, as an OperatorConfiguration or a ConfigMap.
	switch {
	case obj.GetKind() == "OperatorConfiguration" && strings.HasPrefix(obj.GetAPIVersion(), "acid.zalan.do/"):
		if img, ok, _ := unstructured.NestedString(obj.Object, "configuration", "docker_image"); ok && img != "" {
			images = append(images, img)
		}
	case obj.GetKind() == "ConfigMap":
		if img, ok, _ := unstructured.NestedString(obj.Object, "data", "docker_image"); ok && img != "" {
			images = append(images, img)
		}
	}
	return images
}
