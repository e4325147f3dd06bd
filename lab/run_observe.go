package lab

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jewelry-shop/lab/lab/measure"
)

// startLoad starts the load and the observers in the background, and
// registers what must happen on every path from here on, in reverse: stop
// the observers, stop the load, read the prober's timeline, read the
// workloads' probes, sweep leftovers. The steps that do these on the
// normal path make the cleanups no-ops.
func (x *execution) startLoad(ctx context.Context) {
	r, o, p := x.r, x.o, x.pl.Profile
	// The cleanups get the run's own context: each bounds itself past its
	// end, and tells from it whether the run was interrupted.
	x.finally.push("sweep leftovers", func(context.Context) error { return x.sweep(ctx) })
	x.finally.push("read the workloads' probes", func(context.Context) error { x.readProbes(ctx); return nil })
	x.finally.push("read the prober's timeline", func(context.Context) error { x.collect(ctx); return nil })
	x.finally.push("stop the load", func(context.Context) error { x.waitLoad(ctx); return nil })
	x.finally.push("stop the observers", func(context.Context) error { x.endObservers(); return nil })

	x.base = time.Now()
	o.LoadRan, o.LoadStart = true, r.cfg.Now()
	// Where the prober's record of this run starts.
	_ = x.readProber(ctx, false, true, r.cfg.ProberReadTimeout)
	r.cfg.Progress.Start(fmt.Sprintf("Load: %d users for %s", p.Users, r.scale(p.Load)))
	loadCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.Load, o.LoadErr = r.cfg.Load.RunLoad(loadCtx, r.scale(p.Load))
	}()
	// An early stop cancels ctx, which ends the load at once.
	x.stopLoad = func() { <-done; cancel() }
	x.startObservers(ctx)
}

// waitLoad waits for the load to end, once.
func (x *execution) waitLoad(ctx context.Context) {
	if x.loadStopped || x.stopLoad == nil {
		return
	}
	x.loadStopped = true
	r, o := x.r, x.o
	x.stopLoad()
	x.readAfter(ctx, x.prev)
	r.leaderAfter(ctx, x.prev)
	o.LoadEnd = r.cfg.Now()
	r.cfg.Progress.End(o.LoadErr)
	if o.LoadErr != nil {
		r.cfg.Log.Warn("load failed", "error", o.LoadErr)
	}
}

// startObservers starts the replica observer and the health poller, each
// unless it is not wired (then the observation says why).
func (x *execution) startObservers(ctx context.Context) {
	r, o := x.r, x.o
	var stops []func()
	if r.cfg.Replicas == nil {
		o.ReplicasErr = errors.New(r.why(CapReplicas))
	} else {
		octx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			rs, err := r.cfg.Replicas.Observe(octx)
			if err != nil {
				o.ReplicasErr = fmt.Errorf("replica observer: %w", err)
				return
			}
			o.Replicas = &rs
		}()
		stops = append(stops, func() { cancel(); <-done })
	}
	if r.cfg.HealthPoll == nil {
		o.HealthWhy = r.why(CapHealthPoll)
	} else {
		hctx, cancel := context.WithCancel(ctx)
		done := make(chan []measure.Sample, 1)
		o.HealthFrom, o.HealthPolled = r.cfg.Now(), true
		go func() { done <- r.cfg.HealthPoll.Poll(hctx) }()
		stops = append(stops, func() {
			o.HealthTo = r.cfg.Now()
			cancel()
			o.Health = <-done
		})
	}
	x.observing = true
	x.stopObservers = func() {
		o.ObservedUntil = r.cfg.Now()
		for _, stop := range stops {
			stop()
		}
	}
}

// endObservers stops the observers, once, and keeps what they saw.
func (x *execution) endObservers() {
	if !x.observing {
		return
	}
	x.observing = false
	x.stopObservers()
}

// collect reads the prober's timeline and verification, once, and hands
// the record read during the run to the observation. The timeline is read
// even after an interruption (bounded by CollectTimeout), so that the
// experiments that ran keep their figures; the verification only when the
// run reached its collection step. A failed last read keeps what the reads
// during the run got (the prober's pod may be gone).
func (x *execution) collect(ctx context.Context) {
	if x.collected {
		return
	}
	x.collected = true
	r, o := x.r, x.o
	if r.cfg.Prober == nil {
		o.TimelineErr = errors.New(r.why(CapProber))
		o.VerifyWhy = r.why(CapProber)
		return
	}
	interrupted := ctx.Err() != nil || o.Reached != StepCollect
	if !interrupted {
		r.cfg.Progress.Start("Collecting the prober's timeline and verification")
	}
	err := x.readProber(ctx, !interrupted, false, r.cfg.CollectTimeout)
	tl, ok := x.plog.timeline()
	switch {
	case ok:
		o.Timeline = &tl
		if err != nil {
			o.ProberNotes = append(o.ProberNotes, "the prober's record is what was read during the run: its last read failed: "+err.Error())
		}
	case err != nil:
		o.TimelineErr = err
	default:
		o.TimelineErr = errors.Join(errors.New("the prober's timeline was never read"), x.proberErr)
	}
	o.ProberNotes = append(o.ProberNotes, x.plog.restartNotes()...)
	if interrupted {
		return // the run stopped before its collection: the verification is marked not run with the steps left
	}
	v, notes, verr := x.plog.verification()
	o.ProberNotes = append(o.ProberNotes, notes...)
	switch {
	case v != nil:
		o.Verify = v
	case x.verifyErr != nil:
		o.VerifyWhy = x.verifyErr.Error()
	case verr != nil:
		o.VerifyWhy = verr.Error()
	default:
		o.VerifyWhy = "the prober's writes were not verified"
	}
	r.cfg.Progress.End(errors.Join(o.TimelineErr, x.verifyErr))
}

// readAfter reads the prober after an experiment, before the next one
// starts: its writes so far and, after a store fault, its verification,
// so that they survive the prober's pod.
func (x *execution) readAfter(ctx context.Context, prev *faultRun) {
	if prev == nil || prev.f.NotRun != "" {
		return
	}
	_ = x.readProber(ctx, prev.f.Role.Store() != "", false, x.r.cfg.ProberReadTimeout)
}

// readProber reads the prober's writes after the last one read completely
// into the record, and with verify its verification, bounded by timeout
// even after ctx ended. At the start it only finds where the record
// starts. A prober that restarted is read from its first write held.
func (x *execution) readProber(ctx context.Context, verify, start bool, timeout time.Duration) error {
	r := x.r
	if r.cfg.Prober == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	since := x.plog.since()
	if start {
		since = math.MaxInt64
	}
	tl, err := r.cfg.Prober.Timeline(cctx, since)
	if err == nil && !start && len(x.plog.segs) > 0 && x.plog.first(tl) {
		r.cfg.Log.Warn("the prober restarted: reading its new run from the start", "run", tl.Run)
		tl, err = r.cfg.Prober.Timeline(cctx, 0)
	}
	if err != nil {
		x.proberErr = err
		r.cfg.Log.Warn("read the prober", "error", err)
		return err
	}
	x.plog.add(tl, start)
	if !verify {
		return nil
	}
	v, err := r.cfg.Prober.Verify(cctx)
	if err != nil {
		x.verifyErr = err
		r.cfg.Log.Warn("verify the prober's writes", "error", err)
		return nil
	}
	x.verifyErr = nil
	x.plog.addVerify(v, r.cfg.Now())
	return nil
}

// readProbes reads the live workloads' probes, once, bounded even after
// an interruption: they describe the stack, not the run.
func (x *execution) readProbes(ctx context.Context) {
	if x.probesRead {
		return
	}
	x.probesRead = true
	r, o := x.r, x.o
	if r.cfg.Health == nil {
		o.ProbesWhy = r.why(CapHealth)
		return
	}
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.CollectTimeout)
	defer cancel()
	p, err := r.cfg.Health.Probes(hctx)
	if err != nil {
		o.ProbesWhy = "the workloads' probes could not be read: " + err.Error()
		return
	}
	o.Probes = p
}

// sweep removes what the run may have left behind, once, bounded even
// after cancellation.
func (x *execution) sweep(ctx context.Context) error {
	r := x.r
	if r.cfg.Sweep == nil || x.swept {
		return nil
	}
	x.swept = true
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.UndoTimeout)
	defer cancel()
	removed, err := r.cfg.Sweep(sctx)
	if len(removed) > 0 {
		r.cfg.Log.Warn("removed leftovers", "objects", removed)
	}
	if err != nil {
		return fmt.Errorf("sweep leftovers: %w", err)
	}
	return nil
}
