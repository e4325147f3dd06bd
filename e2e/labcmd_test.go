package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// labCmd runs the lab binary and returns its exit code and output. lab sees
// only the LAB_* variables of env: those of the test's own environment
// (LAB_E2E, a developer's settings) would be rejected as unknown keys or
// change what is tested.
func labCmd(t *testing.T, bin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = labEnv(env)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run lab %v: %v", args, err)
	}
	t.Logf("lab %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	return code, out.String(), errb.String()
}

// labEnv is the test's environment without its LAB_* variables, plus env.
func labEnv(env []string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LAB_") {
			out = append(out, kv)
		}
	}
	return append(out, env...)
}

// buildLab builds the lab binary into dir.
func buildLab(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "lab")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "../cmd/lab")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build lab: %v\n%s", err, out)
	}
	return bin
}

// TestLabCmdEnvironment: the variable that turns the end-to-end test on
// (LAB_E2E) never reaches lab, which rejects unknown LAB_* variables; the
// LAB_* settings the test passes do.
func TestLabCmdEnvironment(t *testing.T) {
	t.Setenv("LAB_E2E", "1")
	bin := buildLab(t, t.TempDir())
	code, out, stderr := labCmd(t, bin, []string{"LAB_CLUSTER_NAME=lab-e2e"}, "config", "print")
	if code != 0 || !strings.Contains(out, "name: lab-e2e") {
		t.Errorf("lab config print with LAB_E2E set = exit %d\n%s%s; want exit 0 and the test's cluster name", code, out, stderr)
	}
}
