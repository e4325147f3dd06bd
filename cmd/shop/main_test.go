package main

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jewelry-shop/lab/internal/services"
	"github.com/jewelry-shop/lab/internal/syncbuf"
)

func TestRunArguments(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantCode   int
		wantOutput string
	}{
		{name: "version", args: []string{"--version"}, wantCode: 0, wantOutput: "shop dev (commit unknown)"},
		{name: "no mode", args: nil, wantCode: 2, wantOutput: "Usage: shop <mode>"},
		{name: "unknown mode", args: []string{"shell"}, wantCode: 2, wantOutput: `unknown mode "shell"`},
		{name: "help names env vars", args: []string{"probe", "--help"}, wantCode: 0, wantOutput: "(env SHOP_PROBE_INTERVAL)"},
		{name: "bad env value", args: []string{"web"}, env: map[string]string{"SHOP_PG_CONNECT_TIMEOUT": "soon"}, wantCode: 2, wantOutput: "env SHOP_PG_CONNECT_TIMEOUT"},
		{name: "missing DSN", args: []string{"worker", "--redis-addr", "127.0.0.1:1"}, wantCode: 1, wantOutput: "postgres DSN is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var out bytes.Buffer
			code := run(t.Context(), tt.args, &out, &out)
			if code != tt.wantCode || !strings.Contains(out.String(), tt.wantOutput) {
				t.Errorf("run(%q) = %d with output\n%s\nwant %d and output containing %q", tt.args, code, out.String(), tt.wantCode, tt.wantOutput)
			}
		})
	}
}

// TestRunModes starts every mode against real stores, checks that it
// answers over HTTP, then stops it with its context: it must shut down
// gracefully with exit code 0.
func TestRunModes(t *testing.T) {
	pg := services.StartPostgres(t)
	rs := services.StartRedis(t)
	for _, tt := range []struct{ mode, path string }{
		{"web", "/api/products?page=2"},
		{"worker", "/readyz"},
		{"beat", "/readyz"},
		{"probe", "/timeline"},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			port := services.FreePort(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var logs syncbuf.Buffer
			done := make(chan int, 1)
			args := []string{tt.mode, "--listen", "127.0.0.1:" + strconv.Itoa(port), "--pg-dsn", pg.DSN("postgres"), "--redis-addr", rs.Addr()}
			go func() { done <- run(ctx, args, &logs, &logs) }()
			url := "http://127.0.0.1:" + strconv.Itoa(port) + tt.path
			deadline := time.Now().Add(20 * time.Second)
			for {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					_ = resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("GET %s: no 200 within 20s (last: %v); logs:\n%s", url, err, logs.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("exit code %d after cancel, want 0; logs:\n%s", code, logs.String())
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("%s did not stop within 20s of cancel", tt.mode)
			}
		})
	}
}
