package measure

import (
	"fmt"
	"time"
)

// Recovery is what a service's samples say about one fault.
type Recovery struct {
	// InjectedAt is when the fault was injected, as given.
	InjectedAt time.Time
	// FirstError is the first failed sample at or after InjectedAt; zero if
	// none was observed.
	FirstError time.Time
	// RecoveredAt is the first successful sample after FirstError that is
	// followed by successes only for at least the sustain period. When no
	// error was observed it is InjectedAt. Zero when no recovery was
	// confirmed within the data.
	RecoveredAt time.Time
	// Failures counts the failed samples from InjectedAt to RecoveredAt (to
	// the end of the data if there was no recovery).
	Failures int
	// NoOutage is set when the samples after the injection show no failure
	// at all over at least the sustain period: the service was never seen
	// down, and RTO is 0. An outage shorter than the sampling interval
	// cannot be seen, so report the interval with such a figure.
	NoOutage bool
	// RTO is RecoveredAt - InjectedAt.
	RTO Value[time.Duration]
	// Observed is how long the data lasts after the injection: the time of
	// the last sample minus InjectedAt (zero if there is none).
	Observed time.Duration
	// AtLeast is a lower bound of the RTO when it is not known: the time from
	// the injection to the last failure, or to the success whose sustain
	// period the data did not cover. Zero when the RTO is known.
	AtLeast time.Duration
}

// Recover measures a fault's recovery from the samples of one service:
// the first error after injectedAt, the recovery (the first success after
// that error followed by successes for at least sustain) and the RTO.
//
// Pass only the samples of this fault's horizon, from the injection up to
// the next fault's injection or the end of the run (see [Between]): the
// first failure after injectedAt is taken to be this fault's, however late
// it comes.
//
// Only samples count: a gap in the data (the prober itself unreachable) is
// neither success nor failure, so callers should check the prober's own
// health over the window.
//
// The RTO is not known when there is no sample after the injection, when
// the data ends before a sustained recovery (or, with no failure at all,
// before the sustain period has passed).
func Recover(samples []Sample, injectedAt time.Time, sustain time.Duration) Recovery {
	r := Recovery{InjectedAt: injectedAt}
	var after []Sample
	for _, s := range sortedSamples(samples) {
		if !s.At.Before(injectedAt) {
			after = append(after, s)
		}
	}
	if len(after) == 0 {
		r.RTO = Unknown[time.Duration]("no samples after the injection")
		return r
	}
	last := after[len(after)-1].At
	r.Observed = last.Sub(injectedAt)

	first := -1
	for i, s := range after {
		if !s.OK {
			first = i
			break
		}
	}
	if first < 0 {
		if r.Observed < sustain {
			r.RTO = Unknown[time.Duration](fmt.Sprintf("no failure seen, but the data ends %s after the injection, before the sustain period of %s", r.Observed, sustain))
			return r
		}
		r.RecoveredAt, r.NoOutage = injectedAt, true
		r.RTO = Known(time.Duration(0))
		return r
	}
	r.FirstError = after[first].At

	candidate := -1 // first success of the current run of successes
	for i := first; i < len(after); i++ {
		s := after[i]
		switch {
		case !s.OK:
			r.Failures++
			candidate = -1
		case candidate < 0:
			candidate = i
		}
		if candidate >= 0 && s.At.Sub(after[candidate].At) >= sustain {
			r.RecoveredAt = after[candidate].At
			r.RTO = Known(r.RecoveredAt.Sub(injectedAt))
			return r
		}
	}
	if candidate < 0 {
		r.AtLeast = last.Sub(injectedAt)
		r.RTO = Unknown[time.Duration](fmt.Sprintf("no recovery within the data: still failing %s after the injection", r.AtLeast))
		return r
	}
	r.AtLeast = after[candidate].At.Sub(injectedAt)
	r.RTO = Unknown[time.Duration](fmt.Sprintf("recovery not confirmed: successes from %s after the injection, but the data ends before the sustain period of %s", r.AtLeast, sustain))
	return r
}

// Below judges the RTO against a strict limit ("< 30 s"). An RTO that is
// not known still fails when the data proves it is at least limit: the
// service stayed down that long.
func (r Recovery) Below(limit time.Duration) Verdict {
	if !r.RTO.Known && r.AtLeast >= limit {
		return Verdict{Status: Fail, Reason: fmt.Sprintf("RTO is at least %s, not < %s (%s)", r.AtLeast, limit, r.RTO.Reason)}
	}
	return Below(r.RTO, limit)
}
