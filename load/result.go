package load

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Class is the kind of a failed request.
type Class uint8

// The failure classes. A request fails with the first that applies.
const (
	ClassTimeout    Class = iota // no complete response within the request timeout
	ClassRefused                 // connection refused
	ClassReset                   // connection reset or closed mid-exchange
	ClassConnection              // any other transport error (DNS, TLS, ...)
	Class5xx                     // a 5xx status the step did not expect
	Class4xx                     // a 4xx status the step did not expect
	ClassStatus                  // any other status the step did not expect
	ClassExtract                 // a value could not be extracted, or body_contains failed
	numClasses
)

var classNames = [numClasses]string{"timeout", "refused", "reset", "connection", "5xx", "4xx", "status", "extract"}

// Classes lists every failure class in order.
func Classes() []Class {
	cs := make([]Class, numClasses)
	for i := range cs {
		cs[i] = Class(i)
	}
	return cs
}

func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// MarshalText encodes the class by name.
func (c Class) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// ClassCounts counts failures by class. It encodes to JSON as an object of
// the non-zero counts, e.g. {"timeout": 3, "5xx": 12}.
type ClassCounts [numClasses]int64

// MarshalJSON encodes the non-zero counts.
func (c ClassCounts) MarshalJSON() ([]byte, error) {
	m := make(map[string]int64, len(c))
	for i, n := range c {
		if n != 0 {
			m[classNames[i]] = n
		}
	}
	return json.Marshal(m)
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (c *ClassCounts) UnmarshalJSON(b []byte) error {
	var m map[string]int64
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("decode failure classes: %w", err)
	}
	*c = ClassCounts{}
	for name, n := range m {
		found := false
		for i, cn := range classNames {
			if cn == name {
				c[i], found = n, true
			}
		}
		if !found {
			return fmt.Errorf("decode failure classes: unknown class %q", name)
		}
	}
	return nil
}

// Latency summarises a latency histogram.
type Latency struct {
	Samples                                  int64
	Min, Mean, P50, P90, P95, P99, P999, Max time.Duration
}

type latencyJSON struct {
	Samples int64   `json:"samples"`
	Min     float64 `json:"min_ms"`
	Mean    float64 `json:"mean_ms"`
	P50     float64 `json:"p50_ms"`
	P90     float64 `json:"p90_ms"`
	P95     float64 `json:"p95_ms"`
	P99     float64 `json:"p99_ms"`
	P999    float64 `json:"p99_9_ms"`
	Max     float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

func fromMS(f float64) time.Duration { return time.Duration(math.Round(f * 1e6)) }

// MarshalJSON encodes durations as milliseconds (microsecond precision).
func (l Latency) MarshalJSON() ([]byte, error) {
	return json.Marshal(latencyJSON{l.Samples, ms(l.Min), ms(l.Mean), ms(l.P50), ms(l.P90), ms(l.P95), ms(l.P99), ms(l.P999), ms(l.Max)})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (l *Latency) UnmarshalJSON(b []byte) error {
	var j latencyJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("decode latency: %w", err)
	}
	*l = Latency{j.Samples, fromMS(j.Min), fromMS(j.Mean), fromMS(j.P50), fromMS(j.P90), fromMS(j.P95), fromMS(j.P99), fromMS(j.P999), fromMS(j.Max)}
	return nil
}

// summarize reads a histogram of microseconds.
func summarize(h *hdrhistogram.Histogram) Latency {
	if h == nil || h.TotalCount() == 0 {
		return Latency{}
	}
	q := h.ValueAtPercentiles([]float64{50, 90, 95, 99, 99.9})
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	return Latency{
		Samples: h.TotalCount(),
		Min:     us(h.Min()),
		Mean:    time.Duration(h.Mean() * float64(time.Microsecond)),
		P50:     us(q[50]), P90: us(q[90]), P95: us(q[95]), P99: us(q[99]), P999: us(q[99.9]),
		Max: us(h.Max()),
	}
}

// Stats are the figures of one endpoint, or of all requests.
type Stats struct {
	// Name is the step name; "all" for the overall figures.
	Name     string      `json:"name"`
	Requests int64       `json:"requests"`
	Failures int64       `json:"failures"`
	ByClass  ClassCounts `json:"failures_by_class"`
	// ErrorRate is Failures / Requests.
	ErrorRate float64 `json:"error_rate"`
	// RPS is Requests over the run's duration.
	RPS           float64 `json:"rps"`
	BytesSent     int64   `json:"bytes_sent"`
	BytesReceived int64   `json:"bytes_received"`
	// Latency is measured from the time each request was due: corrected for
	// coordinated omission (closed model: with the requests a stalled user
	// did not send; open model: from the scheduled start, less up to 1 ms of
	// timer resolution). Failed requests count too. The SLO figure.
	Latency Latency `json:"latency"`
	// RawLatency is measured from the moment each request was sent.
	RawLatency Latency `json:"raw_latency"`

	raw, corrected *hdrhistogram.Histogram
}

// percentile returns the q-th percentile (0 < q <= 100), corrected unless
// raw is set. Stats decoded from JSON only know the summarised percentiles.
func (s *Stats) percentile(q float64, raw bool) time.Duration {
	h, l := s.corrected, s.Latency
	if raw {
		h, l = s.raw, s.RawLatency
	}
	if h != nil {
		return time.Duration(h.ValueAtPercentile(q)) * time.Microsecond
	}
	switch q {
	case 50:
		return l.P50
	case 90:
		return l.P90
	case 95:
		return l.P95
	case 99:
		return l.P99
	case 99.9:
		return l.P999
	case 100:
		return l.Max
	}
	return l.Max // an upper bound for any percentile not kept
}

// Point is one interval of the time series: the requests that were due in
// [Time, Time+Interval), whenever they completed.
type Point struct {
	Time     time.Time   `json:"time"`
	Requests int64       `json:"requests"`
	RPS      float64     `json:"rps"`
	Failures int64       `json:"failures"`
	ByClass  ClassCounts `json:"failures_by_class"`
	// Users is the highest number of active virtual users (closed model) or
	// iterations in flight (open model) seen in the interval.
	Users int `json:"users"`
	// P50, P95 and P99 are corrected latencies (milliseconds in JSON). In
	// a point that merges several seconds (see Series) they are the highest
	// of those seconds.
	P50 time.Duration `json:"-"`
	P95 time.Duration `json:"-"`
	P99 time.Duration `json:"-"`
}

// pointJSON is Point with its latencies in milliseconds.
type pointJSON struct {
	point
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
}

type point Point // without Point's methods

// MarshalJSON encodes the latencies as milliseconds, like Latency.
func (p Point) MarshalJSON() ([]byte, error) {
	return json.Marshal(pointJSON{point(p), ms(p.P50), ms(p.P95), ms(p.P99)})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (p *Point) UnmarshalJSON(b []byte) error {
	var j pointJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("decode series point: %w", err)
	}
	*p = Point(j.point)
	p.P50, p.P95, p.P99 = fromMS(j.P50), fromMS(j.P95), fromMS(j.P99)
	return nil
}

// Series is the per-interval time series. It starts at one second per point;
// when a run outgrows MaxPoints, neighbouring points are merged and Interval
// doubles, so memory stays bounded for any run length.
type Series struct {
	Interval time.Duration `json:"interval_ns"`
	Points   []Point       `json:"points"`
}

// Generator describes the generator itself: whether it kept up.
type Generator struct {
	// CPUSeconds is the process CPU time (user + system) used by the run.
	CPUSeconds float64 `json:"cpu_seconds"`
	// Cores is CPUSeconds over the run's wall time; Available is GOMAXPROCS.
	Cores     float64 `json:"cores"`
	Available int     `json:"cores_available"`
	// ScheduleLag is how late requests were sent after they were due: open
	// model arrivals, or closed model users waking from think time.
	ScheduleLag Latency `json:"schedule_lag"`
	// DroppedStarts counts open-model arrivals that found every worker busy
	// (MaxInFlight) and were not sent: the offered rate was not held.
	DroppedStarts int64 `json:"dropped_starts"`
	// Aborted counts requests cut short because the run was cancelled; they
	// are not in the figures.
	Aborted int64 `json:"aborted"`
	// Retried counts idempotent requests whose connection closed before any
	// byte of a response, sent again once on a new connection as browsers
	// do (mostly a keep-alive connection the target had closed while it
	// was idle). The first attempt's failure is not in the figures.
	Retried int64 `json:"retried"`
	// LateSamples counts requests completed after their second had been
	// closed in the series; they are in the totals but not in the series.
	LateSamples int64 `json:"late_samples"`
	// MaxUsers is the highest number of active users or in-flight iterations.
	MaxUsers int `json:"max_users"`
	// Warnings say in words where the generator could not keep up.
	Warnings []string `json:"warnings,omitempty"`
}

// Result is everything a run measured.
type Result struct {
	Scenario string `json:"scenario"`
	Model    Model  `json:"model"`
	Target   string `json:"target"`
	// Start and End bound the sending phase on the run's clock; Duration is
	// End - Start. In-flight requests are waited for after End.
	Start    time.Time     `json:"start"`
	End      time.Time     `json:"end"`
	Duration time.Duration `json:"duration_ns"`
	// StopReason says why sending stopped: duration, request cap, or
	// cancelled.
	StopReason string            `json:"stop_reason"`
	Overall    Stats             `json:"overall"`
	Endpoints  []Stats           `json:"endpoints"`
	Series     Series            `json:"series"`
	Generator  Generator         `json:"generator"`
	Thresholds []ThresholdResult `json:"thresholds"`
}

// Passed reports whether every threshold passed.
func (r *Result) Passed() bool {
	for _, t := range r.Thresholds {
		if !t.Pass {
			return false
		}
	}
	return true
}

// NoSuccess says in words that no request of the run succeeded, and how
// they failed: "target down: all 120 requests failed: connection refused"
// when none got a response (every failure is of the transport), "no request
// succeeded: all 10 requests failed: 9 5xx, 1 connection refused"
// otherwise. It is "" when a request succeeded, or none was sent.
func (r *Result) NoSuccess() string {
	o := &r.Overall
	if o.Requests == 0 || o.Failures < o.Requests {
		return ""
	}
	type count struct {
		c Class
		n int64
	}
	var counts []count
	transport := true
	for _, c := range Classes() {
		if n := o.ByClass[c]; n > 0 {
			counts = append(counts, count{c, n})
			transport = transport && c.transport()
		}
	}
	slices.SortStableFunc(counts, func(a, b count) int { return cmp.Compare(b.n, a.n) })
	var how []string
	for _, c := range counts {
		if len(counts) == 1 {
			how = append(how, c.c.words())
			break
		}
		how = append(how, fmt.Sprintf("%d %s", c.n, c.c.words()))
	}
	what := "no request succeeded"
	if transport {
		what = "target down"
	}
	return fmt.Sprintf("%s: all %d requests failed: %s", what, o.Requests, strings.Join(how, ", "))
}

// words says what a failure of the class is, for people.
func (c Class) words() string {
	switch c {
	case ClassTimeout:
		return "timed out"
	case ClassRefused:
		return "connection refused"
	case ClassReset:
		return "connection reset"
	case ClassConnection:
		return "connection failed"
	case ClassStatus:
		return "unexpected status"
	case ClassExtract:
		return "extraction failed"
	}
	return c.String() // 5xx, 4xx
}

// transport reports whether the class is a failure to get any response.
func (c Class) transport() bool {
	return c == ClassTimeout || c == ClassRefused || c == ClassReset || c == ClassConnection
}

// Endpoint returns the figures of the named endpoint, or nil.
func (r *Result) Endpoint(name string) *Stats {
	for i := range r.Endpoints {
		if r.Endpoints[i].Name == name {
			return &r.Endpoints[i]
		}
	}
	return nil
}
