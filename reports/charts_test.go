package reports

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDownsample(t *testing.T) {
	t.Parallel()
	// 130 points, one per second, valued by their second: groups of 3.
	pts := samples(0, 130, 1, func(s float64) float64 { return s })
	tests := []struct {
		aggregate string
		wantFirst float64
		wantLast  float64
	}{
		{"mean", 1, 129},   // (0+1+2)/3; the last group holds 129 alone
		{"sum", 3, 129},    // 0+1+2
		{"max", 2, 129},    // max(0,1,2)
		{"", 1, 129},       // mean by default
		{"median", 1, 129}, // unknown: mean
	}
	for _, tt := range tests {
		t.Run("aggregate "+tt.aggregate, func(t *testing.T) {
			t.Parallel()
			groups, per := downsample(Chart{Aggregate: tt.aggregate, Points: pts})
			if per != 3 || len(groups) != 44 {
				t.Fatalf("downsample gave %d groups of %d, want 44 of 3", len(groups), per)
			}
			got := []float64{groups[0].value, groups[len(groups)-1].value}
			if diff := cmp.Diff([]float64{tt.wantFirst, tt.wantLast}, got); diff != "" {
				t.Errorf("first and last group (-want +got):\n%s", diff)
			}
			if !groups[0].end.Equal(at(3)) || !groups[len(groups)-1].end.Equal(at(130)) {
				t.Errorf("group ends %v, %v; want +3s and +130s", groups[0].end, groups[len(groups)-1].end)
			}
		})
	}
}

func TestDownsampleMaxNegative(t *testing.T) {
	t.Parallel()
	groups, _ := downsample(Chart{Aggregate: "max", Points: []Point{{At: at(0), Value: -3}, {At: at(1), Value: -1}}})
	if groups[0].value != -3 || groups[1].value != -1 {
		t.Errorf("max of negative values: got %v, %v", groups[0].value, groups[1].value)
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"sub-second to the millisecond", fmtDur(301600 * time.Microsecond), "302ms"},
		{"seconds", fmtDur(11844 * time.Millisecond), "11.84s"},
		{"minutes", fmtDur(161240 * time.Millisecond), "2m41.2s"},
		{"negative offset", fmtOffset(-100 * time.Millisecond), "-100ms"},
		{"mm:ss", fmtClockOffset(125 * time.Second), "02:05"},
		{"h:mm:ss", fmtClockOffset(3725 * time.Second), "1:02:05"},
		{"negative mm:ss", fmtClockOffset(-5 * time.Second), "-00:05"},
		{"number", fmtNum(512.25, 1), "512.2"},
		{"integer", fmtNum(910, 1), "910"},
		{"negative zero", fmtNum(-0.0001, 1), "0"},
		{"no requests", fmtRate(Count{}), "—"},
		{"pipe escaped", cell("a | b\nc"), `a \| b c`},
		{"mermaid quote", mermaidString(`say "hi"`), `"say 'hi'"`},
		{"anchor", ExperimentAnchor("PG primary/kill_1"), "experiment-pg-primary-kill-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestNiceCeil(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want float64 }{
		{0, 1}, {-5, 1}, {0.3, 0.5}, {1, 1}, {1.1, 2}, {85.5, 100}, {120, 200}, {499, 500}, {6, 10},
	}
	for _, tt := range tests {
		if got := niceCeil(tt.in); got != tt.want {
			t.Errorf("niceCeil(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
