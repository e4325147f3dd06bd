package reports

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxChartPoints is the most positions a line of a Mermaid chart has;
// longer series are merged into one point per time step by their
// aggregate. The SVG charts draw up to [MaxSVGPoints] points.
const MaxChartPoints = 120

// Time steps of a chart position. On a minutes axis every step is a binary
// fraction of a minute (1/16, 1/8, ...) and on a seconds axis a whole
// number of seconds, so that Mermaid's numeric x-axis places every point,
// the last one included, exactly where it belongs.
var (
	secondSteps = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute}
	minuteSteps = []time.Duration{3750 * time.Millisecond, 7500 * time.Millisecond, 15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute}
)

// axis is a figure's time axis: positions k0..k1, each covering
// [k·step, (k+1)·step) after the origin, drawn at its start.
type axis struct {
	origin time.Time
	since  string
	unit   time.Duration // time.Second or time.Minute
	step   time.Duration
	k0, k1 int64
}

// newAxis fits the figure's samples into at most maxPoints positions, no
// finer than its series' sample interval. Spans up to five minutes count in
// seconds, longer ones in minutes.
func newAxis(f figure, maxPoints int) axis {
	first, last := f.span()
	a0, a1 := first.Sub(f.origin), last.Sub(f.origin)
	a := axis{origin: f.origin, since: f.since, unit: time.Second}
	steps := secondSteps
	if a1-a0 > 5*time.Minute {
		a.unit, steps = time.Minute, minuteSteps
	}
	need := (a1 - a0 + time.Duration(maxPoints-2)) / time.Duration(maxPoints-1)
	for _, s := range f.series {
		if !s.step {
			need = max(need, s.interval)
		}
	}
	a.step = steps[len(steps)-1]
	for _, s := range steps {
		if s >= need {
			a.step = s
			break
		}
	}
	for {
		a.k0, a.k1 = floorDiv(a0, a.step), floorDiv(a1, a.step)
		if a.k1-a.k0+1 <= int64(maxPoints) {
			return a
		}
		a.step *= 2
	}
}

func floorDiv(d, step time.Duration) int64 {
	q := int64(d / step)
	if d%step < 0 {
		q--
	}
	return q
}

// n is the number of positions.
func (a axis) n() int { return int(a.k1 - a.k0 + 1) }

// offset is the start of position k (0-based) after the origin.
func (a axis) offset(k int) time.Duration { return time.Duration(a.k0+int64(k)) * a.step }

// x is an offset in the axis unit; exact for the positions.
func (a axis) x(d time.Duration) float64 { return float64(d) / float64(a.unit) }

// unitName is the axis unit in words.
func (a axis) unitName() string {
	if a.unit == time.Minute {
		return "min"
	}
	return "s"
}

// title is the x-axis title, e.g. "minutes since start".
func (a axis) title() string {
	u := "seconds"
	if a.unit == time.Minute {
		u = "minutes"
	}
	return u + " since " + a.since
}

// pos renders a time as a position on the axis, e.g. "3.2 min".
func (a axis) pos(t time.Time) string {
	return fmtNum(a.x(t.Sub(a.origin)), 2) + " " + a.unitName()
}

// values merges a series into the axis positions by its aggregate. A
// position without a sample is NaN.
func (a axis) values(s series) []float64 {
	n := a.n()
	out := make([]float64, n)
	for i := range out {
		out[i] = math.NaN()
	}
	if len(s.pts) == 0 {
		return out
	}
	if s.step {
		last := s.pts[len(s.pts)-1].At
		j := -1
		for k := range out {
			start, end := a.origin.Add(a.offset(k)), a.origin.Add(a.offset(k+1))
			for j+1 < len(s.pts) && s.pts[j+1].At.Before(end) {
				j++
			}
			if j >= 0 && !start.After(last) {
				out[k] = s.pts[j].Value
			}
		}
		return out
	}
	count := make([]int, n)
	for _, p := range s.pts {
		k := int(floorDiv(p.At.Sub(a.origin), a.step) - a.k0)
		if k < 0 || k >= n {
			continue
		}
		switch {
		case count[k] == 0:
			out[k] = p.Value
		case s.agg == "max":
			out[k] = max(out[k], p.Value)
		default:
			out[k] += p.Value
		}
		count[k]++
	}
	if s.agg == "mean" {
		for k := range out {
			if count[k] > 0 {
				out[k] /= float64(count[k])
			}
		}
	}
	return out
}

// fill replaces the NaNs of a line that must have a value at every
// position: straight across between two values, flat at the edges.
func fill(v []float64) []float64 {
	out := make([]float64, len(v))
	copy(out, v)
	prev := -1
	for i := range out {
		if math.IsNaN(out[i]) {
			continue
		}
		switch {
		case prev < 0:
			for j := range i {
				out[j] = out[i]
			}
		case i-prev > 1:
			for j := prev + 1; j < i; j++ {
				out[j] = out[prev] + (out[i]-out[prev])*float64(j-prev)/float64(i-prev)
			}
		}
		prev = i
	}
	if prev >= 0 {
		for j := prev + 1; j < len(out); j++ {
			out[j] = out[prev]
		}
	}
	return out
}

// fine is the resolution of fault windows and markers: four points per
// position, so that a window's edges are nearly upright.
const fine = 4

// pulse is a line at top where the span [from, to] is in effect and 0
// elsewhere, on the fine grid: 4·(n−1)+1 points over the same axis. A span
// shorter than one fine step still shows as a spike; nil when the span is
// outside the axis.
func (a axis) pulse(from, to time.Time, top float64) []float64 {
	q := a.step / fine
	m := fine*(a.n()-1) + 1
	lo, hi := from.Sub(a.origin), to.Sub(a.origin)
	start := a.offset(0)
	if hi < start || lo >= a.offset(a.n()) {
		return nil
	}
	out := make([]float64, m)
	hit := false
	for j := range out {
		x := start + time.Duration(j)*q
		if x <= hi && lo < x+q {
			out[j] = top
			hit = true
		}
	}
	if !hit {
		j := min(max(int(floorDiv(lo-start, q)), 0), m-1)
		out[j] = top
	}
	return out
}

func (m markdown) charts() {
	m.section(AnchorCharts, "Charts")
	r := m.r
	if len(r.FaultWindows) > 0 {
		m.p("Fault windows, drawn and named in every chart that covers them:")
		m.p("")
		for _, w := range r.FaultWindows {
			m.p("- `%s`: %s to %s (%s)", w.Experiment, m.at(w.Start), m.at(w.End), fmtDur(w.End.Sub(w.Start)))
		}
		m.p("")
	}
	figs := r.figures()
	if len(figs) == 0 {
		m.p("No time series was recorded.")
		return
	}
	m.p("Each chart is drawn twice: in Mermaid, which GitHub and GitLab render, and as an SVG file in `charts/` that any viewer shows.")
	for _, f := range figs {
		m.p("")
		m.figure(f)
	}
}

// chartFile is the SVG file of a figure, relative to the report.
func chartFile(id string) string { return "charts/" + id + ".svg" }

func (m markdown) figure(f figure) {
	m.p("### %s", cell(f.title))
	m.p("")
	if f.noData != "" {
		m.p("No data: %s.", cell(f.noData))
		return
	}
	a := newAxis(f, MaxChartPoints)
	m.b.WriteString(mermaidChart(f, a))
	m.p("")
	for _, line := range caption(f, a) {
		m.p("- %s", line)
	}
	m.p("")
	m.p("![%s](%s)", cell(f.title), chartFile(f.id))
}

// yTop is the top of a figure's y-axis: the highest value, rounded up.
func yTop(f figure, a axis) float64 {
	top := 0.0
	for _, s := range f.series {
		for _, v := range a.values(s) {
			if !math.IsNaN(v) {
				top = max(top, v)
			}
		}
		for _, p := range s.pts {
			top = max(top, p.Value)
		}
	}
	for _, r := range f.refs {
		top = max(top, r.value)
	}
	return headroom(top)
}

// headroom rounds the highest value v up to a tick of about a fifth of it,
// leaving a tenth above v: the fault windows and markers reach the top,
// so that a line at its highest never hides them.
func headroom(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	tick := niceCeil(v / 5)
	return math.Ceil(v*1.1/tick) * tick
}

// mermaidChart renders the figure as a Mermaid xychart on a numeric time
// axis: one line per fault window in range (at the top of the chart while
// the fault was in effect), per marker, per reference and per series, each
// named for the legend and coloured like the SVG.
func mermaidChart(f figure, a axis) string {
	var b strings.Builder
	top := yTop(f, a)
	type plot struct {
		name, color string
		values      []float64
	}
	var plots []plot
	first, last := f.span()
	single := a.n() == 1
	for i, w := range f.windows {
		if single || !inRange(w, first, last) {
			continue
		}
		if v := a.pulse(w.Start, w.End, top); v != nil {
			plots = append(plots, plot{"fault " + w.Experiment, faultColor(i), v})
		}
	}
	for _, mk := range f.markers {
		if single {
			continue
		}
		if v := a.pulse(mk.at, mk.at, top); v != nil {
			plots = append(plots, plot{mk.name, mk.color, v})
		}
	}
	for _, r := range f.refs {
		v := make([]float64, a.n())
		for i := range v {
			v[i] = r.value
		}
		plots = append(plots, plot{r.name, r.color, v})
	}
	for _, s := range f.series {
		if len(s.pts) > 0 {
			plots = append(plots, plot{s.name, s.color, fill(a.values(s))})
		}
	}
	colors := make([]string, len(plots))
	for i, p := range plots {
		colors[i] = p.color
	}
	fmt.Fprintf(&b, "```mermaid\n---\nconfig:\n  themeVariables:\n    xyChart:\n      plotColorPalette: %q\n---\n", strings.Join(colors, ", "))
	b.WriteString("xychart-beta\n")
	fmt.Fprintf(&b, "    title %s\n", mermaidString(f.title))
	if single {
		fmt.Fprintf(&b, "    x-axis %s [%s]\n", mermaidString(a.title()), mermaidString(axisNum(a.x(a.offset(0)))))
	} else {
		fmt.Fprintf(&b, "    x-axis %s %s --> %s\n", mermaidString(a.title()), axisNum(a.x(a.offset(0))), axisNum(a.x(a.offset(a.n()-1))))
	}
	fmt.Fprintf(&b, "    y-axis %s 0 --> %s\n", mermaidString(f.unit), fmtNum(top, 2))
	for _, p := range plots {
		vals := make([]string, len(p.values))
		for i, v := range p.values {
			vals[i] = fmtNum(v, 2)
		}
		fmt.Fprintf(&b, "    line %s [%s]\n", mermaidString(p.name), strings.Join(vals, ", "))
	}
	b.WriteString("```\n")
	return b.String()
}

// axisNum renders an axis bound exactly: the positions are binary
// fractions, so the shortest decimal is exact.
func axisNum(x float64) string {
	if x == 0 {
		return "0"
	}
	return strconv.FormatFloat(x, 'f', -1, 64)
}

// caption is what the figure shows in words, directly under it: the time
// axis and how points were merged, the fault windows by name, the markers,
// the last sample and where samples are missing.
func caption(f figure, a axis) []string {
	var lines []string
	axisLine := fmt.Sprintf("Time in %s (%s UTC); each point covers %s", a.title(), fmtClock(a.origin), fmtDur(a.step))
	var aggs []string
	names := map[string][]string{}
	for _, s := range f.series {
		if names[s.agg] == nil {
			aggs = append(aggs, s.agg)
		}
		names[s.agg] = append(names[s.agg], s.name)
	}
	var parts []string
	for _, agg := range aggs {
		parts = append(parts, strings.Join(names[agg], " and ")+": "+aggText(agg))
	}
	lines = append(lines, axisLine+" ("+strings.Join(parts, "; ")+").")
	first, last := f.span()
	if len(f.windows) > 0 {
		var ws []string
		for _, w := range f.windows {
			where := fmt.Sprintf("from %s to %s", a.pos(w.Start), a.pos(w.End))
			if !inRange(w, first, last) {
				where = "outside this chart's time range"
			}
			ws = append(ws, fmt.Sprintf("`%s` %s (%s to %s, %s)", w.Experiment, where, fmtClock(w.Start), fmtClock(w.End), fmtDur(w.End.Sub(w.Start))))
		}
		label := "Fault window"
		if len(ws) > 1 {
			label += "s"
		}
		lines = append(lines, label+": "+strings.Join(ws, "; ")+".")
	}
	for _, mk := range f.markers {
		lines = append(lines, fmt.Sprintf("%s: at %s (%s).", capitalize(mk.name), a.pos(mk.at), fmtClock(mk.at)))
	}
	lines = append(lines, lastSamples(f, a))
	for _, g := range f.gaps(a.step) {
		switch {
		case g.start.IsZero():
			lines = append(lines, fmt.Sprintf("No samples of %s before %s: the line starts flat.", g.series, a.pos(g.end)))
		case g.end.IsZero():
			lines = append(lines, fmt.Sprintf("No samples of %s after %s: the line ends flat.", g.series, a.pos(g.start)))
		default:
			lines = append(lines, fmt.Sprintf("No samples of %s from %s to %s: the line is drawn straight across.", g.series, a.pos(g.start), a.pos(g.end)))
		}
	}
	return lines
}

// lastSamples names the last sample of every series, grouped by time.
func lastSamples(f figure, a axis) string {
	var groups []string
	var at time.Time
	var vals []string
	flush := func() {
		if len(vals) > 0 {
			groups = append(groups, fmt.Sprintf("at %s (%s): %s", a.pos(at), fmtClock(at), strings.Join(vals, ", ")))
		}
	}
	for _, s := range f.series {
		if len(s.pts) == 0 {
			continue
		}
		p := s.pts[len(s.pts)-1]
		if !p.At.Equal(at) {
			flush()
			at, vals = p.At, nil
		}
		v := s.name + " " + fmtNum(p.Value, 2)
		if f.unit != s.name {
			v += " " + f.unit
		}
		vals = append(vals, v)
	}
	flush()
	return "Last sample " + strings.Join(groups, "; ") + "."
}

func aggText(agg string) string {
	switch agg {
	case "max":
		return "the highest"
	case "sum":
		return "the sum"
	case "last":
		return "the last value"
	}
	return "the mean"
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func aggregate(a string) string {
	switch a {
	case "sum", "max":
		return a
	}
	return "mean"
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten; 1 for v <= 0.
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, f := range []float64{1, 2, 5, 10} {
		if f*p >= v {
			return f * p
		}
	}
	return 10 * p
}

// mermaidString quotes s for Mermaid, which has no escape for a double
// quote inside a string: it becomes a single quote.
func mermaidString(s string) string {
	return `"` + strings.ReplaceAll(cell(s), `"`, "'") + `"`
}
