// Command pause is the sandbox ("pause") container of the real-node test
// tier's pods, for tests only: it holds the pod's namespaces, reaps the
// zombies it inherits as the pod's init, and ends on SIGTERM or SIGINT, as
// Kubernetes' pause does. internal/realnode builds it as a static binary
// into the image that containerd's sandbox_image names, so that no pause
// image is ever pulled.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
