package services_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/jewelry-shop/lab/internal/services"
)

func TestPostgresRestart(t *testing.T) {
	t.Parallel()
	pg := services.StartPostgres(t)
	dsn := pg.NewDatabase(t)
	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer func() { _ = conn.Close(ctx) }()
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE TABLE kept (v int); INSERT INTO kept VALUES (1)"); err != nil {
		t.Fatalf("write before restart: %v", err)
	}
	tests := []struct {
		name string
		down func(testing.TB)
	}{
		{name: "stop", down: pg.Stop},
		{name: "kill", down: pg.Kill},
	}
	for _, tt := range tests {
		tt.down(t)
		if pg.PID() != 0 {
			t.Errorf("%s: PID %d after stop, want 0", tt.name, pg.PID())
		}
		if err := exec("SELECT 1"); err == nil {
			t.Errorf("%s: query succeeded while postgres is down", tt.name)
		}
		pg.Start(t)
		if err := exec("INSERT INTO kept SELECT v FROM kept LIMIT 1"); err != nil {
			t.Errorf("%s: write after restart: %v", tt.name, err)
		}
	}
}

func TestRedisHAFailover(t *testing.T) {
	t.Parallel()
	ha := services.StartRedisHA(t, services.SentinelOptions{})
	ctx := t.Context()
	old, err := ha.Master(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if old != ha.Nodes[0] {
		t.Fatalf("initial master on port %d, want node 0 on port %d", old.Port, ha.Nodes[0].Port)
	}
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: ha.MasterName, SentinelAddrs: ha.SentinelAddrs()})
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("write through sentinel: %v", err)
	}
	old.Kill(t)
	killed := time.Now()
	deadline := killed.Add(20 * time.Second)
	for {
		m, err := ha.Master(ctx)
		if err == nil && m != old {
			t.Logf("sentinel promoted port %d %s after the kill", m.Port, time.Since(killed).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no promotion within 20s of killing the master (last: %v, %v)", m, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := c.Set(ctx, "k2", "v", 0).Err(); err != nil {
		t.Errorf("write through sentinel after failover: %v", err)
	}
	old.Start(t) // comes back as a replica of the new master
}
