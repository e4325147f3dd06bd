package lab

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/jewelry-shop/lab/chaosmesh"
	"github.com/jewelry-shop/lab/internal/services"
	"github.com/jewelry-shop/lab/load"
	"github.com/jewelry-shop/lab/reports"
	"github.com/jewelry-shop/lab/shop"
	"github.com/jewelry-shop/lab/shop/probe"
	"github.com/jewelry-shop/lab/shop/probeapi"
)

// Timing of the data-path test: Sentinel declares a master down after
// sentinelDownAfter; the prober writes every probeEvery and gives up on a
// write after storeWriteTimeout.
const (
	sentinelDownAfter = time.Second
	probeEvery        = 100 * time.Millisecond
	storeWriteTimeout = 500 * time.Millisecond
	// clientSlack bounds how long after the test saw a store back the
	// prober's clients may take to write to it again: a write in flight
	// to the dead server times out, the client asks Sentinel or redials,
	// and the next write is sent one interval later.
	clientSlack = 2*storeWriteTimeout + 2*probeEvery + time.Second
)

// storeFaults stands in for Chaos Mesh on loopback: it kills the Redis
// master as Sentinel names it, or stops PostgreSQL until the fault is
// removed, and records what the test itself observed.
type storeFaults struct {
	t  *testing.T
	pg *services.Postgres
	ha *services.RedisHA

	mu sync.Mutex
	// Redis: the kill; the last time the test found the promoted node
	// still a replica, and the first it found it master.
	killedAt, replicaAt, promotedAt time.Time
	// PostgreSQL: the stop, the call to start it again, and when it
	// accepted connections again.
	stoppedAt, restartAt, readyAt time.Time
	applied, undone               []string
	watch                         sync.WaitGroup
}

func (f *storeFaults) Apply(ctx context.Context, exp chaosmesh.Experiment, _ string) (*chaosmesh.Applied, func(context.Context) error, error) {
	f.mu.Lock()
	f.applied = append(f.applied, exp.Name)
	f.mu.Unlock()
	done := func(context.Context) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.undone = append(f.undone, exp.Name)
		return nil
	}
	switch exp.Name {
	case chaosmesh.RedisMasterFailure:
		old, err := f.ha.Master(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("find the redis master: %w", err)
		}
		old.Kill(f.t)
		f.mu.Lock()
		f.killedAt = time.Now()
		f.mu.Unlock()
		f.watch.Go(func() { f.watchPromotion(ctx, old) })
		// A pod kill is one-shot: there is nothing to undo but the object.
		return &chaosmesh.Applied{Experiment: exp, CreatedAt: f.killedAt}, done, nil
	case chaosmesh.PostgresPrimaryFailure:
		f.pg.Stop(f.t)
		f.mu.Lock()
		f.stoppedAt = time.Now()
		f.mu.Unlock()
		undo := func(ctx context.Context) error {
			f.mu.Lock()
			f.restartAt = time.Now()
			f.mu.Unlock()
			f.pg.Start(f.t)
			f.mu.Lock()
			f.readyAt = time.Now()
			f.mu.Unlock()
			return done(ctx)
		}
		return &chaosmesh.Applied{Experiment: exp, CreatedAt: f.stoppedAt}, undo, nil
	}
	return nil, nil, fmt.Errorf("no stand-in for experiment %s", exp.Name)
}

// watchPromotion polls the surviving nodes' roles until one is master or
// ctx, the run's context that Apply was given, is done.
// Between the last query that still found it a replica (sent at
// replicaAt) and the first answer that found it master (promotedAt) it was
// promoted: no write can be acknowledged through Sentinel before.
func (f *storeFaults) watchPromotion(ctx context.Context, old *services.Redis) {
	const poll = 20 * time.Millisecond
	lastReplica := map[*services.Redis]time.Time{}
	for ctx.Err() == nil {
		for _, n := range f.ha.Nodes {
			if n == old {
				continue
			}
			sent := time.Now()
			if !isMaster(ctx, n) {
				lastReplica[n] = sent
				continue
			}
			f.mu.Lock()
			f.promotedAt, f.replicaAt = time.Now(), lastReplica[n]
			f.mu.Unlock()
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(poll):
		}
	}
}

// isMaster asks a Redis server its replication role.
func isMaster(ctx context.Context, n *services.Redis) bool {
	c := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1, DialTimeout: storeWriteTimeout, ReadTimeout: storeWriteTimeout})
	defer func() { _ = c.Close() }()
	info, err := c.Info(ctx, "replication").Result()
	return err == nil && strings.Contains(info, "role:master")
}

func (f *storeFaults) WaitInjected(_ context.Context, a *chaosmesh.Applied, _ time.Duration) (chaosmesh.Injection, error) {
	return chaosmesh.Injection{Injected: true, At: a.CreatedAt}, nil
}

// TestDataPathValidation runs a shortened validation of the data path with
// real services: the load generator against the reference shop on real
// PostgreSQL and Redis with Sentinel, the prober measuring a real Redis
// master kill and a real PostgreSQL stop and restart. The RTOs and the lost
// writes of the report must agree with what the test itself observed.
func TestDataPathValidation(t *testing.T) {
	t.Parallel()
	pg := services.StartPostgres(t)
	ha := services.StartRedisHA(t, services.SentinelOptions{DownAfter: sentinelDownAfter, FailoverTimeout: 3 * time.Second})

	pgc := shop.DefaultPostgresConfig()
	pgc.DSN = pg.DSN("postgres")
	pgc.ConnectTimeout, pgc.StatementTimeout, pgc.HealthCheckPeriod = storeWriteTimeout, storeWriteTimeout, time.Second
	rc := shop.DefaultRedisConfig()
	rc.Sentinels, rc.MasterName = ha.SentinelAddrs(), ha.MasterName
	rc.DialTimeout, rc.ReadTimeout, rc.WriteTimeout = storeWriteTimeout, storeWriteTimeout, storeWriteTimeout
	rc.MaxRetries = -1 // a retried XADD could be applied twice

	ctx, stop := context.WithCancel(t.Context())
	var running sync.WaitGroup
	t.Cleanup(func() {
		stop()
		running.Wait()
	})
	pool, err := shop.OpenPostgres(ctx, pgc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := shop.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	rdb, err := shop.OpenRedis(rc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	web := httptest.NewServer(shop.NewWeb(shop.DefaultWebConfig(), pool, rdb, nil))
	t.Cleanup(web.Close)

	// The prober has its own connections, as its own pod would.
	ppool, err := shop.OpenPostgres(ctx, pgc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ppool.Close)
	prdb, err := shop.OpenRedis(rc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prdb.Close() })
	pcfg := probe.DefaultConfig()
	pcfg.Interval, pcfg.WriteTimeout = probeEvery, storeWriteTimeout
	prober := probe.New(pcfg, ppool, prdb, nil)
	if err := prober.Start(ctx); err != nil {
		t.Fatal(err)
	}
	running.Go(func() { prober.Probe(ctx) })
	proberSrv := httptest.NewServer(prober.Handler())
	t.Cleanup(proberSrv.Close)

	faults := &storeFaults{t: t, pg: pg, ha: ha}
	t.Cleanup(faults.watch.Wait)

	// Scaled by 0.1: load 20s, the primary down 2s from 2s, the Redis
	// master killed at 7s, which leaves 13s to see it recover even when a
	// busy machine slows the failover and the clients' reconnection.
	p := shortProfile(chaosmesh.PostgresPrimaryFailure, chaosmesh.RedisMasterFailure)
	p.Load, p.Spacing, p.ScaleDownWatch = 200*time.Second, 50*time.Second, 10*time.Second
	tm := chaosmesh.DefaultTiming()
	tm.PrimaryDown = 20 * time.Second
	pl, err := NewPlan(p, chaosmesh.Catalogue(chartTargets(StackNamespace, StackRelease), tm))
	if err != nil {
		t.Fatal(err)
	}
	r := NewRunner(RunnerConfig{
		Load: GeneratorLoad(load.Options{
			Target: web.URL, Scenario: load.DefaultScenario(), Model: load.Closed,
			Users: p.Users, MaxRequests: 200_000, Timeout: 2 * time.Second,
			Think: &load.ThinkTime{Min: 50 * time.Millisecond, Max: 150 * time.Millisecond}, Seed: 1,
		}, time.Now),
		Prober: HTTPProber{Client: proberSrv.Client(), Base: proberSrv.URL},
		Chaos:  faults,
		// The shop's health endpoint as lab validate polls it, faster.
		HealthPoll: HTTPHealthPoller{URL: web.URL + shopHealthPath, Interval: 200 * time.Millisecond},
		Health:     webProbes{},
		RunID:      "datapath", Scale: 0.1, Sustain: time.Second, Unavailable: testUnavailable(),
	})
	run, err := r.Run(ctx, pl)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	md := checkRenders(t, run)
	t.Logf("report:\n%s", md)
	faults.watch.Wait()
	if !slices.Equal(faults.applied, faults.undone) || len(faults.applied) != 2 {
		t.Errorf("applied %v, undone %v; want both experiments applied and undone", faults.applied, faults.undone)
	}

	// The polled health endpoint says when a store is down: the stores'
	// health, which the web pods' readiness no longer reports.
	t.Run("stores health polled", func(t *testing.T) {
		q := requirementRows(run)["R33"]
		var answered *reports.Value
		for i, v := range q.Values {
			if v.Name == "health endpoint answered" {
				answered = &q.Values[i]
			}
		}
		t.Logf("R33: %s: %s", q.Status, q.Measured)
		if answered == nil || answered.Value >= 1 || answered.Value <= 0.5 {
			t.Errorf("R33 = %+v; want the health endpoint failing while PostgreSQL was down, and answering otherwise", q)
		}
	})

	t.Run("redis RTO", func(t *testing.T) {
		e := experimentNamed(run, chaosmesh.RedisMasterFailure)
		if e == nil || e.RTO == nil {
			t.Fatalf("redis experiment %+v, want an RTO", e)
		}
		if faults.promotedAt.IsZero() {
			t.Fatal("the test never saw a replica promoted")
		}
		rto := time.Duration(*e.RTO)
		replica, promoted := faults.replicaAt.Sub(faults.killedAt), faults.promotedAt.Sub(faults.killedAt)
		t.Logf("redis: killed at %s, the test saw the replica promoted between %s and %s after the kill; report: RTO %s, first error %s after the kill",
			faults.killedAt.Format(time.StampMilli), replica.Round(time.Millisecond), promoted.Round(time.Millisecond),
			rto.Round(time.Millisecond), e.FirstError.Sub(faults.killedAt).Round(time.Millisecond))
		if !e.InjectedAt.Equal(faults.killedAt) {
			t.Errorf("injected at %s, want the kill at %s", e.InjectedAt, faults.killedAt)
		}
		// No write is acknowledged before the replica is promoted, nor
		// before Sentinel declared the old master down.
		if low := max(replica, sentinelDownAfter); rto < low {
			t.Errorf("RTO %s, but the replica was promoted only after %s (and Sentinel waits %s)", rto, replica, sentinelDownAfter)
		}
		if high := promoted + clientSlack; rto > high {
			t.Errorf("RTO %s, more than %s after the kill: the replica was master %s after it, plus the clients' slack %s", rto, high, promoted, clientSlack)
		}
	})

	t.Run("postgres RTO", func(t *testing.T) {
		e := experimentNamed(run, chaosmesh.PostgresPrimaryFailure)
		if e == nil || e.RTO == nil {
			t.Fatalf("postgres experiment %+v, want an RTO", e)
		}
		rec := e.RecoveredAt
		t.Logf("postgres: stopped at %s, start after %s, accepting after %s; report: RTO %s, recovered %s after the start",
			faults.stoppedAt.Format(time.StampMilli), faults.restartAt.Sub(faults.stoppedAt).Round(time.Millisecond),
			faults.readyAt.Sub(faults.stoppedAt).Round(time.Millisecond), time.Duration(*e.RTO).Round(time.Millisecond), rec.Sub(faults.restartAt).Round(time.Millisecond))
		if !e.InjectedAt.Equal(faults.stoppedAt) {
			t.Errorf("injected at %s, want the stop at %s", e.InjectedAt, faults.stoppedAt)
		}
		if rec.Before(faults.restartAt) {
			t.Errorf("recovered at %s, before PostgreSQL was started again at %s", rec, faults.restartAt)
		}
		if high := faults.readyAt.Add(clientSlack); rec.After(high) {
			t.Errorf("recovered at %s, more than %s after PostgreSQL accepted connections at %s", rec, clientSlack, faults.readyAt)
		}
	})

	t.Run("lost writes", func(t *testing.T) {
		tl := prober.Timeline(true)
		for _, tc := range []struct{ exp, store string }{
			{chaosmesh.PostgresPrimaryFailure, probeapi.StorePostgres},
			{chaosmesh.RedisMasterFailure, probeapi.StoreRedis},
		} {
			e := experimentNamed(run, tc.exp)
			if e == nil || e.LostWrites == nil {
				t.Errorf("%s: lost writes not verified: %v", tc.exp, e.NotMeasured)
				continue
			}
			found := readBack(t, tc.store, pool, ha, prober.Run())
			want := []int64{}
			for _, s := range tl.Stores[tc.store].Samples {
				if !s.Acked.IsZero() && !found[s.Seq] && !s.Acked.After(run.Finished) {
					want = append(want, s.Seq)
				}
			}
			t.Logf("%s: %d writes acknowledged, %d read back by the test; report: lost %v", tc.store, tl.Stores[tc.store].Acked, len(found), *e.LostWrites)
			if diff := cmp.Diff(want, *e.LostWrites); diff != "" {
				t.Errorf("%s lost writes (-read back by the test +report):\n%s", tc.store, diff)
			}
		}
		if t.Failed() {
			return // a store without figures was reported above
		}
		q := requirementRows(run)["no-data-loss"]
		lost := len(*experimentNamed(run, chaosmesh.PostgresPrimaryFailure).LostWrites) + len(*experimentNamed(run, chaosmesh.RedisMasterFailure).LostWrites)
		if want := map[bool]reports.Status{true: reports.Fail, false: reports.Pass}[lost > 0]; q.Status != want {
			t.Errorf("no-data-loss = %+v, want %s with %d writes lost", q, want, lost)
		}
	})
}

// webProbes stands in for the workloads' probes, which need a cluster.
type webProbes struct{}

func (webProbes) Probes(context.Context) ([]reports.WorkloadProbes, error) {
	return []reports.WorkloadProbes{{Workload: "Deployment/web", Readiness: true, Liveness: true}}, nil
}

// readBack returns the sequence numbers of the prober's run that the store
// holds, read directly by the test: PostgreSQL's table, or the stream on
// the master Sentinel names now.
func readBack(t *testing.T, store string, pool *pgxpool.Pool, ha *services.RedisHA, run string) map[int64]bool {
	t.Helper()
	ctx := t.Context()
	found := map[int64]bool{}
	switch store {
	case probeapi.StorePostgres:
		rows, err := pool.Query(ctx, "SELECT seq FROM probe_writes WHERE run = $1", run)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var seq int64
			if err := rows.Scan(&seq); err != nil {
				t.Fatal(err)
			}
			found[seq] = true
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	case probeapi.StoreRedis:
		m, err := ha.Master(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(&redis.Options{Addr: m.Addr()})
		defer func() { _ = c.Close() }()
		msgs, err := c.XRange(ctx, "shop:probe:"+run, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range msgs {
			v, _ := msg.Values["seq"].(string)
			seq, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("stream entry %s: %v", msg.ID, err)
			}
			found[seq] = true
		}
	}
	return found
}
