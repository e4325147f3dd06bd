package reports

import (
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure"`
	Error     *junitMessage `xml:"error"`
	Skipped   *junitMessage `xml:"skipped"`
	SystemOut *junitText    `xml:"system-out"`
}

type junitText struct {
	Text string `xml:",cdata"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",cdata"`
}

// WriteJUnit writes the run as JUnit XML: one test suite with a test case
// per requirement. A failed requirement has a failure element; one not
// measured or not run is skipped, with the reason. A run that did not
// complete adds a test case "run completed" with an error element, so that
// CI shows it failed even if every requirement it reached passed.
func WriteJUnit(w io.Writer, r *Run) error {
	name := "lab validate"
	if r.Profile != "" {
		name += " " + r.Profile
	}
	suite := junitSuite{Name: name, Time: seconds(r), Properties: []junitProperty{
		{Name: "profile", Value: r.Profile},
		{Name: "seed", Value: fmt.Sprint(r.Seed)},
		{Name: "verdict", Value: string(r.Verdict())},
		{Name: "exit_code", Value: fmt.Sprint(r.ExitCode())},
	}}
	if !r.Started.IsZero() {
		suite.Timestamp = r.Started.UTC().Format("2006-01-02T15:04:05Z")
	}
	for _, k := range slices.Sorted(maps.Keys(r.Environment)) {
		suite.Properties = append(suite.Properties, junitProperty{Name: "version." + k, Value: r.Environment[k]})
	}
	class := "lab.validate"
	if r.Profile != "" {
		class += "." + r.Profile
	}
	for _, q := range r.Requirements {
		c := junitCase{Name: strings.TrimSpace(q.ID + " " + q.Title), ClassName: class, Time: "0"}
		var lines []string
		for _, l := range [][2]string{{"threshold", q.Threshold}, {"measured", q.Measured}, {"reason", q.Reason}} {
			if l[1] != "" {
				lines = append(lines, l[0]+": "+l[1])
			}
		}
		for _, a := range q.Evidence {
			lines = append(lines, "evidence: #"+a)
		}
		text := strings.Join(lines, "\n")
		switch q.Status {
		case Pass:
			c.SystemOut = &junitText{Text: text}
		case Fail:
			c.Failure = &junitMessage{Message: firstNonEmpty(q.Reason, "requirement failed"), Type: "fail", Text: text}
			suite.Failures++
		case NotRun:
			c.Skipped = &junitMessage{Message: "not run: " + firstNonEmpty(q.Reason, "no reason given"), Text: text}
			suite.Skipped++
		case NotInProfile:
			c.Skipped = &junitMessage{Message: "not in this profile: " + firstNonEmpty(q.Reason, "no reason given"), Text: text}
			suite.Skipped++
		default:
			msg := firstNonEmpty(q.Reason, "no reason given")
			if q.Status != NotMeasured {
				msg = fmt.Sprintf("invalid status %q: %s", q.Status, msg)
			}
			c.Skipped = &junitMessage{Message: "not measured: " + msg, Text: text}
			suite.Skipped++
		}
		suite.Cases = append(suite.Cases, c)
	}
	if !r.Progress.Completed {
		msg := "the run did not complete"
		if r.Progress.Reached != "" {
			msg += ": stopped during " + r.Progress.Reached
		}
		suite.Cases = append(suite.Cases, junitCase{
			Name: "run completed", ClassName: class, Time: "0",
			Error: &junitMessage{Message: msg, Type: "incomplete", Text: r.Progress.Error},
		})
		suite.Errors++
	}
	suite.Tests = len(suite.Cases)
	doc := junitSuites{
		Name: name, Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors,
		Skipped: suite.Skipped, Time: suite.Time, Suites: []junitSuite{suite},
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write junit report: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write junit report: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("write junit report: %w", err)
	}
	return nil
}

// seconds is the run's duration in seconds, as JUnit wants it.
func seconds(r *Run) string {
	if r.Started.IsZero() || r.Finished.Before(r.Started) {
		return "0"
	}
	return fmt.Sprintf("%.3f", r.Finished.Sub(r.Started).Seconds())
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
