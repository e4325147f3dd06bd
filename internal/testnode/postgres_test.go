package testnode_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
	"github.com/jackc/pgx/v5"

	"github.com/jewelry-shop/lab/internal/ci"
	"github.com/jewelry-shop/lab/internal/dockertest"
	"github.com/jewelry-shop/lab/internal/testnode"
)

// TestPostgresImage runs the PostgreSQL stand-in in Docker the ways the
// chart runs the official image: started as root, and as 999:999 on a volume
// whose root belongs to root (as Kubernetes mounts one with fsGroup 999),
// each with POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB, reached with
// pgx over TCP with the password. Data written survives a stop and a start
// of the container; `docker stop` (the image's SIGINT) ends PostgreSQL with a
// fast shutdown and exit status 0, not with Docker's SIGKILL after 10 s.
// Every container and volume it makes is removed, and checked gone.
func TestPostgresImage(t *testing.T) {
	docker := dockertest.Client(t)
	ref := postgresImage(t, docker)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	t.Run("root", func(t *testing.T) {
		pg := runPostgres(ctx, t, docker, ref, "", nil, "")
		conn := pg.connect(ctx, t)
		mustExec(ctx, t, conn, `CREATE TABLE rings (id int PRIMARY KEY, name text NOT NULL)`)
		mustExec(ctx, t, conn, `INSERT INTO rings VALUES (1, 'solitaire')`)
		if got := ringName(ctx, t, conn); got != "solitaire" {
			t.Fatalf("read back %q, want solitaire", got)
		}
		var owner, superuser string
		if err := conn.QueryRow(ctx, `SELECT pg_get_userbyid(datdba), (SELECT rolsuper::text FROM pg_roles WHERE rolname = current_user)
			FROM pg_database WHERE datname = current_database()`).Scan(&owner, &superuser); err != nil {
			t.Fatalf("read the database's owner: %v", err)
		}
		if owner != pgUser || superuser != "true" {
			t.Errorf("database %s: owner %s, %s superuser %s; want owner %s, superuser", pgDB, owner, pgUser, superuser, pgUser)
		}
		_ = conn.Close(ctx)
		pg.checkProcesses(ctx, t, "999")
		pg.checkReadinessProbe(ctx, t)
		pg.checkWrongPassword(ctx, t)

		pg.restartAndRead(ctx, t, "solitaire")
	})

	t.Run("uid999OnVolume", func(t *testing.T) {
		vol := fsGroupVolume(ctx, t, docker, ref)
		pg := runPostgres(ctx, t, docker, ref, "999:999", []string{"PGDATA=/var/lib/postgresql/data/pgdata"}, vol)
		conn := pg.connect(ctx, t)
		mustExec(ctx, t, conn, `CREATE TABLE rings (id int PRIMARY KEY, name text NOT NULL)`)
		mustExec(ctx, t, conn, `INSERT INTO rings VALUES (1, 'eternity')`)
		_ = conn.Close(ctx)
		pg.checkProcesses(ctx, t, "999")
		pg.restartAndRead(ctx, t, "eternity")
	})

	t.Run("uid999OnVolumeRootSaysWhy", func(t *testing.T) {
		vol := fsGroupVolume(ctx, t, docker, ref)
		pg := runPostgres(ctx, t, docker, ref, "999:999", nil, vol)
		code := pg.wait(ctx, t)
		logs := containerLogs(ctx, t, docker, pg.id)
		if code == 0 || !strings.Contains(logs, "set PGDATA to a subdirectory") {
			t.Errorf("PGDATA on a volume root owned by root: exit %d, log:\n%s\nwant a failure that says to use a subdirectory", code, logs)
		}
	})
}

const (
	pgUser     = "shop"
	pgPassword = "s3cret 'with' quotes"
	pgDB       = "jewelry"
)

// postgresImage builds the workload images and loads the PostgreSQL
// stand-in into Docker.
func postgresImage(t *testing.T, c *client.Client) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	start := time.Now()
	imgs, err := testnode.BuildWorkloadImages(t.Context(), testnode.Options{Log: log})
	var missing *testnode.MissingError
	if errors.As(err, &missing) {
		ci.Missing(t, "%v", err)
	}
	if err != nil {
		t.Fatalf("build the workload images: %v", err)
	}
	built := time.Since(start)
	start = time.Now()
	loaded, err := testnode.LoadImages(t.Context(), c, imgs.Postgres)
	if err != nil {
		t.Fatalf("load the PostgreSQL image into Docker: %v", err)
	}
	fi, err := os.Stat(imgs.Postgres.Archive)
	if err != nil {
		t.Fatalf("archive of %s: %v", imgs.Postgres.Ref, err)
	}
	t.Logf("%s: archive %d MiB; built or found in %v, loaded %v in %v", imgs.Postgres.Ref, fi.Size()>>20,
		built.Round(time.Millisecond), loaded, time.Since(start).Round(time.Millisecond))
	return imgs.Postgres.Ref
}

// pgContainer is a running PostgreSQL stand-in and its published port.
type pgContainer struct {
	c     *client.Client
	id    string
	port  string
	stops int
}

// runPostgres starts the image with POSTGRES_USER, POSTGRES_PASSWORD and
// POSTGRES_DB, as user (empty: the image's, root), with env added and the
// named volume vol (if any) on /var/lib/postgresql/data, port 5432 published
// on a free loopback port. The container and its anonymous volumes are
// removed when the test ends.
func runPostgres(ctx context.Context, t *testing.T, c *client.Client, ref, user string, env []string, vol string) *pgContainer {
	t.Helper()
	port := dockertest.FreePort(t)
	cfg := &container.Config{
		Image:        ref,
		User:         user,
		Env:          append([]string{"POSTGRES_USER=" + pgUser, "POSTGRES_PASSWORD=" + pgPassword, "POSTGRES_DB=" + pgDB}, env...),
		ExposedPorts: nat.PortSet{"5432/tcp": {}},
		Labels:       map[string]string{"app.kubernetes.io/managed-by": "lab-test"},
	}
	host := &container.HostConfig{PortBindings: nat.PortMap{"5432/tcp": {{HostIP: "127.0.0.1", HostPort: port}}}}
	if vol != "" {
		// No copy of the image's directory into the volume: its root stays
		// as fsGroupVolume left it, as a Kubernetes volume would be.
		host.Mounts = []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: "/var/lib/postgresql/data", VolumeOptions: &mount.VolumeOptions{NoCopy: true}}}
	}
	name := "lab-test-postgres-" + randomSuffix()
	created, err := c.ContainerCreate(ctx, cfg, host, nil, nil, name)
	if err != nil {
		t.Fatalf("create container %s from %s: %v", name, ref, err)
	}
	t.Cleanup(func() { removeContainer(ctx, t, c, created.ID) })
	pg := &pgContainer{c: c, id: created.ID, port: port}
	pg.start(ctx, t)
	return pg
}

func (pg *pgContainer) start(ctx context.Context, t *testing.T) {
	t.Helper()
	if err := pg.c.ContainerStart(ctx, pg.id, container.StartOptions{}); err != nil {
		t.Fatalf("start container %s: %v", pg.id, err)
	}
}

// stop runs `docker stop` with Docker's default timeout (10 s, then
// SIGKILL) and checks that PostgreSQL shut down by itself: one more fast
// shutdown request logged by PID 1 (the default log_line_prefix "%m [%p] ";
// the entrypoint's temporary server logs another PID) and exit status 0
// (SIGKILL would be 137).
func (pg *pgContainer) stop(ctx context.Context, t *testing.T) {
	t.Helper()
	if err := pg.c.ContainerStop(ctx, pg.id, container.StopOptions{}); err != nil {
		t.Fatalf("stop container %s: %v", pg.id, err)
	}
	info, err := pg.c.ContainerInspect(ctx, pg.id)
	if err != nil {
		t.Fatalf("inspect container %s: %v", pg.id, err)
	}
	pg.stops++
	logs := containerLogs(ctx, t, pg.c, pg.id)
	if info.State.ExitCode != 0 || info.State.OOMKilled || strings.Count(logs, "[1] LOG:  received fast shutdown request") != pg.stops {
		t.Errorf("docker stop: exit status %d (OOM killed %t), want 0 after a fast shutdown; log:\n%s", info.State.ExitCode, info.State.OOMKilled, logs)
	}
}

// wait waits for the container to exit by itself and returns its status.
func (pg *pgContainer) wait(ctx context.Context, t *testing.T) int64 {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	statusCh, errCh := pg.c.ContainerWait(wctx, pg.id, container.WaitConditionNotRunning)
	select {
	case s := <-statusCh:
		return s.StatusCode
	case err := <-errCh:
		t.Fatalf("wait for container %s: %v", pg.id, err)
	}
	return -1
}

// connect connects with pgx over TCP with the password, retrying while the
// container initializes its database; it fails at once if the container
// exits.
func (pg *pgContainer) connect(ctx context.Context, t *testing.T) *pgx.Conn {
	t.Helper()
	dsn := pg.dsn(pgPassword)
	deadline := time.Now().Add(90 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(cctx, dsn)
		cancel()
		if err == nil {
			return conn
		}
		info, ierr := pg.c.ContainerInspect(ctx, pg.id)
		if ierr != nil {
			t.Fatalf("inspect container %s: %v", pg.id, ierr)
		}
		if !info.State.Running || time.Now().After(deadline) {
			t.Fatalf("connect to PostgreSQL on 127.0.0.1:%s: %v (container %s, exit status %d); log:\n%s",
				pg.port, err, info.State.Status, info.State.ExitCode, containerLogs(ctx, t, pg.c, pg.id))
		}
		select {
		case <-ctx.Done():
			t.Fatalf("connect to PostgreSQL on 127.0.0.1:%s: %v", pg.port, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (pg *pgContainer) dsn(password string) string {
	u := url.URL{
		Scheme: "postgres", User: url.UserPassword(pgUser, password),
		Host: net.JoinHostPort("127.0.0.1", pg.port), Path: "/" + pgDB, RawQuery: "sslmode=disable",
	}
	return u.String()
}

// checkWrongPassword checks that TCP clients need the password (scram, not
// trust).
func (pg *pgContainer) checkWrongPassword(ctx context.Context, t *testing.T) {
	t.Helper()
	conn, err := pgx.Connect(ctx, pg.dsn("wrong"))
	if err == nil {
		_ = conn.Close(ctx)
		t.Error("connected over TCP with a wrong password")
		return
	}
	if !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("a wrong password: %v, want password authentication failed", err)
	}
}

// checkReadinessProbe runs the chart's readiness probe in the container.
func (pg *pgContainer) checkReadinessProbe(ctx context.Context, t *testing.T) {
	t.Helper()
	if code, out := pg.exec(ctx, t, "pg_isready", "-U", pgUser, "-h", "127.0.0.1"); code != 0 {
		t.Errorf("pg_isready -U %s -h 127.0.0.1: exit %d: %s", pgUser, code, out)
	}
	if code, out := pg.exec(ctx, t, "psql", "-X", "-U", pgUser, "-d", pgDB, "-tAc", "SELECT name FROM rings"); code != 0 || strings.TrimSpace(out) != "solitaire" {
		t.Errorf("psql over the Unix socket: exit %d: %q", code, out)
	}
}

// checkProcesses checks that PostgreSQL is PID 1 (so the stop signal reaches
// it) and runs as uid.
func (pg *pgContainer) checkProcesses(ctx context.Context, t *testing.T, uid string) {
	t.Helper()
	code, out := pg.exec(ctx, t, "sh", "-c", `echo "$(cat /proc/1/comm) $(stat -c %u /proc/1) $(stat -c '%u:%g %a' "$PGDATA")"`)
	want := "postgres " + uid + " " + uid + ":" + uid + " 700"
	if code != 0 || strings.TrimSpace(out) != want {
		t.Errorf("PID 1, its uid, PGDATA's owner and mode: exit %d: %q, want %q", code, strings.TrimSpace(out), want)
	}
}

// exec runs a command in the container (as the container's user) and
// returns its exit status and output.
func (pg *pgContainer) exec(ctx context.Context, t *testing.T, cmd ...string) (int, string) {
	t.Helper()
	created, err := pg.c.ContainerExecCreate(ctx, pg.id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec %v in %s: %v", cmd, pg.id, err)
	}
	resp, err := pg.c.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec %v in %s: %v", cmd, pg.id, err)
	}
	defer resp.Close()
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, resp.Reader); err != nil {
		t.Fatalf("exec %v in %s: read output: %v", cmd, pg.id, err)
	}
	info, err := pg.c.ContainerExecInspect(ctx, created.ID)
	if err != nil {
		t.Fatalf("exec %v in %s: %v", cmd, pg.id, err)
	}
	return info.ExitCode, buf.String()
}

// fsGroupVolume makes a named volume whose root is as Kubernetes mounts a
// fresh ext4 volume for a pod with fsGroup 999: owned by root, group 999,
// setgid and group-writable, with lost+found in it. It is removed when the
// test ends.
func fsGroupVolume(ctx context.Context, t *testing.T, c *client.Client, ref string) string {
	t.Helper()
	name := "lab-test-postgres-" + randomSuffix()
	if _, err := c.VolumeCreate(ctx, volume.CreateOptions{Name: name, Labels: map[string]string{"app.kubernetes.io/managed-by": "lab-test"}}); err != nil {
		t.Fatalf("create volume %s: %v", name, err)
	}
	t.Cleanup(func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := c.VolumeRemove(rctx, name, true); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("remove volume %s: %v", name, err)
		}
		if _, err := c.VolumeInspect(rctx, name); !cerrdefs.IsNotFound(err) {
			t.Errorf("volume %s is still there (%v)", name, err)
		}
	})
	created, err := c.ContainerCreate(ctx,
		&container.Config{
			Image: ref, User: "0:0", Entrypoint: []string{"/bin/sh", "-c"},
			Cmd:    []string{"chown 0:999 /v && chmod 2775 /v && mkdir /v/lost+found"},
			Labels: map[string]string{"app.kubernetes.io/managed-by": "lab-test"},
		},
		&container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: name, Target: "/v", VolumeOptions: &mount.VolumeOptions{NoCopy: true}}}},
		nil, nil, name+"-setup")
	if err != nil {
		t.Fatalf("create the setup container of volume %s: %v", name, err)
	}
	defer removeContainer(ctx, t, c, created.ID)
	pg := &pgContainer{c: c, id: created.ID}
	pg.start(ctx, t)
	if code := pg.wait(ctx, t); code != 0 {
		t.Fatalf("prepare volume %s: exit %d: %s", name, code, containerLogs(ctx, t, c, created.ID))
	}
	return name
}

// removeContainer removes the container with its anonymous volumes (the
// image's VOLUME) and checks that they are gone.
func removeContainer(ctx context.Context, t *testing.T, c *client.Client, id string) {
	t.Helper()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	info, err := c.ContainerInspect(rctx, id)
	if err != nil {
		t.Errorf("inspect container %s: %v", id, err)
		return
	}
	if err := c.ContainerRemove(rctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
		t.Errorf("remove container %s: %v", info.Name, err)
		return
	}
	for _, m := range info.Mounts {
		if m.Type != mount.TypeVolume || strings.HasPrefix(m.Name, "lab-test-") {
			continue // named volumes are removed by whoever made them
		}
		if _, err := c.VolumeInspect(rctx, m.Name); !cerrdefs.IsNotFound(err) {
			t.Errorf("anonymous volume %s of container %s is still there (%v)", m.Name, info.Name, err)
		}
	}
}

func containerLogs(ctx context.Context, t *testing.T, c *client.Client, id string) string {
	t.Helper()
	rc, err := c.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("logs of %s: %v", id, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, rc); err != nil {
		t.Fatalf("logs of %s: %v", id, err)
	}
	return buf.String()
}

func mustExec(ctx context.Context, t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func ringName(ctx context.Context, t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var name string
	if err := conn.QueryRow(ctx, `SELECT name FROM rings WHERE id = 1`).Scan(&name); err != nil {
		t.Fatalf("read the ring: %v", err)
	}
	return name
}

// randomSuffix keeps the names of concurrent runs apart.
func randomSuffix() string { return strings.ToLower(rand.Text()[:8]) }

// tWriter sends log lines to the test's log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// restartAndRead stops and starts the container and reads the ring back:
// the data outlives the restart. It leaves the container stopped.
func (pg *pgContainer) restartAndRead(ctx context.Context, t *testing.T, want string) {
	t.Helper()
	pg.stop(ctx, t)
	pg.start(ctx, t)
	conn := pg.connect(ctx, t)
	if got := ringName(ctx, t, conn); got != want {
		t.Errorf("after a restart read %q, want %s", got, want)
	}
	_ = conn.Close(ctx)
	pg.stop(ctx, t)
}
