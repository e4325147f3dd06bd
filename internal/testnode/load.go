package testnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// Load makes every image available in the local Docker: an image whose tag
// Docker has is left as it is, the others are loaded from their archives.
// Superseded stand-in tags (those whose archive Build pruned from the cache)
// that no container uses are removed; their layers are mostly shared with
// the current images, so keeping them would cost little, but they are
// garbage all the same. It returns the references it loaded.
func Load(ctx context.Context, c *client.Client, imgs Images, log *slog.Logger) ([]string, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	loaded, err := LoadImages(ctx, c, imgs.All()...)
	if err != nil {
		return loaded, err
	}
	if err := removeSuperseded(ctx, c, imgs, log); err != nil {
		return loaded, err
	}
	return loaded, nil
}

// LoadImages makes each image available in the local Docker, loading it from
// its archive unless Docker has its tag, and returns the references it
// loaded. Unlike Load, it removes nothing.
func LoadImages(ctx context.Context, c *client.Client, imgs ...Image) ([]string, error) {
	var loaded []string
	for _, img := range imgs {
		if _, err := c.ImageInspect(ctx, img.Ref); err == nil {
			continue
		} else if !cerrdefs.IsNotFound(err) {
			return loaded, fmt.Errorf("inspect image %s: %w", img.Ref, err)
		}
		if err := load(ctx, c, img); err != nil {
			return loaded, err
		}
		loaded = append(loaded, img.Ref)
	}
	return loaded, nil
}

// load runs `docker load` on the image's archive and checks that it brought
// the expected tag.
func load(ctx context.Context, c *client.Client, img Image) error {
	f, err := os.Open(img.Archive)
	if err != nil {
		return fmt.Errorf("load image %s: %w", img.Ref, err)
	}
	defer f.Close()
	resp, err := c.ImageLoad(ctx, f, client.ImageLoadWithQuiet(true))
	if err != nil {
		return fmt.Errorf("load image %s from %s: %w", img.Ref, img.Archive, err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return fmt.Errorf("load image %s: read the daemon's answer: %w", img.Ref, err)
		}
		if msg.Error != "" {
			return fmt.Errorf("load image %s from %s: %s", img.Ref, img.Archive, msg.Error)
		}
	}
	if _, err := c.ImageInspect(ctx, img.Ref); err != nil {
		return fmt.Errorf("load image %s from %s: not in Docker afterwards: %w", img.Ref, img.Archive, err)
	}
	return nil
}

// removeSuperseded removes the stand-in tags (by ImageLabel) that are not
// current and whose archive is gone from the cache, unless a container, even
// a stopped one, uses them.
func removeSuperseded(ctx context.Context, c *client.Client, keep Images, log *slog.Logger) error {
	list, err := c.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("label", ImageLabel))})
	if err != nil {
		return fmt.Errorf("list stand-in images: %w", err)
	}
	current := map[string]bool{}
	dir := ""
	for _, img := range keep.All() {
		current[img.Ref] = true
		dir = filepath.Dir(img.Archive)
	}
	for _, li := range list {
		for _, ref := range li.RepoTags {
			repo, tag, ok := strings.Cut(ref, ":")
			if !ok || current[ref] || (repo != NodeRepository && repo != LoadBalancerRepository && repo != ToolsRepository) {
				continue
			}
			if _, err := os.Stat(filepath.Join(dir, filepath.Base(repo)+"-"+tag+".tar")); err == nil {
				continue // still in the cache: possibly another checkout's current image
			}
			users, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("ancestor", li.ID))})
			if err != nil {
				return fmt.Errorf("list the containers of image %s: %w", ref, err)
			}
			if len(users) > 0 {
				continue
			}
			if _, err := c.ImageRemove(ctx, ref, image.RemoveOptions{PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
				log.Warn("could not remove a superseded stand-in image", "image", ref, "err", err)
				continue
			}
			log.Info("removed a superseded stand-in image", "image", ref)
		}
	}
	return nil
}
