package load

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

const (
	// maxLatencyUS is the highest latency the histograms hold (1 h); longer
	// values are recorded as this.
	maxLatencyUS = int64(time.Hour / time.Microsecond)
	// maxSynthetic bounds the coordinated-omission samples one stalled
	// request adds, so a pathological stall cannot stall the recorder.
	maxSynthetic = 100_000
	// defaultMaxPoints bounds the kept series: two hours at one second per
	// point, then two seconds per point, and so on.
	defaultMaxPoints = 7200 // even
)

func newLatencyHistogram(sigfigs int) *hdrhistogram.Histogram {
	return hdrhistogram.New(1, maxLatencyUS, sigfigs)
}

func clampUS(d time.Duration) int64 {
	us := int64(d / time.Microsecond)
	switch {
	case us < 1:
		return 1
	case us > maxLatencyUS:
		return maxLatencyUS
	}
	return us
}

// recordCorrected records v and, when v exceeds the expected interval, the
// latencies of the requests that would have been sent meanwhile at that
// interval: v-interval, v-2·interval, ... (HdrHistogram's correction, with a
// bound on the number of added samples).
func recordCorrected(h *hdrhistogram.Histogram, v, interval int64) {
	_ = h.RecordValue(v) // v is clamped into range
	if interval <= 0 || v <= interval {
		return
	}
	if n := v / interval; n > maxSynthetic {
		interval = v / maxSynthetic
	}
	for m := v - interval; m >= interval; m -= interval {
		_ = h.RecordValue(m)
	}
}

// sample is one finished request.
type sample struct {
	endpoint int
	// due is when the request should have been sent, sent when it was,
	// done when the response was read; due <= sent <= done.
	due, sent, done time.Time
	failed          bool
	class           Class
	bytesOut        int64
	bytesIn         int64
	// interval is the user's expected cycle (closed model): the basis of
	// the coordinated-omission correction; 0 for none.
	interval time.Duration
	// lag is how late the request was sent after it was due (open model) or
	// the user woke from think time (closed model).
	lag time.Duration
	// busy is the closed-model user's cycle before this request: the time
	// since its previous send, think time excluded; 0 when unknown.
	busy time.Duration
}

type endpointStats struct {
	name               string
	raw, corrected     *hdrhistogram.Histogram
	requests, failures int64
	byClass            ClassCounts
	bytesOut, bytesIn  int64
}

// slot accumulates one second of the series until it is closed.
type slot struct {
	sec      int64
	used     bool
	requests int64
	failures int64
	byClass  ClassCounts
	users    int
	hist     *hdrhistogram.Histogram
}

// recorder receives every sample. One mutex guards it all: an uncontended
// lock costs less than any sharding would save at the rates one core sends.
type recorder struct {
	mu        sync.Mutex
	start     time.Time
	endpoints []*endpointStats
	lag       *hdrhistogram.Histogram
	late      int64

	// cycle holds the closed-model users' busy cycles (µs); cycleRef is
	// its running median, read without the lock.
	cycle            *hdrhistogram.Histogram
	cycleRef         atomic.Int64
	cycleRefIsMedian bool
	active           *atomic.Int64 // active users, sampled into each second

	slots    []slot // ring indexed by second
	closedTo int64  // seconds < closedTo are closed
	onSecond func(Point)

	series    Series
	maxPoints int
	pending   []Point // 1 s points waiting to be merged into series.Interval
}

func newRecorder(start time.Time, endpoints []string, window int, onSecond func(Point)) *recorder {
	r := &recorder{
		start:     start,
		lag:       newLatencyHistogram(2),
		cycle:     newLatencyHistogram(2),
		slots:     make([]slot, window),
		onSecond:  onSecond,
		series:    Series{Interval: time.Second},
		maxPoints: defaultMaxPoints,
	}
	for _, name := range endpoints {
		r.endpoints = append(r.endpoints, &endpointStats{
			name:      name,
			raw:       newLatencyHistogram(3),
			corrected: newLatencyHistogram(3),
		})
	}
	for i := range r.slots {
		r.slots[i].hist = newLatencyHistogram(2)
		r.slots[i].sec = -1
	}
	return r
}

func (r *recorder) second(t time.Time) int64 {
	d := t.Sub(r.start)
	if d < 0 {
		return 0
	}
	return int64(d / time.Second)
}

// record adds a finished request; safe for concurrent use.
func (r *recorder) record(s *sample) {
	raw := clampUS(s.done.Sub(s.sent))
	corrected := clampUS(s.done.Sub(s.due))
	interval := int64(s.interval / time.Microsecond)
	sec := r.second(s.due)

	r.mu.Lock()
	defer r.mu.Unlock()
	ep := r.endpoints[s.endpoint]
	ep.requests++
	ep.bytesOut += s.bytesOut
	ep.bytesIn += s.bytesIn
	if s.failed {
		ep.failures++
		ep.byClass[s.class]++
	}
	_ = ep.raw.RecordValue(raw)
	if s.busy > 0 {
		busy := clampUS(s.busy)
		_ = r.cycle.RecordValue(busy)
		// Until the ticker's first median, take one at every power of two:
		// a few early, cheap estimates instead of none.
		if n := r.cycle.TotalCount(); !r.cycleRefIsMedian && n&(n-1) == 0 {
			r.cycleRef.Store(r.cycle.ValueAtPercentile(50))
		}
	}
	recordCorrected(ep.corrected, corrected, interval)
	if s.lag > 0 {
		_ = r.lag.RecordValue(clampUS(s.lag))
	}
	sl := r.slotFor(sec)
	if sl == nil {
		r.late++
		return
	}
	sl.requests++
	if r.active != nil {
		sl.users = max(sl.users, int(r.active.Load()))
	}
	if s.failed {
		sl.failures++
		sl.byClass[s.class]++
	}
	recordCorrected(sl.hist, corrected, interval)
}

// slotFor returns the open slot of second sec, or nil if sec is closed.
// Called with mu held.
func (r *recorder) slotFor(sec int64) *slot {
	if sec < r.closedTo {
		return nil
	}
	// A slot still holding an older second means the closer fell behind
	// (a starved machine): close up to here first.
	if ahead := sec - int64(len(r.slots)) + 1; ahead > r.closedTo {
		r.closeLocked(ahead)
	}
	sl := &r.slots[sec%int64(len(r.slots))]
	if sl.sec != sec {
		sl.sec, sl.used = sec, true
	}
	return sl
}

// noteUsers records the number of active users in the second of t.
func (r *recorder) noteUsers(t time.Time, users int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sl := r.slotFor(r.second(t)); sl != nil && users > sl.users {
		sl.users = users
	}
}

// close closes every second before sec, in order, handing each point to
// onSecond and the kept series.
func (r *recorder) close(sec int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closeLocked(sec)
}

func (r *recorder) closeLocked(sec int64) {
	for ; r.closedTo < sec; r.closedTo++ {
		p := Point{Time: r.start.Add(time.Duration(r.closedTo) * time.Second)}
		sl := &r.slots[r.closedTo%int64(len(r.slots))]
		if sl.used && sl.sec == r.closedTo {
			p.Requests, p.Failures, p.ByClass, p.Users = sl.requests, sl.failures, sl.byClass, sl.users
			p.RPS = float64(sl.requests)
			if sl.hist.TotalCount() > 0 {
				q := sl.hist.ValueAtPercentiles([]float64{50, 95, 99})
				p.P50 = time.Duration(q[50]) * time.Microsecond
				p.P95 = time.Duration(q[95]) * time.Microsecond
				p.P99 = time.Duration(q[99]) * time.Microsecond
			}
			sl.hist.Reset()
			*sl = slot{sec: -1, hist: sl.hist}
		}
		if r.onSecond != nil {
			r.onSecond(p)
		}
		r.keep(p)
	}
}

// keep adds a one-second point to the bounded series.
func (r *recorder) keep(p Point) {
	r.pending = append(r.pending, p)
	if time.Duration(len(r.pending))*time.Second < r.series.Interval {
		return
	}
	r.series.Points = append(r.series.Points, mergePoints(r.pending, r.series.Interval))
	r.pending = r.pending[:0]
	if len(r.series.Points) < r.maxPoints {
		return
	}
	// Full: halve the resolution.
	pts := r.series.Points
	r.series.Interval *= 2
	half := pts[:0]
	for i := 0; i+1 < len(pts); i += 2 {
		half = append(half, mergePoints(pts[i:i+2], r.series.Interval))
	}
	r.series.Points = half // maxPoints is even: no point is left over
}

// mergePoints combines consecutive points into one of the given interval:
// counts add up, users and percentiles take the highest.
func mergePoints(ps []Point, interval time.Duration) Point {
	m := Point{Time: ps[0].Time}
	for _, p := range ps {
		m.Requests += p.Requests
		m.Failures += p.Failures
		for i := range m.ByClass {
			m.ByClass[i] += p.ByClass[i]
		}
		m.Users = max(m.Users, p.Users)
		m.P50, m.P95, m.P99 = max(m.P50, p.P50), max(m.P95, p.P95), max(m.P99, p.P99)
	}
	m.RPS = float64(m.Requests) / interval.Seconds()
	return m
}

// updateReferences refreshes the users' median busy cycle, the basis of
// the closed model's expected interval.
func (r *recorder) updateReferences() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cycle.TotalCount() > 0 {
		r.cycleRef.Store(r.cycle.ValueAtPercentile(50))
		r.cycleRefIsMedian = true
	}
}

// reference is the users' median busy cycle: from one request's send to the
// next one's, think time excluded.
func (r *recorder) reference() time.Duration {
	return time.Duration(r.cycleRef.Load()) * time.Microsecond
}

// liveP95 returns the corrected p95 of the most recent second with data.
func (r *recorder) liveP95(now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	sec := r.second(now)
	for s := sec; s >= r.closedTo && s > sec-2; s-- {
		if sl := &r.slots[s%int64(len(r.slots))]; sl.sec == s && sl.hist.TotalCount() > 0 {
			return time.Duration(sl.hist.ValueAtPercentile(95)) * time.Microsecond
		}
	}
	return 0
}

// totals returns the requests and failures recorded so far.
func (r *recorder) totals() (requests, failures int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ep := range r.endpoints {
		requests += ep.requests
		failures += ep.failures
	}
	return requests, failures
}
