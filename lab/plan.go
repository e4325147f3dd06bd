package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jewelry-shop/lab/chaosmesh"
)

// Step kinds of a validation plan.
const (
	StepPreflight  = "preflight"
	StepBaseline   = "baseline"
	StepLoad       = "load"
	StepExperiment = "experiment"
	StepScaleDown  = "scale-down watch"
	StepCollect    = "collection"
	StepReport     = "cleanup and report"
)

// Fixed time allowances of the steps around the load.
const (
	preflightAllowance = time.Minute
	collectAllowance   = 30 * time.Second
	reportAllowance    = 30 * time.Second
	// settleAllowance is the time after the last fault ends during which its
	// recovery is still observed under load.
	settleAllowance = time.Minute
)

// Step is one step of a validation plan. Offset is from the start of the run.
type Step struct {
	Kind     string
	Name     string
	Offset   time.Duration
	Duration time.Duration
	// Serves names the requirements the step's measurements judge.
	Serves     []string
	Experiment *chaosmesh.Experiment `json:"-"`
}

// Plan is the timed sequence of steps of one validation run.
type Plan struct {
	Profile Profile
	Steps   []Step
	// LoadStart and LoadEnd are offsets from the start of the run.
	LoadStart, LoadEnd time.Duration
	Total              time.Duration
}

// NewPlan lays out the profile's steps on one timeline: preflight, load with
// a fault-free baseline, experiments Spacing apart under load, the scale-down
// watch after the load, collection and report. It fails when the experiments
// do not fit into the load or the whole run not into the profile's budget.
func NewPlan(p Profile, cat []chaosmesh.Experiment) (*Plan, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	pl := &Plan{Profile: p}
	at := time.Duration(0)
	add := func(kind, name string, d time.Duration, e *chaosmesh.Experiment, serves ...string) {
		if e != nil {
			serves = e.Requirements
		}
		pl.Steps = append(pl.Steps, Step{Kind: kind, Name: name, Offset: at, Duration: d, Serves: serves, Experiment: e})
	}
	add(StepPreflight, "preflight: lab ready, Chaos Mesh ready, metrics API available, leftovers swept", preflightAllowance, nil)
	at += preflightAllowance
	pl.LoadStart = at
	// Under the load: the users' latency and errors (R25), availability
	// over the whole run (R31), the health endpoint polled (R33), the HPA
	// scaling up (R35).
	add(StepLoad, fmt.Sprintf("load: %d users (spawn %.0f/s) for %s; health endpoint polled, HPA watched", p.Users, p.SpawnRate, fmtDur(p.Load)), p.Load, nil, "R25", "R31", "R33", "R35")
	add(StepBaseline, "baseline without faults", p.Baseline, nil, "R25", "R31")
	var errs []error
	lastEnd := at + p.Baseline
	for i, name := range p.Experiments {
		e, ok := chaosmesh.Find(cat, name)
		if !ok {
			errs = append(errs, fmt.Errorf("profile %s: experiment %q is not in the catalogue", p.Name, name))
			continue
		}
		off := pl.LoadStart + p.Baseline + time.Duration(i)*p.Spacing
		at = off
		add(StepExperiment, e.Title, e.Duration, &e)
		if end := off + e.Duration + settleAllowance; end > lastEnd {
			lastEnd = end
		}
	}
	pl.LoadEnd = pl.LoadStart + p.Load
	if lastEnd > pl.LoadEnd {
		errs = append(errs, fmt.Errorf("profile %s: the experiments and their recovery need the load until %s after its start, but it runs %s: lengthen load or shorten spacing",
			p.Name, lastEnd-pl.LoadStart, p.Load))
	}
	at = pl.LoadEnd
	add(StepScaleDown, "load stopped; watch the HPA return to its minimum", p.ScaleDownWatch, nil, "R35")
	at += p.ScaleDownWatch
	add(StepCollect, "collect the prober's verification and the live workloads' probes", collectAllowance, nil, "no-data-loss", "R33")
	at += collectAllowance
	add(StepReport, "remove every experiment, write the report", reportAllowance, nil)
	at += reportAllowance
	pl.Total = at
	if pl.Total > p.Budget {
		errs = append(errs, fmt.Errorf("profile %s: the plan takes %s, over its budget of %s", p.Name, pl.Total, p.Budget))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return pl, nil
}

// WriteMarkdown writes the plan as a Markdown table.
func (pl *Plan) WriteMarkdown(w io.Writer) error {
	p := pl.Profile
	var b strings.Builder
	fmt.Fprintf(&b, "# Validation plan: profile %s\n\n%s.\n\n", p.Name, p.Description)
	fmt.Fprintf(&b, "Total %s of a budget of %s. Load from %s to %s.\n\n", fmtDur(pl.Total), fmtDur(p.Budget), fmtDur(pl.LoadStart), fmtDur(pl.LoadEnd))
	b.WriteString("| at | for | step | serves | target |\n|---:|---:|---|---|---|\n")
	for _, s := range pl.Steps {
		serves, target := strings.Join(s.Serves, ", "), ""
		if s.Experiment != nil {
			target = s.Experiment.Target
		}
		dur := fmtDur(s.Duration)
		if s.Kind == StepExperiment && s.Duration == 0 {
			dur = "one-shot"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", fmtDur(s.Offset), dur, s.Name, serves, target)
	}
	t := p.Thresholds
	fmt.Fprintf(&b, "\nThresholds: p95 < %s; error rate outside fault windows < %.1f %%, inside < %.0f %%; availability ≥ %.2f %%; failover < %s; web replicas back within %s; evicted pods elsewhere within %s; recovery after partition within %s; scale-down within %s",
		fmtDur(t.P95), t.ErrorRateOutside*100, t.ErrorRateInside*100, t.Availability*100, fmtDur(t.Failover), fmtDur(t.PodRecovery), fmtDur(t.NodeRecovery), fmtDur(t.PartitionRecovery), fmtDur(t.ScaleDown))
	if p.RequireHPAMax {
		b.WriteString("; the HPA must reach its maximum under load")
	}
	b.WriteString(".\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// DryRun writes the plan to <dir>/plan.md and every Chaos Mesh object it
// would create to <dir>/chaos/<name>.yaml, touching no cluster.
func DryRun(ctx context.Context, pl *Plan, dir, runID string) ([]string, error) {
	if err := os.MkdirAll(filepath.Join(dir, "chaos"), 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	var written []string
	planFile := filepath.Join(dir, "plan.md")
	f, err := os.Create(planFile)
	if err != nil {
		return nil, fmt.Errorf("write plan: %w", err)
	}
	if err := pl.WriteMarkdown(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", planFile, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write %s: %w", planFile, err)
	}
	written = append(written, planFile)
	for _, s := range pl.Steps {
		if s.Experiment == nil || s.Experiment.Kind != chaosmesh.KindChaos {
			continue // node failure is no Chaos Mesh object; its node is chosen at run time
		}
		if err := chaosmesh.Validate(ctx, *s.Experiment); err != nil {
			return written, err
		}
		y, ok, err := chaosmesh.Render(*s.Experiment, runID)
		if err != nil {
			return written, err
		}
		if !ok {
			continue
		}
		path := filepath.Join(dir, "chaos", s.Experiment.Name+".yaml")
		if err := os.WriteFile(path, y, 0o644); err != nil {
			return written, fmt.Errorf("write %s: %w", path, err)
		}
		written = append(written, path)
	}
	return written, nil
}

// fmtDur prints a duration the way people write it: 1m30s, 10m, 45s, 1h.
func fmtDur(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
