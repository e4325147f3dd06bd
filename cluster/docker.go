package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	k3d "github.com/k3d-io/k3d/v5/pkg/types"
)

// DockerInfo is what the preflight learns about the Docker host.
type DockerInfo struct {
	Endpoint string
	Version  string
	MemTotal int64 // bytes
	CPUs     int
}

// DockerUnavailableError says that the Docker daemon could not be reached.
type DockerUnavailableError struct {
	Endpoint string
	Err      error
}

func (e *DockerUnavailableError) Error() string {
	return fmt.Sprintf("cannot reach the Docker daemon at %s: %v\n"+
		"  fix: start Docker (e.g. `sudo systemctl start docker`, or `dockerd &`), "+
		"or point DOCKER_HOST at a running daemon", e.Endpoint, e.Err)
}

func (e *DockerUnavailableError) Unwrap() error { return e.Err }

// ImageUnavailableError says that an image the cluster needs is neither in the
// local Docker nor pullable.
type ImageUnavailableError struct {
	Image string
	Err   error
}

func (e *ImageUnavailableError) Error() string {
	return fmt.Sprintf("image %s is not available locally and could not be pulled: %v\n"+
		"  fix: check the internet connection and run `docker pull %s`, "+
		"or `docker load` it from a machine that has it; then run the command again", e.Image, e.Err, e.Image)
}

func (e *ImageUnavailableError) Unwrap() error { return e.Err }

// pingTimeout bounds how long an unreachable daemon may keep the user waiting.
const pingTimeout = 5 * time.Second

func (m *Manager) docker(ctx context.Context) (*client.Client, error) {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, &DockerUnavailableError{Endpoint: "DOCKER_HOST", Err: err}
	}
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if _, err := c.Ping(pctx); err != nil {
		_ = c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &DockerUnavailableError{Endpoint: c.DaemonHost(), Err: err}
	}
	return c, nil
}

// Docker checks that the Docker daemon answers and describes it.
func (m *Manager) Docker(ctx context.Context) (DockerInfo, error) {
	c, err := m.docker(ctx)
	if err != nil {
		return DockerInfo{}, err
	}
	defer c.Close()
	info, err := c.Info(ctx)
	if err != nil {
		return DockerInfo{}, fmt.Errorf("read Docker daemon info: %w", err)
	}
	return DockerInfo{Endpoint: c.DaemonHost(), Version: info.ServerVersion, MemTotal: info.MemTotal, CPUs: info.NCPU}, nil
}

// EnsureImages makes every image available in the local Docker, pulling those
// that are missing, before anything of the cluster is created. pulling is
// called before each pull.
func (m *Manager) EnsureImages(ctx context.Context, images []string, pulling func(image string)) error {
	c, err := m.docker(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, ref := range images {
		if _, err := c.ImageInspect(ctx, ref); err == nil {
			m.log.Debug("image present", "image", ref)
			continue
		} else if !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("inspect image %s: %w", ref, err)
		}
		if pulling != nil {
			pulling(ref)
		}
		if err := pull(ctx, c, ref); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &ImageUnavailableError{Image: ref, Err: err}
		}
	}
	return nil
}

// pull pulls one image and reports the first error of the progress stream,
// which is where the daemon reports most pull failures.
func pull(ctx context.Context, c *client.Client, ref string) error {
	rc, err := c.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read pull progress: %w", err)
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
	}
}

// Residue lists the Docker objects that belong to the named cluster: node
// containers (running or not), its network and its volumes.
type Residue struct {
	Containers []string
	Networks   []string
	Volumes    []string
}

// String names what remains, e.g. "2 containers (k3d-x-server-0, …), network k3d-x, 1 volume (k3d-x-images)".
func (r Residue) String() string {
	var parts []string
	for _, g := range []struct {
		what  string
		names []string
	}{{"container", r.Containers}, {"network", r.Networks}, {"volume", r.Volumes}} {
		if len(g.names) == 0 {
			continue
		}
		what := g.what
		if len(g.names) > 1 {
			what += "s"
		}
		parts = append(parts, fmt.Sprintf("%d %s (%s)", len(g.names), what, strings.Join(g.names, ", ")))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// Empty reports whether nothing of the cluster remains.
func (r Residue) Empty() bool {
	return len(r.Containers) == 0 && len(r.Networks) == 0 && len(r.Volumes) == 0
}

// Residue finds every Docker object k3d made for the named cluster.
func (m *Manager) Residue(ctx context.Context, name string) (Residue, error) {
	c, err := m.docker(ctx)
	if err != nil {
		return Residue{}, err
	}
	defer c.Close()
	return residue(ctx, c, name)
}

func residue(ctx context.Context, c *client.Client, name string) (Residue, error) {
	var r Residue
	byCluster := filters.NewArgs(filters.Arg("label", k3d.LabelClusterName+"="+name))
	cs, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: byCluster})
	if err != nil {
		return r, fmt.Errorf("list containers of cluster %s: %w", name, err)
	}
	for _, ct := range cs {
		r.Containers = append(r.Containers, containerName(ct))
	}
	netName := k3d.DefaultObjectNamePrefix + "-" + name
	ns, err := c.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", "^"+netName+"$"))})
	if err != nil {
		return r, fmt.Errorf("list networks of cluster %s: %w", name, err)
	}
	for _, n := range ns {
		// Only the network k3d created for this cluster, never a user's.
		if n.Name == netName && n.Labels["app"] == "k3d" {
			r.Networks = append(r.Networks, n.Name)
		}
	}
	vs, err := c.VolumeList(ctx, volume.ListOptions{Filters: byCluster})
	if err != nil {
		return r, fmt.Errorf("list volumes of cluster %s: %w", name, err)
	}
	for _, v := range vs.Volumes {
		r.Volumes = append(r.Volumes, v.Name)
	}
	return r, nil
}

// removeResidue force-removes every Docker object of the named cluster: what
// k3d's own delete leaves when a creation failed half-way.
func (m *Manager) removeResidue(ctx context.Context, name string) error {
	c, err := m.docker(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	r, err := residue(ctx, c, name)
	if err != nil {
		return err
	}
	var errs []error
	for _, ct := range r.Containers {
		m.log.Debug("removing container", "container", ct)
		if err := c.ContainerRemove(ctx, ct, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", ct, err))
		}
	}
	for _, n := range r.Networks {
		m.log.Debug("removing network", "network", n)
		if err := c.NetworkRemove(ctx, n); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n, err))
		}
	}
	for _, v := range r.Volumes {
		m.log.Debug("removing volume", "volume", v)
		if err := c.VolumeRemove(ctx, v, true); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove volume %s: %w", v, err))
		}
	}
	return errors.Join(errs...)
}

// containerName is a container's name as Docker shows it, without the
// leading slash of the API; its ID when it has none.
func containerName(ct container.Summary) string {
	if len(ct.Names) == 0 {
		return ct.ID
	}
	return strings.TrimPrefix(ct.Names[0], "/")
}
