package charts

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// ShopSettings are the values of a jewelry-shop release that the lab's
// experiments and their figures depend on, read from the manifests Helm
// would install (not from the values, which templates may override or
// default): what the stresses are sized by, what a failover waits for, and
// how long pods stay on a failed node. A zero field was not rendered (e.g.
// postgresql.enabled=false).
type ShopSettings struct {
	// Web is the web container's resources.
	Web Resources
	// Patroni is the PostgreSQL cluster's Patroni timing.
	Patroni Patroni
	// Sentinel is Redis Sentinel's timing.
	Sentinel Sentinel
	// NodeFailureToleration is how long the web pods stay bound to a
	// NotReady or unreachable node before they are evicted.
	NodeFailureToleration time.Duration
}

// Resources are one container's requests and limits; zero is not set.
type Resources struct {
	CPURequestMilli, CPULimitMilli       int64
	MemoryRequestBytes, MemoryLimitBytes int64
}

// Patroni is the Patroni timing of the postgresql resource.
type Patroni struct {
	// TTL is how long the leader key lives without a renewal; LoopWait
	// the time between two HA loops; RetryTimeout how long DCS (the
	// Kubernetes API) and PostgreSQL operations are retried before the
	// primary gives up its role.
	TTL, LoopWait, RetryTimeout time.Duration
	SynchronousMode             bool
}

// Sentinel is the timing of the Sentinels that monitor the Redis master.
type Sentinel struct {
	// DownAfter is how long the master may not answer before a Sentinel
	// thinks it down; FailoverTimeout bounds one failover attempt.
	DownAfter, FailoverTimeout time.Duration
	Quorum                     int
}

// JewelrySettings renders the embedded jewelry-shop chart for rel and reads
// the settings the lab's experiments depend on from the rendered objects.
func JewelrySettings(ctx context.Context, rel Release) (ShopSettings, error) {
	c, err := LoadJewelryShop()
	if err != nil {
		return ShopSettings{}, err
	}
	r, err := Render(ctx, c, rel)
	if err != nil {
		return ShopSettings{}, err
	}
	objs, err := r.Objects()
	if err != nil {
		return ShopSettings{}, err
	}
	return settingsOf(objs, "release "+rel.Name+" as rendered")
}

// DeployedSettings reads the settings the lab's experiments depend on from
// the manifest of the jewelry-shop release deployed in the cluster: what is
// installed there, whatever values it was installed with.
func (in *Installer) DeployedSettings(ctx context.Context, name, namespace string) (ShopSettings, error) {
	if err := ctx.Err(); err != nil {
		return ShopSettings{}, err
	}
	cfg, err := in.actionConfig(namespace)
	if err != nil {
		return ShopSettings{}, err
	}
	rel, err := action.NewGet(cfg).Run(name)
	if err != nil {
		return ShopSettings{}, fmt.Errorf("read release %s in namespace %s: %w", name, namespace, err)
	}
	r := &Rendered{}
	for _, doc := range releaseutil.SplitManifests(rel.Manifest) {
		r.Manifests = append(r.Manifests, Manifest{Source: manifestSource(doc), Content: doc})
	}
	objs, err := r.Objects()
	if err != nil {
		return ShopSettings{}, err
	}
	return settingsOf(objs, fmt.Sprintf("release %s (revision %d) in namespace %s", name, rel.Version, namespace))
}

// settingsOf reads the settings from a release's objects.
func settingsOf(objs []*unstructured.Unstructured, what string) (ShopSettings, error) {
	var s ShopSettings
	found := false
	for _, obj := range objs {
		component := obj.GetLabels()["app.kubernetes.io/component"]
		switch {
		case obj.GetKind() == "Deployment" && component == "web":
			found = true
			if err := s.readWeb(obj); err != nil {
				return ShopSettings{}, err
			}
		case obj.GetKind() == "postgresql":
			if err := s.readPatroni(obj); err != nil {
				return ShopSettings{}, err
			}
		case obj.GetKind() == "ConfigMap" && component == "redis":
			if err := s.readSentinel(obj); err != nil {
				return ShopSettings{}, err
			}
		}
	}
	if !found {
		return ShopSettings{}, fmt.Errorf("read the settings of %s: it has no web Deployment", what)
	}
	return s, nil
}

// readWeb reads the web container's resources and the pods' node-failure
// tolerations.
func (s *ShopSettings) readWeb(obj *unstructured.Unstructured) error {
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &d); err != nil {
		return fmt.Errorf("decode Deployment %s: %w", obj.GetName(), err)
	}
	spec := d.Spec.Template.Spec
	if len(spec.Containers) == 0 {
		return fmt.Errorf("the Deployment %s has no container", d.Name)
	}
	c := spec.Containers[0]
	for _, x := range spec.Containers {
		if x.Name == "web" {
			c = x
		}
	}
	s.Web = Resources{
		CPURequestMilli:    c.Resources.Requests.Cpu().MilliValue(),
		CPULimitMilli:      c.Resources.Limits.Cpu().MilliValue(),
		MemoryRequestBytes: c.Resources.Requests.Memory().Value(),
		MemoryLimitBytes:   c.Resources.Limits.Memory().Value(),
	}
	for _, t := range spec.Tolerations {
		if t.Key == corev1.TaintNodeNotReady && t.Effect == corev1.TaintEffectNoExecute && t.TolerationSeconds != nil {
			s.NodeFailureToleration = time.Duration(*t.TolerationSeconds) * time.Second
		}
	}
	return nil
}

// readPatroni reads spec.patroni of the postgresql resource.
func (s *ShopSettings) readPatroni(obj *unstructured.Unstructured) error {
	p, _, err := unstructured.NestedMap(obj.Object, "spec", "patroni")
	if err != nil {
		return fmt.Errorf("read spec.patroni of postgresql %s: %w", obj.GetName(), err)
	}
	secs := func(key string) (time.Duration, error) {
		switch v := p[key].(type) {
		case nil:
			return 0, nil
		case int64:
			return time.Duration(v) * time.Second, nil
		case float64:
			return time.Duration(v * float64(time.Second)), nil
		default:
			return 0, fmt.Errorf("postgresql %s: spec.patroni.%s is %T, want seconds", obj.GetName(), key, v)
		}
	}
	var errs [3]error
	s.Patroni.TTL, errs[0] = secs("ttl")
	s.Patroni.LoopWait, errs[1] = secs("loop_wait")
	s.Patroni.RetryTimeout, errs[2] = secs("retry_timeout")
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	s.Patroni.SynchronousMode, _ = p["synchronous_mode"].(bool)
	return nil
}

// readSentinel reads the Sentinel timing from sentinel.conf.
func (s *ShopSettings) readSentinel(obj *unstructured.Unstructured) error {
	conf, _, _ := unstructured.NestedString(obj.Object, "data", "sentinel.conf")
	sc := bufio.NewScanner(strings.NewReader(conf))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[0] != "sentinel" {
			continue
		}
		arg := f[len(f)-1]
		n, err := strconv.Atoi(arg)
		switch f[1] {
		case "down-after-milliseconds":
			s.Sentinel.DownAfter = time.Duration(n) * time.Millisecond
		case "failover-timeout":
			s.Sentinel.FailoverTimeout = time.Duration(n) * time.Millisecond
		case "monitor":
			s.Sentinel.Quorum = n
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("ConfigMap %s: sentinel %s %q is not a number: %w", obj.GetName(), f[1], arg, err)
		}
	}
	return nil
}
