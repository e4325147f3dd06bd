package app

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jewelry-shop/lab/internal/syncbuf"
)

// TestProgressViewsAreSafe drives every view as lab validate does: the load
// generator's goroutine updates the live figures while the runner starts and
// ends steps and reports events. Run with -race.
func TestProgressViewsAreSafe(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    options
	}{
		{"plain", options{}},
		{"terminal", options{isTerminal: true}},
		{"quiet", options{quiet: true}},
	} {
		t.Run(tt.name, func(_ *testing.T) {
			var out bytes.Buffer
			o := tt.o
			o.streams = Streams{Err: &out}
			view := o.progress()
			view.Start("first step")
			var wg sync.WaitGroup
			stop := make(chan struct{})
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					view.Update(fmt.Sprintf("%6s  users %5d", time.Duration(i)*time.Millisecond, i))
					if i > 100_000 {
						return
					}
				}
			})
			for i := range 20 {
				view.Event(fmt.Sprintf("experiment %d", i))
				if i%5 == 4 {
					view.End(nil)
					view.Start(fmt.Sprintf("step %d", i))
				}
				time.Sleep(time.Millisecond)
			}
			close(stop)
			wg.Wait()
			view.End(errors.New("failed"))
		})
	}
}

// fakeClock is a clock that moves only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// figures is a line of load figures at second s.
func figures(s int) string { return fmt.Sprintf("%4ds  users   100  req/s 50.0", s) }

// TestPlainProgressEvents: an event gets a line of its own at once, however
// recently figures were printed; figures stay rate-limited.
func TestPlainProgressEvents(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{t: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)}
	view := &plainProgress{w: &out, now: clock.now}
	view.Start("Load and experiments")
	for s := range 12 { // the load figures, every second
		clock.t = clock.t.Add(time.Second)
		view.Update(figures(s))
		switch s {
		case 5:
			view.Event("pg-primary-failure")
		case 7:
			view.Event("redis-master-failure")
		}
	}
	view.End(nil)
	want := "• Load and experiments …\n" +
		"  " + figures(4) + "\n" + // the first after plainDetailEvery
		"  pg-primary-failure\n" +
		"  redis-master-failure\n" +
		"  " + figures(9) + "\n" +
		"✓ Load and experiments (12s): " + figures(11) + "\n"
	if got := out.String(); got != want {
		t.Errorf("plain progress:\n%s\nwant:\n%s", got, want)
	}
}

// TestSpinnerEvents: on a terminal, an event is printed above the spinner
// line, ending with a newline, so that the next redraw does not overwrite it.
func TestSpinnerEvents(t *testing.T) {
	var out syncbuf.Buffer
	view := newSpinner(&out)
	view.Start("Load and experiments")
	view.Update(figures(1))
	view.Event("pg-primary-failure")
	view.Update(figures(2))
	time.Sleep(250 * time.Millisecond) // a few redraws
	view.End(nil)
	got := out.String()
	i := strings.Index(got, "pg-primary-failure")
	if i < 0 {
		t.Fatalf("the event is not shown:\n%q", got)
	}
	if !strings.HasPrefix(got[i:], "pg-primary-failure\n") || !strings.HasSuffix(got[:i], "\r\033[K  ") {
		t.Errorf("the event is not a line of its own:\n%q", got)
	}
	if !strings.Contains(got[i:], figures(2)) {
		t.Errorf("the spinner is not drawn again after the event:\n%q", got)
	}
}
