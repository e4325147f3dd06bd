// Package testnode builds, without Docker, a Dockerfile or a registry, the
// test-only images that let k3d create a real cluster on a machine that can
// pull no image: a node image that k3d runs as it runs rancher/k3s, and
// stand-ins for k3d's load balancer and tools images.
//
// The node image is a Debian bookworm minbase (hack/node-rootfs.sh; with
// containerd, runc and the CNI plugins), the static Kubernetes binaries of
// hack/test-assets.sh (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kubelet, kube-proxy, kubectl), the archives of the pause
// image and of the add-ons' images (CoreDNS, metrics-server,
// local-path-provisioner and its busybox helper; see addonImages) and
// /bin/k3s, the stand-in in cmd/k3s. Its Kubernetes API is real and so
// are its nodes: pods run in containers (see cmd/k3s for what is not k3s).
//
// Every image is tagged with a content hash of what went into it
// (lab-test.invalid/k3s-standin:<key>), so a changed input gives a new tag,
// and an unchanged image is neither rebuilt nor loaded again. The images
// are written as docker-archive tarballs to
// ${LAB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lab}/node-images/ and
// loaded into Docker by Load. Tests get them through dockertest.NodeImages.
package testnode

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/jewelry-shop/lab/internal/controlplane"
)

// The stand-ins' repositories. The .invalid top-level domain (RFC 6761)
// never resolves, so nothing ever tries to pull them, and they are never
// mistaken for upstream images.
const (
	NodeRepository         = "lab-test.invalid/k3s-standin"
	LoadBalancerRepository = "lab-test.invalid/k3d-proxy-standin"
	ToolsRepository        = "lab-test.invalid/k3d-tools-standin"
)

// ImageLabel is on the config of every stand-in image; its value is the
// image's kind (node, loadbalancer, tools).
const ImageLabel = "org.jewelry-shop.lab.test-image"

// formatVersion is part of every key: bump it when the way the images are
// put together changes without any input changing.
const formatVersion = "testnode images v1"

// Image is one built stand-in image.
type Image struct {
	// Ref is the image reference, e.g. lab-test.invalid/k3s-standin:<key>.
	Ref string
	// Archive is the docker-archive tarball that holds it.
	Archive string
}

// Images are the stand-ins a k3d cluster needs.
type Images struct {
	// Node is the k3s node image, for servers and agents alike.
	Node Image
	// LoadBalancer stands in for ghcr.io/k3d-io/k3d-proxy.
	LoadBalancer Image
	// Tools stands in for ghcr.io/k3d-io/k3d-tools.
	Tools Image
}

// All returns the images, node image first.
func (i Images) All() []Image {
	return []Image{i.Node, i.LoadBalancer, i.Tools}
}

// LabEnv returns the environment that makes the lab binary create its
// cluster from the stand-ins: the node image (cluster.image) and k3d's
// helper images (cluster.loadBalancerImage, cluster.toolsImage).
func (i Images) LabEnv() []string {
	return []string{
		"LAB_CLUSTER_IMAGE=" + i.Node.Ref,
		"LAB_CLUSTER_LOADBALANCERIMAGE=" + i.LoadBalancer.Ref,
		"LAB_CLUSTER_TOOLSIMAGE=" + i.Tools.Ref,
	}
}

// MissingError says that something the build needs from the machine is
// missing, and what provides it.
type MissingError struct {
	What string
	Fix  string
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("%s; %s", e.What, e.Fix)
}

// Options tune Build.
type Options struct {
	// Log receives progress; nil discards.
	Log *slog.Logger
	// ModuleDir is the root of the lab module (hack/node-rootfs.sh and the
	// stand-ins' sources are found there); empty finds it with `go env GOMOD`
	// from the working directory.
	ModuleDir string
}

// assetBinaries are the test assets the node image carries.
func assetBinaries() []string {
	return []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl"}
}

// Build returns the stand-in images, building those that are not in the
// cache. A cold build runs hack/node-rootfs.sh (debootstrap: minutes, root);
// a warm one builds the stand-ins with the Go build cache and hashes the
// inputs (seconds). Missing prerequisites are reported as *MissingError.
func Build(ctx context.Context, opts Options) (Images, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	moduleDir := opts.ModuleDir
	if moduleDir == "" {
		var err error
		if moduleDir, err = findModule(ctx); err != nil {
			return Images{}, err
		}
	}
	cache, err := controlplane.CacheDir()
	if err != nil {
		return Images{}, err
	}
	assets, err := controlplane.AssetsDir()
	if err != nil {
		return Images{}, err
	}
	for _, b := range append(assetBinaries(), addonBinaries()...) {
		if fi, err := os.Stat(filepath.Join(assets, b)); err != nil || fi.Mode()&0o111 == 0 {
			return Images{}, &MissingError{What: fmt.Sprintf("test asset %s not found in %s", b, assets), Fix: "build the test assets with `make test-assets` (hack/test-assets.sh)"}
		}
	}

	tmp, err := os.MkdirTemp("", "lab-testnode-")
	if err != nil {
		return Images{}, fmt.Errorf("make a build directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	start := time.Now()
	bins, err := buildStandins(ctx, moduleDir, tmp, "k3s", "k3d-proxy", "k3d-tools", "pause")
	if err != nil {
		return Images{}, err
	}
	log.Debug("built the stand-in binaries", "elapsed", time.Since(start).Round(time.Millisecond))
	rootfs, rootfsSum, err := nodeRootfs(ctx, log, moduleDir, "node")
	if err != nil {
		return Images{}, err
	}

	dir := filepath.Join(cache, "node-images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Images{}, fmt.Errorf("make the image cache: %w", err)
	}

	// The pods' sandbox image, which every node imports into its
	// containerd at start (from k3s's air-gap images directory).
	pause, err := pauseSpec(bins["pause"]).ensure(ctx, dir, runtime.GOARCH, log)
	if err != nil {
		return Images{}, err
	}
	// The server's add-ons' images, imported the same way.
	addons, err := addonImages(ctx, log, dir, tmp, assets, rootfs)
	if err != nil {
		return Images{}, err
	}
	airGap := []file{{name: "var/lib/rancher/k3s/agent/images/pause.tar", mode: 0o644, path: pause.Archive}}
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		// k3s's kubectl defaults to this file; k3d's entrypoint runs
		// kubectl uncordon/drain on servers.
		"KUBECONFIG=/etc/rancher/k3s/k3s.yaml",
		// k3s's ctr talks to its containerd in the namespace of the
		// pods' images; k3d's image import runs `ctr image import`.
		"CONTAINERD_ADDRESS=/run/k3s/containerd/containerd.sock",
		"CONTAINERD_NAMESPACE=k8s.io",
		"LAB_K3S_PAUSE_IMAGE=" + pause.Ref,
	}
	for _, a := range addons {
		airGap = append(airGap, a.airGapFile())
		env = append(env, a.env+"="+a.image.Ref)
	}
	var assetFiles []file
	for _, b := range assetBinaries() {
		assetFiles = append(assetFiles, file{name: "usr/local/bin/" + b, mode: 0o755, path: filepath.Join(assets, b)})
	}
	node := spec{
		kind: "node",
		repo: NodeRepository,
		layers: []layerSource{
			{path: rootfs, sum: rootfsSum, createdBy: "hack/node-rootfs.sh: Debian bookworm minbase"},
			{files: assetFiles, createdBy: "test assets: " + strings.Join(assetBinaries(), ", ")},
			{files: append([]file{
				{name: "usr/bin/k3s", mode: 0o755, path: bins["k3s"]},
				// k3d's entrypoint script traps SIGTERM by that name, which
				// Debian's dash refuses ("bad trap") and busybox's sh in
				// rancher/k3s accepts; bash does too.
				{name: "usr/bin/sh", mode: 0o777, link: "bash"},
				// One machine ID for every node of the image; a real node
				// image would make one per container at its first start.
				{name: "etc/machine-id", mode: 0o444, body: []byte(key([]string{"machine-id", rootfsSum}) + "\n")},
			}, airGap...), createdBy: "internal/testnode/cmd/k3s as /bin/k3s, the pause image, the add-ons' images"},
		},
		entrypoint: []string{"/bin/k3s"},
		cmd:        []string{"agent"},
		env:        env,
		// As rancher/k3s declares them: containerd's overlayfs snapshotter
		// cannot mount on the container's overlay root, and can on a
		// volume; k3d removes them with the container.
		volumes:     []string{"/var/lib/rancher/k3s", "/var/lib/kubelet", "/var/lib/cni", "/var/log"},
		description: "lab's test-only stand-in for rancher/k3s: Kubernetes v1.37 control plane, containerd, kubelet and kube-proxy",
	}
	helper := func(kind, repo, bin, workdir string, dirs []string, description string) spec {
		entry := workdir + "/" + bin
		files := []file{{name: "tmp/", mode: 0o1777, dir: true}}
		for _, d := range dirs {
			files = append(files, file{name: d, mode: 0o755, dir: true})
		}
		files = append(files, file{name: strings.TrimPrefix(entry, "/"), mode: 0o755, path: bins[bin]})
		return spec{
			kind:        kind,
			repo:        repo,
			layers:      []layerSource{{files: files, createdBy: "internal/testnode/cmd/" + bin}},
			entrypoint:  []string{entry},
			workdir:     workdir,
			description: description,
		}
	}
	// k3d copies the load balancer's configuration to /etc/confd.
	lb := helper("loadbalancer", LoadBalancerRepository, "k3d-proxy", "", []string{"etc/", "etc/confd/"}, "lab's test-only stand-in for ghcr.io/k3d-io/k3d-proxy")
	// k3d runs ./k3d-tools in the tools container's working directory.
	tools := helper("tools", ToolsRepository, "k3d-tools", "/app", nil, "lab's test-only stand-in for ghcr.io/k3d-io/k3d-tools")

	var imgs Images
	for _, s := range []struct {
		spec spec
		dst  *Image
	}{{node, &imgs.Node}, {lb, &imgs.LoadBalancer}, {tools, &imgs.Tools}} {
		img, err := s.spec.ensure(ctx, dir, runtime.GOARCH, log)
		if err != nil {
			return Images{}, err
		}
		*s.dst = img
	}
	keep := imgs.All()
	for _, a := range addons {
		keep = append(keep, a.image)
	}
	pruneArchives(dir, []string{NodeRepository, LoadBalancerRepository, ToolsRepository, CoreDNSRepository, MetricsServerRepository, LocalPathRepository, LocalPathHelperRepository}, keep, log)
	log.Info("stand-in images ready", "node", imgs.Node.Ref, "elapsed", time.Since(start).Round(time.Millisecond))
	return imgs, nil
}

// findModule returns the directory of the main module's go.mod.
func findModule(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the lab module (go env GOMOD): %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("find the lab module: the working directory is not inside it")
	}
	return filepath.Dir(gomod), nil
}

// buildStandins builds the stand-in programs (internal/testnode/cmd/<name>)
// as static Linux binaries into dir and returns their paths by name.
func buildStandins(ctx context.Context, moduleDir, dir string, names ...string) (map[string]string, error) {
	args := []string{"build", "-trimpath", "-ldflags=-s -w", "-o", dir + string(filepath.Separator)}
	for _, n := range names {
		args = append(args, "./internal/testnode/cmd/"+n)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build the stand-ins (go %s): %w\n%s", strings.Join(args, " "), err, b)
	}
	bins := map[string]string{}
	for _, n := range names {
		bins[n] = filepath.Join(dir, n)
	}
	return bins, nil
}

// nodeRootfs runs hack/node-rootfs.sh for a package set (node, workloads)
// and returns the tarball and its SHA-256. The script exits 3 when the
// machine lacks what it needs.
func nodeRootfs(ctx context.Context, log *slog.Logger, moduleDir, set string) (string, string, error) {
	start := time.Now()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(moduleDir, "hack", "node-rootfs.sh"), set)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == 3 {
			return "", "", &MissingError{What: "cannot build the node image's root file system: " + strings.TrimSpace(stderr.String()), Fix: "run as root with debootstrap installed (.ci/run installs it)"}
		}
		return "", "", fmt.Errorf("hack/node-rootfs.sh: %w\n%s", err, strings.TrimSpace(stderr.String()))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	path := lines[len(lines)-1]
	sum, err := os.ReadFile(path + ".sha256")
	if err != nil {
		return "", "", fmt.Errorf("read the root file system's checksum: %w", err)
	}
	if msg := strings.TrimSpace(stderr.String()); msg != "" {
		log.Info("built the node root file system", "tarball", path, "elapsed", time.Since(start).Round(time.Second), "output", msg)
	}
	return path, strings.TrimSpace(string(sum)), nil
}

// key hashes inputs into an image tag.
func key(inputs []string) string {
	h := sha256.Sum256([]byte(strings.Join(inputs, "\n")))
	return hex.EncodeToString(h[:])[:32]
}

func fileSum(ctx context.Context, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, withContext(ctx, f)); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// spec is how one image is put together.
type spec struct {
	kind        string
	repo        string
	layers      []layerSource
	entrypoint  []string
	cmd         []string
	env         []string
	workdir     string
	description string
	// user and stopSignal are the image's; empty leaves them unset (and
	// out of the key, so that the images without them keep their tags).
	user       string
	stopSignal string
	// volumes are the image's VOLUME paths, ports its EXPOSE ports
	// ("5432/tcp"); empty leaves them out of the key, too.
	volumes []string
	ports   []string
	// compress gzips the layers (fastest level); false stores them, and
	// leaves the key as it was.
	compress bool
}

// layerSource is a layer: an existing tarball (path, with its SHA-256 in
// sum), or files.
type layerSource struct {
	path      string
	sum       string
	files     []file
	createdBy string
}

// file is one entry of a generated layer: a directory, a symbolic link,
// bytes, or a file copied from path, owned by uid:gid (root by default).
type file struct {
	name string
	mode int64
	dir  bool
	link string
	body []byte
	path string
	uid  int
	gid  int
}

// created is the fixed creation time of every image and layer entry, so that
// the same inputs give the same image.
func created() time.Time { return time.Unix(0, 0).UTC() }

// key hashes everything that goes into the image: every layer's entries
// (names, modes, links, contents) and the image configuration.
func (s spec) key(ctx context.Context, arch string) (string, error) {
	in := []string{
		formatVersion, s.kind, s.repo, arch, s.workdir, s.description,
		strings.Join(s.entrypoint, " "), strings.Join(s.cmd, " "), strings.Join(s.env, " "),
	}
	if s.user != "" || s.stopSignal != "" {
		in = append(in, "user "+s.user, "stop signal "+s.stopSignal)
	}
	if len(s.volumes) > 0 {
		in = append(in, "volumes "+strings.Join(s.volumes, " "))
	}
	if len(s.ports) > 0 {
		in = append(in, "ports "+strings.Join(s.ports, " "))
	}
	if s.compress {
		in = append(in, "gzip")
	}
	for _, l := range s.layers {
		in = append(in, "layer "+l.createdBy)
		if l.path != "" {
			in = append(in, "tarball "+l.sum)
		}
		for _, f := range l.files {
			sum := ""
			switch {
			case f.path != "":
				var err error
				if sum, err = fileSum(ctx, f.path); err != nil {
					return "", err
				}
			case !f.dir && f.link == "":
				h := sha256.Sum256(f.body)
				sum = hex.EncodeToString(h[:])
			}
			entry := fmt.Sprintf("%s %o dir=%t link=%s %s", f.name, f.mode, f.dir, f.link, sum)
			if f.uid != 0 || f.gid != 0 { // root's entries keep their keys
				entry += fmt.Sprintf(" owner=%d:%d", f.uid, f.gid)
			}
			in = append(in, entry)
		}
	}
	return key(in), nil
}

// ensure returns the image, writing its archive unless the cache has it.
func (s spec) ensure(ctx context.Context, dir, arch string, log *slog.Logger) (Image, error) {
	k, err := s.key(ctx, arch)
	if err != nil {
		return Image{}, err
	}
	ref := s.repo + ":" + k
	archive := filepath.Join(dir, filepath.Base(s.repo)+"-"+k+".tar")
	if _, err := os.Stat(archive); err == nil {
		now := time.Now()
		_ = os.Chtimes(archive, now, now) // last use, for pruneArchives
		log.Debug("image cached", "image", ref, "archive", archive)
		return Image{Ref: ref, Archive: archive}, nil
	}
	start := time.Now()
	img, err := s.image(ctx, ref, arch)
	if err != nil {
		return Image{}, err
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return Image{}, fmt.Errorf("image reference %q: %w", ref, err)
	}
	tmp := archive + ".tmp-" + fmt.Sprint(os.Getpid())
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		_ = os.Remove(tmp)
		return Image{}, fmt.Errorf("write image %s: %w", ref, err)
	}
	if err := os.Rename(tmp, archive); err != nil {
		_ = os.Remove(tmp)
		return Image{}, fmt.Errorf("write image %s: %w", ref, err)
	}
	fi, _ := os.Stat(archive)
	log.Info("built image", "image", ref, "bytes", fi.Size(), "elapsed", time.Since(start).Round(time.Millisecond))
	return Image{Ref: ref, Archive: archive}, nil
}

// image assembles the image. Layers are gzip streams without compression
// unless s.compress: most images only travel from this cache into the local
// Docker, where compressing them would cost time and save nothing.
func (s spec) image(ctx context.Context, ref, arch string) (v1.Image, error) {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	level := gzip.NoCompression
	if s.compress {
		level = gzip.BestSpeed
	}
	for _, ls := range s.layers {
		opener := func() (io.ReadCloser, error) { return ls.open(ctx) }
		l, err := tarball.LayerFromOpener(opener, tarball.WithCompressionLevel(level), tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return nil, fmt.Errorf("image %s: layer %q: %w", s.repo, ls.createdBy, err)
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{Created: v1.Time{Time: created()}, CreatedBy: ls.createdBy}})
		if err != nil {
			return nil, fmt.Errorf("image %s: add layer %q: %w", s.repo, ls.createdBy, err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: read config: %w", s.repo, err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = arch, "linux"
	cf.Created = v1.Time{Time: created()}
	cf.Config.Entrypoint = s.entrypoint
	cf.Config.Cmd = s.cmd
	cf.Config.Env = s.env
	cf.Config.WorkingDir = s.workdir
	cf.Config.User = s.user
	cf.Config.StopSignal = s.stopSignal
	if len(s.volumes) > 0 {
		cf.Config.Volumes = map[string]struct{}{}
		for _, v := range s.volumes {
			cf.Config.Volumes[v] = struct{}{}
		}
	}
	if len(s.ports) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range s.ports {
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	cf.Config.Labels = map[string]string{
		ImageLabel:                             s.kind,
		"org.opencontainers.image.description": s.description,
		"org.opencontainers.image.version":     strings.TrimPrefix(ref, s.repo+":"),
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image %s: set config: %w", s.repo, err)
	}
	return img, nil
}

// open streams the layer's tar: the tarball, or one generated from its
// files. Reading fails once ctx ends, which stops a build in the middle.
func (ls layerSource) open(ctx context.Context) (io.ReadCloser, error) {
	if ls.path != "" {
		f, err := os.Open(ls.path)
		if err != nil {
			return nil, fmt.Errorf("open layer %s: %w", ls.path, err)
		}
		return struct {
			io.Reader
			io.Closer
		}{withContext(ctx, f), f}, nil
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeLayer(pw, ls.files)) }()
	return struct {
		io.Reader
		io.Closer
	}{withContext(ctx, pr), pr}, nil
}

// withContext returns a reader of r whose reads fail once ctx has ended.
func withContext(ctx context.Context, r io.Reader) io.Reader {
	return readFunc(func(p []byte) (int, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		return r.Read(p)
	})
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

// writeLayer writes files as a tar, every parent directory listed before
// its entries and owned by root, with the fixed time.
func writeLayer(w io.Writer, files []file) error {
	tw := tar.NewWriter(w)
	dirs := map[string]bool{}
	uid, gid := 0, 0 // the owner of the entry being written; parents are root's
	header := func(name string, mode int64, typ byte, size int64) error {
		return tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Typeflag: typ, Size: size, Uid: uid, Gid: gid, ModTime: created(), Format: tar.FormatPAX})
	}
	for _, f := range files {
		uid, gid = 0, 0
		parts := strings.Split(strings.TrimSuffix(f.name, "/"), "/")
		for i := 1; i < len(parts); i++ {
			d := strings.Join(parts[:i], "/") + "/"
			if !dirs[d] {
				dirs[d] = true
				if err := header(d, 0o755, tar.TypeDir, 0); err != nil {
					return fmt.Errorf("write layer entry %s: %w", d, err)
				}
			}
		}
		uid, gid = f.uid, f.gid
		switch {
		case f.dir:
			if dirs[f.name] {
				continue
			}
			dirs[f.name] = true
			if err := header(f.name, f.mode, tar.TypeDir, 0); err != nil {
				return fmt.Errorf("write layer entry %s: %w", f.name, err)
			}
		case f.link != "":
			h := &tar.Header{Name: f.name, Mode: f.mode, Typeflag: tar.TypeSymlink, Linkname: f.link, Uid: f.uid, Gid: f.gid, ModTime: created(), Format: tar.FormatPAX}
			if err := tw.WriteHeader(h); err != nil {
				return fmt.Errorf("write layer entry %s: %w", f.name, err)
			}
		case f.path != "":
			if err := copyFile(tw, header, f); err != nil {
				return err
			}
		default:
			if err := header(f.name, f.mode, tar.TypeReg, int64(len(f.body))); err != nil {
				return fmt.Errorf("write layer entry %s: %w", f.name, err)
			}
			if _, err := tw.Write(f.body); err != nil {
				return fmt.Errorf("write layer entry %s: %w", f.name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("close layer: %w", err)
	}
	return nil
}

func copyFile(tw *tar.Writer, header func(string, int64, byte, int64) error, f file) error {
	src, err := os.Open(f.path)
	if err != nil {
		return fmt.Errorf("layer entry %s: %w", f.name, err)
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return fmt.Errorf("layer entry %s: %w", f.name, err)
	}
	if err := header(f.name, f.mode, tar.TypeReg, fi.Size()); err != nil {
		return fmt.Errorf("write layer entry %s: %w", f.name, err)
	}
	if _, err := io.Copy(tw, src); err != nil {
		return fmt.Errorf("write layer entry %s: %w", f.name, err)
	}
	return nil
}

// staleAfter is how long an archive of a superseded image stays in the
// cache after its last use; another checkout may still be using it.
const staleAfter = time.Hour

// pruneArchives removes the archives of the given repositories that are
// not those of keep and were not used for staleAfter. Failures only cost disk
// space and are logged.
func pruneArchives(dir string, repos []string, keep []Image, log *slog.Logger) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	current := map[string]bool{}
	for _, img := range keep {
		current[filepath.Base(img.Archive)] = true
	}
	for _, e := range entries {
		n := e.Name()
		if current[n] || !strings.HasSuffix(n, ".tar") || !isArchiveOf(n, repos) {
			continue
		}
		fi, err := e.Info()
		if err != nil || time.Since(fi.ModTime()) < staleAfter {
			continue
		}
		if err := os.Remove(filepath.Join(dir, n)); err != nil {
			log.Warn("could not remove a superseded image archive", "archive", n, "err", err)
			continue
		}
		log.Info("removed a superseded image archive", "archive", n)
	}
}

// isArchiveOf reports whether n is the archive name of an image of one of
// the repositories (<base name of the repository>-<key>.tar).
func isArchiveOf(n string, repos []string) bool {
	for _, repo := range repos {
		if strings.HasPrefix(n, filepath.Base(repo)+"-") {
			return true
		}
	}
	return false
}
