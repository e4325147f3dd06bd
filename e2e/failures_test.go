//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// failures is a test whose failures are repeated at its end: the long
// end-to-end tests log minutes of lab's output after a failure (the removal
// of the cluster among it), and a CI excerpt shows only the last lines.
type failures struct {
	testing.TB
	mu   sync.Mutex
	msgs []string
}

// repeatFailures returns t as a failures. Call it first in the test: its
// cleanup, registered first, runs last.
func repeatFailures(t *testing.T) *failures {
	t.Helper()
	f := &failures{TB: t}
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.msgs) > 0 {
			t.Logf("FAILED, %d failure(s) of this test, repeated from above:\n  - %s", len(f.msgs), strings.Join(f.msgs, "\n  - "))
		}
	})
	return f
}

func (f *failures) add(msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, msg)
}

func (f *failures) Error(args ...any) {
	f.Helper()
	f.add(fmt.Sprint(args...))
	f.TB.Error(args...)
}

func (f *failures) Errorf(format string, args ...any) {
	f.Helper()
	f.add(fmt.Sprintf(format, args...))
	f.TB.Errorf(format, args...)
}

func (f *failures) Fatal(args ...any) {
	f.Helper()
	f.add(fmt.Sprint(args...))
	f.TB.Fatal(args...)
}

func (f *failures) Fatalf(format string, args ...any) {
	f.Helper()
	f.add(fmt.Sprintf(format, args...))
	f.TB.Fatalf(format, args...)
}
