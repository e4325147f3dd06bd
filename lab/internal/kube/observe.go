package kube

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/jewelry-shop/lab/lab/judge"
	"github.com/jewelry-shop/lab/lab/measure"
)

// ReplicaObserver watches the web workload and its autoscaler: it polls a
// Deployment and a HorizontalPodAutoscaler through the Kubernetes API. Each
// timeline it returns lists changes only: a count holds until the next
// point.
type ReplicaObserver struct {
	Kube       kubernetes.Interface
	Namespace  string
	Deployment string
	// HPA is the autoscaler's name; empty when the stack has none.
	HPA string
	// Poll is the interval (default 1s); Now the clock (default time.Now).
	Poll time.Duration
	Now  func() time.Time
}

// Observe polls until ctx ends. A failed poll is skipped; an observation
// that never succeeded returns the last error.
func (k ReplicaObserver) Observe(ctx context.Context) (judge.Replicas, error) {
	now, poll := k.Now, k.Poll
	if now == nil {
		now = time.Now
	}
	if poll <= 0 {
		poll = time.Second
	}
	r := judge.Replicas{Workload: "Deployment/" + k.Deployment}
	if k.HPA != "" {
		r.HPA = k.Namespace + "/" + k.HPA
	} else {
		r.HPAMissing = "no HPA configured for the observer"
	}
	add := func(points []measure.ReplicaPoint, at time.Time, n int32) []measure.ReplicaPoint {
		if len(points) > 0 && points[len(points)-1].Replicas == n {
			return points
		}
		return append(points, measure.ReplicaPoint{At: at, Replicas: n})
	}
	var lastErr error
	seen := false
	pods := map[string]int{} // index in r.Pods
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		d, err := k.Kube.AppsV1().Deployments(k.Namespace).Get(ctx, k.Deployment, metav1.GetOptions{})
		at := now()
		switch {
		case err == nil:
			seen = true
			r.Ready = add(r.Ready, at, d.Status.ReadyReplicas)
			want := int32(1)
			if d.Spec.Replicas != nil {
				want = *d.Spec.Replicas
			}
			r.Desired = add(r.Desired, at, want)
			if err := k.observePods(ctx, d.Spec.Selector, at, &r, pods); err != nil && ctx.Err() == nil {
				lastErr = err
			}
		case ctx.Err() == nil:
			lastErr = fmt.Errorf("read deployment %s/%s: %w", k.Namespace, k.Deployment, err)
		}
		if k.HPA != "" {
			h, err := k.Kube.AutoscalingV2().HorizontalPodAutoscalers(k.Namespace).Get(ctx, k.HPA, metav1.GetOptions{})
			switch {
			case err == nil:
				r.HPAReplicas = add(r.HPAReplicas, now(), h.Status.CurrentReplicas)
				r.Min, r.Max = 1, h.Spec.MaxReplicas
				if h.Spec.MinReplicas != nil {
					r.Min = *h.Spec.MinReplicas
				}
			case apierrors.IsNotFound(err):
				r.HPAMissing = fmt.Sprintf("HPA %s not found", r.HPA)
			case ctx.Err() == nil:
				r.HPAMissing = fmt.Sprintf("read HPA %s: %v", r.HPA, err)
			}
		}
		select {
		case <-ctx.Done():
			if !seen {
				return r, errors.Join(errors.New("the workload was never observed"), lastErr)
			}
			if len(r.HPAReplicas) > 0 {
				r.HPAMissing = ""
			}
			return r, nil
		case <-t.C:
		}
	}
}

// observePods records the workload's pods: when each was created and when
// it was first seen Ready.
func (k ReplicaObserver) observePods(ctx context.Context, sel *metav1.LabelSelector, at time.Time, r *judge.Replicas, index map[string]int) error {
	if sel == nil {
		return nil
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return fmt.Errorf("read the selector of deployment %s/%s: %w", k.Namespace, k.Deployment, err)
	}
	list, err := k.Kube.CoreV1().Pods(k.Namespace).List(ctx, metav1.ListOptions{LabelSelector: s.String()})
	if err != nil {
		return fmt.Errorf("list the pods of deployment %s/%s: %w", k.Namespace, k.Deployment, err)
	}
	for _, p := range list.Items {
		i, ok := index[p.Name]
		if !ok {
			i = len(r.Pods)
			index[p.Name] = i
			r.Pods = append(r.Pods, judge.PodSeen{Name: p.Name, Created: p.CreationTimestamp.Time})
		}
		if r.Pods[i].ReadyAt.IsZero() && p.DeletionTimestamp == nil && podIsReady(&p) {
			r.Pods[i].ReadyAt = at
		}
	}
	return nil
}
