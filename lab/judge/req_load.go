package judge

import (
	"fmt"
	"strings"
	"time"

	"github.com/jewelry-shop/lab/lab/measure"
	"github.com/jewelry-shop/lab/reports"
	"github.com/jewelry-shop/lab/shop/probeapi"
)

// load judges R25: the users held, their p95 latency and their error rate
// outside fault windows.
func (j *judgement) load() reports.Requirement {
	o, th := j.o, j.crit.Thresholds
	title := fmt.Sprintf("%d concurrent users", j.crit.Users)
	thr := fmt.Sprintf("p95 < %s; error rate outside fault windows < %s; %d users held", th.P95, percent(th.ErrorRateOutside), j.crit.Users)
	switch {
	case !o.LoadRan:
		return notRunRow("R25", title, thr, "the run stopped before the load", reports.AnchorLoad)
	case o.Load == nil:
		return requirementRow("R25", title, thr, "", measure.Missing(fmt.Sprintf("the load failed: %v", o.LoadErr)), reports.AnchorLoad)
	}
	_, outside := measure.SplitBuckets(j.d.buckets, j.windows)
	p95 := measure.Unknown[time.Duration]("no requests")
	if o.Load.Overall.Requests > 0 {
		p95 = measure.Known(o.Load.Overall.Latency.P95)
	}
	rate := outside.ErrorRate()
	v := measure.All(
		reword(measure.Below(p95, th.P95), fmt.Sprintf("p95 %s", ms(p95.V)), "<", th.P95.String()),
		reword(measure.Below(rate, th.ErrorRateOutside), "error rate outside fault windows "+fmtRate(rate), "<", percent(th.ErrorRateOutside)),
		reword(measure.AtLeast(measure.Known(o.Load.Generator.MaxUsers), j.crit.Users), fmt.Sprintf("%d users held", o.Load.Generator.MaxUsers), ">=", fmt.Sprint(j.crit.Users)),
	)
	measured := fmt.Sprintf("p95 %s; %s errors outside fault windows (%d of %d); %d users held",
		ms(o.Load.Overall.Latency.P95), fmtRate(rate), outside.Failed, outside.Total, o.Load.Generator.MaxUsers)
	if v.Status == measure.Pass && o.Load.StopReason != "duration" {
		v = measure.Missing("the load stopped early: " + o.Load.StopReason)
	}
	vals := []reports.Value{reports.Seconds("p95", o.Load.Overall.Latency.P95)}
	if rate.Known {
		vals = append(vals, reports.Ratio("error rate outside fault windows", rate.V))
	}
	vals = append(vals, reports.Number("users held", int64(o.Load.Generator.MaxUsers)))
	return withValues(requirementRow("R25", title, thr, measured, v, reports.AnchorLoad, reports.AnchorCharts), vals...)
}

// availability judges R31: the successful share of user requests over the
// run and their error rate inside the fault windows.
func (j *judgement) availability() reports.Requirement {
	o, th := j.o, j.crit.Thresholds
	thr := fmt.Sprintf("availability ≥ %s over the run; error rate inside fault windows < %s", percent(th.Availability), percent(th.ErrorRateInside))
	if o.Load == nil {
		return requirementRow("R31", "Service availability", thr, "", measure.Missing("no load results"), reports.AnchorAvailability)
	}
	all := measure.Count{Total: o.Load.Overall.Requests, Failed: o.Load.Overall.Failures}
	inside, _ := measure.SplitBuckets(j.d.buckets, j.windows)
	insideRate := inside.ErrorRate()
	if len(j.windows) == 0 {
		insideRate = measure.Unknown[float64]("no fault window in this run")
	}
	v := measure.All(
		reword(measure.AtLeast(all.Availability(), th.Availability), "availability "+fmtRate(all.Availability()), ">=", percent(th.Availability)),
		reword(measure.Below(insideRate, th.ErrorRateInside), "error rate inside fault windows "+fmtRate(insideRate), "<", percent(th.ErrorRateInside)),
	)
	measured := fmt.Sprintf("%s available over the run (%d of %d failed); %s errors inside fault windows", fmtRate(all.Availability()), all.Failed, all.Total, fmtRate(insideRate))
	var vals []reports.Value
	if a := all.Availability(); a.Known {
		vals = append(vals, reports.Ratio("availability", a.V))
	}
	if insideRate.Known {
		vals = append(vals, reports.Ratio("error rate inside fault windows", insideRate.V))
	}
	return withValues(requirementRow("R31", "Service availability", thr, measured, v, reports.AnchorAvailability), vals...)
}

// dataLoss judges no-data-loss from the prober's verification.
func (j *judgement) dataLoss() reports.Requirement {
	const id, title = "no-data-loss", "No acknowledged write lost"
	thr := "every acknowledged prober write is present after the run"
	o := j.o
	var ev []string
	for _, r := range []Role{RolePostgresPrimary, RoleRedisMaster} {
		if f := firstOfRole(j.figs, r); f != nil {
			ev = append(ev, reports.ExperimentAnchor(f.x.Name))
		}
	}
	if o.Verify == nil {
		return requirementRow(id, title, thr, "", measure.Missing(o.VerifyWhy), ev...)
	}
	var vs []measure.Verdict
	var measured []string
	var vals []reports.Value
	for _, store := range []string{probeapi.StorePostgres, probeapi.StoreRedis} {
		sv, ok := o.Verify.Stores[store]
		switch {
		case !ok:
			vs = append(vs, measure.Missing(store+": not verified"))
		case sv.Error != "":
			vs = append(vs, measure.Missing(store+": could not be read back: "+sv.Error))
		case sv.Acked == 0:
			vs = append(vs, measure.Missing(store+": no acknowledged write to check"))
		default:
			measured = append(measured, fmt.Sprintf("%s: %d of %d lost", store, len(sv.Missing), sv.Acked))
			vals = append(vals, reports.Number("lost writes "+store, int64(len(sv.Missing))))
			v := measure.AtMost(measure.Known(len(sv.Missing)), 0)
			v.Reason = fmt.Sprintf("%s: %d acknowledged writes lost", store, len(sv.Missing))
			vs = append(vs, v)
		}
	}
	return withValues(requirementRow(id, title, thr, strings.Join(measured, "; "), measure.All(vs...), ev...), vals...)
}
