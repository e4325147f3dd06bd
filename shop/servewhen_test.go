package shop_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jewelry-shop/lab/shop"
)

// TestServeWhen: while the schema waits for PostgreSQL the pod is alive
// (/healthz 200) but not ready (/readyz and the API 503), so that a
// liveness probe does not restart it; once ready returns it serves, and an
// error of ready ends ServeWhen with it.
func TestServeWhen(t *testing.T) {
	t.Parallel()
	get := func(t *testing.T, base, path string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	start := func(t *testing.T, ready func(context.Context) error) (string, <-chan error, context.CancelFunc) {
		t.Helper()
		var lc net.ListenConfig
		l, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- shop.NewWeb(shop.DefaultWebConfig(), nil, nil, nil).ServeWhen(ctx, l, ready) }()
		return "http://" + l.Addr().String(), done, cancel
	}

	t.Run("alive, then ready", func(t *testing.T) {
		t.Parallel()
		migrated := make(chan struct{})
		base, done, cancel := start(t, func(ctx context.Context) error {
			select {
			case <-migrated:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		for path, want := range map[string]int{"/healthz": 200, "/readyz": 503, "/api/categories": 503} {
			if got := get(t, base, path); got != want {
				t.Errorf("while migrating, GET %s = %d, want %d", path, got, want)
			}
		}
		close(migrated)
		deadline := time.Now().Add(10 * time.Second)
		for get(t, base, "/readyz") != 200 {
			if time.Now().After(deadline) {
				t.Fatal("not ready 10 s after the migration")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got := get(t, base, "/api/categories"); got != 200 {
			t.Errorf("after the migration, GET /api/categories = %d, want 200", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeWhen after cancel = %v, want nil", err)
		}
	})

	t.Run("the migration fails", func(t *testing.T) {
		t.Parallel()
		_, done, cancel := start(t, func(context.Context) error { return errors.New("migrate schema: timeout") })
		defer cancel()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "migrate schema: timeout") {
				t.Fatalf("ServeWhen = %v, want the migration's error", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("ServeWhen went on serving after the migration failed")
		}
	})
}
