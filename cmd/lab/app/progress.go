package app

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal that can show a spinner.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb"
}

// progress picks the view: nothing under --quiet, a spinner on a terminal
// (unless logs interleave with -v), plain lines otherwise.
func (o *options) progress() progressView {
	switch {
	case o.quiet:
		return quietProgress{}
	case o.isTerminal && o.verbose == 0:
		return newSpinner(o.streams.Err)
	default:
		return &plainProgress{w: o.streams.Err, now: time.Now}
	}
}

// progressView is lab.Progress plus a way to stop drawing.
type progressView interface {
	Start(step string)
	Update(detail string)
	End(err error)
}

type quietProgress struct{}

func (quietProgress) Start(string)  {}
func (quietProgress) Update(string) {}
func (quietProgress) End(error)     {}

// plainProgress writes one line when a step starts, changed details at most
// every few seconds, and one line when it ends, with ✓ or ✗ and the time taken.
type plainProgress struct {
	w          io.Writer
	now        func() time.Time
	step       string
	started    time.Time
	detail     string
	lastDetail time.Time
}

const plainDetailEvery = 5 * time.Second

func (p *plainProgress) Start(step string) {
	if p.step != "" {
		p.End(nil)
	}
	p.step, p.started, p.detail = step, p.now(), ""
	fmt.Fprintf(p.w, "• %s …\n", step)
}

// Update remembers the detail for the end line, and prints it while the step
// is still running only every plainDetailEvery, so logs stay short.
func (p *plainProgress) Update(detail string) {
	now := p.now()
	changed := detail != p.detail
	p.detail = detail
	if p.step == "" || !changed || now.Sub(p.started) < plainDetailEvery || now.Sub(p.lastDetail) < plainDetailEvery {
		return
	}
	p.lastDetail = now
	fmt.Fprintf(p.w, "  %s\n", detail)
}

func (p *plainProgress) End(err error) {
	if p.step == "" {
		return
	}
	mark := "✓"
	if err != nil {
		mark = "✗"
	}
	suffix := ""
	if p.detail != "" {
		suffix = ": " + p.detail
	}
	fmt.Fprintf(p.w, "%s %s (%s)%s\n", mark, p.step, p.now().Sub(p.started).Round(100*time.Millisecond), suffix)
	p.step = ""
}

// spinner redraws the running step on one terminal line until it ends.
type spinner struct {
	w       io.Writer
	mu      sync.Mutex
	step    string
	detail  string
	started time.Time
	stop    chan struct{}
	done    chan struct{}
}

func newSpinner(w io.Writer) *spinner { return &spinner{w: w} }

const spinFrames = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

func (s *spinner) Start(step string) {
	s.End(nil)
	s.mu.Lock()
	s.step, s.detail, s.started = step, "", time.Now()
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	s.mu.Unlock()
	go s.run(s.stop, s.done)
}

func (s *spinner) run(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	frames := []rune(spinFrames)
	for i := 0; ; i++ {
		s.mu.Lock()
		line := fmt.Sprintf("%c %s (%s)", frames[i%len(frames)], s.step, time.Since(s.started).Round(time.Second))
		if s.detail != "" {
			line += " " + s.detail
		}
		fmt.Fprintf(s.w, "\r\033[K%s", line)
		s.mu.Unlock()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func (s *spinner) Update(detail string) {
	s.mu.Lock()
	s.detail = detail
	s.mu.Unlock()
}

func (s *spinner) End(err error) {
	s.mu.Lock()
	stop, done := s.stop, s.done
	s.stop = nil
	s.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	<-done
	mark := "\033[32m✓\033[0m"
	if err != nil {
		mark = "\033[31m✗\033[0m"
	}
	suffix := ""
	if s.detail != "" {
		suffix = ": " + s.detail
	}
	fmt.Fprintf(s.w, "\r\033[K%s %s (%s)%s\n", mark, s.step, time.Since(s.started).Round(100*time.Millisecond), suffix)
}
