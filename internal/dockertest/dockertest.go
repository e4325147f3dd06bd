// Package dockertest gives tests a client of the local Docker daemon, and
// the image references that can never be pulled from anywhere.
package dockertest

import (
	"context"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/jewelry-shop/lab/internal/ci"
)

// ClosedRegistry is a loopback port nothing listens on: images that point
// there cannot be pulled, and no pull attempt leaves the machine.
const ClosedRegistry = "127.0.0.1:5999"

// Client returns a client of the local Docker daemon, closed when the test
// ends, or ends the test through ci.Missing when no daemon answers.
func Client(tb testing.TB) *client.Client {
	tb.Helper()
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		ci.Missing(tb, "Docker client: %v (install docker.io and start dockerd; .ci/run does both)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		ci.Missing(tb, "no Docker daemon at %s: %v (install docker.io and start dockerd; .ci/run does both)", c.DaemonHost(), err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}
