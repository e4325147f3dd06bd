package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// envtest starts etcd and kube-apiserver without a parent-death signal, so a
// test binary that is killed (a test timeout, SIGKILL) leaves them running.
// Each test binary therefore records the PIDs of its children that run an
// asset binary, and the next control plane to start kills those recorded by
// a test binary that no longer exists. A PID is only signalled while its
// executable is still in the asset directory, so a reused PID is left alone.

// pidsDir is where test binaries record their control plane's PIDs.
func pidsDir() (string, error) {
	c, err := CacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(c, "controlplane-pids"), nil
}

// recordChildren writes the PIDs of this process's children that run a
// binary from assets into the record of this test binary, and returns the
// record's path.
func recordChildren(assets string) (string, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return "", fmt.Errorf("list processes: %w", err)
	}
	self := os.Getpid()
	var pids []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || parentPID(pid) != self || !runsAsset(pid, assets) {
			continue
		}
		pids = append(pids, strconv.Itoa(pid))
	}
	dir, err := pidsDir()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("record control plane PIDs: %w", err)
	}
	path := filepath.Join(dir, strconv.Itoa(self))
	if err := os.WriteFile(path, []byte(strings.Join(pids, "\n")), 0o600); err != nil {
		return "", fmt.Errorf("record control plane PIDs: %w", err)
	}
	return path, nil
}

// reapOrphans kills the recorded control plane processes of test binaries
// that are gone, and removes their records.
func reapOrphans(ctx context.Context, logger *slog.Logger, assets string) error {
	dir, err := pidsDir()
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read control plane PID records: %w", err)
	}
	for _, e := range entries {
		owner, err := strconv.Atoi(e.Name())
		if err != nil || alive(owner) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			pid, err := strconv.Atoi(f)
			if err != nil || !runsAsset(pid, assets) {
				continue
			}
			logger.InfoContext(ctx, "killing a control plane process left by a test binary that died", "pid", pid, "test binary pid", owner)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = os.Remove(path)
	}
	return nil
}

// alive reports whether a process with this PID exists and is not a zombie.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || !strings.HasPrefix(string(stat[i+1:]), " Z")
}

// parentPID returns the parent of pid, or -1 when it cannot be read.
func parentPID(pid int) int {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return -1
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return -1
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 2 {
		return -1
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return -1
	}
	return ppid
}

// runsAsset reports whether pid runs an executable from the assets directory.
func runsAsset(pid int, assets string) bool {
	exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe"))
	if err != nil {
		return false
	}
	return filepath.Dir(strings.TrimSuffix(exe, " (deleted)")) == filepath.Clean(assets)
}
