package lab

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	"github.com/docker/go-units"
	"sigs.k8s.io/yaml"

	"github.com/jewelry-shop/lab/chaosmesh"
	"github.com/jewelry-shop/lab/charts"

	"github.com/jewelry-shop/lab/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func dryRunTargets() chaosmesh.Targets {
	return chaosmesh.Targets{
		Namespace: "jewelry-shop",
		Web:       map[string]string{"app.kubernetes.io/name": "jewelry-shop", "app.kubernetes.io/component": "web"},
		Postgres:  map[string]string{"application": "spilo", "cluster-name": "jewelry-shop-db"},
	}
}

func TestBuiltinPlansFitTheirBudget(t *testing.T) {
	t.Parallel()
	cat := chaosmesh.Catalogue(dryRunTargets(), chaosmesh.DefaultTiming())
	tests := []struct {
		profile     string
		experiments int
		total       time.Duration
	}{
		{"quick", 3, 10 * time.Minute},
		{"full", 9, 38 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			t.Parallel()
			p := BuiltinProfiles()[tt.profile]
			pl, err := NewPlan(p, cat)
			if err != nil {
				t.Fatalf("NewPlan: %v", err)
			}
			if pl.Total != tt.total || pl.Total > p.Budget {
				t.Errorf("total %s, want %s within the budget %s", pl.Total, tt.total, p.Budget)
			}
			var exps []Step
			for _, s := range pl.Steps {
				if s.Kind == StepExperiment {
					exps = append(exps, s)
				}
			}
			if len(exps) != tt.experiments {
				t.Fatalf("%d experiments, want %d", len(exps), tt.experiments)
			}
			for i, s := range exps {
				want := pl.LoadStart + p.Baseline + time.Duration(i)*p.Spacing
				if s.Offset != want {
					t.Errorf("experiment %s at %s, want %s", s.Experiment.Name, s.Offset, want)
				}
				if end := s.Offset + s.Duration + settleAllowance; end > pl.LoadEnd {
					t.Errorf("experiment %s and its recovery end at %s, after the load (%s)", s.Experiment.Name, end, pl.LoadEnd)
				}
				if i > 0 {
					prev := exps[i-1]
					if prev.Offset+prev.Duration > s.Offset {
						t.Errorf("experiments %s and %s overlap", prev.Experiment.Name, s.Experiment.Name)
					}
				}
			}
		})
	}
}

func TestPlanRejects(t *testing.T) {
	t.Parallel()
	cat := chaosmesh.Catalogue(dryRunTargets(), chaosmesh.DefaultTiming())
	tests := []struct {
		name   string
		modify func(*Profile)
		want   string
	}{
		{"experiments do not fit", func(p *Profile) { p.Load = 2 * time.Minute }, "lengthen load or shorten spacing"},
		{"over budget", func(p *Profile) { p.Budget = 5 * time.Minute }, "over its budget of 5m0s"},
		{"unknown experiment", func(p *Profile) { p.Experiments = append(p.Experiments, "meteor-strike") }, `unknown experiment "meteor-strike"`},
		{"too many users", func(p *Profile) { p.Users = 5000 }, "users must be between 1 and 1000"},
		{"bad fraction", func(p *Profile) { p.Thresholds.Availability = 99 }, "thresholds.availability must be a fraction"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := BuiltinProfiles()["quick"]
			p.Experiments = append([]string(nil), p.Experiments...)
			tt.modify(&p)
			_, err := NewPlan(p, cat)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewPlan = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestDryRun(t *testing.T) {
	t.Parallel()
	settings, err := New(testConfig(t)).stackSettings(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cat := catalogue(dryRunTargets(), settings)
	for _, name := range DefaultConfig().ProfileNames() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pl, err := NewPlan(BuiltinProfiles()[name], cat)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			written, err := DryRun(t.Context(), pl, dir, "dryrun")
			if err != nil {
				t.Fatalf("DryRun: %v", err)
			}
			chaosFiles, _ := filepath.Glob(filepath.Join(dir, "chaos", "*.yaml"))
			wantChaos := 0
			for _, e := range pl.Profile.Experiments {
				if e != chaosmesh.NodeFailure {
					wantChaos++
				}
			}
			if len(chaosFiles) != wantChaos || len(written) != wantChaos+1 {
				t.Errorf("wrote %v, want plan.md and %d chaos objects", written, wantChaos)
			}
			var md bytes.Buffer
			if err := pl.WriteMarkdown(&md); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, "plan.md"))
			if err != nil || !bytes.Equal(got, md.Bytes()) {
				t.Fatalf("plan.md differs from WriteMarkdown (%v)", err)
			}
			golden.Check(t, filepath.Join("testdata", "plan-"+name+".golden.md"), got, *update)
		})
	}
}

func TestFmtDur(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0: "0s", 30 * time.Second: "30s", 90 * time.Second: "1m30s", 5 * time.Minute: "5m", time.Hour: "1h", 50 * time.Minute: "50m",
	} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestPlanServesEveryRequirement: each requirement a profile validates is
// named on the plan's row that measures it; the full profile validates all.
func TestPlanServesEveryRequirement(t *testing.T) {
	t.Parallel()
	all := []string{"R25", "R26", "R27", "R28", "R29", "R30", "R31", "R32", "R33", "R34", "R35", "no-data-loss"}
	for _, tt := range []struct {
		profile string
		want    []string
	}{
		{"quick", []string{"R25", "R26", "R27", "R29", "R30", "R31", "R33", "R35", "no-data-loss"}},
		{"full", all},
	} {
		pl, err := NewPlan(DefaultConfig().Profile(tt.profile), chaosmesh.Catalogue(chartTargets(StackNamespace, StackRelease), chaosmesh.DefaultTiming()))
		if err != nil {
			t.Fatal(err)
		}
		served := map[string]bool{}
		for _, s := range pl.Steps {
			for _, id := range s.Serves {
				served[id] = true
			}
		}
		for _, id := range all {
			if served[id] != slices.Contains(tt.want, id) {
				t.Errorf("profile %s: %s served = %v, want %v", tt.profile, id, served[id], slices.Contains(tt.want, id))
			}
		}
	}
}

// TestDryRunSizesStressesFromTheChart: the stresses lab validate --dry-run
// writes (and lab validate applies) are sized from the web container's
// limits as the chart renders them for the stack, well below them: memory
// stress lands in the container's cgroup, and usage at the limit gets the
// container OOM-killed, so the experiment would measure a crash; CPU at the
// limit only throttles and hides in the usage.
func TestDryRunSizesStressesFromTheChart(t *testing.T) {
	t.Parallel()
	for _, stack := range charts.Profiles() {
		t.Run(stack, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			cfg.Stack.Profile = stack
			l := New(cfg)
			settings, err := l.stackSettings(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			limits := settings.Web
			if limits.MemoryLimitBytes == 0 || limits.CPULimitMilli == 0 {
				t.Fatalf("the chart renders no web limits: %+v", limits)
			}
			dir := t.TempDir()
			if _, err := l.ValidateDryRun(t.Context(), ValidateOptions{Profile: "full", Out: dir}); err != nil {
				t.Fatal(err)
			}
			read := func(name string) *v1alpha1.StressChaos {
				b, err := os.ReadFile(filepath.Join(dir, "chaos", name+".yaml"))
				if err != nil {
					t.Fatal(err)
				}
				var sc v1alpha1.StressChaos
				if err := yaml.UnmarshalStrict(b, &sc); err != nil {
					t.Fatal(err)
				}
				return &sc
			}
			mem := read(chaosmesh.WebMemoryStress).Spec.Stressors.MemoryStressor
			size, err := units.RAMInBytes(mem.Size)
			if err != nil {
				t.Fatalf("memory stress size %q: %v", mem.Size, err)
			}
			if total := size * int64(mem.Workers); total <= 0 || total > limits.MemoryLimitBytes/2 {
				t.Errorf("memory stress of %d × %s against a limit of %d MiB: want at most half the limit", mem.Workers, mem.Size, limits.MemoryLimitBytes>>20)
			}
			cpu := read(chaosmesh.WebCPUStress).Spec.Stressors.CPUStressor
			if milli := int64(cpu.Workers) * int64(*cpu.Load) * 10; milli <= 0 || milli > limits.CPULimitMilli*6/10 {
				t.Errorf("CPU stress of %d workers at %d %% (%dm) against a limit of %dm: want well below the limit", cpu.Workers, *cpu.Load, milli, limits.CPULimitMilli)
			}
		})
	}
}

// TestLeadersOutliveTheirFailoverTimers: the catalogue lab builds takes the
// PostgreSQL primary down (stopped, and cut off without a handover) for
// longer than the deployed Patroni ttl + loop_wait, and the Redis master
// for longer than Sentinel's down-after-milliseconds, also when the chart's
// timers are longer than the default hold; a leader back before them is a
// restart, not the failover the report is about.
func TestLeadersOutliveTheirFailoverTimers(t *testing.T) {
	t.Parallel()
	rendered, err := New(testConfig(t)).stackSettings(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	slow := rendered
	slow.Patroni.TTL, slow.Patroni.LoopWait, slow.Sentinel.DownAfter = 80*time.Second, 10*time.Second, 40*time.Second
	for name, s := range map[string]charts.ShopSettings{"chart": rendered, "slow timers": slow} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cat := catalogue(dryRunTargets(), s)
			for exp, least := range map[string]time.Duration{
				chaosmesh.PostgresPrimaryFailure:   s.Patroni.TTL + s.Patroni.LoopWait,
				chaosmesh.PostgresPrimaryIsolation: s.Patroni.TTL + s.Patroni.LoopWait,
				chaosmesh.RedisMasterFailure:       s.Sentinel.DownAfter,
			} {
				e, ok := chaosmesh.Find(cat, exp)
				if !ok {
					t.Fatalf("no experiment %s", exp)
				}
				if e.Duration <= least || e.OneShot() {
					t.Errorf("%s held %s, want more than %s", exp, e.Duration, least)
				}
				if faultTakedown(exp) == "" {
					t.Errorf("%s: no takedown for the report's path", exp)
				}
				if err := chaosmesh.Validate(t.Context(), e); err != nil {
					t.Error(err)
				}
			}
		})
	}
}
