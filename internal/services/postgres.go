package services

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jewelry-shop/lab/internal/ci"
)

// PostgresBinDir is where the Debian postgresql package installs the server.
const PostgresBinDir = "/usr/lib/postgresql/15/bin"

// Postgres is a PostgreSQL server started for one test.
type Postgres struct {
	// Port is the TCP port on 127.0.0.1; it stays the same across restarts.
	Port int
	// DataDir is the cluster's data directory.
	DataDir string

	proc *process
}

// StartPostgres initialises a new cluster in a temporary directory, starts
// postgres on a free port of 127.0.0.1 and waits until it accepts
// connections. The server is stopped and its directory removed in
// t.Cleanup. Authentication is trust for user postgres; fsync is off, which
// loses nothing on a graceful stop or a process kill (only an OS crash).
func StartPostgres(tb testing.TB) *Postgres {
	tb.Helper()
	return StartPostgresWith(tb, PostgresOptions{})
}

// PostgresOptions open a server of StartPostgresWith beyond loopback.
type PostgresOptions struct {
	// Listen are addresses the server listens on besides 127.0.0.1, e.g.
	// the host's address on a test bridge.
	Listen []string
	// HBA are pg_hba.conf lines added after initdb's loopback ones, e.g.
	// "host all all 198.18.0.0/15 scram-sha-256".
	HBA []string
}

// StartPostgresWith is StartPostgres with the server also listening on
// opts.Listen and accepting the clients opts.HBA allows.
func StartPostgresWith(tb testing.TB, opts PostgresOptions) *Postgres {
	tb.Helper()
	initdb, ok1 := lookBinary("initdb", PostgresBinDir)
	postgres, ok2 := lookBinary("postgres", PostgresBinDir)
	if !ok1 || !ok2 {
		ci.Missing(tb, "PostgreSQL server binaries (initdb, postgres) in %s: apt-get install -y postgresql", PostgresBinDir)
	}
	cred, err := postgresCredential()
	if err != nil {
		tb.Fatalf("run PostgreSQL as a non-root user: %v", err)
	}
	dir := tempDir(tb, "services-pg-")
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			tb.Fatalf("chown PostgreSQL directory: %v", err)
		}
	}
	data := filepath.Join(dir, "data")
	init := exec.CommandContext(tb.Context(), initdb, "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	init.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := init.CombinedOutput(); err != nil {
		tb.Fatalf("initdb: %v\n%s", err, out)
	}
	if len(opts.HBA) > 0 {
		hba, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err == nil {
			_, err = hba.WriteString(strings.Join(opts.HBA, "\n") + "\n")
			err = errors.Join(err, hba.Close())
		}
		if err != nil {
			tb.Fatalf("add to pg_hba.conf: %v", err)
		}
	}
	pg := &Postgres{
		Port:    FreePort(tb),
		DataDir: data,
	}
	pg.proc = &process{
		name:    "postgres",
		path:    postgres,
		logPath: filepath.Join(dir, "postgres.log"),
		cred:    cred,
		args: []string{
			"-D", data,
			"-p", strconv.Itoa(pg.Port),
			"-c", "listen_addresses=" + strings.Join(append([]string{"127.0.0.1"}, opts.Listen...), ","),
			"-c", "unix_socket_directories=",
			"-c", "fsync=off",
			"-c", "full_page_writes=off",
			"-c", "max_connections=200",
			"-c", "shared_buffers=32MB",
		},
	}
	tb.Cleanup(func() {
		if err := pg.proc.signal(syscall.SIGINT, 10*time.Second); err != nil {
			tb.Errorf("stop postgres: %v", err)
		}
	})
	pg.Start(tb)
	return pg
}

// postgresCredential returns the credential of the postgres user when
// running as root, and nil (the current user) otherwise.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("look up user postgres (created by the postgresql package): %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parse uid of postgres: %w", err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parse gid of postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// DSN returns a connection string for database db (for example "postgres")
// as user postgres.
func (p *Postgres) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, db)
}

// Addr returns host:port of the server.
func (p *Postgres) Addr() string { return addr(p.Port) }

// PID returns the PID of the running postgres, or 0 when it is stopped.
func (p *Postgres) PID() int { return p.proc.pid() }

// NewDatabase creates a database with a fresh name and returns its DSN.
// Tests sharing one server use it to stay independent.
func (p *Postgres) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := "t_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ctx, cancel := context.WithTimeout(tb.Context(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		tb.Fatalf("connect to postgres: %v", err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("create database %s: %v", name, err)
	}
	return p.DSN(name)
}

// Start starts a stopped or killed server again on the same port and data
// directory and waits until it accepts connections.
func (p *Postgres) Start(tb testing.TB) {
	tb.Helper()
	if err := p.proc.start(); err != nil {
		tb.Fatal(err)
	}
	err := p.proc.waitReady(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, p.DSN("postgres"))
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// Stop shuts the server down gracefully (SIGINT, PostgreSQL's fast
// shutdown: open transactions are rolled back, clients disconnected) and
// waits for it to exit.
func (p *Postgres) Stop(tb testing.TB) {
	tb.Helper()
	if err := p.proc.signal(syscall.SIGINT, 30*time.Second); err != nil {
		tb.Fatal(err)
	}
}

// Kill kills the server and all its backends with SIGKILL, as a crash or a
// pod kill would, and waits until they are gone. Start then runs crash
// recovery.
func (p *Postgres) Kill(tb testing.TB) {
	tb.Helper()
	pid := p.proc.pid()
	if pid == 0 {
		return
	}
	// Backends call setsid, so they are found by parent PID, not by
	// process group.
	children := childPIDs(pid)
	for _, c := range children {
		_ = syscall.Kill(c, syscall.SIGKILL)
	}
	if err := p.proc.signal(syscall.SIGKILL, 10*time.Second); err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range children {
		for running(c) {
			if time.Now().After(deadline) {
				tb.Fatalf("postgres backend %d still running 10s after SIGKILL", c)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// childPIDs lists the processes whose parent is pid, from /proc.
func childPIDs(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := procStat(c); ok && ppid == pid {
			pids = append(pids, c)
		}
	}
	return pids
}

// running reports whether pid exists and is not a zombie.
func running(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != "Z" && state != "X"
}

// procStat returns the state and parent PID of pid from /proc/pid/stat.
func procStat(pid int) (state string, ppid int, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", 0, false
	}
	// The command name is in parentheses and may contain spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0], ppid, err == nil
}
