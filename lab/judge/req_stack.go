package judge

import (
	"fmt"
	"strings"
	"time"

	"github.com/jewelry-shop/lab/lab/measure"
	"github.com/jewelry-shop/lab/reports"
)

// health judges R33: every live workload has readiness and liveness probes,
// and the health endpoint was polled all run.
func (j *judgement) health() reports.Requirement {
	const id, title = "R33", "Automated health checks"
	const thr = "every workload has readiness and liveness probes; the health endpoint answers all run"
	o := j.o
	if o.Probes == nil {
		return requirementRow(id, title, thr, "", measure.Missing(o.ProbesWhy), reports.AnchorHealthChecks)
	}
	var missing []string
	for _, w := range o.Probes {
		switch {
		case !w.Readiness && !w.Liveness:
			missing = append(missing, w.Workload+" has neither probe")
		case !w.Readiness:
			missing = append(missing, w.Workload+" has no readiness probe")
		case !w.Liveness:
			missing = append(missing, w.Workload+" has no liveness probe")
		}
	}
	both := len(o.Probes) - len(missing)
	measured := fmt.Sprintf("%d of %d workloads have both probes", both, len(o.Probes))
	probes := measure.Verdict{Status: measure.Pass, Reason: measured}
	if len(o.Probes) == 0 {
		probes = measure.Missing("no Deployment or StatefulSet in the namespace")
	} else if len(missing) > 0 {
		probes = measure.Verdict{Status: measure.Fail, Reason: strings.Join(missing, "; ")}
	}
	vals := []reports.Value{reports.Number("workloads with both probes", int64(both)), reports.Number("workloads", int64(len(o.Probes)))}
	polled, pollText, answered := healthPolled(o)
	if pollText != "" {
		measured += "; " + pollText
	}
	if answered.Known {
		vals = append(vals, reports.Ratio("health endpoint answered", answered.V))
	}
	return withValues(requirementRow(id, title, thr, measured, measure.All(probes, polled), reports.AnchorHealthChecks), vals...)
}

// healthPolled judges the second half of R33: the health endpoint was
// polled all run, about once a second without a gap; its answers are
// reported (a failing health endpoint during a fault is what the fault
// does, and R31 judges availability).
func healthPolled(o *Observation) (measure.Verdict, string, measure.Value[float64]) {
	none := measure.Unknown[float64]("not polled")
	if !o.HealthPolled {
		return measure.Missing(firstReason(o.HealthWhy, "the health endpoint was not polled during the run")), "", none
	}
	span := o.HealthTo.Sub(o.HealthFrom)
	if len(o.Health) == 0 {
		return measure.Missing("the health endpoint's poller recorded nothing"), "", none
	}
	count := measure.Count{Total: int64(len(o.Health))}
	gap, last := time.Duration(0), o.HealthFrom
	for _, s := range o.Health {
		if !s.OK {
			count.Failed++
		}
		gap, last = max(gap, s.At.Sub(last)), s.At
	}
	gap = max(gap, o.HealthTo.Sub(last))
	text := fmt.Sprintf("health endpoint polled %d times over %s, %s answered", count.Total, span.Round(time.Second), fmtRate(count.Availability()))
	if gap > 5*time.Second {
		return measure.Missing(fmt.Sprintf("the health endpoint went %s without a poll", gap.Round(time.Second))), text, count.Availability()
	}
	return measure.Verdict{Status: measure.Pass, Reason: text}, text, count.Availability()
}

// stress judges R34: availability held and the HPA reacted under CPU and
// memory stress.
func (j *judgement) stress() reports.Requirement {
	const id, title = "R34", "Resource exhaustion"
	thr := "availability held and the HPA reacted under CPU and memory stress"
	var planned, ran []*figures
	for _, r := range []Role{RoleCPUStress, RoleMemoryStress} {
		planned = append(planned, ofRole(j.figs, r)...)
	}
	var ev, reasons []string
	for _, f := range planned {
		ev = append(ev, reports.ExperimentAnchor(f.x.Name))
		if f.x.NotRun == "" {
			ran = append(ran, f)
		} else {
			reasons = append(reasons, f.x.Name+": "+f.x.NotRun)
		}
	}
	switch {
	case len(planned) == 0:
		return notInProfileRow(id, title, thr, "no stress experiment is in the profile")
	case len(ran) == 0:
		return notRunRow(id, title, thr, strings.Join(reasons, "; "), ev...)
	}
	var vs []measure.Verdict
	var measured []string
	var vals []reports.Value
	for _, f := range ran {
		v, m, val := j.stressVerdict(f)
		vs = append(vs, v)
		if m != "" {
			measured = append(measured, m)
		}
		if val != nil {
			vals = append(vals, *val)
		}
	}
	return withValues(requirementRow(id, title, thr, strings.Join(measured, "; "), measure.All(vs...), ev...), vals...)
}

// stressVerdict judges one stress experiment for R34: only a stress that
// shows in the pods' usage is reported on; then the error rate inside its
// window must stay under the inside threshold and the HPA must have reacted
// (more replicas than at the injection, or already at its maximum).
func (j *judgement) stressVerdict(f *figures) (measure.Verdict, string, *reports.Value) {
	o, x, th := j.o, f.x, j.crit.Thresholds
	name := x.Name
	cpu := x.Role == RoleCPUStress
	switch {
	case x.InjectedAt.IsZero():
		return measure.Missing(name + ": the fault was not injected: " + x.Failure), "", nil
	case x.UsageBefore == nil || x.UsageDuring == nil:
		return measure.Missing(name + ": " + firstReason(x.UsageWhy, "the pods' usage was not read during the stress")), "", nil
	}
	perPod := x.StressMemoryBytes
	if cpu {
		perPod = x.StressCPUMilli
	}
	sc := CheckStress(cpu, *x.UsageBefore, *x.UsageDuring, perPod)
	what, unit := "memory", func(v int64) string { return fmt.Sprintf("%d MiB", v>>20) }
	if cpu {
		what, unit = "CPU", func(v int64) string { return fmt.Sprintf("%dm", v) }
	}
	usage := fmt.Sprintf("%s %s → %s over the %d pods read before and during", what, unit(sc.Before), unit(sc.During), len(sc.Common))
	atLimit := ""
	if len(sc.AtLimit) > 0 {
		atLimit = fmt.Sprintf("at their %s limit before the stress, where it cannot show: %s", what, strings.Join(sc.AtLimit, ", "))
	}
	switch {
	case len(sc.Common) == 0:
		return measure.Missing(fmt.Sprintf("%s: no pod was read both before and during the stress (%d before, %d during): the usage of other pods says nothing about it, so it is not reported on", name, len(x.UsageBefore.PerPod), len(x.UsageDuring.PerPod))), "", nil
	case len(sc.Rose) == 0 && len(sc.Flat) == 0:
		return measure.Missing(fmt.Sprintf("%s: every stressed pod was at its %s limit before the stress (%s): the stress cannot show in their usage, so it is not reported on", name, what, strings.Join(sc.AtLimit, ", "))), "", nil
	case !sc.Shown():
		reason := fmt.Sprintf("%s: the stress did not show in the usage of %s (%s; each needed %s more); StressChaos on containerd cgroups can silently do nothing, so it is not reported on", name, strings.Join(sc.Flat, ", "), usage, unit(sc.Need))
		if atLimit != "" {
			reason += "; " + atLimit
		}
		return measure.Missing(reason), "", nil
	}
	if atLimit != "" {
		usage += "; " + atLimit
	}
	measured := name + ": " + usage
	var vs []measure.Verdict
	var val *reports.Value
	if !f.hasWindow {
		vs = append(vs, measure.Missing(name+": no fault window"))
	} else {
		inside, _ := measure.SplitBuckets(j.d.buckets, []measure.Window{f.window})
		rate := inside.ErrorRate()
		measured += ", errors inside " + fmtRate(rate)
		vs = append(vs, reword(measure.Below(rate, th.ErrorRateInside), name+": error rate inside "+fmtRate(rate), "<", percent(th.ErrorRateInside)))
		if rate.Known {
			v := reports.Ratio("error rate inside "+name, rate.V)
			val = &v
		}
	}
	switch {
	case o.Replicas == nil:
		vs = append(vs, measure.Missing(name+": the HPA was not observed: "+replicasWhy(o)))
	case o.Replicas.HPA == "":
		vs = append(vs, measure.Missing(name+": the HPA was not observed: "+o.Replicas.HPAMissing))
	default:
		at := measure.CountAt(o.Replicas.HPAReplicas, x.InjectedAt)
		peak, _ := measure.Peak(o.Replicas.HPAReplicas, f.window)
		switch {
		case !at.Known || !peak.Known:
			vs = append(vs, measure.Missing(name+": the HPA replicas around the stress are not known"))
		case peak.V > at.V || at.V >= o.Replicas.Max:
			measured += fmt.Sprintf(", HPA %d → %d replicas", at.V, peak.V)
			vs = append(vs, measure.Verdict{Status: measure.Pass, Reason: fmt.Sprintf("%s: the HPA went from %d to %d replicas", name, at.V, peak.V)})
		default:
			measured += fmt.Sprintf(", HPA stayed at %d replicas", at.V)
			vs = append(vs, measure.Verdict{Status: measure.Fail, Reason: fmt.Sprintf("%s: the HPA did not react (%d replicas before and at most %d during)", name, at.V, peak.V)})
		}
	}
	return measure.All(vs...), measured, val
}

// scaleDown judges R35: the HPA above its minimum under load (at its
// maximum when the profile asks) and back to it within the limit.
func (j *judgement) scaleDown() reports.Requirement {
	const id, title = "R35", "Automatic scale-down"
	o, limit := j.o, j.crit.Thresholds.ScaleDown
	thr := fmt.Sprintf("HPA back to its minimum within %s after the load", limit)
	if j.crit.RequireHPAMax {
		thr = "HPA reaches its maximum under load; " + thr
	}
	if !o.ScaleDownWatched {
		return notRunRow(id, title, thr, "the scale-down watch did not run", reports.AnchorAutoscaling)
	}
	sd, why := scaling(o)
	if why != "" {
		return requirementRow(id, title, thr, "", measure.Missing(why), reports.AnchorAutoscaling)
	}
	rs := o.Replicas
	vs := []measure.Verdict{reword(measure.AtLeast(sd.Peak, rs.Min+1), fmt.Sprintf("peak %d replicas under load", sd.Peak.V), ">", fmt.Sprint(rs.Min))}
	if j.crit.RequireHPAMax {
		vs = append(vs, reword(measure.AtLeast(sd.Peak, rs.Max), fmt.Sprintf("peak %d replicas", sd.Peak.V), ">=", fmt.Sprint(rs.Max)))
	}
	within := sd.Within(limit)
	vals := []reports.Value{reports.Number("peak replicas", int64(sd.Peak.V))}
	if sd.After.Known {
		within = reword(within, "back to "+fmt.Sprint(rs.Min)+" after "+ms(sd.After.V), "<=", limit.String())
		vals = append(vals, reports.Seconds("scale-down", sd.After.V))
	}
	vs = append(vs, within)
	measured := fmt.Sprintf("peak %d of %d..%d replicas", sd.Peak.V, rs.Min, rs.Max)
	if sd.After.Known {
		measured += fmt.Sprintf("; back to %d %s after the load stopped", rs.Min, ms(sd.After.V))
	}
	return withValues(requirementRow(id, title, thr, measured, measure.All(vs...), reports.AnchorAutoscaling), vals...)
}

// loadStoppedAt is when the load stopped sending.
func loadStoppedAt(o *Observation) time.Time {
	if o.Load != nil && !o.Load.End.IsZero() {
		return o.Load.End
	}
	return o.LoadEnd
}

// scaling measures the HPA's scale-down after the load; why says why it
// could not be.
func scaling(o *Observation) (measure.Scaling, string) {
	switch {
	case o.Replicas == nil:
		return measure.Scaling{}, replicasWhy(o)
	case o.Replicas.HPAMissing != "":
		return measure.Scaling{}, o.Replicas.HPAMissing
	}
	sd := measure.ScaleDown(o.Replicas.HPAReplicas, loadStoppedAt(o), o.ObservedUntil, o.Replicas.Min)
	if !sd.Peak.Known {
		return sd, sd.Peak.Reason
	}
	return sd, ""
}

// autoscaling is the report's HPA section; nil when no HPA was observed.
func autoscaling(o *Observation) *reports.Autoscaling {
	rs := o.Replicas
	if rs == nil || rs.HPA == "" || rs.HPAMissing != "" {
		return nil
	}
	a := &reports.Autoscaling{HPA: rs.HPA, Min: rs.Min, Max: rs.Max, LoadStoppedAt: loadStoppedAt(o).UTC(), ObservedUntil: o.ObservedUntil.UTC(), NotMeasured: map[string]string{}}
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
