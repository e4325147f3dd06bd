// Command k3s is lab's test-only stand-in for the k3s binary of a k3d node
// image (/bin/k3s in lab-test.invalid/k3s-standin, built by
// internal/testnode). k3d runs it exactly as it runs rancher/k3s: `k3s
// server` or `k3s agent` with k3d's and lab's flags and K3S_* variables,
// behind k3d's entrypoint script. It gives a real Kubernetes API: the server
// runs etcd, kube-apiserver, kube-controller-manager and kube-scheduler (the
// real binaries, in the image), and every node runs kwok in place of a
// kubelet, so nodes register, become Ready, go NotReady when their container
// stops and Ready again when it starts; pods become Running without
// containers.
//
// It is built so that a real kubelet (with containerd, runc and the CNI
// plugins already in the image) can later replace kwok on the same node.
//
// Every component's output goes to the container's log prefixed with its
// name; the stand-in itself logs like k3s (level=info msg=…), including the
// lines k3d waits for, printed only once they are true.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	out := &lineWriter{w: os.Stdout}
	log := newLogger(out)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	c, err := parseArgs(args, os.Getenv)
	if err == nil {
		log.Info("starting lab's k3s stand-in", "role", c.role, "args", args)
		if c.role == server {
			err = runServer(ctx, log, out, c)
		} else {
			err = runAgent(ctx, log, out, c)
		}
	}
	if err != nil && ctx.Err() == nil {
		log.Log(ctx, levelFatal, err.Error())
		return 1
	}
	log.Info("stopped")
	return 0
}
