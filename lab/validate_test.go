package lab

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jewelry-shop/lab/cluster"
	"github.com/jewelry-shop/lab/reports"
)

// TestValidateRefuses: a run that cannot start (no lab, a foreign cluster,
// an unreachable API) still writes its report, which says why and marks
// every step not run, with exit code 2; an unknown profile is a usage error
// that writes nothing.
func TestValidateRefuses(t *testing.T) {
	t.Parallel()
	foreign := healthy("jewelry-shop")
	foreign.Managed = false
	unreachable := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(unreachable, []byte(`apiVersion: v1
kind: Config
clusters: [{name: staging, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: me, user: {token: x}}]
contexts: [{name: staging, context: {cluster: staging, user: me}}]
current-context: staging
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		existing *cluster.Info
		opts     ValidateOptions
		want     string
		report   bool
		config   func(*Config)
	}{
		{"no lab", nil, ValidateOptions{Profile: "quick"}, "bring it up first with `lab up`", true, nil},
		{"foreign cluster", foreign, ValidateOptions{Profile: "quick"}, "--allow-chaos-on-foreign-cluster", true, nil},
		{"unreachable API", nil, ValidateOptions{Profile: "quick", Kubeconfig: unreachable, Target: "http://127.0.0.1:1", AllowForeignCluster: true}, "127.0.0.1:1", true, nil},
		{"unknown profile", healthy("jewelry-shop"), ValidateOptions{Profile: "soak"}, `no profile "soak"`, false, nil},
		{"a plan that does not fit its load", nil, ValidateOptions{Profile: "short"}, "bring it up first", true, func(c *Config) {
			p := c.Profiles["quick"]
			p.Load, p.Spacing = 2*time.Minute, time.Minute
			c.Profiles["short"] = p
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.opts.Out = filepath.Join(t.TempDir(), "report")
			fc := &fakeClusters{existing: tt.existing}
			cfg := testConfig(t)
			if tt.config != nil {
				tt.config(&cfg)
			}
			res, err := newTestLab(cfg, fc, &fakeNodes{}, &recorder{}).Validate(context.Background(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate error = %v, want one containing %q", err, tt.want)
			}
			if !tt.report {
				if res != nil {
					t.Errorf("Validate = %+v, want no result", res)
				}
				return
			}
			if res == nil || res.ExitCode != 2 || res.Report.Progress.Completed {
				t.Fatalf("Validate = %+v, want the report of a run that could not start, exit code 2", res)
			}
			for _, f := range []string{"report.md", "report.json", "report.xml"} {
				if _, err := os.Stat(filepath.Join(tt.opts.Out, f)); err != nil {
					t.Errorf("no %s: %v", f, err)
				}
			}
			md, _ := os.ReadFile(filepath.Join(tt.opts.Out, "report.md"))
			if !strings.Contains(string(md), tt.want) || !strings.Contains(string(md), "not run") {
				t.Errorf("report.md does not say why the run did not start (%q) or what did not run:\n%s", tt.want, md)
			}
			for _, q := range res.Report.Requirements {
				if q.Status == reports.Pass || q.Status == reports.Fail {
					t.Errorf("%s is %s in a run that did not start", q.ID, q.Status)
				}
			}
		})
	}
}

// recordingStopper records the nodes started.
type recordingStopper struct{ started []string }

func (r *recordingStopper) StopNode(context.Context, string, string) error { return nil }
func (r *recordingStopper) StartNode(_ context.Context, _, node string) error {
	r.started = append(r.started, node)
	return nil
}

func TestStartStoppedNodes(t *testing.T) {
	t.Parallel()
	info := healthy("jewelry-shop")
	info.Nodes[1].Running, info.Nodes[1].Status = false, "exited"
	rs := &recordingStopper{}
	l := newTestLab(testConfig(t), &fakeClusters{}, &fakeNodes{}, &recorder{})
	l.stopper = rs
	if err := l.startStoppedNodes(context.Background(), info); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"k3d-jewelry-shop-agent-1"}, rs.started); diff != "" {
		t.Errorf("started (-want +got):\n%s", diff)
	}
}

func TestValidationTargetOfAnotherCluster(t *testing.T) {
	t.Parallel()
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: staging, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: me, user: {token: x}}]
contexts: [{name: staging, context: {cluster: staging, user: me}}, {name: other, context: {cluster: staging, user: me}}]
current-context: other
`), 0o600); err != nil {
		t.Fatal(err)
	}
	l := newTestLab(testConfig(t), &fakeClusters{}, &fakeNodes{}, &recorder{})
	tests := []struct {
		name string
		opts ValidateOptions
		want string
	}{
		{"needs the chaos flag", ValidateOptions{Kubeconfig: kc, Target: "http://127.0.0.1:8080"}, "--allow-chaos-on-foreign-cluster"},
		{"needs the shop URL", ValidateOptions{Kubeconfig: kc, AllowForeignCluster: true}, "--target"},
		{"unknown context", ValidateOptions{Kubeconfig: kc, Context: "prod", Target: "http://127.0.0.1:8080", AllowForeignCluster: true}, "[other staging]"},
	}
	for _, tt := range tests {
		if _, err := l.validationTarget(context.Background(), tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
	tg, err := l.validationTarget(context.Background(), ValidateOptions{Kubeconfig: kc, Context: "staging", Target: "http://127.0.0.1:8080", AllowForeignCluster: true})
	if err != nil {
		t.Fatal(err)
	}
	if tg.name != "staging" || tg.lab != nil || tg.stopper != nil || tg.shopHost != "127.0.0.1" {
		t.Errorf("target %+v", tg)
	}
}

func TestValidateCompareNeedsAReport(t *testing.T) {
	t.Parallel()
	l := newTestLab(testConfig(t), &fakeClusters{existing: healthy("jewelry-shop")}, &fakeNodes{}, &recorder{})
	_, err := l.Validate(context.Background(), ValidateOptions{Profile: "quick", Compare: filepath.Join(t.TempDir(), "nope.json")})
	if err == nil || !strings.Contains(err.Error(), "--compare") || !strings.Contains(err.Error(), "report.json") {
		t.Fatalf("Validate = %v, want an error about --compare", err)
	}
}

// TestNotStartedWithoutAPlan: a run that cannot start because its profile's
// plan does not fit still reports why it stopped, instead of a completed run
// of nothing.
func TestNotStartedWithoutAPlan(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	p := cfg.Profiles["quick"]
	p.Name, p.Load, p.Spacing = "short", 2*time.Minute, time.Minute
	l := newTestLab(cfg, &fakeClusters{}, &fakeNodes{}, &recorder{})
	why := errors.New("profile short: the experiments and their recovery need the load until 4m0s after its start")
	rc, pl := l.notStarted(t.Context(), validationRun{profile: p, runID: "x", now: time.Now}, why, true)
	run, err := NewRunner(rc).Run(t.Context(), pl)
	if !errors.Is(err, why) {
		t.Errorf("Run error = %v, want %v", err, why)
	}
	if run.Progress.Completed || !strings.Contains(run.Progress.Error, "need the load until") {
		t.Errorf("progress %+v, want stopped with the plan's error", run.Progress)
	}
	if _, ok := run.Environment["k3s image"]; ok {
		t.Errorf("the environment of a foreign cluster's run names lab's k3s image: %v", run.Environment)
	}
}

// TestWriteReports writes the Markdown, JSON and JUnit reports and, beside
// them, an SVG of every chart the Markdown links to.
func TestWriteReports(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	run := &reports.Run{Title: "t", Profile: "quick", Started: t0, Finished: t0.Add(time.Minute), Progress: reports.Progress{Completed: true}}
	for _, id := range []string{"rps", "p95", "failures"} {
		c := reports.Chart{ID: id, Title: id, Unit: "x", Aggregate: "mean"}
		for s := 0; s < 60; s++ {
			c.Points = append(c.Points, reports.Point{At: t0.Add(time.Duration(s) * time.Second), Value: float64(s)})
		}
		run.Charts = append(run.Charts, c)
	}
	dir := t.TempDir()
	files, err := writeReports(t.Context(), dir, run)
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	var svgs int
	for _, f := range files {
		if filepath.Ext(f) != ".svg" {
			continue
		}
		svgs++
		rel, _ := filepath.Rel(dir, f)
		if !strings.Contains(string(md), "("+filepath.ToSlash(rel)+")") {
			t.Errorf("report.md does not link to %s", rel)
		}
	}
	if svgs == 0 {
		t.Errorf("no chart SVG among %v", files)
	}
}
