package testnode_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jewelry-shop/lab/cluster"
	"github.com/jewelry-shop/lab/internal/dockertest"
	"github.com/jewelry-shop/lab/internal/testnode"
)

// TestImagesAreCached builds and loads the images, then builds again: the
// second build must find everything cached (same tags, nothing rebuilt) and
// a second load must load nothing.
func TestImagesAreCached(t *testing.T) {
	imgs := dockertest.NodeImages(t)
	for _, img := range imgs.All() {
		if !strings.HasPrefix(img.Ref, "lab-test.invalid/") {
			t.Errorf("image %s is not under lab-test.invalid/", img.Ref)
		}
		fi, err := os.Stat(img.Archive)
		if err != nil {
			t.Fatalf("archive of %s: %v", img.Ref, err)
		}
		t.Logf("%s: archive %d MiB", img.Ref, fi.Size()>>20)
	}
	start := time.Now()
	again, err := testnode.Build(t.Context(), testnode.Options{})
	if err != nil {
		t.Fatalf("build again: %v", err)
	}
	t.Logf("warm build: %v", time.Since(start).Round(time.Millisecond))
	if again != imgs {
		t.Errorf("a second build gave other images:\n got %+v\nwant %+v", again, imgs)
	}
	loaded, err := testnode.Load(t.Context(), dockertest.Client(t), again, nil)
	if err != nil {
		t.Fatalf("load again: %v", err)
	}
	if len(loaded) != 0 {
		t.Errorf("a second load loaded %v, want nothing", loaded)
	}
}

// TestImageLabelIsLabs: lab tells its test fixtures from real images by the
// label it reads from a node container (cluster.TestImageLabel), which
// must be the one the images carry.
func TestImageLabelIsLabs(t *testing.T) {
	if testnode.ImageLabel != cluster.TestImageLabel {
		t.Errorf("testnode.ImageLabel %q, cluster.TestImageLabel %q: want them equal", testnode.ImageLabel, cluster.TestImageLabel)
	}
}
