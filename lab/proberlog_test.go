package lab

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jewelry-shop/lab/chaosmesh"
	"github.com/jewelry-shop/lab/internal/services"
	"github.com/jewelry-shop/lab/shop"
	"github.com/jewelry-shop/lab/shop/probe"
)

// proberPod runs a real prober on loopback behind one address, as the probe
// Service does, and can replace it by a new one (a new run), as a node
// failure that evicts the prober's pod does.
type proberPod struct {
	t       *testing.T
	pgc     shop.PostgresConfig
	rc      shop.RedisConfig
	handler atomic.Pointer[http.Handler]
	mu      sync.Mutex
	stop    context.CancelFunc
	runs    []string
	done    sync.WaitGroup
	queries []string
}

func (p *proberPod) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.queries = append(p.queries, r.URL.RequestURI())
	p.mu.Unlock()
	(*p.handler.Load()).ServeHTTP(w, r)
}

// start starts a new prober and sends the requests to it, stopping the
// previous one.
func (p *proberPod) start(ctx context.Context) {
	p.t.Helper()
	pool, err := shop.OpenPostgres(ctx, p.pgc)
	if err != nil {
		p.t.Fatal(err)
	}
	rdb, err := shop.OpenRedis(p.rc)
	if err != nil {
		p.t.Fatal(err)
	}
	cfg := probe.DefaultConfig()
	cfg.Interval, cfg.WriteTimeout = probeEvery, storeWriteTimeout
	pr := probe.New(cfg, pool, rdb, nil)
	if err := pr.Start(ctx); err != nil {
		p.t.Fatal(err)
	}
	pctx, cancel := context.WithCancel(ctx)
	p.mu.Lock()
	if p.stop != nil {
		p.stop()
	}
	p.stop = cancel
	p.runs = append(p.runs, pr.Run())
	p.mu.Unlock()
	p.done.Go(func() {
		pr.Probe(pctx)
		pool.Close()
		_ = rdb.Close()
	})
	h := pr.Handler()
	p.handler.Store(&h)
}

// evictingFaults stops PostgreSQL for the primary failure, and for the web
// pod kill replaces the prober, as if its node had failed.
type evictingFaults struct {
	pg     *services.Postgres
	prober *proberPod
	t      *testing.T
}

func (f *evictingFaults) Apply(ctx context.Context, exp chaosmesh.Experiment, _ string) (*chaosmesh.Applied, func(context.Context) error, error) {
	switch exp.Name {
	case chaosmesh.PostgresPrimaryFailure:
		f.pg.Stop(f.t)
		return &chaosmesh.Applied{Experiment: exp, CreatedAt: time.Now()}, func(context.Context) error { f.pg.Start(f.t); return nil }, nil
	case chaosmesh.WebPodKill:
		f.prober.start(ctx)
		return &chaosmesh.Applied{Experiment: exp, CreatedAt: time.Now()}, func(context.Context) error { return nil }, nil
	}
	return nil, nil, fmt.Errorf("no stand-in for %s", exp.Name)
}

func (f *evictingFaults) WaitInjected(_ context.Context, a *chaosmesh.Applied, _ time.Duration) (chaosmesh.Injection, error) {
	return chaosmesh.Injection{Injected: true, At: a.CreatedAt}, nil
}

// TestProberRecordSurvivesARestart: the runner reads the prober during the
// run, piece by piece, so that an experiment's RTO and loss check survive
// the prober's pod being replaced later in the run (node failure can evict
// it): a real prober on real PostgreSQL and Redis measures a real
// PostgreSQL stop, and is then replaced by a new one before the run ends.
func TestProberRecordSurvivesARestart(t *testing.T) {
	t.Parallel()
	pg := services.StartPostgres(t)
	rs := services.StartRedis(t)
	pgc := shop.DefaultPostgresConfig()
	pgc.DSN = pg.DSN("postgres")
	pgc.ConnectTimeout, pgc.StatementTimeout, pgc.HealthCheckPeriod = storeWriteTimeout, storeWriteTimeout, time.Second
	rc := shop.DefaultRedisConfig()
	rc.Addr = rs.Addr()
	rc.DialTimeout, rc.ReadTimeout, rc.WriteTimeout = storeWriteTimeout, storeWriteTimeout, storeWriteTimeout
	rc.MaxRetries = -1

	ctx, stop := context.WithCancel(t.Context())
	pod := &proberPod{t: t, pgc: pgc, rc: rc}
	t.Cleanup(func() {
		stop()
		pod.done.Wait()
	})
	pod.start(ctx)
	srv := httptest.NewServer(pod)
	t.Cleanup(srv.Close)

	// Scaled by 0.1: load 20 s, PostgreSQL stopped for 2 s from 2 s, the
	// prober replaced at 7 s.
	p := shortProfile(chaosmesh.PostgresPrimaryFailure, chaosmesh.WebPodKill)
	p.Load, p.Spacing, p.ScaleDownWatch = 200*time.Second, 50*time.Second, 10*time.Second
	tm := chaosmesh.DefaultTiming()
	tm.PrimaryDown = 20 * time.Second
	pl, err := NewPlan(p, chaosmesh.Catalogue(chartTargets(StackNamespace, StackRelease), tm))
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld()
	r := NewRunner(RunnerConfig{
		Load:   fakeLoad{w: w, users: p.Users},
		Prober: HTTPProber{Client: srv.Client(), Base: srv.URL},
		Chaos:  &evictingFaults{pg: pg, prober: pod, t: t},
		RunID:  "restart", Scale: 0.1, Sustain: time.Second, Unavailable: testUnavailable(),
	})
	run, err := r.Run(ctx, pl)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	md := checkRenders(t, run)
	if len(pod.runs) != 2 {
		t.Fatalf("prober runs %v, want the first and its replacement", pod.runs)
	}
	e := experimentNamed(run, chaosmesh.PostgresPrimaryFailure)
	if e == nil || e.RTO == nil || e.LostWrites == nil {
		t.Fatalf("the PostgreSQL stop before the prober's restart lost its figures: %+v\n%s", e, md)
	}
	rto := time.Duration(*e.RTO)
	t.Logf("postgres stopped for 2s: RTO %s, lost %v; prober runs %v", rto, *e.LostWrites, pod.runs)
	if rto < 2*time.Second || rto > 2*time.Second+clientSlack {
		t.Errorf("RTO %s, want at least the 2 s PostgreSQL was stopped and at most %s more", rto, clientSlack)
	}
	notes := strings.Join(e.Notes, "\n")
	if !strings.Contains(notes, "the prober restarted during the run") || !strings.Contains(notes, pod.runs[0]) || !strings.Contains(notes, pod.runs[1]) {
		t.Errorf("notes %q do not say that the prober restarted", e.Notes)
	}
	pod.mu.Lock()
	defer pod.mu.Unlock()
	reads := 0
	for _, q := range pod.queries {
		if strings.HasPrefix(q, "/timeline?") && strings.Contains(q, "since=") {
			reads++
		}
	}
	if reads < 3 {
		t.Errorf("the prober's timeline was read %d times with since (%v), want the start, after each experiment and at the collection", reads, pod.queries)
	}
}
