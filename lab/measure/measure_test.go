package measure

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// at returns t0 plus ms milliseconds.
func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func win(startMS, endMS int) Window { return Window{Start: at(startMS), End: at(endMS)} }

// probe builds samples every 100 ms from startMS; pattern holds one rune per
// sample: '.' success, 'x' failure.
func probe(startMS int, pattern string) []Sample {
	s := make([]Sample, 0, len(pattern))
	for i, c := range pattern {
		s = append(s, Sample{At: at(startMS + 100*i), OK: c == '.'})
	}
	return s
}

func TestWindow(t *testing.T) {
	t.Parallel()
	w := win(1000, 2000)
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"contains start", w.Contains(at(1000)), true},
		{"excludes end", w.Contains(at(2000)), false},
		{"excludes before", w.Contains(at(999)), false},
		{"duration", w.Duration(), time.Second},
		{"inverted duration is zero", win(2000, 1000).Duration(), time.Duration(0)},
		{"overlaps", w.Overlaps(win(1999, 3000)), true},
		{"touching does not overlap", w.Overlaps(win(2000, 3000)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []Window
		want []Window
	}{
		{"none", nil, nil},
		{"disjoint are sorted", []Window{win(5000, 6000), win(1000, 2000)}, []Window{win(1000, 2000), win(5000, 6000)}},
		{"overlapping join", []Window{win(1000, 3000), win(2000, 4000)}, []Window{win(1000, 4000)}},
		{"touching join", []Window{win(1000, 2000), win(2000, 3000)}, []Window{win(1000, 3000)}},
		{"contained", []Window{win(1000, 5000), win(2000, 3000)}, []Window{win(1000, 5000)}},
		{"empty dropped", []Window{win(1000, 1000), win(3000, 2000)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, Merge(tt.in)); diff != "" {
				t.Errorf("Merge (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOutages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		samples []Sample
		want    []Outage
	}{
		{"no samples", nil, nil},
		{"all ok", probe(0, "....."), nil},
		{"one closed outage", probe(0, "..xxx.."), []Outage{{Window: win(200, 500), Failures: 3}}},
		{"two outages, last open", probe(0, "x..xx"), []Outage{
			{Window: win(0, 100), Failures: 1},
			{Window: win(300, 400), Failures: 2, Open: true},
		}},
		{"unsorted input", []Sample{{At: at(300), OK: true}, {At: at(100), OK: false}, {At: at(0), OK: true}}, []Outage{{Window: win(100, 300), Failures: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, Outages(tt.samples)); diff != "" {
				t.Errorf("Outages (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAvailability(t *testing.T) {
	t.Parallel()
	samples := probe(0, "....xx....") // 0..900 ms
	tests := []struct {
		name       string
		count      Count
		wantAvail  Value[float64]
		wantErrors Value[float64]
	}{
		{"whole run", Tally(samples, win(0, 1000)), Known(0.8), Known(0.2)},
		{"fault window only", Tally(samples, win(400, 600)), Known(0.0), Known(1.0)},
		{"window end excluded", Tally(samples, win(0, 400)), Known(1.0), Known(0.0)},
		{
			"no samples in window", Tally(samples, win(5000, 6000)),
			Unknown[float64]("no requests or samples in the period"), Unknown[float64]("no requests or samples in the period"),
		},
		{"added counts", Count{Total: 10, Failed: 1}.Add(Count{Total: 30, Failed: 3}), Known(0.9), Known(0.1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.wantAvail, tt.count.Availability()); diff != "" {
				t.Errorf("Availability (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantErrors, tt.count.ErrorRate()); diff != "" {
				t.Errorf("ErrorRate (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	t.Parallel()
	samples := probe(0, "..xx....x.") // failures at 200, 300, 800 ms
	tests := []struct {
		name        string
		faults      []Window
		wantInside  Count
		wantOutside Count
	}{
		{"no faults", nil, Count{}, Count{Total: 10, Failed: 3}},
		{"one window", []Window{win(200, 400)}, Count{Total: 2, Failed: 2}, Count{Total: 8, Failed: 1}},
		{"overlapping windows count once", []Window{win(200, 400), win(300, 500)}, Count{Total: 3, Failed: 2}, Count{Total: 7, Failed: 1}},
		{"two windows", []Window{win(800, 900), win(200, 400)}, Count{Total: 3, Failed: 3}, Count{Total: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in, out := Split(samples, tt.faults)
			if diff := cmp.Diff(tt.wantInside, in); diff != "" {
				t.Errorf("inside (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantOutside, out); diff != "" {
				t.Errorf("outside (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSplitBuckets(t *testing.T) {
	t.Parallel()
	var buckets []Bucket
	for i, c := range []Count{{100, 0}, {100, 1}, {90, 30}, {100, 5}, {100, 0}} {
		buckets = append(buckets, Bucket{Start: at(1000 * i), Width: time.Second, Count: c})
	}
	tests := []struct {
		name        string
		faults      []Window
		wantInside  Count
		wantOutside Count
	}{
		{"no faults", nil, Count{}, Count{Total: 490, Failed: 36}},
		{"aligned window", []Window{win(2000, 3000)}, Count{Total: 90, Failed: 30}, Count{Total: 400, Failed: 6}},
		{"partial overlap counts as inside", []Window{win(2500, 3001)}, Count{Total: 190, Failed: 35}, Count{Total: 300, Failed: 1}},
		{"window ending at a bucket start", []Window{win(1500, 2000)}, Count{Total: 100, Failed: 1}, Count{Total: 390, Failed: 35}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in, out := SplitBuckets(buckets, tt.faults)
			if diff := cmp.Diff(tt.wantInside, in); diff != "" {
				t.Errorf("inside (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantOutside, out); diff != "" {
				t.Errorf("outside (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBetween(t *testing.T) {
	t.Parallel()
	got := Between(probe(0, ".x.x."), win(100, 300))
	if diff := cmp.Diff([]Sample{{At: at(100)}, {At: at(200), OK: true}}, got); diff != "" {
		t.Errorf("Between (-want +got):\n%s", diff)
	}
}
