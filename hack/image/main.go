// Command image builds the shop's container image tarballs, one per
// platform, without Docker or a registry:
//
//	go run ./hack/image -out dist -version v0.1.0 -commit $(git rev-parse HEAD)
//
// writes dist/shop-image-linux-amd64.tar and dist/shop-image-linux-arm64.tar,
// each a docker-archive tagged <repository>:<version> for k3d image import.
// Run it from the module root.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/jewelry-shop/lab/shop/image"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	out := fs.String("out", "dist", "output directory")
	version := fs.String("version", "dev", "image version (tag and OCI label)")
	commit := fs.String("commit", "unknown", "source commit (OCI label)")
	repo := fs.String("repository", image.Repository, "image repository")
	platforms := fs.String("platforms", "linux/amd64,linux/arm64", "comma-separated platforms")
	created := fs.String("created", "", "creation time, RFC 3339 (default: now; set it to the commit time for a reproducible build)")
	source := fs.String("source", "https://github.com/jewelry-shop/lab", "source repository (OCI label)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	meta := image.Metadata{Version: *version, Commit: *commit, Source: *source, Created: time.Now().UTC().Truncate(time.Second)}
	if *created != "" {
		t, err := time.Parse(time.RFC3339, *created)
		if err != nil {
			return fmt.Errorf("parse -created: %w", err)
		}
		meta.Created = t
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("make output directory: %w", err)
	}
	ref := *repo + ":" + *version
	for _, p := range strings.Split(*platforms, ",") {
		osName, arch, ok := strings.Cut(strings.TrimSpace(p), "/")
		if !ok || osName != "linux" {
			return fmt.Errorf("platform %q: want linux/<arch>", p)
		}
		bin, err := image.BuildBinary(ctx, ".", "./cmd/shop", arch, meta)
		if err != nil {
			return err
		}
		img, err := image.Build(bin, arch, meta)
		if err != nil {
			return err
		}
		path := filepath.Join(*out, "shop-image-linux-"+arch+".tar")
		if err := image.WriteTarball(path, ref, img); err != nil {
			return err
		}
		digest, err := img.Digest()
		if err != nil {
			return fmt.Errorf("image digest: %w", err)
		}
		fmt.Printf("%s\t%s\tlinux/%s\t%s\n", path, ref, arch, digest)
	}
	return nil
}
