package measure

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRecover(t *testing.T) {
	t.Parallel()
	const sustain = 300 * time.Millisecond
	tests := []struct {
		name       string
		samples    []Sample
		injectedAt time.Time
		want       Recovery
		verdict    Verdict // of Below(2 s)
	}{
		{
			name:    "failover",
			samples: probe(0, ".....xxxxx....."), // injected at 400, failures 500..900, successes from 1000
			// 1000 is followed by successes until 1300 >= sustain.
			injectedAt: at(400),
			want: Recovery{
				InjectedAt: at(400), FirstError: at(500), RecoveredAt: at(1000), Failures: 5,
				RTO: Known(600 * time.Millisecond), Observed: 1000 * time.Millisecond,
			},
			verdict: Verdict{Status: Pass, Reason: "600ms < 2s"},
		},
		{
			name:       "flapping recovery is not a recovery",
			samples:    probe(0, "..xx..x......"), // success at 400 broken by failure at 600
			injectedAt: at(200),
			want: Recovery{
				InjectedAt: at(200), FirstError: at(200), RecoveredAt: at(700), Failures: 3,
				RTO: Known(500 * time.Millisecond), Observed: time.Second,
			},
			verdict: Verdict{Status: Pass, Reason: "500ms < 2s"},
		},
		{
			name:       "failures before the injection are ignored",
			samples:    probe(0, "xx..x......"),
			injectedAt: at(300),
			want: Recovery{
				InjectedAt: at(300), FirstError: at(400), RecoveredAt: at(500), Failures: 1,
				RTO: Known(200 * time.Millisecond), Observed: 700 * time.Millisecond,
			},
			verdict: Verdict{Status: Pass, Reason: "200ms < 2s"},
		},
		{
			name:       "no outage observed",
			samples:    probe(0, "......"),
			injectedAt: at(100),
			want: Recovery{
				InjectedAt: at(100), RecoveredAt: at(100), NoOutage: true,
				RTO: Known(time.Duration(0)), Observed: 400 * time.Millisecond,
			},
			verdict: Verdict{Status: Pass, Reason: "0s < 2s"},
		},
		{
			name:       "no failure but data shorter than sustain",
			samples:    probe(0, "...."),
			injectedAt: at(200),
			want: Recovery{
				InjectedAt: at(200), Observed: 100 * time.Millisecond,
				RTO: Unknown[time.Duration]("no failure seen, but the data ends 100ms after the injection, before the sustain period of 300ms"),
			},
			verdict: Missing("no failure seen, but the data ends 100ms after the injection, before the sustain period of 300ms"),
		},
		{
			name:       "no samples after the injection",
			samples:    probe(0, "..."),
			injectedAt: at(5000),
			want:       Recovery{InjectedAt: at(5000), RTO: Unknown[time.Duration]("no samples after the injection")},
			verdict:    Missing("no samples after the injection"),
		},
		{
			name:       "no samples at all",
			injectedAt: at(0),
			want:       Recovery{InjectedAt: at(0), RTO: Unknown[time.Duration]("no samples after the injection")},
			verdict:    Missing("no samples after the injection"),
		},
		{
			name:       "still down, shorter than the limit: not measured",
			samples:    probe(0, "..xxxx"),
			injectedAt: at(100),
			want: Recovery{
				InjectedAt: at(100), FirstError: at(200), Failures: 4, Observed: 400 * time.Millisecond, AtLeast: 400 * time.Millisecond,
				RTO: Unknown[time.Duration]("no recovery within the data: still failing 400ms after the injection"),
			},
			verdict: Missing("no recovery within the data: still failing 400ms after the injection"),
		},
		{
			name:       "still down past the limit: fails",
			samples:    probe(0, ".x"+strings.Repeat("x", 25)),
			injectedAt: at(100),
			want: Recovery{
				InjectedAt: at(100), FirstError: at(100), Failures: 26, Observed: 2500 * time.Millisecond, AtLeast: 2500 * time.Millisecond,
				RTO: Unknown[time.Duration]("no recovery within the data: still failing 2.5s after the injection"),
			},
			verdict: Verdict{Status: Fail, Reason: "RTO is at least 2.5s, not < 2s (no recovery within the data: still failing 2.5s after the injection)"},
		},
		{
			name:       "recovery not confirmed before the data ends",
			samples:    probe(0, ".xxx.."),
			injectedAt: at(100),
			want: Recovery{
				InjectedAt: at(100), FirstError: at(100), Failures: 3, Observed: 400 * time.Millisecond, AtLeast: 300 * time.Millisecond,
				RTO: Unknown[time.Duration]("recovery not confirmed: successes from 300ms after the injection, but the data ends before the sustain period of 300ms"),
			},
			verdict: Missing("recovery not confirmed: successes from 300ms after the injection, but the data ends before the sustain period of 300ms"),
		},
		{
			name:       "late first error belongs to the fault",
			samples:    probe(0, "......x...."),
			injectedAt: at(0),
			want: Recovery{
				InjectedAt: at(0), FirstError: at(600), RecoveredAt: at(700), Failures: 1,
				RTO: Known(700 * time.Millisecond), Observed: time.Second,
			},
			verdict: Verdict{Status: Pass, Reason: "700ms < 2s"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Recover(tt.samples, tt.injectedAt, sustain)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Recover (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.verdict, got.Below(2*time.Second)); diff != "" {
				t.Errorf("Below (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRecoverZeroSustain(t *testing.T) {
	t.Parallel()
	got := Recover(probe(0, "x."), at(0), 0)
	if diff := cmp.Diff(Known(100*time.Millisecond), got.RTO); diff != "" {
		t.Errorf("RTO (-want +got):\n%s", diff)
	}
}
