// Command labnode is the first process of a real node of the test tier in
// internal/realnode, for tests only. realnode starts it in new PID, network,
// mount and UTS namespaces; as their init it
//
//   - makes its mounts private, mounts a /proc of its PID namespace and a
//     tmpfs on every directory where the node's daemons keep state, and
//     presents the kernel settings the kubelet would change on the host as
//     read-only files that already hold the kubelet's values;
//   - waits until realnode has put its end of the test bridge (eth0) into its
//     network namespace, then sets the node's address and routes;
//   - runs containerd, imports the node's images, runs the kubelet and
//     kube-proxy, reaps every orphan, and stops when told (SIGTERM) or when
//     one of its daemons dies.
//
// Everything the node starts lives in its PID namespace, so when labnode
// ends, by itself or killed because the test binary died (realnode sets its
// parent-death signal), the kernel kills every container, shim and daemon of
// the node, and its mounts and network namespaces go with them.
//
//	labnode node SPEC.json   the node (PID 1 of its namespaces; fd 3 is the
//	                         pipe on which realnode says that eth0 is there)
//	labnode hold             does nothing until SIGTERM: keeps the network
//	                         namespace of the test bridge alive
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if len(os.Args) < 2 {
		log.Error("usage: labnode node SPEC.json | labnode hold")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "node":
		if len(os.Args) != 3 {
			err = errors.New("usage: labnode node SPEC.json")
			break
		}
		err = runNode(log, os.Args[2])
	case "hold":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		<-ctx.Done()
		stop()
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		log.Error("labnode failed", "err", err)
		os.Exit(1)
	}
}
