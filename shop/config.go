package shop

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// PostgresConfig says how to reach PostgreSQL. Every timeout is bounded so
// that a dead primary is noticed in seconds.
type PostgresConfig struct {
	// DSN is a libpq connection string or URL (SHOP_PG_DSN).
	DSN string
	// ConnectTimeout bounds establishing one connection.
	ConnectTimeout time.Duration
	// StatementTimeout is PostgreSQL's statement_timeout for every
	// connection of the pool.
	StatementTimeout time.Duration
	// MaxConns is the size of the pool.
	MaxConns int32
	// HealthCheckPeriod is how often idle connections are checked, so
	// that connections to a failed primary are dropped without a request.
	HealthCheckPeriod time.Duration
}

// RedisConfig says how to reach Redis: through Sentinel when Sentinels is
// set, else directly at Addr.
type RedisConfig struct {
	// Sentinels are host:port of the Sentinels (SHOP_REDIS_SENTINELS).
	Sentinels []string
	// MasterName is the name the Sentinels monitor the master under.
	MasterName string
	// Addr is host:port of a Redis without Sentinel, used when Sentinels
	// is empty.
	Addr string
	// Password authenticates to Redis (not to Sentinel).
	Password string
	// DialTimeout bounds establishing one connection.
	DialTimeout time.Duration
	// ReadTimeout and WriteTimeout bound one command's socket I/O.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// MaxRetries is how often go-redis retries a failed command; -1
	// disables retries (the prober's writes must not be sent twice).
	MaxRetries int
}

// DefaultPostgresConfig returns the defaults documented in the package doc.
func DefaultPostgresConfig() PostgresConfig {
	return PostgresConfig{
		ConnectTimeout:    2 * time.Second,
		StatementTimeout:  5 * time.Second,
		MaxConns:          20,
		HealthCheckPeriod: 5 * time.Second,
	}
}

// DefaultRedisConfig returns the defaults documented in the package doc.
func DefaultRedisConfig() RedisConfig {
	return RedisConfig{
		MasterName:   "mymaster",
		DialTimeout:  time.Second,
		ReadTimeout:  time.Second,
		WriteTimeout: time.Second,
		MaxRetries:   1,
	}
}

// Validate reports every problem of the configuration.
func (c PostgresConfig) Validate() error {
	var errs []error
	if c.DSN == "" {
		errs = append(errs, errors.New("postgres DSN is empty"))
	}
	if c.ConnectTimeout <= 0 || c.StatementTimeout <= 0 || c.HealthCheckPeriod <= 0 {
		errs = append(errs, errors.New("postgres timeouts must be positive"))
	}
	if c.MaxConns < 1 {
		errs = append(errs, fmt.Errorf("postgres max conns %d < 1", c.MaxConns))
	}
	return errors.Join(errs...)
}

// Validate reports every problem of the configuration.
func (c RedisConfig) Validate() error {
	var errs []error
	if len(c.Sentinels) == 0 && c.Addr == "" {
		errs = append(errs, errors.New("redis: neither sentinels nor an address is set"))
	}
	if len(c.Sentinels) > 0 && c.MasterName == "" {
		errs = append(errs, errors.New("redis: sentinels are set but the master name is empty"))
	}
	if c.DialTimeout <= 0 || c.ReadTimeout <= 0 || c.WriteTimeout <= 0 {
		errs = append(errs, errors.New("redis timeouts must be positive"))
	}
	return errors.Join(errs...)
}

// OpenPostgres creates a connection pool. It does not wait for the
// server: the pool connects on first use and reconnects by itself after a
// failover, so a service can start while PostgreSQL is down.
func OpenPostgres(ctx context.Context, c PostgresConfig) (*pgxpool.Pool, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(c.DSN)
	if err != nil {
		return nil, fmt.Errorf("parse postgres DSN: %w", err)
	}
	pc.MaxConns = c.MaxConns
	pc.HealthCheckPeriod = c.HealthCheckPeriod
	pc.ConnConfig.ConnectTimeout = c.ConnectTimeout
	pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(c.StatementTimeout.Milliseconds(), 10)
	pc.ConnConfig.RuntimeParams["application_name"] = "shop"
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("create postgres pool: %w", err)
	}
	return pool, nil
}

// OpenRedis creates a Redis client: a Sentinel failover client that
// follows the master after a failover, or a plain client.
func OpenRedis(c RedisConfig) (redis.UniversalClient, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if len(c.Sentinels) > 0 {
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:    c.MasterName,
			SentinelAddrs: c.Sentinels,
			Password:      c.Password,
			DialTimeout:   c.DialTimeout,
			ReadTimeout:   c.ReadTimeout,
			WriteTimeout:  c.WriteTimeout,
			MaxRetries:    c.MaxRetries,
			PoolTimeout:   c.DialTimeout + c.ReadTimeout,
		}), nil
	}
	return redis.NewClient(&redis.Options{
		Addr:         c.Addr,
		Password:     c.Password,
		DialTimeout:  c.DialTimeout,
		ReadTimeout:  c.ReadTimeout,
		WriteTimeout: c.WriteTimeout,
		MaxRetries:   c.MaxRetries,
		PoolTimeout:  c.DialTimeout + c.ReadTimeout,
	}), nil
}
