// Command k3d-proxy is lab's test-only stand-in for k3d's load balancer
// image (ghcr.io/k3d-io/k3d-proxy, nginx behind confd), run from
// lab-test.invalid/k3d-proxy-standin built by internal/testnode. It reads
// the configuration k3d copies to /etc/confd/values.yaml, polls it for
// changes, listens on every port it names and forwards TCP connections to
// the named node containers on the same port (resolved through Docker's DNS
// on the cluster network), round robin, skipping nodes that do not answer.
// After each (re)configuration it prints "start worker processes", the nginx
// line k3d waits for.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// readyLine is what nginx prints once its workers run a new configuration,
// and what k3d waits for after each configuration it writes.
const readyLine = "start worker processes"

func main() {
	configPath := flag.String("config", "/etc/confd/values.yaml", "k3d's load balancer configuration")
	interval := flag.Duration("poll", time.Second, "how often the configuration is read for changes")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stdout, nil)).With("component", "k3d-proxy-standin")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	p := newProxy(log, "")
	defer p.close()
	if err := watch(ctx, log, os.Stdout, *configPath, *interval, p); err != nil && ctx.Err() == nil {
		log.Error("stopped", "err", err)
		os.Exit(1)
	}
	log.Info("stopped")
}

// watch applies the configuration at path whenever its content changes,
// until ctx ends. A configuration that cannot be applied is reported and the
// previous one stays in force; the ready line goes to out only after a
// configuration was applied in full.
func watch(ctx context.Context, log *slog.Logger, out io.Writer, path string, interval time.Duration, p *proxy) error {
	var applied []byte
	waiting := false
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if !waiting {
				log.Info("waiting for the configuration", "path", path)
				waiting = true
			}
		case err != nil:
			return fmt.Errorf("read the configuration: %w", err)
		case !bytes.Equal(b, applied):
			applied = b
			routes, settings, err := parseConfig(b)
			if err == nil {
				err = p.apply(ctx, routes, settings)
			}
			if err != nil {
				log.Error("configuration not applied", "path", path, "err", err)
				break
			}
			for _, r := range routes {
				log.Info("forwarding", "port", r.port, "upstreams", r.upstreams)
			}
			fmt.Fprintln(out, readyLine)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
