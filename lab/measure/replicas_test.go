package measure

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// sec returns t0 plus s seconds.
func sec(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

// timeline builds replica points from alternating seconds and counts.
func timeline(pairs ...int) []ReplicaPoint {
	var p []ReplicaPoint
	for i := 0; i+1 < len(pairs); i += 2 {
		p = append(p, ReplicaPoint{At: sec(pairs[i]), Replicas: int32(pairs[i+1])})
	}
	return p
}

func TestSteady(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		ready    []ReplicaPoint
		injected time.Time
		end      time.Time
		want     Settle
	}{
		{
			name:  "pod killed and replaced",
			ready: timeline(0, 3, 10, 2, 25, 3), injected: sec(9), end: sec(60),
			want: Settle{At: sec(25), After: Known(16 * time.Second), Dipped: true, Lowest: 2},
		},
		{
			name:  "dip seen late, unsorted input",
			ready: timeline(30, 3, 12, 1, 0, 3, 20, 2), injected: sec(10), end: sec(60),
			want: Settle{At: sec(30), After: Known(20 * time.Second), Dipped: true, Lowest: 1},
		},
		{
			name:  "never dipped",
			ready: timeline(0, 3, 40, 4), injected: sec(10), end: sec(60),
			want: Settle{At: sec(10), After: Known(time.Duration(0)), Lowest: 3},
		},
		{
			name:  "not back by the end",
			ready: timeline(0, 3, 10, 2), injected: sec(5), end: sec(65),
			want: Settle{After: Unknown[time.Duration]("not back to 3 Ready replicas by the end of the data, 1m0s after the injection"), Dipped: true, Lowest: 2},
		},
		{
			name:  "points after the end are ignored",
			ready: timeline(0, 3, 10, 2, 70, 3), injected: sec(5), end: sec(65),
			want: Settle{After: Unknown[time.Duration]("not back to 3 Ready replicas by the end of the data, 1m0s after the injection"), Dipped: true, Lowest: 2},
		},
		{
			name: "no data", injected: sec(5), end: sec(65),
			want: Settle{After: Unknown[time.Duration]("no readiness data")},
		},
		{
			name:  "data only after the end",
			ready: timeline(100, 3), injected: sec(5), end: sec(65),
			want: Settle{After: Unknown[time.Duration]("no readiness data at or after the injection")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, Steady(tt.ready, tt.injected, tt.end, 3)); diff != "" {
				t.Errorf("Steady (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScaleDown(t *testing.T) {
	t.Parallel()
	const limit = 5 * time.Minute
	tests := []struct {
		name     string
		replicas []ReplicaPoint
		stopped  time.Time
		end      time.Time
		want     Scaling
		verdict  Verdict
	}{
		{
			name:     "scaled up and back down",
			replicas: timeline(0, 3, 60, 6, 120, 10, 700, 7, 760, 3), stopped: sec(600), end: sec(1200),
			want: Scaling{
				Peak: Known(int32(10)), PeakAt: sec(120), AtLoadStop: Known(int32(10)),
				ReachedMinAt: sec(760), After: Known(160 * time.Second), Observed: 600 * time.Second, Final: Known(int32(3)),
			},
			verdict: Verdict{Status: Pass, Reason: "2m40s <= 5m0s"},
		},
		{
			name:     "a bounce back up restarts the clock",
			replicas: timeline(0, 3, 60, 8, 650, 3, 700, 4, 1000, 3), stopped: sec(600), end: sec(1200),
			want: Scaling{
				Peak: Known(int32(8)), PeakAt: sec(60), AtLoadStop: Known(int32(8)),
				ReachedMinAt: sec(1000), After: Known(400 * time.Second), Observed: 600 * time.Second, Final: Known(int32(3)),
			},
			verdict: Verdict{Status: Fail, Reason: "6m40s is not <= 5m0s"},
		},
		{
			name:     "never scaled up",
			replicas: timeline(0, 3), stopped: sec(600), end: sec(1200),
			want: Scaling{
				Peak: Known(int32(3)), PeakAt: sec(0), AtLoadStop: Known(int32(3)),
				ReachedMinAt: sec(600), After: Known(time.Duration(0)), Observed: 600 * time.Second, Final: Known(int32(3)),
			},
			verdict: Verdict{Status: Pass, Reason: "0s <= 5m0s"},
		},
		{
			name:     "stalled past the limit fails",
			replicas: timeline(0, 3, 60, 10, 900, 5), stopped: sec(600), end: sec(1200),
			want: Scaling{
				Peak: Known(int32(10)), PeakAt: sec(60), AtLoadStop: Known(int32(10)),
				After:    Unknown[time.Duration]("not back to 3 replicas by the end of the data, 10m0s after the load stopped"),
				Observed: 600 * time.Second, Final: Known(int32(5)),
			},
			verdict: Verdict{Status: Fail, Reason: "still 5 replicas 10m0s after the load stopped, limit 5m0s"},
		},
		{
			name:     "observation too short to judge",
			replicas: timeline(0, 3, 60, 10), stopped: sec(600), end: sec(700),
			want: Scaling{
				Peak: Known(int32(10)), PeakAt: sec(60), AtLoadStop: Known(int32(10)),
				After:    Unknown[time.Duration]("not back to 3 replicas by the end of the data, 1m40s after the load stopped"),
				Observed: 100 * time.Second, Final: Known(int32(10)),
			},
			verdict: Missing("not back to 3 replicas by the end of the data, 1m40s after the load stopped"),
		},
		{
			name:     "no data before the load stopped",
			replicas: timeline(650, 3), stopped: sec(600), end: sec(1200),
			want: Scaling{
				Peak: Unknown[int32]("no replica data before the load stopped"), AtLoadStop: Unknown[int32]("no replica data before the load stopped"),
				ReachedMinAt: sec(650), After: Known(50 * time.Second), Observed: 600 * time.Second, Final: Known(int32(3)),
			},
			verdict: Verdict{Status: Pass, Reason: "50s <= 5m0s"},
		},
		{
			name: "no data", stopped: sec(600), end: sec(1200),
			want: Scaling{
				Peak: Unknown[int32]("no replica data before the load stopped"), AtLoadStop: Unknown[int32]("no replica data before the load stopped"),
				After: Unknown[time.Duration]("no replica data"), Observed: 600 * time.Second, Final: Unknown[int32]("no replica data"),
			},
			verdict: Missing("no replica data"),
		},
		{
			name:     "observation ended before the load stopped",
			replicas: timeline(0, 3), stopped: sec(600), end: sec(500),
			want: Scaling{
				Peak: Known(int32(3)), PeakAt: sec(0), AtLoadStop: Unknown[int32]("the observation ended before the load stopped"),
				After: Unknown[time.Duration]("the observation ended before the load stopped"), Final: Known(int32(3)),
			},
			verdict: Missing("the observation ended before the load stopped"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := ScaleDown(tt.replicas, tt.stopped, tt.end, 3)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ScaleDown (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.verdict, got.Within(limit)); diff != "" {
				t.Errorf("Within (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCountAtAndPeak(t *testing.T) {
	t.Parallel()
	hpa := timeline(100, 6, 0, 3, 60, 4, 160, 3) // unsorted on purpose
	type result struct {
		Count Value[int32]
		Peak  Value[int32]
		At    time.Time
	}
	tests := []struct {
		name string
		at   time.Time
		w    Window
		want result
	}{
		{
			"before any data", sec(-1),
			Window{Start: sec(-10), End: sec(-1)},
			result{Count: Unknown[int32]("no data at or before the time"), Peak: Unknown[int32]("no data in the window")},
		},
		{
			"rise inside the window", sec(60),
			Window{Start: sec(50), End: sec(120)},
			result{Count: Known(int32(4)), Peak: Known(int32(6)), At: sec(100)},
		},
		{
			"peak in effect at the window start", sec(120),
			Window{Start: sec(120), End: sec(200)},
			result{Count: Known(int32(6)), Peak: Known(int32(6)), At: sec(120)},
		},
		{
			"window end excluded", sec(59),
			Window{Start: sec(0), End: sec(100)},
			result{Count: Known(int32(3)), Peak: Known(int32(4)), At: sec(60)},
		},
		{
			"after the last point", sec(1000),
			Window{Start: sec(500), End: sec(600)},
			result{Count: Known(int32(3)), Peak: Known(int32(3)), At: sec(500)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			peak, at := Peak(hpa, tt.w)
			got := result{Count: CountAt(hpa, tt.at), Peak: peak, At: at}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
