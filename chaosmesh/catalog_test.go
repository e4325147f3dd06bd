package chaosmesh

import (
	"context"
	"errors"
	"flag"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chaos-mesh/chaos-mesh/api/v1alpha1"

	"github.com/jewelry-shop/lab/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func testTargets() Targets {
	return Targets{
		Namespace:      "jewelry-shop",
		Web:            map[string]string{"app.kubernetes.io/name": "jewelry-shop", "app.kubernetes.io/component": "web"},
		Postgres:       map[string]string{"application": "spilo", "cluster-name": "jewelry-shop-db"},
		RedisMasterPod: "jewelry-shop-redis-1",
		Node:           "k3d-jewelry-shop-agent-1",
		WebLimits:      Load{CPUMilli: 500, MemoryBytes: 256 << 20},
	}
}

// TestStressSizedFromLimits: the stresses add a share of the web
// container's limits, well below them, and say so in their target.
func TestStressSizedFromLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name               string
		limits             Load
		workers, load      int
		size               string
		cpuTarget, memText string
	}{
		{"quick", Load{CPUMilli: 500, MemoryBytes: 256 << 20}, 1, 25, "106954752B", "250m CPU more each (50 %", "102 MiB more each (40 %"},
		{"two cores", Load{CPUMilli: 3000, MemoryBytes: 1 << 30}, 2, 75, "428867584B", "1500m CPU more each", "409 MiB more each"},
		{"no limits known", Load{}, 1, 25, "67108864B", "limit is not known", "limit is not known"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg := testTargets()
			tg.WebLimits = tt.limits
			cat := Catalogue(tg, DefaultTiming())
			cpuExp, _ := Find(cat, WebCPUStress)
			memExp, _ := Find(cat, WebMemoryStress)
			cpu := cpuExp.Object.(*v1alpha1.StressChaos).Spec.Stressors.CPUStressor
			mem := memExp.Object.(*v1alpha1.StressChaos).Spec.Stressors.MemoryStressor
			if cpu.Workers != tt.workers || *cpu.Load != tt.load || mem.Size != tt.size {
				t.Errorf("CPU %d workers at %d %%, memory %s; want %d at %d %%, %s", cpu.Workers, *cpu.Load, mem.Size, tt.workers, tt.load, tt.size)
			}
			if !strings.Contains(cpuExp.Target, tt.cpuTarget) || !strings.Contains(memExp.Target, tt.memText) {
				t.Errorf("targets %q, %q; want them to say %q, %q", cpuExp.Target, memExp.Target, tt.cpuTarget, tt.memText)
			}
			if cpuExp.Stress == nil || memExp.Stress == nil || cpuExp.Stress.CPUMilli != int64(tt.workers*tt.load*10) {
				t.Errorf("stress loads %+v, %+v", cpuExp.Stress, memExp.Stress)
			}
			for _, e := range []Experiment{cpuExp, memExp} {
				if err := Validate(t.Context(), e); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestCatalogueValidates(t *testing.T) {
	t.Parallel()
	cat := Catalogue(testTargets(), DefaultTiming())
	seen := map[string]bool{}
	for _, e := range cat {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel()
			if err := Validate(context.Background(), e); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if len(e.Requirements) == 0 || e.Title == "" || e.Target == "" || e.Recovery == "" {
				t.Errorf("incomplete entry: %+v", e)
			}
		})
		if seen[e.Name] {
			t.Errorf("duplicate catalogue name %s", e.Name)
		}
		seen[e.Name] = true
	}
	for _, want := range []string{PostgresPrimaryFailure, PostgresPrimaryIsolation, RedisMasterFailure, WebPodKill, WebPodFailure, WebPostgresPartition, WebCPUStress, WebMemoryStress, NodeFailure} {
		if !seen[want] {
			t.Errorf("catalogue lacks %s", want)
		}
	}
}

// TestLeaderFaultsOutliveFailoverTimers guards the pitfall that a leader
// taken down for less than the failover's timers comes back before any
// failover: the PostgreSQL primary must stay down (stopped, or cut off) for
// longer than the 30 s of ttl + loop_wait that the chart's policy allows,
// the Redis master for longer than Sentinel's down-after-milliseconds (at
// most 10 s by the chart's policy). The isolation drops every packet the
// primary sends, so that nothing releases its leader key.
func TestLeaderFaultsOutliveFailoverTimers(t *testing.T) {
	t.Parallel()
	cat := Catalogue(testTargets(), DefaultTiming())
	held := func(name string, d *string) time.Duration {
		t.Helper()
		if d == nil {
			t.Fatalf("%s: no duration: a one-shot kill comes back before any failover", name)
		}
		v, err := time.ParseDuration(*d)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	stop, _ := Find(cat, PostgresPrimaryFailure)
	pc := stop.Object.(*v1alpha1.PodChaos)
	if pc.Spec.Action != v1alpha1.PodFailureAction || held(stop.Name, pc.Spec.Duration) <= 30*time.Second || pc.Spec.Selector.LabelSelectors["spilo-role"] != "master" {
		t.Errorf("%s = %s for %v on %v, want pod-failure of the primary for more than 30 s", stop.Name, pc.Spec.Action, pc.Spec.Duration, pc.Spec.Selector.LabelSelectors)
	}
	iso, ok := Find(cat, PostgresPrimaryIsolation)
	if !ok {
		t.Fatal("no failure of the primary without a graceful handover")
	}
	nc := iso.Object.(*v1alpha1.NetworkChaos)
	if nc.Spec.Action != v1alpha1.LossAction || nc.Spec.Loss == nil || nc.Spec.Loss.Loss != "100" || nc.Spec.Direction != v1alpha1.To || nc.Spec.Target != nil ||
		nc.Spec.Selector.LabelSelectors["spilo-role"] != "master" || nc.Spec.Mode != v1alpha1.OneMode {
		t.Errorf("%s = %+v, want every packet the primary sends dropped", iso.Name, nc.Spec)
	}
	if d := held(iso.Name, nc.Spec.Duration); d <= 30*time.Second || iso.Duration != d {
		t.Errorf("%s held %s (experiment says %s), want more than 30 s", iso.Name, d, iso.Duration)
	}
	redis, _ := Find(cat, RedisMasterFailure)
	rc := redis.Object.(*v1alpha1.PodChaos)
	if rc.Spec.Action != v1alpha1.PodFailureAction || held(redis.Name, rc.Spec.Duration) <= 10*time.Second || redis.OneShot() {
		t.Errorf("%s = %s for %v, want the master held down for more than 10 s", redis.Name, rc.Spec.Action, rc.Spec.Duration)
	}
}

func TestValidateRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		exp    string
		modify func(*Experiment)
		want   error
		text   string
	}{
		{"duration forever", WebPodFailure, func(e *Experiment) {
			e.Object.(*v1alpha1.PodChaos).Spec.Duration = ptr("forever")
		}, nil, "rejected by Chaos Mesh's validation"},
		{"container kill without container", WebPodKill, func(e *Experiment) {
			e.Object.(*v1alpha1.PodChaos).Spec.Action = v1alpha1.ContainerKillAction
		}, nil, "container is required"},
		{"selector with a second namespace", WebPodKill, func(e *Experiment) {
			e.Object.(*v1alpha1.PodChaos).Spec.Selector.Namespaces = []string{"jewelry-shop", "default"}
		}, ErrOutOfScope, "default"},
		{"object without namespace", WebPodKill, func(e *Experiment) {
			e.Object.SetNamespace("")
			e.Object.(*v1alpha1.PodChaos).Spec.Selector.Namespaces = nil
		}, ErrOutOfScope, "no namespace"},
		{"selector in another namespace", WebCPUStress, func(e *Experiment) {
			e.Object.(*v1alpha1.StressChaos).Spec.Selector.Namespaces = []string{"kube-system"}
		}, ErrOutOfScope, "kube-system"},
		{"partition target in another namespace", WebPostgresPartition, func(e *Experiment) {
			e.Object.(*v1alpha1.NetworkChaos).Spec.Target.Selector.Namespaces = []string{"default"}
		}, ErrOutOfScope, "Target"},
		{"pods of another namespace", RedisMasterFailure, func(e *Experiment) {
			e.Object.(*v1alpha1.PodChaos).Spec.Selector.Pods = map[string][]string{"default": {"x"}}
		}, ErrOutOfScope, "default"},
		{"node failure without node", NodeFailure, func(e *Experiment) { e.Node = "" }, nil, "no node"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, ok := Find(Catalogue(testTargets(), DefaultTiming()), tt.exp)
			if !ok {
				t.Fatalf("no experiment %s", tt.exp)
			}
			tt.modify(&e)
			err := Validate(context.Background(), e)
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Validate = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("Validate = %v, want it to contain %q", err, tt.text)
			}
		})
	}
}

// TestRender compares each experiment's YAML, as --dry-run writes it, with
// testdata/<name>.golden.yaml (go test -update rewrites them).
func TestRender(t *testing.T) {
	t.Parallel()
	for _, e := range Catalogue(testTargets(), DefaultTiming()) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel()
			got, ok, err := Render(e, "run1")
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				if e.Kind != KindNodeFailure {
					t.Fatalf("%s rendered nothing", e.Name)
				}
				return
			}
			golden.Check(t, filepath.Join("testdata", e.Name+".golden.yaml"), got, *update)
		})
	}
}

// TestStressSelector: the runner reads a stress's pods through the
// experiment, without Chaos Mesh's types.
func TestStressSelector(t *testing.T) {
	t.Parallel()
	cat := Catalogue(testTargets(), DefaultTiming())
	for _, tt := range []struct {
		name   string
		stress bool
		kind   string
	}{
		{WebCPUStress, true, "StressChaos"},
		{WebMemoryStress, true, "StressChaos"},
		{WebPodKill, false, "PodChaos"},
		{NodeFailure, false, ""},
	} {
		e, ok := Find(cat, tt.name)
		if !ok {
			t.Fatalf("no experiment %s", tt.name)
		}
		ns, labels, stress := e.StressSelector()
		if stress != tt.stress || (stress && (ns != "jewelry-shop" || len(labels) == 0)) {
			t.Errorf("%s: StressSelector = %q, %v, %v; want stress %v in jewelry-shop", tt.name, ns, labels, stress, tt.stress)
		}
		if got := e.ObjectKind(); got != tt.kind {
			t.Errorf("%s: ObjectKind = %q, want %q", tt.name, got, tt.kind)
		}
	}
}
