package reports

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// MaxSVGPoints is the most points an SVG chart draws per series; longer
// series are merged like the Mermaid charts, on a finer time step.
const MaxSVGPoints = 1000

// The size of an SVG chart: wide enough to read at the width a forge shows
// a report, 10 cm high.
const (
	svgWidth  = 18 * vg.Centimeter
	svgHeight = 10 * vg.Centimeter
)

// ChartIDs returns the IDs of the charts WriteMarkdown draws, in the order
// shown; the Markdown shows each one's SVG from charts/<id>.svg. Charts
// without data are only a sentence in the report and have no ID here.
func ChartIDs(r *Run) []string {
	var ids []string
	for _, f := range r.figures() {
		if f.noData == "" {
			ids = append(ids, f.id)
		}
	}
	return ids
}

// ErrNoChart is returned by WriteChartSVG for an ID that is not one of
// ChartIDs.
var ErrNoChart = errors.New("no such chart")

// WriteChartSVG writes the chart with the given ID (one of [ChartIDs]) as
// an SVG image: the same chart as the report's Mermaid block, with the
// fault windows shaded and named, a legend, and the last sample marked.
func WriteChartSVG(w io.Writer, r *Run, id string) error {
	for _, f := range r.figures() {
		if f.id != id || f.noData != "" {
			continue
		}
		b, err := renderSVG(f)
		if err != nil {
			return fmt.Errorf("render chart %s: %w", id, err)
		}
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("write chart %s: %w", id, err)
		}
		return nil
	}
	return fmt.Errorf("write chart %s: %w", id, ErrNoChart)
}

// WriteChartSVGs writes every chart of the run as dir/charts/<id>.svg,
// where dir is the directory of the Markdown report that refers to them,
// and returns the paths it wrote. It writes what it can and returns every
// error joined.
func WriteChartSVGs(ctx context.Context, dir string, r *Run) ([]string, error) {
	figs := r.figures()
	charts := filepath.Join(dir, "charts")
	var paths []string
	var errs []error
	made := false
	for _, f := range figs {
		if f.noData != "" {
			continue
		}
		if err := ctx.Err(); err != nil {
			return paths, errors.Join(append(errs, fmt.Errorf("write charts: %w", err))...)
		}
		if !made {
			if err := os.MkdirAll(charts, 0o755); err != nil {
				return nil, fmt.Errorf("write charts: %w", err)
			}
			made = true
		}
		path := filepath.Join(charts, f.id+".svg")
		b, err := renderSVG(f)
		if err == nil {
			err = os.WriteFile(path, b, 0o644)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("write chart %s: %w", f.id, err))
			continue
		}
		paths = append(paths, path)
	}
	return paths, errors.Join(errs...)
}

// svgFont is the font of the charts. gonum/plot measures text with the
// Liberation fonts it embeds; Liberation Sans has the metrics of Arial and
// Helvetica, which the SVG names as fallbacks for viewers without it.
var svgFont = font.Font{Typeface: "Liberation", Variant: "Sans"}

// renderSVG draws the figure: the plot above, the legend and the notes
// below it.
func renderSVG(f figure) ([]byte, error) {
	a := newAxis(f, MaxChartPoints)
	p, notes, err := svgPlot(f, a)
	if err != nil {
		return nil, err
	}
	c := vgsvg.New(svgWidth, svgHeight)
	dc := draw.New(c)
	legend := svgLegend(f)
	small := svgText(p, 8, color.Gray{Y: 0x33})
	rows := 1 + len(notes)
	strip := vg.Length(rows)*small.Height("Xg")*1.5 + 6
	p.Draw(draw.Crop(dc, 4, -12, strip, -6))
	drawLegend(draw.Crop(dc, 0, 0, 0, strip-svgHeight), small, legend, notes)
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("encode svg: %w", err)
	}
	out := strings.ReplaceAll(buf.String(), "font-family:Liberation Sans;", "font-family:'Liberation Sans',Arial,Helvetica,sans-serif;")
	return []byte(out), nil
}

func svgText(p *plot.Plot, size vg.Length, c color.Color) text.Style {
	return text.Style{Color: c, Font: font.From(svgFont, size), Handler: p.TextHandler, XAlign: draw.XLeft, YAlign: draw.YBottom}
}

// svgPlot builds the plot of a figure and the notes to print under it:
// the last sample, and the fault windows outside its time range.
func svgPlot(f figure, a axis) (*plot.Plot, []string, error) {
	p := plot.New()
	p.Title.Text = f.title
	p.Title.TextStyle.Font = font.From(svgFont, 12)
	p.Title.Padding = 6
	for _, ax := range []*plot.Axis{&p.X, &p.Y} {
		ax.Label.TextStyle.Font = font.From(svgFont, 10)
		ax.Tick.Label.Font = font.From(svgFont, 9)
		ax.Padding = 0
	}
	p.X.Label.Text = a.title()
	p.Y.Label.Text = f.unit
	first, last := f.span()
	x := func(t time.Time) float64 { return a.x(t.Sub(a.origin)) }
	p.X.Min, p.X.Max = x(first), x(last)
	if p.X.Max <= p.X.Min {
		p.X.Min, p.X.Max = p.X.Min-0.5, p.X.Max+0.5
	}
	p.Y.Min, p.Y.Max = 0, yTop(f, a)
	p.X.Tick.Marker = niceTicks{labels: 12}
	p.Y.Tick.Marker = niceTicks{labels: 6}

	grid := plotter.NewGrid()
	grid.Vertical.Color = nil
	grid.Horizontal.Color = color.Gray{Y: 0xe0}
	p.Add(grid)

	var notes []string
	bands := faultBands{style: svgText(p, 8, color.Black)}
	var outside []string
	for i, w := range f.windows {
		if !inRange(w, first, last) {
			outside = append(outside, w.Experiment)
			continue
		}
		bands.bands = append(bands.bands, band{
			name: w.Experiment, from: max(x(w.Start), p.X.Min), to: min(x(w.End), p.X.Max), color: hexColor(faultColor(i)),
		})
	}
	p.Add(bands)
	for _, r := range f.refs {
		l, err := plotter.NewLine(plotter.XYs{{X: p.X.Min, Y: r.value}, {X: p.X.Max, Y: r.value}})
		if err != nil {
			return nil, nil, fmt.Errorf("reference line %s: %w", r.name, err)
		}
		l.Color, l.Width, l.Dashes = hexColor(r.color), 1, []vg.Length{4, 3}
		p.Add(l)
	}
	for _, mk := range f.markers {
		if v := x(mk.at); v >= p.X.Min && v <= p.X.Max {
			p.Add(vline{x: v, color: hexColor(mk.color)})
		}
	}
	fa := newAxis(f, MaxSVGPoints)
	var lastPts plotter.XYs
	var lastColors []color.Color
	for _, s := range f.series {
		if len(s.pts) == 0 {
			continue
		}
		for _, seg := range svgSegments(s, a, fa) {
			l, err := plotter.NewLine(seg)
			if err != nil {
				return nil, nil, fmt.Errorf("series %s: %w", s.name, err)
			}
			// Every sample holds for its interval (a count or rate over
			// it, or a replica count until the next change): steps.
			l.Color, l.Width, l.StepStyle = hexColor(s.color), 1.5, plotter.PostStep
			p.Add(l)
		}
		lp := s.pts[len(s.pts)-1]
		lastPts = append(lastPts, plotter.XY{X: x(lp.At), Y: lp.Value})
		lastColors = append(lastColors, hexColor(s.color))
	}
	if len(lastPts) > 0 {
		dots, err := plotter.NewScatter(lastPts)
		if err != nil {
			return nil, nil, fmt.Errorf("last samples: %w", err)
		}
		dots.GlyphStyleFunc = func(i int) draw.GlyphStyle {
			return draw.GlyphStyle{Color: lastColors[i], Radius: 3, Shape: draw.CircleGlyph{}}
		}
		p.Add(dots)
	}
	notes = append(notes, lastSamples(f, a))
	if len(outside) > 0 {
		notes = append(notes, "Outside this chart's time range: fault "+strings.Join(outside, ", fault ")+".")
	}
	return p, notes, nil
}

// svgSegments are the series' points to draw: the samples themselves, or
// merged on the fine axis when there are more than MaxSVGPoints; split
// where samples are missing, so that a gap is not drawn as a line.
func svgSegments(s series, a, fa axis) []plotter.XYs {
	x := func(t time.Time) float64 { return a.x(t.Sub(a.origin)) }
	var segs []plotter.XYs
	var cur plotter.XYs
	if len(s.pts) <= MaxSVGPoints {
		limit := max(2*s.interval, a.step)
		for i, pt := range s.pts {
			if i > 0 && !s.step && pt.At.Sub(s.pts[i-1].At) > limit {
				segs, cur = append(segs, cur), nil
			}
			cur = append(cur, plotter.XY{X: x(pt.At), Y: pt.Value})
		}
		return append(segs, cur)
	}
	for k, v := range fa.values(s) {
		if math.IsNaN(v) {
			if len(cur) > 0 {
				segs, cur = append(segs, cur), nil
			}
			continue
		}
		cur = append(cur, plotter.XY{X: a.x(fa.offset(k)), Y: v})
	}
	if len(cur) > 0 {
		segs = append(segs, cur)
	}
	return segs
}

// legendEntry is one item of the legend under the plot.
type legendEntry struct {
	name   string
	color  color.Color
	dashed bool
}

func svgLegend(f figure) []legendEntry {
	var out []legendEntry
	for _, s := range f.series {
		if len(s.pts) > 0 {
			out = append(out, legendEntry{name: s.name, color: hexColor(s.color)})
		}
	}
	for _, r := range f.refs {
		out = append(out, legendEntry{name: r.name, color: hexColor(r.color), dashed: true})
	}
	for _, mk := range f.markers {
		out = append(out, legendEntry{name: mk.name, color: hexColor(mk.color), dashed: true})
	}
	return out
}

// drawLegend writes the legend on one row, then each note on its own.
func drawLegend(c draw.Canvas, sty text.Style, entries []legendEntry, notes []string) {
	lineH := sty.Height("Xg") * 1.5
	y := c.Max.Y - lineH
	x := c.Min.X + 10
	for _, e := range entries {
		ls := draw.LineStyle{Color: e.color, Width: 2}
		if e.dashed {
			ls.Width, ls.Dashes = 1.5, []vg.Length{3, 2}
		}
		mid := y + sty.Height("x")/2
		c.StrokeLine2(ls, x, mid, x+18, mid)
		c.FillText(sty, vg.Point{X: x + 22, Y: y}, e.name)
		x += 22 + sty.Width(e.name) + 14
	}
	for _, n := range notes {
		y -= lineH
		c.FillText(sty, vg.Point{X: c.Min.X + 10, Y: y}, n)
	}
}

// band is a fault window to shade.
type band struct {
	name     string
	from, to float64
	color    color.Color
}

// faultBands shades the fault windows over the whole height of the plot
// and names each at its top, on as many rows as keep the names apart.
type faultBands struct {
	bands []band
	style text.Style
}

func (fb faultBands) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	var rows []vg.Length // the right end of the last name on each row
	lineH := fb.style.Height("Xg") * 1.2
	for _, b := range fb.bands {
		x0, x1 := trX(b.from), trX(b.to)
		if x1-x0 < 2 {
			x0, x1 = x0-1, x0+1
		}
		r, g, bl, _ := b.color.RGBA()
		fill := color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(bl >> 8), A: 0x40}
		c.FillPolygon(fill, []vg.Point{{X: x0, Y: c.Min.Y}, {X: x1, Y: c.Min.Y}, {X: x1, Y: c.Max.Y}, {X: x0, Y: c.Max.Y}})
		sty := fb.style
		sty.Color = darker(b.color)
		w := sty.Width(b.name)
		left := x0 + 3
		if left+w > c.Max.X {
			left = c.Max.X - w - 3
		}
		row := 0
		for row < len(rows) && left < rows[row]+6 {
			row++
		}
		if row == len(rows) {
			rows = append(rows, 0)
		}
		rows[row] = left + w
		c.FillText(sty, vg.Point{X: left, Y: c.Max.Y - 3 - vg.Length(row+1)*lineH}, b.name)
	}
}

// vline is a dashed vertical line over the whole height of the plot.
type vline struct {
	x     float64
	color color.Color
}

func (v vline) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	c.StrokeLine2(draw.LineStyle{Color: v.color, Width: 1.5, Dashes: []vg.Length{4, 3}}, trX(v.x), c.Min.Y, trX(v.x), c.Max.Y)
}

// niceTicks labels an axis at multiples of 1, 2 or 5 times a power of ten,
// with at most labels+1 labels.
type niceTicks struct{ labels int }

func (n niceTicks) Ticks(lo, hi float64) []plot.Tick {
	step := niceCeil((hi - lo) / float64(n.labels))
	decimals := max(0, int(-math.Floor(math.Log10(step))))
	var ticks []plot.Tick
	for k := math.Ceil(lo/step - 1e-9); k*step <= hi+step*1e-9; k++ {
		v := k*step + 0 // no "-0"
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', decimals, 64)})
	}
	return ticks
}

// darker is c at two thirds of its brightness: the window's colour for
// text, which must stand out on white.
func darker(c color.Color) color.Color {
	r, g, b, _ := c.RGBA()
	return color.RGBA{R: uint8(r * 2 / 3 >> 8), G: uint8(g * 2 / 3 >> 8), B: uint8(b * 2 / 3 >> 8), A: 0xff}
}

// hexColor parses "#rrggbb".
func hexColor(s string) color.Color {
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "#"), 16, 32)
	if err != nil {
		return color.Black
	}
	return color.RGBA{R: uint8(v >> 16), G: uint8(v >> 8), B: uint8(v), A: 0xff}
}
