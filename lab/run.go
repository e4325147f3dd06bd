package lab

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jewelry-shop/lab/chaosmesh"
	"github.com/jewelry-shop/lab/lab/judge"
	"github.com/jewelry-shop/lab/reports"
)

// execution is one run of a plan: the observation it fills step by step,
// the faults of its experiment steps, and what must happen on every path
// once the load started (cleanups, in reverse).
type execution struct {
	r      *Runner
	pl     *Plan
	o      *judge.Observation
	faults map[int]*faultRun // by step index
	// base is the real time the load started; experiments are placed
	// relative to it.
	base time.Time
	prev *faultRun
	// finally runs, in reverse, once the loop over the steps ended.
	finally cleanups
	// done marks the steps whose work is done, so a cleanup does not do
	// it twice.
	loadStopped, observing, collected, probesRead, swept bool
	stopLoad                                             func()
	stopObservers                                        func()
	errs                                                 []error
	// plog is the prober's record as read so far; proberErr and
	// verifyErr the last failed read.
	plog                 proberLog
	proberErr, verifyErr error
}

// faultRun is one experiment step and the fault it records.
type faultRun struct {
	exp chaosmesh.Experiment
	f   *judge.Fault
}

// Run executes the plan's steps in order, one loop over their kinds:
// preflight, the load (in the background) with a fault-free baseline and
// every experiment at its offset under it, the scale-down watch, the
// collection of the prober's figures, and the report's probes and sweep. It
// always returns the report of what it measured. When a step stops the run
// (the preflight fails, ctx is cancelled) the steps left are marked not run
// in one place, and what the run started is stopped and removed on every
// path: the observers and the load, every applied fault (each removal
// bounded by UndoTimeout, whatever ctx says), leftovers swept. The error
// joins the stop and every failed removal.
func (r *Runner) Run(ctx context.Context, pl *Plan) (*reports.Run, error) {
	x := r.newExecution(pl)
	var stopped error
	for i, s := range pl.Steps {
		err := ctx.Err()
		if err == nil {
			err = x.step(ctx, i, s)
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil { // before the step, or before it could do its work
			stopped = fmt.Errorf("validation interrupted: %w", ctx.Err())
			x.notRun(i, "the run was interrupted")
		} else {
			stopped = err
			x.notRun(i+1, "the preflight failed")
		}
		break
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.UndoTimeout+r.cfg.CollectTimeout)
	defer cancel()
	x.errs = append(x.errs, x.finally.run(cctx))
	if stopped == nil && ctx.Err() != nil {
		stopped = fmt.Errorf("validation interrupted: %w", ctx.Err())
	}
	x.o.Stopped = stopped
	x.o.Finished = r.cfg.Now()
	return judge.Judge(x.o, pl.Profile.Criteria()), errors.Join(append(x.errs, stopped)...)
}

func (r *Runner) newExecution(pl *Plan) *execution {
	x := &execution{r: r, pl: pl, faults: map[int]*faultRun{}, o: &judge.Observation{
		Title: r.cfg.Title, Profile: pl.Profile.Name, Seed: r.cfg.Seed, Environment: r.cfg.Environment,
		Started: r.cfg.Now(), Sustain: r.cfg.Sustain,
		Settings: r.cfg.Settings, SettingsWhy: r.cfg.SettingsWhy,
	}}
	for i, s := range pl.Steps {
		if s.Kind == StepExperiment && s.Experiment != nil {
			fr := &faultRun{exp: *s.Experiment, f: r.newFault(*s.Experiment)}
			x.faults[i] = fr
			x.o.Faults = append(x.o.Faults, fr.f)
		}
	}
	return x
}

// step runs one step. It fails when the preflight fails, or when ctx ends
// before the step could do its work (the step is then marked not run with
// the rest); a step that did its work returns nil, whatever ctx says.
func (x *execution) step(ctx context.Context, i int, s Step) error {
	r, o := x.r, x.o
	switch s.Kind {
	case StepPreflight:
		o.Reached = StepPreflight
		return x.preflight(ctx)
	case StepLoad:
		o.Reached = StepLoad
		x.startLoad(ctx)
	case StepBaseline:
		// The baseline is the load's fault-free start: the first
		// experiment's offset leaves it untouched.
	case StepExperiment:
		fr := x.faults[i]
		if fr == nil {
			return nil
		}
		if why := r.cfg.NotRun[fr.exp.Name]; why != "" {
			fr.f.NotRun = why
			r.event(s.Experiment.Name + ": not run")
			return nil
		}
		if !sleepUntil(ctx, x.base.Add(r.scale(s.Offset-x.pl.LoadStart))) {
			return ctx.Err()
		}
		x.readAfter(ctx, x.prev)
		r.leaderAfter(ctx, x.prev)
		o.Reached = s.Name
		r.event(s.Experiment.Name)
		r.leaderBefore(ctx, fr)
		if err := r.experiment(ctx, fr); err != nil {
			x.errs = append(x.errs, err)
		}
		x.prev = fr
	case StepScaleDown:
		x.waitLoad(ctx)
		o.Reached = StepScaleDown
		r.cfg.Progress.Start(fmt.Sprintf("Watching the scale-down for %s", r.scale(x.pl.Profile.ScaleDownWatch)))
		o.ScaleDownWatched = sleepUntil(ctx, time.Now().Add(r.scale(x.pl.Profile.ScaleDownWatch)))
		r.cfg.Progress.End(ctx.Err())
		x.endObservers()
		if !o.ScaleDownWatched {
			return ctx.Err()
		}
	case StepCollect:
		o.Reached = StepCollect
		x.collect(ctx)
	case StepReport:
		o.Reached = StepReport
		x.readProbes(ctx)
		if err := x.sweep(ctx); err != nil {
			x.errs = append(x.errs, err)
		}
	}
	return nil
}

// preflight checks what the run needs, starting with its own wiring.
func (x *execution) preflight(ctx context.Context) error {
	r := x.r
	r.cfg.Progress.Start("Preflight")
	err := r.cfg.unwiredError(x.pl)
	if err == nil && r.cfg.Preflight != nil {
		err = r.cfg.Preflight(ctx)
	}
	r.cfg.Progress.End(err)
	if err != nil {
		return fmt.Errorf("preflight: %w", err)
	}
	return nil
}

func (c RunnerConfig) unwiredError(pl *Plan) error {
	if missing := c.unwired(pl); len(missing) > 0 {
		return fmt.Errorf("lab wired this validation without its %s, and without saying why: this is a bug in lab, please report it", strings.Join(missing, ", "))
	}
	return nil
}

// notRun marks the steps from the index on not run, and why, in one
// place: the experiments, the load, the scale-down watch and the
// collection (of which only the prober's verification is lost once the
// load ran: its timeline is still read).
func (x *execution) notRun(from int, why string) {
	o := x.o
	for i, s := range x.pl.Steps[from:] {
		switch s.Kind {
		case StepExperiment:
			if fr := x.faults[from+i]; fr != nil && fr.f.NotRun == "" {
				fr.f.NotRun = why
				if o.LoadRan {
					fr.f.NotRun = why + " before this experiment"
				}
			}
		case StepLoad, StepScaleDown:
			o.NotRun = append(o.NotRun, reports.Skipped{Name: s.Kind, Reason: why})
		case StepCollect:
			name := StepCollect
			o.VerifyWhy = why
			if o.LoadRan {
				name += ": prober verification"
				o.VerifyWhy = "the run was interrupted before the collection"
			}
			o.NotRun = append(o.NotRun, reports.Skipped{Name: name, Reason: why})
		}
	}
}
