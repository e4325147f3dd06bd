package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/jewelry-shop/lab/chaosmesh"
	"github.com/jewelry-shop/lab/lab/judge"
)

// NodeStopper stops and starts one node of the cluster, as a machine failure
// and its repair would; *cluster.Manager does it to k3d node containers.
type NodeStopper interface {
	StopNode(ctx context.Context, cluster, node string) error
	StartNode(ctx context.Context, cluster, node string) error
}

// NodeFailureOptions set the experiment's timing.
type NodeFailureOptions struct {
	Cluster   string
	Node      string
	Namespace string
	// Down is how long the node stays stopped.
	Down time.Duration
	// ReadyTimeout bounds the wait for the node to be Ready after the start.
	ReadyTimeout time.Duration
	// Poll is the observation interval.
	Poll time.Duration
	Log  *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// RunNodeFailure stops a node, keeps it down for opts.Down while it watches
// the node's condition and the namespace's pods through the API, starts it
// again and waits until it is Ready. The node is started again on every path,
// also when ctx is cancelled, so no node is left stopped.
func RunNodeFailure(ctx context.Context, stopper NodeStopper, kube kubernetes.Interface, opts NodeFailureOptions) (res *judge.NodeFailure, err error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	res = &judge.NodeFailure{Node: opts.Node}
	before, err := kube.CoreV1().Pods(opts.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return res, fmt.Errorf("list pods of namespace %s: %w", opts.Namespace, err)
	}
	w := &podWatch{moves: map[types.UID]*judge.PodMove{}, owners: map[types.UID]string{}, seen: map[types.UID]bool{}}
	for _, p := range before.Items {
		// A pod that exists before the stop is never a replacement.
		w.seen[p.UID] = true
		if p.DeletionTimestamp != nil || p.Spec.NodeName != opts.Node {
			continue
		}
		m := &judge.PodMove{Pod: p.Name}
		if ref := metav1.GetControllerOf(&p); ref != nil {
			m.Owner = ref.Kind + "/" + ref.Name
			w.owners[p.UID] = string(ref.UID)
		}
		w.moves[p.UID] = m
		w.order = append(w.order, p.UID)
	}

	if err := stopper.StopNode(ctx, opts.Cluster, opts.Node); err != nil {
		return res, fmt.Errorf("stop node %s: %w", opts.Node, err)
	}
	res.StoppedAt = now()
	log.Info("node stopped", "node", opts.Node, "pods", len(w.order))
	started := false
	defer func() {
		if started {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if serr := stopper.StartNode(cctx, opts.Cluster, opts.Node); serr != nil {
			err = errors.Join(err, fmt.Errorf("start node %s again (start it by hand: docker start %s): %w", opts.Node, opts.Node, serr))
		}
	}()

	observe := func() {
		t := now()
		if n, err := kube.CoreV1().Nodes().Get(ctx, opts.Node, metav1.GetOptions{}); err == nil {
			ready := nodeIsReady(n)
			if !ready && res.NotReadyAt.IsZero() && res.StartedAt.IsZero() {
				res.NotReadyAt = t
			}
			if ready && !res.StartedAt.IsZero() && res.ReadyAgainAt.IsZero() {
				res.ReadyAgainAt = t
			}
		}
		if pods, err := kube.CoreV1().Pods(opts.Namespace).List(ctx, metav1.ListOptions{}); err == nil {
			w.observe(pods.Items, opts.Node, t)
		}
	}

	poll := opts.Poll
	if poll <= 0 {
		poll = time.Second
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	deadline := res.StoppedAt.Add(opts.Down)
	for now().Before(deadline) {
		observe()
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-t.C:
		}
	}

	started = true
	if err := stopper.StartNode(ctx, opts.Cluster, opts.Node); err != nil {
		return res, fmt.Errorf("start node %s: %w", opts.Node, err)
	}
	res.StartedAt = now()
	log.Info("node started", "node", opts.Node)
	readyBy := res.StartedAt.Add(opts.ReadyTimeout)
	for res.ReadyAgainAt.IsZero() && now().Before(readyBy) {
		observe()
		if !res.ReadyAgainAt.IsZero() {
			break
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-t.C:
		}
	}
	res.Pods = w.result()
	if res.ReadyAgainAt.IsZero() {
		return res, fmt.Errorf("node %s not Ready within %s after it was started", opts.Node, opts.ReadyTimeout)
	}
	return res, nil
}

// podWatch follows the pods of a failed node and their replacements.
type podWatch struct {
	order  []types.UID
	moves  map[types.UID]*judge.PodMove
	owners map[types.UID]string // pod UID -> controller UID
	seen   map[types.UID]bool   // pods that cannot be replacements: present before the stop, or already given to a move
}

func (w *podWatch) observe(pods []corev1.Pod, node string, t time.Time) {
	present := map[types.UID]corev1.Pod{}
	for _, p := range pods {
		present[p.UID] = p
	}
	for _, uid := range w.order {
		m := w.moves[uid]
		if p, ok := present[uid]; (!ok || p.DeletionTimestamp != nil) && m.EvictedAt.IsZero() {
			m.EvictedAt = t
		}
	}
	// Give each new Ready pod of the same controller, on another node, to
	// the first move of that controller still waiting for one.
	sort.Slice(pods, func(i, j int) bool { return pods[i].CreationTimestamp.Before(&pods[j].CreationTimestamp) })
	for _, p := range pods {
		if w.seen[p.UID] || w.moves[p.UID] != nil || p.Spec.NodeName == node || p.DeletionTimestamp != nil || !podIsReady(&p) {
			continue
		}
		ref := metav1.GetControllerOf(&p)
		if ref == nil {
			continue
		}
		for _, uid := range w.order {
			m := w.moves[uid]
			if m.Replacement == "" && w.owners[uid] == string(ref.UID) {
				m.Replacement, m.ReplacementNode, m.ReadyAt = p.Name, p.Spec.NodeName, t
				w.seen[p.UID] = true
				break
			}
		}
	}
}

func (w *podWatch) result() []judge.PodMove {
	out := make([]judge.PodMove, 0, len(w.order))
	for _, uid := range w.order {
		out = append(out, *w.moves[uid])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pod < out[j].Pod })
	return out
}

func nodeIsReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podIsReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// NodeFailer runs the node-failure experiment on a k3d cluster: RunNodeFailure
// on the experiment's node, watching a namespace through the API.
type NodeFailer struct {
	Stopper   NodeStopper
	Kube      kubernetes.Interface
	Cluster   string
	Namespace string
	// ReadyTimeout and Poll are passed on; zero takes 2m and 1s.
	ReadyTimeout, Poll time.Duration
	Now                func() time.Time
	Log                *slog.Logger
}

// FailNode stops exp.Node for down and starts it again.
func (f NodeFailer) FailNode(ctx context.Context, exp chaosmesh.Experiment, down time.Duration) (*judge.NodeFailure, error) {
	if exp.Node == "" {
		return nil, fmt.Errorf("experiment %s: no node chosen", exp.Name)
	}
	rt, poll := f.ReadyTimeout, f.Poll
	if rt == 0 {
		rt = 2 * time.Minute
	}
	if poll == 0 {
		poll = time.Second
	}
	return RunNodeFailure(ctx, f.Stopper, f.Kube, NodeFailureOptions{
		Cluster: f.Cluster, Node: exp.Node, Namespace: f.Namespace, Down: down,
		ReadyTimeout: rt, Poll: poll, Log: f.Log, Now: f.Now,
	})
}
