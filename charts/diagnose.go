package charts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

// NotReadyError says that a release's workloads did not become ready in
// time, and why, pod by pod.
type NotReadyError struct {
	Release   string
	Namespace string
	Timeout   time.Duration
	// Pods are the pods that are not ready, with the reason.
	Pods []PodProblem
	// Err is Helm's error.
	Err error
}

// PodProblem is why one pod is not ready.
type PodProblem struct {
	Pod  string
	Node string
	// Reason is short and stable: Unschedulable, ImagePull, CrashLoop,
	// ContainerConfig, NotReady, Pending, Failed, Terminating.
	Reason string
	// Detail says what happened, in the words of the scheduler, the
	// kubelet or the probe.
	Detail string
	// Logs are the last lines the crashing container wrote.
	Logs string
}

// podLogLines is how many log lines of a crashing container are shown.
const podLogLines = 10

func (e *NotReadyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "release %s in namespace %s is not ready after %s", e.Release, e.Namespace, e.Timeout)
	if len(e.Pods) == 0 {
		fmt.Fprintf(&b, " (%v); every pod is ready, so a Service, PersistentVolumeClaim or other resource is waited for: see `kubectl -n %s get all,pvc`", e.Err, e.Namespace)
		return b.String()
	}
	b.WriteString(":")
	for _, p := range e.Pods {
		fmt.Fprintf(&b, "\n  pod %s", p.Pod)
		if p.Node != "" {
			fmt.Fprintf(&b, " on %s", p.Node)
		}
		fmt.Fprintf(&b, ": %s: %s", p.Reason, p.Detail)
		if p.Logs != "" {
			fmt.Fprintf(&b, "\n    last log lines:")
			for line := range strings.Lines(p.Logs) {
				fmt.Fprintf(&b, "\n      %s", strings.TrimRight(line, "\n"))
			}
		}
	}
	fmt.Fprintf(&b, "\n  more: kubectl -n %s describe pods", e.Namespace)
	return b.String()
}

func (e *NotReadyError) Unwrap() error { return e.Err }

// notReady builds the NotReadyError of a release whose wait timed out.
func (in *Installer) notReady(ctx context.Context, rel Release, err error) error {
	// The diagnosis gets its own time: ctx may be nearly used up.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	problems, derr := in.explain(dctx, rel.Namespace)
	nre := &NotReadyError{Release: rel.Name, Namespace: rel.Namespace, Timeout: timeout(rel), Pods: problems, Err: err}
	if derr != nil {
		return errors.Join(nre, fmt.Errorf("find out why: %w", derr))
	}
	return nre
}

// explain lists the pods of a namespace that are not ready, and why.
func (in *Installer) explain(ctx context.Context, namespace string) ([]PodProblem, error) {
	pods, err := in.clientset.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list the pods of namespace %s: %w", namespace, err)
	}
	var problems []PodProblem
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.Status.Phase == corev1.PodSucceeded || podReady(pod) {
			continue
		}
		problems = append(problems, in.explainPod(ctx, pod))
	}
	slices.SortFunc(problems, func(a, b PodProblem) int { return strings.Compare(a.Pod, b.Pod) })
	return problems, nil
}

// explainPod says why one pod is not ready.
func (in *Installer) explainPod(ctx context.Context, pod *corev1.Pod) PodProblem {
	p := PodProblem{Pod: pod.Name, Node: pod.Spec.NodeName}
	if pod.DeletionTimestamp != nil {
		p.Reason, p.Detail = "Terminating", "the pod is being deleted"
		return p
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			p.Reason = "Unschedulable"
			p.Detail = "the scheduler cannot place it: " + orDefault(c.Message, c.Reason)
			if ev := in.lastEvent(ctx, pod, "FailedScheduling"); ev != "" {
				p.Detail = "the scheduler cannot place it: " + ev
			}
			return p
		}
	}
	statuses := append(slices.Clone(pod.Status.InitContainerStatuses), pod.Status.ContainerStatuses...)
	for _, cs := range statuses {
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable":
				p.Reason = "ImagePull"
				p.Detail = fmt.Sprintf("container %s cannot get image %s (%s): %s", cs.Name, cs.Image, w.Reason, orDefault(w.Message, "no message"))
				return p
			case "CrashLoopBackOff":
				p.Reason = "CrashLoop"
				p.Detail = fmt.Sprintf("container %s keeps crashing (%d restarts)%s", cs.Name, cs.RestartCount, lastExit(cs))
				p.Logs = in.logs(ctx, pod, cs.Name, true)
				return p
			case "CreateContainerConfigError", "CreateContainerError", "RunContainerError":
				p.Reason = "ContainerConfig"
				p.Detail = fmt.Sprintf("container %s cannot be created: %s", cs.Name, orDefault(w.Message, w.Reason))
				return p
			}
		}
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			p.Reason = "CrashLoop"
			p.Detail = fmt.Sprintf("container %s exited with code %d (%s)", cs.Name, t.ExitCode, orDefault(t.Reason, "Error"))
			p.Logs = in.logs(ctx, pod, cs.Name, false)
			return p
		}
	}
	switch pod.Status.Phase {
	case corev1.PodFailed:
		p.Reason, p.Detail = "Failed", orDefault(pod.Status.Message, pod.Status.Reason)
		return p
	case corev1.PodPending:
		p.Reason, p.Detail = "Pending", shortPodState(pod)
		if ev := in.lastWarning(ctx, pod); ev != "" {
			p.Detail += "; last warning: " + ev
		}
		return p
	}
	p.Reason = "NotReady"
	var notReady []string
	for _, cs := range pod.Status.ContainerStatuses {
		if !cs.Ready {
			notReady = append(notReady, cs.Name)
		}
	}
	p.Detail = "running, but containers " + strings.Join(notReady, ", ") + " are not ready"
	if len(notReady) == 1 {
		p.Detail = "running, but container " + notReady[0] + " is not ready"
	}
	if ev := in.lastEvent(ctx, pod, "Unhealthy"); ev != "" {
		p.Detail += ": " + ev
	}
	return p
}

// lastExit describes a container's last termination.
func lastExit(cs corev1.ContainerStatus) string {
	t := cs.LastTerminationState.Terminated
	if t == nil {
		return ""
	}
	return fmt.Sprintf(", last exit code %d (%s)", t.ExitCode, orDefault(t.Reason, "Error"))
}

// logs returns the last lines of a container's log (of its previous run
// when previous is set); an unreadable log is described instead.
func (in *Installer) logs(ctx context.Context, pod *corev1.Pod, container string, previous bool) string {
	lines := int64(podLogLines)
	rc, err := in.clientset.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{
		Container: container, Previous: previous, TailLines: &lines,
	}).Stream(ctx)
	if err != nil {
		return fmt.Sprintf("(cannot read the log: %v)", err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 16<<10))
	if err != nil {
		return fmt.Sprintf("(cannot read the log: %v)", err)
	}
	return strings.TrimRight(string(data), "\n")
}

// lastEvent returns the message of the pod's newest event with reason.
func (in *Installer) lastEvent(ctx context.Context, pod *corev1.Pod, reason string) string {
	return in.newestEvent(ctx, pod, func(e *corev1.Event) bool { return e.Reason == reason })
}

// lastWarning returns the newest warning about the pod, with its reason.
func (in *Installer) lastWarning(ctx context.Context, pod *corev1.Pod) string {
	var reason string
	msg := in.newestEvent(ctx, pod, func(e *corev1.Event) bool {
		if e.Type == corev1.EventTypeWarning {
			reason = e.Reason
			return true
		}
		return false
	})
	if msg == "" {
		return ""
	}
	return reason + ": " + msg
}

// newestEvent returns the message of the newest event about the pod that
// match accepts.
func (in *Installer) newestEvent(ctx context.Context, pod *corev1.Pod, match func(*corev1.Event) bool) string {
	sel := fields.Set{"involvedObject.name": pod.Name, "involvedObject.kind": "Pod"}.AsSelector().String()
	events, err := in.clientset.CoreV1().Events(pod.Namespace).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		in.log.DebugContext(ctx, "list events", "pod", pod.Name, "err", err)
		return ""
	}
	items := events.Items
	slices.SortFunc(items, func(a, b corev1.Event) int { return eventTime(b).Compare(eventTime(a)) })
	for i := range items {
		// The fake clientset ignores field selectors; check again.
		if items[i].InvolvedObject.Name != pod.Name {
			continue
		}
		if m := &items[i]; match(m) {
			return strings.TrimSpace(m.Message)
		}
	}
	return ""
}

// eventTime is when an event last happened.
func eventTime(e corev1.Event) time.Time {
	for _, t := range []time.Time{e.LastTimestamp.Time, e.EventTime.Time, e.FirstTimestamp.Time, e.CreationTimestamp.Time} {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

// podReady reports the pod's Ready condition.
func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// shortPodState is a pod's state in a word or two, like kubectl's STATUS.
func shortPodState(pod *corev1.Pod) string {
	statuses := append(slices.Clone(pod.Status.InitContainerStatuses), pod.Status.ContainerStatuses...)
	for _, cs := range statuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			return w.Reason
		}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return orDefault(c.Reason, "Unschedulable")
		}
	}
	if pod.Status.Phase == corev1.PodRunning {
		return "Running, not ready"
	}
	return orDefault(string(pod.Status.Phase), "Pending")
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
