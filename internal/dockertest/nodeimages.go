package dockertest

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/jewelry-shop/lab/internal/ci"
	"github.com/jewelry-shop/lab/internal/testnode"
)

// NodeImages returns the test-only k3d images (internal/testnode) loaded
// into the local Docker: a node image that k3d runs as rancher/k3s, and
// stand-ins for k3d's load balancer and tools images. They are built on the
// first use (minutes: debootstrap and the test assets) and cached, by
// content, in the lab cache and in Docker.
//
// The test ends through ci.Missing when what they need is missing: a Docker
// daemon, the test assets (make test-assets), root and debootstrap for the
// first build, or a daemon that can start privileged containers (k3d makes
// every node privileged; start dockerd with hack/dockerd.sh).
func NodeImages(tb testing.TB) testnode.Images {
	tb.Helper()
	c := Client(tb)
	ctx := tb.Context()
	log := slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	start := time.Now()
	imgs, err := testnode.Build(ctx, testnode.Options{Log: log})
	var missing *testnode.MissingError
	if errors.As(err, &missing) {
		ci.Missing(tb, "%v", err)
	}
	if err != nil {
		tb.Fatalf("build the test node images: %v", err)
	}
	built := time.Since(start)
	start = time.Now()
	loaded, err := testnode.Load(ctx, c, imgs, log)
	if err != nil {
		tb.Fatalf("load the test node images into Docker: %v", err)
	}
	tb.Logf("test node images: built or found in %v; loaded %v in %v", built.Round(time.Millisecond), loaded, time.Since(start).Round(time.Millisecond))
	checkPrivileged(tb, c, imgs.Tools.Ref)
	return imgs
}

// checkPrivileged starts a privileged container from a local image, as k3d
// starts every node, and ends the test through ci.Missing when the daemon
// cannot.
func checkPrivileged(tb testing.TB, c *client.Client, ref string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), time.Minute)
	defer cancel()
	name := "lab-test-privileged-" + time.Now().Format("150405.000000")
	name = strings.ReplaceAll(name, ".", "-")
	created, err := c.ContainerCreate(ctx,
		&container.Config{Image: ref, Cmd: []string{"noop"}, Labels: map[string]string{"app.kubernetes.io/managed-by": "lab-test"}},
		&container.HostConfig{Privileged: true, AutoRemove: false}, nil, nil, name)
	if err != nil {
		tb.Fatalf("create a privileged test container from %s: %v", ref, err)
	}
	defer func() {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer rcancel()
		if err := c.ContainerRemove(rctx, created.ID, container.RemoveOptions{Force: true}); err != nil {
			tb.Errorf("remove the privileged test container %s: %v", name, err)
		}
	}()
	if err := c.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		ci.Missing(tb, "privileged containers fail on the Docker daemon at %s (%v): start dockerd with hack/dockerd.sh", c.DaemonHost(), err)
	}
}

// tbWriter sends log lines to the test's log.
type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(b []byte) (int, error) {
	w.tb.Helper()
	w.tb.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}
