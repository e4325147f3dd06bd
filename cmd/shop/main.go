// Command shop is the jewelry-shop reference service: one binary with four
// modes.
//
//	shop web      HTTP API of the shop (catalogue, search, cart, checkout, accounts)
//	shop worker   fulfils orders from the Redis job stream
//	shop beat     periodic jobs, one active instance at a time
//	shop probe    failover prober: timeline and verification over HTTP
//	shop --version
//
// Every flag has an environment variable (SHOP_*) as its default; run
// "shop <mode> --help" for the list, or see shop/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/jewelry-shop/lab/shop"
	"github.com/jewelry-shop/lab/shop/probe"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `Usage: shop <mode> [flags]

Modes:
  web      HTTP API of the shop
  worker   fulfils orders from the Redis job stream
  beat     periodic jobs (one active instance at a time)
  probe    failover prober (GET /timeline, GET /verify)

Run "shop <mode> --help" for the flags of a mode; each flag has an
environment variable named in its description.
"shop --version" prints the version.
`

// run executes the command line and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		_, _ = fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "--version", "-version", "version":
		_, _ = fmt.Fprintf(stdout, "shop %s (commit %s)\n", version, commit)
		return 0
	case "-h", "--help", "help":
		_, _ = fmt.Fprint(stdout, usage)
		return 0
	}
	mode := args[0]
	c := defaultConfig(mode)
	fs := flag.NewFlagSet("shop "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	ef := &envFlags{fs: fs}
	switch mode {
	case "web", "worker", "beat", "probe":
		c.register(ef, mode)
	default:
		_, _ = fmt.Fprintf(stderr, "shop: unknown mode %q\n\n%s", mode, usage)
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := errors.Join(ef.errs...); err != nil {
		_, _ = fmt.Fprintf(stderr, "shop: %v\n", err)
		return 2
	}
	log, err := newLogger(stderr, c.logLevel)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "shop: %v\n", err)
		return 2
	}
	log = log.With("mode", mode, "version", version)
	redis.SetLogger(redisLogger{log: log.With("component", "go-redis")})
	if err := c.run(ctx, mode, log); err != nil {
		log.Error("exit", "error", err.Error())
		return 1
	}
	return 0
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// redisLogger sends go-redis's own messages (failover notices) to slog.
type redisLogger struct{ log *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.log.InfoContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)))
}

// config is everything a mode can be configured with.
type config struct {
	listen         string
	logLevel       string
	migrateTimeout time.Duration
	pg             shop.PostgresConfig
	pgMaxConns     int64
	redis          shop.RedisConfig
	redisRetries   int64
	web            shop.WebConfig
	worker         shop.WorkerConfig
	workerBatch    int64
	restockBelow   int64
	restockTo      int64
	beat           shop.BeatConfig
	probe          probe.Config
}

func defaultConfig(mode string) *config {
	host, _ := os.Hostname()
	if host == "" {
		host = "shop"
	}
	c := &config{
		listen:         ":8000",
		logLevel:       "info",
		migrateTimeout: 2 * time.Minute,
		pg:             shop.DefaultPostgresConfig(),
		redis:          shop.DefaultRedisConfig(),
		web:            shop.DefaultWebConfig(),
		worker:         shop.DefaultWorkerConfig(),
		beat:           shop.DefaultBeatConfig(),
		probe:          probe.DefaultConfig(),
	}
	c.pgMaxConns = int64(c.pg.MaxConns)
	c.redisRetries = int64(c.redis.MaxRetries)
	if mode == "probe" {
		// A retried write could be applied twice: the prober measures
		// single attempts.
		c.redisRetries = -1
	}
	c.worker.Consumer = host
	c.workerBatch = c.worker.Batch
	c.restockBelow, c.restockTo = int64(c.beat.RestockBelow), int64(c.beat.RestockTo)
	c.beat.ID = host + "-" + strconv.Itoa(os.Getpid())
	return c
}

// register declares the flags of mode.
func (c *config) register(f *envFlags, mode string) {
	f.string(&c.listen, "listen", "SHOP_LISTEN", "HTTP listen address (API in web mode; /healthz, /readyz, /metrics in worker and beat; /timeline, /verify in probe)")
	f.string(&c.logLevel, "log-level", "SHOP_LOG_LEVEL", "log level: debug, info, warn or error (JSON logs on stderr)")
	f.string(&c.pg.DSN, "pg-dsn", "SHOP_PG_DSN", "PostgreSQL connection string (URL or key=value), through the primary Service")
	f.duration(&c.pg.ConnectTimeout, "pg-connect-timeout", "SHOP_PG_CONNECT_TIMEOUT", "timeout to establish one PostgreSQL connection")
	f.duration(&c.pg.StatementTimeout, "pg-statement-timeout", "SHOP_PG_STATEMENT_TIMEOUT", "PostgreSQL statement_timeout of every connection")
	f.duration(&c.pg.HealthCheckPeriod, "pg-health-check-period", "SHOP_PG_HEALTH_CHECK_PERIOD", "how often idle PostgreSQL connections are checked")
	f.int64(&c.pgMaxConns, "pg-max-conns", "SHOP_PG_MAX_CONNS", "size of the PostgreSQL connection pool")
	f.list(&c.redis.Sentinels, "redis-sentinels", "SHOP_REDIS_SENTINELS", "comma-separated host:port of the Redis Sentinels")
	f.string(&c.redis.MasterName, "redis-master", "SHOP_REDIS_MASTER", "name of the master the Sentinels monitor")
	f.string(&c.redis.Addr, "redis-addr", "SHOP_REDIS_ADDR", "host:port of a Redis without Sentinel (used when no sentinels are set)")
	f.string(&c.redis.Password, "redis-password", "SHOP_REDIS_PASSWORD", "Redis password (not of Sentinel)")
	f.duration(&c.redis.DialTimeout, "redis-dial-timeout", "SHOP_REDIS_DIAL_TIMEOUT", "timeout to establish one Redis connection")
	f.duration(&c.redis.ReadTimeout, "redis-read-timeout", "SHOP_REDIS_READ_TIMEOUT", "Redis socket read timeout")
	f.duration(&c.redis.WriteTimeout, "redis-write-timeout", "SHOP_REDIS_WRITE_TIMEOUT", "Redis socket write timeout")
	f.int64(&c.redisRetries, "redis-max-retries", "SHOP_REDIS_MAX_RETRIES", "retries of a failed Redis command (-1: none)")
	f.duration(&c.web.ShutdownTimeout, "shutdown-timeout", "SHOP_SHUTDOWN_TIMEOUT", "graceful shutdown timeout")
	f.duration(&c.web.RequestTimeout, "request-timeout", "SHOP_REQUEST_TIMEOUT", "timeout of the store work of one request or readiness check")
	switch mode {
	case "web":
		f.duration(&c.web.SessionTTL, "session-ttl", "SHOP_SESSION_TTL", "lifetime of an unused session and its cart")
		f.int64(&c.web.MaxQuantity, "max-quantity", "SHOP_MAX_QUANTITY", "most of one product a single add to cart may ask for")
		f.duration(&c.migrateTimeout, "migrate-timeout", "SHOP_MIGRATE_TIMEOUT", "how long to retry the schema migration at start")
	case "worker":
		f.string(&c.worker.Consumer, "worker-consumer", "SHOP_WORKER_CONSUMER", "consumer name in the group, unique per worker (default: host name)")
		f.int64(&c.workerBatch, "worker-batch", "SHOP_WORKER_BATCH", "most jobs read at once")
		f.duration(&c.worker.Block, "worker-block", "SHOP_WORKER_BLOCK", "how long one read waits for jobs")
		f.duration(&c.worker.ClaimIdle, "worker-claim-idle", "SHOP_WORKER_CLAIM_IDLE", "idle time after which a crashed consumer's jobs are taken over")
		f.duration(&c.worker.JobTimeout, "worker-job-timeout", "SHOP_WORKER_JOB_TIMEOUT", "timeout of one job")
		f.duration(&c.worker.RetryDelay, "worker-retry-delay", "SHOP_WORKER_RETRY_DELAY", "pause after a store error")
	case "beat":
		f.string(&c.beat.ID, "beat-id", "SHOP_BEAT_ID", "instance id in the leader key (default: host name and PID)")
		f.duration(&c.beat.Interval, "beat-interval", "SHOP_BEAT_INTERVAL", "period of the jobs")
		f.duration(&c.beat.LeaderTTL, "beat-leader-ttl", "SHOP_BEAT_LEADER_TTL", "leadership lifetime without renewal")
		f.duration(&c.beat.CartIdle, "cart-idle", "SHOP_CART_IDLE", "carts unchanged for longer are expired")
		f.duration(&c.beat.RequeueAfter, "order-requeue-after", "SHOP_ORDER_REQUEUE_AFTER", "orders pending for longer are enqueued again")
		f.duration(&c.beat.JobTimeout, "beat-job-timeout", "SHOP_BEAT_JOB_TIMEOUT", "timeout of one run of the jobs")
		f.int64(&c.restockBelow, "restock-below", "SHOP_RESTOCK_BELOW", "products with less stock are restocked (0: never)")
		f.int64(&c.restockTo, "restock-to", "SHOP_RESTOCK_TO", "stock a restocked product gets")
	case "probe":
		f.duration(&c.probe.Interval, "probe-interval", "SHOP_PROBE_INTERVAL", "time between two probe writes")
		f.duration(&c.probe.WriteTimeout, "probe-write-timeout", "SHOP_PROBE_WRITE_TIMEOUT", "timeout of one probe write")
		f.duration(&c.probe.ReadTimeout, "probe-read-timeout", "SHOP_PROBE_READ_TIMEOUT", "timeout of reading one store back in /verify")
		f.string(&c.probe.Run, "probe-run", "SHOP_PROBE_RUN", "name of this run (default: random)")
		f.duration(&c.probe.Retain, "probe-retain", "SHOP_PROBE_RETAIN", "how long the writes are kept for /timeline and /verify (0 keeps all)")
	}
}

// run starts mode and blocks until ctx is cancelled or it fails.
func (c *config) run(ctx context.Context, mode string, log *slog.Logger) error {
	c.pg.MaxConns = int32(min(max(c.pgMaxConns, 1), 1000))
	c.redis.MaxRetries = int(c.redisRetries)
	c.worker.Batch = c.workerBatch
	c.beat.RestockBelow = int32(min(max(c.restockBelow, 0), 1<<30))
	c.beat.RestockTo = int32(min(max(c.restockTo, 0), 1<<30))
	pool, err := shop.OpenPostgres(ctx, c.pg)
	if err != nil {
		return err
	}
	defer pool.Close()
	rdb, err := shop.OpenRedis(c.redis)
	if err != nil {
		return err
	}
	defer func() { _ = rdb.Close() }()
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", c.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.listen, err)
	}
	switch mode {
	case "web":
		// Alive while it waits for PostgreSQL, ready once migrated.
		return shop.NewWeb(c.web, pool, rdb, log).ServeWhen(ctx, l, func(ctx context.Context) error {
			return migrate(ctx, pool, c.migrateTimeout, log)
		})
	case "worker":
		w := shop.NewWorker(c.worker, pool, rdb, log)
		return runWithOps(ctx, l, shop.OpsHandler(w.Registry(), pool, rdb, c.web.RequestTimeout), c.web.ShutdownTimeout, log, w.Run)
	case "beat":
		b := shop.NewBeat(c.beat, pool, rdb, log)
		return runWithOps(ctx, l, shop.OpsHandler(b.Registry(), pool, rdb, c.web.RequestTimeout), c.web.ShutdownTimeout, log, b.Run)
	default: // probe
		p := probe.New(c.probe, pool, rdb, log)
		log.Info("probing", "run", p.Run(), "interval", c.probe.Interval.String())
		return runWithOps(ctx, l, p.Handler(), c.web.ShutdownTimeout, log, func(ctx context.Context) error {
			if err := p.Start(ctx); err != nil {
				if ctx.Err() != nil {
					return nil // stopped before PostgreSQL was reachable
				}
				return err
			}
			p.Probe(ctx)
			return nil
		})
	}
}

// migrate retries the migration until it succeeds or timeout passes: at
// start PostgreSQL may not be up yet.
func migrate(ctx context.Context, pool *pgxpool.Pool, timeout time.Duration, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := shop.Migrate(ctx, pool)
		if err == nil {
			log.Info("schema migrated")
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		log.Warn("migrate, retrying", "error", err.Error())
		select {
		case <-ctx.Done():
			return err
		case <-time.After(2 * time.Second):
		}
	}
}

// runWithOps runs work and an HTTP server together until ctx is cancelled
// or one of them fails, and stops both.
func runWithOps(ctx context.Context, l net.Listener, h http.Handler, shutdown time.Duration, log *slog.Logger, work func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- shop.Serve(ctx, l, h, shutdown, log) }()
	go func() { errc <- work(ctx) }()
	err := <-errc
	cancel()
	return errors.Join(err, <-errc)
}
