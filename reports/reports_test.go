package reports

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	goldenpkg "github.com/jewelry-shop/lab/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/<name>.golden.<ext>, or rewrites it
// under -update.
func golden(t *testing.T, name, ext string, got []byte) {
	t.Helper()
	goldenpkg.Check(t, filepath.Join("testdata", name+".golden."+ext), got, *update)
}

var fixtures = []struct {
	name     string
	run      func() *Run
	verdict  Verdict
	exitCode int
}{
	{"passing", passingRun, VerdictPass, 0},
	{"failing", failingRun, VerdictFail, 1},
	{"interrupted", interruptedRun, VerdictIncomplete, 2},
}

func TestGolden(t *testing.T) {
	t.Parallel()
	writers := []struct {
		ext   string
		write func(*bytes.Buffer, *Run) error
	}{
		{"md", func(b *bytes.Buffer, r *Run) error { return WriteMarkdown(b, r) }},
		{"json", func(b *bytes.Buffer, r *Run) error { return WriteJSON(b, r) }},
		{"xml", func(b *bytes.Buffer, r *Run) error { return WriteJUnit(b, r) }},
	}
	for _, f := range fixtures {
		for _, w := range writers {
			t.Run(f.name+"/"+w.ext, func(t *testing.T) {
				t.Parallel()
				var first, second bytes.Buffer
				if err := w.write(&first, f.run()); err != nil {
					t.Fatal(err)
				}
				if err := w.write(&second, f.run()); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(first.Bytes(), second.Bytes()) {
					t.Fatal("two renderings of the same run differ")
				}
				if w.ext == "xml" {
					var doc junitSuites
					if err := xml.Unmarshal(first.Bytes(), &doc); err != nil {
						t.Fatalf("JUnit XML does not parse: %v", err)
					}
				}
				golden(t, "TestGolden_"+f.name, w.ext, first.Bytes())
			})
		}
	}
}

func TestVerdict(t *testing.T) {
	t.Parallel()
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			r := f.run()
			if got := r.Verdict(); got != f.verdict {
				t.Errorf("Verdict() = %q, want %q", got, f.verdict)
			}
			if got := r.ExitCode(); got != f.exitCode {
				t.Errorf("ExitCode() = %d, want %d", got, f.exitCode)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	req := func(s Status) Requirement { return Requirement{ID: "R", Status: s} }
	tests := []struct {
		name      string
		completed bool
		reqs      []Requirement
		want      int
	}{
		{"all pass", true, []Requirement{req(Pass), req(Pass)}, 0},
		{"one fail", true, []Requirement{req(Pass), req(Fail)}, 1},
		{"fail beats not measured", true, []Requirement{req(NotMeasured), req(Fail)}, 1},
		{"fail in an interrupted run", false, []Requirement{req(Pass), req(Fail)}, 1},
		{"not measured is not a pass", true, []Requirement{req(Pass), req(NotMeasured)}, 2},
		{"not run is not a pass", true, []Requirement{req(Pass), req(NotRun)}, 2},
		{"empty status is not a pass", true, []Requirement{req(Pass), req("")}, 2},
		{"unknown status is not a pass", true, []Requirement{req("passed")}, 2},
		{"interrupted with passes only", false, []Requirement{req(Pass)}, 2},
		{"no requirements", true, nil, 2},
		{"outside the profile is not part of the verdict", true, []Requirement{req(Pass), req(NotInProfile)}, 0},
		{"outside the profile does not hide a gap", true, []Requirement{req(Pass), req(NotInProfile), req(NotRun)}, 2},
		{"nothing of the profile passed", true, []Requirement{req(NotInProfile), req(NotInProfile)}, 2},
		{"outside the profile does not hide a failure", true, []Requirement{req(NotInProfile), req(Fail)}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := Run{Progress: Progress{Completed: tt.completed}, Requirements: tt.reqs}
			if got := r.ExitCode(); got != tt.want {
				t.Errorf("ExitCode() = %d, want %d (verdict %q)", got, tt.want, r.Verdict())
			}
		})
	}
}

func TestJSONRoundTrip(t *testing.T) {
	t.Parallel()
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			if err := WriteJSON(&b, f.run()); err != nil {
				t.Fatal(err)
			}
			got, err := ReadJSON(&b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(f.run(), got); diff != "" {
				t.Errorf("ReadJSON(WriteJSON(run)) (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRerender is `lab report`: the Markdown rendered from the committed
// JSON is the committed Markdown.
func TestRerender(t *testing.T) {
	t.Parallel()
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			r, err := Load(filepath.Join("testdata", "TestGolden_"+f.name+".golden.json"))
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := WriteMarkdown(&b, r); err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join("testdata", "TestGolden_"+f.name+".golden.md"))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), b.String()); diff != "" {
				t.Errorf("Markdown from the JSON report (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadJSONRejects(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := WriteJSON(&b, passingRun()); err != nil {
		t.Fatal(err)
	}
	valid := b.String()
	tests := []struct {
		name    string
		doc     string
		wantErr string
		is      error
	}{
		{"other schema", strings.Replace(valid, SchemaV1, "lab.jewelry-shop.dev/report/v0", 1), "unsupported report schema", ErrSchema},
		{"no schema", `{"verdict": "pass"}`, "unsupported report schema", ErrSchema},
		{"unknown field", strings.Replace(valid, `"title"`, `"titel"`, 1), "unknown field", nil},
		{"edited verdict", strings.Replace(valid, `"verdict": "pass"`, `"verdict": "fail"`, 1), "does not follow from the requirements", nil},
		{"invalid status", strings.Replace(strings.Replace(strings.Replace(valid, `"status": "pass"`, `"status": "ok"`, 1), `"exit_code": 0`, `"exit_code": 2`, 1), `"verdict": "pass"`, `"verdict": "incomplete"`, 1), `unknown status "ok"`, nil},
		{"not JSON", "report", "decode report", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ReadJSON(strings.NewReader(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ReadJSON error = %v, want one containing %q", err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("ReadJSON error = %v, want errors.Is %v", err, tt.is)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(t.TempDir(), "missing.json"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load error = %v, want os.ErrNotExist", err)
	}
}

// TestCompare renders a failing run beside the passing one it is compared
// with, and keeps the comparison through JSON.
func TestCompare(t *testing.T) {
	t.Parallel()
	run := failingRun()
	run.Previous = Summarize(passingRun())
	var md bytes.Buffer
	if err := WriteMarkdown(&md, run); err != nil {
		t.Fatal(err)
	}
	golden(t, "TestCompare", "md", md.Bytes())
	var js bytes.Buffer
	if err := WriteJSON(&js, run); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(&js)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(run.Previous, back.Previous); diff != "" {
		t.Errorf("previous run after JSON (-want +got):\n%s", diff)
	}
}
