package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"
)

// dialTimeout bounds one attempt to reach an upstream; a stopped node
// container's name no longer resolves, so a dead upstream fails fast.
const dialTimeout = 3 * time.Second

// proxy forwards TCP ports to upstream hosts, round robin, skipping those
// that do not answer. Its routes can change while it runs.
type proxy struct {
	log        *slog.Logger
	listenHost string // "" listens on every address
	dial       func(ctx context.Context, network, addr string) (net.Conn, error)

	mu        sync.Mutex
	ports     map[int]*port
	conns     chan struct{} // one token per open connection; nil: unbounded
	connLimit int
}

type port struct {
	number int
	ln     net.Listener
	cancel context.CancelFunc

	mu        sync.Mutex
	upstreams []string
	next      int
}

func newProxy(log *slog.Logger, listenHost string) *proxy {
	d := &net.Dialer{Timeout: dialTimeout}
	return &proxy{log: log, listenHost: listenHost, dial: d.DialContext, ports: map[int]*port{}}
}

// apply makes the proxy forward exactly routes: it listens on new ports,
// closes ports that are gone and updates the upstreams of the others. When a
// port cannot be opened, the ports opened so far stay and the error says
// which one failed.
func (p *proxy) apply(ctx context.Context, routes []route, s lbSettings) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.WorkerConnections != p.connLimit {
		p.connLimit = s.WorkerConnections
		p.conns = nil
		if s.WorkerConnections > 0 {
			p.conns = make(chan struct{}, s.WorkerConnections)
		}
	}
	want := map[int]bool{}
	for _, r := range routes {
		want[r.port] = true
		if pt, ok := p.ports[r.port]; ok {
			pt.setUpstreams(r.upstreams)
			continue
		}
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", net.JoinHostPort(p.listenHost, strconv.Itoa(r.port)))
		if err != nil {
			return fmt.Errorf("listen on port %d: %w", r.port, err)
		}
		pctx, cancel := context.WithCancel(ctx)
		pt := &port{number: r.port, ln: ln, cancel: cancel}
		pt.setUpstreams(r.upstreams)
		p.ports[r.port] = pt
		go p.serve(pctx, pt)
	}
	for n, pt := range p.ports {
		if !want[n] {
			pt.cancel()
			_ = pt.ln.Close()
			delete(p.ports, n)
		}
	}
	return nil
}

// close stops listening on every port.
func (p *proxy) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n, pt := range p.ports {
		pt.cancel()
		_ = pt.ln.Close()
		delete(p.ports, n)
	}
}

func (pt *port) setUpstreams(u []string) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pt.upstreams = slices.Clone(u)
}

// order returns the upstreams to try for the next connection: round robin,
// the others after the chosen one.
func (pt *port) order() []string {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	n := len(pt.upstreams)
	out := make([]string, 0, n)
	for i := range n {
		out = append(out, pt.upstreams[(pt.next+i)%n])
	}
	pt.next = (pt.next + 1) % max(n, 1)
	return out
}

func (p *proxy) serve(ctx context.Context, pt *port) {
	for {
		c, err := pt.ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				p.log.Error("accept", "port", pt.number, "err", err)
			}
			return
		}
		go p.handle(ctx, pt, c)
	}
}

// handle forwards one client connection to the first upstream that answers.
func (p *proxy) handle(ctx context.Context, pt *port, client net.Conn) {
	defer client.Close()
	p.mu.Lock()
	conns := p.conns
	p.mu.Unlock()
	if conns != nil {
		select {
		case conns <- struct{}{}:
			defer func() { <-conns }()
		default:
			p.log.Warn("too many connections, refusing one (workerConnections)", "port", pt.number, "limit", cap(conns))
			return
		}
	}
	var errs []error
	for _, host := range pt.order() {
		up, err := p.dial(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(pt.number)))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		defer up.Close()
		splice(client, up)
		return
	}
	p.log.Warn("no upstream answered", "port", pt.number, "client", client.RemoteAddr().String(), "err", errors.Join(errs...))
}

// splice copies both ways until both sides are done, passing on half-closes.
func splice(a, b net.Conn) {
	var wg sync.WaitGroup
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	wg.Add(2)
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
}
