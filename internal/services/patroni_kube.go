package services

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// kubeContext is the context name in the members' kubeconfigs. Patroni
// needs it named: without kubernetes.context it looks for "kind-kind".
const kubeContext = "patroni"

// adminConfig is the kubeconfig the cluster was given.
type adminConfig struct {
	cluster *clientcmdapi.Cluster
	user    *clientcmdapi.AuthInfo
}

// kubeClient reads a kubeconfig file and returns a client for it and its
// current context's cluster and user.
func kubeClient(path string) (kubernetes.Interface, *adminConfig, error) {
	raw, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read kubeconfig %s: %w", path, err)
	}
	kctx := raw.Contexts[raw.CurrentContext]
	if kctx == nil || raw.Clusters[kctx.Cluster] == nil || raw.AuthInfos[kctx.AuthInfo] == nil {
		return nil, nil, fmt.Errorf("kubeconfig %s: current context %q is incomplete", path, raw.CurrentContext)
	}
	rc, err := clientcmd.NewDefaultClientConfig(*raw, nil).ClientConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("make a Kubernetes client: %w", err)
	}
	return kube, &adminConfig{cluster: raw.Clusters[kctx.Cluster], user: raw.AuthInfos[kctx.AuthInfo]}, nil
}

// serverAddr is host:port of the API server.
func (a *adminConfig) serverAddr() (string, error) {
	u, err := url.Parse(a.cluster.Server)
	if err != nil {
		return "", fmt.Errorf("API server address %q: %w", a.cluster.Server, err)
	}
	if u.Host == "" {
		return "", fmt.Errorf("API server address %q names no host", a.cluster.Server)
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "443"), nil
	}
	return u.Host, nil
}

// writeFor writes dir/kubeconfig for a member: the same credentials, the
// API server reached at server (the member's proxy). Certificates and keys
// go into files of dir, named by path in the kubeconfig: given inline,
// Patroni would copy them to temporary files that a killed Patroni leaves
// behind.
func (a *adminConfig) writeFor(dir, server string) error {
	files := map[string][]byte{
		"ca.crt":     a.cluster.CertificateAuthorityData,
		"client.crt": a.user.ClientCertificateData,
		"client.key": a.user.ClientKeyData,
	}
	for name, data := range files {
		if len(data) == 0 {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	file := func(name, fallback string) string {
		if len(files[name]) == 0 {
			return fallback
		}
		return filepath.Join(dir, name)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[kubeContext] = &clientcmdapi.Cluster{
		Server:                server,
		CertificateAuthority:  file("ca.crt", a.cluster.CertificateAuthority),
		InsecureSkipTLSVerify: a.cluster.InsecureSkipTLSVerify,
	}
	cfg.AuthInfos[kubeContext] = &clientcmdapi.AuthInfo{
		ClientCertificate: file("client.crt", a.user.ClientCertificate),
		ClientKey:         file("client.key", a.user.ClientKey),
		Token:             a.user.Token,
	}
	cfg.Contexts[kubeContext] = &clientcmdapi.Context{Cluster: kubeContext, AuthInfo: kubeContext}
	cfg.CurrentContext = kubeContext
	return clientcmd.WriteToFile(*cfg, filepath.Join(dir, "kubeconfig"))
}

// createPods creates one Pod per member on its node, labelled as the
// operator labels its StatefulSet's pods, and waits until the simulated
// kubelet runs it and gave it an IP.
func (c *PatroniCluster) createPods(ctx context.Context) error {
	for _, m := range c.Members {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: m.Name, Namespace: c.Namespace, Labels: c.PodSelector()},
			Spec: corev1.PodSpec{
				NodeName: m.Node,
				Containers: []corev1.Container{{
					Name: "postgres",
					// Never pulled: Patroni runs on the host.
					Image: "spilo.invalid/patroni-on-loopback:not-run",
					Ports: []corev1.ContainerPort{{Name: "postgresql", ContainerPort: 5432}, {Name: "patroni", ContainerPort: 8008}},
				}},
			},
		}
		if _, err := c.kube.CoreV1().Pods(c.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create pod %s: %w", m.Name, err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for _, m := range c.Members {
		for {
			p, err := c.kube.CoreV1().Pods(c.Namespace).Get(ctx, m.Name, metav1.GetOptions{})
			if err == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
				m.PodIP = p.Status.PodIP
				break
			}
			if time.Now().After(deadline) {
				last := "no answer"
				switch {
				case err != nil:
					last = err.Error()
				case p != nil:
					last = fmt.Sprintf("phase %s, IP %q", p.Status.Phase, p.Status.PodIP)
				}
				return fmt.Errorf("pod %s not running with an IP after a minute (is the control plane started with simulated nodes?): %s", m.Name, last)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("wait for pod %s: %w", m.Name, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// podState is what the cluster checks of a member's Pod.
type podState struct {
	role  string // spilo-role label, "" when absent
	ready bool
}

// pods reads the members' Pods.
func (c *PatroniCluster) pods(ctx context.Context) (map[string]podState, error) {
	list, err := c.kube.CoreV1().Pods(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "cluster-name=" + c.Scope})
	if err != nil {
		return nil, fmt.Errorf("list the Patroni pods: %w", err)
	}
	out := map[string]podState{}
	for _, p := range list.Items {
		out[p.Name] = podState{role: p.Labels["spilo-role"], ready: podReady(&p)}
	}
	return out, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// PatroniLock is the leader lock: the annotations Patroni keeps on the
// <scope>-leader ConfigMap.
type PatroniLock struct {
	// Holder is the leader's name; empty when no member holds the lock.
	Holder string
	// AcquireTime is when the holder took the lock, RenewTime when it last
	// renewed it, by the holder's clock (this machine's).
	AcquireTime, RenewTime time.Time
	// Transitions counts the changes of leader.
	Transitions int
}

// LeaderLock reads the leader lock from the API server.
func (c *PatroniCluster) LeaderLock(ctx context.Context) (PatroniLock, error) {
	cm, err := c.kube.CoreV1().ConfigMaps(c.Namespace).Get(ctx, c.Scope+"-leader", metav1.GetOptions{})
	if err != nil {
		return PatroniLock{}, fmt.Errorf("read the leader lock: %w", err)
	}
	a := cm.Annotations
	l := PatroniLock{Holder: a["leader"]}
	l.AcquireTime, _ = time.Parse(time.RFC3339Nano, a["acquireTime"])
	l.RenewTime, _ = time.Parse(time.RFC3339Nano, a["renewTime"])
	l.Transitions, _ = strconv.Atoi(a["transitions"])
	return l, nil
}

// PatroniSync is the synchronous replication state Patroni keeps on the
// <scope>-sync ConfigMap: in synchronous mode only a member named there may
// be promoted.
type PatroniSync struct {
	// Leader is the primary the state was written by.
	Leader string
	// Standbys are the members that are synchronous standbys of Leader.
	Standbys []string
}

// SyncState reads the synchronous replication state from the API server.
func (c *PatroniCluster) SyncState(ctx context.Context) (PatroniSync, error) {
	cm, err := c.kube.CoreV1().ConfigMaps(c.Namespace).Get(ctx, c.Scope+"-sync", metav1.GetOptions{})
	if err != nil {
		return PatroniSync{}, fmt.Errorf("read the synchronous replication state: %w", err)
	}
	s := PatroniSync{Leader: cm.Annotations["leader"]}
	for n := range strings.SplitSeq(cm.Annotations["sync_standby"], ",") {
		if n = strings.TrimSpace(n); n != "" {
			s.Standbys = append(s.Standbys, n)
		}
	}
	return s, nil
}

// ReadinessProbe is a pod's readiness probe, as the kubelet runs it.
type ReadinessProbe struct {
	InitialDelay, Period, Timeout time.Duration
	FailureThreshold              int
}

// SpiloReadinessProbe is the probe the postgres-operator gives Spilo's
// container when enable_readiness_probe is set (lab sets it): GET
// /readiness on Patroni's REST API, from 6 s after the start, every 10 s,
// 5 s timeout, 3 failures (the operator's generateSpiloReadinessProbe).
var SpiloReadinessProbe = ReadinessProbe{InitialDelay: 6 * time.Second, Period: 10 * time.Second, Timeout: 5 * time.Second, FailureThreshold: 3}

// podReadiness stands in for the kubelet's readiness handling of a
// member's container: not Ready while the container does not run, and
// while it runs as the readiness probe says. It patches the Pod's Ready
// and ContainersReady conditions.
type podReadiness struct {
	kube      kubernetes.Interface
	namespace string
	pod       string
	url       string
	probe     ReadinessProbe
	exited    func() bool

	mu        sync.Mutex
	running   bool
	nextProbe time.Time
	failures  int
	want      bool // the readiness the probes give
	patched   *bool
}

func newPodReadiness(kube kubernetes.Interface, namespace, pod, url string, exited func() bool) *podReadiness {
	return &podReadiness{kube: kube, namespace: namespace, pod: pod, url: url, probe: SpiloReadinessProbe, exited: exited}
}

// started records that the container started: not ready until a probe
// succeeds, the first after the initial delay.
func (r *podReadiness) started() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running, r.want, r.failures = true, false, 0
	r.nextProbe = time.Now().Add(r.probe.InitialDelay)
}

// stopped records that the container's processes are gone; the Pod is
// made not Ready at once.
func (r *podReadiness) stopped() {
	r.mu.Lock()
	r.running, r.want = false, false
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.sync(ctx)
}

// run probes and patches until ctx ends.
func (r *podReadiness) run(ctx context.Context) {
	for ctx.Err() == nil {
		r.mu.Lock()
		if r.running && r.exited() {
			r.running, r.want = false, false
		}
		due := r.running && !time.Now().Before(r.nextProbe)
		if due {
			r.nextProbe = r.nextProbe.Add(r.probe.Period)
		}
		r.mu.Unlock()
		if due {
			ok := r.probeOnce(ctx)
			r.mu.Lock()
			if r.running {
				if ok {
					r.want, r.failures = true, 0
				} else if r.failures++; r.failures >= r.probe.FailureThreshold {
					r.want = false
				}
			}
			r.mu.Unlock()
		}
		_ = r.sync(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// probeOnce runs the readiness probe: a 2xx or 3xx answer within the
// timeout is a success.
func (r *podReadiness) probeOnce(ctx context.Context) bool {
	pctx, cancel := context.WithTimeout(ctx, r.probe.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodGet, r.url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

// sync patches the Pod's readiness when it differs from the last patch.
func (r *podReadiness) sync(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.patched != nil && *r.patched == r.want {
		return nil
	}
	status := corev1.ConditionFalse
	if r.want {
		status = corev1.ConditionTrue
	}
	now := metav1.Now()
	conds := []corev1.PodCondition{
		{Type: corev1.PodReady, Status: status, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: status, LastTransitionTime: now},
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": conds}})
	if err != nil {
		return fmt.Errorf("encode the readiness of %s: %w", r.pod, err)
	}
	if _, err := r.kube.CoreV1().Pods(r.namespace).Patch(ctx, r.pod, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("set the readiness of %s: %w", r.pod, err)
	}
	w := r.want
	r.patched = &w
	return nil
}

// EndpointsChange is the primary Service's ready endpoints from At on.
type EndpointsChange struct {
	At    time.Time
	Ready []string // pod names, sorted
}

// serviceEndpoints follows a Service's EndpointSlices, as kube-proxy does.
type serviceEndpoints struct {
	factory informers.SharedInformerFactory
	synced  cache.InformerSynced

	mu      sync.Mutex
	slices  map[string][]string // slice name -> ready pods
	current []string
	changes []EndpointsChange
}

// watchPrimaryService creates the primary Service, named like the cluster
// and selecting the pods labelled spilo-role=master as the operator's does,
// and follows its EndpointSlices, which the control plane's EndpointSlice
// controller keeps.
func watchPrimaryService(ctx context.Context, kube kubernetes.Interface, namespace, name string, pods map[string]string) (*serviceEndpoints, error) {
	selector := map[string]string{"spilo-role": "master"}
	for k, v := range pods {
		selector[k] = v
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: pods},
		Spec: corev1.ServiceSpec{
			Selector: selector,
			Ports:    []corev1.ServicePort{{Name: "postgresql", Port: 5432, TargetPort: intstr.FromInt32(5432)}},
		},
	}
	if _, err := kube.CoreV1().Services(namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create the primary Service: %w", err)
	}
	f := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = discoveryv1.LabelServiceName + "=" + name }))
	inf := f.Discovery().V1().EndpointSlices().Informer()
	s := &serviceEndpoints{factory: f, synced: inf.HasSynced, slices: map[string][]string{}}
	s.changes = append(s.changes, EndpointsChange{At: time.Now(), Ready: []string{}})
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.update(o, false) },
		UpdateFunc: func(_, o any) { s.update(o, false) },
		DeleteFunc: func(o any) { s.update(o, true) },
	})
	if err != nil {
		return nil, fmt.Errorf("watch the primary Service's endpoints: %w", err)
	}
	return s, nil
}

// run watches until ctx ends.
func (s *serviceEndpoints) run(ctx context.Context) {
	s.factory.Start(ctx.Done())
	<-ctx.Done()
	s.factory.Shutdown()
}

// waitSynced waits for the first list of the EndpointSlices.
func (s *serviceEndpoints) waitSynced(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(sctx.Done(), s.synced) {
		return errors.New("the primary Service's EndpointSlices were not listed within 30s")
	}
	return nil
}

func (s *serviceEndpoints) update(o any, deleted bool) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o, deleted = t.Obj, true
	}
	es, ok := o.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	var ready []string
	for _, e := range es.Endpoints {
		if e.TargetRef == nil || (e.Conditions.Ready != nil && !*e.Conditions.Ready) {
			continue
		}
		ready = append(ready, e.TargetRef.Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if deleted {
		delete(s.slices, es.Name)
	} else {
		s.slices[es.Name] = ready
	}
	all := []string{}
	for _, r := range s.slices {
		all = append(all, r...)
	}
	slices.Sort(all)
	all = slices.Compact(all)
	if !slices.Equal(all, s.current) {
		s.current = all
		s.changes = append(s.changes, EndpointsChange{At: time.Now(), Ready: all})
	}
}

// ready returns the pods that are ready endpoints now, sorted.
func (s *serviceEndpoints) ready() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.current)
}

func (s *serviceEndpoints) history() []EndpointsChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.changes)
}

// randIndex picks one of n choices, as kube-proxy picks an endpoint.
func randIndex(n int) int { return rand.N(n) }

// Records of the Patroni clusters' directories, so that a test binary that
// died (a test timeout) does not leave PostgreSQL running: Patroni dies with
// the test binary (parent-death signal), but it starts PostgreSQL in a
// session of its own, re-parented to init. The next cluster to start kills
// the postmasters of directories recorded by a test binary that is gone and
// removes the directories.

// patroniRecords is the directory of the records, one file per test binary.
func patroniRecords() string { return filepath.Join(os.TempDir(), "lab-services-patroni") }

func recordPatroniDir(dir string) error {
	if err := os.MkdirAll(patroniRecords(), 0o755); err != nil {
		return fmt.Errorf("record the Patroni directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(patroniRecords(), strconv.Itoa(os.Getpid())), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("record the Patroni directory: %w", err)
	}
	_, err = fmt.Fprintln(f, dir)
	return errors.Join(err, f.Close())
}

// forgetPatroniDir removes dir from this test binary's record, once it is
// gone.
func forgetPatroniDir(dir string) {
	path := filepath.Join(patroniRecords(), strconv.Itoa(os.Getpid()))
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	lines := slices.DeleteFunc(strings.Fields(string(b)), func(l string) bool { return l == dir })
	if len(lines) == 0 {
		_ = os.Remove(path)
		_ = os.Remove(patroniRecords()) // only when no other test binary's record is left
		return
	}
	_ = os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// lockPatroni makes the test wait until no other Patroni cluster of this
// machine runs, and holds the machine's Patroni lock until the test ends.
// Clusters of test binaries that `go test ./...` runs side by side (lab and
// internal/services both start one) then never overlap: two of them on a
// loaded two-core machine starved a replica's streaming for minutes, and
// their timings are what the tests measure.
func lockPatroni(tb testing.TB) {
	tb.Helper()
	path := filepath.Join(os.TempDir(), "lab-services-patroni.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		tb.Fatalf("open the Patroni lock %s: %v", path, err)
	}
	start := time.Now()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		tb.Fatalf("take the Patroni lock %s: %v", path, err)
	}
	if waited := time.Since(start); waited > time.Second {
		tb.Logf("waited %s for another test's Patroni cluster to end", waited.Round(time.Second))
	}
	tb.Cleanup(func() { _ = f.Close() }) // closing releases the lock
}

// reapPatroniOrphans kills what test binaries that are gone left running in
// their Patroni directories, and removes the directories.
func reapPatroniOrphans(tb testing.TB) {
	tb.Helper()
	entries, err := os.ReadDir(patroniRecords())
	if err != nil {
		return
	}
	for _, e := range entries {
		owner, err := strconv.Atoi(e.Name())
		if err != nil || owner == os.Getpid() || running(owner) {
			continue
		}
		path := filepath.Join(patroniRecords(), e.Name())
		b, _ := os.ReadFile(path)
		for _, dir := range strings.Fields(string(b)) {
			if !strings.HasPrefix(dir, os.TempDir()) {
				continue
			}
			members, _ := filepath.Glob(filepath.Join(dir, "*", "data"))
			for _, data := range members {
				if pm := postmasterOf(data); pm != 0 {
					pids := append([]int{pm}, childPIDs(pm)...)
					for _, p := range pids {
						_ = killPID(p)
					}
					_ = waitGone(pids, 10*time.Second)
					tb.Logf("killed PostgreSQL %d left running in %s by test binary %d", pm, data, owner)
				}
			}
			_ = os.RemoveAll(dir)
		}
		_ = os.Remove(path)
	}
}

func killPID(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
