// Package image builds the shop's container image without Docker, a
// Dockerfile or a registry: a static Linux binary in one layer on an empty
// base, run as a non-root user, written as a docker-archive tarball that
// k3d's image import (ctr image import) reads.
//
// One tarball is written per platform (linux/amd64, linux/arm64), each
// tagged with the same reference, so the lab imports the one matching the
// cluster's nodes.
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image facts that the Helm chart and the tests rely on.
const (
	// Entrypoint is the path of the binary in the image.
	Entrypoint = "/shop"
	// User is the numeric non-root user and group the image runs as.
	User = "65532:65532"
	// Port is the port every mode listens on by default.
	Port = 8000
	// Repository is the default image repository.
	Repository = "jewelry-shop/shop"
)

// Metadata describes the build; it ends up in the OCI labels.
type Metadata struct {
	// Version is the image tag and org.opencontainers.image.version.
	Version string
	// Commit is org.opencontainers.image.revision.
	Commit string
	// Created is the image creation time; a fixed time (for example the
	// commit time) makes the build reproducible.
	Created time.Time
	// Source is org.opencontainers.image.source.
	Source string
}

// Labels returns the OCI annotations put on the image config.
func (m Metadata) Labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "shop",
		"org.opencontainers.image.description": "jewelry-shop reference service (web, worker, beat, probe)",
		"org.opencontainers.image.version":     m.Version,
		"org.opencontainers.image.revision":    m.Commit,
		"org.opencontainers.image.created":     m.Created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.source":      m.Source,
	}
}

// Build returns the image of a linux binary for arch (amd64, arm64).
func Build(binary []byte, arch string, meta Metadata) (v1.Image, error) {
	layerTar, err := rootfs(binary, meta.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("make image layer: %w", err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: v1.History{
		Created:   v1.Time{Time: meta.Created},
		CreatedBy: "shop/image: static binary " + Entrypoint,
	}})
	if err != nil {
		return nil, fmt.Errorf("add image layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = arch, "linux"
	cf.Created = v1.Time{Time: meta.Created}
	cf.Config.Entrypoint = []string{Entrypoint}
	cf.Config.Cmd = []string{"web"}
	cf.Config.User = User
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{"PATH=/"}
	cf.Config.ExposedPorts = map[string]struct{}{fmt.Sprintf("%d/tcp", Port): {}}
	cf.Config.Labels = meta.Labels()
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("set image config: %w", err)
	}
	return img, nil
}

// rootfs returns the layer: the binary plus /etc/passwd and /etc/group
// naming the non-root user, and a world-writable /tmp.
func rootfs(binary []byte, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := []struct {
		name string
		mode int64
		body []byte
		dir  bool
	}{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, body: []byte("root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n")},
		{name: "etc/group", mode: 0o644, body: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{name: "tmp/", mode: 0o1777, dir: true},
		{name: strings.TrimPrefix(Entrypoint, "/"), mode: 0o755, body: binary},
	}
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: mtime, Typeflag: tar.TypeReg, Size: int64(len(f.body)), Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("write layer entry %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, fmt.Errorf("write layer entry %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close layer: %w", err)
	}
	return buf.Bytes(), nil
}

// WriteTarball writes img as a docker-archive tarball tagged ref (for
// example "jewelry-shop/shop:v0.1.0").
func WriteTarball(path, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("parse image reference %q: %w", ref, err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		return fmt.Errorf("write image tarball %s: %w", path, err)
	}
	return nil
}

// BuildBinary compiles package pkg (for example "./cmd/shop", relative to
// dir) for linux/arch as a static binary with the version and commit set,
// and returns its contents.
func BuildBinary(ctx context.Context, dir, pkg, arch string, meta Metadata) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "shop-build-")
	if err != nil {
		return nil, fmt.Errorf("make build dir: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	out := filepath.Join(tmp, "shop")
	ldflags := fmt.Sprintf("-s -w -X main.version=%s -X main.commit=%s", meta.Version, meta.Commit)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s for linux/%s: %w\n%s", pkg, arch, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("read built binary: %w", err)
	}
	return b, nil
}
