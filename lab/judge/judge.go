package judge

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jewelry-shop/lab/lab/measure"
	"github.com/jewelry-shop/lab/reports"
)

// Judge maps what a run observed into its report: the figures of every
// fault, the availability and load summaries, the autoscaling and the
// requirement matrix judged by the profile's criteria.
func Judge(o *Observation, crit Criteria) *reports.Run {
	run := &reports.Run{
		Title:        o.Title,
		Profile:      o.Profile,
		Seed:         o.Seed,
		Started:      o.Started.UTC(),
		Finished:     o.Finished.UTC(),
		Progress:     reports.Progress{Completed: o.Stopped == nil, Reached: o.Reached},
		Environment:  maps.Clone(o.Environment),
		NotRun:       slices.Clone(o.NotRun),
		HealthChecks: slices.Clone(o.Probes),
	}
	if run.Environment == nil {
		run.Environment = map[string]string{}
	}
	if o.Stopped != nil {
		run.Progress.Error = o.Stopped.Error()
	}
	d := newData(o)
	figs := measureAll(o, d)
	var windows []measure.Window
	for _, f := range figs {
		if f.hasWindow {
			windows = append(windows, f.window)
			run.FaultWindows = append(run.FaultWindows, reports.FaultWindow{Experiment: f.x.Name, Start: f.window.Start.UTC(), End: f.window.End.UTC()})
		}
		if f.x.NotRun != "" {
			run.NotRun = append(run.NotRun, reports.Skipped{Name: "experiment " + f.x.Name, Reason: f.x.NotRun})
		}
	}
	run.Load = loadSummary(o, d, windows)
	run.Charts = loadCharts(o)
	run.Availability = availabilityRows(o, d, figs)
	var prevEnd time.Time
	for _, f := range figs {
		e := experimentReport(o, d, f)
		if store := f.x.Role.Store(); store != "" && !f.x.InjectedAt.IsZero() {
			e.ProberWrites = proberWrites(o, store, f, prevEnd, &e)
		}
		if f.hasWindow {
			prevEnd = f.window.End
		}
		run.Experiments = append(run.Experiments, e)
	}
	run.Requirements = requirements(o, crit, d, figs, windows)
	run.Autoscaling = autoscaling(o)
	return run
}

// figures is what the data says about one experiment.
type figures struct {
	x *Fault
	// source names the samples the recovery was measured on.
	source string
	// rec is the recovery; measured is false when it could not be, why says
	// why.
	rec      measure.Recovery
	measured bool
	why      string
	// window is the fault window: from the injection until the fault was
	// removed or the service recovered, whichever is later (until the end
	// of its horizon without a recovery).
	window    measure.Window
	hasWindow bool
	// horizon ends at the next injection or the end of the data.
	horizon measure.Window
	// healed is the recovery after the fault was removed (partition).
	healed    measure.Recovery
	hasHealed bool
}

// runData is the run's raw series as samples and buckets.
type runData struct {
	buckets     []measure.Bucket
	loadSamples []measure.Sample
	interval    time.Duration
	stores      map[string][]measure.Sample
}

func newData(o *Observation) runData {
	d := runData{stores: map[string][]measure.Sample{}}
	if o.Load != nil {
		d.interval = o.Load.Series.Interval
		if d.interval <= 0 {
			d.interval = time.Second
		}
		for _, p := range o.Load.Series.Points {
			if p.Requests == 0 {
				continue
			}
			d.buckets = append(d.buckets, measure.Bucket{Start: p.Time, Width: d.interval, Count: measure.Count{Total: p.Requests, Failed: p.Failures}})
			d.loadSamples = append(d.loadSamples, measure.Sample{At: p.Time, OK: p.Failures == 0})
		}
	}
	if o.Timeline != nil {
		for store, st := range o.Timeline.Stores {
			d.stores[store] = ProberSamples(st)
		}
	}
	return d
}

// measureAll computes every experiment's figures, in plan order.
func measureAll(o *Observation, d runData) []*figures {
	end := o.Finished
	if o.Load != nil && o.Load.End.After(end) {
		end = o.Load.End
	}
	var figs []*figures
	for i, x := range o.Faults {
		f := &figures{x: x}
		figs = append(figs, f)
		if x.NotRun != "" {
			f.why = x.NotRun
			continue
		}
		if x.InjectedAt.IsZero() {
			f.why = "the fault was not injected: " + x.Failure
			continue
		}
		hEnd := end
		for _, next := range o.Faults[i+1:] {
			if !next.InjectedAt.IsZero() {
				hEnd = next.InjectedAt
				break
			}
		}
		f.horizon = measure.Window{Start: x.InjectedAt, End: hEnd}
		samples, sustain := d.loadSamples, max(o.Sustain, 2*d.interval)
		f.source = "load"
		if store := x.Role.Store(); store != "" {
			samples, sustain, f.source = d.stores[store], o.Sustain, "prober "+store
			if o.Timeline == nil {
				f.why = fmt.Sprintf("no prober timeline: %v", o.TimelineErr)
			}
		} else if o.Load == nil {
			f.why = "no load results"
		}
		if f.why == "" {
			hz := f.horizon
			if f.source == "load" {
				// A load bucket is this fault's only if it ends before the
				// next fault's injection: the one that straddles it holds
				// the next fault's first failures.
				hz.End = hz.End.Add(-d.interval)
			}
			f.rec = measure.Recover(measure.Between(samples, hz), x.InjectedAt, sustain)
			f.measured = true
		}
		wEnd := x.RemovedAt
		if f.rec.RTO.Known && f.rec.RecoveredAt.After(wEnd) {
			wEnd = f.rec.RecoveredAt
		}
		if !f.rec.RTO.Known {
			wEnd = hEnd
		}
		if !wEnd.After(x.InjectedAt) {
			wEnd = x.InjectedAt.Add(time.Millisecond)
		}
		f.window, f.hasWindow = measure.Window{Start: x.InjectedAt, End: wEnd}, true
		if x.Role == RolePartition && o.Load != nil && !x.RemovedAt.IsZero() {
			heal := measure.Window{Start: x.RemovedAt, End: hEnd}
			f.healed, f.hasHealed = measure.Recover(measure.Between(d.loadSamples, heal), x.RemovedAt, sustain), true
		}
	}
	return figs
}

// ofRole returns the figures of the faults of a role, in plan order.
func ofRole(figs []*figures, r Role) []*figures {
	var out []*figures
	for _, f := range figs {
		if f.x.Role == r {
			out = append(out, f)
		}
	}
	return out
}

// firstOfRole returns the figures of the first fault of a role; nil when
// the plan has none.
func firstOfRole(figs []*figures, r Role) *figures {
	if fs := ofRole(figs, r); len(fs) > 0 {
		return fs[0]
	}
	return nil
}

// notInProfile says that the profile has no fault of a role.
func notInProfile(r Role) string {
	return fmt.Sprintf("a %s experiment is not in the profile", r)
}
