package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// lineWriter writes whole lines to w for any number of goroutines, so that
// the stand-in's own log and its children's output interleave line by line
// in the container's log, where k3d looks for its ready messages.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// prefixed returns a writer that puts "[name] " before every line written to
// it; a line is written once it is complete.
func (l *lineWriter) prefixed(name string) *prefixWriter {
	return &prefixWriter{out: l, prefix: "[" + name + "] "}
}

type prefixWriter struct {
	mu     sync.Mutex
	out    io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		line := append([]byte(p.prefix), p.buf[:i+1]...)
		p.buf = p.buf[i+1:]
		if _, err := p.out.Write(line); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// flush writes what is left of an unterminated last line.
func (p *prefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		_, _ = p.out.Write(append(append([]byte(p.prefix), p.buf...), '\n'))
		p.buf = nil
	}
}

// levelFatal is k3s's (logrus's) fatal level: k3d treats a container whose
// last log line says level=fatal as crashing and waits for its restart.
const levelFatal = slog.Level(12)

// newLogger logs like k3s does (logrus text: time=… level=info msg=…), so
// that the stand-in's log reads like a k3s node's.
func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.LevelKey {
				if lvl, ok := a.Value.Any().(slog.Level); ok && lvl >= levelFatal {
					return slog.String(slog.LevelKey, "fatal")
				}
				return slog.String(slog.LevelKey, strings.ToLower(a.Value.String()))
			}
			return a
		},
	}))
}

// stopGrace is how long a child has to exit after SIGTERM before it is
// killed. The children stop one after another, the last started first, and
// all of them within Docker's default stop timeout (10 s) in practice.
const stopGrace = 3 * time.Second

// group runs the components of a node as child processes. When one of them
// exits, or ctx ends (SIGTERM, SIGINT), the others are stopped in reverse
// start order (the node's components and the controllers before
// kube-apiserver, etcd last):
// SIGTERM, then SIGKILL after stopGrace.
type group struct {
	log      *slog.Logger
	out      *lineWriter
	mu       sync.Mutex
	children []*child
	exited   chan *child // every child once, when it exits
}

type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	err  error         // its exit status, valid once done is closed
}

func newGroup(log *slog.Logger, out *lineWriter) *group {
	return &group{log: log, out: out, exited: make(chan *child, 16)}
}

// start runs the executable name (looked up in PATH) with args; its output
// goes to the container's log, each line prefixed with [name]. Children die
// with the stand-in even when it is killed.
func (g *group) start(name string, args, env []string) error {
	path, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	// Not CommandContext: the group stops its children itself, in reverse
	// order and with SIGTERM first, rather than killing them at once.
	cmd := exec.Command(path, args...) //nolint:noctx // see above
	cmd.Env = env
	w := g.out.prefixed(name)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	g.log.Info("started", "component", name, "pid", cmd.Process.Pid)
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	g.mu.Lock()
	g.children = append(g.children, c)
	g.mu.Unlock()
	go func() {
		c.err = cmd.Wait()
		w.flush()
		close(c.done)
		g.exited <- c
	}()
	return nil
}

// failed returns an error when a child has exited, without waiting.
func (g *group) failed() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.children {
		select {
		case <-c.done:
			return exitError(c)
		default:
		}
	}
	return nil
}

// wait blocks until ctx ends (a signal) or a child exits, then stops the
// others. It returns nil when the stand-in was told to stop, the child's
// exit otherwise.
func (g *group) wait(ctx context.Context) error {
	var first error
	select {
	case <-ctx.Done():
		g.log.Info("stopping", "reason", context.Cause(ctx))
	case c := <-g.exited:
		first = exitError(c)
		g.log.Error("a component exited, stopping the others", "component", c.name, "status", status(c.err))
	}
	g.stop()
	return first
}

// stop ends the children, the last started first.
func (g *group) stop() {
	g.mu.Lock()
	children := slices.Clone(g.children)
	g.mu.Unlock()
	for i := len(children) - 1; i >= 0; i-- {
		c := children[i]
		select {
		case <-c.done:
			continue
		default:
		}
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(stopGrace):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		g.log.Info("stopped", "component", c.name, "status", status(c.err))
	}
}

func exitError(c *child) error {
	return fmt.Errorf("%s exited: %s", c.name, status(c.err))
}

func status(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
