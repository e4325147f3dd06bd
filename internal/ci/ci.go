// Package ci decides what a test does when something it needs from the machine
// (a binary, a service, a built asset) is missing.
//
// On a developer's machine such a test skips and says how to get what is
// missing. Under CI=true it fails instead: CI must never pass by skipping.
package ci

import (
	"os"
	"strconv"
	"testing"
)

// Enabled reports whether the tests run under CI (CI set to a true value).
func Enabled() bool {
	v, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && v
}

// Missing ends the test because something it needs is not available: it fails
// under CI and skips elsewhere. The message should name what is missing and the
// command that provides it.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if Enabled() {
		tb.Fatalf("missing test dependency (CI=true, so this fails instead of skipping): "+format, args...)
	}
	tb.Skipf("skipped, missing test dependency: "+format, args...)
}
