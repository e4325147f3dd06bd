package services

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// tcpProxy relays TCP connections from a listener on 127.0.0.1 to a target
// that pick chooses for each new connection. It stands in for what sits
// between two processes on a real network: a Service (pick follows the
// Service's ready endpoints) or a network path that can be cut.
//
// A connection, once relayed, keeps its target until one side closes it,
// as a connection through kube-proxy keeps its endpoint when the
// endpoints change.
type tcpProxy struct {
	name string
	l    net.Listener
	// pick returns the address for a new connection; false refuses the
	// connection (it is closed at once, as kube-proxy rejects connections
	// to a Service without ready endpoints).
	pick func() (string, bool)

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// dialTimeout bounds the proxy's connection to a target on loopback.
const dialTimeout = 2 * time.Second

// startTCPProxy listens on a free port of 127.0.0.1 and relays every
// connection until Close. The relays' dials keep ctx's values but not its
// cancellation: the proxy lives until Close, also in a test's cleanup.
func startTCPProxy(ctx context.Context, name string, pick func() (string, bool)) (*tcpProxy, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the %s proxy: %w", name, err)
	}
	p := &tcpProxy{name: name, l: l, pick: pick, conns: map[net.Conn]struct{}{}}
	dctx := context.WithoutCancel(ctx)
	p.wg.Go(func() { p.serve(dctx) })
	return p, nil
}

// Addr is the proxy's host:port.
func (p *tcpProxy) Addr() string { return p.l.Addr().String() }

// Port is the proxy's port.
func (p *tcpProxy) Port() int { return p.l.Addr().(*net.TCPAddr).Port }

func (p *tcpProxy) serve(ctx context.Context) {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return // closed
		}
		p.wg.Go(func() { p.relay(ctx, c) })
	}
}

// relay connects c to the target pick chooses and copies both ways until
// one side closes or the proxy is cut.
func (p *tcpProxy) relay(ctx context.Context, c net.Conn) {
	defer func() { _ = c.Close() }()
	target, ok := "", false
	if p.track(c) {
		defer p.untrack(c)
		target, ok = p.pick()
	}
	if !ok {
		return
	}
	d := net.Dialer{Timeout: dialTimeout}
	up, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return
	}
	defer func() { _ = up.Close() }()
	if !p.track(up) {
		return
	}
	defer p.untrack(up)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Half-close so the other direction can finish, as TCP does.
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
}

// track registers a connection so that Cut and Close can end it; false
// when the proxy is cut or closed, and the connection must be dropped.
func (p *tcpProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.conns == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *tcpProxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

// Cut ends every relayed connection and drops every new one until Restore:
// the path is gone, and whoever uses it sees its connections fail at once.
func (p *tcpProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// Restore relays new connections again after Cut.
func (p *tcpProxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// Close stops listening, ends every connection and waits for the relays.
func (p *tcpProxy) Close() error {
	err := p.l.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
