package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"

	"github.com/jewelry-shop/lab/internal/dockertest"
)

const closedRegistry = dockertest.ClosedRegistry

// TestUpWithoutImageLeavesNothing runs `lab up` against the real Docker
// daemon with a k3s image that cannot be pulled (as on any machine without
// internet): it must fail fast, name the image and the fix, and leave no
// container, network or volume behind; `lab down` then succeeds.
func TestUpWithoutImageLeavesNothing(t *testing.T) {
	clearLabEnv(t)
	dc := dockertest.Client(t)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := "labtest-" + hex.EncodeToString(b)
	image := closedRegistry + "/rancher/k3s:v1.33.6-k3s1"
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	common := []string{"--name", name, "--kubeconfig", kubeconfig}

	start := time.Now()
	code, stdout, stderr := run(t, "", append([]string{"up", "--stack=false", "--k3s-image", image, "--api-port", dockertest.FreePort(t), "--ingress-port", dockertest.FreePort(t)}, common...)...)
	t.Logf("lab up failed after %s:\n%s", time.Since(start).Round(time.Millisecond), stderr)
	if code != exitFail {
		t.Errorf("lab up exit code %d, want %d", code, exitFail)
	}
	for _, want := range []string{"Error: image " + image + " is not available locally", "docker pull " + image, "✗ Checking images"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not contain %q", want)
		}
	}
	if stdout != "" {
		t.Errorf("a failed lab up wrote to stdout:\n%s", stdout)
	}

	ctx := context.Background()
	byLabel := filters.NewArgs(filters.Arg("label", "k3d.cluster="+name))
	cs, err := dc.ContainerList(ctx, container.ListOptions{All: true, Filters: byLabel})
	if err != nil || len(cs) != 0 {
		t.Errorf("containers left behind: %v (%v)", cs, err)
	}
	ns, err := dc.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", name))})
	if err != nil || len(ns) != 0 {
		t.Errorf("networks left behind: %v (%v)", ns, err)
	}
	vs, err := dc.VolumeList(ctx, volume.ListOptions{Filters: byLabel})
	if err != nil || len(vs.Volumes) != 0 {
		t.Errorf("volumes left behind: %v (%v)", vs.Volumes, err)
	}
	if _, err := os.Stat(kubeconfig); !os.IsNotExist(err) {
		t.Errorf("kubeconfig left behind: %v", err)
	}

	code, stdout, stderr = run(t, "", append([]string{"down"}, common...)...)
	if code != exitOK || !strings.Contains(stdout, "Nothing to remove: there is no cluster "+name) {
		t.Errorf("lab down: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	code, stdout, _ = run(t, "", append([]string{"status"}, common...)...)
	if code != exitOK || !strings.Contains(stdout, "does not exist") {
		t.Errorf("lab status: exit %d\n%s", code, stdout)
	}
}

// TestNoDockerDaemon runs the commands against a socket nobody serves: each
// fails at once with the fix, not after a timeout; lab validate still writes
// the report of a run that could not start, and names its files.
func TestNoDockerDaemon(t *testing.T) {
	clearLabEnv(t)
	sock := filepath.Join(t.TempDir(), "docker.sock")
	t.Setenv("DOCKER_HOST", "unix://"+sock)
	t.Setenv("LAB_CLUSTER_KUBECONFIG", filepath.Join(t.TempDir(), "kubeconfig"))
	out := t.TempDir()
	for _, tt := range []struct {
		args   []string
		code   int
		stdout string // "" means nothing on stdout
		errMsg string
	}{
		{[]string{"up"}, exitFail, "", "Error: cannot reach the Docker daemon at unix://" + sock},
		{[]string{"down"}, exitFail, "", "Error: cannot reach the Docker daemon at unix://" + sock},
		{[]string{"status"}, exitFail, "", "Error: cannot reach the Docker daemon at unix://" + sock},
		// The run could not be carried out: exit code 2, with its report.
		{[]string{"validate", "--out", out}, exitUsage, "Verdict: incomplete (exit code 2)\n  " + filepath.Join(out, "report.md"), "Error: preflight: cannot reach the Docker daemon at unix://" + sock},
	} {
		t.Run(tt.args[0], func(t *testing.T) {
			start := time.Now()
			code, stdout, stderr := run(t, "", tt.args...)
			t.Logf("lab %s failed after %s", tt.args[0], time.Since(start).Round(time.Millisecond))
			if code != tt.code {
				t.Errorf("exit code %d, want %d", code, tt.code)
			}
			for _, want := range []string{tt.errMsg, "fix: start Docker"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr does not contain %q:\n%s", want, stderr)
				}
			}
			if strings.Count(stderr, "Error:") != 1 || (tt.stdout == "") != (stdout == "") || !strings.Contains(stdout, tt.stdout) {
				t.Errorf("want the error once on stderr and %q on stdout; stdout:\n%s\nstderr:\n%s", tt.stdout, stdout, stderr)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(out, "report.json")); err != nil {
		t.Errorf("lab validate wrote no report.json: %v", err)
	}
}
