package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jewelry-shop/lab/lab/measure"
	"github.com/jewelry-shop/lab/load"
	"github.com/jewelry-shop/lab/shop/probeapi"
)

// LoadFunc adapts a function to a LoadRunner.
type LoadFunc func(ctx context.Context, d time.Duration) (*load.Result, error)

// RunLoad calls f.
func (f LoadFunc) RunLoad(ctx context.Context, d time.Duration) (*load.Result, error) {
	return f(ctx, d)
}

// GeneratorLoad is the real LoadRunner: the load generator with opts, its
// Duration replaced by the plan's and its clock by now, so that its series
// lines up with the fault windows.
func GeneratorLoad(opts load.Options, now func() time.Time) LoadRunner {
	return LoadFunc(func(ctx context.Context, d time.Duration) (*load.Result, error) {
		o := opts
		o.Duration = d
		if now != nil {
			o.Clock = clockFunc(now)
		}
		return load.Run(ctx, o)
	})
}

type clockFunc func() time.Time

func (c clockFunc) Now() time.Time { return c() }

// HTTPProber reads the prober over HTTP. Base is the prober's URL: a
// loopback address in tests, or the API server's service proxy,
// <rest.Config.Host>/api/v1/namespaces/jewelry-shop/services/jewelry-shop-probe:http/proxy,
// with a Client that carries the kubeconfig's credentials
// (rest.HTTPClientFor).
type HTTPProber struct {
	Client *http.Client
	Base   string
}

// Timeline fetches GET /timeline?samples=true&since=<since>: the writes
// after since.
func (p HTTPProber) Timeline(ctx context.Context, since int64) (probeapi.Timeline, error) {
	var tl probeapi.Timeline
	if err := p.get(ctx, "/timeline?samples=true&since="+strconv.FormatInt(since, 10), &tl, false); err != nil {
		return tl, fmt.Errorf("read the prober timeline: %w", err)
	}
	return tl, nil
}

// Verify fetches GET /verify. A store the prober could not read back is
// reported in its StoreVerification.Error, not as an error here.
func (p HTTPProber) Verify(ctx context.Context) (probeapi.Verification, error) {
	var v probeapi.Verification
	if err := p.get(ctx, "/verify", &v, true); err != nil {
		return v, fmt.Errorf("verify the prober's writes: %w", err)
	}
	return v, nil
}

func (p HTTPProber) get(ctx context.Context, path string, out any, accept503 bool) error {
	c := p.Client
	if c == nil {
		c = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(p.Base, "/")+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK && (!accept503 || resp.StatusCode != http.StatusServiceUnavailable) {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("GET %s: decode: %w", path, err)
	}
	return nil
}

// HTTPHealthPoller is the real HealthPoller: GET URL every Interval
// (default 1 s); a 200 within the client's timeout is a success.
type HTTPHealthPoller struct {
	Client   *http.Client
	URL      string
	Interval time.Duration
	Now      func() time.Time
}

// Poll implements HealthPoller.
func (p HTTPHealthPoller) Poll(ctx context.Context) []measure.Sample {
	interval, now, c := p.Interval, p.Now, p.Client
	if interval <= 0 {
		interval = time.Second
	}
	if now == nil {
		now = time.Now
	}
	if c == nil {
		c = &http.Client{Timeout: 2 * time.Second}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var out []measure.Sample
	for {
		at := now()
		ok := false
		if req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil); err == nil {
			if resp, err := c.Do(req); err == nil {
				ok = resp.StatusCode == http.StatusOK
				_ = resp.Body.Close()
			}
		}
		if ctx.Err() != nil {
			return out // a poll cut short by the end of the run is no sample
		}
		out = append(out, measure.Sample{At: at, OK: ok})
		select {
		case <-ctx.Done():
			return out
		case <-t.C:
		}
	}
}
