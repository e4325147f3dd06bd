package realnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// process is one process the tier started on the host: a node's labnode,
// the bridge's holder, CoreDNS, metrics-server.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// startProcess starts bin with args, its output appended to log. It gets
// SIGKILL when the test binary dies, and its own process group, so that a
// Ctrl-C in the terminal reaches the test binary, which stops it, rather
// than killing it first. sys adds namespaces; extra are inherited from fd 3
// on.
func startProcess(name, log, bin string, args []string, cloneflags uintptr, extra ...*os.File) (*process, error) {
	out, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open the log of %s: %w", name, err)
	}
	// Not bound to a test's context: the process is stopped in the
	// cleanup, which runs after that context is cancelled.
	cmd := exec.CommandContext(context.Background(), bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.ExtraFiles = extra
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Cloneflags: cloneflags}
	if err := cmd.Start(); err != nil {
		_ = out.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = out.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then kills.
func (p *process) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// failure names a process that ended, with the end of its log.
func (p *process) failure() error {
	status := p.err
	if status == nil {
		status = errors.New("exit status 0")
	}
	return fmt.Errorf("%s exited: %w; end of %s:\n%s", p.name, status, p.log, tailFile(p.log, 3000))
}

// tailFile returns about the last n bytes of a file, from a line start.
func tailFile(path string, n int64) string {
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
	b := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	s := string(b)
	if off > 0 {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
	}
	return strings.TrimSpace(s)
}

// logTails returns the ends of every .log file of a directory, for a
// failure message.
func logTails(dir string, n int64) string {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	var b strings.Builder
	for _, l := range logs {
		fmt.Fprintf(&b, "--- end of %s:\n%s\n", l, tailFile(l, n))
	}
	return b.String()
}

// forwarder accepts TCP connections on one address and relays each to one
// of its targets in turn: between the nodes and the API server, which
// listens on loopback only, and as k3d's load balancer in front of the
// nodes.
type forwarder struct {
	l      net.Listener
	to     []string
	next   atomic.Uint64
	wg     sync.WaitGroup
	mu     sync.Mutex
	open   map[net.Conn]struct{}
	closed bool
}

func listenForward(ctx context.Context, addr string, to ...string) (*forwarder, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s to forward to %v: %w", addr, to, err)
	}
	f := &forwarder{l: l, to: to, open: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.serve()
	return f, nil
}

func (f *forwarder) addr() string { return f.l.Addr().String() }

func (f *forwarder) serve() {
	defer f.wg.Done()
	for {
		c, err := f.l.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.relay(c)
		}()
	}
}

func (f *forwarder) track(c net.Conn, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if on && f.closed {
		_ = c.Close()
		return
	}
	if on {
		f.open[c] = struct{}{}
	} else {
		delete(f.open, c)
	}
}

func (f *forwarder) relay(c net.Conn) {
	defer c.Close()
	d := net.Dialer{Timeout: 5 * time.Second}
	up, err := d.Dial("tcp", f.to[(f.next.Add(1)-1)%uint64(len(f.to))])
	if err != nil {
		return
	}
	defer up.Close()
	f.track(c, true)
	f.track(up, true)
	defer f.track(c, false)
	defer f.track(up, false)
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(up, c)
	go cp(c, up)
	<-done
	<-done
}

// close stops accepting, closes every open connection and waits for the
// relays to end.
func (f *forwarder) close() {
	_ = f.l.Close()
	f.mu.Lock()
	f.closed = true
	for c := range f.open {
		_ = c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}
