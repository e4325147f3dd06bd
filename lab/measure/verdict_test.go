package measure

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestJudge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		got  Verdict
		want Verdict
	}{
		{"below passes", Below(Known(1.5), 2.0), Verdict{Status: Pass, Reason: "1.5 < 2"}},
		{"below is strict", Below(Known(30*time.Second), 30*time.Second), Verdict{Status: Fail, Reason: "30s is not < 30s"}},
		{"at most includes the limit", AtMost(Known(30*time.Second), 30*time.Second), Verdict{Status: Pass, Reason: "30s <= 30s"}},
		{"at most fails above", AtMost(Known(31), 30), Verdict{Status: Fail, Reason: "31 is not <= 30"}},
		{"at least passes", AtLeast(Known(0.995), 0.99), Verdict{Status: Pass, Reason: "0.995 >= 0.99"}},
		{"at least fails", AtLeast(Known(0.9), 0.99), Verdict{Status: Fail, Reason: "0.9 is not >= 0.99"}},
		{"unknown is not measured", Below(Unknown[float64]("prober unreachable"), 2), Missing("prober unreachable")},
		{"zero value is not measured, never a pass", Below(Value[time.Duration]{}, time.Hour), Missing("no value was measured")},
		{"zero value against at least", AtLeast(Value[float64]{}, 0), Missing("no value was measured")},
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

func TestAll(t *testing.T) {
	t.Parallel()
	pass := Verdict{Status: Pass, Reason: "p95 ok"}
	fail := Verdict{Status: Fail, Reason: "error rate 2%"}
	tests := []struct {
		name string
		in   []Verdict
		want Verdict
	}{
		{"nothing is not a pass", nil, Missing("nothing was judged")},
		{"all pass", []Verdict{pass, {Status: Pass, Reason: "rate ok"}}, Verdict{Status: Pass, Reason: "p95 ok; rate ok"}},
		{"fail wins", []Verdict{pass, Missing("no prober"), fail}, fail},
		{"failures are all named", []Verdict{fail, {Status: Fail, Reason: "p95 3s"}}, Verdict{Status: Fail, Reason: "error rate 2%; p95 3s"}},
		{"not measured beats pass", []Verdict{pass, Missing("no prober")}, Missing("no prober")},
		{"zero verdict is not measured", []Verdict{pass, {}}, Missing("no value was measured")},
		{"unknown status is not measured", []Verdict{{Status: Status(9), Reason: "odd"}}, Missing("odd")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, All(tt.in...)); diff != "" {
				t.Errorf("All (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStatusString(t *testing.T) {
	t.Parallel()
	got := []string{Pass.String(), Fail.String(), NotMeasured.String(), Status(7).String()}
	got = append(got, Missing("no prober").String(), Verdict{Status: Pass}.String())
	if diff := cmp.Diff([]string{"pass", "fail", "not measured", "status(7)", "not measured: no prober", "pass"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
