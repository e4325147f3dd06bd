package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"testing"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/jewelry-shop/lab/internal/ci"
)

// busyboxPath is Debian's busybox-static, which .ci/run installs.
const busyboxPath = "/bin/busybox"

// Busybox returns the reference of a tiny local image holding Debian's static
// busybox (sh, sleep, cat, …), imported into the daemon once per busybox
// binary; it is never pulled from anywhere. Tests use it for containers that
// only need to exist and run.
func Busybox(tb testing.TB, c *client.Client) string {
	tb.Helper()
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		ci.Missing(tb, "busybox: %v (apt-get install busybox-static; .ci/run installs it)", err)
	}
	sum := sha256.Sum256(bin)
	ref := "lab-test.invalid/busybox:" + hex.EncodeToString(sum[:6])
	ctx := context.Background()
	if _, err := c.ImageInspect(ctx, ref); err == nil {
		return ref
	}
	layer, err := busyboxLayer(bin)
	if err != nil {
		tb.Fatal(err)
	}
	rc, err := c.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(layer), SourceName: "-"}, ref,
		image.ImportOptions{Changes: []string{`CMD ["/bin/sh"]`, "ENV PATH=/bin"}})
	if err != nil {
		tb.Fatalf("import busybox image: %v", err)
	}
	defer rc.Close()
	if _, err := new(bytes.Buffer).ReadFrom(rc); err != nil {
		tb.Fatalf("import busybox image: %v", err)
	}
	return ref
}

// busyboxLayer is a root filesystem of busybox and its applets' links.
func busyboxLayer(bin []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	write := func(h *tar.Header, body []byte) error {
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("write busybox layer entry %s: %w", h.Name, err)
		}
		_, err := tw.Write(body)
		return err
	}
	if err := write(&tar.Header{Name: "bin/", Mode: 0o755, Typeflag: tar.TypeDir}, nil); err != nil {
		return nil, err
	}
	if err := write(&tar.Header{Name: "tmp/", Mode: 0o1777, Typeflag: tar.TypeDir}, nil); err != nil {
		return nil, err
	}
	if err := write(&tar.Header{Name: "bin/busybox", Mode: 0o755, Typeflag: tar.TypeReg, Size: int64(len(bin))}, bin); err != nil {
		return nil, err
	}
	for _, applet := range []string{"sh", "sleep", "cat", "true"} {
		if err := write(&tar.Header{Name: "bin/" + applet, Typeflag: tar.TypeSymlink, Linkname: "busybox"}, nil); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close busybox layer: %w", err)
	}
	return buf.Bytes(), nil
}
