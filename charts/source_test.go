package charts

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/repo"
)

// serveRepo serves a chart repository on loopback with the chart "tiny" in
// the given versions, and returns its URL. tamper may change the index
// before it is written.
func serveRepo(t *testing.T, tamper func(*repo.IndexFile), versions ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, v := range versions {
		c := &chart.Chart{
			Metadata: &chart.Metadata{APIVersion: chart.APIVersionV2, Name: "tiny", Version: v, AppVersion: v, Type: "application"},
			Templates: []*chart.File{{Name: "templates/configmap.yaml", Data: []byte(
				"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  greeting: {{ .Values.greeting | quote }}\n")}},
			Values: map[string]any{"greeting": "hello"},
		}
		if _, err := chartutil.Save(c, dir); err != nil {
			t.Fatalf("package chart: %v", err)
		}
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	index, err := repo.IndexDirectory(dir, srv.URL)
	if err != nil {
		t.Fatalf("index the repository: %v", err)
	}
	if tamper != nil {
		tamper(index)
	}
	if err := index.WriteFile(filepath.Join(dir, "index.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	return srv.URL
}

// closedURL returns the URL of a loopback port nobody listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	var lc net.ListenConfig
	l, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

// TestSourceLoad fetches a pinned chart version from a repository served by
// the test, and fails clearly when it cannot.
func TestSourceLoad(t *testing.T) {
	t.Parallel()
	good := serveRepo(t, nil, "1.0.0", "1.1.0")
	corrupt := serveRepo(t, func(i *repo.IndexFile) { i.Entries["tiny"][0].Digest = strings.Repeat("0", 64) }, "1.0.0")
	tests := []struct {
		name string
		ref  Ref
		want []string // in the error; none means success
	}{
		{"pinned version", Ref{Name: "tiny", Version: "1.0.0", Repo: good}, nil},
		{"trailing slash", Ref{Name: "tiny", Version: "1.1.0", Repo: good + "/"}, nil},
		{
			"wrong version",
			Ref{Name: "tiny", Version: "9.9.9", Repo: good},
			[]string{"chart repository " + good + " has no version 9.9.9 of chart tiny (newest first: 1.1.0, 1.0.0)", "charts/pinned.go"},
		},
		{"wrong chart", Ref{Name: "huge", Version: "1.0.0", Repo: good}, []string{`has no chart named "huge" (it has: tiny)`}},
		{
			"unreachable repository",
			Ref{Name: "tiny", Version: "1.0.0", Repo: closedURL(t)},
			[]string{"fetch the index of chart repository http://127.0.0.1:", "connection refused", "is the repository reachable"},
		},
		{"not a repository", Ref{Name: "tiny", Version: "1.0.0", Repo: good + "/nothing-here"}, []string{"404 Not Found"}},
		{"corrupt archive", Ref{Name: "tiny", Version: "1.0.0", Repo: corrupt}, []string{"the repository index says sha256:0000"}},
		{"no version", Ref{Name: "tiny", Repo: good}, []string{"no version pinned"}},
		{"unknown embedded chart", Ref{Name: "tiny"}, []string{`chart "tiny" has no repository`}},
	}
	src := NewSource(Options{HTTPClient: &http.Client{Timeout: 10 * time.Second}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := src.Load(t.Context(), tt.ref)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Load(%s): %v", tt.ref, err)
				}
				if c.Metadata.Name != tt.ref.Name || c.Metadata.Version != tt.ref.Version {
					t.Errorf("Load(%s) = %s %s", tt.ref, c.Metadata.Name, c.Metadata.Version)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load(%s) succeeded, want an error", tt.ref)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load(%s) error does not say %q:\n%v", tt.ref, w, err)
				}
			}
		})
	}
}

// TestSourceCache: a chart fetched once loads again without its repository.
func TestSourceCache(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	url := serveRepo(t, nil, "1.0.0")
	src := NewSource(Options{CacheDir: dir})
	ref := Ref{Name: "tiny", Version: "1.0.0", Repo: url}
	if _, err := src.Load(t.Context(), ref); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tiny-1.0.0.tgz")); err != nil {
		t.Fatalf("the chart was not cached: %v", err)
	}
	offline := ref
	offline.Repo = closedURL(t)
	c, err := src.Load(t.Context(), offline)
	if err != nil {
		t.Fatalf("Load from the cache with the repository gone: %v", err)
	}
	if c.Metadata.Version != "1.0.0" {
		t.Errorf("cached chart version %s", c.Metadata.Version)
	}
}

// TestInstallUpstream installs and upgrades a chart from a repository:
// index, pinned version, download, install.
func TestInstallUpstream(t *testing.T) {
	t.Parallel()
	url := serveRepo(t, nil, "1.0.0", "1.1.0")
	in, store := memoryInstaller(t, nil, Options{})
	rel := Release{
		Name: "tiny", Namespace: "tiny", Chart: Ref{Name: "tiny", Version: "1.0.0", Repo: url},
		Values: map[string]any{"greeting": "hi"}, Timeout: time.Minute,
	}
	if _, err := in.Install(t.Context(), rel); err != nil {
		t.Fatalf("Install: %v", err)
	}
	rel.Chart.Version = "1.1.0"
	res, err := in.Install(t.Context(), rel)
	if err != nil {
		t.Fatalf("Install of a newer version: %v", err)
	}
	if res.Revision != 2 || res.Version != "1.1.0" || !res.Upgraded {
		t.Errorf("upgrade result %+v, want revision 2 of version 1.1.0", res)
	}
	got, err := store.Get("tiny", 2)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got.Manifest, `greeting: "hi"`) {
		t.Errorf("manifest does not use the release's values:\n%s", got.Manifest)
	}
	rel.Chart.Version = "2.0.0"
	if _, err := in.Install(t.Context(), rel); err == nil || !strings.Contains(err.Error(), "has no version 2.0.0") {
		t.Errorf("Install of a missing version = %v, want an error naming the version", err)
	}
}

// TestSourceFetch fetches every release's chart into the cache once; later,
// with the repository gone, Fetch succeeds from the cache, and a chart that
// was never cached is named with the fix.
func TestSourceFetch(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	url := serveRepo(t, nil, "1.0.0", "1.1.0")
	releases := []Release{
		{Name: "a", Chart: Ref{Name: "tiny", Version: "1.0.0", Repo: url}},
		{Name: "shop", Chart: Ref{Name: JewelryShopChart}},
	}
	if err := NewSource(Options{CacheDir: dir}).Fetch(t.Context(), releases); err != nil {
		t.Fatalf("Fetch with the repository up: %v", err)
	}
	offline := closedURL(t)
	releases[0].Chart.Repo = offline
	if err := NewSource(Options{CacheDir: dir}).Fetch(t.Context(), releases); err != nil {
		t.Errorf("Fetch offline with a warm cache: %v", err)
	}
	releases = append(releases, Release{Name: "b", Chart: Ref{Name: "tiny", Version: "1.1.0", Repo: offline}})
	err := NewSource(Options{CacheDir: dir}).Fetch(t.Context(), releases)
	var cu *ChartUnavailableError
	if !errors.As(err, &cu) || cu.Chart.Version != "1.1.0" {
		t.Fatalf("Fetch of an uncached chart offline = %v, want a ChartUnavailableError for tiny 1.1.0", err)
	}
	for _, want := range []string{"connection refused", "fix:", dir, "tiny-1.1.0.tgz"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}
