package measure

import (
	"fmt"
	"slices"
	"time"
)

// ReplicaPoint is a count observed at a time: the replicas of an HPA, or
// the Ready replicas of a workload. A count holds from At until the next
// point, so a timeline may list changes only, or periodic samples.
type ReplicaPoint struct {
	At       time.Time
	Replicas int32
}

func sortedPoints(points []ReplicaPoint) []ReplicaPoint {
	p := slices.Clone(points)
	slices.SortStableFunc(p, func(a, b ReplicaPoint) int { return a.At.Compare(b.At) })
	return p
}

// CountAt returns the count in effect at t: that of the last point at or
// before t.
func CountAt(points []ReplicaPoint, t time.Time) Value[int32] {
	v := Unknown[int32]("no data at or before the time")
	for _, p := range sortedPoints(points) {
		if p.At.After(t) {
			break
		}
		v = Known(p.Replicas)
	}
	return v
}

// Peak returns the highest count in effect at any instant of w, such as the
// HPA's replicas during a stress window, and when it was first reached (or
// w.Start, if it was already in effect then).
func Peak(points []ReplicaPoint, w Window) (Value[int32], time.Time) {
	sorted := sortedPoints(points)
	peak, at := Unknown[int32]("no data in the window"), time.Time{}
	for i, p := range sorted {
		inEffect := p.At.Before(w.End) && (i+1 == len(sorted) || sorted[i+1].At.After(w.Start))
		if inEffect && (!peak.Known || p.Replicas > peak.V) {
			peak, at = Known(p.Replicas), p.At
			if at.Before(w.Start) {
				at = w.Start
			}
		}
	}
	return peak, at
}

// settle returns the earliest time t >= from such that ok holds for the
// count in effect at every instant of [t, end], and whether ok failed for a
// count in effect in [from, end]. found is false when ok does not hold at
// end, or nothing is known about [from, end]. If the first point comes after
// from, the time before it is unknown and not judged.
func settle(points []ReplicaPoint, from, end time.Time, ok func(int32) bool) (at time.Time, dipped, found bool) {
	var segments []ReplicaPoint
	for _, p := range points {
		switch {
		case p.At.After(end):
		case !p.At.After(from):
			segments = append(segments[:0], p) // the count in effect at from
		default:
			segments = append(segments, p)
		}
	}
	for _, p := range segments {
		switch {
		case !ok(p.Replicas):
			dipped, found = true, false
		case !found:
			at, found = p.At, true
		}
	}
	if found && at.Before(from) {
		at = from
	}
	return at, dipped, found
}

// Settle is when a count reached a wanted level for good.
type Settle struct {
	// At is the time from which the count stayed at the wanted level until
	// the end of the data; After is At minus the reference time. Known only
	// when the wanted level held at the end.
	At    time.Time
	After Value[time.Duration]
	// Dipped is set when the count was below the wanted level at some time
	// after the reference; when it is not set the count was never seen
	// below it, and After is 0.
	Dipped bool
	// Lowest is the lowest count in effect from the reference time to the
	// end of the data.
	Lowest int32
}

// Steady measures when a workload was whole again after a fault: the time
// from which its Ready replicas stayed at or above want until end, measured
// from injectedAt. This is a fault's steady_at.
//
// end is the end of the observation (the next fault, or when the watch
// stopped); points after it are ignored. Counts hold until the next point.
func Steady(ready []ReplicaPoint, injectedAt, end time.Time, want int32) Settle {
	points := sortedPoints(ready)
	var s Settle
	s.Lowest = lowest(points, injectedAt, end)
	at, dipped, found := settle(points, injectedAt, end, func(n int32) bool { return n >= want })
	s.Dipped = dipped
	switch {
	case len(points) == 0:
		s.After = Unknown[time.Duration]("no readiness data")
	case !found && dipped:
		s.After = Unknown[time.Duration](fmt.Sprintf("not back to %d Ready replicas by the end of the data, %s after the injection", want, end.Sub(injectedAt)))
	case !found:
		s.After = Unknown[time.Duration]("no readiness data at or after the injection")
	default:
		s.At = at
		s.After = Known(at.Sub(injectedAt))
	}
	return s
}

// lowest returns the lowest count in effect in [from, end].
func lowest(points []ReplicaPoint, from, end time.Time) int32 {
	var low int32
	seen := false
	for i, p := range points {
		inEffect := !p.At.After(end) && (i+1 == len(points) || points[i+1].At.After(from))
		if inEffect && (!seen || p.Replicas < low) {
			low, seen = p.Replicas, true
		}
	}
	return low
}

// Scaling is what an HPA's replica timeline says about the end of the
// load.
type Scaling struct {
	// Peak is the highest replica count in effect before the load stopped,
	// and PeakAt when it was first reached.
	Peak   Value[int32]
	PeakAt time.Time
	// AtLoadStop is the replica count in effect when the load stopped.
	AtLoadStop Value[int32]
	// ReachedMinAt is the time from which the replicas stayed at min until
	// the end of the data; After is ReachedMinAt minus the load stop (0 if
	// the replicas were already at min then).
	ReachedMinAt time.Time
	After        Value[time.Duration]
	// Observed is how long the data lasts after the load stopped.
	Observed time.Duration
	// Final is the replica count at the end of the data.
	Final Value[int32]
}

// ScaleDown measures the scale-down after the load stopped at
// loadStoppedAt: the peak replicas under load and the time until the
// replicas reached min and stayed there until end (the end of the
// observation; points after it are ignored). Counts hold until the next
// point.
func ScaleDown(replicas []ReplicaPoint, loadStoppedAt, end time.Time, minReplicas int32) Scaling {
	points := sortedPoints(replicas)
	sd := Scaling{Observed: max(end.Sub(loadStoppedAt), 0)}
	noData := "no replica data before the load stopped"
	sd.Peak, sd.AtLoadStop, sd.Final = Unknown[int32](noData), Unknown[int32](noData), Unknown[int32]("no replica data")
	for _, p := range points {
		if p.At.After(end) {
			break
		}
		sd.Final = Known(p.Replicas)
		if p.At.After(loadStoppedAt) {
			continue
		}
		sd.AtLoadStop = Known(p.Replicas)
		if !sd.Peak.Known || p.Replicas > sd.Peak.V {
			sd.Peak, sd.PeakAt = Known(p.Replicas), p.At
		}
	}
	switch {
	case len(points) == 0:
		sd.After = Unknown[time.Duration]("no replica data")
		return sd
	case end.Before(loadStoppedAt):
		const why = "the observation ended before the load stopped"
		sd.AtLoadStop, sd.After = Unknown[int32](why), Unknown[time.Duration](why)
		return sd
	}
	at, _, found := settle(points, loadStoppedAt, end, func(n int32) bool { return n <= minReplicas })
	if !found {
		sd.After = Unknown[time.Duration](fmt.Sprintf("not back to %d replicas by the end of the data, %s after the load stopped", minReplicas, sd.Observed))
		return sd
	}
	sd.ReachedMinAt = at
	sd.After = Known(at.Sub(loadStoppedAt))
	return sd
}

// Within judges the scale-down time against limit (<=). A scale-down that
// did not happen fails when the data covers more than limit after the load
// stopped: the replicas were still above min that long.
func (sd Scaling) Within(limit time.Duration) Verdict {
	if !sd.After.Known && sd.Final.Known && sd.Observed > limit {
		return Verdict{Status: Fail, Reason: fmt.Sprintf("still %d replicas %s after the load stopped, limit %s", sd.Final.V, sd.Observed, limit)}
	}
	return AtMost(sd.After, limit)
}
