package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/jewelry-shop/lab/internal/labbin"
)

// labCmd runs the lab binary (see labbin.Run) for at most 20 minutes.
func labCmd(tb testing.TB, bin string, env []string, args ...string) (int, string, string) {
	tb.Helper()
	return labbin.Run(tb, 20*time.Minute, bin, env, args...)
}

// buildLab builds the lab binary into dir.
func buildLab(tb testing.TB, dir string) string {
	tb.Helper()
	return labbin.Build(tb, dir)
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
