package reports

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// mermaidPositions is how many points Mermaid's numeric x-axis places for
// a line of n values from lo to hi, in the two ways Mermaid has done it
// (a running sum of the step, then min + i·step): the count is n in both
// only when the step adds up exactly.
func mermaidPositions(lo, hi float64, n int) (running, indexed int) {
	step := (hi - lo) / float64(n-1)
	for i := lo; i <= hi; i += step {
		running++
	}
	for i := range n {
		if lo+float64(i)*step <= hi {
			indexed++
		}
	}
	return running, indexed
}

// d3Ticks is how many labels d3's linear scale, which Mermaid's numeric
// axes use, prints between lo and hi (scale.ticks() with its default of
// 10).
func d3Ticks(lo, hi float64) int {
	step := (hi - lo) / 10
	power := math.Floor(math.Log10(step))
	e := step / math.Pow(10, power)
	factor := 1.0
	switch {
	case e >= math.Sqrt(50):
		factor = 10
	case e >= math.Sqrt(10):
		factor = 5
	case e >= math.Sqrt(2):
		factor = 2
	}
	inc := factor * math.Pow(10, power)
	return int(math.Floor(hi/inc+1e-9) - math.Ceil(lo/inc-1e-9) + 1)
}

func TestAxis(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		from, to   float64 // seconds after t0, one sample a second
		step       float64 // seconds between samples
		wantUnit   time.Duration
		wantStep   time.Duration
		wantPoints int
	}{
		{"a minute in seconds", 0, 60, 1, time.Second, time.Second, 60},
		{"two and a half minutes", 0, 150, 1, time.Second, 2 * time.Second, 75},
		{"72 s around an injection", -30, 42, 1, time.Second, time.Second, 72},
		{"quick run in minutes", 0, 600, 1, time.Minute, 7500 * time.Millisecond, 80},
		{"samples every 10 s", 0, 600, 10, time.Minute, 15 * time.Second, 40},
		{"full run", 0, 3000, 1, time.Minute, 30 * time.Second, 100},
		{"eight hours", 0, 8 * 3600, 16, time.Minute, 4 * time.Minute, 120},
		{"odd start", 12.3, 611.7, 1, time.Minute, 7500 * time.Millisecond, 81},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := figure{origin: t0, series: []series{{pts: samples(tt.from, tt.to, tt.step, func(float64) float64 { return 1 }), interval: time.Duration(tt.step * float64(time.Second))}}}
			a := newAxis(f, MaxChartPoints)
			if a.unit != tt.wantUnit || a.step != tt.wantStep || a.n() != tt.wantPoints {
				t.Fatalf("axis unit %v step %v with %d points, want %v %v %d", a.unit, a.step, a.n(), tt.wantUnit, tt.wantStep, tt.wantPoints)
			}
			_, last := f.span()
			if off := last.Sub(t0); off < a.offset(a.n()-1) || off >= a.offset(a.n()) {
				t.Errorf("last sample at %v is not in the last position [%v, %v)", off, a.offset(a.n()-1), a.offset(a.n()))
			}
			lo, hi := a.x(a.offset(0)), a.x(a.offset(a.n()-1))
			if running, indexed := mermaidPositions(lo, hi, a.n()); running != a.n() || indexed != a.n() {
				t.Errorf("Mermaid places %d and %d of %d points", running, indexed, a.n())
			}
			m := fine*(a.n()-1) + 1
			if running, indexed := mermaidPositions(lo, hi, m); running != m || indexed != m {
				t.Errorf("Mermaid places %d and %d of the %d points of a fault window line", running, indexed, m)
			}
			if labels := d3Ticks(lo, hi); labels > 15 {
				t.Errorf("the x-axis from %v to %v prints %d labels, want <= 15", lo, hi, labels)
			}
		})
	}
}

func TestAxisValues(t *testing.T) {
	t.Parallel()
	// Samples every second valued by their second, on a 2 s axis.
	pts := samples(0, 9, 1, func(s float64) float64 { return s })
	nan := math.NaN()
	tests := []struct {
		name string
		s    series
		want []float64
	}{
		{"mean", series{pts: pts, agg: "mean"}, []float64{0.5, 2.5, 4.5, 6.5, 8}},
		{"sum", series{pts: pts, agg: "sum"}, []float64{1, 5, 9, 13, 8}},
		{"max", series{pts: pts, agg: "max"}, []float64{1, 3, 5, 7, 8}},
		{"max of negative values", series{pts: samples(0, 2, 1, func(s float64) float64 { return -3 + s }), agg: "max"}, []float64{-2, nan, nan, nan, nan}},
		{"gap", series{pts: []Point{{At: at(0), Value: 1}, {At: at(7), Value: 4}}, agg: "mean"}, []float64{1, nan, nan, 4, nan}},
		// Replicas 3, 5 from 2.5 s, 4 from 7 s, observed until 8 s: each
		// position shows the count at its end, the last one the last count.
		{"step", series{pts: []Point{{At: at(0), Value: 3}, {At: at(2.5), Value: 5}, {At: at(7), Value: 4}, {At: at(8), Value: 4}}, agg: "last", step: true}, []float64{3, 5, 5, 4, 4}},
	}
	a := axis{origin: t0, unit: time.Second, step: 2 * time.Second, k0: 0, k1: 4}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, a.values(tt.s), cmp.Comparer(func(x, y float64) bool { return x == y || math.IsNaN(x) && math.IsNaN(y) })); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFill(t *testing.T) {
	t.Parallel()
	nan := math.NaN()
	got := fill([]float64{nan, 2, nan, nan, 8, nan})
	if diff := cmp.Diff([]float64{2, 2, 4, 6, 8, 8}, got); diff != "" {
		t.Errorf("fill (-want +got):\n%s", diff)
	}
}

func TestPulse(t *testing.T) {
	t.Parallel()
	a := axis{origin: t0, unit: time.Second, step: 4 * time.Second, k0: 0, k1: 2} // fine points every second, 0..8
	tests := []struct {
		name     string
		from, to float64
		want     []float64
	}{
		{"window", 2.5, 5, []float64{0, 0, 1, 1, 1, 1, 0, 0, 0}},
		{"instant", 6.2, 6.2, []float64{0, 0, 0, 0, 0, 0, 1, 0, 0}},
		{"shorter than a fine step", 6.2, 6.4, []float64{0, 0, 0, 0, 0, 0, 1, 0, 0}},
		{"from before the axis", -5, 0.5, []float64{1, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"outside", 20, 30, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, a.pulse(at(tt.from), at(tt.to), 1)); diff != "" {
				t.Errorf("pulse (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFigures is the list of charts per fixture: one per question, and a
// sentence for each chart without data.
func TestFigures(t *testing.T) {
	t.Parallel()
	extra := passingRun()
	extra.Charts = append(extra.Charts, Chart{ID: "web cpu", Title: "Web CPU", Unit: "cores", Aggregate: "max", Points: samples(0, 60, 10, func(float64) float64 { return 1.5 })})
	tests := []struct {
		name string
		run  *Run
		want []string // id, or id + ": " + the reason there is no data
	}{
		{"passing", passingRun(), []string{"requests", "latency", "replicas", "writes-pg-primary-kill"}},
		{"failing", failingRun(), []string{"requests", "latency", "replicas", "writes-pg-primary-kill", "writes-redis-master-kill"}},
		{"interrupted", interruptedRun(), []string{
			"requests: the load generator's time series was not recorded",
			"latency: the load generator's time series was not recorded",
			"replicas",
			"writes-pg-primary-kill: the prober's timeline could not be read: the run was interrupted",
		}},
		{"another chart", extra, []string{"requests", "latency", "replicas", "writes-pg-primary-kill", "chart-web-cpu"}},
		{"nothing recorded", &Run{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, f := range tt.run.figures() {
				if f.noData != "" {
					got = append(got, f.id+": "+f.noData)
					continue
				}
				got = append(got, f.id)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("figures (-want +got):\n%s", diff)
			}
		})
	}
}

var (
	xAxisNumeric = regexp.MustCompile(`(?m)^    x-axis "[^"]*" (-?[0-9.]+) --> (-?[0-9.]+)$`)
	xAxisBand    = regexp.MustCompile(`(?m)^    x-axis "[^"]*" \[(.*)\]$`)
	plotLine     = regexp.MustCompile(`(?m)^    line "([^"]*)" \[(.*)\]$`)
)

// TestMermaidCharts checks every chart of every fixture as a reader sees
// it: at most 15 x-axis labels, every fault window named in the chart (if
// in its time range) and directly under it, and the last sample shown.
func TestMermaidCharts(t *testing.T) {
	t.Parallel()
	for _, fx := range fixtures {
		for _, f := range fx.run().figures() {
			if f.noData != "" {
				continue
			}
			t.Run(fx.name+"/"+f.id, func(t *testing.T) {
				t.Parallel()
				a := newAxis(f, MaxChartPoints)
				block := mermaidChart(f, a)
				under := strings.Join(caption(f, a), "\n")
				var hi float64
				if m := xAxisNumeric.FindStringSubmatch(block); m != nil {
					lo, _ := strconv.ParseFloat(m[1], 64)
					hi, _ = strconv.ParseFloat(m[2], 64)
					if n := d3Ticks(lo, hi); n > 15 {
						t.Errorf("x-axis %v to %v prints %d labels, want <= 15", lo, hi, n)
					}
				} else if m := xAxisBand.FindStringSubmatch(block); m != nil {
					if n := len(strings.Split(m[1], ",")); n > 15 {
						t.Errorf("x-axis has %d labels, want <= 15", n)
					}
					hi = a.x(a.offset(0))
				} else {
					t.Fatalf("no x-axis in\n%s", block)
				}
				lines := map[string][]string{}
				for _, m := range plotLine.FindAllStringSubmatch(block, -1) {
					lines[m[1]] = strings.Split(m[2], ", ")
				}
				first, last := f.span()
				for _, w := range f.windows {
					if !strings.Contains(under, "`"+w.Experiment+"`") {
						t.Errorf("fault window %s is not named under the chart:\n%s", w.Experiment, under)
					}
					if _, ok := lines["fault "+w.Experiment]; ok != inRange(w, first, last) {
						t.Errorf("fault window %s drawn: %v, in the chart's time range: %v", w.Experiment, ok, inRange(w, first, last))
					}
				}
				if x := a.x(last.Sub(a.origin)); x < hi || x >= hi+a.x(a.step) {
					t.Errorf("last sample at %v is not in the chart's last position from %v", x, hi)
				}
				if !strings.Contains(under, "Last sample") || !strings.Contains(under, a.pos(last)) {
					t.Errorf("the last sample (%s) is not named under the chart:\n%s", a.pos(last), under)
				}
				for _, s := range f.series {
					vals := lines[s.name]
					if len(vals) != a.n() {
						t.Fatalf("line %s has %d values, want %d", s.name, len(vals), a.n())
					}
					lastPt := s.pts[len(s.pts)-1]
					if s.step && vals[len(vals)-1] != fmtNum(lastPt.Value, 2) {
						t.Errorf("line %s ends at %s, its last sample is %v", s.name, vals[len(vals)-1], lastPt.Value)
					}
					if !strings.Contains(under, s.name+" "+fmtNum(lastPt.Value, 2)) {
						t.Errorf("the last sample of %s (%v) is not named under the chart", s.name, lastPt.Value)
					}
				}
			})
		}
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"sub-second to the millisecond", fmtDur(301600 * time.Microsecond), "302ms"},
		{"seconds", fmtDur(11844 * time.Millisecond), "11.84s"},
		{"minutes", fmtDur(161240 * time.Millisecond), "2m41.2s"},
		{"negative offset", fmtOffset(-100 * time.Millisecond), "-100ms"},
		{"number", fmtNum(512.25, 1), "512.2"},
		{"integer", fmtNum(910, 1), "910"},
		{"negative zero", fmtNum(-0.0001, 1), "0"},
		{"axis bound", axisNum(9.8125), "9.8125"},
		{"no requests", fmtRate(Count{}), "—"},
		{"pipe escaped", cell("a | b\nc"), `a \| b c`},
		{"mermaid quote", mermaidString(`say "hi"`), `"say 'hi'"`},
		{"anchor", ExperimentAnchor("PG primary/kill_1"), "experiment-pg-primary-kill-1"},
		{"file name", slug("Web CPU/%"), "web-cpu--"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestNiceCeil(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want float64 }{
		{0, 1}, {-5, 1}, {0.3, 0.5}, {1, 1}, {1.1, 2}, {85.5, 100}, {120, 200}, {499, 500}, {6, 10},
	}
	for _, tt := range tests {
		if got := niceCeil(tt.in); got != tt.want {
			t.Errorf("niceCeil(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestHeadroom(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want float64 }{
		{0, 1}, {10, 12}, {85.5, 100}, {1480, 2000}, {6, 8}, {4, 5}, {0.3, 0.4},
	}
	for _, tt := range tests {
		if got := headroom(tt.in); got != tt.want {
			t.Errorf("headroom(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestMermaidSingleSample is a chart of one sample: Mermaid cannot spread
// one point over a numeric axis, so it gets a one-label axis, and still
// names the last sample and the fault window.
func TestMermaidSingleSample(t *testing.T) {
	t.Parallel()
	r := &Run{
		Started:      t0,
		Load:         &LoadSummary{},
		Charts:       []Chart{{ID: chartP95, Points: []Point{{At: at(30), Value: 412}}}},
		FaultWindows: []FaultWindow{{Experiment: "pod-kill", Start: at(20), End: at(40)}},
	}
	var f figure
	for _, g := range r.figures() {
		if g.id == "latency" {
			f = g
		}
	}
	a := newAxis(f, MaxChartPoints)
	block, under := mermaidChart(f, a), strings.Join(caption(f, a), "\n")
	if m := xAxisBand.FindStringSubmatch(block); m == nil || m[1] != `"30"` {
		t.Errorf("want a one-label x-axis at 30 s in\n%s", block)
	}
	if got := plotLine.FindAllStringSubmatch(block, -1); len(got) != 1 || got[0][2] != "412" {
		t.Errorf("want one line of one value in\n%s", block)
	}
	for _, want := range []string{"`pod-kill` from 20 s to 40 s", "Last sample at 30 s (12:00:30.000): p95 412 ms."} {
		if !strings.Contains(under, want) {
			t.Errorf("%q is not under the chart:\n%s", want, under)
		}
	}
}

// TestFiguresSkipNotANumber: a value that is not a number was not measured,
// and is not drawn.
func TestFiguresSkipNotANumber(t *testing.T) {
	t.Parallel()
	r := &Run{Started: t0, Charts: []Chart{{ID: "cpu", Points: []Point{{At: at(0), Value: 1}, {At: at(10), Value: math.NaN()}, {At: at(20), Value: math.Inf(1)}}}}}
	figs := r.figures()
	if len(figs) != 1 || len(figs[0].series[0].pts) != 1 {
		t.Fatalf("figures = %+v, want one chart of one point", figs)
	}
	var b strings.Builder
	if err := WriteChartSVG(&b, r, figs[0].id); err != nil {
		t.Fatal(err)
	}
}
