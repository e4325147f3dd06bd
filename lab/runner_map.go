package lab

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jewelry-shop/lab/chaosmesh"
	"github.com/jewelry-shop/lab/lab/measure"
	"github.com/jewelry-shop/lab/load"
	"github.com/jewelry-shop/lab/reports"
	"github.com/jewelry-shop/lab/shop/probeapi"
)

const (
	interruptedReason = "the run was interrupted before it completed"
)

// proberStore is the prober store whose writes an experiment disturbs; empty
// when the load generator's requests are the evidence.
func proberStore(name string) string {
	switch name {
	case chaosmesh.PostgresPrimaryFailure:
		return probeapi.StorePostgres
	case chaosmesh.RedisMasterFailure:
		return probeapi.StoreRedis
	}
	return ""
}

// figures is what the data says about one experiment.
type figures struct {
	x *expRun
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

func newData(o *observed) runData {
	d := runData{stores: map[string][]measure.Sample{}}
	if o.load != nil {
		d.interval = o.load.Series.Interval
		if d.interval <= 0 {
			d.interval = time.Second
		}
		for _, p := range o.load.Series.Points {
			if p.Requests == 0 {
				continue
			}
			d.buckets = append(d.buckets, measure.Bucket{Start: p.Time, Width: d.interval, Count: measure.Count{Total: p.Requests, Failed: p.Failures}})
			d.loadSamples = append(d.loadSamples, measure.Sample{At: p.Time, OK: p.Failures == 0})
		}
	}
	if o.timeline != nil {
		for store, st := range o.timeline.Stores {
			var ss []measure.Sample
			for _, s := range st.Samples {
				switch {
				case !s.Acked.IsZero():
					ss = append(ss, measure.Sample{At: s.Acked, OK: true})
				case s.Error != "":
					ss = append(ss, measure.Sample{At: s.Sent, OK: false})
				}
			}
			d.stores[store] = ss
		}
	}
	return d
}

// measureAll computes every experiment's figures, in plan order.
func (r *Runner) measureAll(o *observed, d runData) []*figures {
	end := o.finished
	if o.load != nil && o.load.End.After(end) {
		end = o.load.End
	}
	var figs []*figures
	for i, x := range o.experiments {
		f := &figures{x: x}
		figs = append(figs, f)
		if x.notRun != "" {
			f.why = x.notRun
			continue
		}
		if x.injectedAt.IsZero() {
			f.why = "the fault was not injected: " + x.failure
			continue
		}
		hEnd := end
		for _, next := range o.experiments[i+1:] {
			if !next.injectedAt.IsZero() {
				hEnd = next.injectedAt
				break
			}
		}
		f.horizon = measure.Window{Start: x.injectedAt, End: hEnd}
		samples, sustain := d.loadSamples, max(r.cfg.Sustain, 2*d.interval)
		f.source = "load"
		if store := proberStore(x.exp.Name); store != "" {
			samples, sustain, f.source = d.stores[store], r.cfg.Sustain, "prober "+store
			if o.timeline == nil {
				f.why = fmt.Sprintf("no prober timeline: %v", o.timelineErr)
			}
		} else if o.load == nil {
			f.why = "no load results"
		}
		if f.why == "" {
			f.rec = measure.Recover(measure.Between(samples, f.horizon), x.injectedAt, sustain)
			f.measured = true
		}
		wEnd := x.removedAt
		if f.rec.RTO.Known && f.rec.RecoveredAt.After(wEnd) {
			wEnd = f.rec.RecoveredAt
		}
		if !f.rec.RTO.Known {
			wEnd = hEnd
		}
		if !wEnd.After(x.injectedAt) {
			wEnd = x.injectedAt.Add(time.Millisecond)
		}
		f.window, f.hasWindow = measure.Window{Start: x.injectedAt, End: wEnd}, true
		if x.exp.Name == chaosmesh.WebPostgresPartition && o.load != nil && !x.removedAt.IsZero() {
			heal := measure.Window{Start: x.removedAt, End: hEnd}
			f.healed, f.hasHealed = measure.Recover(measure.Between(d.loadSamples, heal), x.removedAt, sustain), true
		}
	}
	return figs
}

// report maps what the run observed into the report model.
func (r *Runner) report(o *observed) *reports.Run {
	p := o.plan.Profile
	run := &reports.Run{
		Title:        r.cfg.Title,
		Profile:      p.Name,
		Seed:         r.cfg.Seed,
		Started:      o.started.UTC(),
		Finished:     o.finished.UTC(),
		Progress:     reports.Progress{Completed: o.stopped == nil, Reached: o.reached},
		Environment:  maps.Clone(r.cfg.Environment),
		NotRun:       slices.Clone(o.notRun),
		HealthChecks: slices.Clone(o.probes),
	}
	if run.Environment == nil {
		run.Environment = map[string]string{}
	}
	if o.stopped != nil {
		run.Progress.Error = o.stopped.Error()
	}
	d := newData(o)
	figs := r.measureAll(o, d)
	var windows []measure.Window
	for _, f := range figs {
		if f.hasWindow {
			windows = append(windows, f.window)
			run.FaultWindows = append(run.FaultWindows, reports.FaultWindow{Experiment: f.x.exp.Name, Start: f.window.Start.UTC(), End: f.window.End.UTC()})
		}
		if f.x.notRun != "" {
			run.NotRun = append(run.NotRun, reports.Skipped{Name: "experiment " + f.x.exp.Name, Reason: f.x.notRun})
		}
	}
	run.Load = loadSummary(o, d, windows)
	run.Charts = loadCharts(o)
	run.Availability = availabilityRows(o, d, figs)
	var prevEnd time.Time
	for _, f := range figs {
		e := r.experimentReport(o, d, f)
		if store := proberStore(f.x.exp.Name); store != "" && !f.x.injectedAt.IsZero() {
			e.ProberWrites = proberWrites(o, store, f, prevEnd, &e)
		}
		if f.hasWindow {
			prevEnd = f.window.End
		}
		run.Experiments = append(run.Experiments, e)
	}
	run.Requirements = r.requirements(o, d, figs, windows)
	run.Autoscaling = autoscaling(o)
	return run
}

func loadSummary(o *observed, d runData, windows []measure.Window) *reports.LoadSummary {
	res := o.load
	if res == nil {
		return nil
	}
	inside, outside := measure.SplitBuckets(d.buckets, windows)
	s := &reports.LoadSummary{
		Scenario:      res.Scenario,
		Model:         string(res.Model),
		Users:         res.Generator.MaxUsers,
		Duration:      reports.Duration(res.Duration),
		Overall:       reportEndpoint(res.Overall),
		InsideFaults:  repCount(inside),
		OutsideFaults: repCount(outside),
		Warnings:      slices.Clone(res.Generator.Warnings),
	}
	for _, e := range res.Endpoints {
		s.Endpoints = append(s.Endpoints, reportEndpoint(e))
	}
	if res.StopReason != "" && res.StopReason != "duration" {
		s.Warnings = append(s.Warnings, "the load stopped early: "+res.StopReason)
	}
	return s
}

func reportEndpoint(st load.Stats) reports.Endpoint {
	e := reports.Endpoint{
		Name:  st.Name,
		Count: reports.Count{Requests: st.Requests, Failures: st.Failures},
		P50MS: millis(st.Latency.P50), P95MS: millis(st.Latency.P95), P99MS: millis(st.Latency.P99),
		RPS: st.RPS,
	}
	for _, c := range load.Classes() {
		if n := st.ByClass[c]; n != 0 {
			if e.FailuresByClass == nil {
				e.FailuresByClass = map[string]int64{}
			}
			e.FailuresByClass[c.String()] = n
		}
	}
	return e
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func repCount(c measure.Count) reports.Count {
	return reports.Count{Requests: c.Total, Failures: c.Failed}
}

func loadCharts(o *observed) []reports.Chart {
	if o.load == nil || len(o.load.Series.Points) == 0 {
		return nil
	}
	rps := reports.Chart{ID: "rps", Title: "User requests per second", Unit: "req/s", Aggregate: "mean"}
	p95 := reports.Chart{ID: "p95", Title: "User request p95 latency", Unit: "ms", Aggregate: "max"}
	fails := reports.Chart{ID: "failures", Title: "Failed user requests", Unit: "requests", Aggregate: "sum"}
	for _, pt := range o.load.Series.Points {
		at := pt.Time.UTC()
		rps.Points = append(rps.Points, reports.Point{At: at, Value: pt.RPS})
		p95.Points = append(p95.Points, reports.Point{At: at, Value: millis(pt.P95)})
		fails.Points = append(fails.Points, reports.Point{At: at, Value: float64(pt.Failures)})
	}
	return []reports.Chart{rps, p95, fails}
}

func availabilityRows(o *observed, d runData, figs []*figures) []reports.Availability {
	const whole = "whole run"
	var out []reports.Availability
	if o.load != nil {
		out = append(out, reports.Availability{Scope: whole, Source: "load", Count: reports.Count{Requests: o.load.Overall.Requests, Failures: o.load.Overall.Failures}})
	} else {
		out = append(out, reports.Availability{Scope: whole, Source: "load", NotMeasured: "no load results"})
	}
	for _, store := range []string{probeapi.StorePostgres, probeapi.StoreRedis} {
		a := reports.Availability{Scope: whole, Source: "prober " + store}
		if o.timeline == nil {
			a.NotMeasured = fmt.Sprintf("no prober timeline: %v", o.timelineErr)
		} else if st, ok := o.timeline.Stores[store]; ok {
			a.Count = reports.Count{Requests: st.Acked + st.Failed, Failures: st.Failed}
		} else {
			a.NotMeasured = "the prober has no " + store + " store"
		}
		out = append(out, a)
	}
	for _, f := range figs {
		if !f.hasWindow {
			continue
		}
		if o.load != nil {
			in, _ := measure.SplitBuckets(d.buckets, []measure.Window{f.window})
			out = append(out, reports.Availability{Scope: f.x.exp.Name, Source: "load", Count: repCount(in)})
		}
		if store := proberStore(f.x.exp.Name); store != "" && o.timeline != nil {
			out = append(out, reports.Availability{Scope: f.x.exp.Name, Source: "prober " + store, Count: repCount(measure.Tally(d.stores[store], f.window))})
		}
	}
	return out
}

// faultText says how an experiment injects its fault.
func faultText(e chaosmesh.Experiment, scaled time.Duration) string {
	kind := "node stop"
	if e.Kind == chaosmesh.KindChaos && e.Object != nil {
		t := fmt.Sprintf("%T", e.Object)
		kind = t[strings.LastIndex(t, ".")+1:]
	}
	if e.Duration == 0 {
		return kind + ", one-shot"
	}
	return fmt.Sprintf("%s, held %s", kind, scaled)
}

// writesMargin is how much of the prober's writes before the injection and
// after the recovery a store fault's chart shows.
const writesMargin = 30 * time.Second

// proberWrites counts the prober's writes to store per second, by the time
// they were sent, from writesMargin before the injection to writesMargin
// after the recovery (or the end of the fault's horizon), never reaching
// into the previous fault (which ended at prevEnd) or the next. Without a
// timeline the series is empty and e says why.
func proberWrites(o *observed, store string, f *figures, prevEnd time.Time, e *reports.Experiment) *reports.ProberWrites {
	pw := &reports.ProberWrites{Store: store, Interval: reports.Duration(time.Second)}
	if o.timeline == nil {
		e.NotMeasured["prober_writes"] = fmt.Sprintf("no prober timeline: %v", o.timelineErr)
		return pw
	}
	from := f.x.injectedAt.Add(-writesMargin)
	if from.Before(prevEnd) {
		from = prevEnd
	}
	to := f.horizon.End
	if f.rec.RTO.Known && f.rec.RecoveredAt.Add(writesMargin).Before(to) {
		to = f.rec.RecoveredAt.Add(writesMargin)
	}
	from = from.Truncate(time.Second)
	var points []reports.WritePoint
	for _, s := range o.timeline.Stores[store].Samples {
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

func (r *Runner) experimentReport(o *observed, d runData, f *figures) reports.Experiment {
	x := f.x
	e := reports.Experiment{
		Name:         x.exp.Name,
		Title:        x.exp.Title,
		Requirements: slices.Clone(x.exp.Requirements),
		Fault:        faultText(x.exp, r.scale(x.exp.Duration)),
		Target:       x.exp.Target,
		NotRunReason: x.notRun,
		Timeline:     slices.Clone(x.events),
		NotMeasured:  map[string]string{},
	}
	if x.node != nil && x.node.Node != "" {
		e.Target = "node " + x.node.Node
	}
	if x.notRun != "" {
		e.NotMeasured = nil
		return e
	}
	if x.injectedAt.IsZero() {
		for _, k := range []string{"injected_at", "rto", "errors"} {
			e.NotMeasured[k] = "the fault was not injected: " + x.failure
		}
		return e
	}
	e.InjectedAt = x.injectedAt.UTC()
	store := proberStore(x.exp.Name)
	switch {
	case !f.measured:
		e.NotMeasured["rto"] = f.why
	case f.rec.RTO.Known:
		e.RTO = reports.Dur(f.rec.RTO.V)
		e.RecoveredAt = f.rec.RecoveredAt.UTC()
		if f.rec.NoOutage {
			e.Notes = append(e.Notes, fmt.Sprintf("no outage observed in the %s samples: RTO 0 means no failure was seen, and an outage shorter than the sampling interval cannot be", f.source))
		}
		e.Timeline = append(e.Timeline, reports.Event{At: e.RecoveredAt, Source: sourceOf(f.source), What: fmt.Sprintf("recovered: successes sustained for %s", r.cfg.Sustain)})
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
	if o.load != nil {
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
		e.Timeline = append(e.Timeline, reports.Event{At: e.SteadyAt, Source: "kubernetes", What: fmt.Sprintf("web replicas all Ready again (lowest %d)", st.Lowest)})
		if !st.Dipped {
			e.Notes = append(e.Notes, "the web replicas were never seen below their wanted count: a dip shorter than the observer's poll interval cannot be seen")
		}
	}
	if store != "" {
		switch {
		case x.leaderBefore != "" && x.leaderAfter != "":
			path := "failover to another pod"
			if x.leaderBefore == x.leaderAfter {
				path = "restart in place: the old leader came back, no failover"
			}
			e.Leader = &reports.Leader{Old: x.leaderBefore, New: x.leaderAfter, Path: path}
		case x.leaderWhy != "":
			e.NotMeasured["leader"] = x.leaderWhy
		case r.cfg.Leaders != nil:
			e.NotMeasured["leader"] = "the run ended before the leader was asked again"
		default:
			e.NotMeasured["leader"] = r.why(CapLeaders)
		}
		switch {
		case o.verify == nil:
			e.NotMeasured["lost_writes"] = o.verifyWhy
		case o.verify.Stores[store].Error != "":
			e.NotMeasured["lost_writes"] = "the prober could not read " + store + " back: " + o.verify.Stores[store].Error
		default:
			sv := o.verify.Stores[store]
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
	if len(e.NotMeasured) == 0 {
		e.NotMeasured = nil
	}
	slices.SortStableFunc(e.Timeline, func(a, b reports.Event) int { return a.At.Compare(b.At) })
	return e
}

// sentTimes maps each sequence number of a store's prober writes to when it
// was sent; nil without the prober's timeline.
func sentTimes(o *observed, store string) map[int64]time.Time {
	if o.timeline == nil {
		return nil
	}
	st, ok := o.timeline.Stores[store]
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

// healthRow judges R33 on the live workloads' probes. Its second half, a
// health endpoint polled all run, has no measurement yet, so a run whose
// probes are all there is still "not measured", with the probe figures.
func (r *Runner) healthRow(o *observed) reports.Requirement {
	const thr = "every workload has readiness and liveness probes; the health endpoint answers all run"
	if o.probes == nil {
		return requirementRow("R33", "Automated health checks", thr, "", measure.Missing(o.probesWhy), reports.AnchorHealthChecks)
	}
	var missing []string
	for _, w := range o.probes {
		switch {
		case !w.Readiness && !w.Liveness:
			missing = append(missing, w.Workload+" has neither probe")
		case !w.Readiness:
			missing = append(missing, w.Workload+" has no readiness probe")
		case !w.Liveness:
			missing = append(missing, w.Workload+" has no liveness probe")
		}
	}
	measured := fmt.Sprintf("%d of %d workloads have both probes", len(o.probes)-len(missing), len(o.probes))
	probes := measure.Verdict{Status: measure.Pass, Reason: measured}
	if len(o.probes) == 0 {
		probes = measure.Missing("no Deployment or StatefulSet in the namespace")
	} else if len(missing) > 0 {
		probes = measure.Verdict{Status: measure.Fail, Reason: strings.Join(missing, "; ")}
	}
	polled, pollText := r.healthPolled(o)
	if pollText != "" {
		measured += "; " + pollText
	}
	return requirementRow("R33", "Automated health checks", thr, measured, measure.All(probes, polled), reports.AnchorHealthChecks)
}

// healthPolled judges the second half of R33: the health endpoint was
// polled all run, about once a second without a gap; its answers are
// reported (a failing health endpoint during a fault is what the fault
// does, and R31 judges availability).
func (r *Runner) healthPolled(o *observed) (measure.Verdict, string) {
	if !o.healthPolled {
		return measure.Missing(firstReason(r.why(CapHealthPoll), "the health endpoint was not polled during the run")), ""
	}
	span := o.healthTo.Sub(o.healthFrom)
	if len(o.health) == 0 {
		return measure.Missing("the health endpoint's poller recorded nothing"), ""
	}
	count := measure.Count{Total: int64(len(o.health))}
	gap, last := time.Duration(0), o.healthFrom
	for _, s := range o.health {
		if !s.OK {
			count.Failed++
		}
		gap, last = max(gap, s.At.Sub(last)), s.At
	}
	gap = max(gap, o.healthTo.Sub(last))
	text := fmt.Sprintf("health endpoint polled %d times over %s, %s answered", count.Total, span.Round(time.Second), fmtRate(count.Availability()))
	if gap > 5*time.Second {
		return measure.Missing(fmt.Sprintf("the health endpoint went %s without a poll", gap.Round(time.Second))), text
	}
	return measure.Verdict{Status: measure.Pass, Reason: text}, text
}

// stressVerdict judges one stress experiment for R34: only a stress that
// shows in the pods' usage is reported on; then the error rate inside its
// window must stay under the inside threshold and the HPA must have reacted
// (more replicas than at the injection, or already at its maximum).
func stressVerdict(o *observed, d runData, f *figures, th Thresholds) (measure.Verdict, string) {
	x := f.x
	name := x.exp.Name
	cpu := name == chaosmesh.WebCPUStress
	switch {
	case x.injectedAt.IsZero():
		return measure.Missing(name + ": the fault was not injected: " + x.failure), ""
	case x.usageBefore == nil || x.usageDuring == nil:
		return measure.Missing(name + ": " + firstReason(x.usageWhy, "the pods' usage was not read during the stress")), ""
	}
	b, du := *x.usageBefore, *x.usageDuring
	usage := fmt.Sprintf("CPU %dm → %dm", b.CPUMilli, du.CPUMilli)
	if !cpu {
		usage = fmt.Sprintf("memory %d MiB → %d MiB", b.MemoryBytes>>20, du.MemoryBytes>>20)
	}
	if !stressRose(cpu, b, du) {
		return measure.Missing(fmt.Sprintf("%s: the stress did not show in the pods' usage (%s); StressChaos on containerd cgroups can silently do nothing, so it is not reported on", name, usage)), ""
	}
	measured := name + ": " + usage
	var vs []measure.Verdict
	if !f.hasWindow {
		vs = append(vs, measure.Missing(name+": no fault window"))
	} else {
		inside, _ := measure.SplitBuckets(d.buckets, []measure.Window{f.window})
		rate := inside.ErrorRate()
		measured += ", errors inside " + fmtRate(rate)
		vs = append(vs, reword(measure.Below(rate, th.ErrorRateInside), name+": error rate inside "+fmtRate(rate), "<", percent(th.ErrorRateInside)))
	}
	switch {
	case o.replicas == nil:
		vs = append(vs, measure.Missing(name+": the HPA was not observed: "+replicasWhy(o)))
	case o.replicas.HPA == "":
		vs = append(vs, measure.Missing(name+": the HPA was not observed: "+o.replicas.HPAMissing))
	default:
		at := measure.CountAt(o.replicas.HPAReplicas, x.injectedAt)
		peak, _ := measure.Peak(o.replicas.HPAReplicas, f.window)
		switch {
		case !at.Known || !peak.Known:
			vs = append(vs, measure.Missing(name+": the HPA replicas around the stress are not known"))
		case peak.V > at.V || at.V >= o.replicas.Max:
			measured += fmt.Sprintf(", HPA %d → %d replicas", at.V, peak.V)
			vs = append(vs, measure.Verdict{Status: measure.Pass, Reason: fmt.Sprintf("%s: the HPA went from %d to %d replicas", name, at.V, peak.V)})
		default:
			measured += fmt.Sprintf(", HPA stayed at %d replicas", at.V)
			vs = append(vs, measure.Verdict{Status: measure.Fail, Reason: fmt.Sprintf("%s: the HPA did not react (%d replicas before and at most %d during)", name, at.V, peak.V)})
		}
	}
	return measure.All(vs...), measured
}

// steadiness measures when the web replicas were all Ready again after an
// experiment: from its injection, or from the removal of a held fault;
// why says why it could not be measured.
func steadiness(o *observed, f *figures) (measure.Settle, string) {
	switch {
	case o.replicas == nil:
		return measure.Settle{}, replicasWhy(o)
	case !f.hasWindow:
		return measure.Settle{}, "the fault was not injected"
	}
	ref := f.x.injectedAt
	if f.x.exp.Duration > 0 && !f.x.removedAt.IsZero() {
		ref = f.x.removedAt
	}
	want := measure.CountAt(o.replicas.Desired, ref)
	if !want.Known {
		return measure.Settle{}, "the wanted replicas are not known: " + want.Reason
	}
	end := f.horizon.End
	if o.observedUntil.Before(end) {
		end = o.observedUntil
	}
	st := measure.Steady(o.replicas.Ready, ref, end, want.V)
	if !st.After.Known {
		return st, st.After.Reason
	}
	return st, ""
}

// replicasWhy says why there are no replica observations.
func replicasWhy(o *observed) string {
	if o.replicasErr == nil {
		return "the replica observer did not run"
	}
	return o.replicasErr.Error()
}

// requirementRow builds a row from a verdict.
func requirementRow(id, title, threshold, measured string, v measure.Verdict, evidence ...string) reports.Requirement {
	q := reports.Requirement{ID: id, Title: title, Threshold: threshold, Measured: measured, Reason: v.Reason, Evidence: evidence}
	switch v.Status {
	case measure.Pass:
		q.Status = reports.Pass
	case measure.Fail:
		q.Status = reports.Fail
	default:
		q.Status = reports.NotMeasured
	}
	return q
}

func notRunRow(id, title, threshold, reason string, evidence ...string) reports.Requirement {
	return reports.Requirement{ID: id, Title: title, Threshold: threshold, Status: reports.NotRun, Reason: reason, Evidence: evidence}
}

// notInProfileRow is a requirement the run's profile does not validate.
func notInProfileRow(id, title, threshold, reason string) reports.Requirement {
	return reports.Requirement{ID: id, Title: title, Threshold: threshold, Status: reports.NotInProfile, Reason: reason}
}

// expFigures finds the figures of the named experiment; nil when it is not
// in the plan.
func expFigures(figs []*figures, name string) *figures {
	for _, f := range figs {
		if f.x.exp.Name == name {
			return f
		}
	}
	return nil
}

// failoverVerdict judges one failover experiment's RTO; skipped is
// NotInProfile when the experiment is not in the plan, NotRun when it did
// not run, and empty when it ran.
func failoverVerdict(f *figures, name string, limit time.Duration) (v measure.Verdict, measured string, skipped reports.Status) {
	switch {
	case f == nil:
		return measure.Missing("experiment " + name + " is not in the profile"), "", reports.NotInProfile
	case f.x.notRun != "":
		return measure.Missing(name + ": " + f.x.notRun), "", reports.NotRun
	case !f.measured:
		return measure.Missing(name + ": " + f.why), "", ""
	}
	v = f.rec.Below(limit)
	if f.rec.RTO.Known {
		v = reword(v, "RTO "+f.rec.RTO.V.Round(time.Millisecond).String(), "<", limit.String())
	}
	if f.rec.RTO.Known {
		measured = fmt.Sprintf("%s: RTO %s", name, f.rec.RTO.V.Round(time.Millisecond))
	} else if f.rec.AtLeast > 0 {
		measured = fmt.Sprintf("%s: RTO at least %s", name, f.rec.AtLeast.Round(time.Millisecond))
	}
	if v.Status != measure.Pass {
		v.Reason = name + ": " + v.Reason
	}
	return v, measured, ""
}

func (r *Runner) requirements(o *observed, d runData, figs []*figures, windows []measure.Window) []reports.Requirement {
	p := o.plan.Profile
	th := p.Thresholds
	var rows []reports.Requirement
	interrupted := o.stopped != nil
	// whole marks a whole-run requirement: without a completed run it is
	// not run, unless a measured failure stands.
	whole := func(q reports.Requirement) reports.Requirement {
		if interrupted && q.Status != reports.Fail {
			q.Status, q.Reason = reports.NotRun, interruptedReason
		}
		return q
	}

	// R25: load.
	{
		title := fmt.Sprintf("%d concurrent users", p.Users)
		thr := fmt.Sprintf("p95 < %s; error rate outside fault windows < %s; %d users held", th.P95, percent(th.ErrorRateOutside), p.Users)
		switch {
		case !o.loadRan:
			rows = append(rows, whole(notRunRow("R25", title, thr, "the run stopped before the load", reports.AnchorLoad)))
		case o.load == nil:
			rows = append(rows, whole(requirementRow("R25", title, thr, "", measure.Missing(fmt.Sprintf("the load failed: %v", o.loadErr)), reports.AnchorLoad)))
		default:
			_, outside := measure.SplitBuckets(d.buckets, windows)
			p95 := measure.Unknown[time.Duration]("no requests")
			if o.load.Overall.Requests > 0 {
				p95 = measure.Known(o.load.Overall.Latency.P95)
			}
			rate := outside.ErrorRate()
			v := measure.All(
				reword(measure.Below(p95, th.P95), fmt.Sprintf("p95 %s", p95.V.Round(time.Millisecond)), "<", th.P95.String()),
				reword(measure.Below(rate, th.ErrorRateOutside), "error rate outside fault windows "+fmtRate(rate), "<", percent(th.ErrorRateOutside)),
				reword(measure.AtLeast(measure.Known(o.load.Generator.MaxUsers), p.Users), fmt.Sprintf("%d users held", o.load.Generator.MaxUsers), ">=", fmt.Sprint(p.Users)),
			)
			measured := fmt.Sprintf("p95 %s; %s errors outside fault windows (%d of %d); %d users held",
				o.load.Overall.Latency.P95.Round(time.Millisecond), fmtRate(rate), outside.Failed, outside.Total, o.load.Generator.MaxUsers)
			if v.Status == measure.Pass && o.load.StopReason != "duration" {
				v = measure.Missing("the load stopped early: " + o.load.StopReason)
			}
			rows = append(rows, whole(requirementRow("R25", title, thr, measured, v, reports.AnchorLoad, reports.AnchorCharts)))
		}
	}

	// R26, R29, R30: failovers.
	pg, redis := expFigures(figs, chaosmesh.PostgresPrimaryFailure), expFigures(figs, chaosmesh.RedisMasterFailure)
	pgV, pgM, pgNot := failoverVerdict(pg, chaosmesh.PostgresPrimaryFailure, th.Failover)
	rdV, rdM, rdNot := failoverVerdict(redis, chaosmesh.RedisMasterFailure, th.Failover)
	failThr := fmt.Sprintf("RTO < %s", th.Failover)
	{
		thr := "the PostgreSQL primary and the Redis master recover: " + failThr
		ev := []string{reports.ExperimentAnchor(chaosmesh.PostgresPrimaryFailure), reports.ExperimentAnchor(chaosmesh.RedisMasterFailure)}
		switch {
		case pgNot == reports.NotInProfile && rdNot == reports.NotInProfile:
			rows = append(rows, notInProfileRow("R26", "Kill master nodes", thr, "no PostgreSQL primary or Redis master failure is in the profile"))
		case pgNot != "" && rdNot != "":
			rows = append(rows, notRunRow("R26", "Kill master nodes", thr, pgV.Reason+"; "+rdV.Reason, ev...))
		default:
			rows = append(rows, requirementRow("R26", "Kill master nodes", thr, joinFigures(pgM, rdM), measure.All(pgV, rdV), ev...))
		}
	}

	// R27: web pods.
	{
		thr := fmt.Sprintf("web replicas Ready again within %s", th.PodRecovery)
		var ran []*figures
		var reasons []string
		for _, n := range []string{chaosmesh.WebPodKill, chaosmesh.WebPodFailure} {
			if f := expFigures(figs, n); f != nil {
				if f.x.notRun == "" {
					ran = append(ran, f)
				} else {
					reasons = append(reasons, n+": "+f.x.notRun)
				}
			}
		}
		switch {
		case len(ran) == 0 && len(reasons) == 0:
			rows = append(rows, notInProfileRow("R27", "Kill random pods", thr, "no web pod experiment is in the profile"))
		case len(ran) == 0:
			rows = append(rows, notRunRow("R27", "Kill random pods", thr, strings.Join(reasons, "; ")))
		default:
			var measured, ev []string
			var vs []measure.Verdict
			for _, f := range ran {
				ev = append(ev, reports.ExperimentAnchor(f.x.exp.Name))
				st, why := steadiness(o, f)
				if why != "" {
					vs = append(vs, measure.Missing(f.x.exp.Name+": "+why))
				} else {
					after := st.After.V.Round(time.Millisecond)
					measured = append(measured, fmt.Sprintf("%s: web replicas all Ready %s after the fault (lowest %d)", f.x.exp.Name, after, st.Lowest))
					vs = append(vs, reword(measure.AtMost(st.After, th.PodRecovery), f.x.exp.Name+": Ready again after "+after.String(), "<=", th.PodRecovery.String()))
				}
				if f.measured && f.rec.RTO.Known {
					measured = append(measured, fmt.Sprintf("%s: user requests recovered after %s", f.x.exp.Name, f.rec.RTO.V.Round(time.Millisecond)))
				}
			}
			rows = append(rows, requirementRow("R27", "Kill random pods", thr, strings.Join(measured, "; "), measure.All(vs...), ev...))
		}
	}

	// R28: node failure.
	rows = append(rows, nodeRow(expFigures(figs, chaosmesh.NodeFailure), th.NodeRecovery))

	rows = append(rows, failoverRow("R29", "PostgreSQL failover", failThr, pgV, pgM, pgNot, chaosmesh.PostgresPrimaryFailure))
	rows = append(rows, failoverRow("R30", "Redis failover", failThr, rdV, rdM, rdNot, chaosmesh.RedisMasterFailure))

	// R31: availability.
	{
		thr := fmt.Sprintf("availability ≥ %s over the run; error rate inside fault windows < %s", percent(th.Availability), percent(th.ErrorRateInside))
		if o.load == nil {
			rows = append(rows, whole(requirementRow("R31", "Service availability", thr, "", measure.Missing("no load results"), reports.AnchorAvailability)))
		} else {
			all := measure.Count{Total: o.load.Overall.Requests, Failed: o.load.Overall.Failures}
			inside, _ := measure.SplitBuckets(d.buckets, windows)
			insideRate := inside.ErrorRate()
			if len(windows) == 0 {
				insideRate = measure.Unknown[float64]("no fault window in this run")
			}
			v := measure.All(
				reword(measure.AtLeast(all.Availability(), th.Availability), "availability "+fmtRate(all.Availability()), ">=", percent(th.Availability)),
				reword(measure.Below(insideRate, th.ErrorRateInside), "error rate inside fault windows "+fmtRate(insideRate), "<", percent(th.ErrorRateInside)),
			)
			measured := fmt.Sprintf("%s available over the run (%d of %d failed); %s errors inside fault windows", fmtRate(all.Availability()), all.Failed, all.Total, fmtRate(insideRate))
			rows = append(rows, whole(requirementRow("R31", "Service availability", thr, measured, v, reports.AnchorAvailability)))
		}
	}

	// R32: partition.
	{
		thr := fmt.Sprintf("user requests recover within %s after the partition heals", th.PartitionRecovery)
		f := expFigures(figs, chaosmesh.WebPostgresPartition)
		ev := reports.ExperimentAnchor(chaosmesh.WebPostgresPartition)
		switch {
		case f == nil:
			rows = append(rows, notInProfileRow("R32", "Network partition", thr, "experiment "+chaosmesh.WebPostgresPartition+" is not in the profile"))
		case f.x.notRun != "":
			rows = append(rows, notRunRow("R32", "Network partition", thr, f.x.notRun, ev))
		case !f.hasHealed:
			rows = append(rows, requirementRow("R32", "Network partition", thr, "", measure.Missing(firstReason(f.why, "the partition's removal was not observed")), ev))
		default:
			measured := ""
			if f.healed.RTO.Known {
				measured = "recovered " + f.healed.RTO.V.Round(time.Millisecond).String() + " after the heal"
			}
			rows = append(rows, requirementRow("R32", "Network partition", thr, measured, f.healed.Below(th.PartitionRecovery), ev))
		}
	}

	rows = append(rows, r.healthRow(o))

	// R34: stress.
	{
		thr := "availability held and the HPA reacted under CPU and memory stress"
		var ev, reasons []string
		inPlan := false
		ranAny := false
		for _, n := range []string{chaosmesh.WebCPUStress, chaosmesh.WebMemoryStress} {
			if f := expFigures(figs, n); f != nil {
				inPlan = true
				ev = append(ev, reports.ExperimentAnchor(n))
				if f.x.notRun == "" {
					ranAny = true
				} else {
					reasons = append(reasons, n+": "+f.x.notRun)
				}
			}
		}
		switch {
		case !inPlan:
			rows = append(rows, notInProfileRow("R34", "Resource exhaustion", thr, "no stress experiment is in the profile"))
		case !ranAny:
			rows = append(rows, notRunRow("R34", "Resource exhaustion", thr, strings.Join(reasons, "; "), ev...))
		default:
			var vs []measure.Verdict
			var measured []string
			for _, n := range []string{chaosmesh.WebCPUStress, chaosmesh.WebMemoryStress} {
				f := expFigures(figs, n)
				if f == nil || f.x.notRun != "" {
					continue
				}
				v, m := stressVerdict(o, d, f, th)
				vs = append(vs, v)
				if m != "" {
					measured = append(measured, m)
				}
			}
			rows = append(rows, requirementRow("R34", "Resource exhaustion", thr, strings.Join(measured, "; "), measure.All(vs...), ev...))
		}
	}

	// R35: scale-down.
	{
		thr := fmt.Sprintf("HPA back to its minimum within %s after the load", th.ScaleDown)
		if p.RequireHPAMax {
			thr = "HPA reaches its maximum under load; " + thr
		}
		switch {
		case !o.scaleDownWatched:
			rows = append(rows, notRunRow("R35", "Automatic scale-down", thr, "the scale-down watch did not run", reports.AnchorAutoscaling))
		default:
			sd, why := scaling(o)
			if why != "" {
				rows = append(rows, requirementRow("R35", "Automatic scale-down", thr, "", measure.Missing(why), reports.AnchorAutoscaling))
				break
			}
			rs := o.replicas
			vs := []measure.Verdict{reword(measure.AtLeast(sd.Peak, rs.Min+1), fmt.Sprintf("peak %d replicas under load", sd.Peak.V), ">", fmt.Sprint(rs.Min))}
			if p.RequireHPAMax {
				vs = append(vs, reword(measure.AtLeast(sd.Peak, rs.Max), fmt.Sprintf("peak %d replicas", sd.Peak.V), ">=", fmt.Sprint(rs.Max)))
			}
			within := sd.Within(th.ScaleDown)
			if sd.After.Known {
				within = reword(within, "back to "+fmt.Sprint(rs.Min)+" after "+sd.After.V.Round(time.Millisecond).String(), "<=", th.ScaleDown.String())
			}
			vs = append(vs, within)
			measured := fmt.Sprintf("peak %d of %d..%d replicas", sd.Peak.V, rs.Min, rs.Max)
			if sd.After.Known {
				measured += fmt.Sprintf("; back to %d %s after the load stopped", rs.Min, sd.After.V.Round(time.Millisecond))
			}
			rows = append(rows, requirementRow("R35", "Automatic scale-down", thr, measured, measure.All(vs...), reports.AnchorAutoscaling))
		}
	}

	rows = append(rows, whole(dataLossRow(o, figs)))
	return rows
}

// loadStoppedAt is when the load stopped sending.
func loadStoppedAt(o *observed) time.Time {
	if o.load != nil && !o.load.End.IsZero() {
		return o.load.End
	}
	return o.loadEnd
}

// scaling measures the HPA's scale-down after the load; why says why it
// could not be.
func scaling(o *observed) (measure.Scaling, string) {
	switch {
	case o.replicas == nil:
		return measure.Scaling{}, replicasWhy(o)
	case o.replicas.HPAMissing != "":
		return measure.Scaling{}, o.replicas.HPAMissing
	}
	sd := measure.ScaleDown(o.replicas.HPAReplicas, loadStoppedAt(o), o.observedUntil, o.replicas.Min)
	if !sd.Peak.Known {
		return sd, sd.Peak.Reason
	}
	return sd, ""
}

// autoscaling is the report's HPA section; nil when no HPA was observed.
func autoscaling(o *observed) *reports.Autoscaling {
	rs := o.replicas
	if rs == nil || rs.HPA == "" || rs.HPAMissing != "" {
		return nil
	}
	a := &reports.Autoscaling{HPA: rs.HPA, Min: rs.Min, Max: rs.Max, LoadStoppedAt: loadStoppedAt(o).UTC(), ObservedUntil: o.observedUntil.UTC(), NotMeasured: map[string]string{}}
	for _, pt := range rs.HPAReplicas {
		a.Timeline = append(a.Timeline, reports.ReplicaPoint{At: pt.At.UTC(), Replicas: pt.Replicas})
	}
	sd, why := scaling(o)
	if why != "" {
		a.NotMeasured["peak"] = why
		a.NotMeasured["scale_down"] = why
		return a
	}
	peak := sd.Peak.V
	a.Peak, a.PeakAt = &peak, sd.PeakAt.UTC()
	if sd.After.Known {
		a.ReachedMinAt, a.ScaleDown = sd.ReachedMinAt.UTC(), reports.Dur(sd.After.V)
	} else {
		a.NotMeasured["scale_down"] = sd.After.Reason
		a.NotMeasured["reached_min_at"] = sd.After.Reason
	}
	if len(a.NotMeasured) == 0 {
		a.NotMeasured = nil
	}
	return a
}

func failoverRow(id, title, thr string, v measure.Verdict, measured string, skipped reports.Status, name string) reports.Requirement {
	ev := reports.ExperimentAnchor(name)
	switch skipped {
	case reports.NotInProfile:
		return notInProfileRow(id, title, thr, v.Reason)
	case reports.NotRun:
		return notRunRow(id, title, thr, v.Reason, ev)
	}
	return requirementRow(id, title, thr, measured, v, ev)
}

// nodeRow judges R28: every pod of a ReplicaSet on the stopped node runs
// Ready elsewhere within limit of the stop.
func nodeRow(f *figures, limit time.Duration) reports.Requirement {
	const title = "Node failure"
	thr := fmt.Sprintf("evicted pods Ready on other nodes within %s", limit)
	switch {
	case f == nil:
		return notInProfileRow("R28", title, thr, "experiment "+chaosmesh.NodeFailure+" is not in the profile")
	case f.x.notRun != "":
		return notRunRow("R28", title, thr, f.x.notRun, reports.ExperimentAnchor(chaosmesh.NodeFailure))
	}
	ev := reports.ExperimentAnchor(chaosmesh.NodeFailure)
	nf := f.x.node
	if nf == nil || nf.StoppedAt.IsZero() {
		return requirementRow("R28", title, thr, "", measure.Missing("the node was not stopped: "+f.x.failure), ev)
	}
	var slowest time.Duration
	var stuck []string
	n := 0
	for _, m := range nf.Pods {
		if !strings.HasPrefix(m.Owner, "ReplicaSet/") {
			continue // stateful and bare pods do not move
		}
		n++
		if !m.Rescheduled() {
			stuck = append(stuck, m.Pod)
			continue
		}
		slowest = max(slowest, m.ReadyAt.Sub(nf.StoppedAt))
	}
	switch {
	case n == 0:
		return requirementRow("R28", title, thr, "", measure.Missing("no Deployment pod ran on node "+nf.Node), ev)
	case len(stuck) > 0:
		return requirementRow("R28", title, thr, fmt.Sprintf("%d of %d pods not rescheduled", len(stuck), n),
			measure.Verdict{Status: measure.Fail, Reason: "not Ready elsewhere while the node was down: " + strings.Join(stuck, ", ")}, ev)
	}
	return requirementRow("R28", title, thr, fmt.Sprintf("%d pods Ready elsewhere within %s", n, slowest.Round(time.Millisecond)),
		reword(measure.AtMost(measure.Known(slowest), limit), "slowest "+slowest.Round(time.Millisecond).String(), "<=", limit.String()), ev)
}

// dataLossRow judges no-data-loss from the prober's verification.
func dataLossRow(o *observed, figs []*figures) reports.Requirement {
	const id, title = "no-data-loss", "No acknowledged write lost"
	thr := "every acknowledged prober write is present after the run"
	var ev []string
	for _, n := range []string{chaosmesh.PostgresPrimaryFailure, chaosmesh.RedisMasterFailure} {
		if expFigures(figs, n) != nil {
			ev = append(ev, reports.ExperimentAnchor(n))
		}
	}
	if o.verify == nil {
		return requirementRow(id, title, thr, "", measure.Missing(o.verifyWhy), ev...)
	}
	var vs []measure.Verdict
	var measured []string
	for _, store := range []string{probeapi.StorePostgres, probeapi.StoreRedis} {
		sv, ok := o.verify.Stores[store]
		switch {
		case !ok:
			vs = append(vs, measure.Missing(store+": not verified"))
		case sv.Error != "":
			vs = append(vs, measure.Missing(store+": could not be read back: "+sv.Error))
		case sv.Acked == 0:
			vs = append(vs, measure.Missing(store+": no acknowledged write to check"))
		default:
			measured = append(measured, fmt.Sprintf("%s: %d of %d lost", store, len(sv.Missing), sv.Acked))
			v := measure.AtMost(measure.Known(len(sv.Missing)), 0)
			v.Reason = fmt.Sprintf("%s: %d acknowledged writes lost", store, len(sv.Missing))
			vs = append(vs, v)
		}
	}
	return requirementRow(id, title, thr, strings.Join(measured, "; "), measure.All(vs...), ev...)
}

// reword replaces the reason of a pass or a failure with the figure and
// limit in the report's units; a verdict not reached keeps its reason.
func reword(v measure.Verdict, figure, op, limit string) measure.Verdict {
	switch v.Status {
	case measure.Pass:
		v.Reason = fmt.Sprintf("%s %s %s", figure, op, limit)
	case measure.Fail:
		v.Reason = fmt.Sprintf("%s, not %s %s", figure, op, limit)
	}
	return v
}

func percent(f float64) string { return fmt.Sprintf("%.2f %%", f*100) }

func fmtRate(v measure.Value[float64]) string {
	if !v.Known {
		return "unknown"
	}
	return percent(v.V)
}

func joinFigures(s ...string) string {
	var out []string
	for _, x := range s {
		if x != "" {
			out = append(out, x)
		}
	}
	return strings.Join(out, "; ")
}

func firstReason(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
