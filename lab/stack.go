package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/jewelry-shop/lab/charts"
	"github.com/jewelry-shop/lab/cluster"
)

// StackInstaller installs one chart release and waits for it, and lists
// the images releases use; helmStack implements it on *charts.Installer.
type StackInstaller interface {
	Install(ctx context.Context, rel charts.Release) (*charts.Result, error)
	Images(ctx context.Context, releases []charts.Release) ([]string, error)
}

// helmStack is the StackInstaller of a real cluster.
type helmStack struct{ *charts.Installer }

func (h helmStack) Images(ctx context.Context, releases []charts.Release) ([]string, error) {
	return charts.Images(ctx, h.Source(), releases)
}

// ImageLoader loads images into the cluster's nodes; *cluster.Manager
// implements it.
type ImageLoader interface {
	LocalImages(ctx context.Context, images []string) ([]string, error)
	ImportImages(ctx context.Context, cluster string, images []string) error
}

// StackResult says what was installed.
type StackResult struct {
	ShopImage string
	Releases  []*charts.Result
	// Imported are the images loaded into the nodes from this machine.
	Imported  []string
	Readiness Readiness
}

// ShopImageArchive is the image archive of the reference shop lab imports.
func (c Config) ShopImageArchive() string {
	if c.Stack.ShopImageArchive != "" {
		return c.Stack.ShopImageArchive
	}
	return filepath.Join("dist", "shop-image-linux-"+runtime.GOARCH+".tar")
}

func (c Config) chartCache() string {
	if c.Stack.ChartCache != "" {
		return c.Stack.ChartCache
	}
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "lab", "charts")
	}
	return ""
}

// ChartFetcher makes the stack's charts available before anything is
// created, so that the installation later needs no network; *charts.Source
// implements it.
type ChartFetcher interface {
	Fetch(ctx context.Context, releases []charts.Release) error
}

// stackInputs are what installing the stack needs from this machine.
type stackInputs struct {
	archive, shopRef string
	releases         []charts.Release
}

// checkStackInputs checks the shop's image archive and makes every chart of
// the stack available (from the cache, or downloaded into it).
func (l *Lab) checkStackInputs(ctx context.Context) (*stackInputs, error) {
	archive := l.cfg.ShopImageArchive()
	ref, err := cluster.ArchiveRef(archive)
	if err != nil {
		return nil, fmt.Errorf("%w\n  fix: build the shop image first with `make image` (or set stack.shopImageArchive)", err)
	}
	releases, err := l.stackReleases(imageTag(ref))
	if err != nil {
		return nil, err
	}
	if l.cfg.Stack.Values != "" {
		if err := checkValues(ctx, releases); err != nil {
			return nil, err
		}
	}
	if err := l.charts.Fetch(ctx, releases); err != nil {
		return nil, err
	}
	l.progress.Update(fmt.Sprintf("%s; %d charts", ref, len(releases)))
	return &stackInputs{archive: archive, shopRef: ref, releases: releases}, nil
}

// stackReleases are the releases of the configured stack: online or
// offline (charts.Stack), with stack.values merged over the jewelry-shop
// release's.
func (l *Lab) stackReleases(shopImageTag string) ([]charts.Release, error) {
	st := l.cfg.Stack
	releases, err := charts.Stack(st.Profile, shopImageTag, st.Offline)
	if err != nil {
		return nil, err
	}
	if st.Values == "" {
		return releases, nil
	}
	b, err := os.ReadFile(st.Values)
	if err != nil {
		return nil, fmt.Errorf("stack.values: %w\n  fix: point stack.values (LAB_STACK_VALUES) at a YAML file of jewelry-shop chart values, or leave it empty", err)
	}
	vals := map[string]any{}
	if err := yaml.Unmarshal(b, &vals); err != nil {
		return nil, fmt.Errorf("stack.values: %s is not a YAML map of chart values: %w\n  fix: write it like `redis: {image: {repository: mirror.example/redis, tag: 7.4.2}}`", st.Values, err)
	}
	for i, r := range releases {
		if r.Chart.Name == charts.JewelryShopChart {
			releases[i] = r.WithValues(vals)
		}
	}
	return releases, nil
}

// checkValues renders the jewelry-shop release, so that values of
// stack.values the chart refuses stop `lab up` before it creates anything.
func checkValues(ctx context.Context, releases []charts.Release) error {
	c, err := charts.LoadJewelryShop()
	if err != nil {
		return err
	}
	for _, r := range releases {
		if r.Chart.Name != charts.JewelryShopChart {
			continue
		}
		if _, err := charts.Render(ctx, c, r); err != nil {
			return fmt.Errorf("stack.values: the jewelry-shop chart refuses them: %w\n  fix: correct the file, or leave stack.values empty", err)
		}
	}
	return nil
}

// installStack loads the images into the cluster, installs the releases in
// order and waits until the stack is really ready.
func (l *Lab) installStack(ctx context.Context, kubeconfig []byte, in *stackInputs) (*StackResult, error) {
	res := &StackResult{ShopImage: in.shopRef}
	inst, err := l.newInstaller(kubeconfig)
	if err != nil {
		return nil, err
	}
	releases := in.releases
	if err := l.step("Importing images", func() error {
		want, err := inst.Images(ctx, releases)
		if err != nil {
			// Not fatal: the nodes pull what was not imported.
			l.log.Warn("the images of the charts are unknown; the cluster pulls them itself", "err", err)
		}
		want = slices.DeleteFunc(want, func(i string) bool { return i == in.shopRef })
		local, err := l.images.LocalImages(ctx, want)
		if err != nil {
			return err
		}
		res.Imported = append([]string{in.archive}, local...)
		l.progress.Update(fmt.Sprintf("%d from this machine, %d pulled by the nodes", len(res.Imported), len(want)-len(local)))
		return l.images.ImportImages(ctx, l.cfg.Cluster.Name, res.Imported)
	}); err != nil {
		return nil, err
	}

	for _, rel := range releases {
		rel.Progress = func(p charts.Progress) { l.progress.Update(p.String()) }
		if err := l.step(fmt.Sprintf("Installing %s", rel.Chart), func() error {
			r, err := inst.Install(ctx, rel)
			if err == nil {
				res.Releases = append(res.Releases, r)
			}
			return err
		}); err != nil {
			return res, err
		}
	}

	err = l.step("Waiting for the stack to be ready", func() error {
		rd, err := l.waitStackReady(ctx, kubeconfig, l.cfg.Stack.ReadyTimeout)
		res.Readiness = rd
		return err
	})
	return res, err
}

// Images lists every image a lab needs: the nodes' and k3d's, the shop's
// and those of the charts. Listing the upstream charts' images needs their
// repositories once; they are cached after.
func (l *Lab) Images(ctx context.Context) ([]string, error) {
	out := l.spec().Images()
	ref, err := cluster.ArchiveRef(l.cfg.ShopImageArchive())
	if err != nil {
		ref = "jewelry-shop/shop:<built by make image>"
	}
	releases, err := l.stackReleases(imageTag(ref))
	if err != nil {
		return nil, err
	}
	more, err := charts.Images(ctx, charts.NewSource(charts.Options{Logger: l.log, CacheDir: l.cfg.chartCache()}), releases)
	if err != nil {
		return out, fmt.Errorf("list the images of the charts (their repositories must be reachable once; they are cached after): %w", err)
	}
	if !slices.Contains(more, ref) {
		more = append(more, ref)
	}
	sort.Strings(more)
	return append(out, more...), nil
}

// waitStackReady polls the stack's readiness until every check passes or
// timeout; the error names what was still not ready.
func (l *Lab) waitStackReady(ctx context.Context, kubeconfig []byte, timeout time.Duration) (Readiness, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	var last Readiness
	for {
		rd, err := l.probe.Check(wctx, kubeconfig)
		if err == nil {
			last = rd
			l.progress.Update(rd.Summary())
			if rd.Ready() {
				return rd, nil
			}
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			var missing []string
			for _, c := range last.Checks {
				if !c.OK {
					missing = append(missing, fmt.Sprintf("%s: %s", c.Name, c.Detail))
				}
			}
			if len(missing) == 0 {
				missing = append(missing, "the readiness could not be read")
			}
			return last, fmt.Errorf("the stack is not ready after %s:\n%s\n  fix: `lab status` shows the state; raise stack.readyTimeout if it is only slow",
				timeout, strings.Join(missing, "\n"))
		case <-t.C:
		}
	}
}

// imageTag is the tag of an image reference, "" when it has none.
func imageTag(ref string) string {
	name := ref[strings.LastIndex(ref, "/")+1:]
	if i := strings.LastIndex(name, ":"); i >= 0 {
		return name[i+1:]
	}
	return ""
}
