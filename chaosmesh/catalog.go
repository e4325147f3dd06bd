// Package chaosmesh is the lab's catalogue of failure experiments, as typed
// objects of the Chaos Mesh API, and the engine that applies them: validated
// with Chaos Mesh's own webhook code before they are sent, labelled with the
// run, scoped to the lab's namespace, observed through their status, and
// always removed again.
//
// Node failure is in the catalogue too, but it is not a Chaos Mesh object: the
// lab stops a k3d agent container through package cluster.
package chaosmesh

import (
	"fmt"
	"strings"
	"time"

	"github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Labels on every object the engine creates.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "lab"
	// RunLabel carries the id of the validation run that created the object.
	RunLabel = "lab.jewelry-shop.dev/run"
	// ExperimentLabel carries the catalogue name of the experiment.
	ExperimentLabel = "lab.jewelry-shop.dev/experiment"
)

// Kind says how an experiment is carried out.
type Kind string

const (
	// KindChaos experiments are Chaos Mesh objects.
	KindChaos Kind = "chaos-mesh"
	// KindNodeFailure experiments stop a k3d node container; the lab does it
	// through package cluster, not through Chaos Mesh.
	KindNodeFailure Kind = "node-failure"
)

// Catalogue names.
const (
	PostgresPrimaryFailure   = "postgres-primary-failure"
	PostgresPrimaryIsolation = "postgres-primary-isolation"
	RedisMasterFailure       = "redis-master-failure"
	WebPodKill               = "web-pod-kill"
	WebPodFailure            = "web-pod-failure"
	WebPostgresPartition     = "web-postgres-partition"
	WebCPUStress             = "web-cpu-stress"
	WebMemoryStress          = "web-memory-stress"
	NodeFailure              = "node-failure"
)

// Experiment is one entry of the catalogue.
type Experiment struct {
	// Name is the catalogue name, e.g. "postgres-primary-failure".
	Name string
	// Requirements are the ids of DESIGN.md's requirement table it serves.
	Requirements []string
	// Title says in words what is broken.
	Title string
	// Target says what is hit, in words.
	Target string
	// Duration is how long the fault is held; zero for a one-shot kill.
	Duration time.Duration
	// Recovery says what the lab measures as recovery for this fault. The
	// fault being removed (Chaos Mesh's AllRecovered) is never recovery.
	Recovery string
	Kind     Kind
	// Object is the Chaos Mesh object for KindChaos, without run labels and
	// name suffix (Engine.Apply adds them); nil for node failure.
	Object client.Object
	// Node is the node to stop, for KindNodeFailure.
	Node string
	// Stress is what a stress experiment adds to each stressed container;
	// nil for every other experiment.
	Stress *Load
}

// Load is CPU and memory that a stressor adds to one container.
type Load struct {
	CPUMilli    int64
	MemoryBytes int64
}

// OneShot reports whether the fault is done once injected (a kill), as
// opposed to a fault held for Duration.
func (e Experiment) OneShot() bool { return e.Kind == KindChaos && e.Duration == 0 }

// StressSelector returns the namespace and labels of the pods a stress
// experiment stresses; ok is false for every other experiment.
func (e Experiment) StressSelector() (namespace string, labels map[string]string, ok bool) {
	sc, isStress := e.Object.(*v1alpha1.StressChaos)
	if !isStress || len(sc.Spec.Selector.Namespaces) != 1 {
		return "", nil, false
	}
	return sc.Spec.Selector.Namespaces[0], sc.Spec.Selector.LabelSelectors, true
}

// ObjectKind names the kind of the Chaos Mesh object, e.g. "PodChaos"; ""
// for node failure.
func (e Experiment) ObjectKind() string {
	if e.Kind != KindChaos || e.Object == nil {
		return ""
	}
	t := fmt.Sprintf("%T", e.Object)
	return t[strings.LastIndex(t, ".")+1:]
}

// Targets say where the lab's workloads are and how to select them; the lab
// fills them from the installed stack and from what it asked the cluster.
type Targets struct {
	// Namespace is the lab namespace; every selector is scoped to it.
	Namespace string
	// Web selects the web pods, Postgres the pods of the lab's PostgreSQL
	// cluster (all instances).
	Web      map[string]string
	Postgres map[string]string
	// RedisMasterPod is the pod Sentinel reports as master right now. Ask
	// Sentinel: pod names say nothing about roles after a failover.
	RedisMasterPod string
	// Node is the k3d agent to stop for the node-failure experiment.
	Node string
	// WebLimits are the web container's CPU and memory limits, as the
	// chart renders them; the stresses are sized from them. Zero is not
	// known.
	WebLimits Load
}

// The share of the web container's limits that a stress adds. Well below
// the limit, so that the stressed pods keep serving: a CPU stress at the
// limit only throttles the container and hides in its usage, and a memory
// stress lands in the container's cgroup, where usage at the limit gets the
// container OOM-killed.
const (
	CPUStressShare    = 0.5
	MemoryStressShare = 0.4
)

// Stress sizes when the web container's limits are not known.
const (
	defaultCPUStressMilli    = 250
	defaultMemoryStressBytes = 64 << 20
)

// stressLoads sizes the CPU and memory stresses from the web limits.
func stressLoads(limits Load) (cpu, mem Load) {
	cpu.CPUMilli = int64(float64(limits.CPUMilli) * CPUStressShare)
	if cpu.CPUMilli <= 0 {
		cpu.CPUMilli = defaultCPUStressMilli
	}
	mem.MemoryBytes = int64(float64(limits.MemoryBytes)*MemoryStressShare) &^ (1<<20 - 1) // whole MiB
	if mem.MemoryBytes <= 0 {
		mem.MemoryBytes = defaultMemoryStressBytes
	}
	return cpu, mem
}

// cpuStressor puts milli CPU of load on a container: stress-ng's load is a
// percentage of one CPU per worker.
func cpuStressor(milli int64) *v1alpha1.CPUStressor {
	workers := int((milli + 999) / 1000)
	load := int(min(max(milli/int64(workers)/10, 1), 100))
	return &v1alpha1.CPUStressor{Stressor: v1alpha1.Stressor{Workers: workers}, Load: ptr(load)}
}

// Timing holds the durations of the held faults.
type Timing struct {
	// PrimaryDown keeps the PostgreSQL primary down (stopped, or cut off);
	// it must exceed Patroni's ttl + loop_wait, or the old primary can return
	// before its leader key expires and no failover happens.
	PrimaryDown time.Duration
	// MasterDown keeps the Redis master down; it must exceed Sentinel's
	// down-after-milliseconds and the failover, or the master is back
	// before any Sentinel declares it down.
	MasterDown time.Duration
	// PodFailure holds the web pod failure, Partition the network partition,
	// Stress the CPU and memory stress, NodeDown the stopped node.
	PodFailure time.Duration
	Partition  time.Duration
	Stress     time.Duration
	NodeDown   time.Duration
}

// DefaultTiming is a timing that fits the chart's Patroni ttl and loop_wait
// (at most 30 s together, which its policy tests enforce), Sentinel's
// down-after-milliseconds of 5 s and the lab's node-failure detection.
func DefaultTiming() Timing {
	return Timing{
		PrimaryDown: 60 * time.Second,
		MasterDown:  30 * time.Second,
		PodFailure:  30 * time.Second,
		Partition:   30 * time.Second,
		Stress:      60 * time.Second,
		NodeDown:    90 * time.Second,
	}
}

// Catalogue returns every experiment, in the order the full profile runs them.
func Catalogue(t Targets, tm Timing) []Experiment {
	ns := t.Namespace
	postgresPrimary := merge(t.Postgres, map[string]string{"spilo-role": "master"})
	cpuLoad, memLoad := stressLoads(t.WebLimits)
	return []Experiment{
		{
			Name:         WebPodKill,
			Requirements: []string{"R27"},
			Title:        "Kill one random web pod",
			Target:       "one web pod, chosen at random",
			Recovery:     "the web Deployment has all replicas Ready again; user requests succeed",
			Kind:         KindChaos,
			Object: &v1alpha1.PodChaos{
				ObjectMeta: objectMeta(WebPodKill, ns),
				Spec: v1alpha1.PodChaosSpec{
					ContainerSelector: v1alpha1.ContainerSelector{PodSelector: podSelector(ns, t.Web, v1alpha1.OneMode)},
					Action:            v1alpha1.PodKillAction,
				},
			},
		},
		{
			Name:         WebPodFailure,
			Requirements: []string{"R27", "R31"},
			Title:        "Make one web pod fail for a fixed time",
			Target:       "one web pod, chosen at random",
			Duration:     tm.PodFailure,
			Recovery:     "the pod is Ready again after the fault is removed; user requests succeed throughout",
			Kind:         KindChaos,
			Object: &v1alpha1.PodChaos{
				ObjectMeta: objectMeta(WebPodFailure, ns),
				Spec: v1alpha1.PodChaosSpec{
					ContainerSelector: v1alpha1.ContainerSelector{PodSelector: podSelector(ns, t.Web, v1alpha1.OneMode)},
					Action:            v1alpha1.PodFailureAction,
					Duration:          duration(tm.PodFailure),
				},
			},
		},
		{
			Name:         PostgresPrimaryFailure,
			Requirements: []string{"R26", "R29"},
			Title:        "Stop the PostgreSQL primary (graceful: a switchover)",
			Target:       "the pod labelled spilo-role=master",
			Duration:     tm.PrimaryDown,
			Recovery:     "the prober's first acknowledged write through the primary Service after the fault (RTO), and whether another pod became primary or the old one came back",
			Kind:         KindChaos,
			Object: &v1alpha1.PodChaos{
				ObjectMeta: objectMeta(PostgresPrimaryFailure, ns),
				Spec: v1alpha1.PodChaosSpec{
					// pod-failure keeps the pod's containers down for the whole
					// duration (a grace-0 pod-kill comes back before Patroni's
					// ttl and no failover happens). It replaces the image, so
					// the kubelet stops Spilo gracefully: Patroni releases the
					// leader key on SIGTERM and a replica takes over at once.
					// This is a switchover; ttl is not exercised (the isolation
					// below is the failure without a handover).
					ContainerSelector: v1alpha1.ContainerSelector{PodSelector: podSelector(ns, postgresPrimary, v1alpha1.OneMode)},
					Action:            v1alpha1.PodFailureAction,
					Duration:          duration(tm.PrimaryDown),
				},
			},
		},
		{
			Name:         PostgresPrimaryIsolation,
			Requirements: []string{"R26", "R29"},
			Title:        "Cut the PostgreSQL primary off the network (no handover: a failover after Patroni's ttl)",
			Target:       "the pod labelled spilo-role=master: every packet it sends is dropped",
			Duration:     tm.PrimaryDown,
			Recovery:     "the prober's first acknowledged write through the primary Service after the fault (RTO), and whether another pod became primary after the old one's leader key expired",
			Kind:         KindChaos,
			Object: &v1alpha1.NetworkChaos{
				ObjectMeta: objectMeta(PostgresPrimaryIsolation, ns),
				Spec: v1alpha1.NetworkChaosSpec{
					// Dropping every packet the primary sends cuts it off the
					// Kubernetes API (its DCS), its replicas and its clients,
					// while it keeps running: nothing releases the leader key,
					// which must expire (ttl) before a replica takes over, as
					// after a crash or a network failure of its node.
					PodSelector: podSelector(ns, postgresPrimary, v1alpha1.OneMode),
					Action:      v1alpha1.LossAction,
					TcParameter: v1alpha1.TcParameter{Loss: &v1alpha1.LossSpec{Loss: "100", Correlation: "100"}},
					Direction:   v1alpha1.To,
					Duration:    duration(tm.PrimaryDown),
				},
			},
		},
		{
			Name:         RedisMasterFailure,
			Requirements: []string{"R26", "R30"},
			Title:        "Take the Redis master down for longer than Sentinel's down-after-milliseconds",
			Target:       fmt.Sprintf("the master as Sentinel reports it (pod %s)", orUnknown(t.RedisMasterPod)),
			Duration:     tm.MasterDown,
			Recovery:     "the prober's first acknowledged write through Sentinel after the fault (RTO), and the new master Sentinel reports",
			Kind:         KindChaos,
			Object: &v1alpha1.PodChaos{
				ObjectMeta: objectMeta(RedisMasterFailure, ns),
				Spec: v1alpha1.PodChaosSpec{
					// pod-failure keeps the master down for the whole
					// duration; a grace-0 pod-kill is back within seconds,
					// often before Sentinel's down-after-milliseconds, and
					// then no failover happens at all. Redis has no handover
					// on SIGTERM: Sentinel fails over once it declares the
					// master down.
					ContainerSelector: v1alpha1.ContainerSelector{PodSelector: v1alpha1.PodSelector{
						Selector: v1alpha1.PodSelectorSpec{
							GenericSelectorSpec: v1alpha1.GenericSelectorSpec{Namespaces: []string{ns}},
							Pods:                map[string][]string{ns: {orUnknown(t.RedisMasterPod)}},
						},
						Mode: v1alpha1.OneMode,
					}},
					Action:   v1alpha1.PodFailureAction,
					Duration: duration(tm.MasterDown),
				},
			},
		},
		{
			Name:         WebPostgresPartition,
			Requirements: []string{"R32"},
			Title:        "Partition the network between web and PostgreSQL, both directions",
			Target:       "all web pods ↔ all PostgreSQL pods",
			Duration:     tm.Partition,
			Recovery:     "user requests that need PostgreSQL succeed again after the partition heals",
			Kind:         KindChaos,
			Object: &v1alpha1.NetworkChaos{
				ObjectMeta: objectMeta(WebPostgresPartition, ns),
				Spec: v1alpha1.NetworkChaosSpec{
					PodSelector: podSelector(ns, t.Web, v1alpha1.AllMode),
					Action:      v1alpha1.PartitionAction,
					Direction:   v1alpha1.Both,
					Duration:    duration(tm.Partition),
					Target:      ptr(podSelector(ns, t.Postgres, v1alpha1.AllMode)),
				},
			},
		},
		{
			Name:         WebCPUStress,
			Requirements: []string{"R34", "R35"},
			Title:        "Exhaust CPU on the web pods",
			Target:       fmt.Sprintf("all web pods: %dm CPU more each (%s)", cpuLoad.CPUMilli, shareOf("CPU", CPUStressShare, t.WebLimits.CPUMilli > 0)),
			Duration:     tm.Stress,
			Recovery:     "availability held during the stress and the HPA reacted; the stress is only reported if the pods' CPU usage rose",
			Kind:         KindChaos,
			Stress:       &cpuLoad,
			Object: &v1alpha1.StressChaos{
				ObjectMeta: objectMeta(WebCPUStress, ns),
				Spec: v1alpha1.StressChaosSpec{
					ContainerSelector: v1alpha1.ContainerSelector{PodSelector: podSelector(ns, t.Web, v1alpha1.AllMode)},
					Stressors:         &v1alpha1.Stressors{CPUStressor: cpuStressor(cpuLoad.CPUMilli)},
					Duration:          duration(tm.Stress),
				},
			},
		},
		{
			Name:         WebMemoryStress,
			Requirements: []string{"R34"},
			Title:        "Exhaust memory on the web pods",
			Target:       fmt.Sprintf("all web pods: %d MiB more each (%s)", memLoad.MemoryBytes>>20, shareOf("memory", MemoryStressShare, t.WebLimits.MemoryBytes > 0)),
			Duration:     tm.Stress,
			Recovery:     "availability held during the stress; the stress is only reported if the pods' memory usage rose",
			Kind:         KindChaos,
			Stress:       &memLoad,
			Object: &v1alpha1.StressChaos{
				ObjectMeta: objectMeta(WebMemoryStress, ns),
				Spec: v1alpha1.StressChaosSpec{
					ContainerSelector: v1alpha1.ContainerSelector{PodSelector: podSelector(ns, t.Web, v1alpha1.AllMode)},
					Stressors: &v1alpha1.Stressors{MemoryStressor: &v1alpha1.MemoryStressor{
						Stressor: v1alpha1.Stressor{Workers: 1},
						// In bytes: the webhook reads "MB" as 10^6 and
						// "MiB" alike, so a unit would be ambiguous.
						Size: fmt.Sprintf("%dB", memLoad.MemoryBytes),
					}},
					Duration: duration(tm.Stress),
				},
			},
		},
		{
			Name:         NodeFailure,
			Requirements: []string{"R28"},
			Title:        "Stop one k3d agent node",
			Target:       fmt.Sprintf("node %s and the pods on it", orUnknown(t.Node)),
			Duration:     tm.NodeDown,
			Recovery:     "the evicted stateless pods run Ready on other nodes; the node is Ready again after it is started",
			Kind:         KindNodeFailure,
			Node:         t.Node,
		},
	}
}

// shareOf says how a stress was sized.
func shareOf(what string, share float64, known bool) string {
	if !known {
		return "the web container's " + what + " limit is not known"
	}
	return fmt.Sprintf("%.0f %% of the web container's %s limit", share*100, what)
}

// Find returns the experiment of the given name from a catalogue.
func Find(cat []Experiment, name string) (Experiment, bool) {
	for _, e := range cat {
		if e.Name == name {
			return e, true
		}
	}
	return Experiment{}, false
}

func objectMeta(name, ns string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{
		ManagedByLabel:  ManagedByValue,
		ExperimentLabel: name,
	}}
}

func podSelector(ns string, labels map[string]string, mode v1alpha1.SelectorMode) v1alpha1.PodSelector {
	return v1alpha1.PodSelector{
		Selector: v1alpha1.PodSelectorSpec{GenericSelectorSpec: v1alpha1.GenericSelectorSpec{
			Namespaces:     []string{ns},
			LabelSelectors: merge(labels, nil),
		}},
		Mode: mode,
	}
}

func merge(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func duration(d time.Duration) *string {
	s := d.String()
	return &s
}

func ptr[T any](v T) *T { return &v }

// unknownTarget stands for a target only known at run time (the Redis master,
// the node), e.g. when a plan is rendered without a cluster.
const unknownTarget = "resolved-at-run-time"

func orUnknown(s string) string {
	if s == "" {
		return unknownTarget
	}
	return s
}
