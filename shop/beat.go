package shop

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// keyBeatLeader holds the id of the active beat instance, with a TTL.
const keyBeatLeader = "shop:beat:leader"

// BeatConfig configures the beat mode.
type BeatConfig struct {
	// ID names this instance in the leader key; unique per process.
	ID string
	// Interval is the period of the jobs.
	Interval time.Duration
	// LeaderTTL is how long leadership lasts without renewal; another
	// instance takes over at most this long after the leader died.
	LeaderTTL time.Duration
	// CartIdle is how long a cart may stay unchanged before it is
	// expired as abandoned.
	CartIdle time.Duration
	// RequeueAfter is how long an order may stay pending before its
	// fulfilment job is enqueued again (the first enqueue may have been
	// lost to a Redis failover).
	RequeueAfter time.Duration
	// RestockBelow and RestockTo: products whose stock fell below
	// RestockBelow are restocked to RestockTo, so that a long load test
	// keeps selling instead of running into "out of stock". RestockBelow
	// 0 disables restocking.
	RestockBelow int32
	RestockTo    int32
	// JobTimeout bounds one run of the jobs.
	JobTimeout time.Duration
}

// DefaultBeatConfig returns the defaults documented in the package doc.
func DefaultBeatConfig() BeatConfig {
	return BeatConfig{
		Interval:     10 * time.Second,
		LeaderTTL:    30 * time.Second,
		CartIdle:     2 * time.Hour,
		RequeueAfter: 5 * time.Minute,
		RestockBelow: 5,
		RestockTo:    100,
		JobTimeout:   10 * time.Second,
	}
}

// Beat runs the periodic jobs, like Celery beat: expire abandoned carts,
// re-enqueue orders whose fulfilment job was lost, and restock products
// that are nearly sold out. Of all instances
// only the one holding the leader key in Redis runs them.
type Beat struct {
	cfg  BeatConfig
	pg   *pgxpool.Pool
	rdb  redis.UniversalClient
	log  *slog.Logger
	runs *prometheus.CounterVec
	reg  *prometheus.Registry
	now  func() time.Time

	renew, release *redis.Script
}

// NewBeat returns a beat instance; a nil logger discards logs.
func NewBeat(cfg BeatConfig, pg *pgxpool.Pool, rdb redis.UniversalClient, log *slog.Logger) *Beat {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := newRegistry()
	runs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shop_beat_runs_total",
		Help: "Beat ticks by outcome: leader (jobs ran), follower (another instance leads), error.",
	}, []string{"outcome"})
	reg.MustRegister(runs)
	return &Beat{
		cfg: cfg, pg: pg, rdb: rdb, log: log.With("beat", cfg.ID), runs: runs, reg: reg, now: time.Now,
		renew: redis.NewScript(renewLeaderScript), release: redis.NewScript(releaseLeaderScript),
	}
}

// Registry returns the beat's Prometheus registry.
func (b *Beat) Registry() *prometheus.Registry { return b.reg }

// renewLeaderScript extends the leader key only if this instance holds it.
const renewLeaderScript = `
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`

// releaseLeaderScript deletes the leader key only if this instance holds it.
const releaseLeaderScript = `
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`

// Run ticks every Interval until ctx is cancelled; on each tick it takes
// or renews leadership and, if leader, runs the jobs. On return it gives
// leadership up so another instance takes over at once.
func (b *Beat) Run(ctx context.Context) error {
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.JobTimeout)
		defer cancel()
		_ = b.release.Run(rctx, b.rdb, []string{keyBeatLeader}, b.cfg.ID).Err()
	}()
	t := time.NewTicker(b.cfg.Interval)
	defer t.Stop()
	for {
		b.Tick(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick runs one beat: leadership, then the jobs if leader. It reports
// whether this instance led.
func (b *Beat) Tick(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.JobTimeout)
	defer cancel()
	leader, err := b.lead(ctx)
	if err != nil {
		b.runs.WithLabelValues("error").Inc()
		b.log.Warn("take leadership", "error", err)
		return false
	}
	if !leader {
		b.runs.WithLabelValues("follower").Inc()
		return false
	}
	b.runs.WithLabelValues("leader").Inc()
	if n, err := b.expireCarts(ctx); err != nil {
		b.log.Warn("expire carts", "error", err)
	} else if n > 0 {
		b.log.Info("expired abandoned carts", "count", n)
	}
	if n, err := b.requeueOrders(ctx); err != nil {
		b.log.Warn("re-enqueue pending orders", "error", err)
	} else if n > 0 {
		b.log.Info("re-enqueued pending orders", "count", n)
	}
	if n, err := b.restock(ctx); err != nil {
		b.log.Warn("restock", "error", err)
	} else if n > 0 {
		b.log.Info("restocked products", "count", n)
	}
	return true
}

// lead takes the leader key if free, or renews it if held.
func (b *Beat) lead(ctx context.Context) (bool, error) {
	ok, err := b.rdb.SetNX(ctx, keyBeatLeader, b.cfg.ID, b.cfg.LeaderTTL).Result()
	if err != nil {
		return false, fmt.Errorf("set leader key: %w", err)
	}
	if ok {
		return true, nil
	}
	n, err := b.renew.Run(ctx, b.rdb, []string{keyBeatLeader}, b.cfg.ID, b.cfg.LeaderTTL.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("renew leader key: %w", err)
	}
	return n == 1, nil
}

// expireCarts deletes carts unchanged for CartIdle and returns how many.
func (b *Beat) expireCarts(ctx context.Context) (int, error) {
	cutoff := b.now().Add(-b.cfg.CartIdle).UnixMilli()
	ids, err := b.rdb.ZRangeByScore(ctx, keyCarts, &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(cutoff, 10), Count: 1000,
	}).Result()
	if err != nil {
		return 0, fmt.Errorf("list idle carts: %w", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	_, err = b.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		keys := make([]string, len(ids))
		members := make([]any, len(ids))
		for i, id := range ids {
			keys[i], members[i] = keyCartPrefix+id, id
		}
		p.Del(ctx, keys...)
		p.ZRem(ctx, keyCarts, members...)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete idle carts: %w", err)
	}
	return len(ids), nil
}

// requeueOrders enqueues again the fulfilment of orders pending for
// longer than RequeueAfter. A job enqueued twice is harmless: the worker
// fulfils an order once.
func (b *Beat) requeueOrders(ctx context.Context) (int, error) {
	rows, err := b.pg.Query(ctx, "SELECT id FROM orders WHERE status = 'pending' AND created_at < $1 ORDER BY id LIMIT 500",
		b.now().Add(-b.cfg.RequeueAfter))
	if err != nil {
		return 0, fmt.Errorf("list pending orders: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, fmt.Errorf("list pending orders: %w", err)
	}
	for i, id := range ids {
		if err := enqueueFulfilment(ctx, b.rdb, id); err != nil {
			return i, err
		}
	}
	return len(ids), nil
}

// restock sets the stock of products below RestockBelow to RestockTo and
// returns how many were restocked.
func (b *Beat) restock(ctx context.Context) (int64, error) {
	if b.cfg.RestockBelow <= 0 {
		return 0, nil
	}
	tag, err := b.pg.Exec(ctx, "UPDATE products SET stock = $2 WHERE stock < $1", b.cfg.RestockBelow, b.cfg.RestockTo)
	if err != nil {
		return 0, fmt.Errorf("restock products: %w", err)
	}
	return tag.RowsAffected(), nil
}
