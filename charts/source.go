package charts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/repo"
	"sigs.k8s.io/yaml"
)

// Options configure a Source and an Installer.
type Options struct {
	// Logger receives debug messages, Helm's included. Nil discards them.
	Logger *slog.Logger
	// HTTPClient fetches chart repositories' indexes and archives. Nil
	// means a client with a 60 s timeout per request.
	HTTPClient *http.Client
	// CacheDir keeps downloaded chart archives (<name>-<version>.tgz), so
	// that a chart is fetched once and later runs work offline. Empty
	// disables the cache.
	CacheDir string
}

// Source loads charts: the embedded jewelry-shop chart, or an upstream chart
// from its repository (index → pinned version → archive, checked against
// the index's digest).
type Source struct {
	log      *slog.Logger
	http     *http.Client
	cacheDir string
}

// maxChartSize bounds what is read from a chart repository.
const maxChartSize = 64 << 20

// NewSource returns a Source.
func NewSource(opts Options) *Source {
	s := &Source{log: opts.Logger, http: opts.HTTPClient, cacheDir: opts.CacheDir}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.http == nil {
		s.http = &http.Client{Timeout: 60 * time.Second}
	}
	return s
}

// Load returns the chart ref names.
func (s *Source) Load(ctx context.Context, ref Ref) (*chart.Chart, error) {
	if ref.Embedded() {
		if ref.Name != JewelryShopChart {
			return nil, fmt.Errorf("chart %q has no repository and is not the embedded %s chart", ref.Name, JewelryShopChart)
		}
		return LoadJewelryShop()
	}
	if ref.Version == "" {
		return nil, fmt.Errorf("chart %s from %s: no version pinned", ref.Name, ref.Repo)
	}
	if c, err := s.loadCached(ref); c != nil || err != nil {
		return c, err
	}
	index, err := s.index(ctx, ref.Repo)
	if err != nil {
		return nil, err
	}
	cv, err := findVersion(index, ref)
	if err != nil {
		return nil, err
	}
	if len(cv.URLs) == 0 {
		return nil, fmt.Errorf("chart %s: the index of %s lists no download URL for it", ref, ref.Repo)
	}
	u, err := repo.ResolveReferenceURL(ref.Repo, cv.URLs[0])
	if err != nil {
		return nil, fmt.Errorf("chart %s: resolve its URL %q: %w", ref, cv.URLs[0], err)
	}
	data, err := s.get(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("download chart %s: %w", ref, err)
	}
	if cv.Digest != "" {
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != cv.Digest {
			return nil, fmt.Errorf("chart %s: the archive at %s has digest sha256:%s, the repository index says sha256:%s; the download is corrupt or the repository changed", ref, u, got, cv.Digest)
		}
	}
	c, err := loader.LoadArchive(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("load chart %s from %s: %w", ref, u, err)
	}
	if c.Metadata.Name != ref.Name || c.Metadata.Version != ref.Version {
		return nil, fmt.Errorf("chart %s: the archive at %s holds %s %s", ref, u, c.Metadata.Name, c.Metadata.Version)
	}
	s.store(ref, data)
	return c, nil
}

// index fetches and parses a repository's index.yaml.
func (s *Source) index(ctx context.Context, repoURL string) (*repo.IndexFile, error) {
	u := strings.TrimSuffix(repoURL, "/") + "/index.yaml"
	data, err := s.get(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("fetch the index of chart repository %s: %w (is the repository reachable from this machine? with a proxy, set HTTPS_PROXY)", repoURL, err)
	}
	index := &repo.IndexFile{}
	if err := yaml.Unmarshal(data, index); err != nil {
		return nil, fmt.Errorf("parse the index of chart repository %s: %w", repoURL, err)
	}
	if index.APIVersion == "" {
		return nil, fmt.Errorf("parse the index of chart repository %s: %s is not a Helm repository index (no apiVersion)", repoURL, u)
	}
	index.SortEntries()
	return index, nil
}

// findVersion looks up the pinned version of a chart in an index and, when
// it is missing, says what the repository has instead.
func findVersion(index *repo.IndexFile, ref Ref) (*repo.ChartVersion, error) {
	versions, ok := index.Entries[ref.Name]
	if !ok {
		names := slices.Sorted(maps.Keys(index.Entries))
		return nil, fmt.Errorf("chart repository %s has no chart named %q (it has: %s)", ref.Repo, ref.Name, strings.Join(names, ", "))
	}
	var have []string
	for _, cv := range versions {
		if cv.Version == ref.Version {
			return cv, nil
		}
		have = append(have, cv.Version)
	}
	if len(have) > 10 {
		have = append(have[:10], "…")
	}
	return nil, fmt.Errorf("chart repository %s has no version %s of chart %s (newest first: %s); the pinned version is set in charts/pinned.go",
		ref.Repo, ref.Version, ref.Name, strings.Join(have, ", "))
}

// get fetches a URL, failing on any status but 200.
func (s *Source) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("build the request for %s: %w", u, err)
	}
	s.log.DebugContext(ctx, "fetching", "url", u)
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxChartSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", u, err)
	}
	if len(data) > maxChartSize {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", u, maxChartSize)
	}
	return data, nil
}

// cachePath is where a chart's archive is kept.
func (s *Source) cachePath(ref Ref) string {
	return filepath.Join(s.cacheDir, fmt.Sprintf("%s-%s.tgz", ref.Name, ref.Version))
}

// loadCached returns the cached chart, or nil when there is none.
func (s *Source) loadCached(ref Ref) (*chart.Chart, error) {
	if s.cacheDir == "" {
		return nil, nil
	}
	data, err := os.ReadFile(s.cachePath(ref))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read cached chart %s: %w", ref, err)
	}
	c, err := loader.LoadArchive(bytes.NewReader(data))
	if err != nil || c.Metadata.Name != ref.Name || c.Metadata.Version != ref.Version {
		// A damaged cache entry is fetched again.
		s.log.Debug("ignoring a damaged cached chart", "path", s.cachePath(ref), "err", err)
		return nil, nil
	}
	s.log.Debug("using cached chart", "path", s.cachePath(ref))
	return c, nil
}

// store keeps a verified archive in the cache; failing to is not an error.
func (s *Source) store(ref Ref, data []byte) {
	if s.cacheDir == "" {
		return
	}
	if err := os.MkdirAll(s.cacheDir, 0o755); err != nil {
		s.log.Debug("cannot cache chart", "chart", ref.String(), "err", err)
		return
	}
	tmp, err := os.CreateTemp(s.cacheDir, ".download-*")
	if err != nil {
		s.log.Debug("cannot cache chart", "chart", ref.String(), "err", err)
		return
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		s.log.Debug("cannot cache chart", "chart", ref.String(), "err", err)
		return
	}
	if err := os.Rename(tmp.Name(), s.cachePath(ref)); err != nil {
		_ = os.Remove(tmp.Name())
		s.log.Debug("cannot cache chart", "chart", ref.String(), "err", err)
	}
}

// ChartUnavailableError says that a pinned chart is neither in the cache nor
// downloadable.
type ChartUnavailableError struct {
	Chart    Ref
	CacheDir string
	Err      error
}

func (e *ChartUnavailableError) Error() string {
	fix := "connect this machine to the internet once: lab keeps every chart it downloads"
	if e.CacheDir != "" {
		fix += fmt.Sprintf(" in %s (or put %s-%s.tgz there yourself)", e.CacheDir, e.Chart.Name, e.Chart.Version)
	}
	return fmt.Sprintf("chart %s is not cached and could not be downloaded: %v\n  fix: %s", e.Chart, e.Err, fix)
}

func (e *ChartUnavailableError) Unwrap() error { return e.Err }

// Fetch makes sure every release's chart can be loaded, downloading and
// caching those that are missing, so that a later install needs no network.
func (s *Source) Fetch(ctx context.Context, releases []Release) error {
	for _, rel := range releases {
		if _, err := s.Load(ctx, rel.Chart); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &ChartUnavailableError{Chart: rel.Chart, CacheDir: s.cacheDir, Err: err}
		}
	}
	return nil
}
