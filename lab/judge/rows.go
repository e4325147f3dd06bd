package judge

import (
	"fmt"
	"strings"
	"time"

	"github.com/jewelry-shop/lab/lab/measure"
	"github.com/jewelry-shop/lab/reports"
)

// interruptedReason is why a whole-run requirement of an interrupted run is
// not run.
const interruptedReason = "the run was interrupted before it completed"

// judgement is what every requirement is judged on.
type judgement struct {
	o       *Observation
	crit    Criteria
	d       runData
	figs    []*figures
	windows []measure.Window
}

// requirements judges every requirement, in the report's order.
func requirements(o *Observation, crit Criteria, d runData, figs []*figures, windows []measure.Window) []reports.Requirement {
	j := &judgement{o: o, crit: crit, d: d, figs: figs, windows: windows}
	pg := j.failover(RolePostgresPrimary)
	redis := j.failover(RoleRedisMaster)
	return []reports.Requirement{
		j.whole(j.load()),
		j.masters(pg, redis),
		j.webPods(),
		j.node(),
		pg.row("R29", "PostgreSQL failover", j.failoverThreshold()),
		redis.row("R30", "Redis failover", j.failoverThreshold()),
		j.whole(j.availability()),
		j.partition(),
		j.health(),
		j.stress(),
		j.scaleDown(),
		j.whole(j.dataLoss()),
	}
}

// whole marks a whole-run requirement: without a completed run it is not
// run, unless a measured failure stands.
func (j *judgement) whole(q reports.Requirement) reports.Requirement {
	if j.o.Stopped != nil && q.Status != reports.Fail {
		q.Status, q.Reason = reports.NotRun, interruptedReason
	}
	return q
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

// withValues sets a row's typed figures.
func withValues(q reports.Requirement, vs ...reports.Value) reports.Requirement {
	q.Values = vs
	return q
}

func notRunRow(id, title, threshold, reason string, evidence ...string) reports.Requirement {
	return reports.Requirement{ID: id, Title: title, Threshold: threshold, Status: reports.NotRun, Reason: reason, Evidence: evidence}
}

// notInProfileRow is a requirement the run's profile does not validate.
func notInProfileRow(id, title, threshold, reason string) reports.Requirement {
	return reports.Requirement{ID: id, Title: title, Threshold: threshold, Status: reports.NotInProfile, Reason: reason}
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

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

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
