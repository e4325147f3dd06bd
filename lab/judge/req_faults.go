package judge

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jewelry-shop/lab/lab/measure"
	"github.com/jewelry-shop/lab/reports"
)

// failoverJudged is the judgement of a store's failovers by their RTO: of
// every fault of the store's role in the plan (the PostgreSQL primary
// stopped and cut off, say).
type failoverJudged struct {
	figs     []*figures // none when the profile has no such fault
	v        measure.Verdict
	measured string
	// skipped is NotInProfile or NotRun when no fault of the role was in
	// the plan or none ran; empty when one ran.
	skipped reports.Status
	values  []reports.Value
}

func (j *judgement) failoverThreshold() string {
	return fmt.Sprintf("RTO < %s", j.crit.Thresholds.Failover)
}

// anchors are the experiment sections of the judged faults.
func (fj failoverJudged) anchors() []string {
	var ev []string
	for _, f := range fj.figs {
		ev = append(ev, reports.ExperimentAnchor(f.x.Name))
	}
	return ev
}

// failover judges every fault of a store role by its RTO: each must
// recover within the limit.
func (j *judgement) failover(r Role) failoverJudged {
	figs := ofRole(j.figs, r)
	fj := failoverJudged{figs: figs}
	var notRun []string
	for _, f := range figs {
		if f.x.NotRun != "" {
			notRun = append(notRun, f.x.Name+": "+f.x.NotRun)
		}
	}
	switch {
	case len(figs) == 0:
		fj.v, fj.skipped = measure.Missing(notInProfile(r)), reports.NotInProfile
		return fj
	case len(notRun) == len(figs):
		fj.v, fj.skipped = measure.Missing(strings.Join(notRun, "; ")), reports.NotRun
		return fj
	}
	var vs []measure.Verdict
	var measured []string
	for _, f := range figs {
		v, m, val := j.oneFailover(f)
		vs = append(vs, v)
		if m != "" {
			measured = append(measured, m)
		}
		if val != nil {
			fj.values = append(fj.values, *val)
		}
	}
	fj.v, fj.measured = measure.All(vs...), strings.Join(measured, "; ")
	return fj
}

// oneFailover judges one store fault by its RTO.
func (j *judgement) oneFailover(f *figures) (measure.Verdict, string, *reports.Value) {
	name, limit := f.x.Name, j.crit.Thresholds.Failover
	switch {
	case f.x.NotRun != "":
		return measure.Missing(name + ": " + f.x.NotRun), "", nil
	case !f.measured:
		return measure.Missing(name + ": " + f.why), "", nil
	case noEffect(f):
		return measure.Missing(fmt.Sprintf("%s: the fault had no effect that was seen: every %s sample after the injection succeeded and %s stayed the leader, so no failover or restart was timed (was the pod really taken down?)",
			name, f.source, f.x.LeaderBefore)), "", nil
	}
	v := f.rec.Below(limit)
	var measured string
	var val *reports.Value
	if f.rec.RTO.Known {
		v = reword(v, "RTO "+ms(f.rec.RTO.V), "<", limit.String())
		measured = fmt.Sprintf("%s: RTO %s", name, ms(f.rec.RTO.V))
		x := reports.Seconds("rto "+name, f.rec.RTO.V)
		val = &x
	} else if f.rec.AtLeast > 0 {
		measured = fmt.Sprintf("%s: RTO at least %s", name, ms(f.rec.AtLeast))
	}
	if v.Status != measure.Pass {
		v.Reason = name + ": " + v.Reason
	}
	return v, measured, val
}

// noEffect reports whether a store fault left no trace: no sample failed
// after the injection and the same pod led before and after. A master that
// was really down for longer than the sampling interval shows one or the
// other, so the RTO of 0 such a fault gives is not a recovery time.
func noEffect(f *figures) bool {
	return f.rec.RTO.Known && f.rec.NoOutage && f.x.LeaderBefore != "" && f.x.LeaderBefore == f.x.LeaderAfter
}

// row is the failover's own requirement (R29, R30).
func (fj failoverJudged) row(id, title, thr string) reports.Requirement {
	switch fj.skipped {
	case reports.NotInProfile:
		return notInProfileRow(id, title, thr, fj.v.Reason)
	case reports.NotRun:
		return notRunRow(id, title, thr, fj.v.Reason, fj.anchors()...)
	}
	return withValues(requirementRow(id, title, thr, fj.measured, fj.v, fj.anchors()...), fj.values...)
}

// masters judges R26: the PostgreSQL primary and the Redis master recover.
func (j *judgement) masters(pg, redis failoverJudged) reports.Requirement {
	const id, title = "R26", "Kill master nodes"
	thr := "the PostgreSQL primary and the Redis master recover: " + j.failoverThreshold()
	ev := append(pg.anchors(), redis.anchors()...)
	vals := append(slices.Clone(pg.values), redis.values...)
	switch {
	case pg.skipped == reports.NotInProfile && redis.skipped == reports.NotInProfile:
		return notInProfileRow(id, title, thr, "no PostgreSQL primary or Redis master failure is in the profile")
	case pg.skipped != "" && redis.skipped != "":
		return notRunRow(id, title, thr, pg.v.Reason+"; "+redis.v.Reason, ev...)
	}
	return withValues(requirementRow(id, title, thr, joinFigures(pg.measured, redis.measured), measure.All(pg.v, redis.v), ev...), vals...)
}

// webPods judges R27: after each web pod fault the web replicas are back
// at their Ready count within the limit.
func (j *judgement) webPods() reports.Requirement {
	const id, title = "R27", "Kill random pods"
	limit := j.crit.Thresholds.PodRecovery
	thr := fmt.Sprintf("web replicas Ready again within %s", limit)
	var ran []*figures
	var reasons []string
	planned := ofRole(j.figs, RoleWebPod)
	for _, f := range planned {
		if f.x.NotRun == "" {
			ran = append(ran, f)
		} else {
			reasons = append(reasons, f.x.Name+": "+f.x.NotRun)
		}
	}
	switch {
	case len(planned) == 0:
		return notInProfileRow(id, title, thr, "no web pod experiment is in the profile")
	case len(ran) == 0:
		return notRunRow(id, title, thr, strings.Join(reasons, "; "))
	}
	var measured, ev []string
	var vs []measure.Verdict
	var vals []reports.Value
	for _, f := range ran {
		name := f.x.Name
		ev = append(ev, reports.ExperimentAnchor(name))
		st, why := steadiness(j.o, f)
		if why != "" {
			vs = append(vs, measure.Missing(name+": "+why))
		} else {
			after := ms(st.After.V)
			back := fmt.Sprintf("the web replicas were back at %d Ready", st.Want)
			if st.belowDesired() {
				back += fmt.Sprintf(" (their count before the fault; the HPA's scale-up to %d was under way)", st.Desired)
			}
			if st.Replacement != nil {
				measured = append(measured, fmt.Sprintf("%s: the replacement pod passed its readiness probe and %s, %s after the kill", name, back, after))
			} else {
				measured = append(measured, fmt.Sprintf("%s: %s, %s after the fault (lowest %d)", name, back, after, st.Lowest))
			}
			vs = append(vs, reword(measure.AtMost(st.After, limit), name+": Ready again after "+after, "<=", limit.String()))
			vals = append(vals, reports.Seconds("web replicas Ready again "+name, st.After.V))
		}
		if f.measured && f.rec.RTO.Known {
			measured = append(measured, fmt.Sprintf("%s: user requests recovered after %s", name, ms(f.rec.RTO.V)))
		}
	}
	return withValues(requirementRow(id, title, thr, strings.Join(measured, "; "), measure.All(vs...), ev...), vals...)
}

// node judges R28: every pod of a ReplicaSet on the stopped node runs Ready
// elsewhere within the limit of the stop.
func (j *judgement) node() reports.Requirement {
	const id, title = "R28", "Node failure"
	limit := j.crit.Thresholds.NodeRecovery
	thr := fmt.Sprintf("evicted pods Ready on other nodes within %s", limit)
	f := firstOfRole(j.figs, RoleNodeFailure)
	switch {
	case f == nil:
		return notInProfileRow(id, title, thr, notInProfile(RoleNodeFailure))
	case f.x.NotRun != "":
		return notRunRow(id, title, thr, f.x.NotRun, reports.ExperimentAnchor(f.x.Name))
	}
	ev := reports.ExperimentAnchor(f.x.Name)
	nf := f.x.Node
	if nf == nil || nf.StoppedAt.IsZero() {
		return requirementRow(id, title, thr, "", measure.Missing("the node was not stopped: "+f.x.Failure), ev)
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
		return requirementRow(id, title, thr, "", measure.Missing("no Deployment pod ran on node "+nf.Node), ev)
	case len(stuck) > 0:
		return withValues(requirementRow(id, title, thr, fmt.Sprintf("%d of %d pods not rescheduled", len(stuck), n),
			measure.Verdict{Status: measure.Fail, Reason: "not Ready elsewhere while the node was down: " + strings.Join(stuck, ", ")}, ev),
			reports.Number("pods not rescheduled", int64(len(stuck))))
	}
	return withValues(requirementRow(id, title, thr, fmt.Sprintf("%d pods Ready elsewhere within %s", n, ms(slowest)),
		reword(measure.AtMost(measure.Known(slowest), limit), "slowest "+ms(slowest), "<=", limit.String()), ev),
		reports.Seconds("slowest pod Ready elsewhere", slowest), reports.Number("pods rescheduled", int64(n)))
}

// partition judges R32: user requests recover within the limit after the
// partition heals.
func (j *judgement) partition() reports.Requirement {
	const id, title = "R32", "Network partition"
	limit := j.crit.Thresholds.PartitionRecovery
	thr := fmt.Sprintf("user requests recover within %s after the partition heals", limit)
	f := firstOfRole(j.figs, RolePartition)
	switch {
	case f == nil:
		return notInProfileRow(id, title, thr, notInProfile(RolePartition))
	case f.x.NotRun != "":
		return notRunRow(id, title, thr, f.x.NotRun, reports.ExperimentAnchor(f.x.Name))
	case !f.hasHealed:
		return requirementRow(id, title, thr, "", measure.Missing(firstReason(f.why, "the partition's removal was not observed")), reports.ExperimentAnchor(f.x.Name))
	}
	q := requirementRow(id, title, thr, "", f.healed.Below(limit), reports.ExperimentAnchor(f.x.Name))
	if f.healed.RTO.Known {
		q.Measured = "recovered " + ms(f.healed.RTO.V) + " after the heal"
		q.Values = []reports.Value{reports.Seconds("recovery after the heal", f.healed.RTO.V)}
	}
	return q
}

// steady is when the web replicas were whole again after a fault.
type steady struct {
	measure.Settle
	// Want is the Ready count measured against: the count wanted by the
	// Deployment at the reference time, or the Ready count just before the
	// fault when that was lower. A scale-up under way when the fault struck
	// (the HPA's new pods still starting) is not the fault's to finish.
	// Desired is the count the Deployment wanted.
	Want, Desired int32
	// Replacement is the pod that replaced the one a web pod kill took,
	// nil for other faults or when none was seen Ready.
	Replacement *PodSeen
}

// belowDesired says that the fault was measured against the Ready count
// before it rather than the Deployment's wanted count.
func (s steady) belowDesired() bool { return s.Want < s.Desired }

// steadiness measures when the web replicas were back at their count after
// a fault: from its injection, or from the removal of a held fault; why says
// why it could not be measured. After a web pod kill, the Ready count alone
// can miss the dip (a replacement Ready before the count is read again):
// then the replacement's readiness, when later, is the time.
func steadiness(o *Observation, f *figures) (steady, string) {
	st, why := readyCount(o, f)
	if why != "" {
		return st, why
	}
	st.Replacement = replacement(o, f)
	if r := st.Replacement; r != nil && r.ReadyAt.After(st.At) {
		ref := st.At.Add(-st.After.V)
		st.At, st.After = r.ReadyAt, measure.Known(r.ReadyAt.Sub(ref))
	}
	return st, ""
}

// replacement is the pod that replaced the one a web pod kill took: the
// first pod created at or after the kill (creation times are kept to the
// second) that became Ready; nil for other faults or when there is none.
func replacement(o *Observation, f *figures) *PodSeen {
	if o.Replicas == nil || f.x.Role != RoleWebPod || f.x.Held > 0 || f.x.InjectedAt.IsZero() {
		return nil
	}
	from := f.x.InjectedAt.Truncate(time.Second)
	var best *PodSeen
	for i, p := range o.Replicas.Pods {
		if p.Created.Before(from) || p.ReadyAt.IsZero() {
			continue
		}
		if best == nil || p.Created.Before(best.Created) || (p.Created.Equal(best.Created) && p.ReadyAt.Before(best.ReadyAt)) {
			best = &o.Replicas.Pods[i]
		}
	}
	return best
}

// readyCount measures when the web replicas' Ready count was back for
// good at the count the fault is measured against (see steady.Want).
func readyCount(o *Observation, f *figures) (steady, string) {
	switch {
	case o.Replicas == nil:
		return steady{}, replicasWhy(o)
	case !f.hasWindow:
		return steady{}, "the fault was not injected"
	}
	ref := f.x.InjectedAt
	if f.x.Held > 0 && !f.x.RemovedAt.IsZero() {
		ref = f.x.RemovedAt
	}
	desired := measure.CountAt(o.Replicas.Desired, ref)
	if !desired.Known {
		return steady{}, "the wanted replicas are not known: " + desired.Reason
	}
	st := steady{Want: desired.V, Desired: desired.V}
	// The count in effect when the experiment was applied: Chaos Mesh's
	// record of the injection is kept to the second, and may be later.
	before := f.x.InjectedAt
	if !f.x.AppliedAt.IsZero() && f.x.AppliedAt.Before(before) {
		before = f.x.AppliedAt
	}
	if ready := measure.CountAt(o.Replicas.Ready, before); ready.Known && ready.V < st.Want {
		st.Want = ready.V
	}
	end := f.horizon.End
	if o.ObservedUntil.Before(end) {
		end = o.ObservedUntil
	}
	st.Settle = measure.Steady(o.Replicas.Ready, ref, end, st.Want)
	if !st.After.Known {
		return st, st.After.Reason
	}
	return st, ""
}

// replicasWhy says why there are no replica observations.
func replicasWhy(o *Observation) string {
	if o.ReplicasErr == nil {
		return "the replica observer did not run"
	}
	return o.ReplicasErr.Error()
}
