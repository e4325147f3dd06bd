package lab

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jewelry-shop/lab/chaosmesh"
	"github.com/jewelry-shop/lab/lab/judge"
)

// faultRole is what a catalogue experiment tests, for its judgement.
func faultRole(name string) judge.Role {
	switch name {
	case chaosmesh.WebPodKill, chaosmesh.WebPodFailure:
		return judge.RoleWebPod
	case chaosmesh.PostgresPrimaryFailure, chaosmesh.PostgresPrimaryIsolation:
		return judge.RolePostgresPrimary
	case chaosmesh.RedisMasterFailure:
		return judge.RoleRedisMaster
	case chaosmesh.WebPostgresPartition:
		return judge.RolePartition
	case chaosmesh.WebCPUStress:
		return judge.RoleCPUStress
	case chaosmesh.WebMemoryStress:
		return judge.RoleMemoryStress
	case chaosmesh.NodeFailure:
		return judge.RoleNodeFailure
	}
	return ""
}

// faultTakedown is how a catalogue experiment takes a store's leader down.
func faultTakedown(name string) judge.Takedown {
	switch name {
	case chaosmesh.PostgresPrimaryFailure, chaosmesh.RedisMasterFailure:
		return judge.TakedownStop // pod-failure: the kubelet stops the containers gracefully
	case chaosmesh.PostgresPrimaryIsolation:
		return judge.TakedownIsolation
	}
	return ""
}

// newFault is the record of one planned experiment.
func (r *Runner) newFault(e chaosmesh.Experiment) *judge.Fault {
	held := r.scale(e.Duration)
	kind := e.ObjectKind()
	if kind == "" {
		kind = "node stop"
	}
	desc := fmt.Sprintf("%s, held %s", kind, held)
	if e.Duration == 0 {
		desc = kind + ", one-shot"
	}
	f := &judge.Fault{
		Name: e.Name, Title: e.Title, Target: e.Target, Requirements: e.Requirements,
		Role: faultRole(e.Name), Takedown: faultTakedown(e.Name), Held: held, Description: desc,
	}
	if e.Stress != nil {
		f.StressCPUMilli, f.StressMemoryBytes = e.Stress.CPUMilli, e.Stress.MemoryBytes
	}
	return f
}

// experiment applies one fault, confirms its injection, holds it for its
// scaled duration and removes it. The removal runs on every path, bounded
// by UndoTimeout even after ctx was cancelled; its failure is returned.
func (r *Runner) experiment(ctx context.Context, fr *faultRun) (err error) {
	e, x := fr.exp, fr.f
	hold := x.Held
	log := r.cfg.Log.With("experiment", e.Name)
	if e.Kind == chaosmesh.KindNodeFailure {
		return r.nodeFailure(ctx, fr)
	}
	if r.cfg.Chaos == nil {
		x.NotRun = r.why(CapChaos)
		return nil
	}
	stressNS, stressSel, isStress := e.StressSelector()
	if isStress {
		x.UsageBefore = r.usage(ctx, x, stressNS, stressSel)
	}
	a, undo, err := r.cfg.Chaos.Apply(ctx, e, r.cfg.RunID)
	if err != nil {
		x.Failure = fmt.Sprintf("could not be applied: %v", err)
		x.Event(r.cfg.Now(), "lab", "apply failed: "+err.Error())
		log.Warn("apply failed", "error", err)
		return nil
	}
	x.Applied, x.AppliedAt = true, r.cfg.Now()
	x.Event(x.AppliedAt, "chaos", "experiment applied")
	remove := func() error {
		if x.Undone || undo == nil {
			return nil
		}
		x.Undone = true
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.UndoTimeout)
		defer cancel()
		uerr := undo(cctx)
		x.RemovedAt = r.cfg.Now()
		if uerr != nil {
			x.Event(x.RemovedAt, "lab", "removal failed: "+uerr.Error())
			return fmt.Errorf("remove experiment %s: %w", e.Name, uerr)
		}
		x.Event(x.RemovedAt, "chaos", "experiment removed")
		return nil
	}
	defer func() { err = errors.Join(err, remove()) }()

	inj, err := r.cfg.Chaos.WaitInjected(ctx, a, r.cfg.InjectTimeout)
	if err != nil {
		x.Failure = fmt.Sprintf("injection not confirmed: %v", err)
		log.Warn("not injected", "error", err)
		return nil
	}
	x.InjectedAt = inj.At
	if x.InjectedAt.IsZero() {
		x.InjectedAt = r.cfg.Now()
	}
	how := "Chaos Mesh reports the fault injected"
	if inj.FromRecords {
		how += " (time from its records)"
	}
	if inj.FromRecords && x.InjectedAt.Before(x.AppliedAt) {
		// Chaos Mesh's records keep whole seconds: a time before the
		// experiment even existed is the truncation, not the injection.
		how = fmt.Sprintf("Chaos Mesh reports the fault injected; its records say %s, to the second, before lab applied it: the application time is taken", x.InjectedAt.UTC().Format("15:04:05"))
		x.InjectedAt = x.AppliedAt
	}
	x.Event(x.InjectedAt, "chaos", how)
	end := time.Now().Add(hold)
	if isStress && hold > 0 && sleepUntil(ctx, time.Now().Add(hold/2)) {
		x.UsageDuring = r.usage(ctx, x, stressNS, stressSel)
	}
	if hold > 0 && !sleepUntil(ctx, end) {
		x.Event(r.cfg.Now(), "lab", "run interrupted while the fault was held")
	}
	return remove()
}

// nodeFailure stops the experiment's node for its hold and starts it again.
func (r *Runner) nodeFailure(ctx context.Context, fr *faultRun) error {
	e, x := fr.exp, fr.f
	if r.cfg.Nodes == nil {
		x.NotRun = r.why(CapNodes)
		return nil
	}
	nf, err := r.cfg.Nodes.FailNode(ctx, e, x.Held)
	x.Node, x.Applied = nf, true
	if nf != nil && !nf.StoppedAt.IsZero() {
		x.InjectedAt, x.RemovedAt, x.Undone = nf.StoppedAt, nf.StartedAt, !nf.StartedAt.IsZero()
		x.Event(nf.StoppedAt, "lab", "node "+nf.Node+" stopped")
		if !nf.StartedAt.IsZero() {
			x.Event(nf.StartedAt, "lab", "node "+nf.Node+" started again")
		}
	} else {
		x.Failure = "the node was not stopped"
	}
	if err != nil {
		x.Failure = strings.TrimSpace(x.Failure + " " + err.Error())
		return fmt.Errorf("experiment %s: %w", e.Name, err)
	}
	return nil
}

// usage reads the stressed pods' usage, or records why it could not.
func (r *Runner) usage(ctx context.Context, x *judge.Fault, namespace string, selector map[string]string) *judge.Usage {
	if r.cfg.Metrics == nil {
		x.UsageWhy = r.why(CapMetrics)
		return nil
	}
	u, err := r.cfg.Metrics.Usage(ctx, namespace, selector)
	if err != nil {
		x.UsageWhy = "the pods' usage could not be read from the metrics API: " + err.Error()
		return nil
	}
	x.Event(r.cfg.Now(), "kubernetes", fmt.Sprintf("usage of the %d stressed pods: %dm CPU, %d MiB memory", u.Pods, u.CPUMilli, u.MemoryBytes>>20))
	return &u
}

// leaderBefore asks who leads before the experiment starts.
func (r *Runner) leaderBefore(ctx context.Context, fr *faultRun) {
	x := fr.f
	if r.cfg.Leaders == nil {
		x.LeaderWhy = r.why(CapLeaders)
		return
	}
	if ctx.Err() != nil {
		return
	}
	l, err := r.cfg.Leaders.Leader(ctx, fr.exp.Name)
	if err != nil {
		x.LeaderWhy = "the leader before the fault could not be read: " + err.Error()
		return
	}
	x.LeaderBefore = l
	if l != "" {
		x.Event(r.cfg.Now(), "lab", "leader before the fault: "+l)
	}
}

// leaderAfter asks again once the experiment had its time to settle.
func (r *Runner) leaderAfter(ctx context.Context, fr *faultRun) {
	if fr == nil || fr.f.LeaderBefore == "" || ctx.Err() != nil {
		return
	}
	x := fr.f
	l, err := r.cfg.Leaders.Leader(ctx, fr.exp.Name)
	if err != nil {
		x.LeaderWhy = "the leader after the fault could not be read: " + err.Error()
		return
	}
	x.LeaderAfter = l
	x.Event(r.cfg.Now(), "lab", "leader after the fault: "+l)
}
