package judge

import (
	"bytes"
	"errors"
	"flag"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jewelry-shop/lab/internal/golden"
	"github.com/jewelry-shop/lab/lab/measure"
	"github.com/jewelry-shop/lab/load"
	"github.com/jewelry-shop/lab/reports"
	"github.com/jewelry-shop/lab/shop/probeapi"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// t0 is the start of every synthetic run.
var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func criteria() Criteria {
	return Criteria{Users: 100, Thresholds: Thresholds{
		P95: 2 * time.Second, ErrorRateOutside: 0.01, ErrorRateInside: 0.25, Availability: 0.99,
		Failover: 30 * time.Second, PodRecovery: time.Minute, NodeRecovery: 90 * time.Second,
		PartitionRecovery: 30 * time.Second, ScaleDown: 3 * time.Minute,
	}}
}

// observation is a synthetic complete run of 600 s: load from 0 s to 480 s,
// a web pod killed at 60 s, the PostgreSQL primary failed at 120 s (writes
// fail until 132 s), the Redis master killed at 200 s (until 206 s), a
// partition from 260 s to 290 s (requests fail until 293 s), a CPU stress
// from 330 s to 390 s, a node stopped from 400 s to 460 s; the HPA at 5 under
// load and back to 3 at 560 s.
func observation() *Observation {
	o := &Observation{
		Title: "judge test", Profile: "synthetic", Seed: 1, Environment: map[string]string{"lab": "test"},
		Started: t0, Finished: at(600), Reached: "cleanup and report", Sustain: 5 * time.Second,
		LoadRan: true, LoadStart: t0, LoadEnd: at(480),
		ScaleDownWatched: true, ObservedUntil: at(590),
		HealthPolled: true, HealthFrom: t0, HealthTo: at(590),
	}
	res := &load.Result{Scenario: "shop", Model: load.Closed, Start: t0, End: at(480), Duration: 480 * time.Second, StopReason: "duration"}
	res.Series.Interval = time.Second
	res.Generator.MaxUsers = 100
	for s := 0; s < 480; s++ {
		p := load.Point{Time: at(float64(s)), Requests: 50, RPS: 50, P95: 300 * time.Millisecond}
		if s >= 260 && s < 293 {
			p.Failures = 3
		}
		res.Series.Points = append(res.Series.Points, p)
		res.Overall.Requests += p.Requests
		res.Overall.Failures += p.Failures
	}
	res.Overall.Name = "all"
	res.Overall.Latency.P95 = 300 * time.Millisecond
	res.Endpoints = []load.Stats{res.Overall}
	o.Load = res

	tl := probeapi.Timeline{Stores: map[string]probeapi.StoreTimeline{}}
	verify := probeapi.Verification{Stores: map[string]probeapi.StoreVerification{}}
	for _, st := range []struct {
		store    string
		from, to float64
	}{{probeapi.StorePostgres, 120, 132}, {probeapi.StoreRedis, 200, 206}} {
		var stl probeapi.StoreTimeline
		for i := int64(0); i < 5900; i++ {
			sent := at(float64(i) / 10)
			s := probeapi.Sample{Seq: i, Sent: sent}
			if sec := float64(i) / 10; sec >= st.from && sec < st.to {
				s.Error = "connection refused"
				stl.Failed++
			} else {
				s.Acked = sent.Add(5 * time.Millisecond)
				stl.Acked++
			}
			stl.Samples = append(stl.Samples, s)
		}
		stl.Attempted = stl.Acked + stl.Failed
		tl.Stores[st.store] = stl
		verify.Stores[st.store] = probeapi.StoreVerification{Acked: stl.Acked}
	}
	o.Timeline, o.Verify = &tl, &verify
	for s := 0; s < 590; s++ {
		o.Health = append(o.Health, measure.Sample{At: at(float64(s)), OK: s < 120 || s >= 125})
	}
	o.Probes = []reports.WorkloadProbes{{Workload: "Deployment/web", Readiness: true, Liveness: true}, {Workload: "StatefulSet/redis", Readiness: true, Liveness: true}}
	o.Replicas = &Replicas{
		Workload: "Deployment/web", HPA: "jewelry-shop/web", Min: 3, Max: 10,
		Ready:       []measure.ReplicaPoint{{At: t0, Replicas: 3}, {At: at(60.2), Replicas: 2}, {At: at(70), Replicas: 3}, {At: at(400.5), Replicas: 2}, {At: at(430), Replicas: 3}},
		Desired:     []measure.ReplicaPoint{{At: t0, Replicas: 3}},
		HPAReplicas: []measure.ReplicaPoint{{At: t0, Replicas: 3}, {At: at(30), Replicas: 5}, {At: at(345), Replicas: 7}, {At: at(560), Replicas: 3}},
	}
	fault := func(name string, role Role, inj, removed float64, held time.Duration) *Fault {
		f := &Fault{Name: name, Title: name, Target: "synthetic", Role: role, Held: held, Description: "synthetic", Applied: true, Undone: true, InjectedAt: at(inj), AppliedAt: at(inj - 0.5)}
		if removed > 0 {
			f.RemovedAt = at(removed)
		}
		return f
	}
	pg := fault("pg-failure", RolePostgresPrimary, 120, 180, time.Minute)
	pg.LeaderBefore, pg.LeaderAfter, pg.Takedown = "db-0", "db-1", TakedownStop
	redis := fault("redis-kill", RoleRedisMaster, 200, 200.1, 0)
	redis.LeaderBefore, redis.LeaderAfter, redis.Takedown = "redis-0", "redis-2", TakedownStop
	stress := fault("cpu-stress", RoleCPUStress, 330, 390, time.Minute)
	stress.UsageBefore, stress.UsageDuring = pods(500, 100, 100, 100), pods(500, 500, 480, 520)
	stress.StressCPUMilli = 250
	node := fault("node-failure", RoleNodeFailure, 400, 460, time.Minute)
	node.Node = &NodeFailure{Node: "agent-1", StoppedAt: at(400), StartedAt: at(460), Pods: []PodMove{
		{Pod: "web-1", Owner: "ReplicaSet/web", Replacement: "web-9", ReplacementNode: "agent-0", ReadyAt: at(430)},
		{Pod: "redis-1", Owner: "StatefulSet/redis"},
	}}
	o.Faults = []*Fault{
		fault("web-pod-kill", RoleWebPod, 60, 60.1, 0), pg, redis,
		fault("partition", RolePartition, 260, 290, 30*time.Second), stress, node,
	}
	o.Settings = testSettings()
	return o
}

// testSettings are the chart's and the cluster's settings of the synthetic
// runs.
func testSettings() *Settings {
	return &Settings{
		Source:     "those of the test",
		PatroniTTL: 22 * time.Second, PatroniLoopWait: 2 * time.Second, PatroniRetryTimeout: 10 * time.Second, PatroniSynchronousMode: true,
		SentinelDownAfter: 5 * time.Second, SentinelFailoverTimeout: 30 * time.Second,
		NodeMonitorGracePeriod: 40 * time.Second, NodeFailureToleration: 20 * time.Second,
		WebCPULimitMilli: 500, WebMemoryLimitBytes: 256 << 20,
	}
}

// TestJudgeGolden judges synthetic runs, complete and interrupted, and
// keeps their reports as golden files.
func TestJudgeGolden(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		modify func(*Observation)
	}{
		{"complete", func(*Observation) {}},
		{"interrupted", func(o *Observation) {
			o.Stopped = errors.New("validation interrupted: context canceled")
			o.Reached, o.Finished, o.ScaleDownWatched = "partition", at(300), false
			o.Verify, o.VerifyWhy = nil, "the run was interrupted before the collection"
			o.Faults[4].NotRun, o.Faults[5].NotRun = "the run was interrupted before this experiment", "the run was interrupted before this experiment"
			o.NotRun = []reports.Skipped{{Name: "scale-down watch", Reason: "the run was interrupted"}, {Name: "collection: prober verification", Reason: "the run was interrupted"}}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := observation()
			tt.modify(o)
			run := Judge(o, criteria())
			var md, js bytes.Buffer
			if err := reports.WriteMarkdown(&md, run); err != nil {
				t.Fatal(err)
			}
			if err := reports.WriteJSON(&js, run); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", "TestJudge_"+tt.name+".golden.md"), md.Bytes(), *update)
			golden.Check(t, filepath.Join("testdata", "TestJudge_"+tt.name+".golden.json"), js.Bytes(), *update)
		})
	}
}

// TestRequirements judges each requirement on the synthetic run changed in
// one way: what the row says and its status.
func TestRequirements(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id     string
		name   string
		modify func(*Observation)
		crit   func(*Criteria)
		want   reports.Status
		reason string // in the row's reason (or measured, for a pass)
	}{
		{"R25", "held", nil, nil, reports.Pass, "p95 300ms < 2s"},
		{"R25", "slow", nil, func(c *Criteria) { c.Thresholds.P95 = 200 * time.Millisecond }, reports.Fail, "p95 300ms, not < 200ms"},
		{"R25", "fewer users", func(o *Observation) { o.Load.Generator.MaxUsers = 40 }, nil, reports.Fail, "40 users held, not >= 100"},
		{"R25", "stopped early", func(o *Observation) { o.Load.StopReason = "max requests" }, nil, reports.NotMeasured, "the load stopped early"},
		{"R25", "no load", func(o *Observation) { o.Load, o.LoadErr = nil, errors.New("refused") }, nil, reports.NotMeasured, "the load failed: refused"},
		{"R26", "both recover", nil, nil, reports.Pass, "RTO"},
		{"R27", "web pods back", nil, nil, reports.Pass, "Ready again after 10s"},
		{"R27", "too slow", nil, func(c *Criteria) { c.Thresholds.PodRecovery = 5 * time.Second }, reports.Fail, "not <= 5s"},
		{"R27", "not in the profile", func(o *Observation) { o.Faults = o.Faults[1:] }, nil, reports.NotInProfile, "no web pod experiment"},
		{"R27", "the count missed the dip, the replacement shows it", func(o *Observation) {
			o.Replicas.Ready = []measure.ReplicaPoint{{At: t0, Replicas: 3}}
			o.Replicas.Pods = []PodSeen{{Name: "web-a", Created: t0, ReadyAt: at(1)}, {Name: "web-new", Created: at(60), ReadyAt: at(63.5)}, {Name: "web-later", Created: at(90), ReadyAt: at(95)}}
		}, nil, reports.Pass, "the replacement pod passed its readiness probe and the web replicas were back at 3 Ready, 3.5s after the kill"},
		{"R27", "a scale-up under way: measured against the Ready count before the kill", func(o *Observation) {
			o.Replicas.Desired = []measure.ReplicaPoint{{At: t0, Replicas: 3}, {At: at(55), Replicas: 7}}
			o.Replicas.Ready = []measure.ReplicaPoint{{At: t0, Replicas: 3}, {At: at(60.2), Replicas: 2}, {At: at(64), Replicas: 3}, {At: at(110), Replicas: 7}}
		}, nil, reports.Pass, "back at 3 Ready (their count before the fault; the HPA's scale-up to 7 was under way), 4s after the fault"},
		{"R27", "a scale-up under way: a dip below the count before still counts", func(o *Observation) {
			o.Replicas.Desired = []measure.ReplicaPoint{{At: t0, Replicas: 3}, {At: at(55), Replicas: 7}}
			o.Replicas.Ready = []measure.ReplicaPoint{{At: t0, Replicas: 3}, {At: at(60.2), Replicas: 2}, {At: at(64), Replicas: 3}, {At: at(100), Replicas: 2}, {At: at(119), Replicas: 7}}
		}, func(c *Criteria) { c.Thresholds.PodRecovery = 30 * time.Second }, reports.Fail, "Ready again after 59s, not <= 30s"},
		{"R27", "the replacement later than the count", func(o *Observation) {
			o.Replicas.Pods = []PodSeen{{Name: "web-new", Created: at(60), ReadyAt: at(75)}}
		}, nil, reports.Pass, "15s after the kill"},
		{"R27", "a replacement too slow", func(o *Observation) {
			o.Replicas.Pods = []PodSeen{{Name: "web-new", Created: at(60), ReadyAt: at(130)}}
		}, nil, reports.Fail, "1m10s"},
		{"R28", "pods moved", nil, nil, reports.Pass, "slowest 30s <= 1m30s"},
		{"R28", "pod stuck", func(o *Observation) { o.Faults[5].Node.Pods[0].Replacement = "" }, nil, reports.Fail, "web-1"},
		{"R28", "not a lab cluster", func(o *Observation) { o.Faults[5].NotRun, o.Faults[5].Node = "not a lab cluster", nil }, nil, reports.NotRun, "not a lab cluster"},
		{"R28", "not in the profile", func(o *Observation) { o.Faults = o.Faults[:5] }, nil, reports.NotInProfile, "not in the profile"},
		{"R29", "primary back", nil, nil, reports.Pass, "RTO 12.005s < 30s"},
		{"R29", "slow failover", nil, func(c *Criteria) { c.Thresholds.Failover = 10 * time.Second }, reports.Fail, "pg-failure: RTO 12.005s, not < 10s"},
		{"R29", "every PostgreSQL fault judged", func(o *Observation) {
			iso := *o.Faults[1]
			iso.Name, iso.InjectedAt, iso.AppliedAt, iso.RemovedAt, iso.Takedown = "pg-isolation", at(150), at(149.5), at(190), TakedownIsolation
			o.Faults = append(o.Faults[:2], append([]*Fault{&iso}, o.Faults[2:]...)...)
		}, func(c *Criteria) { c.Thresholds.Failover = 10 * time.Second }, reports.Fail, "pg-failure: RTO 12.005s; pg-isolation: RTO"},
		{"R29", "no timeline", func(o *Observation) { o.Timeline, o.TimelineErr = nil, errors.New("prober gone") }, nil, reports.NotMeasured, "no prober timeline: prober gone"},
		{"R30", "master back", nil, nil, reports.Pass, "RTO 6.005s < 30s"},
		{"R30", "the fault had no effect", func(o *Observation) {
			o.Faults[2].LeaderAfter = "redis-0"
			st := o.Timeline.Stores[probeapi.StoreRedis]
			st.Samples = slices.Clone(st.Samples)
			for i := range st.Samples {
				st.Samples[i].Error, st.Samples[i].Acked = "", st.Samples[i].Sent.Add(5*time.Millisecond)
			}
			o.Timeline.Stores[probeapi.StoreRedis] = st
		}, nil, reports.NotMeasured, "redis-kill: the fault had no effect that was seen: every prober redis sample after the injection succeeded and redis-0 stayed the leader"},
		{"R30", "no outage seen, but a new master", func(o *Observation) {
			st := o.Timeline.Stores[probeapi.StoreRedis]
			st.Samples = slices.Clone(st.Samples)
			for i := range st.Samples {
				st.Samples[i].Error, st.Samples[i].Acked = "", st.Samples[i].Sent.Add(5*time.Millisecond)
			}
			o.Timeline.Stores[probeapi.StoreRedis] = st
		}, nil, reports.Pass, "RTO 0s < 30s"},
		{"R31", "available", nil, nil, reports.Pass, "availability 99.59 %"},
		{"R31", "unavailable", nil, func(c *Criteria) { c.Thresholds.Availability = 0.999 }, reports.Fail, "not >= 99.90 %"},
		{"R32", "healed", nil, nil, reports.Pass, "recovered"},
		{"R33", "probed and polled", nil, nil, reports.Pass, "health endpoint polled 590 times"},
		{"R33", "not polled", func(o *Observation) { o.HealthPolled, o.HealthWhy = false, "no health endpoint poll in this test" }, nil, reports.NotMeasured, "no health endpoint poll in this test"},
		{"R34", "stress rose, HPA reacted", nil, nil, reports.Pass, "the HPA went from 5 to 7 replicas"},
		{"R34", "stress did not show", func(o *Observation) { o.Faults[4].UsageDuring = pods(500, 110, 100, 110) }, nil, reports.NotMeasured, "the stress did not show in the usage of web-1, web-2, web-3"},
		{"R34", "HPA scale-out between the reads", func(o *Observation) { o.Faults[4].UsageDuring = pods(500, 110, 100, 110, 300, 300, 300) }, nil, reports.NotMeasured, "the stress did not show in the usage of web-1, web-2, web-3"},
		{"R34", "pods at their CPU limit", func(o *Observation) {
			o.Faults[4].UsageBefore, o.Faults[4].UsageDuring = pods(500, 490, 500, 495), pods(500, 500, 500, 500)
		}, nil, reports.NotMeasured, "every stressed pod was at its CPU limit before the stress"},
		{"R35", "back to min", nil, nil, reports.Pass, "back to 3 after 1m20s <= 3m0s"},
		{"R35", "must reach max", nil, func(c *Criteria) { c.RequireHPAMax = true }, reports.Fail, "peak 7 replicas, not >= 10"},
		{"R35", "not watched", func(o *Observation) { o.ScaleDownWatched = false }, nil, reports.NotRun, "the scale-down watch did not run"},
		{"no-data-loss", "nothing lost", nil, nil, reports.Pass, "0 acknowledged writes lost"},
		{"no-data-loss", "redis lost writes", func(o *Observation) {
			sv := o.Verify.Stores[probeapi.StoreRedis]
			sv.Missing = []int64{2010, 2011}
			o.Verify.Stores[probeapi.StoreRedis] = sv
		}, nil, reports.Fail, "redis: 2 acknowledged writes lost"},
		{"no-data-loss", "interrupted", func(o *Observation) { o.Stopped = errors.New("interrupted") }, nil, reports.NotRun, "interrupted before it completed"},
	}
	for _, tt := range tests {
		t.Run(tt.id+" "+tt.name, func(t *testing.T) {
			t.Parallel()
			o, crit := observation(), criteria()
			if tt.modify != nil {
				tt.modify(o)
			}
			if tt.crit != nil {
				tt.crit(&crit)
			}
			var q *reports.Requirement
			for _, r := range Judge(o, crit).Requirements {
				if r.ID == tt.id {
					q = &r
				}
			}
			if q == nil {
				t.Fatalf("no row %s", tt.id)
			}
			if q.Status != tt.want || !strings.Contains(q.Reason+" "+q.Measured, tt.reason) {
				t.Errorf("%s = %s: %q (measured %q), want %s with %q", tt.id, q.Status, q.Reason, q.Measured, tt.want, tt.reason)
			}
			if q.Status == reports.Pass && len(q.Values) == 0 {
				t.Errorf("%s passes without a typed value", tt.id)
			}
		})
	}
}

// TestLoadBucketAtTheNextInjection: the load bucket that straddles the next
// fault's injection holds that fault's failures, not the previous one's: a
// web pod kill that no request noticed has an RTO of 0, not "still failing"
// (seen on real nodes, with the Redis master failed inside the bucket).
func TestLoadBucketAtTheNextInjection(t *testing.T) {
	t.Parallel()
	o := observation()
	o.Faults[1].InjectedAt, o.Faults[1].AppliedAt = at(119.5), at(119)
	for i := range o.Load.Series.Points {
		if p := &o.Load.Series.Points[i]; p.Time.Equal(at(119)) {
			p.Failures = 5
		}
	}
	run := Judge(o, criteria())
	e := run.Experiments[0]
	if e.Name != "web-pod-kill" || e.RTO == nil || *e.RTO != 0 {
		t.Fatalf("%s: RTO %v, not measured %v; want 0: the failing bucket is the next fault's", e.Name, e.RTO, e.NotMeasured)
	}
}
