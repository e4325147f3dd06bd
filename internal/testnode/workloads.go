package testnode

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/jewelry-shop/lab/internal/controlplane"
)

// The repositories of the workload images, under the same never-resolving
// domain as the node images.
const (
	PauseRepository = "lab-test.invalid/pause"
	RedisRepository = "lab-test.invalid/redis-debian"
	NginxRepository = "lab-test.invalid/nginx-debian"
)

// WorkloadImages are the images that the real nodes of internal/realnode run
// besides the shop's, built like the node images (content-keyed, cached,
// docker-archive tarballs) and imported into each node's containerd:
type WorkloadImages struct {
	// Pause is every pod's sandbox container (containerd's sandbox_image):
	// cmd/pause, a static binary.
	Pause Image
	// Redis stands in for docker.io/library/redis: Debian's redis-server
	// and redis-sentinel with sh and coreutils, the user redis as 999:999
	// and /data as its working directory, as the chart expects of the
	// official image.
	Redis Image
	// Nginx stands in for docker.io/library/nginx: Debian's nginx-light with
	// the official image's nginx.conf layout (conf.d/*.conf included, logs
	// to standard output and error, `nginx -g "daemon off;"`, SIGQUIT to
	// stop).
	Nginx Image
}

// All returns the images, pause first.
func (w WorkloadImages) All() []Image { return []Image{w.Pause, w.Redis, w.Nginx} }

// BuildWorkloadImages returns the workload images, building those that are
// not in the cache. A cold build runs `hack/node-rootfs.sh workloads`
// (debootstrap: minutes, root); missing prerequisites are reported as
// *MissingError.
func BuildWorkloadImages(ctx context.Context, opts Options) (WorkloadImages, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	moduleDir := opts.ModuleDir
	if moduleDir == "" {
		var err error
		if moduleDir, err = findModule(ctx); err != nil {
			return WorkloadImages{}, err
		}
	}
	cache, err := controlplane.CacheDir()
	if err != nil {
		return WorkloadImages{}, err
	}
	tmp, err := os.MkdirTemp("", "lab-testnode-")
	if err != nil {
		return WorkloadImages{}, fmt.Errorf("make a build directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	start := time.Now()
	bins, err := buildStandins(ctx, moduleDir, tmp, "pause")
	if err != nil {
		return WorkloadImages{}, err
	}
	rootfs, rootfsSum, err := nodeRootfs(ctx, log, moduleDir, "workloads")
	if err != nil {
		return WorkloadImages{}, err
	}
	passwd, group, err := redisAccounts(rootfs)
	if err != nil {
		return WorkloadImages{}, err
	}
	dir := filepath.Join(cache, "node-images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return WorkloadImages{}, fmt.Errorf("make the image cache: %w", err)
	}
	base := layerSource{path: rootfs, sum: rootfsSum, createdBy: "hack/node-rootfs.sh workloads: Debian bookworm minbase with nginx-light, redis-server, redis-sentinel"}
	path := "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	specs := []struct {
		spec spec
		dst  *Image
	}{
		{pauseSpec(bins["pause"]), nil},
		{spec{
			kind: "redis", repo: RedisRepository,
			layers: []layerSource{base, {files: []file{
				{name: "etc/passwd", mode: 0o644, body: passwd},
				{name: "etc/group", mode: 0o644, body: group},
				{name: "data/", mode: 0o755, dir: true},
			}, createdBy: "the official image's redis user (999:999) and /data"}},
			cmd:         []string{"redis-server"},
			env:         []string{path},
			workdir:     "/data",
			description: "lab's test-only stand-in for docker.io/library/redis, from Debian's redis-server and redis-sentinel",
		}, nil},
		{spec{
			kind: "nginx", repo: NginxRepository,
			layers: []layerSource{base, {files: []file{
				{name: "etc/nginx/nginx.conf", mode: 0o644, body: []byte(nginxConf)},
				{name: "etc/nginx/conf.d/", mode: 0o755, dir: true},
				{name: "var/log/nginx/access.log", mode: 0o777, link: "/dev/stdout"},
				{name: "var/log/nginx/error.log", mode: 0o777, link: "/dev/stderr"},
			}, createdBy: "the official image's nginx.conf layout"}},
			cmd:         []string{"nginx", "-g", "daemon off;"},
			env:         []string{path},
			stopSignal:  "SIGQUIT",
			description: "lab's test-only stand-in for docker.io/library/nginx, from Debian's nginx-light",
		}, nil},
	}
	var imgs WorkloadImages
	specs[0].dst, specs[1].dst, specs[2].dst = &imgs.Pause, &imgs.Redis, &imgs.Nginx
	for _, s := range specs {
		img, err := s.spec.ensure(ctx, dir, runtime.GOARCH, log)
		if err != nil {
			return WorkloadImages{}, err
		}
		*s.dst = img
	}
	pruneArchives(dir, []string{PauseRepository, RedisRepository, NginxRepository}, imgs.All(), log)
	log.Info("workload images ready", "elapsed", time.Since(start).Round(time.Millisecond))
	return imgs, nil
}

// pauseSpec is the pause image: cmd/pause (built at bin), the sandbox of
// every pod on the real nodes of internal/realnode and of the k3d node
// image.
func pauseSpec(bin string) spec {
	return spec{
		kind: "pause", repo: PauseRepository,
		layers:      []layerSource{{files: []file{{name: "pause", mode: 0o755, path: bin}}, createdBy: "internal/testnode/cmd/pause"}},
		entrypoint:  []string{"/pause"},
		description: "lab's test-only pause image: the sandbox of every pod on a real test node",
	}
}

// nginxConf is the official nginx image's main configuration, with
// Debian's user: the server blocks come from conf.d, where the chart mounts
// its own.
const nginxConf = `user  www-data;
worker_processes  auto;

error_log  /var/log/nginx/error.log notice;
pid        /run/nginx.pid;

events {
    worker_connections  1024;
}

http {
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;

    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" '
                      '"$http_user_agent" "$http_x_forwarded_for"';

    access_log  /var/log/nginx/access.log  main;

    sendfile        on;
    keepalive_timeout  65;

    include /etc/nginx/conf.d/*.conf;
}
`

// redisAccounts returns the root file system's /etc/passwd and /etc/group
// with the redis user and group renumbered to 999, the official image's
// (the chart runs Redis as 999 and gives its volumes to group 999).
func redisAccounts(rootfs string) (passwd, group []byte, err error) {
	files, err := readTarFiles(rootfs, "./etc/passwd", "./etc/group")
	if err != nil {
		return nil, nil, err
	}
	renumber := func(name, content string, fields []int) ([]byte, error) {
		var out []string
		found := false
		for _, line := range strings.Split(strings.TrimRight(content, "\n"), "\n") {
			f := strings.Split(line, ":")
			if f[0] == "redis" && len(f) > fields[len(fields)-1] {
				for _, i := range fields {
					f[i] = "999"
				}
				found = true
			}
			out = append(out, strings.Join(f, ":"))
		}
		if !found {
			return nil, fmt.Errorf("the workloads root file system has no redis entry in %s", name)
		}
		return []byte(strings.Join(out, "\n") + "\n"), nil
	}
	if passwd, err = renumber("/etc/passwd", files["./etc/passwd"], []int{2, 3}); err != nil {
		return nil, nil, err
	}
	if group, err = renumber("/etc/group", files["./etc/group"], []int{2}); err != nil {
		return nil, nil, err
	}
	return passwd, group, nil
}

// readTarFiles returns the contents of the named regular files of a tarball.
func readTarFiles(path string, names ...string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]string{}
	tr := tar.NewReader(f)
	for len(out) < len(want) {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if !want[h.Name] || h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("read %s from %s: %w", h.Name, path, err)
		}
		out[h.Name] = string(b)
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("%s has no %s", path, n)
		}
	}
	return out, nil
}
