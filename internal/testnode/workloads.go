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
	PauseRepository    = "lab-test.invalid/pause"
	RedisRepository    = "lab-test.invalid/redis-debian"
	NginxRepository    = "lab-test.invalid/nginx-debian"
	PostgresRepository = "lab-test.invalid/postgres-debian"
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
	// Postgres stands in for docker.io/library/postgres: Debian's
	// postgresql-15 (without JIT) with an entrypoint of lab's after the
	// official image's contract (postgresEntrypoint: POSTGRES_USER,
	// POSTGRES_PASSWORD, POSTGRES_DB, PGDATA), the user postgres as 999:999,
	// port 5432, SIGINT to stop (fast shutdown), pg_isready and psql on PATH.
	// Its own root file system (the postgres set of hack/node-rootfs.sh), so
	// the other images do not carry PostgreSQL.
	Postgres Image
}

// All returns the images, pause first.
func (w WorkloadImages) All() []Image { return []Image{w.Pause, w.Redis, w.Nginx, w.Postgres} }

// BuildWorkloadImages returns the workload images, building those that are
// not in the cache. A cold build runs `hack/node-rootfs.sh workloads` and
// `hack/node-rootfs.sh postgres` (debootstrap: a minute or more each, root);
// missing prerequisites are reported as *MissingError.
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
	passwd, group, err := accounts999(rootfs, "redis")
	if err != nil {
		return WorkloadImages{}, err
	}
	pgRootfs, pgRootfsSum, err := nodeRootfs(ctx, log, moduleDir, "postgres")
	if err != nil {
		return WorkloadImages{}, err
	}
	pgPasswd, pgGroup, err := accounts999(pgRootfs, "postgres")
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
		{postgresSpec(layerSource{path: pgRootfs, sum: pgRootfsSum, createdBy: "hack/node-rootfs.sh postgres: Debian bookworm minbase with postgresql-15"}, pgPasswd, pgGroup), nil},
	}
	var imgs WorkloadImages
	specs[0].dst, specs[1].dst, specs[2].dst, specs[3].dst = &imgs.Pause, &imgs.Redis, &imgs.Nginx, &imgs.Postgres
	for _, s := range specs {
		img, err := s.spec.ensure(ctx, dir, runtime.GOARCH, log)
		if err != nil {
			return WorkloadImages{}, err
		}
		*s.dst = img
	}
	pruneArchives(dir, []string{PauseRepository, RedisRepository, NginxRepository, PostgresRepository}, imgs.All(), log)
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

// postgresSpec is the PostgreSQL stand-in on its root file system (base),
// with the accounts of accounts999. The official image's configuration:
// PGDATA a VOLUME, SIGINT to stop, the entrypoint script, cmd postgres;
// PostgreSQL's own binaries first on PATH (Debian's /usr/bin wrappers need
// postgresql-common's Perl and a cluster registry the image does not use).
func postgresSpec(base layerSource, passwd, group []byte) spec {
	const pgdata = "/var/lib/postgresql/data"
	return spec{
		kind: "postgres", repo: PostgresRepository,
		layers: []layerSource{base, {files: []file{
			{name: "etc/passwd", mode: 0o644, body: passwd},
			{name: "etc/group", mode: 0o644, body: group},
			{name: "usr/local/bin/docker-entrypoint.sh", mode: 0o755, body: []byte(postgresEntrypoint)},
			{name: "var/lib/postgresql/", mode: 0o755, dir: true, uid: 999, gid: 999},
			{name: "var/lib/postgresql/data/", mode: 0o700, dir: true, uid: 999, gid: 999},
			// Debian's PostgreSQL puts its socket here (/var/run is a link
			// to /run); setgid and sticky, as in the official image.
			{name: "run/postgresql/", mode: 0o3775, dir: true, uid: 999, gid: 999},
		}, createdBy: "the official image's postgres user (999:999), PGDATA and entrypoint"}},
		entrypoint: []string{"/usr/local/bin/docker-entrypoint.sh"},
		cmd:        []string{"postgres"},
		env: []string{
			"PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"PGDATA=" + pgdata,
			// minbase has no locales generated; C.UTF-8 is glibc's own.
			"LANG=C.UTF-8",
			"PG_MAJOR=15",
		},
		stopSignal:  "SIGINT",
		volumes:     []string{pgdata},
		ports:       []string{"5432/tcp"},
		description: "lab's test-only stand-in for docker.io/library/postgres, from Debian's postgresql-15",
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

// accounts999 returns the root file system's /etc/passwd and /etc/group
// with the user and group account renumbered to 999, as the official redis
// and postgres images number theirs (the chart runs them as 999 and gives
// their volumes to group 999). Another entry that already has 999 is an
// error: two accounts would share the number.
func accounts999(rootfs, account string) (passwd, group []byte, err error) {
	files, err := readTarFiles(rootfs, "./etc/passwd", "./etc/group")
	if err != nil {
		return nil, nil, err
	}
	renumber := func(name, content string, fields []int) ([]byte, error) {
		var out []string
		found := false
		for _, line := range strings.Split(strings.TrimRight(content, "\n"), "\n") {
			f := strings.Split(line, ":")
			switch {
			case f[0] == account && len(f) > fields[len(fields)-1]:
				for _, i := range fields {
					f[i] = "999"
				}
				found = true
			case len(f) > 2 && f[2] == "999":
				return nil, fmt.Errorf("renumber %s to 999 in %s of %s: %s has 999 already", account, name, rootfs, f[0])
			}
			out = append(out, strings.Join(f, ":"))
		}
		if !found {
			return nil, fmt.Errorf("the root file system %s has no %s entry in %s", rootfs, account, name)
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
