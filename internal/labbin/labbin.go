// Package labbin builds the lab binary and runs it as a user runs it, for
// the tests that go through the command's own wiring (e2e, the real-node
// tier): a test that composes its own runner proves the runner, not `lab`.
package labbin

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/jewelry-shop/lab/internal/syncbuf"
)

// Build builds the lab binary (cmd/lab) into dir and returns its path.
//
// It is built static and with -trimpath, the flags of the stand-in images'
// programs and of every non-race go command in the Makefile: the packages
// they share (client-go, the Kubernetes API types) are compiled once, also
// when a race-detector test binary calls Build.
func Build(tb testing.TB, dir string) string {
	tb.Helper()
	bin := filepath.Join(dir, "lab")
	build := exec.CommandContext(tb.Context(), "go", "build", "-trimpath", "-o", bin, "github.com/jewelry-shop/lab/cmd/lab")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("build lab: %v\n%s", err, out)
	}
	return bin
}

// Run runs the lab binary with args for at most timeout and returns its
// exit code and output, which it also logs. lab sees only the LAB_*
// variables of env: those of the test's own environment (LAB_E2E, a
// developer's settings) would be rejected as unknown keys or change what is
// tested.
func Run(tb testing.TB, timeout time.Duration, bin string, env []string, args ...string) (int, string, string) {
	tb.Helper()
	// Not the test's context: a test that ends early still waits for lab
	// to stop, so that lab removes what it made.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(tb.Context()), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = Env(env)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		tb.Fatalf("run lab %v: %v", args, err)
	}
	tb.Logf("lab %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	return code, out.String(), errb.String()
}

// Env is the test's environment without its LAB_* variables, plus env.
func Env(env []string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LAB_") {
			out = append(out, kv)
		}
	}
	return append(out, env...)
}

// Interrupt runs the lab binary with args and presses Ctrl-C (SIGINT) once
// until, polled with lab's standard error so far, holds; it returns lab's
// exit code and standard error. It fails the test if until does not hold
// within timeout, or fails.
func Interrupt(tb testing.TB, timeout time.Duration, bin string, env []string, until func(ctx context.Context, stderr string) (bool, error), args ...string) (int, string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(tb.Context()), timeout+5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = Env(env)
	stderr := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = io.Discard, stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		return until(ctx, stderr.String())
	})
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		tb.Fatalf("lab %v: the moment to interrupt never came: %v\n%s", args, err, stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		tb.Fatal(err)
	}
	err = cmd.Wait()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		tb.Fatalf("lab %v: %v", args, err)
	}
	tb.Logf("lab %s, interrupted: exit %d\n%s", strings.Join(args, " "), code, stderr.String())
	return code, stderr.String()
}
