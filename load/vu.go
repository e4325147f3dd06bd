package load

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"syscall"
	"time"
)

// vu is one virtual user (closed model) or one worker (open model): its own
// random source, variables, cookie jar and client, and buffers reused
// across requests so that a request costs what net/http costs.
type vu struct {
	r      *runner
	id     int
	rng    *rand.Rand
	env    tmplEnv
	jar    lazyJar
	client http.Client
	buf    []byte
	body   bytes.Buffer
	sample sample

	// lastSent and lastPause measure a closed-model user's busy cycle.
	closedUser bool
	lastSent   time.Time
	lastPause  time.Duration

	// The request timeout costs one timer reset per request: a context per
	// user, derived from the run's and replaced only after its timer fired,
	// instead of a context and a timer per request. It never outlives the
	// user's goroutine (close).
	reqCtx    context.Context //nolint:containedctx // see above
	reqCancel context.CancelCauseFunc
	timer     *time.Timer
}

// errRequestTimeout is the cause of a request context cancelled by the
// request timeout.
var errRequestTimeout = errors.New("request timeout")

// requestContext returns the user's request context, renewed if its timer
// fired, with the timer armed for one request.
func (u *vu) requestContext(ctx context.Context) context.Context {
	if u.reqCtx == nil || u.reqCtx.Err() != nil {
		if u.reqCancel != nil {
			u.reqCancel(nil)
		}
		rctx, cancel := context.WithCancelCause(ctx)
		u.reqCtx, u.reqCancel = rctx, cancel
		u.timer = time.AfterFunc(time.Hour, func() { cancel(errRequestTimeout) })
	}
	u.timer.Reset(u.r.timeout)
	return u.reqCtx
}

// close releases the request context.
func (u *vu) close() {
	if u.reqCancel != nil {
		u.timer.Stop()
		u.reqCancel(nil)
	}
}

func newVU(r *runner, id int, rng *rand.Rand) *vu {
	u := &vu{r: r, id: id, rng: rng}
	u.env = tmplEnv{vars: make(map[string]string, len(r.scenario.vars)+4), rng: rng, vu: id}
	u.resetVars()
	u.client = http.Client{
		Transport: r.transport,
		Jar:       &u.jar,
		// A step is one request: a redirect is the step's response.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return u
}

// newVisitor forgets cookies and extracted values: the next iteration is a
// new visitor (open model).
func (u *vu) newVisitor() {
	u.jar.jar = nil
	u.resetVars()
}

func (u *vu) resetVars() {
	clear(u.env.vars)
	for k, v := range u.r.scenario.vars {
		u.env.vars[k] = v
	}
}

// do sends one step's request and records it. It returns false when the
// request failed, so that the behaviour's remaining steps are skipped.
func (u *vu) do(ctx context.Context, st *Step, due time.Time, interval, lag time.Duration) bool {
	r := u.r
	s := &u.sample
	*s = sample{endpoint: st.endpoint, due: due, interval: interval, lag: lag}
	req, err := u.request(st)
	if err != nil {
		// A template read a variable whose extraction failed.
		s.sent, s.done, s.failed, s.class = due, due, true, ClassExtract
		r.rec.record(s)
		return false
	}
	rctx := u.requestContext(ctx)
	req = req.WithContext(rctx)
	s.bytesOut = req.ContentLength
	s.sent = r.clock.Now()
	if s.sent.Before(due) {
		s.sent = due
	}
	if u.closedUser && !u.lastSent.IsZero() {
		s.busy = max(s.sent.Sub(u.lastSent)-u.lastPause, 0)
	}
	u.lastSent = s.sent
	resp, err := u.client.Do(req)
	if err == nil {
		err = u.read(resp, st)
		_ = resp.Body.Close()
	}
	s.done = r.clock.Now()
	u.timer.Stop()
	if err != nil {
		if ctx.Err() != nil { // the run was cancelled, not the target's fault
			r.aborted.Add(1)
			return false
		}
		s.failed, s.class = true, classify(err)
		if errors.Is(context.Cause(rctx), errRequestTimeout) {
			s.class = ClassTimeout
		}
		r.rec.record(s)
		return false
	}
	s.failed, s.class = u.check(resp, st)
	r.rec.record(s)
	return !s.failed
}

// request builds the step's request from its templates.
func (u *vu) request(st *Step) (*http.Request, error) {
	var err error
	target := u.r.urls[st.index]
	if target == nil {
		u.buf, err = st.path.appendTo(append(u.buf[:0], u.r.base...), &u.env)
		if err != nil {
			return nil, err
		}
		if target, err = url.Parse(string(u.buf)); err != nil {
			return nil, err
		}
	}
	var body []byte
	if st.body != nil {
		u.buf, err = st.body.appendTo(u.buf[:0], &u.env)
		if err != nil {
			return nil, err
		}
		body = bytes.Clone(u.buf)
	}
	req := &http.Request{
		Method:     st.Method,
		URL:        target,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header, len(st.headers)+1),
		Host:       target.Host,
	}
	if body != nil {
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req.Header["Content-Type"] = u.r.jsonContentType
	}
	// No User-Agent of our own: net/http sends its default, and an empty
	// header map spares the client a copy of it on every request.
	for _, h := range st.headers {
		if h.fixed != nil {
			req.Header[h.name] = h.fixed
			continue
		}
		u.buf, err = h.value.appendTo(u.buf[:0], &u.env)
		if err != nil {
			return nil, err
		}
		req.Header[h.name] = []string{string(u.buf)}
	}
	return req, nil
}

// read consumes the body: into the buffer when the step looks at it, else
// straight to the bin (keeping the connection reusable either way).
func (u *vu) read(resp *http.Response, st *Step) error {
	var n int64
	var err error
	if st.readBody {
		u.body.Reset()
		n, err = u.body.ReadFrom(resp.Body)
	} else {
		n, err = io.Copy(io.Discard, resp.Body)
	}
	u.sample.bytesIn = n
	return err
}

// check applies the step's expectations and extractions.
func (u *vu) check(resp *http.Response, st *Step) (bool, Class) {
	if code := resp.StatusCode; !st.expectedStatus(code) {
		switch {
		case code >= 500:
			return true, Class5xx
		case code >= 400:
			return true, Class4xx
		default:
			return true, ClassStatus
		}
	}
	if len(st.bodyContains) > 0 && !bytes.Contains(u.body.Bytes(), st.bodyContains) {
		return true, ClassExtract
	}
	for i := range st.extract {
		e := &st.extract[i]
		v, err := e.extract(resp, u.body.Bytes(), &u.jar, u.rng)
		if err != nil {
			u.r.noteExtractError(st, e, err)
			return true, ClassExtract
		}
		u.env.vars[e.name] = v
	}
	return false, 0
}

// classify maps a transport error to its class.
func classify(err error) Class {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return ClassTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return ClassRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ClassReset
	}
	return ClassConnection
}

// lazyJar is a per-user cookie jar that costs nothing until a response sets
// a cookie: most users of a shop never log in, and net/http asks the jar on
// every request.
type lazyJar struct {
	jar *cookiejar.Jar
}

func (j *lazyJar) SetCookies(u *url.URL, cookies []*http.Cookie) {
	if j.jar == nil {
		j.jar, _ = cookiejar.New(nil) // New never fails without options
	}
	j.jar.SetCookies(u, cookies)
}

func (j *lazyJar) Cookies(u *url.URL) []*http.Cookie {
	if j.jar == nil {
		return nil
	}
	return j.jar.Cookies(u)
}
