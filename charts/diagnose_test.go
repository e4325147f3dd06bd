package charts

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// event returns an event about a pod in namespace shop.
func event(podName, typ, reason, message string, age time.Duration) *corev1.Event {
	at := metav1.NewTime(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC).Add(-age))
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: podName + "." + reason + "." + at.Format("150405"), Namespace: "shop"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: podName, Namespace: "shop"},
		Type:           typ, Reason: reason, Message: message, LastTimestamp: at,
	}
}

// TestExplain checks the reason given for each kind of pod that is not
// ready.
func TestExplain(t *testing.T) {
	t.Parallel()
	unschedulable := pod("pending", func(p *corev1.Pod) {
		p.Spec.NodeName = ""
		p.Status.Phase = corev1.PodPending
		p.Status.Conditions = []corev1.PodCondition{{
			Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable",
			Message: "0/3 nodes are available: 3 Insufficient cpu.",
		}}
	})
	crashing := pod("crashing", withWaiting("web", "shop:1", "CrashLoopBackOff", "back-off 40s restarting failed container"))
	config := pod("config", withWaiting("web", "shop:1", "CreateContainerConfigError", `secret "shop.db.credentials" not found`))
	unhealthy := pod("unhealthy", func(p *corev1.Pod) {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "web", Ready: false, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	})
	initFailed := pod("init", func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodPending
		p.Status.InitContainerStatuses = []corev1.ContainerStatus{{
			Name:  "config",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}},
		}}
	})
	creating := pod("creating", withWaiting("web", "shop:1", "ContainerCreating", ""))
	terminating := pod("terminating", func(p *corev1.Pod) {
		now := metav1.Now()
		p.DeletionTimestamp = &now
	})
	done := pod("done", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded })
	objs := []runtime.Object{
		unschedulable, crashing, config, unhealthy, initFailed, creating, terminating, done, pod("ready", withReady()),
		event("pending", corev1.EventTypeWarning, "FailedScheduling", "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available.", time.Second),
		event("unhealthy", corev1.EventTypeWarning, "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503", time.Second),
		event("unhealthy", corev1.EventTypeWarning, "Unhealthy", "Readiness probe failed: old", time.Minute),
		event("creating", corev1.EventTypeWarning, "FailedMount", `MountVolume.SetUp failed for volume "config": configmap "x" not found`, time.Second),
	}
	in, _ := memoryInstaller(t, nil, Options{}, objs...)
	got, err := in.explain(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	want := []PodProblem{
		{Pod: "config", Node: "node-a", Reason: "ContainerConfig", Detail: `container web cannot be created: secret "shop.db.credentials" not found`},
		{Pod: "crashing", Node: "node-a", Reason: "CrashLoop", Detail: "container web keeps crashing (4 restarts), last exit code 2 (Error)", Logs: "fake logs"},
		{Pod: "creating", Node: "node-a", Reason: "Pending", Detail: `ContainerCreating; last warning: FailedMount: MountVolume.SetUp failed for volume "config": configmap "x" not found`},
		{Pod: "init", Node: "node-a", Reason: "CrashLoop", Detail: "container config exited with code 1 (Error)", Logs: "fake logs"},
		{Pod: "pending", Reason: "Unschedulable", Detail: "the scheduler cannot place it: 0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available."},
		{Pod: "terminating", Node: "node-a", Reason: "Terminating", Detail: "the pod is being deleted"},
		{Pod: "unhealthy", Node: "node-a", Reason: "NotReady", Detail: "running, but container web is not ready: Readiness probe failed: HTTP probe failed with statuscode: 503"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("explain (-want +got):\n%s", diff)
	}
}
