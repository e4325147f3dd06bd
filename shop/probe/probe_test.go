package probe

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jewelry-shop/lab/shop/probeapi"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// at returns t0 plus ms milliseconds.
func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func ptr(t time.Time) *time.Time { return &t }

// ok, fail and pending build samples sent at ms.
func ok(ms, ackMS int) sample { return sample{sent: at(ms), acked: at(ackMS), done: true} }
func fail(ms int) sample      { return sample{sent: at(ms), err: "refused", done: true} }
func pending(ms int) sample   { return sample{sent: at(ms)} }

func TestSummarise(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		samples []sample
		want    probeapi.StoreTimeline
	}{
		{
			name: "no writes",
			want: probeapi.StoreTimeline{Outages: []probeapi.Window{}},
		},
		{
			name:    "all acknowledged",
			samples: []sample{ok(0, 2), ok(100, 101), pending(200)},
			want:    probeapi.StoreTimeline{Attempted: 3, Acked: 2, InFlight: 1, LastAck: at(101), Outages: []probeapi.Window{}},
		},
		{
			name:    "one closed outage",
			samples: []sample{ok(0, 2), fail(100), fail(200), ok(300, 305), ok(400, 401)},
			want: probeapi.StoreTimeline{Attempted: 5, Acked: 3, Failed: 2, LastAck: at(401), Outages: []probeapi.Window{
				{Start: at(100), End: ptr(at(305)), LastAckBefore: ptr(at(2)), FirstSeq: 2, LastSeq: 3, Failed: 2, FirstError: "refused"},
			}},
		},
		{
			name:    "outage from the start, then one still open",
			samples: []sample{fail(0), ok(100, 150), fail(200), pending(300)},
			want: probeapi.StoreTimeline{Attempted: 4, Acked: 1, Failed: 2, InFlight: 1, LastAck: at(150), Outages: []probeapi.Window{
				{Start: at(0), End: ptr(at(150)), FirstSeq: 1, LastSeq: 1, Failed: 1, FirstError: "refused"},
				{Start: at(200), LastAckBefore: ptr(at(150)), FirstSeq: 3, LastSeq: 3, Failed: 1, FirstError: "refused"},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, summarise(tt.samples, false)); diff != "" {
				t.Errorf("summarise (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	t.Parallel()
	samples := []sample{ok(0, 1), ok(100, 101), fail(200), fail(300), ok(400, 401), pending(500)}
	tests := []struct {
		name  string
		found map[int64]int
		err   error
		want  probeapi.StoreVerification
	}{
		{
			name:  "everything acknowledged is there",
			found: map[int64]int{1: 1, 2: 1, 5: 1},
			want:  probeapi.StoreVerification{Acked: 3, Found: 3, Missing: []int64{}, Duplicates: []int64{}, UnackedPresent: []int64{}},
		},
		{
			name:  "lost, duplicated, and a failed write that landed",
			found: map[int64]int{1: 2, 4: 1, 5: 1, 6: 1},
			want:  probeapi.StoreVerification{Acked: 3, Found: 4, Missing: []int64{2}, Duplicates: []int64{1}, UnackedPresent: []int64{4}},
		},
		{
			name: "read failed",
			err:  errors.New("connection refused"),
			want: probeapi.StoreVerification{Missing: []int64{}, Duplicates: []int64{}, UnackedPresent: []int64{}, Error: "connection refused"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, compare(samples, tt.found, tt.err)); diff != "" {
				t.Errorf("compare (-want +got):\n%s", diff)
			}
		})
	}
}
