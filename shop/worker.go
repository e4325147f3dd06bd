package shop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// WorkerConfig configures the worker mode.
type WorkerConfig struct {
	// Consumer is this worker's name in the consumer group; it should be
	// unique per process (the pod name).
	Consumer string
	// Batch is the most jobs read at once.
	Batch int64
	// Block is how long one read waits for new jobs.
	Block time.Duration
	// ClaimIdle is how long a job may stay unacknowledged with another
	// consumer (one that crashed) before this worker takes it over.
	ClaimIdle time.Duration
	// JobTimeout bounds the processing of one job.
	JobTimeout time.Duration
	// RetryDelay is the pause after a store error.
	RetryDelay time.Duration
}

// DefaultWorkerConfig returns the defaults documented in the package doc.
func DefaultWorkerConfig() WorkerConfig {
	return WorkerConfig{
		Batch:      10,
		Block:      2 * time.Second,
		ClaimIdle:  30 * time.Second,
		JobTimeout: 5 * time.Second,
		RetryDelay: time.Second,
	}
}

// Worker fulfils orders: it consumes the fulfilment stream in the
// consumer group, marks each order fulfilled in PostgreSQL and only then
// acknowledges the job. A job delivered twice (the worker crashed between
// commit and acknowledgement) finds the order fulfilled and changes
// nothing, so each order is fulfilled exactly once.
type Worker struct {
	cfg     WorkerConfig
	pg      *pgxpool.Pool
	rdb     redis.UniversalClient
	log     *slog.Logger
	jobs    *prometheus.CounterVec
	reg     *prometheus.Registry
	crashAt func(orderID int64) bool // test hook: stop without ack after fulfilling
}

// NewWorker returns a worker; a nil logger discards logs.
func NewWorker(cfg WorkerConfig, pg *pgxpool.Pool, rdb redis.UniversalClient, log *slog.Logger) *Worker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := newRegistry()
	jobs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shop_worker_jobs_total",
		Help: "Fulfilment jobs by result: fulfilled, duplicate (already fulfilled), invalid, error.",
	}, []string{"result"})
	reg.MustRegister(jobs)
	return &Worker{cfg: cfg, pg: pg, rdb: rdb, log: log.With("consumer", cfg.Consumer), jobs: jobs, reg: reg}
}

// Registry returns the worker's Prometheus registry.
func (w *Worker) Registry() *prometheus.Registry { return w.reg }

// errCrash stops a worker as if it had crashed; only set by tests.
var errCrash = errors.New("simulated crash")

// Run consumes jobs until ctx is cancelled. Store errors are logged and
// retried; Run returns nil on cancellation.
func (w *Worker) Run(ctx context.Context) error {
	lastClaim := time.Time{}
	for ctx.Err() == nil {
		if err := w.ensureGroup(ctx); err != nil {
			w.log.Warn("create consumer group", "error", err)
			sleep(ctx, w.cfg.RetryDelay)
			continue
		}
		var msgs []redis.XMessage
		var err error
		if time.Since(lastClaim) >= w.cfg.ClaimIdle/2 {
			lastClaim = time.Now()
			msgs, _, err = w.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
				Stream: FulfilmentStream, Group: FulfilmentGroup, Consumer: w.cfg.Consumer,
				MinIdle: w.cfg.ClaimIdle, Start: "0-0", Count: w.cfg.Batch,
			}).Result()
			if len(msgs) > 0 {
				w.log.Info("claimed jobs of another consumer", "count", len(msgs))
			}
		}
		if err == nil && len(msgs) == 0 {
			var streams []redis.XStream
			streams, err = w.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
				Group: FulfilmentGroup, Consumer: w.cfg.Consumer,
				Streams: []string{FulfilmentStream, ">"}, Count: w.cfg.Batch, Block: w.cfg.Block,
			}).Result()
			if errors.Is(err, redis.Nil) {
				err = nil
			}
			for _, s := range streams {
				msgs = append(msgs, s.Messages...)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			w.log.Warn("read jobs", "error", err)
			sleep(ctx, w.cfg.RetryDelay)
			continue
		}
		for _, m := range msgs {
			if err := w.handle(ctx, m); errors.Is(err, errCrash) {
				return err
			}
		}
	}
	return nil
}

// ensureGroup creates the consumer group (and the stream) if needed; after
// a Redis failover that lost them, they are created again.
func (w *Worker) ensureGroup(ctx context.Context) error {
	err := w.rdb.XGroupCreateMkStream(ctx, FulfilmentStream, FulfilmentGroup, "0").Err()
	if err != nil && !isBusyGroup(err) {
		return fmt.Errorf("create consumer group: %w", err)
	}
	return nil
}

func isBusyGroup(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "BUSYGROUP")
}

// handle processes one job; an error leaves the job pending, to be
// retried by this worker or claimed by another.
func (w *Worker) handle(ctx context.Context, m redis.XMessage) error {
	v, _ := m.Values["order_id"].(string)
	orderID, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		w.jobs.WithLabelValues("invalid").Inc()
		w.log.Warn("drop invalid job", "id", m.ID, "values", m.Values)
		return w.ack(ctx, m.ID)
	}
	jctx, cancel := context.WithTimeout(ctx, w.cfg.JobTimeout)
	defer cancel()
	result, err := w.fulfil(jctx, orderID)
	if err != nil {
		w.jobs.WithLabelValues("error").Inc()
		w.log.Warn("fulfil order", "order_id", orderID, "error", err)
		return err
	}
	w.jobs.WithLabelValues(result).Inc()
	w.log.Info("job done", "order_id", orderID, "result", result)
	if w.crashAt != nil && w.crashAt(orderID) {
		return errCrash
	}
	return w.ack(ctx, m.ID)
}

func (w *Worker) ack(ctx context.Context, id string) error {
	if err := w.rdb.XAck(ctx, FulfilmentStream, FulfilmentGroup, id).Err(); err != nil {
		w.log.Warn("ack job", "id", id, "error", err)
		return fmt.Errorf("ack job %s: %w", id, err)
	}
	return nil
}

// fulfil marks an order fulfilled once and returns "fulfilled",
// "duplicate" when it already was, or "invalid" for an unknown order.
func (w *Worker) fulfil(ctx context.Context, orderID int64) (string, error) {
	result := "fulfilled"
	err := pgx.BeginFunc(ctx, w.pg, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, "SELECT status FROM orders WHERE id = $1 FOR UPDATE", orderID).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			result = "invalid"
			return nil
		}
		if err != nil {
			return fmt.Errorf("lock order: %w", err)
		}
		if status == "fulfilled" {
			result = "duplicate"
			return nil
		}
		if _, err := tx.Exec(ctx, "INSERT INTO fulfilments (order_id, worker) VALUES ($1, $2)", orderID, w.cfg.Consumer); err != nil {
			return fmt.Errorf("record fulfilment: %w", err)
		}
		if _, err := tx.Exec(ctx, "UPDATE orders SET status = 'fulfilled', fulfilled_at = now() WHERE id = $1", orderID); err != nil {
			return fmt.Errorf("mark order fulfilled: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("fulfil order %d: %w", orderID, err)
	}
	return result, nil
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
