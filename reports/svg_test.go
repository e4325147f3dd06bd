package reports

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"html"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestChartSVG draws every chart of every fixture as SVG against its golden
// file, and checks it as a reader sees it: at most 15 x-axis labels, every
// fault window named, and the last sample marked and named.
func TestChartSVG(t *testing.T) {
	t.Parallel()
	for _, fx := range fixtures {
		for _, f := range fx.run().figures() {
			if f.noData != "" {
				continue
			}
			t.Run(fx.name+"/"+f.id, func(t *testing.T) {
				t.Parallel()
				var first, second bytes.Buffer
				if err := WriteChartSVG(&first, fx.run(), f.id); err != nil {
					t.Fatal(err)
				}
				if err := WriteChartSVG(&second, fx.run(), f.id); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(first.Bytes(), second.Bytes()) {
					t.Fatal("two renderings of the same chart differ")
				}
				dec := xml.NewDecoder(bytes.NewReader(first.Bytes()))
				for {
					if _, err := dec.Token(); errors.Is(err, io.EOF) {
						break
					} else if err != nil {
						t.Fatalf("the SVG is not well-formed XML: %v", err)
					}
				}
				a := newAxis(f, MaxChartPoints)
				p, _, err := svgPlot(f, a)
				if err != nil {
					t.Fatal(err)
				}
				labels := 0
				for _, tk := range p.X.Tick.Marker.Ticks(p.X.Min, p.X.Max) {
					if tk.Label != "" && tk.Value >= p.X.Min && tk.Value <= p.X.Max {
						labels++
					}
				}
				if labels < 2 || labels > 15 {
					t.Errorf("the x-axis has %d labels, want 2 to 15", labels)
				}
				svg := first.String()
				for _, w := range f.windows {
					if !strings.Contains(svg, ">"+html.EscapeString(w.Experiment)) && !strings.Contains(svg, "fault "+html.EscapeString(w.Experiment)) {
						t.Errorf("fault window %s is not named in the SVG", w.Experiment)
					}
				}
				_, last := f.span()
				if !strings.Contains(svg, "Last sample at "+a.pos(last)) {
					t.Errorf("the last sample (%s) is not named in the SVG", a.pos(last))
				}
				if !strings.Contains(svg, "'Liberation Sans',Arial,Helvetica,sans-serif") {
					t.Error("the SVG names no fallback for its font")
				}
				golden(t, "TestChartSVG_"+fx.name+"_"+f.id, "svg", first.Bytes())
			})
		}
	}
}

var svgLink = regexp.MustCompile(`\]\((charts/[^)]+\.svg)\)`)

// TestWriteChartSVGs writes the charts beside a report: exactly the files
// the Markdown shows.
func TestWriteChartSVGs(t *testing.T) {
	t.Parallel()
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			paths, err := WriteChartSVGs(t.Context(), dir, fx.run())
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range paths {
				rel, err := filepath.Rel(dir, p)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, filepath.ToSlash(rel))
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				var want bytes.Buffer
				id := strings.TrimSuffix(filepath.Base(p), ".svg")
				if err := WriteChartSVG(&want, fx.run(), id); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b, want.Bytes()) {
					t.Errorf("%s differs from WriteChartSVG(%q)", rel, id)
				}
			}
			var md bytes.Buffer
			if err := WriteMarkdown(&md, fx.run()); err != nil {
				t.Fatal(err)
			}
			var links []string
			for _, m := range svgLink.FindAllStringSubmatch(md.String(), -1) {
				links = append(links, m[1])
			}
			if diff := cmp.Diff(links, got); diff != "" {
				t.Errorf("files written (+) against SVGs the Markdown shows (-):\n%s", diff)
			}
			var ids []string
			for _, id := range ChartIDs(fx.run()) {
				ids = append(ids, chartFile(id))
			}
			if diff := cmp.Diff(ids, got); diff != "" {
				t.Errorf("files written (+) against ChartIDs (-):\n%s", diff)
			}
		})
	}
}

func TestWriteChartSVGErrors(t *testing.T) {
	t.Parallel()
	if err := WriteChartSVG(io.Discard, passingRun(), "nope"); !errors.Is(err, ErrNoChart) {
		t.Errorf("WriteChartSVG of an unknown chart: %v, want ErrNoChart", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := WriteChartSVGs(ctx, t.TempDir(), passingRun()); !errors.Is(err, context.Canceled) {
		t.Errorf("WriteChartSVGs after cancel: %v, want context.Canceled", err)
	}
	file := filepath.Join(t.TempDir(), "report.md")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteChartSVGs(t.Context(), file, passingRun()); err == nil || !strings.Contains(err.Error(), "write charts") {
		t.Errorf("WriteChartSVGs into a file: %v, want an error", err)
	}
	paths, err := WriteChartSVGs(t.Context(), t.TempDir(), &Run{})
	if err != nil || len(paths) != 0 {
		t.Errorf("WriteChartSVGs of a run without charts: %v, %v; want nothing", paths, err)
	}
}
