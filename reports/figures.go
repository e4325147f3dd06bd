package reports

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// The IDs of the charts the lab records (Run.Charts) that the report
// combines into the charts people look at; any other chart is drawn on its
// own.
const (
	chartRPS      = "rps"
	chartFailures = "failures"
	chartP95      = "p95"
)

// figure is one chart of the report, as both renderers draw it: the
// Markdown's Mermaid block and the SVG file charts/<id>.svg. A figure
// answers one question; its x-axis is the time since origin.
type figure struct {
	// id names the SVG file; title and unit label the chart.
	id, title, unit string
	// origin is the time the x-axis counts from; since names it for the
	// axis title ("start", "injection").
	origin time.Time
	since  string
	// series are the lines, drawn in order.
	series []series
	// refs are flat reference lines, e.g. the HPA's minimum.
	refs []refLine
	// markers are instants to point at, e.g. when the prober's writes
	// recovered.
	markers []marker
	// windows are every fault window of the run: those overlapping the
	// figure's time range are drawn, the others only named.
	windows []FaultWindow
	// noData says why there is nothing to draw; the figure is then only a
	// sentence.
	noData string
}

// series is one measured line of a figure.
type series struct {
	name  string
	color string
	// pts are the samples in time order, in the figure's unit.
	pts []Point
	// agg merges the samples of one chart position: "mean", "max", "sum",
	// or "last" (the value in effect at the end, for step series).
	agg string
	// step is set when a value holds until the next point (replica
	// counts): the line is drawn in steps and never has gaps.
	step bool
	// interval is the time one sample covers (the spacing of the points).
	interval time.Duration
}

// refLine is a constant line, e.g. "min 3".
type refLine struct {
	name  string
	color string
	value float64
}

// marker is an instant drawn as a vertical line.
type marker struct {
	name  string
	color string
	at    time.Time
}

// Colours, shared by both renderers: the series are blue, red and green,
// bounds grey, and the fault windows eight other colours, so that the
// windows of a full run each have their own.
const (
	colorMain     = "#1f77b4"
	colorFailed   = "#d62728"
	colorRecovery = "#2ca02c"
	colorRef      = "#7f7f7f"
)

var faultColors = []string{"#9467bd", "#8c564b", "#e377c2", "#ff7f0e", "#bcbd22", "#17becf", "#637939", "#7b4173"}

// faultColor is the colour of the i-th fault window of the run.
func faultColor(i int) string { return faultColors[i%len(faultColors)] }

// figures returns the report's charts, in the order shown: user requests
// and failures, p95 latency, HPA replicas, then per store fault the
// prober's writes, then every other chart the run recorded.
func (r *Run) figures() []figure {
	windows := slices.Clone(r.FaultWindows)
	slices.SortStableFunc(windows, func(a, b FaultWindow) int { return a.Start.Compare(b.Start) })
	charts := map[string]Chart{}
	for _, c := range r.Charts {
		if _, dup := charts[c.ID]; !dup {
			charts[c.ID] = c
		}
	}
	used := map[string]bool{}
	take := func(id string) (Chart, bool) {
		c, ok := charts[id]
		if ok {
			used[id] = true
		}
		return c, ok && len(c.Points) > 0
	}
	start := r.Started
	var figs []figure
	add := func(f figure) {
		f.windows = windows
		if f.origin.IsZero() {
			f.origin = firstTime(f)
		}
		if f.noData == "" && !f.hasData() {
			f.noData = "no samples were recorded"
		}
		figs = append(figs, f)
	}

	rps, okRPS := take(chartRPS)
	fails, okFails := take(chartFailures)
	if okRPS || okFails || r.Load != nil {
		f := figure{id: "requests", title: "User requests per second", unit: "req/s", origin: start, since: "start"}
		if okRPS {
			f.series = append(f.series, series{name: "sent", color: colorMain, pts: sorted(rps.Points), agg: "mean"})
		}
		if okFails {
			// The failures chart counts failures per sample; as a rate they
			// share the axis of the requests sent.
			pts := sorted(fails.Points)
			iv := spacing(pts)
			for i := range pts {
				pts[i].Value /= iv.Seconds()
			}
			f.series = append(f.series, series{name: "failed", color: colorFailed, pts: pts, agg: "mean"})
		}
		if !okRPS && !okFails {
			f.noData = "the load generator's time series was not recorded"
		}
		add(f)
	}
	if p95, ok := take(chartP95); ok || r.Load != nil {
		f := figure{id: "latency", title: "User request p95 latency", unit: "ms", origin: start, since: "start"}
		if ok {
			f.series = []series{{name: "p95", color: colorMain, pts: sorted(p95.Points), agg: "max"}}
		} else {
			f.noData = "the load generator's time series was not recorded"
		}
		add(f)
	}
	if a := r.Autoscaling; a != nil {
		f := figure{id: "replicas", title: "HPA replicas", unit: "replicas", origin: start, since: "start"}
		if a.HPA != "" {
			f.title += " (" + a.HPA + ")"
		}
		tl := slices.Clone(a.Timeline)
		slices.SortStableFunc(tl, func(x, y ReplicaPoint) int { return x.At.Compare(y.At) })
		var pts []Point
		for _, p := range tl {
			pts = append(pts, Point{At: p.At, Value: float64(p.Replicas)})
		}
		if n := len(pts); n > 0 && a.ObservedUntil.After(pts[n-1].At) {
			pts = append(pts, Point{At: a.ObservedUntil, Value: pts[n-1].Value})
		}
		if len(pts) == 0 {
			f.noData = "the HPA's replica count was not observed"
		} else {
			f.series = []series{{name: "replicas", color: colorMain, pts: pts, agg: "last", step: true}}
			f.refs = []refLine{
				{name: fmt.Sprintf("min %d", a.Min), color: colorRef, value: float64(a.Min)},
				{name: fmt.Sprintf("max %d", a.Max), color: colorRef, value: float64(a.Max)},
			}
		}
		add(f)
	}
	for _, e := range r.Experiments {
		pw := e.ProberWrites
		why := e.NotMeasured["prober_writes"]
		if e.NotRunReason != "" || (pw == nil && why == "") {
			continue
		}
		store := "the store"
		if pw != nil && pw.Store != "" {
			store = pw.Store
		}
		f := figure{
			id:     "writes-" + slug(e.Name),
			title:  fmt.Sprintf("Prober writes to %s around %s", store, e.Name),
			unit:   "writes/s",
			origin: e.InjectedAt, since: "injection",
		}
		if e.InjectedAt.IsZero() {
			f.origin, f.since = start, "start"
		}
		switch {
		case pw == nil || len(pw.Points) == 0:
			f.noData = why
			if f.noData == "" {
				f.noData = "the prober's writes were not recorded"
			}
		default:
			iv := time.Duration(pw.Interval)
			pts := slices.Clone(pw.Points)
			slices.SortStableFunc(pts, func(a, b WritePoint) int { return a.At.Compare(b.At) })
			if iv <= 0 {
				iv = spacing(writeTimes(pts))
			}
			var acked, failed []Point
			for _, p := range pts {
				acked = append(acked, Point{At: p.At, Value: float64(p.Acknowledged) / iv.Seconds()})
				failed = append(failed, Point{At: p.At, Value: float64(p.Failed) / iv.Seconds()})
			}
			f.series = []series{
				{name: "acknowledged", color: colorMain, pts: acked, agg: "mean", interval: iv},
				{name: "failed", color: colorFailed, pts: failed, agg: "mean", interval: iv},
			}
			if !e.RecoveredAt.IsZero() {
				name := "recovered"
				if e.RTO != nil {
					name += " (RTO " + fmtDur(time.Duration(*e.RTO)) + ")"
				}
				f.markers = []marker{{name: name, color: colorRecovery, at: e.RecoveredAt}}
			}
		}
		add(f)
	}
	taken := map[string]bool{}
	for _, f := range figs {
		taken[f.id] = true
	}
	for _, c := range r.Charts {
		if used[c.ID] {
			continue
		}
		used[c.ID] = true
		id := "chart-" + slug(c.ID)
		for n := 2; taken[id]; n++ {
			id = fmt.Sprintf("chart-%s-%d", slug(c.ID), n)
		}
		taken[id] = true
		title := c.Title
		if title == "" {
			title = c.ID
		}
		add(figure{
			id: id, title: title, unit: c.Unit, origin: start, since: "start",
			series: []series{{name: cmp.Or(c.Unit, c.ID), color: colorMain, pts: sorted(c.Points), agg: aggregate(c.Aggregate)}},
		})
	}
	for i := range figs {
		for j := range figs[i].series {
			s := &figs[i].series[j]
			if s.interval == 0 {
				s.interval = spacing(s.pts)
			}
		}
	}
	return figs
}

// hasData reports whether any series has a point.
func (f figure) hasData() bool {
	for _, s := range f.series {
		if len(s.pts) > 0 {
			return true
		}
	}
	return false
}

// span returns the first and last sample time of the figure.
func (f figure) span() (first, last time.Time) {
	for _, s := range f.series {
		if len(s.pts) == 0 {
			continue
		}
		a, b := s.pts[0].At, s.pts[len(s.pts)-1].At
		if first.IsZero() || a.Before(first) {
			first = a
		}
		if last.IsZero() || b.After(last) {
			last = b
		}
	}
	return first, last
}

func firstTime(f figure) time.Time {
	first, _ := f.span()
	return first
}

// inRange reports whether the window overlaps [first, last].
func inRange(w FaultWindow, first, last time.Time) bool {
	return !w.End.Before(first) && !w.Start.After(last)
}

// sorted returns the points in time order, without values that are not a
// number (nothing measured them).
func sorted(pts []Point) []Point {
	p := slices.DeleteFunc(slices.Clone(pts), func(p Point) bool { return math.IsNaN(p.Value) || math.IsInf(p.Value, 0) })
	slices.SortStableFunc(p, func(a, b Point) int { return a.At.Compare(b.At) })
	return p
}

func writeTimes(pts []WritePoint) []Point {
	out := make([]Point, len(pts))
	for i, p := range pts {
		out[i] = Point{At: p.At}
	}
	return out
}

// spacing is the median time between neighbouring points: the time one
// sample covers. One second when there are fewer than two points.
func spacing(pts []Point) time.Duration {
	var d []time.Duration
	for i := 1; i < len(pts); i++ {
		if g := pts[i].At.Sub(pts[i-1].At); g > 0 {
			d = append(d, g)
		}
	}
	if len(d) == 0 {
		return time.Second
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

// slug makes s safe as a file name: lower-case letters, digits and dashes.
func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	if b.Len() == 0 {
		return "chart"
	}
	return b.String()
}

// gap is a stretch of a series without samples.
type gap struct {
	series     string
	start, end time.Time // the samples either side; zero at the figure's edges
}

// gaps lists where a series has no samples: between two samples further
// apart than twice its interval and minGap, and before or after it within
// the figure's time range. Step series hold their value and have none.
func (f figure) gaps(minGap time.Duration) []gap {
	first, last := f.span()
	var out []gap
	for _, s := range f.series {
		if s.step || len(s.pts) == 0 {
			continue
		}
		limit := max(2*s.interval, minGap)
		if s.pts[0].At.Sub(first) > limit {
			out = append(out, gap{series: s.name, end: s.pts[0].At})
		}
		for i := 1; i < len(s.pts); i++ {
			if s.pts[i].At.Sub(s.pts[i-1].At) > limit {
				out = append(out, gap{series: s.name, start: s.pts[i-1].At, end: s.pts[i].At})
			}
		}
		if last.Sub(s.pts[len(s.pts)-1].At) > limit {
			out = append(out, gap{series: s.name, start: s.pts[len(s.pts)-1].At})
		}
	}
	return out
}
