package load

import (
	"math"
	"time"
)

// Stage ramps the open model's arrival rate linearly to Rate over Duration.
type Stage struct {
	Duration time.Duration `json:"duration_ns"`
	Rate     float64       `json:"rate"`
}

// schedule gives the open model's arrival times: the i-th arrival happens
// when the integral of the (piecewise linear) rate reaches i.
type schedule struct {
	segs []segment
	end  time.Duration
	cur  int     // segment of the last arrival
	base float64 // arrivals before segment cur
}

type segment struct {
	start, length time.Duration
	from, to      float64 // arrivals per second at start and end
}

// newSchedule starts at rate and follows the stages; after the last stage
// the rate holds until total.
func newSchedule(rate float64, stages []Stage, total time.Duration) *schedule {
	s := &schedule{end: total}
	at, from := time.Duration(0), rate
	for _, st := range stages {
		if at >= total || st.Duration <= 0 {
			continue
		}
		s.segs = append(s.segs, segment{start: at, length: st.Duration, from: from, to: st.Rate})
		at, from = at+st.Duration, st.Rate
	}
	if at < total {
		s.segs = append(s.segs, segment{start: at, length: total - at, from: from, to: from})
	}
	return s
}

// count is the number of arrivals in a segment's first tau.
func (g segment) count(tau float64) float64 {
	l := g.length.Seconds()
	return g.from*tau + (g.to-g.from)/(2*l)*tau*tau
}

// at returns the offset of arrival i (0-based, non-decreasing across calls)
// from the start, and false once it falls at or after the end.
func (s *schedule) at(i int64) (time.Duration, bool) {
	n := float64(i)
	for ; s.cur < len(s.segs); s.cur++ {
		g := s.segs[s.cur]
		l := g.length.Seconds()
		total := g.count(l)
		if n < s.base+total {
			c := n - s.base
			var tau float64
			if k := (g.to - g.from) / (2 * l); math.Abs(k) < 1e-12 {
				tau = c / g.from
			} else {
				// k·tau² + from·tau - c = 0, the root within the segment.
				tau = (-g.from + math.Sqrt(g.from*g.from+4*k*c)) / (2 * k)
			}
			off := g.start + time.Duration(tau*float64(time.Second))
			if off >= s.end {
				return 0, false
			}
			return off, true
		}
		s.base += total
	}
	return 0, false
}
