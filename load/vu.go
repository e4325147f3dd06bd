package load

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"time"

	"github.com/valyala/fasthttp"
)

// vu is one virtual user (closed model) or one worker (open model): its own
// random source, variables, cookie jar, and a request and response reused
// across requests, so that a request costs what the HTTP client costs.
type vu struct {
	r       *runner
	id      int
	rng     *rand.Rand
	env     tmplEnv
	jar     lazyJar
	req     fasthttp.Request
	resp    fasthttp.Response
	buf     []byte
	sample  sample
	cookies []*http.Cookie // set by the last response

	// The request's URL: parsed once per run for a step with a fixed
	// path; for a templated path, built in rawURL and parsed only when a
	// cookie needs it (net/http's cookie jar takes a *url.URL).
	rawURL []byte
	url    *url.URL
	view   response // what the step's extractors see of the response

	// lastSent and lastPause measure a closed-model user's busy cycle.
	closedUser bool
	lastSent   time.Time
	lastPause  time.Duration
}

func newVU(r *runner, id int, rng *rand.Rand) *vu {
	u := &vu{r: r, id: id, rng: rng}
	u.env = tmplEnv{vars: make(map[string]string, len(r.scenario.vars)+4), rng: rng, vu: id}
	u.resetVars()
	u.view = response{
		header: func(name string) string { return string(u.resp.Header.Peek(name)) },
		url:    u.requestURL,
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
	if err := u.request(st); err != nil {
		// A template read a variable whose extraction failed.
		s.sent, s.done, s.failed, s.class = due, due, true, ClassExtract
		r.rec.record(s)
		return false
	}
	s.bytesOut = int64(len(u.req.Body()))
	s.sent = r.clock.Now()
	if s.sent.Before(due) {
		s.sent = due
	}
	if u.closedUser && !u.lastSent.IsZero() {
		s.busy = max(s.sent.Sub(u.lastSent)-u.lastPause, 0)
	}
	u.lastSent = s.sent
	err := r.client.DoTimeout(&u.req, &u.resp, r.timeout)
	s.done = r.clock.Now()
	if err != nil {
		if ctx.Err() != nil { // the run was cancelled, not the target's fault
			r.aborted.Add(1)
			return false
		}
		s.failed, s.class = true, classify(err)
		r.rec.record(s)
		return false
	}
	s.bytesIn = int64(len(u.resp.Body()))
	u.keepCookies()
	s.failed, s.class = u.check(st)
	r.rec.record(s)
	return !s.failed
}

// request builds the step's request from its templates.
func (u *vu) request(st *Step) error {
	var err error
	req := &u.req
	req.Reset()
	u.url = u.r.urls[st.index]
	if u.url != nil {
		req.SetRequestURI(u.r.rawURLs[st.index])
	} else {
		u.rawURL, err = st.path.appendTo(append(u.rawURL[:0], u.r.base...), &u.env)
		if err != nil {
			return err
		}
		req.SetRequestURIBytes(u.rawURL)
	}
	req.UseHostHeader = true // a Host header of the step's wins over the URL's host
	req.Header.SetMethod(st.Method)
	if st.body != nil {
		u.buf, err = st.body.appendTo(u.buf[:0], &u.env)
		if err != nil {
			return err
		}
		req.SetBody(u.buf)
		req.Header.SetContentType("application/json")
	}
	for _, h := range st.headers {
		if h.fixed != nil {
			for _, v := range h.fixed {
				req.Header.Add(h.name, v)
			}
			continue
		}
		u.buf, err = h.value.appendTo(u.buf[:0], &u.env)
		if err != nil {
			return err
		}
		req.Header.SetBytesV(h.name, u.buf)
	}
	if u.jar.jar != nil {
		for _, c := range u.jar.Cookies(u.requestURL()) {
			req.Header.SetCookie(c.Name, c.Value)
		}
	}
	return nil
}

// requestURL returns the URL of the request being sent, parsed on first
// use; nil if it is not a URL (the client would have refused it).
func (u *vu) requestURL() *url.URL {
	if u.url == nil {
		u.url, _ = url.Parse(string(u.rawURL))
	}
	return u.url
}

// keepCookies stores the cookies the response set in the user's jar.
func (u *vu) keepCookies() {
	clear(u.cookies)
	u.cookies = u.cookies[:0]
	for _, value := range u.resp.Header.Cookies() {
		if c, err := http.ParseSetCookie(string(value)); err == nil {
			u.cookies = append(u.cookies, c)
		}
	}
	if len(u.cookies) > 0 {
		if target := u.requestURL(); target != nil {
			u.jar.SetCookies(target, u.cookies)
		}
	}
	u.view.cookies = u.cookies
}

// check applies the step's expectations and extractions.
func (u *vu) check(st *Step) (bool, Class) {
	if code := u.resp.StatusCode(); !st.expectedStatus(code) {
		switch {
		case code >= 500:
			return true, Class5xx
		case code >= 400:
			return true, Class4xx
		default:
			return true, ClassStatus
		}
	}
	body := u.resp.Body()
	if len(st.bodyContains) > 0 && !bytes.Contains(body, st.bodyContains) {
		return true, ClassExtract
	}
	for i := range st.extract {
		e := &st.extract[i]
		v, err := e.extract(&u.view, body, &u.jar, u.rng)
		if err != nil {
			u.r.noteExtractError(st, e, err)
			return true, ClassExtract
		}
		u.env.vars[e.name] = v
	}
	return false, 0
}

// lazyJar is a per-user cookie jar that costs nothing until a response sets
// a cookie: most users of a shop never log in.
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
