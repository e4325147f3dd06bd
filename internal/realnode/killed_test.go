package realnode

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/jewelry-shop/lab/internal/ci"
	"github.com/jewelry-shop/lab/internal/controlplane"
)

// helperEnv makes TestKilledTierLeavesNothing, in the test binary it
// starts, bring up the tier it then kills.
const helperEnv = "REALNODE_KILLED_TIER_HELPER"

// killedTier is what the helper tells about its tier.
type killedTier struct {
	Nodes  []int  // the nodes' labnode PIDs
	Cgroup string // the tier's cgroup, relative to every hierarchy
	Link   string // the host's end of the bridge
	Work   string // the work directory
}

// runKilledTierHelper is what TestKilledTierLeavesNothing runs in the test
// binary it kills: it brings a one-node tier up, says so on standard output
// and waits to be killed.
func runKilledTierHelper(t *testing.T) {
	t.Helper()
	env := controlplane.Start(t, controlplane.Options{RealNodes: true})
	c := Start(t, env, Options{Nodes: 1})
	k := killedTier{Cgroup: c.cgroup, Link: c.link, Work: c.work}
	for _, p := range c.nodes {
		k.Nodes = append(k.Nodes, p.pid())
	}
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("TIER %s\n", b)
	time.Sleep(5 * time.Minute) // killed long before
}

// TestKilledTierLeavesNothing kills (SIGKILL) a test binary whose tier is
// up, as a test timeout or a killed `go test` does: its nodes, their
// containers and daemons end with it, its link goes with the bridge, and
// what stays (its cgroups, emptied, and its work directory) is removed by
// the next tier's sweep.
func TestKilledTierLeavesNothing(t *testing.T) {
	if os.Getenv(helperEnv) == "1" {
		runKilledTierHelper(t)
		return
	}
	checkHost(t)
	if _, err := controlplane.AssetsDir(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestKilledTierLeavesNothing$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var tier killedTier
	var lines []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		if rest, ok := strings.CutPrefix(line, "TIER "); ok {
			if err := json.Unmarshal([]byte(rest), &tier); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if len(tier.Nodes) == 0 {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if strings.Contains(strings.Join(lines, "\n"), "--- SKIP") {
			ci.Missing(t, "the helper's tier skipped:\n%s", strings.Join(lines, "\n"))
		}
		t.Fatalf("the helper's tier did not come up:\n%s", strings.Join(lines, "\n"))
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	t.Cleanup(func() { _ = controlplane.ReapOrphans(context.WithoutCancel(ctx)) })

	mounts, err := cgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		for _, pid := range tier.Nodes {
			if alive(pid) {
				return false, nil
			}
		}
		if _, err := os.Stat(filepath.Join("/sys/class/net", tier.Link)); err == nil {
			return false, nil
		}
		return len(processesIn(mounts, tier.Cgroup)) == 0, nil
	})
	if err != nil {
		t.Fatalf("30 s after the kill: nodes %v alive, link %s there, processes %v in the tier's cgroups", tier.Nodes, tier.Link, processesIn(mounts, tier.Cgroup))
	}
	if err := sweep(ctx, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		if _, err := os.Stat(filepath.Join(m.path, tier.Cgroup)); err == nil {
			t.Errorf("the sweep left cgroup %s", filepath.Join(m.path, tier.Cgroup))
		}
	}
	if _, err := os.Stat(tier.Work); err == nil {
		t.Errorf("the sweep left the work directory %s", tier.Work)
	}
}

// processesIn lists the PIDs in a cgroup tree of any hierarchy.
func processesIn(mounts []cgroupMount, rel string) []string {
	var pids []string
	for _, m := range mounts {
		_ = filepath.WalkDir(filepath.Join(m.path, rel), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			if b, err := os.ReadFile(p); err == nil {
				pids = append(pids, strings.Fields(string(b))...)
			}
			return nil
		})
	}
	return pids
}
