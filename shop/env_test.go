package shop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/jewelry-shop/lab/internal/services"
	"github.com/jewelry-shop/lab/shop"
)

// env is a migrated PostgreSQL, a Redis and the web API on loopback.
type env struct {
	pg  *pgxpool.Pool
	rdb redis.UniversalClient
	web *httptest.Server
}

// newEnv starts PostgreSQL and Redis for the test and serves the web API
// over them.
func newEnv(tb testing.TB) *env {
	tb.Helper()
	pgSrv := services.StartPostgres(tb)
	redisSrv := services.StartRedis(tb)
	pgc := shop.DefaultPostgresConfig()
	pgc.DSN = pgSrv.DSN("postgres")
	pgc.MaxConns = 50
	rc := shop.DefaultRedisConfig()
	rc.Addr = redisSrv.Addr()
	return newEnvOn(tb, pgc, rc)
}

// newEnvOn serves the web API over the given stores.
func newEnvOn(tb testing.TB, pgc shop.PostgresConfig, rc shop.RedisConfig) *env {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := shop.OpenPostgres(ctx, pgc)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	if err := shop.Migrate(ctx, pool); err != nil {
		tb.Fatal(err)
	}
	rdb, err := shop.OpenRedis(rc)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = rdb.Close() })
	srv := httptest.NewServer(shop.NewWeb(shop.DefaultWebConfig(), pool, rdb, nil))
	tb.Cleanup(srv.Close)
	return &env{pg: pool, rdb: rdb, web: srv}
}

// client is one visitor with its own cookie jar.
type client struct {
	t    testing.TB
	base string
	http *http.Client
}

func (e *env) client(tb testing.TB) *client {
	tb.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return &client{t: tb, base: e.web.URL, http: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

// do sends a request with body encoded as JSON (if not nil), decodes a
// JSON answer into out (if not nil) and returns the status code.
func (c *client) do(method, path string, body, out any) int {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}
