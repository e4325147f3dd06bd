package lab

import (
	"context"
	"errors"

	"github.com/jewelry-shop/lab/cluster"
)

// DownResult says what `lab down` removed.
type DownResult struct {
	Cluster string
	// Existed is false when there was nothing to remove.
	Existed bool
	// Kubeconfig is the path of the removed kubeconfig, empty if none was there.
	Kubeconfig string
}

// Down removes the lab's cluster, everything k3d created for it and the
// kubeconfig lab wrote. Removing a lab that does not exist succeeds. A cluster
// of the same name that lab did not create is refused unless force is set.
//
// Down does not stop when ctx is cancelled: a removal stopped halfway
// leaves a cluster that is neither usable nor gone, so it is finished (it
// takes seconds); the caller can still end the process.
func (l *Lab) Down(ctx context.Context, force bool) (*DownResult, error) {
	ctx = context.WithoutCancel(ctx)
	c := l.cfg.Cluster
	res := &DownResult{Cluster: c.Name}
	if err := l.step("Deleting cluster "+c.Name, func() error {
		if _, err := l.clusters.Docker(ctx); err != nil {
			return err
		}
		existed, err := l.clusters.Delete(ctx, c.Name, force)
		res.Existed = existed
		if err == nil && !existed {
			l.progress.Update("nothing to delete")
		}
		if errors.Is(err, cluster.ErrNotManaged) {
			return &BrokenClusterError{
				Name: c.Name, Problem: "was not created by lab, so lab will not remove it",
				Fix: "remove it yourself with `k3d cluster delete " + c.Name + "`, or run `lab down --force` to let lab remove it",
			}
		}
		return err
	}); err != nil {
		return res, err
	}
	path, err := l.cfg.KubeconfigPath()
	if err != nil {
		return res, err
	}
	removed, err := removeKubeconfig(path, l.cfg.Cluster.Kubeconfig == "")
	if err != nil {
		return res, err
	}
	if removed {
		res.Kubeconfig = path
	}
	return res, nil
}
