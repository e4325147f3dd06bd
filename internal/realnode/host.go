package realnode

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// run runs a command and returns its output, failing with the output when
// it does not exit 0.
func run(ctx context.Context, name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// inNetns runs a command in the network namespace of process pid.
func inNetns(ctx context.Context, pid int, name string, args ...string) (string, error) {
	return run(ctx, "nsenter", append([]string{"--net=/proc/" + strconv.Itoa(pid) + "/ns/net", "--", name}, args...)...)
}

// prefixesInUse lists the host's IPv4 addresses (as their networks) and
// route destinations in every routing table.
func prefixesInUse(ctx context.Context) ([]netip.Prefix, error) {
	var out []netip.Prefix
	addrs, err := run(ctx, "ip", "-4", "-o", "addr", "show")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(addrs, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" {
				if p, err := netip.ParsePrefix(f[i+1]); err == nil {
					out = append(out, p.Masked())
				}
			}
		}
	}
	routes, err := run(ctx, "ip", "-4", "route", "show", "table", "all")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(routes, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		dst := f[0]
		switch dst {
		case "default", "local", "broadcast", "unreachable", "blackhole", "prohibit", "throw", "multicast":
			if dst == "default" || len(f) < 2 {
				continue
			}
			dst = f[1]
		}
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		if p, err := netip.ParsePrefix(dst); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out, nil
}

// lockFile takes an exclusive lock on path, waiting for it; the returned
// function releases it.
func lockFile(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { _ = f.Close() }, nil
}

// cgroupMounts returns the mount points of the host's cgroup hierarchies
// (every v1 controller's and the v2 one), from /proc/self/mountinfo.
func cgroupMounts() ([]cgroupMount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("list the cgroup hierarchies: %w", err)
	}
	defer f.Close()
	var out []cgroupMount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options ... - fstype source superoptions
		left, right, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		lf, rf := strings.Fields(left), strings.Fields(right)
		if len(lf) < 5 || len(rf) < 3 {
			continue
		}
		switch rf[0] {
		case "cgroup":
			out = append(out, cgroupMount{path: lf[4], cpuset: strings.Contains(","+rf[2]+",", ",cpuset,")})
		case "cgroup2":
			out = append(out, cgroupMount{path: lf[4], v2: true})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("list the cgroup hierarchies: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("list the cgroup hierarchies: none is mounted")
	}
	return out, nil
}

// cgroupMount is one mounted cgroup hierarchy.
type cgroupMount struct {
	path   string
	cpuset bool // a v1 hierarchy with the cpuset controller
	v2     bool
}

// makeCgroup creates rel (e.g. lab-realnode/123-0/node/pods) in every
// hierarchy. In the cpuset hierarchy each new level gets its parent's CPUs
// and memory nodes, without which no process may join it.
func makeCgroup(mounts []cgroupMount, rel string) error {
	for _, m := range mounts {
		dir := m.path
		for _, part := range strings.Split(rel, "/") {
			parent := dir
			dir = filepath.Join(dir, part)
			if err := os.Mkdir(dir, 0o755); err != nil {
				if errors.Is(err, os.ErrExist) {
					continue
				}
				return fmt.Errorf("create cgroup %s: %w", dir, err)
			}
			if !m.cpuset {
				continue
			}
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(parent, f))
				if err != nil {
					return fmt.Errorf("create cgroup %s: %w", dir, err)
				}
				if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
					return fmt.Errorf("create cgroup %s: %w", dir, err)
				}
			}
		}
	}
	return nil
}

// joinCgroup moves pid into rel in every hierarchy.
func joinCgroup(mounts []cgroupMount, rel string, pid int) error {
	for _, m := range mounts {
		p := filepath.Join(m.path, rel, "cgroup.procs")
		if err := os.WriteFile(p, []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("move process %d into %s: %w", pid, p, err)
		}
	}
	return nil
}

// removeCgroup kills every process left in rel (and below) in every
// hierarchy, then removes the cgroups, deepest first, retrying while the
// kernel finishes the killed processes, for at most wait.
func removeCgroup(mounts []cgroupMount, rel string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	var errs []error
	for _, m := range mounts {
		root := filepath.Join(m.path, rel)
		for {
			err := removeTree(root)
			if err == nil || time.Now().After(deadline) {
				if err != nil {
					errs = append(errs, err)
				}
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

// removeTree kills the processes of a cgroup tree and removes its
// directories bottom-up; a missing tree is removed.
func removeTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() {
			errs = append(errs, removeTree(filepath.Join(dir, e.Name())))
		}
	}
	if procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
		for _, f := range strings.Fields(string(procs)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
	}
	return errors.Join(errs...)
}

// alive reports whether a process with this PID exists and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || !bytes.HasPrefix(stat[i+1:], []byte(" Z"))
}
