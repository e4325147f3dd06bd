package judge

import (
	"fmt"
	"time"

	"github.com/jewelry-shop/lab/reports"
	"github.com/jewelry-shop/lab/shop/probeapi"
)

// Path is what a store fault led to.
type Path string

// The paths of a store fault.
const (
	// PathSwitchover: the old leader handed over (Patroni released its key).
	PathSwitchover Path = "switchover"
	// PathFailover: another pod took over once the old leader was given up
	// for dead (Patroni's ttl expired, Sentinel's down-after-milliseconds).
	PathFailover Path = "failover"
	// PathRestart: the old leader came back and kept its role.
	PathRestart Path = "restart in place"
)

// leaderPath names the path a store fault took, from the leaders before and
// after and how the leader was taken down, in words for the report.
func leaderPath(x *Fault) (Path, string) {
	same := x.LeaderBefore == x.LeaderAfter
	switch x.Role.Store() {
	case probeapi.StorePostgres:
		switch {
		case same:
			return PathRestart, "restart in place: the old primary came back and kept the leader key, no failover"
		case x.Takedown == TakedownIsolation:
			return PathFailover, "failover: the cut-off primary's leader key expired after Patroni's ttl and a replica took over"
		default:
			return PathSwitchover, "switchover: the stopped primary released the leader key on SIGTERM and a replica took over; Patroni's ttl was not exercised"
		}
	default:
		if same {
			return PathRestart, "restart in place: the old master answered again before Sentinel failed over, no failover; the RTO is a restart time"
		}
		return PathFailover, "failover: Sentinel declared the master down after down-after-milliseconds and promoted a replica"
	}
}

// kubeletRenewal is how often a kubelet renews its node lease (a quarter of
// the 40 s lease), the heartbeat node-monitor-grace-period counts.
const kubeletRenewal = 10 * time.Second

// secs prints a setting in seconds, as the charts write it.
func secs(d time.Duration) string { return fmt.Sprintf("%gs", d.Seconds()) }

// dependsOn lists the settings a fault's figures depend on, for the path it
// took (for store faults), leaving out those not known.
func dependsOn(s *Settings, x *Fault, path Path) []reports.Setting {
	var out []reports.Setting
	add := func(name string, v time.Duration, why string) {
		if v > 0 {
			out = append(out, reports.Setting{Name: name, Value: secs(v), Why: why})
		}
	}
	addMS := func(name string, v time.Duration, why string) { // a setting in milliseconds
		if v > 0 {
			out = append(out, reports.Setting{Name: name, Value: fmt.Sprintf("%d (%s)", v.Milliseconds(), secs(v)), Why: why})
		}
	}
	held := func(least time.Duration, what string) {
		if x.Held > 0 {
			out = append(out, reports.Setting{Name: "fault held", Value: secs(x.Held), Why: fmt.Sprintf("the leader stays down for this long; a failover needs more than %s (%s)", least, what)})
		}
	}
	sync := reports.Setting{
		Name: "postgresql.patroni.synchronous_mode", Value: fmt.Sprint(s.PatroniSynchronousMode),
		Why: "with it the primary acknowledges a commit only once a synchronous replica has it, so a failover to that replica loses no acknowledged write",
	}
	switch x.Role {
	case RolePostgresPrimary:
		switch path {
		case PathSwitchover:
			add("postgresql.patroni.loop_wait", s.PatroniLoopWait, "a replica takes the released leader key at its next HA loop at the latest: the switchover waits at most loop_wait")
			out = append(out, sync)
		case PathFailover:
			add("postgresql.patroni.ttl", s.PatroniTTL, "the cut-off primary's leader key expires ttl after its last renewal: no replica can take over before, so the RTO is at least ttl - loop_wait")
			add("postgresql.patroni.loop_wait", s.PatroniLoopWait, "the primary renews its key, and a replica looks for an expired one, once per loop_wait: the takeover starts at most ttl + loop_wait after the fault")
			add("postgresql.patroni.retry_timeout", s.PatroniRetryTimeout, "the margin against a slow Kubernetes API (the single k3s server's datastore, slower under load): a primary keeps its role through API stalls shorter than this, as the control plane's own leader election does with its 10 s renew deadline; Patroni requires loop_wait + 2 × retry_timeout <= ttl")
			out = append(out, sync)
			held(s.PatroniTTL+s.PatroniLoopWait, "ttl + loop_wait")
		case PathRestart:
			add("postgresql.patroni.ttl", s.PatroniTTL, "the old primary came back within ttl of its last renewal and still held the leader key: no failover")
			add("postgresql.patroni.loop_wait", s.PatroniLoopWait, "the interval of the HA loop that renews the key")
			held(s.PatroniTTL+s.PatroniLoopWait, "ttl + loop_wait")
		}
	case RoleRedisMaster:
		switch path {
		case PathFailover:
			addMS("redis.sentinel.downAfterMilliseconds", s.SentinelDownAfter, "Sentinel declares the master down only after it has not answered for this long: the failover starts no earlier")
			addMS("redis.sentinel.failoverTimeout", s.SentinelFailoverTimeout, "bounds one failover attempt; a failed attempt is retried only after it")
		case PathRestart:
			addMS("redis.sentinel.downAfterMilliseconds", s.SentinelDownAfter, "the master answered again before Sentinel declared it down: no failover")
			held(s.SentinelDownAfter, "down-after-milliseconds")
		}
	case RoleNodeFailure:
		missed := int(s.NodeMonitorGracePeriod / kubeletRenewal)
		margin := "a node slowed by load and stress can miss two without being taken for dead"
		if missed < 3 {
			margin = "a node slowed by load and stress that misses two is taken for dead and its pods are evicted"
		}
		add("cluster.serverArgs: node-monitor-grace-period", s.NodeMonitorGracePeriod, fmt.Sprintf("the node is marked NotReady this long after its last heartbeat, and no pod is evicted before; the kubelet renews its lease every %s, so this is %d missed renewals: %s", secs(kubeletRenewal), missed, margin))
		add("nodeFailureTolerationSeconds", s.NodeFailureToleration, "the web pods stay bound to a NotReady or unreachable node this long before they are evicted and rescheduled (Kubernetes' default is 300 s)")
	case RoleCPUStress:
		if s.WebCPULimitMilli > 0 {
			out = append(out, reports.Setting{
				Name: "web.resources.limits.cpu", Value: fmt.Sprintf("%dm", s.WebCPULimitMilli),
				Why: fmt.Sprintf("the stress adds %dm to each web container, well below its limit: at the limit it would only throttle the container and hide in its usage", x.StressCPUMilli),
			})
		}
	case RoleMemoryStress:
		if s.WebMemoryLimitBytes > 0 {
			out = append(out, reports.Setting{
				Name: "web.resources.limits.memory", Value: fmt.Sprintf("%dMi", s.WebMemoryLimitBytes>>20),
				Why: fmt.Sprintf("the stress adds %d MiB to each web container's cgroup, well below its limit: usage at the limit gets the container OOM-killed", x.StressMemoryBytes>>20),
			})
		}
	}
	return out
}

// settingsReport fills the experiment's depends-on rows and, for a store
// fault, the path it took; path is empty when the leaders are not known.
func settingsReport(o *Observation, f *figures, path Path, e *reports.Experiment) {
	x := f.x
	switch x.Role {
	case RolePostgresPrimary, RoleRedisMaster, RoleNodeFailure, RoleCPUStress, RoleMemoryStress:
	default:
		return
	}
	switch {
	case o.Settings == nil:
		e.NotMeasured["depends_on"] = "the settings the figures depend on are not known: " + firstReason(o.SettingsWhy, "no settings were read")
		return
	case x.Role.Store() != "" && path == "":
		e.NotMeasured["depends_on"] = "which path the fault took is not known, and the settings depend on it: " + firstReason(e.NotMeasured["leader"], x.LeaderWhy)
		return
	}
	s := o.Settings
	e.DependsOn = dependsOn(s, x, path)
	if len(e.DependsOn) > 0 && s.Source != "" {
		e.Notes = append(e.Notes, "the settings it depends on are "+s.Source)
	}
	if x.Role == RoleNodeFailure && s.NodeMonitorGracePeriod == 0 {
		e.Notes = append(e.Notes, "the cluster's node-monitor-grace-period, which decides when the stopped node was taken for dead, is not known to lab: it knows it only for the clusters lab up creates")
	}
	// A ttl-driven failover cannot recover before the leader key expires:
	// an RTO below ttl - loop_wait means the primary was not cut off.
	if path == PathFailover && x.Role == RolePostgresPrimary && f.rec.RTO.Known && s.PatroniTTL > 0 {
		if least := s.PatroniTTL - s.PatroniLoopWait; f.rec.RTO.V < least {
			e.Notes = append(e.Notes, fmt.Sprintf("the RTO %s is shorter than the leader key can take to expire (ttl - loop_wait = %s): writes were acknowledged before a ttl-driven failover could have happened, so the primary was not fully cut off", ms(f.rec.RTO.V), least))
		}
	}
}

// pathOf is the path of a store fault whose leaders are known.
func pathOf(x *Fault) (Path, *reports.Leader) {
	if x.LeaderBefore == "" || x.LeaderAfter == "" {
		return "", nil
	}
	p, words := leaderPath(x)
	return p, &reports.Leader{Old: x.LeaderBefore, New: x.LeaderAfter, Path: words}
}
