package reports

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// MaxChartPoints is the most points a chart shows; longer series are merged
// into groups of neighbouring points by the chart's aggregate.
const MaxChartPoints = 60

func (m markdown) charts() {
	m.section(AnchorCharts, "Charts")
	r := m.r
	if len(r.FaultWindows) > 0 {
		m.p("Fault windows, shaded as bars in every chart:")
		m.p("")
		for _, w := range r.FaultWindows {
			m.p("- `%s`: %s to %s (%s)", w.Experiment, m.at(w.Start), m.at(w.End), fmtDur(w.End.Sub(w.Start)))
		}
		m.p("")
	}
	if len(r.Charts) == 0 {
		m.p("No time series was recorded.")
		return
	}
	for i, c := range r.Charts {
		if i > 0 {
			m.p("")
		}
		m.chart(c)
	}
}

// group is the merged points of one x-axis position.
type group struct {
	start, end time.Time
	value      float64
}

func (m markdown) chart(c Chart) {
	title := c.Title
	if title == "" {
		title = c.ID
	}
	if len(c.Points) == 0 {
		m.p("**%s**: no data.", cell(title))
		return
	}
	groups, per := downsample(c)
	if per > 1 {
		title += fmt.Sprintf(" (%s of every %d points)", aggregate(c.Aggregate), per)
	}
	ref := m.r.Started
	if ref.IsZero() {
		ref = groups[0].start
	}
	labels := make([]string, len(groups))
	values := make([]string, len(groups))
	top := 0.0
	for i, g := range groups {
		labels[i] = mermaidString(fmtClockOffset(g.start.Sub(ref)))
		values[i] = fmtNum(g.value, 2)
		top = max(top, g.value)
	}
	top = niceCeil(top)
	var faults []string
	for _, g := range groups {
		v := 0.0
		if slices.ContainsFunc(m.r.FaultWindows, func(w FaultWindow) bool {
			return g.start.Before(w.End) && w.Start.Before(g.end)
		}) {
			v = top
		}
		faults = append(faults, fmtNum(v, 2))
	}
	m.p("```mermaid")
	m.p("xychart-beta")
	m.p("    title %s", mermaidString(title))
	m.p("    x-axis \"time since start (mm:ss)\" [%s]", strings.Join(labels, ", "))
	m.p("    y-axis %s 0 --> %s", mermaidString(c.Unit), fmtNum(top, 2))
	if len(m.r.FaultWindows) > 0 {
		m.p("    bar [%s]", strings.Join(faults, ", "))
	}
	m.p("    line [%s]", strings.Join(values, ", "))
	m.p("```")
}

func aggregate(a string) string {
	switch a {
	case "sum", "max":
		return a
	}
	return "mean"
}

// downsample merges the chart's points (in time order) into at most
// MaxChartPoints groups of per points each.
func downsample(c Chart) (groups []group, per int) {
	pts := slices.Clone(c.Points)
	slices.SortStableFunc(pts, func(a, b Point) int { return a.At.Compare(b.At) })
	per = (len(pts) + MaxChartPoints - 1) / MaxChartPoints
	step := time.Second
	if len(pts) > 1 {
		step = pts[len(pts)-1].At.Sub(pts[0].At) / time.Duration(len(pts)-1)
	}
	for i := 0; i < len(pts); i += per {
		chunk := pts[i:min(i+per, len(pts))]
		g := group{start: chunk[0].At, end: chunk[len(chunk)-1].At.Add(step)}
		if i+per < len(pts) {
			g.end = pts[i+per].At
		}
		if aggregate(c.Aggregate) == "max" {
			g.value = chunk[0].Value
		}
		for _, p := range chunk {
			switch aggregate(c.Aggregate) {
			case "max":
				g.value = max(g.value, p.Value)
			default:
				g.value += p.Value
			}
		}
		if aggregate(c.Aggregate) == "mean" {
			g.value /= float64(len(chunk))
		}
		groups = append(groups, g)
	}
	return groups, per
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

// fmtClockOffset renders an offset as mm:ss (or h:mm:ss).
func fmtClockOffset(d time.Duration) string {
	neg := ""
	if d < 0 {
		neg, d = "-", -d
	}
	s := int64(d / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%s%d:%02d:%02d", neg, s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%s%02d:%02d", neg, s/60, s%60)
}

// mermaidString quotes s for Mermaid, which has no escape for a double
// quote inside a string: it becomes a single quote.
func mermaidString(s string) string {
	return `"` + strings.ReplaceAll(cell(s), `"`, "'") + `"`
}
