package realnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Names that mark what a tier owns on the host, each carrying the PID of
// the test binary that made it, so that the next tier can remove what a
// killed one left behind:
//
//	<temp dir>/lab-realnode-<pid>-*          its work directory
//	<cgroup hierarchy>/lab-realnode/<pid>-<slot>/   its cgroups
//	labrn<slot>, alias "lab-realnode <pid>"  its end of the test bridge
//
// The processes, mounts, network namespaces and iptables rules of a node
// end with its PID namespace and need no sweeping; the host's end of the
// bridge goes with the bridge's namespace, and is swept in case its holder
// somehow outlived the test.
const (
	workPrefix   = "lab-realnode-"
	cgroupParent = "lab-realnode"
	linkPrefix   = "labrn"
	linkAlias    = "lab-realnode"
)

// sweep removes what tiers of test binaries that no longer run left behind,
// and says what it removed.
func sweep(ctx context.Context, log *slog.Logger) error {
	var errs []error
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		entries, err := os.ReadDir(filepath.Join(m.path, cgroupParent))
		if err != nil {
			continue
		}
		for _, e := range entries {
			owner, _, ok := strings.Cut(e.Name(), "-")
			if pid, err := strconv.Atoi(owner); !e.IsDir() || !ok || err != nil || alive(pid) {
				continue
			}
			rel := filepath.Join(cgroupParent, e.Name())
			log.InfoContext(ctx, "removing the cgroups of a real-node tier whose test binary is gone", "cgroup", filepath.Join(m.path, rel))
			errs = append(errs, removeCgroup([]cgroupMount{m}, rel, 10*time.Second))
		}
		_ = os.Remove(filepath.Join(m.path, cgroupParent)) // only when empty
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), workPrefix+"*"))
	for _, d := range dirs {
		owner, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), workPrefix), "-")
		if pid, err := strconv.Atoi(owner); err != nil || alive(pid) {
			continue
		}
		log.InfoContext(ctx, "removing the work directory of a real-node tier whose test binary is gone", "dir", d)
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", d, err))
		}
	}
	links, err := run(ctx, "ip", "-o", "link", "show")
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, line := range strings.Split(links, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if !strings.HasPrefix(name, linkPrefix) {
			continue
		}
		alias, err := os.ReadFile(filepath.Join("/sys/class/net", name, "ifalias"))
		if err != nil {
			continue
		}
		owner, ok := strings.CutPrefix(strings.TrimSpace(string(alias)), linkAlias+" ")
		if pid, err := strconv.Atoi(owner); !ok || err != nil || alive(pid) {
			continue
		}
		log.InfoContext(ctx, "removing the bridge link of a real-node tier whose test binary is gone", "link", name)
		if _, err := run(ctx, "ip", "link", "del", name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
