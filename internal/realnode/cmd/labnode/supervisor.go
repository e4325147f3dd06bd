package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// supervisor starts the node's processes and, as the init of the node's PID
// namespace, reaps every process that ends in it: its own children and the
// orphans (containerd's shims, containers' leftovers) the kernel hands it.
// os/exec is not used, since its Wait and this reaper would race for the
// same exit statuses.
type supervisor struct {
	env    []string
	mu     sync.Mutex
	procs  map[int]*proc // started and not yet reaped
	exited chan *proc    // every started process, once it has ended
	stop   func()
}

// proc is one process the supervisor started.
type proc struct {
	name   string
	pid    int
	log    string        // its output, "" for a short command's
	done   chan struct{} // closed once reaped
	status syscall.WaitStatus
}

func newSupervisor() *supervisor {
	s := &supervisor{
		env: []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"HOME=/root",
		},
		procs:  map[int]*proc{},
		exited: make(chan *proc, 64),
	}
	sigchld := make(chan os.Signal, 16)
	signal.Notify(sigchld, syscall.SIGCHLD)
	tick := time.NewTicker(time.Second) // in case signals coalesce
	quit := make(chan struct{})
	s.stop = func() { signal.Stop(sigchld); tick.Stop(); close(quit) }
	go func() {
		for {
			select {
			case <-sigchld:
			case <-tick.C:
			case <-quit:
				return
			}
			s.reap()
		}
	}()
	return s
}

// reap collects every ended process without blocking.
func (s *supervisor) reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
		s.mu.Lock()
		p := s.procs[pid]
		delete(s.procs, pid)
		s.mu.Unlock()
		if p == nil {
			continue // an orphan
		}
		p.status = ws
		close(p.done)
		select {
		case s.exited <- p:
		default:
		}
	}
}

// start runs path with args, its standard output and error appended to
// logPath.
func (s *supervisor) start(name, logPath, path string, args ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open the log of %s: %w", name, err)
	}
	defer f.Close()
	p, err := s.fork(name, path, args, f.Fd())
	if err != nil {
		return nil, err
	}
	p.log = logPath
	return p, nil
}

// run runs a short command and returns its combined output, failing when it
// does not exit 0.
func (s *supervisor) run(path string, args ...string) (string, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return "", fmt.Errorf("run %s: %w", path, err)
	}
	p, err := s.fork(filepath.Base(path), path, args, w.Fd())
	_ = w.Close()
	if err != nil {
		_ = r.Close()
		return "", err
	}
	var out bytes.Buffer
	_, _ = out.ReadFrom(r)
	_ = r.Close()
	<-p.done
	msg := strings.TrimSpace(out.String())
	if !p.status.Exited() || p.status.ExitStatus() != 0 {
		return msg, fmt.Errorf("%s %s: %s: %s", path, strings.Join(args, " "), describe(p.status), msg)
	}
	return msg, nil
}

func (s *supervisor) fork(name, path string, args []string, out uintptr) (*proc, error) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer devnull.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	pid, err := syscall.ForkExec(path, append([]string{path}, args...), &syscall.ProcAttr{
		Env:   s.env,
		Files: []uintptr{devnull.Fd(), out, out},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, path, err)
	}
	p := &proc{name: name, pid: pid, done: make(chan struct{})}
	s.procs[pid] = p
	return p, nil
}

// terminate sends SIGTERM to the processes, waits up to grace for them to
// end, then kills what is left.
func terminate(grace time.Duration, procs ...*proc) {
	for _, p := range procs {
		if p != nil {
			_ = syscall.Kill(p.pid, syscall.SIGTERM)
		}
	}
	deadline := time.After(grace)
	for _, p := range procs {
		if p == nil {
			continue
		}
		select {
		case <-p.done:
		case <-deadline:
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
			<-p.done
		}
	}
}

// ended reports whether the process has ended.
func (p *proc) ended() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// failure describes how a daemon ended, with the end of its log.
func (p *proc) failure() error {
	return fmt.Errorf("%s (pid %d) %s; end of %s:\n%s", p.name, p.pid, describe(p.status), p.log, tail(p.log, 3000))
}

func describe(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exited with status %d", ws.ExitStatus())
	case ws.Signaled():
		return "was killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("ended (status %#x)", uint32(ws))
}

// tail returns the last n bytes of a file.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(fi.Size()-n, 0)
	buf := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, os.ErrClosed) {
		return string(buf)
	}
	return strings.TrimSpace(string(buf))
}
