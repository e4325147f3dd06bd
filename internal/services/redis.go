package services

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jewelry-shop/lab/internal/ci"
)

// Redis is a redis-server started for one test.
type Redis struct {
	// Port is the TCP port on 127.0.0.1; it stays the same across restarts.
	Port int
	// Dir is the server's working directory (logs, no persistence files).
	Dir string

	proc *process
}

// StartRedis starts a redis-server without persistence on a free port of
// 127.0.0.1 and waits until it answers PING. It is stopped in t.Cleanup.
func StartRedis(tb testing.TB) *Redis {
	tb.Helper()
	return startRedis(tb, "")
}

// StartRedisReplica starts a redis-server that replicates master and waits
// until the replication link is up.
func StartRedisReplica(tb testing.TB, master *Redis) *Redis {
	tb.Helper()
	r := startRedis(tb, master.Addr())
	deadline := time.Now().Add(startTimeout)
	for {
		info, err := r.info(tb.Context(), "replication")
		if err == nil && strings.Contains(info, "master_link_status:up") {
			return r
		}
		if time.Now().After(deadline) {
			tb.Fatalf("replica on port %d not linked to %s after %s (info: %q, err: %v)", r.Port, master.Addr(), startTimeout, info, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startRedis(tb testing.TB, replicaOf string) *Redis {
	tb.Helper()
	bin, ok := lookBinary("redis-server")
	if !ok {
		ci.Missing(tb, "redis-server: apt-get install -y redis-server")
	}
	dir := tempDir(tb, "services-redis-")
	r := &Redis{Port: FreePort(tb), Dir: dir}
	args := []string{
		"--port", strconv.Itoa(r.Port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--logfile", "",
	}
	if replicaOf != "" {
		host, port, _ := net.SplitHostPort(replicaOf)
		args = append(args, "--replicaof", host, port)
	}
	r.proc = &process{
		name:    "redis-server:" + strconv.Itoa(r.Port),
		path:    bin,
		args:    args,
		logPath: filepath.Join(dir, "redis.log"),
	}
	tb.Cleanup(func() {
		if err := r.proc.signal(syscall.SIGTERM, 10*time.Second); err != nil {
			tb.Errorf("stop redis: %v", err)
		}
	})
	r.Start(tb)
	return r
}

// Addr returns host:port of the server.
func (r *Redis) Addr() string { return addr(r.Port) }

// PID returns the PID of the running server, or 0 when it is stopped.
func (r *Redis) PID() int { return r.proc.pid() }

// Start starts a stopped or killed server again on the same port and
// waits until it answers PING. It comes back empty (no persistence); if
// Sentinel has promoted another node meanwhile, Sentinel turns it into a
// replica of the new master.
func (r *Redis) Start(tb testing.TB) {
	tb.Helper()
	if err := r.proc.start(); err != nil {
		tb.Fatal(err)
	}
	if err := r.proc.waitReady(func() error { return ping(tb.Context(), r.Addr()) }); err != nil {
		tb.Fatal(err)
	}
}

// Kill kills the server with SIGKILL and waits for it to exit.
func (r *Redis) Kill(tb testing.TB) {
	tb.Helper()
	if err := r.proc.signal(syscall.SIGKILL, 10*time.Second); err != nil {
		tb.Fatal(err)
	}
}

// Stop shuts the server down with SIGTERM and waits for it to exit.
func (r *Redis) Stop(tb testing.TB) {
	tb.Helper()
	if err := r.proc.signal(syscall.SIGTERM, 10*time.Second); err != nil {
		tb.Fatal(err)
	}
}

func (r *Redis) info(ctx context.Context, section string) (string, error) {
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	defer func() { _ = c.Close() }()
	return c.Info(ctx, section).Result()
}

// ping sends a PING over a fresh connection and expects PONG.
func ping(ctx context.Context, address string) error {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(string(buf[:n]), "+PONG") {
		return fmt.Errorf("unexpected reply to PING: %q", buf[:n])
	}
	return nil
}

// Sentinel is a redis-sentinel process started for one test.
type Sentinel struct {
	// Port is the TCP port on 127.0.0.1.
	Port int

	proc *process
}

// Addr returns host:port of the sentinel.
func (s *Sentinel) Addr() string { return addr(s.Port) }

// Kill kills the sentinel with SIGKILL.
func (s *Sentinel) Kill(tb testing.TB) {
	tb.Helper()
	if err := s.proc.signal(syscall.SIGKILL, 10*time.Second); err != nil {
		tb.Fatal(err)
	}
}

// SentinelOptions configures how Sentinels watch the master.
type SentinelOptions struct {
	// MasterName is the name the master is monitored under; default "shop".
	MasterName string
	// Quorum is the number of sentinels that must agree that the master is
	// down; default a majority of the sentinels.
	Quorum int
	// DownAfter is down-after-milliseconds; default 1 s.
	DownAfter time.Duration
	// FailoverTimeout is failover-timeout; default 3 s.
	FailoverTimeout time.Duration
}

// StartSentinels starts n redis-sentinel processes that monitor master and
// waits until each of them sees the master and the other sentinels.
func StartSentinels(tb testing.TB, n int, master *Redis, opts SentinelOptions) []*Sentinel {
	tb.Helper()
	bin, ok := lookBinary("redis-sentinel")
	if !ok {
		ci.Missing(tb, "redis-sentinel: apt-get install -y redis-sentinel")
	}
	if opts.MasterName == "" {
		opts.MasterName = "shop"
	}
	if opts.Quorum == 0 {
		opts.Quorum = n/2 + 1
	}
	if opts.DownAfter == 0 {
		opts.DownAfter = time.Second
	}
	if opts.FailoverTimeout == 0 {
		opts.FailoverTimeout = 3 * time.Second
	}
	sentinels := make([]*Sentinel, n)
	for i := range sentinels {
		dir := tempDir(tb, "services-sentinel-")
		s := &Sentinel{Port: FreePort(tb)}
		conf := fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
logfile ""
sentinel monitor %s 127.0.0.1 %d %d
sentinel down-after-milliseconds %[3]s %[6]d
sentinel failover-timeout %[3]s %[7]d
sentinel parallel-syncs %[3]s 1
`, s.Port, dir, opts.MasterName, master.Port, opts.Quorum, opts.DownAfter.Milliseconds(), opts.FailoverTimeout.Milliseconds())
		path := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			tb.Fatalf("write sentinel config: %v", err)
		}
		s.proc = &process{
			name:    "redis-sentinel:" + strconv.Itoa(s.Port),
			path:    bin,
			args:    []string{path},
			logPath: filepath.Join(dir, "sentinel.log"),
		}
		tb.Cleanup(func() {
			if err := s.proc.signal(syscall.SIGTERM, 10*time.Second); err != nil {
				tb.Errorf("stop sentinel: %v", err)
			}
		})
		if err := s.proc.start(); err != nil {
			tb.Fatal(err)
		}
		sentinels[i] = s
	}
	for _, s := range sentinels {
		err := s.proc.waitReady(func() error {
			c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
			defer func() { _ = c.Close() }()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			m, err := c.Master(ctx, opts.MasterName).Result()
			if err != nil {
				return err
			}
			if got := m["num-other-sentinels"]; got != strconv.Itoa(n-1) {
				return fmt.Errorf("sentinel sees %s other sentinels, want %d", got, n-1)
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	return sentinels
}

// RedisHA is a Redis master with one replica under three Sentinels, the
// smallest set-up in which Sentinel can promote a replica.
type RedisHA struct {
	// MasterName is the name the Sentinels monitor the master under.
	MasterName string
	// Nodes are the Redis servers; Nodes[0] is the initial master.
	Nodes []*Redis
	// Sentinels watch the nodes.
	Sentinels []*Sentinel
}

// StartRedisHA starts a master, a replica and three Sentinels with
// opts (see SentinelOptions for the short test defaults).
func StartRedisHA(tb testing.TB, opts SentinelOptions) *RedisHA {
	tb.Helper()
	master := StartRedis(tb)
	replica := StartRedisReplica(tb, master)
	sentinels := StartSentinels(tb, 3, master, opts)
	name := opts.MasterName
	if name == "" {
		name = "shop"
	}
	// A sentinel can only promote a replica it knows of; it learns of it
	// from the master's INFO, so wait until every sentinel has.
	for _, s := range sentinels {
		err := s.proc.waitReady(func() error {
			c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
			defer func() { _ = c.Close() }()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			replicas, err := c.Replicas(ctx, name).Result()
			if err != nil {
				return err
			}
			if len(replicas) != 1 {
				return fmt.Errorf("sentinel knows %d replicas, want 1", len(replicas))
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	return &RedisHA{MasterName: name, Nodes: []*Redis{master, replica}, Sentinels: sentinels}
}

// SentinelAddrs returns host:port of every sentinel.
func (h *RedisHA) SentinelAddrs() []string {
	addrs := make([]string, len(h.Sentinels))
	for i, s := range h.Sentinels {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Master asks the sentinels for the current master and returns its node.
func (h *RedisHA) Master(ctx context.Context) (*Redis, error) {
	var lastErr error
	for _, s := range h.Sentinels {
		if s.proc.pid() == 0 {
			continue
		}
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
		a, err := c.GetMasterAddrByName(ctx, h.MasterName).Result()
		_ = c.Close()
		if err != nil {
			lastErr = err
			continue
		}
		for _, n := range h.Nodes {
			if len(a) == 2 && a[1] == strconv.Itoa(n.Port) {
				return n, nil
			}
		}
		return nil, fmt.Errorf("sentinel %s names master %v, which is none of the nodes", s.Addr(), a)
	}
	return nil, fmt.Errorf("ask sentinels for master %s: %w", h.MasterName, lastErr)
}
