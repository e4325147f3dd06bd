// Package judge turns what a validation run observed into its report: the
// figures of every fault, the requirement matrix with typed values, the
// availability and load summaries. It is a pure function of an Observation
// and the profile's Criteria: it starts nothing, waits for nothing and
// reaches neither Kubernetes nor Chaos Mesh, so that every requirement's
// judgement is tested on synthetic observations.
package judge

import (
	"time"

	"github.com/jewelry-shop/lab/lab/measure"
	"github.com/jewelry-shop/lab/load"
	"github.com/jewelry-shop/lab/reports"
	"github.com/jewelry-shop/lab/shop/probeapi"
)

// Observation is everything one validation run saw, on the runner's clock.
// The runner fills it step by step; a figure it could not observe is left
// empty with the reason beside it.
type Observation struct {
	// Title, Profile, Seed and Environment go into the report as they are.
	Title       string
	Profile     string
	Seed        int64
	Environment map[string]string

	Started, Finished time.Time
	// Reached is the last step the run started; Stopped says why the run
	// stopped early, nil if it completed.
	Reached string
	Stopped error
	// NotRun lists the steps the run did not do, and why.
	NotRun []reports.Skipped
	// Sustain is how long successes must last for a recovery.
	Sustain time.Duration

	// LoadRan is set once the load started; Load is its result, LoadErr
	// why there is none.
	LoadRan            bool
	LoadStart, LoadEnd time.Time
	Load               *load.Result
	LoadErr            error

	// Timeline is the prober's record, every write included; TimelineErr
	// says why there is none. Verify is its check of the acknowledged
	// writes; VerifyWhy says why there is none.
	Timeline    *probeapi.Timeline
	TimelineErr error
	Verify      *probeapi.Verification
	VerifyWhy   string
	// ProberNotes say what the reader of the figures should know about the
	// prober's record (it restarted, a read failed).
	ProberNotes []string

	// Probes are the live workloads' probes; ProbesWhy says why they were
	// not read.
	Probes    []reports.WorkloadProbes
	ProbesWhy string
	// Health are the polls of the health endpoint between HealthFrom and
	// HealthTo; HealthWhy says why it was not polled.
	Health               []measure.Sample
	HealthFrom, HealthTo time.Time
	HealthPolled         bool
	HealthWhy            string

	ScaleDownWatched bool
	// Replicas is what the replica observer saw until ObservedUntil;
	// ReplicasErr says why there is nothing.
	Replicas      *Replicas
	ReplicasErr   error
	ObservedUntil time.Time

	// Faults are the plan's experiments, in plan order, with what happened
	// to each.
	Faults []*Fault

	// Settings are the configuration values the faults' figures depend
	// on, as installed; nil when not known, SettingsWhy says why.
	Settings    *Settings
	SettingsWhy string
}

// Settings are the configuration values that the experiments' figures
// depend on: the chart's rendered values and the cluster's arguments, with
// the names to change them by. A zero value is not known and not stated.
type Settings struct {
	// Source says where the values come from.
	Source string
	// Patroni's timing (postgresql.patroni.*).
	PatroniTTL, PatroniLoopWait, PatroniRetryTimeout time.Duration
	PatroniSynchronousMode                           bool
	// Sentinel's timing (redis.sentinel.*).
	SentinelDownAfter, SentinelFailoverTimeout time.Duration
	// NodeMonitorGracePeriod is the controller manager's
	// node-monitor-grace-period (cluster.serverArgs).
	NodeMonitorGracePeriod time.Duration
	// NodeFailureToleration is how long the web pods stay bound to a
	// NotReady or unreachable node (nodeFailureTolerationSeconds).
	NodeFailureToleration time.Duration
	// The web container's limits (web.resources.limits).
	WebCPULimitMilli, WebMemoryLimitBytes int64
}

// Takedown is how a store fault takes its leader down, which decides the
// paths a failover can take.
type Takedown string

// The takedowns of the catalogue's store faults.
const (
	// TakedownStop stops the leader gracefully (SIGTERM, then the grace
	// period): Patroni releases the leader key on the way down, so a
	// replica takes over at once (a switchover, ttl not exercised); Redis
	// hands nothing over, Sentinel waits for down-after-milliseconds.
	TakedownStop Takedown = "stop"
	// TakedownIsolation cuts the leader off the network while it runs:
	// nothing is released, Patroni's leader key must expire (ttl) before a
	// replica can take over.
	TakedownIsolation Takedown = "isolation"
)

// Role is what a fault tests, which decides how it is judged.
type Role string

// The roles of the catalogue's experiments.
const (
	RoleWebPod          Role = "web pod"            // R27: a web pod killed or failed
	RolePostgresPrimary Role = "PostgreSQL primary" // R26, R29: its failover, measured by the prober
	RoleRedisMaster     Role = "Redis master"       // R26, R30: its failover, measured by the prober
	RolePartition       Role = "partition"          // R32: web ↔ PostgreSQL
	RoleCPUStress       Role = "CPU stress"         // R34
	RoleMemoryStress    Role = "memory stress"      // R34
	RoleNodeFailure     Role = "node failure"       // R28
)

// Store is the prober's store whose writes a fault of this role disturbs;
// empty when the load generator's requests are the evidence.
func (r Role) Store() string {
	switch r {
	case RolePostgresPrimary:
		return probeapi.StorePostgres
	case RoleRedisMaster:
		return probeapi.StoreRedis
	}
	return ""
}

// Fault is one experiment of the plan and what happened to it.
type Fault struct {
	Name, Title, Target string
	Requirements        []string
	Role                Role
	// Held is how long the fault was to be held (zero for a one-shot kill);
	// Description says how it is injected, e.g. "PodChaos, held 6s".
	Held        time.Duration
	Description string

	// NotRun says why the experiment did not run; empty if it ran.
	// Failure says why one that ran has no injection.
	NotRun, Failure                  string
	AppliedAt, InjectedAt, RemovedAt time.Time
	Applied, Undone                  bool
	Node                             *NodeFailure
	Events                           []reports.Event
	// LeaderBefore and LeaderAfter are the primary or master before the
	// fault and once it settled; LeaderWhy says why one is missing.
	// Takedown is how a store fault takes the leader down.
	LeaderBefore, LeaderAfter, LeaderWhy string
	Takedown                             Takedown
	// UsageBefore and UsageDuring are the stressed pods' usage; UsageWhy
	// says why one is missing.
	UsageBefore, UsageDuring *Usage
	UsageWhy                 string
	// StressCPUMilli and StressMemoryBytes are what a stress adds to each
	// stressed container; zero when not known or not a stress.
	StressCPUMilli, StressMemoryBytes int64
}

// Event adds an event to the fault's timeline.
func (f *Fault) Event(at time.Time, source, what string) {
	f.Events = append(f.Events, reports.Event{At: at.UTC(), Source: source, What: what})
}

// NodeFailure is what a node stop did: when the node stopped and came back
// and what became of the pods that ran on it.
type NodeFailure struct {
	Node      string
	StoppedAt time.Time
	// NotReadyAt is when the API first showed the node not Ready; zero if it
	// never did while the node was down.
	NotReadyAt time.Time
	StartedAt  time.Time
	// ReadyAgainAt is when the node was Ready again after the start; zero if
	// it was not within the wait.
	ReadyAgainAt time.Time
	// Pods are the pods of the namespace that ran on the node when it stopped.
	Pods []PodMove
}

// PodMove follows one pod of the failed node.
type PodMove struct {
	Pod   string
	Owner string // kind/name of its controller, empty for a bare pod
	// EvictedAt is when the pod was first seen deleted or marked for deletion.
	EvictedAt time.Time
	// Replacement is a pod of the same controller, created after the stop,
	// Ready on another node at ReadyAt; empty when none was.
	Replacement     string
	ReplacementNode string
	ReadyAt         time.Time
}

// Rescheduled reports whether the pod runs again elsewhere.
func (p PodMove) Rescheduled() bool { return p.Replacement != "" }

// Replicas is what the replica observer saw of the web workload and its
// autoscaler.
type Replicas struct {
	// Workload names the watched workload, e.g. "Deployment/web".
	Workload string
	// Ready is its Ready replicas, Desired its wanted replicas.
	Ready, Desired []measure.ReplicaPoint
	// HPA names the autoscaler ("namespace/name"); empty when there is
	// none. HPAReplicas is its current replicas; Min and Max its bounds.
	HPA         string
	HPAReplicas []measure.ReplicaPoint
	Min, Max    int32
	// HPAMissing says why the autoscaler was not observed.
	HPAMissing string
	// Pods are the workload's pods the observer saw, in the order it first
	// saw them: what the Ready count cannot show, such as a killed pod's
	// replacement that is Ready before the count was read again.
	Pods []PodSeen
}

// PodSeen is one pod of the watched workload as the observer saw it.
type PodSeen struct {
	Name string
	// Created is the pod's creation time (to the second, as the API
	// stores it); ReadyAt is when the observer first saw it Ready, zero if
	// it never did.
	Created, ReadyAt time.Time
}

// Usage is the resource usage of some pods, from the metrics API: summed,
// and per pod with the pod's limits.
type Usage struct {
	CPUMilli    int64
	MemoryBytes int64
	Pods        int
	PerPod      []PodUsage
}

// PodUsage is one pod's usage, summed over its containers, and its limits
// (the sum of its containers' limits; zero when a container has none).
type PodUsage struct {
	Pod                             string
	CPUMilli, MemoryBytes           int64
	CPULimitMilli, MemoryLimitBytes int64
}

// Least rises a stress must show per pod when its size is not known.
const (
	leastCPURiseMilli   = 50
	leastMemoryRiseByte = 32 << 20
)

// StressCheck is what the usage of the same pods before and during a stress
// says about it. Pods that appeared between the reads (an HPA scale-out)
// or went away are left out: new pods are not stressed, and their usage in
// a sum would pass for a stress.
type StressCheck struct {
	// Common are the pods read before and during; Before and During their
	// summed usage (CPU in milli, memory in bytes).
	Common         []string
	Before, During int64
	// Rose are the common pods whose usage rose by at least Need; AtLimit
	// those that were too close to their limit before for that rise to
	// show; Flat the rest.
	Rose, AtLimit, Flat []string
	Need                int64
}

// CheckStress compares each pod's usage before and during a stress that
// adds perPod (CPU milli or memory bytes; zero when not known) to each: a
// pod shows it when its usage rose by half of perPod, unless its limit left
// less room than that.
func CheckStress(cpu bool, before, during Usage, perPod int64) StressCheck {
	c := StressCheck{Need: perPod / 2}
	if perPod <= 0 {
		c.Need = leastMemoryRiseByte
		if cpu {
			c.Need = leastCPURiseMilli
		}
	}
	pick := func(u PodUsage) (use, limit int64) {
		if cpu {
			return u.CPUMilli, u.CPULimitMilli
		}
		return u.MemoryBytes, u.MemoryLimitBytes
	}
	now := map[string]PodUsage{}
	for _, u := range during.PerPod {
		now[u.Pod] = u
	}
	for _, b := range before.PerPod {
		d, ok := now[b.Pod]
		if !ok {
			continue
		}
		use, limit := pick(b)
		after, _ := pick(d)
		c.Common = append(c.Common, b.Pod)
		c.Before += use
		c.During += after
		switch {
		case after-use >= c.Need:
			c.Rose = append(c.Rose, b.Pod)
		case limit > 0 && limit-use < c.Need:
			c.AtLimit = append(c.AtLimit, b.Pod)
		default:
			c.Flat = append(c.Flat, b.Pod)
		}
	}
	return c
}

// Shown reports whether the stress showed: in every common pod that had
// room for it, and in at least one.
func (c StressCheck) Shown() bool { return len(c.Rose) > 0 && len(c.Flat) == 0 }

// Criteria are what a profile asks of the run.
type Criteria struct {
	// Users is the number of virtual users R25 requires held.
	Users int
	// RequireHPAMax makes R35 require the HPA at its maximum under load.
	RequireHPAMax bool
	Thresholds    Thresholds
}

// Thresholds are the limits a profile judges its requirements by.
type Thresholds struct {
	// P95 bounds the 95th percentile latency of user requests (R25).
	P95 time.Duration `mapstructure:"p95" json:"p95"`
	// ErrorRateOutside bounds the user error rate outside fault windows (R25).
	ErrorRateOutside float64 `mapstructure:"errorRateOutside" json:"errorRateOutside"`
	// ErrorRateInside bounds the user error rate inside fault windows (R31).
	ErrorRateInside float64 `mapstructure:"errorRateInside" json:"errorRateInside"`
	// Availability is the least successful share of requests over the run (R31).
	Availability float64 `mapstructure:"availability" json:"availability"`
	// Failover bounds the PostgreSQL and Redis RTO (R29, R30).
	Failover time.Duration `mapstructure:"failover" json:"failover"`
	// PodRecovery bounds the time until the web replicas are Ready again (R27).
	PodRecovery time.Duration `mapstructure:"podRecovery" json:"podRecovery"`
	// NodeRecovery bounds the time until evicted pods run elsewhere (R28).
	NodeRecovery time.Duration `mapstructure:"nodeRecovery" json:"nodeRecovery"`
	// PartitionRecovery bounds the recovery after the partition heals (R32).
	PartitionRecovery time.Duration `mapstructure:"partitionRecovery" json:"partitionRecovery"`
	// ScaleDown bounds the time from the load's end to the HPA's minimum (R35).
	ScaleDown time.Duration `mapstructure:"scaleDown" json:"scaleDown"`
}
