package judge

import (
	"fmt"
	"slices"
	"time"

	"github.com/jewelry-shop/lab/lab/measure"
	"github.com/jewelry-shop/lab/load"
	"github.com/jewelry-shop/lab/reports"
	"github.com/jewelry-shop/lab/shop/probeapi"
)

func loadSummary(o *Observation, d runData, windows []measure.Window) *reports.LoadSummary {
	res := o.Load
	if res == nil {
		return nil
	}
	inside, outside := measure.SplitBuckets(d.buckets, windows)
	s := &reports.LoadSummary{
		Scenario:      res.Scenario,
		Model:         string(res.Model),
		Users:         res.Generator.MaxUsers,
		Duration:      reports.Duration(res.Duration),
		Overall:       reportEndpoint(res.Overall),
		InsideFaults:  repCount(inside),
		OutsideFaults: repCount(outside),
		Warnings:      slices.Clone(res.Generator.Warnings),
	}
	for _, e := range res.Endpoints {
		s.Endpoints = append(s.Endpoints, reportEndpoint(e))
	}
	if res.StopReason != "" && res.StopReason != "duration" {
		s.Warnings = append(s.Warnings, "the load stopped early: "+res.StopReason)
	}
	return s
}

func reportEndpoint(st load.Stats) reports.Endpoint {
	e := reports.Endpoint{
		Name:  st.Name,
		Count: reports.Count{Requests: st.Requests, Failures: st.Failures},
		P50MS: millis(st.Latency.P50), P95MS: millis(st.Latency.P95), P99MS: millis(st.Latency.P99),
		RPS: st.RPS,
	}
	for _, c := range load.Classes() {
		if n := st.ByClass[c]; n != 0 {
			if e.FailuresByClass == nil {
				e.FailuresByClass = map[string]int64{}
			}
			e.FailuresByClass[c.String()] = n
		}
	}
	return e
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func repCount(c measure.Count) reports.Count {
	return reports.Count{Requests: c.Total, Failures: c.Failed}
}

func loadCharts(o *Observation) []reports.Chart {
	if o.Load == nil || len(o.Load.Series.Points) == 0 {
		return nil
	}
	rps := reports.Chart{ID: "rps", Title: "User requests per second", Unit: "req/s", Aggregate: "mean"}
	p95 := reports.Chart{ID: "p95", Title: "User request p95 latency", Unit: "ms", Aggregate: "max"}
	fails := reports.Chart{ID: "failures", Title: "Failed user requests", Unit: "requests", Aggregate: "sum"}
	for _, pt := range o.Load.Series.Points {
		at := pt.Time.UTC()
		rps.Points = append(rps.Points, reports.Point{At: at, Value: pt.RPS})
		p95.Points = append(p95.Points, reports.Point{At: at, Value: millis(pt.P95)})
		fails.Points = append(fails.Points, reports.Point{At: at, Value: float64(pt.Failures)})
	}
	return []reports.Chart{rps, p95, fails}
}

func availabilityRows(o *Observation, d runData, figs []*figures) []reports.Availability {
	const whole = "whole run"
	var out []reports.Availability
	if o.Load != nil {
		out = append(out, reports.Availability{Scope: whole, Source: "load", Count: reports.Count{Requests: o.Load.Overall.Requests, Failures: o.Load.Overall.Failures}})
	} else {
		out = append(out, reports.Availability{Scope: whole, Source: "load", NotMeasured: "no load results"})
	}
	for _, store := range []string{probeapi.StorePostgres, probeapi.StoreRedis} {
		a := reports.Availability{Scope: whole, Source: "prober " + store}
		if o.Timeline == nil {
			a.NotMeasured = fmt.Sprintf("no prober timeline: %v", o.TimelineErr)
		} else if st, ok := o.Timeline.Stores[store]; ok {
			// The prober writes from its start, before the run: only the
			// run's writes count when they can be told apart.
			a.Count = reports.Count{Requests: st.Acked + st.Failed, Failures: st.Failed}
			if len(st.Samples) > 0 {
				a.Count = repCount(measure.Tally(d.stores[store], measure.Window{Start: o.Started, End: o.Finished}))
			}
		} else {
			a.NotMeasured = "the prober has no " + store + " store"
		}
		out = append(out, a)
	}
	for _, f := range figs {
		if !f.hasWindow {
			continue
		}
		if o.Load != nil {
			in, _ := measure.SplitBuckets(d.buckets, []measure.Window{f.window})
			out = append(out, reports.Availability{Scope: f.x.Name, Source: "load", Count: repCount(in)})
		}
		if store := f.x.Role.Store(); store != "" && o.Timeline != nil {
			out = append(out, reports.Availability{Scope: f.x.Name, Source: "prober " + store, Count: repCount(measure.Tally(d.stores[store], f.window))})
		}
	}
	return out
}
