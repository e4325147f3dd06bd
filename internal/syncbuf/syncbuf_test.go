package syncbuf

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestBufferConcurrent: writes from one goroutine and reads from another are
// safe (go test -race) and nothing written is lost.
func TestBufferConcurrent(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 100 {
			fmt.Fprintf(&b, "line %d\n", i)
		}
	})
	for range 100 {
		_ = b.String()
	}
	wg.Wait()
	if got := strings.Count(b.String(), "\n"); got != 100 {
		t.Errorf("lines = %d, want 100", got)
	}
}
