package load

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// The generator's HTTP client is fasthttp's HostClient rather than
// net/http's: the user's own goroutine writes the request and reads the
// response, where net/http hands both to two goroutines per connection and
// waits for them. That saves about a third of the CPU a request costs
// (make bench-load), and the generator must never be the bottleneck.

// userAgent names the generator to the target.
const userAgent = "lab-load"

// maxHeaderBytes bounds a response's header block (fasthttp reads it into
// one buffer of this size; nginx's default for requests is 8 KiB).
const maxHeaderBytes = 16 << 10

// newClient returns the run's connection pool to target. Its connections
// are tracked so that cancelling the run can end requests in flight
// (fasthttp takes no context).
func newClient(ctx context.Context, target *url.URL, maxConns int, timeout time.Duration, retried *atomic.Int64) (*fasthttp.HostClient, *connSet) {
	host := target.Host
	if target.Port() == "" {
		port := "80"
		if target.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(target.Hostname(), port)
	}
	conns := &connSet{open: map[*trackedConn]struct{}{}}
	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	if maxConns <= 0 {
		maxConns = math.MaxInt32 // no limit
	}
	c := &fasthttp.HostClient{
		Addr:  host,
		Name:  userAgent,
		IsTLS: target.Scheme == "https",
		TLSConfig: &tls.Config{
			ServerName: target.Hostname(),
			MinVersion: tls.VersionTLS12,
		},
		DialTimeout: func(addr string, d time.Duration) (net.Conn, error) {
			dctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			nc, err := dialer.DialContext(dctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return conns.add(nc), nil
		},
		MaxConns:            maxConns,
		MaxConnWaitTimeout:  timeout,
		MaxIdleConnDuration: 30 * time.Second,
		ReadBufferSize:      maxHeaderBytes,
		// Paths are sent as the scenario wrote them.
		DisablePathNormalizing: true,
		// A request is sent once, except an idempotent one whose connection
		// closed before any byte of a response (fasthttp reports every such
		// failure as io.EOF): it is sent again, once, as browsers and
		// net/http do for a keep-alive connection the target closed while
		// idle. fasthttp cannot tell that case from a new connection closed
		// at once, so every retry is counted and reported.
		MaxIdemponentCallAttempts: 2,
		RetryIfErr: func(req *fasthttp.Request, attempts int, err error) (bool, bool) {
			idempotent := req.Header.IsGet() || req.Header.IsHead() || req.Header.IsOptions()
			retry := attempts == 1 && idempotent && errors.Is(err, io.EOF)
			if retry {
				retried.Add(1)
			}
			return false, retry
		},
	}
	return c, conns
}

// connSet holds the client's open connections.
type connSet struct {
	mu     sync.Mutex
	open   map[*trackedConn]struct{}
	closed bool
}

func (s *connSet) add(nc net.Conn) net.Conn {
	c := &trackedConn{Conn: nc, set: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = nc.Close()
		return c // its first write fails; the run is over anyway
	}
	s.open[c] = struct{}{}
	return c
}

// closeAll closes every connection, ending the requests in flight, and
// every connection dialled afterwards.
func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.open {
		_ = c.Conn.Close()
	}
	clear(s.open)
}

// trackedConn leaves its set when closed.
type trackedConn struct {
	net.Conn
	set *connSet
}

func (c *trackedConn) Close() error {
	c.set.mu.Lock()
	delete(c.set.open, c)
	c.set.mu.Unlock()
	return c.Conn.Close()
}

// classify maps a transport error to its class.
func classify(err error) Class {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		// The wait for a connection ran out (MaxConns).
		return ClassTimeout
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.As(err, &ne) && ne.Timeout():
		return ClassTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return ClassRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, fasthttp.ErrConnectionClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ClassReset
	}
	return ClassConnection
}
