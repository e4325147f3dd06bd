package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/docker/go-units"
	"github.com/jewelry-shop/lab/cluster"
)

// PreflightError is a problem found before anything was created, with the fix.
type PreflightError struct {
	Problem string
	Fix     string
}

func (e *PreflightError) Error() string { return e.Problem + "\n  fix: " + e.Fix }

// checkDocker makes sure the Docker daemon answers and has the memory the
// stack needs.
func (l *Lab) checkDocker(ctx context.Context) (cluster.DockerInfo, error) {
	info, err := l.clusters.Docker(ctx)
	if err != nil {
		return info, err
	}
	if need := l.cfg.MinMemoryBytes(); info.MemTotal > 0 && info.MemTotal < need {
		return info, &PreflightError{
			Problem: fmt.Sprintf("the Docker host has %s of memory, the lab needs at least %s",
				units.BytesSize(float64(info.MemTotal)), units.BytesSize(float64(need))),
			Fix: "give Docker more memory (Docker Desktop: Settings → Resources), or lower preflight.minMemory if you know the stack fits",
		}
	}
	return info, nil
}

// checkPorts makes sure the host ports the cluster publishes are free.
func (l *Lab) checkPorts(ctx context.Context) error {
	c := l.cfg.Cluster
	ports := []struct {
		what, key, host string
		port            int
	}{
		{"Kubernetes API", "cluster.apiPort", c.APIHost, c.APIPort},
		{"ingress", "cluster.ingressPort", c.IngressHost, c.IngressPort},
	}
	var errs []error
	for _, p := range ports {
		addr := net.JoinHostPort(p.host, strconv.Itoa(p.port))
		if err := l.listen(ctx, addr); err != nil {
			errs = append(errs, &PreflightError{
				Problem: fmt.Sprintf("the %s port %s is not free: %v", p.what, addr, err),
				Fix:     fmt.Sprintf("stop what listens there (`ss -ltnp 'sport = :%d'` shows it), or choose another port with %s", p.port, p.key),
			})
		}
	}
	return errors.Join(errs...)
}

// checkPortFree binds addr for a moment to see whether it is free.
func checkPortFree(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return ln.Close()
}
