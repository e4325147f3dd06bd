package lab

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jewelry-shop/lab/internal/services"
	"github.com/jewelry-shop/lab/load"
	"github.com/jewelry-shop/lab/shop"
)

// TestDefaultScenarioAgainstShop runs the load generator's built-in scenario
// against the real reference service on real PostgreSQL and Redis: every
// behaviour and step runs, and not one request fails.
func TestDefaultScenarioAgainstShop(t *testing.T) {
	pgSrv := services.StartPostgres(t)
	redisSrv := services.StartRedis(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	pgc := shop.DefaultPostgresConfig()
	pgc.DSN = pgSrv.DSN("postgres")
	pool, err := shop.OpenPostgres(ctx, pgc)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := shop.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	rc := shop.DefaultRedisConfig()
	rc.Addr = redisSrv.Addr()
	rdb, err := shop.OpenRedis(rc)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	web := httptest.NewServer(shop.NewWeb(shop.DefaultWebConfig(), pool, rdb, nil))
	defer web.Close()

	scenario := load.DefaultScenario()
	res, err := load.Run(ctx, load.Options{
		Target:      web.URL,
		Scenario:    scenario,
		Model:       load.Closed,
		Users:       20,
		SpawnRate:   20,
		Duration:    6 * time.Second,
		MaxRequests: 20000,
		Think:       &load.ThinkTime{Min: 50 * time.Millisecond, Max: 150 * time.Millisecond},
		Seed:        1,
	})
	if err != nil {
		t.Fatalf("load.Run: %v", err)
	}
	t.Logf("%d requests, %d failed, p95 %v", res.Overall.Requests, res.Overall.Failures, res.Overall.Latency.P95)
	if res.Overall.Requests < 100 || res.Overall.Failures != 0 {
		t.Errorf("%d requests, %d failed (by class %v); want many and none failed", res.Overall.Requests, res.Overall.Failures, res.Overall.ByClass)
	}
	for _, e := range res.Endpoints {
		if e.Requests == 0 || e.Failures != 0 {
			t.Errorf("step %s: %d requests, %d failed (%v)", e.Name, e.Requests, e.Failures, e.ByClass)
		}
	}
}
