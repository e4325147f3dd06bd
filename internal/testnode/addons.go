package testnode

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// The repositories of the images of the node image's add-ons (k3s's
// bundled CoreDNS, metrics-server and local-path-provisioner), under the
// same never-resolving domain as the node images.
const (
	CoreDNSRepository         = "lab-test.invalid/coredns"
	MetricsServerRepository   = "lab-test.invalid/metrics-server"
	LocalPathRepository       = "lab-test.invalid/local-path-provisioner"
	LocalPathHelperRepository = "lab-test.invalid/local-path-helper"
)

// addonBinaries are the test assets the add-on images are made of.
func addonBinaries() []string {
	return []string{"coredns", "metrics-server", "local-path-provisioner"}
}

// addonImage is one add-on image as the node image carries it: the
// variable that names it to cmd/k3s and the archive in the air-gap images
// directory that every node imports at start.
type addonImage struct {
	env   string
	image Image
}

// busyboxInRootfs is Debian's busybox-static in the node root file system
// (hack/node-rootfs.sh), the one binary of local-path's helper image.
const busyboxInRootfs = "./usr/bin/busybox"

// addonImages builds (unless cached) the add-ons' images: each a static
// binary of the test assets (built by hack/test-assets.sh, like the control
// plane), and busybox from the node root file system for local-path's
// helper pods, which run sh, mkdir, rm and chmod. Their layers are gzip
// compressed: the node image carries them, every node copies them into its
// /var/lib/rancher/k3s volume and imports them, and the binaries are large.
func addonImages(ctx context.Context, log *slog.Logger, dir, tmp, assets, rootfs string) ([]addonImage, error) {
	files, err := readTarFiles(rootfs, busyboxInRootfs)
	if err != nil {
		return nil, fmt.Errorf("local-path's helper image: %w (hack/node-rootfs.sh installs busybox-static)", err)
	}
	busybox := filepath.Join(tmp, "busybox")
	if err := os.WriteFile(busybox, []byte(files[busyboxInRootfs]), 0o755); err != nil {
		return nil, fmt.Errorf("local-path's helper image: %w", err)
	}
	binary := func(kind, repo, name, path, description string, entrypoint []string, env []string) spec {
		return spec{
			kind: kind, repo: repo,
			layers: []layerSource{{files: []file{
				{name: "tmp/", mode: 0o1777, dir: true},
				{name: path, mode: 0o755, path: filepath.Join(assets, name)},
			}, createdBy: "test assets: " + name}},
			entrypoint:  entrypoint,
			env:         env,
			description: description,
			compress:    true,
		}
	}
	helperFiles := []file{{name: "tmp/", mode: 0o1777, dir: true}, {name: "bin/busybox", mode: 0o755, path: busybox}}
	for _, applet := range []string{"sh", "mkdir", "rm", "chmod", "ls", "cat"} {
		helperFiles = append(helperFiles, file{name: "bin/" + applet, mode: 0o777, link: "busybox"})
	}
	specs := []struct {
		env  string
		spec spec
	}{
		{"LAB_K3S_COREDNS_IMAGE", binary("coredns", CoreDNSRepository, "coredns", "coredns",
			"lab's test-only CoreDNS image: the k3s stand-in's coredns add-on", []string{"/coredns"}, nil)},
		{"LAB_K3S_METRICS_SERVER_IMAGE", binary("metrics-server", MetricsServerRepository, "metrics-server", "metrics-server",
			"lab's test-only metrics-server image: the k3s stand-in's metrics-server add-on", []string{"/metrics-server"}, nil)},
		{"LAB_K3S_LOCAL_PATH_IMAGE", binary("local-path-provisioner", LocalPathRepository, "local-path-provisioner", "usr/bin/local-path-provisioner",
			"lab's test-only local-path-provisioner image: the k3s stand-in's local-storage add-on", nil, []string{"PATH=/usr/bin:/bin"})},
		{"LAB_K3S_HELPER_IMAGE", spec{
			kind: "local-path-helper", repo: LocalPathHelperRepository,
			layers:      []layerSource{{files: helperFiles, createdBy: "Debian's busybox-static from hack/node-rootfs.sh"}},
			cmd:         []string{"/bin/sh"},
			env:         []string{"PATH=/bin"},
			description: "lab's test-only helper image of local-path's volume setup and teardown pods: busybox",
			compress:    true,
		}},
	}
	out := make([]addonImage, 0, len(specs))
	for _, s := range specs {
		img, err := s.spec.ensure(ctx, dir, runtime.GOARCH, log)
		if err != nil {
			return nil, err
		}
		out = append(out, addonImage{env: s.env, image: img})
	}
	return out, nil
}

// airGapFile is the image's archive in the node image's air-gap images
// directory.
func (a addonImage) airGapFile() file {
	repo, _, _ := strings.Cut(a.image.Ref, ":")
	return file{name: "var/lib/rancher/k3s/agent/images/" + filepath.Base(repo) + ".tar", mode: 0o644, path: a.image.Archive}
}
