// Package reports renders the result of a validation run, a [Run], as the
// report a team commits: Markdown for people, with its charts also as SVG
// files for viewers that do not render Mermaid, JSON with every figure for
// machines (and for re-rendering with `lab report`), and JUnit XML so that CI
// systems show each requirement as a test case.
//
// The package measures nothing and imports nothing of the lab's: the lab
// maps what it measured into a Run. Rendering is deterministic (no clock,
// sorted maps, times in UTC), so the same Run always gives the same bytes
// and two reports diff cleanly.
//
// A Run states only what was measured. A figure that could not be measured
// is left empty (a nil pointer or a zero time) and its reason is given in
// the NotMeasured map of the value that holds it; a requirement that could
// not be judged has the status [NotMeasured] or [NotRun], never [Pass].
// See SCHEMA.md for the JSON document.
package reports

import (
	"fmt"
	"strings"
	"time"
)

// SchemaV1 identifies the JSON document this package writes and reads.
const SchemaV1 = "lab.jewelry-shop.dev/report/v1"

// Anchors of the report's fixed sections, for [Requirement.Evidence].
const (
	AnchorRequirements = "requirements"
	AnchorEnvironment  = "environment"
	AnchorLoad         = "load"
	AnchorAvailability = "availability"
	AnchorHealthChecks = "health-checks"
	AnchorAutoscaling  = "autoscaling"
	AnchorCharts       = "charts"
	AnchorNotRun       = "not-run"
)

// ExperimentAnchor is the anchor of an experiment's section.
func ExperimentAnchor(name string) string {
	var b strings.Builder
	b.WriteString("experiment-")
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

// Run is everything a validation run measured: the input of every renderer.
type Run struct {
	// Title names the run, e.g. "jewelry-shop lab validation".
	Title string `json:"title"`
	// Profile is the validation profile, e.g. "quick" or "full".
	Profile string `json:"profile"`
	// Seed seeds every random choice of the run (load behaviours, pod
	// picks), so that a run can be repeated.
	Seed int64 `json:"seed"`
	// Started and Finished bound the run on the lab's clock.
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Progress says how far the run got.
	Progress Progress `json:"progress"`
	// Environment maps a component to its version: k3d, k3s, charts,
	// images, the lab's commit.
	Environment map[string]string `json:"environment"`
	// Requirements is the requirement matrix, in the order to show.
	Requirements []Requirement `json:"requirements"`
	// Load is the load generator's summary; nil if no load ran.
	Load *LoadSummary `json:"load,omitempty"`
	// Availability lists the successful share of requests per scope and
	// source: the whole run and each fault window, for the load generator
	// and the prober.
	Availability []Availability `json:"availability"`
	// HealthChecks lists the probes found on the live workloads.
	HealthChecks []WorkloadProbes `json:"health_checks"`
	// Autoscaling is the HPA's timeline and scale-down; nil if not observed.
	Autoscaling *Autoscaling `json:"autoscaling,omitempty"`
	// Experiments are the faults, in the order they were planned.
	Experiments []Experiment `json:"experiments"`
	// FaultWindows are the periods during which a fault was in effect, on
	// the run's clock, as used to split the figures.
	FaultWindows []FaultWindow `json:"fault_windows"`
	// Charts are time series to plot, with the fault windows marked.
	Charts []Chart `json:"charts"`
	// NotRun lists what the plan held but the run did not do, and why.
	NotRun []Skipped `json:"not_run"`
	// Previous holds the requirement figures of an earlier run to compare
	// with (lab validate --compare); nil when there is none.
	Previous *Previous `json:"previous,omitempty"`
}

// Previous is what an earlier run measured, per requirement.
type Previous struct {
	Started      time.Time                      `json:"started"`
	Profile      string                         `json:"profile"`
	Requirements map[string]PreviousRequirement `json:"requirements"`
}

// PreviousRequirement is one requirement's result in the earlier run.
type PreviousRequirement struct {
	Status   Status  `json:"status"`
	Measured string  `json:"measured,omitempty"`
	Values   []Value `json:"values,omitempty"`
}

// Summarize keeps what a later run shows beside its own figures.
func Summarize(r *Run) *Previous {
	p := &Previous{Started: r.Started, Profile: r.Profile, Requirements: map[string]PreviousRequirement{}}
	for _, q := range r.Requirements {
		p.Requirements[q.ID] = PreviousRequirement{Status: q.Status, Measured: q.Measured, Values: q.Values}
	}
	return p
}

// Progress says how far a run got.
type Progress struct {
	// Completed is set when every planned step ran (whatever the results).
	Completed bool `json:"completed"`
	// Reached is the last step the run started.
	Reached string `json:"reached,omitempty"`
	// Error says why the run stopped early: a failure or a cancellation.
	Error string `json:"error,omitempty"`
}

// Status is a requirement's result.
type Status string

// The statuses of a requirement. Only Pass is a pass.
const (
	// Pass: measured, and within the threshold.
	Pass Status = "pass"
	// Fail: measured, and outside the threshold (or proven to be, such as
	// a service still down past the RTO limit).
	Fail Status = "fail"
	// NotMeasured: the step ran but the figure could not be measured; the
	// reason says why.
	NotMeasured Status = "not-measured"
	// NotRun: the step that measures it did not run; the reason says why.
	NotRun Status = "not-run"
	// NotInProfile: the run's profile does not validate it (e.g. the quick
	// profile has no node failure); the reason names what is missing. It
	// is neither a pass nor a gap of the run.
	NotInProfile Status = "not-in-profile"
)

// Valid reports whether s is one of the statuses.
func (s Status) Valid() bool {
	switch s {
	case Pass, Fail, NotMeasured, NotRun, NotInProfile:
		return true
	}
	return false
}

// Requirement is one row of the requirement matrix.
type Requirement struct {
	// ID is the requirement's identifier, e.g. "R29" or "no-data-loss".
	ID string `json:"id"`
	// Title says what is required, e.g. "PostgreSQL failover".
	Title string `json:"title"`
	// Threshold is the criterion in effect, e.g. "RTO < 30s".
	Threshold string `json:"threshold"`
	// Measured is the measured value in words, e.g. "RTO 12.4s"; empty when
	// nothing was measured.
	Measured string `json:"measured,omitempty"`
	Status   Status `json:"status"`
	// Reason explains the status: why it failed, was not measured or not
	// run.
	Reason string `json:"reason,omitempty"`
	// Evidence lists the anchors of the sections that hold the figures,
	// e.g. [AnchorLoad] or ExperimentAnchor("pg-primary-kill").
	Evidence []string `json:"evidence,omitempty"`
	// Values are the measured figures as numbers with their units, in the
	// order Measured names them, so that machines and comparisons need not
	// parse the words; absent when nothing was measured.
	Values []Value `json:"values,omitempty"`
}

// Unit is the unit of a measured Value.
type Unit string

// The units of measured values.
const (
	UnitSeconds Unit = "s"     // a duration in seconds
	UnitRatio   Unit = "ratio" // a share in [0, 1], e.g. availability
	UnitCount   Unit = "count" // a number of things, e.g. lost writes
)

// Value is one measured figure of a requirement, e.g. {"rto postgres-primary-failure", 12.4, "s"}.
type Value struct {
	// Name says what was measured; the same figure has the same name in
	// every run, so runs can be compared.
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  Unit    `json:"unit"`
}

// Seconds is a duration as a Value.
func Seconds(name string, d time.Duration) Value {
	return Value{Name: name, Value: d.Seconds(), Unit: UnitSeconds}
}

// Ratio is a share as a Value.
func Ratio(name string, r float64) Value { return Value{Name: name, Value: r, Unit: UnitRatio} }

// Number is a count as a Value.
func Number(name string, n int64) Value { return Value{Name: name, Value: float64(n), Unit: UnitCount} }

// Duration is a time.Duration encoded in JSON as Go's duration string,
// e.g. "12.345s", which time.ParseDuration reads back exactly.
type Duration time.Duration

// MarshalText encodes the duration as a string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText decodes what MarshalText encodes.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("decode duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Dur returns a pointer to d as a Duration, for optional figures.
func Dur(d time.Duration) *Duration {
	v := Duration(d)
	return &v
}

// Count is a number of requests and how many failed.
type Count struct {
	Requests int64 `json:"requests"`
	Failures int64 `json:"failures"`
}

// ErrorRate is Failures/Requests; ok is false when there were no requests.
func (c Count) ErrorRate() (rate float64, ok bool) {
	if c.Requests <= 0 {
		return 0, false
	}
	return float64(c.Failures) / float64(c.Requests), true
}

// LoadSummary is the load generator's figures.
type LoadSummary struct {
	// Scenario and Model describe the load, e.g. "shop", "closed".
	Scenario string `json:"scenario"`
	Model    string `json:"model"`
	// Users is the number of virtual users held (closed model).
	Users int `json:"users"`
	// Duration is how long load was sent.
	Duration Duration `json:"duration"`
	// Endpoints are the figures per endpoint, in the order to show.
	Endpoints []Endpoint `json:"endpoints"`
	// Overall are the figures of all requests.
	Overall Endpoint `json:"overall"`
	// InsideFaults and OutsideFaults split all requests by whether they
	// were due inside a fault window.
	InsideFaults  Count `json:"inside_faults"`
	OutsideFaults Count `json:"outside_faults"`
	// Warnings say where the generator could not keep up.
	Warnings []string `json:"warnings,omitempty"`
}

// Endpoint is the load figures of one endpoint.
type Endpoint struct {
	Name string `json:"name"`
	Count
	// FailuresByClass counts failures by kind, e.g. "timeout", "5xx".
	FailuresByClass map[string]int64 `json:"failures_by_class,omitempty"`
	// P50MS, P95MS and P99MS are latency percentiles in milliseconds.
	P50MS float64 `json:"p50_ms"`
	P95MS float64 `json:"p95_ms"`
	P99MS float64 `json:"p99_ms"`
	// RPS is requests per second over the load's duration.
	RPS float64 `json:"rps"`
}

// Availability is the successful share of one source's requests in one
// scope.
type Availability struct {
	// Scope is "whole run" or an experiment name (its fault window).
	Scope string `json:"scope"`
	// Source is where the requests come from, e.g. "load", "prober
	// postgres", "health endpoint".
	Source string `json:"source"`
	Count
	// NotMeasured says why there is no count.
	NotMeasured string `json:"not_measured,omitempty"`
}

// WorkloadProbes says which probes a live workload has.
type WorkloadProbes struct {
	// Workload is "Kind/name", e.g. "Deployment/web".
	Workload  string `json:"workload"`
	Readiness bool   `json:"readiness"`
	Liveness  bool   `json:"liveness"`
}

// ReplicaPoint is the replica count of an HPA from At on.
type ReplicaPoint struct {
	At       time.Time `json:"at"`
	Replicas int32     `json:"replicas"`
}

// Autoscaling is what the HPA did.
type Autoscaling struct {
	// HPA names the autoscaler, e.g. "jewelry-shop/web".
	HPA string `json:"hpa"`
	Min int32  `json:"min"`
	Max int32  `json:"max"`
	// Peak is the highest replica count under load; nil if not observed.
	Peak   *int32    `json:"peak,omitempty"`
	PeakAt time.Time `json:"peak_at,omitzero"`
	// LoadStoppedAt is when the load stopped; ReachedMinAt when the
	// replicas reached Min for good; ScaleDown the time between.
	LoadStoppedAt time.Time `json:"load_stopped_at,omitzero"`
	ReachedMinAt  time.Time `json:"reached_min_at,omitzero"`
	ScaleDown     *Duration `json:"scale_down,omitempty"`
	// Stalled names what held the replicas up when the scale-down did not
	// finish in time, e.g. "memory at 85 % of requests (target 80 %)".
	Stalled string `json:"stalled,omitempty"`
	// Timeline is the replica count over time (changes only).
	Timeline []ReplicaPoint `json:"timeline"`
	// ObservedUntil is the last time the HPA was read: the timeline's last
	// count held until then. Zero when not known; the replica chart then
	// ends at the last change.
	ObservedUntil time.Time `json:"observed_until,omitzero"`
	// DependsOn lists the settings the figures depend on.
	DependsOn []Setting `json:"depends_on,omitempty"`
	// NotMeasured maps a field's JSON name (e.g. "scale_down") to the
	// reason it is empty.
	NotMeasured map[string]string `json:"not_measured,omitempty"`
}

// Event is one entry of an experiment's timeline.
type Event struct {
	At time.Time `json:"at"`
	// Source is where the event was observed: "chaos", "prober", "load",
	// "kubernetes", "lab".
	Source string `json:"source"`
	What   string `json:"what"`
}

// Setting is a configuration value that a figure depends on, and why, so
// that a failing number tells the reader what to change.
type Setting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Why   string `json:"why"`
}

// Leader is the primary (PostgreSQL) or master (Redis) before and after a
// fault.
type Leader struct {
	Old string `json:"old"`
	New string `json:"new"`
	// Path is what happened: "failover" to another pod, or "restart in
	// place".
	Path string `json:"path"`
}

// Experiment is one fault and what it did.
type Experiment struct {
	// Name identifies the experiment, e.g. "pg-primary-kill".
	Name string `json:"name"`
	// Title describes it, e.g. "Kill the PostgreSQL primary".
	Title string `json:"title"`
	// Requirements lists the IDs of the requirements it provides evidence
	// for.
	Requirements []string `json:"requirements"`
	// Fault says how it was injected, e.g. "PodChaos pod-failure 40s".
	Fault string `json:"fault"`
	// Target is what it hit, e.g. "pod jewelry-shop/pg-0 (primary)".
	Target string `json:"target"`
	// NotRunReason is set when the experiment did not run; the figures
	// are then empty.
	NotRunReason string `json:"not_run_reason,omitempty"`
	// InjectedAt is when the fault was confirmed injected; FirstError the
	// first failed request after it; RecoveredAt the first success
	// followed by a sustained run of successes; SteadyAt when the replicas
	// were back at their Ready count (the wanted one, or the one before the
	// fault when a scale-up was under way). Zero times were not observed.
	InjectedAt  time.Time `json:"injected_at,omitzero"`
	FirstError  time.Time `json:"first_error,omitzero"`
	RecoveredAt time.Time `json:"recovered_at,omitzero"`
	SteadyAt    time.Time `json:"steady_at,omitzero"`
	// RTO is RecoveredAt - InjectedAt.
	RTO *Duration `json:"rto,omitempty"`
	// Leader is the primary or master before and after, when the target
	// has one.
	Leader *Leader `json:"leader,omitempty"`
	// Errors counts the requests inside the fault window.
	Errors *Count `json:"errors,omitempty"`
	// ProberWrites is what the prober's writes to the store this fault
	// disturbs did around it; nil when the fault disturbs no store or when
	// they were not recorded (NotMeasured["prober_writes"] then says why).
	ProberWrites *ProberWrites `json:"prober_writes,omitempty"`
	// LostWrites lists acknowledged writes missing after recovery;
	// Duplicates writes present more than once. nil when not verified.
	LostWrites *[]int64 `json:"lost_writes,omitempty"`
	Duplicates *[]int64 `json:"duplicates,omitempty"`
	// Timeline is what happened, in time order.
	Timeline []Event `json:"timeline"`
	// DependsOn lists the settings the figures depend on.
	DependsOn []Setting `json:"depends_on,omitempty"`
	// Notes are remarks in words, e.g. "no outage observed: RTO 0 means no
	// failed probe at a 100 ms interval".
	Notes []string `json:"notes,omitempty"`
	// NotMeasured maps a field's JSON name (e.g. "rto", "lost_writes") to
	// the reason it is empty.
	NotMeasured map[string]string `json:"not_measured,omitempty"`
}

// ProberWrites counts the prober's writes to one store per interval, from
// before a fault's injection to after its recovery.
type ProberWrites struct {
	// Store is the prober's store, e.g. "postgres" or "redis".
	Store string `json:"store"`
	// Interval is the time each point covers: a point at At counts the
	// writes sent in [At, At+Interval).
	Interval Duration `json:"interval"`
	// Points are the counts, in time order.
	Points []WritePoint `json:"points"`
}

// WritePoint counts the prober's writes sent in one interval by outcome.
type WritePoint struct {
	At time.Time `json:"at"`
	// Acknowledged writes were confirmed by the store; Failed writes got an
	// error or no answer in time.
	Acknowledged int64 `json:"acknowledged"`
	Failed       int64 `json:"failed"`
}

// FaultWindow is a period in which a fault was in effect.
type FaultWindow struct {
	Experiment string    `json:"experiment"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
}

// Chart is a time series to plot. The report combines the charts the lab
// records under the IDs "rps" (requests per second), "failures" (failed
// requests per point) and "p95" (latency in milliseconds) into its own
// charts; a chart with any other ID is drawn on its own.
type Chart struct {
	// ID names the chart, e.g. "rps"; Title and Unit label it.
	ID    string `json:"id"`
	Title string `json:"title"`
	Unit  string `json:"unit"`
	// Aggregate says how neighbouring points are merged when the chart has
	// more points than fit ([MaxChartPoints]): "mean", "sum" or "max".
	Aggregate string  `json:"aggregate"`
	Points    []Point `json:"points"`
}

// Point is one value of a chart.
type Point struct {
	At    time.Time `json:"at"`
	Value float64   `json:"value"`
}

// Skipped is a planned step that did not run.
type Skipped struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Verdict is the overall result of a run.
type Verdict string

// The verdicts, one for each exit code of `lab validate`.
const (
	VerdictPass       Verdict = "pass"
	VerdictFail       Verdict = "fail"
	VerdictIncomplete Verdict = "incomplete"
)

// Verdict is the run's overall result:
//
//   - fail when any requirement failed, even if the run was interrupted:
//     a measured failure stands;
//   - else incomplete when the run did not complete, when any requirement
//     was not measured or not run (or has no valid status), or when no
//     requirement of the profile passed: what was not measured is never a
//     pass;
//   - else pass: every requirement the profile validates passed. Those it
//     does not validate ([NotInProfile]) are not part of the verdict.
func (r *Run) Verdict() Verdict {
	incomplete, passed := !r.Progress.Completed, 0
	for _, q := range r.Requirements {
		switch q.Status {
		case Fail:
			return VerdictFail
		case Pass:
			passed++
		case NotInProfile:
		default:
			incomplete = true
		}
	}
	if incomplete || passed == 0 {
		return VerdictIncomplete
	}
	return VerdictPass
}

// ExitCode is the exit code of `lab validate` for this run: 0 when every
// requirement of the profile passed ([VerdictPass]), 1 when any failed ([VerdictFail]),
// 2 otherwise ([VerdictIncomplete]: the run was interrupted, or something
// was not measured or not run).
func (r *Run) ExitCode() int {
	switch r.Verdict() {
	case VerdictPass:
		return 0
	case VerdictFail:
		return 1
	}
	return 2
}

// ids returns the IDs of the requirements with status s; an invalid status
// counts as NotMeasured.
func (r *Run) ids(s Status) []string {
	var ids []string
	for _, q := range r.Requirements {
		qs := q.Status
		if !qs.Valid() {
			qs = NotMeasured
		}
		if qs == s {
			ids = append(ids, q.ID)
		}
	}
	return ids
}

// counts returns how many requirements have each status.
func (r *Run) counts() map[Status]int {
	n := map[Status]int{}
	for _, q := range r.Requirements {
		s := q.Status
		if !s.Valid() {
			s = NotMeasured
		}
		n[s]++
	}
	return n
}
