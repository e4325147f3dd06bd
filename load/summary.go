package load

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteSummary writes the end-of-run table: per endpoint and overall
// figures, failures by class, thresholds and the generator's own health.
func WriteSummary(w io.Writer, r *Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario %s, %s model, %s against %s (stopped: %s)\n\n",
		r.Scenario, r.Model, r.Duration.Round(time.Millisecond), r.Target, r.StopReason)
	if s := r.NoSuccess(); s != "" {
		fmt.Fprintf(&b, "%s\n\n", s)
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "endpoint\trequests\tfailures\terror %\treq/s\tp50\tp95\tp99\tmax\traw p95\traw p99\t")
	row := func(s Stats) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.Name, s.Requests, s.Failures,
			100*s.ErrorRate, s.RPS, fmtMS(s.Latency.P50), fmtMS(s.Latency.P95), fmtMS(s.Latency.P99),
			fmtMS(s.Latency.Max), fmtMS(s.RawLatency.P95), fmtMS(s.RawLatency.P99))
	}
	for _, s := range r.Endpoints {
		row(s)
	}
	row(r.Overall)
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	b.WriteString("latency in ms from the time each request was due (corrected); raw: from the moment it was sent\n")
	if r.Overall.Failures > 0 {
		b.WriteString("\nfailures:")
		for _, c := range Classes() {
			if n := r.Overall.ByClass[c]; n > 0 {
				fmt.Fprintf(&b, " %s %d", c, n)
			}
		}
		b.WriteString("\n")
	}
	if len(r.Thresholds) > 0 {
		b.WriteString("\nthresholds:\n")
		for _, t := range r.Thresholds {
			mark := "PASS"
			if !t.Pass {
				mark = "FAIL"
			}
			if t.Problem != "" {
				fmt.Fprintf(&b, "  %s  %s  (%s)", mark, t.Source, t.Problem)
			} else {
				fmt.Fprintf(&b, "  %s  %s  (actual %s)", mark, t.Source, fmtActual(t))
			}
			b.WriteString("\n")
		}
	}
	g := r.Generator
	fmt.Fprintf(&b, "\ngenerator: %.2f CPU-s (%.2f of %d cores), schedule lag p99 %s, dropped starts %d, max users %d\n",
		g.CPUSeconds, g.Cores, g.Available, fmtMS(g.ScheduleLag.P99), g.DroppedStarts, g.MaxUsers)
	for _, w := range g.Warnings {
		fmt.Fprintf(&b, "WARNING: %s\n", w)
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}

func fmtMS(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

func fmtActual(t ThresholdResult) string {
	switch t.Metric {
	case "error_rate":
		return fmt.Sprintf("%.3f%%", 100*t.Actual)
	case "rps", "requests", "failures":
		return fmt.Sprintf("%g", t.Actual)
	}
	return fmt.Sprintf("%.1fms", t.Actual)
}

// FormatProgress renders a progress line: elapsed, users, req/s, errors,
// p95.
func FormatProgress(p Progress) string {
	return fmt.Sprintf("%6s  users %5d  req/s %8.1f  requests %9d  errors %7d  p95 %8sms",
		p.Elapsed.Round(time.Second), p.Users, p.RPS, p.Requests, p.Failures, fmtMS(p.P95))
}

// WriteJSON writes the result as indented JSON.
func WriteJSON(w io.Writer, r *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("encode load result: %w", err)
	}
	return nil
}
