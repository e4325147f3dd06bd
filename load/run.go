package load

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Model is how load is offered.
type Model string

const (
	// Closed is N virtual users, each sending its next request after the
	// previous response and a think time.
	Closed Model = "closed"
	// Open starts behaviour iterations at an arrival rate, whatever the
	// target does.
	Open Model = "open"
)

// Clock tells the time. Inject the caller's clock to put the run's
// timestamps on the caller's time base; it must advance at the real rate
// (pauses are real timers).
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// SystemClock returns the clock of the operating system.
func SystemClock() Clock { return systemClock{} }

// Progress is a live view of a run, delivered about once a second.
type Progress struct {
	Time    time.Time
	Elapsed time.Duration
	// Users is the number of active users (closed) or iterations in flight
	// (open).
	Users    int
	Requests int64
	Failures int64
	// RPS is the completions of the last second.
	RPS float64
	// P95 is the corrected 95th percentile of the last second with data.
	P95 time.Duration
}

// MaxUsers bounds the concurrency of a run: the closed model's Users and
// the open model's MaxInFlight. Each user or in-flight iteration holds a
// goroutine, a request and response with their buffers and, without
// MaxConns, a connection of its own. `lab load` measured ~13 KiB of resident
// memory per user against a live target and ~22 KiB against one refusing
// connections (200 and 280 MiB in all at 10,000 users, 315 and 500 MiB at
// 20,000); 10,000 connections also stay well inside Linux's default
// ephemeral port range to one target (28,232 ports). That is ten times the
// full validation profile's 1000 users: more is a mistake, or a load that
// one generator process should not carry.
const MaxUsers = 10_000

// OptionsError is Run's error when its options cannot start a run: no
// request was sent.
type OptionsError struct{ Err error }

func (e *OptionsError) Error() string { return "load options: " + e.Err.Error() }
func (e *OptionsError) Unwrap() error { return e.Err }

// HostNotAllowedError is CheckTarget's error for a host that is neither
// loopback nor allowed.
type HostNotAllowedError struct{ Host string }

func (e *HostNotAllowedError) Error() string {
	return fmt.Sprintf("target host %q is not loopback: allow it explicitly to send load to it", e.Host)
}

// Options configure a run. Target, Scenario, Duration and MaxRequests are
// required: every run is bounded in time and in requests.
type Options struct {
	// Target is the base URL, e.g. http://127.0.0.1:8080. Only loopback
	// hosts and AllowHosts may be targeted.
	Target     string
	AllowHosts []string
	Scenario   *Scenario
	Model      Model

	// Users (at most MaxUsers) and SpawnRate (users per second; 0 starts
	// all at once) drive the closed model.
	Users     int
	SpawnRate float64
	// Rate (iterations per second) and Stages drive the open model;
	// MaxInFlight bounds the iterations in flight (default 5000, at most
	// MaxUsers); an arrival that finds all busy is dropped and counted.
	Rate        float64
	Stages      []Stage
	MaxInFlight int

	Duration    time.Duration
	MaxRequests int64
	// Timeout bounds each request (default 10s).
	Timeout time.Duration
	// MaxConns bounds the connections to the target (0: no limit).
	// Connections are kept alive and shared by the population.
	MaxConns int
	// Think, when set, replaces every behaviour's think time.
	Think *ThinkTime
	// Thresholds are evaluated with the scenario's own.
	Thresholds []Threshold
	// Seed makes the users' choices reproducible.
	Seed uint64

	Clock  Clock
	Logger *slog.Logger
	// OnProgress is called about once a second; OnSecond with each second
	// of the series, in order, once every request due in it has completed
	// (one request timeout later). Calls are never concurrent; they hold up
	// the recording of results, so they must return quickly.
	OnProgress func(Progress)
	OnSecond   func(Point)
}

// CheckTarget parses a target URL and refuses hosts that are neither
// loopback nor in allow ("*" allows any host).
func CheckTarget(target string, allow []string) (*url.URL, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("parse target %q: %w", target, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("target %q must be an http:// or https:// URL with a host", target)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
		return u, nil
	}
	if slices.Contains(allow, "*") || slices.ContainsFunc(allow, func(h string) bool { return strings.EqualFold(h, host) }) {
		return u, nil
	}
	return nil, &HostNotAllowedError{Host: host}
}

func (o *Options) validate() error {
	var errs []error
	if o.Scenario == nil || len(o.Scenario.Behaviours) == 0 {
		errs = append(errs, errors.New("a scenario with behaviours is required"))
	}
	if o.Duration <= 0 {
		errs = append(errs, errors.New("duration must be positive: every run is bounded"))
	}
	if o.MaxRequests <= 0 {
		errs = append(errs, errors.New("max requests must be positive: every run is bounded"))
	}
	if o.Timeout < 0 || o.MaxConns < 0 || o.MaxInFlight < 0 {
		errs = append(errs, errors.New("timeout, max connections and max in flight cannot be negative"))
	}
	if o.MaxInFlight > MaxUsers {
		errs = append(errs, fmt.Errorf("max in flight %d is above MaxUsers (%d), the generator's limit", o.MaxInFlight, MaxUsers))
	}
	if o.Think != nil && (o.Think.Min < 0 || o.Think.Max < o.Think.Min) {
		errs = append(errs, fmt.Errorf("think time %s..%s is not a range", o.Think.Min, o.Think.Max))
	}
	switch o.Model {
	case Closed:
		if o.Users <= 0 {
			errs = append(errs, errors.New("the closed model needs users > 0"))
		}
		if o.Users > MaxUsers {
			errs = append(errs, fmt.Errorf("users %d is above MaxUsers (%d), the generator's limit", o.Users, MaxUsers))
		}
		if o.SpawnRate < 0 || math.IsNaN(o.SpawnRate) || math.IsInf(o.SpawnRate, 0) {
			errs = append(errs, errors.New("spawn rate must be a finite number >= 0"))
		}
	case Open:
		if o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0) {
			errs = append(errs, errors.New("the open model needs a finite rate >= 0"))
		}
		peak := o.Rate
		for _, s := range o.Stages {
			if s.Rate < 0 || math.IsNaN(s.Rate) || math.IsInf(s.Rate, 0) || s.Duration < 0 {
				errs = append(errs, fmt.Errorf("stage %s to %g/s is not valid", s.Duration, s.Rate))
			}
			peak = max(peak, s.Rate)
		}
		if peak <= 0 {
			errs = append(errs, errors.New("the open model needs a rate > 0 at some point"))
		}
	default:
		errs = append(errs, fmt.Errorf("model %q is neither %q nor %q", o.Model, Closed, Open))
	}
	return errors.Join(errs...)
}

// runner is one run's state.
type runner struct {
	opts     Options
	scenario *Scenario
	clock    Clock
	log      *slog.Logger
	client   *fasthttp.HostClient
	base     string
	urls     []*url.URL // per step; nil when the path is a template
	rawURLs  []string   // per step, beside urls
	timeout  time.Duration
	rec      *recorder
	start    time.Time

	stop       chan struct{}
	stopOnce   sync.Once
	stopReason string
	end        time.Time

	issued    atomic.Int64
	active    atomic.Int64
	maxActive atomic.Int64
	aborted   atomic.Int64
	retried   atomic.Int64
	dropped   atomic.Int64

	extractMu     sync.Mutex
	extractLogged map[*Step]bool
}

// Run offers load as opts say until the duration ends, the request cap is
// reached or ctx is cancelled, waits for the requests in flight, and returns
// the figures. Cancelling ctx aborts requests in flight; the result then
// holds what was measured until then. Run returns an error only when it
// cannot start: an *OptionsError.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MaxInFlight == 0 {
		opts.MaxInFlight = 5000
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := opts.validate(); err != nil {
		return nil, &OptionsError{Err: err}
	}
	target, err := CheckTarget(opts.Target, opts.AllowHosts)
	if err != nil {
		return nil, &OptionsError{Err: err}
	}
	r := &runner{
		opts:          opts,
		scenario:      opts.Scenario,
		clock:         opts.Clock,
		log:           opts.Logger,
		base:          strings.TrimSuffix(target.String(), "/"),
		timeout:       opts.Timeout,
		stop:          make(chan struct{}),
		extractLogged: map[*Step]bool{},
	}
	client, conns := newClient(ctx, target, opts.MaxConns, r.timeout, &r.retried)
	r.client = client
	// The end of the run leaves no connection behind.
	defer func() {
		client.CloseIdleConnections()
		conns.closeAll()
	}()
	r.urls = make([]*url.URL, r.scenario.steps)
	r.rawURLs = make([]string, r.scenario.steps)
	for _, b := range r.scenario.Behaviours {
		for _, st := range b.Steps {
			if st.path.static() {
				r.rawURLs[st.index] = r.base + st.Path
				if r.urls[st.index], err = url.Parse(r.rawURLs[st.index]); err != nil {
					return nil, &OptionsError{Err: fmt.Errorf("step %q: path %q: %w", st.Name, st.Path, err)}
				}
			}
		}
	}
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)

	r.start = r.clock.Now()
	lagWindow := int64(math.Ceil(r.timeout.Seconds())) + 1
	r.rec = newRecorder(r.start, r.scenario.Endpoints(), int(lagWindow)+3, opts.OnSecond)
	r.rec.active = &r.active
	r.log.Info("load run starting", "target", r.base, "model", opts.Model, "scenario", r.scenario.Name,
		"duration", opts.Duration, "users", opts.Users, "rate", opts.Rate)

	if opts.Model == Closed { // the open model's schedule ends by itself
		timer := time.AfterFunc(opts.Duration, func() { r.halt("duration") })
		defer timer.Stop()
	}
	// Cancelling the run stops it, then ends the requests in flight
	// (fasthttp takes no context), in that order: a user whose request
	// ends finds the run stopped.
	stopCancel := context.AfterFunc(ctx, func() {
		r.halt("cancelled")
		conns.closeAll()
	})
	defer stopCancel()

	tickCtx, stopTicks := context.WithCancel(ctx)
	var ticks sync.WaitGroup
	ticks.Go(func() { r.tick(tickCtx, lagWindow) })

	switch opts.Model {
	case Closed:
		r.closed(ctx)
	case Open:
		r.open(ctx)
	}
	stopTicks()
	ticks.Wait()

	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	r.rec.close(r.rec.second(r.end) + 1) // every request was due by the end
	res := r.result(cpuSeconds(ru1) - cpuSeconds(ru0))
	r.log.Info("load run finished", "requests", res.Overall.Requests, "failures", res.Overall.Failures,
		"stop", res.StopReason, "passed", res.Passed())
	return res, nil
}

func cpuSeconds(ru syscall.Rusage) float64 {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// halt stops starting requests; the first reason wins.
func (r *runner) halt(reason string) {
	r.stopOnce.Do(func() {
		r.stopReason, r.end = reason, r.clock.Now()
		close(r.stop)
	})
}

func (r *runner) stopped() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// take claims one request of the cap; false means stop. A dispatched
// open-model arrival is sent even if the schedule has just ended: it was
// due within the duration.
func (r *runner) take(dispatched bool) bool {
	// stopReason is written before stop is closed: reading it once stopped
	// is safe.
	if r.stopped() && (!dispatched || r.stopReason != "duration") {
		return false
	}
	if r.issued.Add(1) > r.opts.MaxRequests {
		r.halt("request cap")
		return false
	}
	return true
}

func (r *runner) userStarted() {
	n := r.active.Add(1)
	// Raise maxActive to n unless another user already raised it as high.
	for {
		m := r.maxActive.Load()
		if n <= m || r.maxActive.CompareAndSwap(m, n) {
			return
		}
	}
}

// sleep waits d or until the run stops; false means stopped.
func (r *runner) sleep(t *time.Timer, d time.Duration) bool {
	if d <= 0 {
		return !r.stopped()
	}
	t.Reset(d)
	select {
	case <-t.C:
		return true
	case <-r.stop:
		t.Stop()
		return false
	}
}

func (r *runner) think(b *Behaviour) ThinkTime {
	if r.opts.Think != nil {
		return *r.opts.Think
	}
	return b.Think
}

func thinkFor(t ThinkTime, rng *rand.Rand) time.Duration {
	if t.Max <= t.Min {
		return t.Min
	}
	return t.Min + time.Duration(rng.Int64N(int64(t.Max-t.Min)+1))
}

// closed runs the closed model: users spawned at the spawn rate, each
// looping until the run stops.
func (r *runner) closed(ctx context.Context) {
	var wg sync.WaitGroup
	var every time.Duration
	if r.opts.SpawnRate > 0 {
		every = time.Duration(float64(time.Second) / r.opts.SpawnRate)
	}
	t := time.NewTimer(time.Hour)
	t.Stop()
	for i := range r.opts.Users {
		if i > 0 && every > 0 && !r.sleep(t, r.start.Add(time.Duration(i)*every).Sub(r.clock.Now())) {
			break
		}
		if r.stopped() {
			break
		}
		r.userStarted()
		wg.Go(func() {
			defer r.active.Add(-1)
			r.user(ctx, i)
		})
	}
	<-r.stop
	wg.Wait()
}

// user is one closed-model virtual user.
func (r *runner) user(ctx context.Context, id int) {
	rng := rand.New(rand.NewPCG(r.opts.Seed, uint64(id)))
	u := newVU(r, id, rng)
	u.closedUser = true
	t := time.NewTimer(time.Hour)
	t.Stop()
	due, lag := r.clock.Now(), time.Duration(0)
	for iter := 0; ; iter++ {
		b := r.scenario.pick(rng)
		think := r.think(b)
		mean := (think.Min + think.Max) / 2
		u.env.iteration = iter
		for _, st := range b.Steps {
			if !r.take(false) {
				return
			}
			// The user's usual cycle: the users' median busy cycle plus the
			// mean think time. A response slower than that hid requests the
			// user would have sent; the correction accounts for them.
			ok := u.do(ctx, st, due, r.rec.reference()+mean, lag)
			pause := thinkFor(think, rng)
			u.lastPause = pause
			wake := r.clock.Now().Add(pause)
			if !r.sleep(t, pause) {
				return
			}
			// The next request was due when the user meant to wake; if the
			// generator woke it late, that lateness is the generator's and
			// counts against it, not for it.
			due, lag = r.clock.Now(), 0
			if pause > 0 && due.After(wake) {
				due, lag = wake, due.Sub(wake)
			}
			if !ok {
				break // the remaining steps need what this one failed to give
			}
		}
	}
}

// open runs the open model: a dispatcher hands each arrival's due time to
// an idle worker, starting workers up to MaxInFlight.
func (r *runner) open(ctx context.Context) {
	jobs := make(chan time.Time)
	var wg sync.WaitGroup
	workers := 0
	sched := newSchedule(r.opts.Rate, r.opts.Stages, r.opts.Duration)
	t := time.NewTimer(time.Hour)
	t.Stop()
	for i := int64(0); ; i++ {
		off, ok := sched.at(i)
		if !ok {
			break
		}
		due := r.start.Add(off)
		if !r.sleep(t, due.Sub(r.clock.Now())) {
			break
		}
		select {
		case jobs <- due:
			continue
		default:
		}
		if workers < r.opts.MaxInFlight {
			workers++
			id := workers - 1
			wg.Go(func() { r.worker(ctx, id, due, jobs) })
			continue
		}
		r.dropped.Add(1)
	}
	r.halt("duration")
	if r.stopReason == "duration" {
		// Every arrival of the schedule was dispatched, if late: the offered
		// load spans exactly the duration.
		r.end = r.start.Add(r.opts.Duration)
	}
	close(jobs)
	wg.Wait()
}

// timerSlack is the lateness of a timer that is only its resolution: the
// Go runtime sleeps at least a millisecond when it has nothing else to run.
const timerSlack = time.Millisecond

// worker runs iterations handed over by the dispatcher; each iteration is
// a new visitor.
func (r *runner) worker(ctx context.Context, id int, first time.Time, jobs <-chan time.Time) {
	rng := rand.New(rand.NewPCG(r.opts.Seed, uint64(id)))
	u := newVU(r, id, rng)
	t := time.NewTimer(time.Hour)
	t.Stop()
	iter := 0
	for due, ok := first, true; ok; due, ok = <-jobs {
		r.userStarted()
		r.iteration(ctx, u, t, due, iter)
		r.active.Add(-1)
		iter++
	}
}

func (r *runner) iteration(ctx context.Context, u *vu, t *time.Timer, due time.Time, iter int) {
	u.newVisitor()
	u.env.iteration = iter
	b := r.scenario.pick(u.rng)
	think := r.think(b)
	for i, st := range b.Steps {
		if !r.take(i == 0) {
			return
		}
		lag := max(r.clock.Now().Sub(due), 0)
		// Latency counts from the time the request was due, less what is
		// only the resolution of the runtime's timers: without this, every
		// figure would carry a uniform 0-1 ms of timer lateness. Lateness
		// beyond it counts, and schedule_lag reports all of it.
		if !u.do(ctx, st, due.Add(min(lag, timerSlack)), 0, lag) || i == len(b.Steps)-1 {
			return
		}
		pause := thinkFor(think, u.rng)
		due = r.clock.Now().Add(pause)
		if !r.sleep(t, pause) {
			return
		}
	}
}

// tick closes seconds of the series once their requests are all done,
// refreshes the closed model's reference latencies and reports progress.
func (r *runner) tick(ctx context.Context, lagWindow int64) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := r.clock.Now()
		users := int(r.active.Load())
		r.rec.noteUsers(now, users)
		r.rec.updateReferences()
		r.rec.close(r.rec.second(now) - lagWindow)
		if r.opts.OnProgress == nil {
			continue
		}
		reqs, fails := r.rec.totals()
		r.opts.OnProgress(Progress{
			Time: now, Elapsed: now.Sub(r.start), Users: users,
			Requests: reqs, Failures: fails, RPS: float64(reqs - last),
			P95: r.rec.liveP95(now),
		})
		last = reqs
	}
}

func (r *runner) noteExtractError(st *Step, e *extractor, err error) {
	r.extractMu.Lock()
	defer r.extractMu.Unlock()
	if r.extractLogged[st] {
		return
	}
	r.extractLogged[st] = true
	r.log.Warn("extraction failed (logged once per step)", "step", st.Name, "variable", e.name, "error", err)
}

// result assembles the figures.
func (r *runner) result(cpu float64) *Result {
	rec := r.rec
	rec.mu.Lock()
	defer rec.mu.Unlock()
	res := &Result{
		Scenario: r.scenario.Name, Model: r.opts.Model, Target: r.base,
		Start: r.start, End: r.end, Duration: r.end.Sub(r.start), StopReason: r.stopReason,
	}
	secs := res.Duration.Seconds()
	overall := Stats{Name: "all", raw: newLatencyHistogram(3), corrected: newLatencyHistogram(3)}
	for _, ep := range rec.endpoints {
		st := Stats{
			Name: ep.name, Requests: ep.requests, Failures: ep.failures, ByClass: ep.byClass,
			BytesSent: ep.bytesOut, BytesReceived: ep.bytesIn,
			raw: ep.raw, corrected: ep.corrected,
		}
		overall.Requests += st.Requests
		overall.Failures += st.Failures
		for i := range overall.ByClass {
			overall.ByClass[i] += st.ByClass[i]
		}
		overall.BytesSent += st.BytesSent
		overall.BytesReceived += st.BytesReceived
		overall.raw.Merge(ep.raw)
		overall.corrected.Merge(ep.corrected)
		res.Endpoints = append(res.Endpoints, st)
	}
	for _, st := range append([]*Stats{&overall}, pointers(res.Endpoints)...) {
		st.Latency, st.RawLatency = summarize(st.corrected), summarize(st.raw)
		if st.Requests > 0 {
			st.ErrorRate = float64(st.Failures) / float64(st.Requests)
		}
		if secs > 0 {
			st.RPS = float64(st.Requests) / secs
		}
	}
	res.Overall = overall
	res.Series = Series{Interval: rec.series.Interval, Points: slices.Clone(rec.series.Points)}
	if len(rec.pending) > 0 {
		res.Series.Points = append(res.Series.Points, mergePoints(rec.pending, rec.series.Interval))
	}
	wall := r.clock.Now().Sub(r.start).Seconds()
	g := Generator{
		CPUSeconds: cpu, Available: runtime.GOMAXPROCS(0),
		ScheduleLag: summarize(rec.lag), DroppedStarts: r.dropped.Load(), Aborted: r.aborted.Load(),
		Retried:     r.retried.Load(),
		LateSamples: rec.late, MaxUsers: int(r.maxActive.Load()),
	}
	if wall > 0 {
		g.Cores = cpu / wall
	}
	g.Warnings = warnings(g)
	res.Generator = g
	res.Thresholds = []ThresholdResult{} // [] in JSON when there are none
	for _, t := range append(slices.Clone(r.scenario.Thresholds), r.opts.Thresholds...) {
		res.Thresholds = append(res.Thresholds, t.evaluate(res))
	}
	return res
}

func pointers(s []Stats) []*Stats {
	ps := make([]*Stats, len(s))
	for i := range s {
		ps[i] = &s[i]
	}
	return ps
}

// warnings says where the generator itself may have bent the figures.
func warnings(g Generator) []string {
	var w []string
	if g.DroppedStarts > 0 {
		w = append(w, fmt.Sprintf("%d arrivals found every worker busy and were not sent: the offered rate was not held (raise MaxInFlight)", g.DroppedStarts))
	}
	if p99 := g.ScheduleLag.P99; p99 > 10*time.Millisecond {
		w = append(w, fmt.Sprintf("requests were sent up to %s late (p99 schedule lag): the generator could not keep its schedule", p99.Round(time.Millisecond)))
	}
	if g.Available > 0 && g.Cores > 0.9*float64(g.Available) {
		w = append(w, fmt.Sprintf("the generator used %.2f of its %d cores: it may be the bottleneck", g.Cores, g.Available))
	}
	if g.Retried > 0 {
		w = append(w, fmt.Sprintf("%d requests found their connection closed before any response and were sent again, once (as browsers do): the first attempts' failures are not counted", g.Retried))
	}
	if g.LateSamples > 0 {
		w = append(w, fmt.Sprintf("%d requests finished after their second was closed: they are in the totals, not in the series", g.LateSamples))
	}
	return w
}
