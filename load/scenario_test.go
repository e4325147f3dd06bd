package load

import (
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jewelry-shop/lab/internal/golden"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestDefaultScenario(t *testing.T) {
	t.Parallel()
	s, err := ParseScenario(DefaultScenarioYAML())
	if err != nil {
		t.Fatalf("the built-in scenario does not parse: %v", err)
	}
	var got []string
	for _, b := range s.Behaviours {
		got = append(got, b.Name)
	}
	want := []string{"browse", "search", "view product", "add to cart", "checkout", "log in and view orders"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("behaviours (-want +got):\n%s", d)
	}
	if d := cmp.Diff(ThinkTime{Min: 500 * time.Millisecond, Max: 1500 * time.Millisecond}, s.Behaviours[0].Think); d != "" {
		t.Errorf("think time (-want +got):\n%s", d)
	}
	if DefaultScenario().Name != "jewelry-shop" {
		t.Errorf("DefaultScenario() = %q", DefaultScenario().Name)
	}
}

// TestParseScenarioErrors checks each invalid file's error against its
// golden file (testdata/scenarios/*.err; rewrite with -update).
func TestParseScenarioErrors(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/scenarios/invalid-*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, perr := ParseScenario(data)
			if perr == nil {
				t.Fatal("parsed without error")
			}
			golden.Check(t, strings.TrimSuffix(f, ".yaml")+".err", []byte(perr.Error()+"\n"), *update)
		})
	}
}

func TestParseScenarioValid(t *testing.T) {
	t.Parallel()
	s, err := ParseScenario([]byte(`
name: shop
think: {min: 10ms, max: 20ms}
vars: {domain: x.test}
thresholds: ["p99{view} < 1s", "error_rate < 0.5%"]
behaviours:
  - name: a
    weight: 3
    think: 0s
    steps:
      - name: list
        path: /list
        status: [200, 304]
        extract: {id: {json: "items.*.id"}}
      - name: view
        method: delete
        path: /items/{{ id }}
        headers: {X-Mail: "u@{{ domain }}"}
  - name: b
    steps: [{path: /b, body_contains: ok}]
`))
	if err != nil {
		t.Fatal(err)
	}
	type step struct{ Name, Method, Path string }
	type behaviour struct {
		Name   string
		Weight int
		Think  ThinkTime
		Steps  []step
	}
	var got []behaviour
	for _, b := range s.Behaviours {
		bb := behaviour{Name: b.Name, Weight: b.Weight, Think: b.Think}
		for _, st := range b.Steps {
			bb.Steps = append(bb.Steps, step{st.Name, st.Method, st.Path})
		}
		got = append(got, bb)
	}
	want := []behaviour{
		{Name: "a", Weight: 3, Steps: []step{{"list", "GET", "/list"}, {"view", "DELETE", "/items/{{ id }}"}}},
		{Name: "b", Weight: 1, Think: ThinkTime{Min: 10 * time.Millisecond, Max: 20 * time.Millisecond}, Steps: []step{{"GET /b", "GET", "/b"}}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("scenario (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"GET /b", "list", "view"}, s.Endpoints()); d != "" {
		t.Errorf("endpoints (-want +got):\n%s", d)
	}
	if len(s.Thresholds) != 2 || s.Thresholds[0].Endpoint != "view" || s.Thresholds[1].Limit != 0.005 {
		t.Errorf("thresholds %+v", s.Thresholds)
	}
}

func TestPickFollowsWeights(t *testing.T) {
	t.Parallel()
	s := mustScenario(t, `
behaviours:
  - {name: a, weight: 1, steps: [{path: /a}]}
  - {name: b, weight: 2, steps: [{path: /b}]}
  - {name: c, weight: 7, steps: [{path: /c}]}`)
	rng := rand.New(rand.NewPCG(1, 2))
	counts := map[string]int{}
	const n = 100_000
	for range n {
		counts[s.pick(rng).Name]++
	}
	// Chi-square with 2 degrees of freedom: 13.8 is the 0.1 % critical value.
	chi := 0.0
	for name, w := range map[string]float64{"a": 0.1, "b": 0.2, "c": 0.7} {
		e := n * w
		d := float64(counts[name]) - e
		chi += d * d / e
	}
	if chi > 13.8 {
		t.Errorf("counts %v: chi-square %.1f, weights not respected", counts, chi)
	}
}

var lineRE = regexp.MustCompile(`scenario line \d+: `)

// FuzzParseScenario: any input either parses or fails with errors that each
// name a line; never a panic.
func FuzzParseScenario(f *testing.F) {
	f.Add(DefaultScenarioYAML())
	files, _ := filepath.Glob("testdata/scenarios/*.yaml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("behaviours: [{name: a, steps: [{path: '/{{'}]}]"))
	f.Add([]byte("a: &x [*x]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseScenario(data)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !lineRE.MatchString(line) && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") {
					t.Fatalf("error line %q does not name a scenario line (full error: %v)", line, err)
				}
			}
			return
		}
		if len(s.Behaviours) == 0 || s.totalWeight <= 0 {
			t.Fatalf("parsed a scenario without behaviours")
		}
	})
}
