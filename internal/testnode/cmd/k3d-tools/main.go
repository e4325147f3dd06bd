// Command k3d-tools is lab's test-only stand-in for k3d's tools image
// (ghcr.io/k3d-io/k3d-tools), run from lab-test.invalid/k3d-tools-standin
// built by internal/testnode. k3d starts a tools container with the argument
// "noop" while it creates a cluster and removes it again; the stand-in then
// waits for SIGTERM. Its other commands (save-image, used by k3d's image
// import through a tools node) are not implemented and fail with a message
// that says so.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "noop" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		<-ctx.Done()
		return
	}
	fmt.Fprintf(os.Stderr, "k3d-tools stand-in: %q is not implemented; lab's test stand-in only knows \"noop\"\n", strings.Join(os.Args[1:], " "))
	os.Exit(1)
}
