// Package measure is the lab's timeline mathematics: it turns time-stamped
// observations into the figures a validation report states (outages,
// recovery time, availability, error counts inside and outside fault
// windows, the time replicas take to settle and to scale down) and judges
// them against thresholds.
//
// Everything here is pure: no clock, no I/O, no state. Inputs are read in
// time order whatever order they are given in (each function sorts a copy),
// and every figure that cannot be computed from the data says why, in a
// [Value] that is not Known or a [Verdict] that is NotMeasured. Nothing in
// this package ever turns a missing figure into a pass.
//
// Latency percentiles are not computed here: the load generator keeps them
// in HDR histograms per endpoint and per second (package load).
//
// All times must come from one clock: the caller (the lab) stamps the
// observations of the load generator, the prober and the Kubernetes API on
// the same clock before handing them in.
package measure

import (
	"slices"
	"time"
)

// Sample is one observation of a service: a request or a probe that
// succeeded or failed.
//
// At is when the outcome became known. For a success that is the moment it
// was acknowledged, so that a recovery time measured from it is the time
// until the first acknowledged write. For a failure it is the moment the
// request was sent (the prober's outage windows start there) or the moment
// it failed; whichever the caller picks, FirstError is that moment.
type Sample struct {
	At time.Time
	OK bool
}

// Window is the half-open interval [Start, End).
type Window struct {
	Start, End time.Time
}

// Contains reports whether t lies in the window: Start <= t < End.
func (w Window) Contains(t time.Time) bool {
	return !t.Before(w.Start) && t.Before(w.End)
}

// Duration is End - Start; zero for an empty or inverted window.
func (w Window) Duration() time.Duration {
	return max(w.End.Sub(w.Start), 0)
}

// Overlaps reports whether the two windows share any instant.
func (w Window) Overlaps(o Window) bool {
	return w.Start.Before(o.End) && o.Start.Before(w.End)
}

// Merge returns the union of the windows as disjoint windows in time order:
// overlapping and touching windows are joined, empty ones dropped.
func Merge(ws []Window) []Window {
	sorted := slices.Clone(ws)
	slices.SortFunc(sorted, func(a, b Window) int { return a.Start.Compare(b.Start) })
	var out []Window
	for _, w := range sorted {
		if !w.Start.Before(w.End) {
			continue
		}
		if n := len(out); n > 0 && !w.Start.After(out[n-1].End) {
			if w.End.After(out[n-1].End) {
				out[n-1].End = w.End
			}
			continue
		}
		out = append(out, w)
	}
	return out
}

// inAny reports whether t lies in one of the merged windows.
func inAny(merged []Window, t time.Time) bool {
	i, _ := slices.BinarySearchFunc(merged, t, func(w Window, t time.Time) int {
		if !w.End.After(t) {
			return -1 // window ends at or before t
		}
		return 0
	})
	return i < len(merged) && merged[i].Contains(t)
}

// sortedSamples returns the samples in time order, stable for equal times.
func sortedSamples(samples []Sample) []Sample {
	s := slices.Clone(samples)
	slices.SortStableFunc(s, func(a, b Sample) int { return a.At.Compare(b.At) })
	return s
}

// Between returns the samples that lie in w, in time order. Use it to bound
// the data handed to [Recover] to one fault's horizon.
func Between(samples []Sample, w Window) []Sample {
	var out []Sample
	for _, s := range sortedSamples(samples) {
		if w.Contains(s.At) {
			out = append(out, s)
		}
	}
	return out
}

// Outage is a run of consecutive failed samples.
type Outage struct {
	// Window runs from the first failed sample to the first successful
	// sample after the run. For an outage still open at the end of the data
	// End is the time of the last failed sample.
	Window
	// Failures is the number of failed samples in the run.
	Failures int
	// Open is set when no success followed the run within the data.
	Open bool
}

// Outages returns the runs of failures in the samples, oldest first.
func Outages(samples []Sample) []Outage {
	var out []Outage
	var cur *Outage
	for _, s := range sortedSamples(samples) {
		switch {
		case !s.OK && cur == nil:
			out = append(out, Outage{Window: Window{Start: s.At, End: s.At}, Failures: 1, Open: true})
			cur = &out[len(out)-1]
		case !s.OK:
			cur.End = s.At
			cur.Failures++
		case cur != nil:
			cur.End, cur.Open = s.At, false
			cur = nil
		}
	}
	return out
}

// Count is a number of requests and how many of them failed.
type Count struct {
	Total, Failed int64
}

// Add returns the sum of two counts.
func (c Count) Add(o Count) Count {
	return Count{Total: c.Total + o.Total, Failed: c.Failed + o.Failed}
}

// Availability is the successful share, (Total-Failed)/Total, in [0, 1];
// not known when there were no requests.
func (c Count) Availability() Value[float64] {
	if c.Total <= 0 {
		return Unknown[float64]("no requests or samples in the period")
	}
	return Known(float64(c.Total-c.Failed) / float64(c.Total))
}

// ErrorRate is the failed share, Failed/Total, in [0, 1]; not known when
// there were no requests.
func (c Count) ErrorRate() Value[float64] {
	if c.Total <= 0 {
		return Unknown[float64]("no requests or samples in the period")
	}
	return Known(float64(c.Failed) / float64(c.Total))
}

// Tally counts the samples that lie in w.
func Tally(samples []Sample, w Window) Count {
	var c Count
	for _, s := range samples {
		if w.Contains(s.At) {
			c.Total++
			if !s.OK {
				c.Failed++
			}
		}
	}
	return c
}

// Split counts the samples that lie inside any of the fault windows and
// those outside all of them. Overlapping windows count a sample once.
func Split(samples []Sample, faults []Window) (inside, outside Count) {
	merged := Merge(faults)
	for _, s := range samples {
		c := &outside
		if inAny(merged, s.At) {
			c = &inside
		}
		c.Total++
		if !s.OK {
			c.Failed++
		}
	}
	return inside, outside
}

// Bucket is an aggregated interval of requests, such as one second of the
// load generator's series: Count requests were due in [Start, Start+Width).
type Bucket struct {
	Start time.Time
	Width time.Duration
	Count
}

// SplitBuckets counts the requests of the buckets that overlap any of the
// fault windows, and of those that do not.
//
// A bucket is indivisible: one that overlaps a fault window even partly
// counts as inside, so that no error caused by a fault is charged to the
// time outside the faults. The price is that up to one bucket width of
// normal traffic at each window's edges counts as inside; choose a bucket
// width that is small against the windows (the load series uses one
// second).
func SplitBuckets(buckets []Bucket, faults []Window) (inside, outside Count) {
	merged := Merge(faults)
	for _, b := range buckets {
		bw := Window{Start: b.Start, End: b.Start.Add(max(b.Width, 1))}
		overlaps := slices.ContainsFunc(merged, bw.Overlaps)
		if overlaps {
			inside = inside.Add(b.Count)
		} else {
			outside = outside.Add(b.Count)
		}
	}
	return inside, outside
}
