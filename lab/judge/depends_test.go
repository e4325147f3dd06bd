package judge

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestDependsOnPath: a store fault's report names the path it took, from
// the leaders and how the leader was taken down, and its "depends on" rows
// are the settings of that path: a graceful stop of the PostgreSQL primary
// is a switchover that never exercises ttl, a cut-off primary fails over
// after ttl, an old leader that came back restarted in place.
func TestDependsOnPath(t *testing.T) {
	t.Parallel()
	const (
		ttl, loopWait, retry = "postgresql.patroni.ttl", "postgresql.patroni.loop_wait", "postgresql.patroni.retry_timeout"
		sync, held           = "postgresql.patroni.synchronous_mode", "fault held"
		downAfter, foTimeout = "redis.sentinel.downAfterMilliseconds", "redis.sentinel.failoverTimeout"
	)
	tests := []struct {
		name                  string
		fault                 int // index into the synthetic faults
		before, after         string
		takedown              Takedown
		settings              func(o *Observation)
		path                  string   // the report's leader path starts so
		rows                  []string // the depends-on rows, by name
		notMeasured, noteLike string
	}{
		{"primary stopped, switchover", 1, "db-0", "db-1", TakedownStop, nil, "switchover", []string{loopWait, sync}, "", ""},
		{
			"primary cut off, ttl failover", 1, "db-0", "db-1", TakedownIsolation, nil, "failover: the cut-off primary's leader key expired",
			[]string{ttl, loopWait, retry, sync, held},
			"", "the RTO 12.005s is shorter than the leader key can take to expire (ttl - loop_wait = 20s)",
		},
		{"primary came back", 1, "db-0", "db-0", TakedownIsolation, nil, "restart in place", []string{ttl, loopWait, held}, "", ""},
		{"Redis master failed over", 2, "redis-0", "redis-2", TakedownStop, nil, "failover: Sentinel", []string{downAfter, foTimeout}, "", ""},
		{"Redis master came back", 2, "redis-0", "redis-0", TakedownStop, nil, "restart in place: the old master answered again", []string{downAfter, held}, "", ""},
		{"leader not known", 1, "db-0", "", TakedownStop, nil, "", nil, "which path the fault took is not known", ""},
		{"settings not known", 2, "redis-0", "redis-2", TakedownStop, func(o *Observation) { o.Settings, o.SettingsWhy = nil, "not a lab cluster" }, "failover", nil, "not known: not a lab cluster", ""},
		{"node failure", 5, "", "", "", nil, "", []string{"cluster.serverArgs: node-monitor-grace-period", "nodeFailureTolerationSeconds"}, "", ""},
		{"CPU stress", 4, "", "", "", nil, "", []string{"web.resources.limits.cpu"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := observation()
			x := o.Faults[tt.fault]
			x.LeaderBefore, x.LeaderAfter, x.Takedown = tt.before, tt.after, tt.takedown
			if x.Role.Store() != "" {
				x.Held = time.Minute
			}
			if tt.settings != nil {
				tt.settings(o)
			}
			e := Judge(o, criteria()).Experiments[tt.fault]
			var got []string
			for _, s := range e.DependsOn {
				got = append(got, s.Name)
				if s.Value == "" || s.Why == "" {
					t.Errorf("row %+v has no value or reason", s)
				}
			}
			if diff := cmp.Diff(tt.rows, got); diff != "" {
				t.Errorf("depends-on rows (-want +got):\n%s", diff)
			}
			switch {
			case tt.path == "" && e.Leader != nil && x.Role.Store() != "" && tt.after != "":
				t.Errorf("leader %+v, want none", e.Leader)
			case tt.path != "" && (e.Leader == nil || !strings.HasPrefix(e.Leader.Path, tt.path)):
				t.Errorf("leader %+v, want a path starting %q", e.Leader, tt.path)
			}
			if tt.notMeasured != "" && !strings.Contains(e.NotMeasured["depends_on"], tt.notMeasured) {
				t.Errorf("not measured %v, want depends_on saying %q", e.NotMeasured, tt.notMeasured)
			}
			if tt.noteLike != "" && !strings.Contains(strings.Join(e.Notes, "\n"), tt.noteLike) {
				t.Errorf("notes %q, want one saying %q", e.Notes, tt.noteLike)
			}
			if tt.path == "switchover" {
				for _, s := range e.DependsOn {
					if s.Name == ttl {
						t.Errorf("a switchover depends on ttl: %+v", e.DependsOn)
					}
				}
			}
		})
	}
}
