// Package services starts real PostgreSQL, Redis and redis-sentinel processes
// for tests, on 127.0.0.1 with free ports and temporary directories.
//
// Every process belongs to the test that started it: it is stopped by PID in
// t.Cleanup, and its temporary directory is removed afterwards. The handles
// can also kill (SIGKILL), stop (graceful shutdown) and restart a process on
// the same port and data directory, which is what failover tests need.
//
// The binaries come from the Debian packages postgresql (initdb and postgres
// from /usr/lib/postgresql/15/bin), redis-server and redis-sentinel. When one
// is missing the test is ended with ci.Missing: it skips on a developer
// machine and fails under CI=true.
//
// PostgreSQL refuses to run as root. When the tests run as root (as in CI),
// initdb and postgres run as the "postgres" system user, which the Debian
// package creates, and the data directory is owned by that user.
package services

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a service may take to accept connections.
const startTimeout = 30 * time.Second

// process is one running server process with its log file.
type process struct {
	name    string
	path    string
	args    []string
	logPath string
	cred    *syscall.Credential
	// env, when set, is the whole environment of the process; nil
	// inherits the test binary's.
	env []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// start launches the process. It must not be running.
func (p *process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("start %s: already running as pid %d", p.name, p.cmd.Process.Pid)
	}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log of %s: %w", p.name, err)
	}
	// Not bound to a test's context: the process is stopped gracefully
	// in t.Cleanup, which runs after that context is cancelled.
	cmd := exec.CommandContext(context.Background(), p.path, p.args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = p.env
	// A process group of its own: a Ctrl-C in the terminal reaches the test
	// binary, which stops its services in t.Cleanup, not the services first.
	// Pdeathsig: a test binary that dies (a test timeout) takes its
	// servers with it instead of leaking them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: p.cred, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	// This goroutine ends when the process exits; every process is
	// killed at the latest in the test's cleanup.
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

// pid returns the PID of the running process, or 0.
func (p *process) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// signal sends sig to the running process and waits up to wait for it to
// exit; on timeout it is killed. Signalling a process that is not running
// is not an error.
func (p *process) signal(sig syscall.Signal, wait time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	cmd, done := p.cmd, p.done
	p.cmd, p.done = nil, nil
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s (pid %d): %w", p.name, cmd.Process.Pid, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(wait):
	}
	_ = cmd.Process.Kill()
	<-done
	if sig == syscall.SIGKILL {
		return nil
	}
	return fmt.Errorf("%s (pid %d) did not exit within %s after %s, killed", p.name, cmd.Process.Pid, wait, sig)
}

// exited reports whether the process was started and has exited by itself.
func (p *process) exited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// logTail returns the last lines of the process log, for error messages.
func (p *process) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const keep = 2000
	if len(b) > keep {
		b = b[len(b)-keep:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// waitReady polls ready until it succeeds, the process exits, or
// startTimeout passes.
func (p *process) waitReady(ready func() error) error {
	deadline := time.Now().Add(startTimeout)
	var err error
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited during start-up; log:\n%s", p.name, p.logTail())
		}
		if err = ready(); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s: %w; log:\n%s", p.name, startTimeout, err, p.logTail())
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("find a free port: %v", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// lookBinary finds an executable in the given directories, then in PATH.
func lookBinary(name string, dirs ...string) (string, bool) {
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, true
		}
	}
	p, err := exec.LookPath(name)
	return p, err == nil
}

// tempDir makes a temporary directory removed in t.Cleanup. Unlike
// t.TempDir, its parent is world-traversable (/tmp), so a server running as
// another user can use it once it is chowned.
func tempDir(tb testing.TB, pattern string) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		tb.Fatalf("make temp dir: %v", err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
