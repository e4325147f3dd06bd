package shop_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/jewelry-shop/lab/internal/services"
	"github.com/jewelry-shop/lab/shop"
	"github.com/jewelry-shop/lab/shop/probe"
	"github.com/jewelry-shop/lab/shop/probeapi"
)

// Short timeouts, so that failures are noticed within a second.
const (
	probeInterval = 50 * time.Millisecond
	writeTimeout  = 500 * time.Millisecond
)

func failoverConfigs(pgDSN string) (shop.PostgresConfig, shop.RedisConfig) {
	pgc := shop.DefaultPostgresConfig()
	pgc.DSN = pgDSN
	pgc.ConnectTimeout, pgc.StatementTimeout, pgc.HealthCheckPeriod = writeTimeout, writeTimeout, time.Second
	rc := shop.DefaultRedisConfig()
	rc.DialTimeout, rc.ReadTimeout, rc.WriteTimeout = writeTimeout, writeTimeout, writeTimeout
	rc.MaxRetries = -1 // a retried XADD could be applied twice
	return pgc, rc
}

// startProber runs a prober over the stores until the test ends.
func startProber(t *testing.T, pgc shop.PostgresConfig, rc shop.RedisConfig) *probe.Prober {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pool, err := shop.OpenPostgres(ctx, pgc)
	if err != nil {
		t.Fatal(err)
	}
	rdb, err := shop.OpenRedis(rc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := probe.DefaultConfig()
	cfg.Interval, cfg.WriteTimeout = probeInterval, writeTimeout
	p := probe.New(cfg, pool, rdb, nil)
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Probe(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = rdb.Close()
		pool.Close()
	})
	return p
}

// waitFor polls cond every probe interval until it holds or 30 s pass.
func waitFor(t *testing.T, what string, cond func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 30s waiting for %s", what)
		}
		time.Sleep(probeInterval)
	}
	return time.Now()
}

// ackedSeqs returns the sequence numbers the prober saw acknowledged.
func ackedSeqs(st probeapi.StoreTimeline) []int64 {
	var acked []int64
	for _, s := range st.Samples {
		if !s.Acked.IsZero() {
			acked = append(acked, s.Seq)
		}
	}
	return acked
}

// missingFrom returns the acked sequence numbers not in found.
func missingFrom(acked []int64, found map[int64]bool) []int64 {
	missing := []int64{}
	for _, s := range acked {
		if !found[s] {
			missing = append(missing, s)
		}
	}
	return missing
}

// checkWindow checks the one outage of store against what the test
// observed: the store went down at down and came back at up.
func checkWindow(t *testing.T, tl probeapi.Timeline, store string, down, up time.Time) probeapi.Window {
	t.Helper()
	outages := tl.Stores[store].Outages
	if len(outages) != 1 || outages[0].End == nil {
		t.Fatalf("%s outages = %+v, want one closed window", store, outages)
	}
	w := outages[0]
	t.Logf("%s: down at %s, back at %s; prober outage %s → %s (%s, %d failed writes, first error %q)",
		store, down.Format(time.StampMilli), up.Format(time.StampMilli), w.Start.Format(time.StampMilli),
		w.End.Format(time.StampMilli), w.End.Sub(w.Start).Round(time.Millisecond), w.Failed, w.FirstError)
	// A write sent up to one timeout before the failure can fail with it.
	if w.Start.Before(down.Add(-writeTimeout)) || w.Start.After(up) {
		t.Errorf("%s outage starts at %s, want between %s (down minus a write timeout) and %s (back)", store, w.Start, down.Add(-writeTimeout), up)
	}
	// Nothing is acknowledged while the store is down.
	if w.End.Before(up) {
		t.Errorf("%s outage ends at %s, before the store was back at %s", store, w.End, up)
	}
	if w.LastAckBefore == nil || w.LastAckBefore.After(w.Start.Add(writeTimeout)) {
		t.Errorf("%s: last ack before the outage = %v, want one before its start", store, w.LastAckBefore)
	}
	if other := otherStore(store); len(tl.Stores[other].Outages) != 0 {
		t.Errorf("%s had outages %+v while only %s failed", other, tl.Stores[other].Outages, store)
	}
	return w
}

func otherStore(s string) string {
	if s == probeapi.StorePostgres {
		return probeapi.StoreRedis
	}
	return probeapi.StorePostgres
}

// startBackground runs a worker and a beat (fast settings) over the
// env's stores until the test ends.
func startBackground(t *testing.T, e *env) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	wc := shop.DefaultWorkerConfig()
	wc.Consumer, wc.Block, wc.ClaimIdle, wc.RetryDelay, wc.JobTimeout = "w1", 100*time.Millisecond, time.Second, 100*time.Millisecond, time.Second
	bc := shop.DefaultBeatConfig()
	bc.ID, bc.Interval, bc.RequeueAfter, bc.JobTimeout = "b1", 200*time.Millisecond, time.Second, time.Second
	done := make(chan struct{}, 2)
	for _, run := range []func(context.Context) error{
		shop.NewWorker(wc, e.pg, e.rdb, nil).Run,
		shop.NewBeat(bc, e.pg, e.rdb, nil).Run,
	} {
		go func() {
			defer func() { done <- struct{}{} }()
			if err := run(ctx); err != nil {
				t.Errorf("background job: %v", err)
			}
		}()
	}
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
	})
}

// checkAllFulfilled waits until every order is fulfilled, then checks
// that each was fulfilled exactly once.
func checkAllFulfilled(t *testing.T, e *env) {
	t.Helper()
	ctx := t.Context()
	var orders, pending int
	waitFor(t, "every order fulfilled", func() bool {
		err := e.pg.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE status = 'pending') FROM orders").Scan(&orders, &pending)
		return err == nil && pending == 0
	})
	var fulfilments, distinct int
	if err := e.pg.QueryRow(ctx, "SELECT count(*), count(DISTINCT order_id) FROM fulfilments").Scan(&fulfilments, &distinct); err != nil {
		t.Fatal(err)
	}
	if orders == 0 || fulfilments != orders || distinct != orders {
		t.Errorf("%d orders, %d fulfilments of %d distinct orders; want one fulfilment per order", orders, fulfilments, distinct)
	}
}

// checkRecovered checks that the web API, never restarted, serves a
// checkout again.
func checkRecovered(t *testing.T, e *env) {
	t.Helper()
	c := e.client(t)
	waitFor(t, "web /healthz/stores", func() bool { return c.do("GET", "/healthz/stores", nil, nil) == http.StatusOK })
	waitFor(t, "a checkout", func() bool {
		if c.do("POST", "/api/cart/items", shop.CartItemRequest{ProductID: 9, Quantity: 1}, nil) != http.StatusCreated {
			return false
		}
		return c.do("POST", "/api/checkout", nil, nil) == http.StatusCreated
	})
}

// TestFailoverRedisMasterKilled kills the Redis master under three
// Sentinels while the prober and the web API run.
func TestFailoverRedisMasterKilled(t *testing.T) {
	t.Parallel()
	pg := services.StartPostgres(t)
	const downAfter = time.Second
	ha := services.StartRedisHA(t, services.SentinelOptions{DownAfter: downAfter, FailoverTimeout: 3 * time.Second})
	pgc, rc := failoverConfigs(pg.DSN("postgres"))
	rc.Sentinels, rc.MasterName = ha.SentinelAddrs(), ha.MasterName
	e := newEnvOn(t, pgc, rc)
	startBackground(t, e)
	p := startProber(t, pgc, rc)
	ctx := t.Context()

	placeOrders(t, e, 3)
	waitFor(t, "20 acknowledged writes", func() bool { return p.Timeline(false).Stores[probeapi.StoreRedis].Acked >= 20 })
	old, err := ha.Master(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old.Kill(t)
	down := time.Now()
	var promoted *services.Redis
	up := waitFor(t, "a new master", func() bool {
		m, err := ha.Master(ctx)
		promoted = m
		return err == nil && m != old
	})
	waitFor(t, "the redis outage to end", func() bool {
		o := p.Timeline(false).Stores[probeapi.StoreRedis].Outages
		return len(o) > 0 && o[0].End != nil
	})
	tl := p.Timeline(true)
	w := checkWindow(t, tl, probeapi.StoreRedis, down, up)
	if rto := w.End.Sub(down); rto < downAfter {
		t.Errorf("recovered %s after the kill, sooner than Sentinel's down-after of %s", rto, downAfter)
	}
	checkRecovered(t, e)
	checkAllFulfilled(t, e)

	// Read the stream back ourselves from the new master.
	direct := redis.NewClient(&redis.Options{Addr: promoted.Addr()})
	defer func() { _ = direct.Close() }()
	tl = p.Timeline(true)
	v := p.Verify(ctx)
	msgs, err := direct.XRange(ctx, "shop:probe:"+p.Run(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	found := map[int64]bool{}
	for _, m := range msgs {
		s, _ := strconv.ParseInt(m.Values["seq"].(string), 10, 64)
		found[s] = true
	}
	acked := ackedSeqs(tl.Stores[probeapi.StoreRedis])
	want := missingFrom(acked, found)
	got := v.Stores[probeapi.StoreRedis]
	t.Logf("redis: %d writes acknowledged (timeline), %d verified, %d in the stream, missing %v", len(acked), got.Acked, len(found), got.Missing)
	if diff := cmp.Diff(want, got.Missing); diff != "" || got.Error != "" {
		t.Errorf("verify redis missing (-read back by the test +prober), error %q:\n%s", got.Error, diff)
	}
	if len(got.Duplicates) != 0 {
		t.Errorf("verify redis duplicates = %v, want none (writes are not retried)", got.Duplicates)
	}
}

// TestFailoverPostgres stops PostgreSQL gracefully, or kills it with all
// its backends, keeps it down for a while and starts it again while the
// prober and the web API run.
func TestFailoverPostgres(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		down func(*services.Postgres, testing.TB)
	}{
		{name: "stop", down: (*services.Postgres).Stop},
		{name: "kill", down: (*services.Postgres).Kill},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pg := services.StartPostgres(t)
			rs := services.StartRedis(t)
			failoverPostgres(t, pg, rs, tt.down)
		})
	}
}

func failoverPostgres(t *testing.T, pg *services.Postgres, rs *services.Redis, stop func(*services.Postgres, testing.TB)) {
	t.Helper()
	pgc, rc := failoverConfigs(pg.DSN("postgres"))
	rc.Addr = rs.Addr()
	e := newEnvOn(t, pgc, rc)
	startBackground(t, e)
	p := startProber(t, pgc, rc)
	ctx := t.Context()

	placeOrders(t, e, 3)
	waitFor(t, "20 acknowledged writes", func() bool { return p.Timeline(false).Stores[probeapi.StorePostgres].Acked >= 20 })
	down := time.Now()
	stop(pg, t)
	// While PostgreSQL is down the web API answers, with 503 where it
	// needs PostgreSQL; the pod stays ready, so that the Service keeps it
	// and requests that need no PostgreSQL are served; /healthz/stores
	// says which store is down.
	c := e.client(t)
	for _, path := range []string{"/healthz/stores", "/api/products", "/api/products/1"} {
		if code := c.do("GET", path, nil, nil); code != http.StatusServiceUnavailable {
			t.Errorf("GET %s with PostgreSQL down: code %d, want 503", path, code)
		}
	}
	for path, why := range map[string]string{
		"/healthz":        "the process is alive",
		"/readyz":         "the pod can serve: a store fault must not empty the Service",
		"/api/categories": "it needs no store",
	} {
		if code := c.do("GET", path, nil, nil); code != http.StatusOK {
			t.Errorf("GET %s with PostgreSQL down: code %d, want 200 (%s)", path, code, why)
		}
	}
	var stores map[string]string
	if code := c.do("GET", "/healthz/stores", nil, &stores); code != http.StatusServiceUnavailable || stores["redis"] != "ok" || stores["postgres"] == "ok" || stores["postgres"] == "" {
		t.Errorf("GET /healthz/stores with PostgreSQL down = %d %v, want 503 naming postgres down and redis ok", code, stores)
	}
	time.Sleep(time.Until(down.Add(time.Second)))
	up := time.Now()
	pg.Start(t)
	waitFor(t, "the postgres outage to end", func() bool {
		o := p.Timeline(false).Stores[probeapi.StorePostgres].Outages
		return len(o) > 0 && o[0].End != nil
	})
	checkWindow(t, p.Timeline(false), probeapi.StorePostgres, down, up)
	checkRecovered(t, e)
	checkAllFulfilled(t, e)

	tl := p.Timeline(true)
	v := p.Verify(ctx)
	rows, err := e.pg.Query(ctx, "SELECT seq FROM probe_writes WHERE run = $1", p.Run())
	if err != nil {
		t.Fatal(err)
	}
	found := map[int64]bool{}
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		found[s] = true
	}
	acked := ackedSeqs(tl.Stores[probeapi.StorePostgres])
	want := missingFrom(acked, found)
	got := v.Stores[probeapi.StorePostgres]
	t.Logf("postgres: %d writes acknowledged (timeline), %d verified, %d rows, missing %v, unacknowledged but present %v",
		len(acked), got.Acked, len(found), got.Missing, got.UnackedPresent)
	if diff := cmp.Diff(want, got.Missing); diff != "" || got.Error != "" {
		t.Errorf("verify postgres missing (-read back by the test +prober), error %q:\n%s", got.Error, diff)
	}
	if len(got.Duplicates) != 0 {
		t.Errorf("verify postgres duplicates = %v, want none", got.Duplicates)
	}

	// The same answers over HTTP, as the lab reads them.
	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	pc := &client{t: t, base: srv.URL, http: srv.Client()}
	var wireTL probeapi.Timeline
	if code := pc.do("GET", "/timeline", nil, &wireTL); code != http.StatusOK {
		t.Fatalf("GET /timeline: code %d", code)
	}
	if diff := cmp.Diff(p.Timeline(false).Stores[probeapi.StorePostgres].Outages, wireTL.Stores[probeapi.StorePostgres].Outages); diff != "" {
		t.Errorf("outages over HTTP (-direct +wire):\n%s", diff)
	}
	var wireV probeapi.Verification
	if code := pc.do("GET", "/verify", nil, &wireV); code != http.StatusOK {
		t.Fatalf("GET /verify: code %d", code)
	}
	if wv := wireV.Stores[probeapi.StorePostgres]; wv.Acked < got.Acked || len(wv.Missing) != len(got.Missing) {
		t.Errorf("verify over HTTP = %+v, want at least %d acked and missing %v", wv, got.Acked, got.Missing)
	}
}
