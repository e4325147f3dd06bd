package reports

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// WriteMarkdown renders the run as the Markdown report: the verdict and the
// requirement matrix first, then the environment, the load, availability,
// health checks, autoscaling, one section per experiment, charts (Mermaid
// xychart-beta, which GitHub and GitLab render, each followed by its facts in
// words and by its SVG file charts/<id>.svg, which [WriteChartSVGs] writes)
// and what did not run.
func WriteMarkdown(w io.Writer, r *Run) error {
	var b strings.Builder
	m := markdown{b: &b, r: r}
	m.header()
	m.requirements()
	m.environment()
	m.load()
	m.availability()
	m.healthChecks()
	m.autoscaling()
	m.experiments()
	m.charts()
	m.notRun()
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write markdown report: %w", err)
	}
	return nil
}

type markdown struct {
	b *strings.Builder
	r *Run
}

func (m markdown) p(format string, args ...any) { fmt.Fprintf(m.b, format+"\n", args...) }

// section writes a level-2 heading with an explicit anchor.
func (m markdown) section(anchor, title string) {
	m.p("")
	m.p(`<a id="%s"></a>`, anchor)
	m.p("")
	m.p("## %s", title)
	m.p("")
}

// row writes a table row, escaping each cell.
func (m markdown) row(cells ...string) {
	for i, c := range cells {
		cells[i] = cell(c)
	}
	m.p("| %s |", strings.Join(cells, " | "))
}

// table writes a header row and its delimiter; align holds "l" or "r" per
// column.
func (m markdown) table(align string, headers ...string) {
	m.row(headers...)
	delims := make([]string, len(headers))
	for i := range delims {
		delims[i] = "---"
		if i < len(align) && align[i] == 'r' {
			delims[i] = "---:"
		}
	}
	m.p("| %s |", strings.Join(delims, " | "))
}

func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

var verdictText = map[Verdict]string{
	VerdictPass:       "✅ PASS",
	VerdictFail:       "❌ FAIL",
	VerdictIncomplete: "⚠️ INCOMPLETE",
}

func (m markdown) header() {
	r := m.r
	title := r.Title
	if title == "" {
		title = "Validation report"
	}
	m.p("# %s", title)
	m.p("")
	m.p("**Verdict: %s** · profile `%s` · seed %d · exit code %d", verdictText[r.Verdict()], r.Profile, r.Seed, r.ExitCode())
	m.p("")
	n := r.counts()
	line := fmt.Sprintf("%d requirements: %d passed, %d failed, %d not measured, %d not run", len(r.Requirements), n[Pass], n[Fail], n[NotMeasured], n[NotRun])
	if n[NotInProfile] > 0 {
		line += fmt.Sprintf(", %d not in this profile", n[NotInProfile])
	}
	m.p("%s.", line)
	for _, s := range []Status{Fail, NotMeasured, NotRun, NotInProfile} {
		if ids := r.ids(s); len(ids) > 0 {
			m.p("%s: %s.", strings.ToUpper(string(s[0]))+strings.ReplaceAll(string(s[1:]), "-", " "), strings.Join(ids, ", "))
		}
	}
	m.p("Started %s, finished %s (%s).", fmtDate(r.Started), fmtDate(r.Finished), fmtDur(r.Finished.Sub(r.Started)))
	if !r.Progress.Completed {
		m.p("")
		reached := "before its first step"
		if r.Progress.Reached != "" {
			reached = fmt.Sprintf("during `%s`", r.Progress.Reached)
		}
		why := ""
		if r.Progress.Error != "" {
			why = ": " + r.Progress.Error
		}
		m.p("> **The run did not complete.** It stopped %s%s. Requirements it could not measure are marked not measured or not run, never passed.", reached, cell(why))
	}
}

var statusText = map[Status]string{
	Pass:        "✅ pass",
	Fail:        "❌ fail",
	NotMeasured: "⚠️ not measured",
	NotRun:      "⏭️ not run",
	// Not a result of this run: the profile does not validate it.
	NotInProfile: "➖ not in this profile",
}

func (m markdown) requirements() {
	m.section(AnchorRequirements, "Requirements")
	if len(m.r.Requirements) == 0 {
		m.p("No requirement was evaluated.")
		return
	}
	prev := m.r.Previous
	if prev == nil {
		m.table("llllll", "ID", "Requirement", "Threshold", "Measured", "Result", "Evidence")
	} else {
		m.p("The last column is the run of %s (profile `%s`) this one is compared with.", prev.Started.UTC().Format("2006-01-02 15:04 MST"), prev.Profile)
		m.p("")
		m.table("lllllll", "ID", "Requirement", "Threshold", "Measured", "Result", "Evidence", "Previous run")
	}
	for _, q := range m.r.Requirements {
		status, ok := statusText[q.Status]
		reason := q.Reason
		if !ok {
			status = statusText[NotMeasured]
			reason = strings.TrimSpace(fmt.Sprintf("invalid status %q %s", q.Status, reason))
		}
		if reason != "" {
			status += ": " + reason
		}
		measured := q.Measured
		if measured == "" {
			measured = "—"
		}
		links := make([]string, len(q.Evidence))
		for i, a := range q.Evidence {
			links[i] = fmt.Sprintf("[%s](#%s)", a, a)
		}
		if prev == nil {
			m.row(q.ID, q.Title, q.Threshold, measured, status, strings.Join(links, ", "))
			continue
		}
		before := "—"
		if pq, ok := prev.Requirements[q.ID]; ok {
			before = statusText[pq.Status]
			if before == "" {
				before = string(pq.Status)
			}
			if pq.Measured != "" {
				before += ": " + pq.Measured
			}
			if d := deltas(q.Values, pq.Values); d != "" {
				before += "; change: " + d
			}
		}
		m.row(q.ID, q.Title, q.Threshold, measured, status, strings.Join(links, ", "), before)
	}
}

// deltas says how each figure of cur changed since the same-named figure of
// prev, e.g. "rto postgres-primary-failure −1.24s, availability +0.10 % points".
func deltas(cur, prev []Value) string {
	var out []string
	for _, c := range cur {
		for _, p := range prev {
			if p.Name != c.Name || p.Unit != c.Unit {
				continue
			}
			d := c.Value - p.Value
			sign := "+"
			if d < 0 {
				sign, d = "−", -d
			}
			switch c.Unit {
			case UnitSeconds:
				out = append(out, fmt.Sprintf("%s %s%s", c.Name, sign, time.Duration(d*float64(time.Second)).Round(time.Millisecond)))
			case UnitRatio:
				out = append(out, fmt.Sprintf("%s %s%.2f %% points", c.Name, sign, d*100))
			default:
				out = append(out, fmt.Sprintf("%s %s%s", c.Name, sign, strconv.FormatFloat(d, 'f', -1, 64)))
			}
		}
	}
	return strings.Join(out, ", ")
}

func (m markdown) environment() {
	m.section(AnchorEnvironment, "Environment")
	if len(m.r.Environment) == 0 {
		m.p("Not recorded.")
		return
	}
	m.table("ll", "Component", "Version")
	for _, k := range slices.Sorted(maps.Keys(m.r.Environment)) {
		m.row(k, m.r.Environment[k])
	}
}

func (m markdown) load() {
	m.section(AnchorLoad, "Load")
	l := m.r.Load
	if l == nil {
		m.p("No load was run.")
		return
	}
	m.p("Scenario `%s`, %s model, %d users, %s of load.", l.Scenario, l.Model, l.Users, fmtDur(time.Duration(l.Duration)))
	m.p("Latency percentiles in milliseconds.")
	m.p("")
	m.table("lrrrrrrrl", "Endpoint", "Requests", "Failures", "Error rate", "p50", "p95", "p99", "RPS", "Failures by class")
	row := func(e Endpoint, name string) {
		m.row(name, fmt.Sprint(e.Requests), fmt.Sprint(e.Failures), fmtRate(e.Count),
			fmtNum(e.P50MS, 1), fmtNum(e.P95MS, 1), fmtNum(e.P99MS, 1), fmtNum(e.RPS, 1), fmtClasses(e.FailuresByClass))
	}
	for _, e := range l.Endpoints {
		row(e, e.Name)
	}
	row(l.Overall, "**all**")
	m.p("")
	m.p("Inside fault windows: %s. Outside fault windows: %s.", fmtCount(l.InsideFaults), fmtCount(l.OutsideFaults))
	if len(l.Warnings) > 0 {
		m.p("")
		m.p("The load generator reported:")
		m.p("")
		for _, w := range l.Warnings {
			m.p("- %s", cell(w))
		}
	}
}

func (m markdown) availability() {
	m.section(AnchorAvailability, "Availability")
	if len(m.r.Availability) == 0 {
		m.p("Not measured.")
		return
	}
	m.table("llrrr", "Scope", "Source", "Requests", "Failures", "Availability")
	for _, a := range m.r.Availability {
		value := "not measured"
		switch {
		case a.NotMeasured != "":
			value += ": " + a.NotMeasured
		case a.Requests > 0:
			value = fmtNum(100*float64(a.Requests-a.Failures)/float64(a.Requests), 3) + " %"
		default:
			value += ": no requests"
		}
		m.row(a.Scope, a.Source, fmt.Sprint(a.Requests), fmt.Sprint(a.Failures), value)
	}
}

func (m markdown) healthChecks() {
	m.section(AnchorHealthChecks, "Health checks")
	if len(m.r.HealthChecks) == 0 {
		m.p("Not checked.")
		return
	}
	m.p("Probes found on the live workloads.")
	m.p("")
	m.table("lll", "Workload", "Readiness probe", "Liveness probe")
	for _, h := range m.r.HealthChecks {
		m.row(h.Workload, yesNo(h.Readiness), yesNo(h.Liveness))
	}
}

func yesNo(ok bool) string {
	if ok {
		return "✅ yes"
	}
	return "❌ no"
}

func (m markdown) autoscaling() {
	m.section(AnchorAutoscaling, "Autoscaling")
	a := m.r.Autoscaling
	if a == nil {
		m.p("Not observed.")
		return
	}
	m.p("HPA `%s`, %d to %d replicas.", a.HPA, a.Min, a.Max)
	m.p("")
	m.table("ll", "Figure", "Value")
	peak := m.missing(a.NotMeasured, "peak")
	if a.Peak != nil {
		peak = fmt.Sprintf("%d replicas at %s", *a.Peak, m.at(a.PeakAt))
	}
	m.row("Peak under load", peak)
	m.row("Load stopped", m.timeOr(a.LoadStoppedAt, a.NotMeasured, "load_stopped_at"))
	m.row("Back to min", m.timeOr(a.ReachedMinAt, a.NotMeasured, "reached_min_at"))
	m.row("Scale-down time", m.durOr(a.ScaleDown, a.NotMeasured, "scale_down"))
	if a.Stalled != "" {
		m.row("Held up by", a.Stalled)
	}
	m.dependsOn(a.DependsOn)
	if len(a.Timeline) > 0 {
		m.p("")
		m.p("Replica timeline:")
		m.p("")
		m.table("lr", "Time", "Replicas")
		for _, p := range a.Timeline {
			m.row(m.at(p.At), fmt.Sprint(p.Replicas))
		}
	}
}

func (m markdown) dependsOn(settings []Setting) {
	if len(settings) == 0 {
		return
	}
	m.p("")
	m.p("The figures depend on:")
	m.p("")
	m.table("lll", "Setting", "Value", "Why")
	for _, s := range settings {
		m.row("`"+s.Name+"`", s.Value, s.Why)
	}
}

// missing renders an empty figure: "not measured" with the reason if known.
func (m markdown) missing(reasons map[string]string, field string) string {
	if why := reasons[field]; why != "" {
		return "not measured: " + why
	}
	return "not measured"
}

func (m markdown) timeOr(t time.Time, reasons map[string]string, field string) string {
	if t.IsZero() {
		return m.missing(reasons, field)
	}
	return m.at(t)
}

func (m markdown) durOr(d *Duration, reasons map[string]string, field string) string {
	if d == nil {
		return m.missing(reasons, field)
	}
	return fmtDur(time.Duration(*d))
}

// at renders a time of day with its offset from the start of the run.
func (m markdown) at(t time.Time) string {
	return fmt.Sprintf("%s (%s)", fmtClock(t), fmtOffset(t.Sub(m.r.Started)))
}

func (m markdown) experiments() {
	m.p("")
	m.p("## Experiments")
	if len(m.r.Experiments) == 0 {
		m.p("")
		m.p("No experiment was planned.")
	}
	for _, e := range m.r.Experiments {
		m.experiment(e)
	}
}

func (m markdown) experiment(e Experiment) {
	m.p("")
	m.p(`<a id="%s"></a>`, ExperimentAnchor(e.Name))
	m.p("")
	title := e.Title
	if title == "" {
		title = e.Name
	}
	m.p("### %s (`%s`)", title, e.Name)
	m.p("")
	if len(e.Requirements) > 0 {
		m.p("Requirements: %s.", strings.Join(e.Requirements, ", "))
	}
	if e.Fault != "" {
		m.p("Fault: %s.", cell(e.Fault))
	}
	if e.Target != "" {
		m.p("Target: %s.", cell(e.Target))
	}
	if e.NotRunReason != "" {
		m.p("")
		m.p("**Not run:** %s.", cell(e.NotRunReason))
		return
	}
	nm := e.NotMeasured
	since := func(t time.Time, field string) string {
		if t.IsZero() {
			return m.missing(nm, field)
		}
		if e.InjectedAt.IsZero() || t.Equal(e.InjectedAt) {
			return fmtClock(t)
		}
		return fmt.Sprintf("%s (%s after injection)", fmtClock(t), fmtDur(t.Sub(e.InjectedAt)))
	}
	m.p("")
	m.table("ll", "Figure", "Value")
	m.row("Injected", since(e.InjectedAt, "injected_at"))
	m.row("First error", since(e.FirstError, "first_error"))
	m.row("Recovered", since(e.RecoveredAt, "recovered_at"))
	m.row("Steady (Ready replicas back)", since(e.SteadyAt, "steady_at"))
	m.row("RTO", m.durOr(e.RTO, nm, "rto"))
	if e.Leader != nil {
		m.row("Primary / master", fmt.Sprintf("%s → %s (%s)", e.Leader.Old, e.Leader.New, e.Leader.Path))
	} else if _, ok := nm["leader"]; ok {
		m.row("Primary / master", m.missing(nm, "leader"))
	}
	errs := m.missing(nm, "errors")
	if e.Errors != nil {
		errs = fmtCount(*e.Errors)
	}
	m.row("Errors in the window", errs)
	seqs := func(p *[]int64, field string) (string, bool) {
		if p == nil {
			_, ok := nm[field]
			return m.missing(nm, field), ok
		}
		return fmtSeqs(*p), true
	}
	if v, ok := seqs(e.LostWrites, "lost_writes"); ok {
		m.row("Lost acknowledged writes", v)
	}
	if v, ok := seqs(e.Duplicates, "duplicates"); ok {
		m.row("Duplicated writes", v)
	}
	if len(e.Notes) > 0 {
		m.p("")
		for _, n := range e.Notes {
			m.p("- %s", cell(n))
		}
	}
	if len(e.Timeline) > 0 {
		m.p("")
		m.p("Timeline:")
		m.p("")
		m.table("lrll", "Time", "Since injection", "Source", "Event")
		for _, ev := range e.Timeline {
			rel := "—"
			if !e.InjectedAt.IsZero() {
				rel = fmtOffset(ev.At.Sub(e.InjectedAt))
			}
			m.row(fmtClock(ev.At), rel, ev.Source, ev.What)
		}
	}
	m.dependsOn(e.DependsOn)
}

func (m markdown) notRun() {
	m.section(AnchorNotRun, "Not run")
	if len(m.r.NotRun) == 0 {
		m.p("Everything planned ran.")
		return
	}
	for _, s := range m.r.NotRun {
		m.p("- **%s**: %s", cell(s.Name), cell(s.Reason))
	}
}

// fmtDate renders a time in UTC with the date.
func fmtDate(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// fmtClock renders a time of day in UTC to the millisecond.
func fmtClock(t time.Time) string { return t.UTC().Format("15:04:05.000") }

// fmtOffset renders a signed offset such as "+1m2.5s".
func fmtOffset(d time.Duration) string {
	if d < 0 {
		return "-" + fmtDur(-d)
	}
	return "+" + fmtDur(d)
}

// fmtDur rounds a duration to what a reader needs: milliseconds below a
// second, hundredths of a second below a minute, tenths above.
func fmtDur(d time.Duration) string {
	a := d
	if a < 0 {
		a = -a
	}
	switch {
	case a < time.Second:
		return d.Round(time.Millisecond).String()
	case a < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// fmtNum renders a number with at most the given decimals, trailing zeros
// dropped.
func fmtNum(v float64, decimals int) string {
	s := fmt.Sprintf("%.*f", decimals, v)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}

func fmtRate(c Count) string {
	rate, ok := c.ErrorRate()
	if !ok {
		return "—"
	}
	return fmtNum(100*rate, 3) + " %"
}

func fmtCount(c Count) string {
	if c.Requests == 0 {
		return "no requests"
	}
	return fmt.Sprintf("%d failed of %d requests (%s)", c.Failures, c.Requests, fmtRate(c))
}

func fmtClasses(byClass map[string]int64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(byClass)) {
		if byClass[k] != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, byClass[k]))
		}
	}
	return strings.Join(parts, ", ")
}

// fmtSeqs renders sequence numbers, listing at most ten.
func fmtSeqs(seqs []int64) string {
	if len(seqs) == 0 {
		return "none"
	}
	const show = 10
	parts := make([]string, 0, show)
	for _, s := range seqs[:min(len(seqs), show)] {
		parts = append(parts, fmt.Sprint(s))
	}
	more := ""
	if len(seqs) > show {
		more = fmt.Sprintf(", … (%d more)", len(seqs)-show)
	}
	return fmt.Sprintf("**%d**: seq %s%s", len(seqs), strings.Join(parts, ", "), more)
}
