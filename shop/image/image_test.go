package image_test

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/jewelry-shop/lab/internal/ci"
	"github.com/jewelry-shop/lab/shop/image"
)

var meta = image.Metadata{
	Version: "v0.0.0-test",
	Commit:  "0123456789abcdef",
	Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	Source:  "https://example.com/lab",
}

// TestImage builds the real binary for this machine's architecture, writes
// the tarball, reads it back and runs the binary from the image's layer.
// The other architecture is checked with a stand-in binary.
func TestImage(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		ci.Missing(t, "the go toolchain in PATH to build cmd/shop")
	}
	bin, err := image.BuildBinary(t.Context(), "../..", "./cmd/shop", runtime.GOARCH, meta)
	if err != nil {
		t.Fatal(err)
	}
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	tests := []struct {
		arch   string
		binary []byte
		run    bool
	}{
		{arch: runtime.GOARCH, binary: bin, run: true},
		{arch: other, binary: []byte("stand-in"), run: false},
	}
	for _, tt := range tests {
		t.Run(tt.arch, func(t *testing.T) {
			img, err := image.Build(tt.binary, tt.arch, meta)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "shop.tar")
			ref := image.Repository + ":" + meta.Version
			if err := image.WriteTarball(path, ref, img); err != nil {
				t.Fatal(err)
			}
			tag, err := name.NewTag(ref)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tarball.ImageFromPath(path, &tag)
			if err != nil {
				t.Fatalf("read tarball back: %v", err)
			}
			// What k3d imports is the tarball, so that is what is validated
			// (digests, sizes, diff ids, config and manifest consistency).
			if err := validate.Image(got); err != nil {
				t.Errorf("tarball image does not validate: %v", err)
			}
			if mt, err := img.MediaType(); err != nil || mt != types.OCIManifestSchema1 {
				t.Errorf("manifest media type %q (%v), want %q", mt, err, types.OCIManifestSchema1)
			}
			cf, err := got.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			want := v1.Config{
				Entrypoint:   []string{"/shop"},
				Cmd:          []string{"web"},
				User:         "65532:65532",
				WorkingDir:   "/",
				Env:          []string{"PATH=/"},
				ExposedPorts: map[string]struct{}{"8000/tcp": {}},
				Labels:       meta.Labels(),
			}
			if diff := cmp.Diff(want, cf.Config); diff != "" {
				t.Errorf("image config (-want +got):\n%s", diff)
			}
			if cf.Architecture != tt.arch || cf.OS != "linux" {
				t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, tt.arch)
			}
			if v := cf.Config.Labels["org.opencontainers.image.version"]; v != meta.Version {
				t.Errorf("version label %q, want %q", v, meta.Version)
			}
			files := layerFiles(t, got)
			if diff := cmp.Diff([]string{"etc/", "etc/passwd", "etc/group", "tmp/", "shop"}, names(files)); diff != "" {
				t.Errorf("layer files (-want +got):\n%s", diff)
			}
			if !tt.run {
				return
			}
			exe := filepath.Join(t.TempDir(), "shop")
			if err := os.WriteFile(exe, files[len(files)-1].body, 0o755); err != nil {
				t.Fatal(err)
			}
			out, err := exec.CommandContext(t.Context(), exe, "--version").CombinedOutput()
			if err != nil {
				t.Fatalf("run the image's binary: %v\n%s", err, out)
			}
			if want := "shop v0.0.0-test (commit 0123456789abcdef)"; strings.TrimSpace(string(out)) != want {
				t.Errorf("--version printed %q, want %q", out, want)
			}
		})
	}
}

type file struct {
	name string
	body []byte
}

func names(files []file) []string {
	var n []string
	for _, f := range files {
		n = append(n, f.name)
	}
	return n
}

// layerFiles returns the entries of the image's single layer.
func layerFiles(t *testing.T, img v1.Image) []file {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("image has %d layers (%v), want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	var files []file
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, file{name: h.Name, body: b})
	}
}
