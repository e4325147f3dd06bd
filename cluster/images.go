package cluster

import (
	"context"
	"fmt"
	"io"
	"os"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/k3d-io/k3d/v5/pkg/client"
	k3d "github.com/k3d-io/k3d/v5/pkg/types"
)

// ArchiveRef returns the image reference an image archive (docker-archive,
// as `make image` writes it) is tagged with.
func ArchiveRef(path string) (string, error) {
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil {
		return "", fmt.Errorf("read image archive %s: %w", path, err)
	}
	if len(m) != 1 || len(m[0].RepoTags) != 1 {
		return "", fmt.Errorf("image archive %s: want exactly one tagged image, found %d", path, len(m))
	}
	return m[0].RepoTags[0], nil
}

// LocalImages returns those of images that the local Docker has.
func (m *Manager) LocalImages(ctx context.Context, images []string) ([]string, error) {
	c, err := m.docker(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var have []string
	for _, ref := range images {
		_, err := c.ImageInspect(ctx, ref)
		switch {
		case err == nil:
			have = append(have, ref)
		case cerrdefs.IsNotFound(err):
		default:
			return nil, fmt.Errorf("inspect image %s: %w", ref, err)
		}
	}
	return have, nil
}

// ImportImages loads images into every node of the cluster, so that pods
// start without pulling them: image names from the local Docker, or paths of
// image archives.
func (m *Manager) ImportImages(ctx context.Context, clusterName string, images []string) error {
	if len(images) == 0 {
		return nil
	}
	c, err := client.ClusterGet(ctx, m.rt, &k3d.Cluster{Name: clusterName})
	if err != nil {
		return fmt.Errorf("import images into cluster %s: %w", clusterName, err)
	}
	if err := client.ImageImportIntoClusterMulti(ctx, m.rt, images, c, k3d.ImageImportOpts{Mode: k3d.ImportModeAutoDetect}); err != nil {
		return fmt.Errorf("import images %v into cluster %s: %w", images, clusterName, err)
	}
	return nil
}
