package judge

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jewelry-shop/lab/lab/measure"
	"github.com/jewelry-shop/lab/reports"
)

// writesMargin is how much of the prober's writes before the injection and
// after the recovery a store fault's chart shows.
const writesMargin = 30 * time.Second

// proberWrites counts the prober's writes to store per second, by the time
// they were sent, from writesMargin before the injection to writesMargin
// after the recovery (or the end of the fault's horizon), never reaching
// into the previous fault (which ended at prevEnd) or the next. Without a
// timeline the series is empty and e says why.
func proberWrites(o *Observation, store string, f *figures, prevEnd time.Time, e *reports.Experiment) *reports.ProberWrites {
	pw := &reports.ProberWrites{Store: store, Interval: reports.Duration(time.Second)}
	if o.Timeline == nil {
		e.NotMeasured["prober_writes"] = fmt.Sprintf("no prober timeline: %v", o.TimelineErr)
		return pw
	}
	from := f.x.InjectedAt.Add(-writesMargin)
	if from.Before(prevEnd) {
		from = prevEnd
	}
	to := f.horizon.End
	if f.rec.RTO.Known && f.rec.RecoveredAt.Add(writesMargin).Before(to) {
		to = f.rec.RecoveredAt.Add(writesMargin)
	}
	from = from.Truncate(time.Second)
	var points []reports.WritePoint
	for _, s := range o.Timeline.Stores[store].Samples {
		if s.Sent.Before(from) || !s.Sent.Before(to) || (s.Acked.IsZero() && s.Error == "") {
			continue
		}
		i := int(s.Sent.Sub(from) / time.Second)
		for len(points) <= i {
			points = append(points, reports.WritePoint{At: from.Add(time.Duration(len(points)) * time.Second).UTC()})
		}
		if s.Acked.IsZero() {
			points[i].Failed++
		} else {
			points[i].Acknowledged++
		}
	}
	pw.Points = points
	return pw
}

func experimentReport(o *Observation, d runData, f *figures) reports.Experiment {
	x := f.x
	e := reports.Experiment{
		Name:         x.Name,
		Title:        x.Title,
		Requirements: slices.Clone(x.Requirements),
		Fault:        x.Description,
		Target:       x.Target,
		NotRunReason: x.NotRun,
		Timeline:     slices.Clone(x.Events),
		NotMeasured:  map[string]string{},
	}
	if x.Node != nil && x.Node.Node != "" {
		e.Target = "node " + x.Node.Node
	}
	if x.NotRun != "" {
		e.NotMeasured = nil
		return e
	}
	if x.InjectedAt.IsZero() {
		for _, k := range []string{"injected_at", "rto", "errors"} {
			e.NotMeasured[k] = "the fault was not injected: " + x.Failure
		}
		return e
	}
	e.InjectedAt = x.InjectedAt.UTC()
	store := x.Role.Store()
	switch {
	case !f.measured:
		e.NotMeasured["rto"] = f.why
	case f.rec.RTO.Known:
		e.RTO = reports.Dur(f.rec.RTO.V)
		e.RecoveredAt = f.rec.RecoveredAt.UTC()
		if f.rec.NoOutage {
			e.Notes = append(e.Notes, fmt.Sprintf("no outage observed in the %s samples: RTO 0 means no failure was seen, and an outage shorter than the sampling interval cannot be", f.source))
		}
		e.Timeline = append(e.Timeline, reports.Event{At: e.RecoveredAt, Source: sourceOf(f.source), What: fmt.Sprintf("recovered: successes sustained for %s", o.Sustain)})
	default:
		e.NotMeasured["rto"] = f.rec.RTO.Reason
		e.NotMeasured["recovered_at"] = f.rec.RTO.Reason
	}
	if f.measured && !f.rec.FirstError.IsZero() {
		e.FirstError = f.rec.FirstError.UTC()
		e.Timeline = append(e.Timeline, reports.Event{At: e.FirstError, Source: sourceOf(f.source), What: fmt.Sprintf("first failure after the injection (%d failures until recovery)", f.rec.Failures)})
	}
	if f.measured {
		e.Notes = append(e.Notes, fmt.Sprintf("recovery measured on the %s samples", f.source))
	}
	if o.Load != nil {
		in, _ := measure.SplitBuckets(d.buckets, []measure.Window{f.window})
		c := repCount(in)
		e.Errors = &c
	} else {
		e.NotMeasured["errors"] = "no load results"
	}
	if f.hasHealed {
		if f.healed.RTO.Known {
			e.Notes = append(e.Notes, fmt.Sprintf("user requests recovered %s after the partition healed", f.healed.RTO.V))
		} else {
			e.Notes = append(e.Notes, "no recovery after the partition healed was confirmed: "+f.healed.RTO.Reason)
		}
	}
	if st, why := steadiness(o, f); why != "" {
		e.NotMeasured["steady_at"] = why
	} else {
		e.SteadyAt = st.At.UTC()
		repl := st.Replacement
		if repl != nil {
			e.Timeline = append(e.Timeline, reports.Event{At: repl.ReadyAt.UTC(), Source: "kubernetes", What: fmt.Sprintf("replacement pod %s Ready (created %s)", repl.Name, repl.Created.UTC().Format(time.TimeOnly))})
			e.Notes = append(e.Notes, "steady is when the killed pod's replacement was first seen Ready (polled every second, so up to a second late), or when the Ready count was back, whichever is later")
		}
		if repl == nil {
			e.Timeline = append(e.Timeline, reports.Event{At: e.SteadyAt, Source: "kubernetes", What: fmt.Sprintf("web replicas back at %d Ready (lowest %d)", st.Want, st.Lowest)})
		}
		if st.belowDesired() {
			e.Notes = append(e.Notes, fmt.Sprintf("the Ready count is measured against the %d Ready before the fault, not the %d the Deployment wanted: the HPA's scale-up was under way, and its pods still starting are not the fault's", st.Want, st.Desired))
		}
		if !st.Dipped && repl == nil {
			e.Notes = append(e.Notes, "the web replicas were never seen below their wanted count: a dip shorter than the observer's poll interval cannot be seen")
		}
	}
	var path Path
	if store != "" {
		path, e.Leader = pathOf(x)
		switch {
		case e.Leader != nil:
		case x.LeaderWhy != "":
			e.NotMeasured["leader"] = x.LeaderWhy
		default:
			e.NotMeasured["leader"] = "the run ended before the leader was asked again"
		}
		e.Notes = append(e.Notes, o.ProberNotes...)
		switch {
		case o.Verify == nil:
			e.NotMeasured["lost_writes"] = o.VerifyWhy
		case o.Verify.Stores[store].Error != "":
			e.NotMeasured["lost_writes"] = "the prober could not read " + store + " back: " + o.Verify.Stores[store].Error
		default:
			sv := o.Verify.Stores[store]
			lost, dups := slices.Clone(sv.Missing), slices.Clone(sv.Duplicates)
			if sent := sentTimes(o, store); sent != nil && f.horizon.End.After(f.horizon.Start) {
				// Only the writes sent from this fault's injection to the
				// next one (or the end) are this fault's.
				mine := func(seq int64) bool { t, ok := sent[seq]; return ok && f.horizon.Contains(t) }
				all := len(lost)
				lost, dups = slices.DeleteFunc(lost, func(q int64) bool { return !mine(q) }), slices.DeleteFunc(dups, func(q int64) bool { return !mine(q) })
				e.Notes = append(e.Notes, fmt.Sprintf("lost and duplicated writes are those of the prober's %s writes sent between this fault's injection and the next fault or the end (%d lost over the whole run; the no-data-loss row counts them all)", store, all))
			} else {
				e.Notes = append(e.Notes, fmt.Sprintf("lost and duplicated writes are the prober's verification of every acknowledged %s write of the run (%d checked): the prober's timeline, which would place them in time, was not read", store, sv.Acked))
			}
			if lost == nil {
				lost = []int64{}
			}
			if dups == nil {
				dups = []int64{}
			}
			e.LostWrites, e.Duplicates = &lost, &dups
		}
	}
	settingsReport(o, f, path, &e)
	if len(e.NotMeasured) == 0 {
		e.NotMeasured = nil
	}
	slices.SortStableFunc(e.Timeline, func(a, b reports.Event) int { return a.At.Compare(b.At) })
	return e
}

// sentTimes maps each sequence number of a store's prober writes to when it
// was sent; nil without the prober's timeline.
func sentTimes(o *Observation, store string) map[int64]time.Time {
	if o.Timeline == nil {
		return nil
	}
	st, ok := o.Timeline.Stores[store]
	if !ok {
		return nil
	}
	out := make(map[int64]time.Time, len(st.Samples))
	for _, s := range st.Samples {
		out[s.Seq] = s.Sent
	}
	return out
}

func sourceOf(s string) string {
	if strings.HasPrefix(s, "prober") {
		return "prober"
	}
	return s
}
