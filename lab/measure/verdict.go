package measure

import (
	"cmp"
	"fmt"
	"strings"
)

// Value is a figure that was measured, or the reason it could not be.
//
// The zero Value is not known, so a figure that was never filled in can
// never pass a threshold.
type Value[T cmp.Ordered] struct {
	// V is the figure; meaningful only when Known.
	V T
	// Known is set when V was measured.
	Known bool
	// Reason says why the figure is not known.
	Reason string
}

// Known returns a measured figure.
func Known[T cmp.Ordered](v T) Value[T] {
	return Value[T]{V: v, Known: true}
}

// Unknown returns a figure that could not be measured, with the reason.
func Unknown[T cmp.Ordered](reason string) Value[T] {
	return Value[T]{Reason: reason}
}

// Status is the outcome of judging a figure against a threshold.
type Status int

// The statuses. The zero Status is NotMeasured, so that a verdict nobody
// reached never reads as a pass.
const (
	NotMeasured Status = iota
	Pass
	Fail
)

func (s Status) String() string {
	switch s {
	case Pass:
		return "pass"
	case Fail:
		return "fail"
	case NotMeasured:
		return "not measured"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// Verdict is a Status with the words that explain it: for a pass or a
// failure the comparison made, for NotMeasured why nothing could be judged.
type Verdict struct {
	Status Status
	Reason string
}

// String renders the verdict as "status: reason".
func (v Verdict) String() string {
	if v.Reason == "" {
		return v.Status.String()
	}
	return v.Status.String() + ": " + v.Reason
}

// Missing returns a NotMeasured verdict.
func Missing(reason string) Verdict {
	if reason == "" {
		reason = "no value was measured"
	}
	return Verdict{Status: NotMeasured, Reason: reason}
}

// judge compares a known value; ok says whether it meets the threshold.
func judge[T cmp.Ordered](v Value[T], ok func(T) bool, op string, limit T) Verdict {
	if !v.Known {
		return Missing(v.Reason)
	}
	if ok(v.V) {
		return Verdict{Status: Pass, Reason: fmt.Sprintf("%v %s %v", v.V, op, limit)}
	}
	return Verdict{Status: Fail, Reason: fmt.Sprintf("%v is not %s %v", v.V, op, limit)}
}

// Below passes when the value is known and strictly below limit
// ("RTO < 30 s").
func Below[T cmp.Ordered](v Value[T], limit T) Verdict {
	return judge(v, func(x T) bool { return x < limit }, "<", limit)
}

// AtMost passes when the value is known and not above limit
// ("back to min within 5 m").
func AtMost[T cmp.Ordered](v Value[T], limit T) Verdict {
	return judge(v, func(x T) bool { return x <= limit }, "<=", limit)
}

// AtLeast passes when the value is known and not below limit
// ("availability >= 99 %").
func AtLeast[T cmp.Ordered](v Value[T], limit T) Verdict {
	return judge(v, func(x T) bool { return x >= limit }, ">=", limit)
}

// All combines verdicts that must all pass, such as the parts of one
// requirement: any failure fails, else anything not measured (or of an
// unknown status) leaves the whole not measured, else it passes. The reason
// joins the reasons of the verdicts that decided the outcome. No verdicts at
// all is not a pass.
func All(vs ...Verdict) Verdict {
	if len(vs) == 0 {
		return Missing("nothing was judged")
	}
	reasons := map[Status][]string{}
	for _, v := range vs {
		s := v.Status
		if s != Pass && s != Fail {
			s = NotMeasured
		}
		if _, seen := reasons[s]; !seen {
			reasons[s] = nil
		}
		if v.Reason != "" {
			reasons[s] = append(reasons[s], v.Reason)
		}
	}
	for _, s := range []Status{Fail, NotMeasured, Pass} {
		if rs, ok := reasons[s]; ok {
			if s == NotMeasured {
				return Missing(strings.Join(rs, "; "))
			}
			return Verdict{Status: s, Reason: strings.Join(rs, "; ")}
		}
	}
	return Missing("nothing was judged") // unreachable: vs is not empty
}
