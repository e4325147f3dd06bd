package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
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

// progress picks the view: nothing under --quiet, JSON records under
// --log-format json, a spinner on a terminal (unless logs interleave with
// -v), plain lines otherwise.
func (o *options) progress() progressView {
	switch {
	case o.quiet:
		return quietProgress{}
	case o.jsonOutput():
		return &plainProgress{w: o.streams.Err, now: time.Now, json: o.jsonRecords()}
	case o.isTerminal && o.verbose == 0:
		return newSpinner(o.streams.Err)
	default:
		return &plainProgress{w: o.streams.Err, now: time.Now}
	}
}

// Eventer is implemented by every progress view of lab's command line (the
// value lab.WithProgress receives): Event prints a line for an event of the
// running step, such as an experiment starting, at once and on a line of its
// own, which the step's live detail (Update: rate-limited lines, or the
// spinner's redrawn line) never overwrites. lab.Progress does not have it:
// lab calls it through an optional-interface check.
type Eventer interface {
	Event(line string)
}

// progressView is lab.Progress plus Eventer. Every view is safe for
// concurrent use: the load generator's goroutine updates the figures while
// the runner starts and ends steps.
type progressView interface {
	Start(step string)
	Update(detail string)
	Event(line string)
	End(err error)
}

type quietProgress struct{}

func (quietProgress) Start(string)  {}
func (quietProgress) Update(string) {}
func (quietProgress) Event(string)  {}
func (quietProgress) End(error)     {}

// plainProgress writes one line when a step starts, changed details at most
// every few seconds, events at once, and one line when it ends, with ✓ or ✗
// and the time taken. With json set, each line is a JSON record instead:
// "step started", "step progress", "step event", "step ended" (with ok,
// elapsed_s and error), each with the step.
type plainProgress struct {
	w          io.Writer
	now        func() time.Time
	json       slog.Handler
	mu         sync.Mutex
	step       string
	started    time.Time
	detail     string
	lastDetail time.Time
}

const plainDetailEvery = 5 * time.Second

func (p *plainProgress) Start(step string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLocked(nil)
	p.step, p.started, p.detail = step, p.now(), ""
	p.emit("• "+step+" …", slog.LevelInfo, "step started")
}

// emit writes a line, or its record under --log-format json.
func (p *plainProgress) emit(line string, level slog.Level, msg string, attrs ...slog.Attr) {
	if p.json == nil {
		fmt.Fprintln(p.w, line)
		return
	}
	r := slog.NewRecord(p.now(), level, msg, 0)
	r.AddAttrs(slog.String("step", p.step))
	r.AddAttrs(attrs...)
	_ = p.json.Handle(context.Background(), r)
}

// Update remembers the detail for the end line, and prints it while the step
// is still running only every plainDetailEvery, so logs stay short.
func (p *plainProgress) Update(detail string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	changed := detail != p.detail
	p.detail = detail
	if p.step == "" || !changed || now.Sub(p.started) < plainDetailEvery || now.Sub(p.lastDetail) < plainDetailEvery {
		return
	}
	p.lastDetail = now
	p.emit("  "+detail, slog.LevelInfo, "step progress", slog.String("detail", detail))
}

// Event prints line at once.
func (p *plainProgress) Event(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.emit("  "+line, slog.LevelInfo, "step event", slog.String("event", line))
}

func (p *plainProgress) End(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLocked(err)
}

func (p *plainProgress) endLocked(err error) {
	if p.step == "" {
		return
	}
	mark, level, attrs := "✓", slog.LevelInfo, []slog.Attr{slog.Bool("ok", err == nil)}
	if err != nil {
		first, _ := errorLines(err)
		mark, level, attrs = "✗", slog.LevelWarn, append(attrs, slog.String("error", first))
	}
	elapsed := p.now().Sub(p.started).Round(100 * time.Millisecond)
	suffix := ""
	if p.detail != "" {
		suffix = ": " + p.detail
		attrs = append(attrs, slog.String("detail", p.detail))
	}
	attrs = append(attrs, slog.Float64("elapsed_s", elapsed.Seconds()))
	p.emit(fmt.Sprintf("%s %s (%s)%s", mark, p.step, elapsed, suffix), level, "step ended", attrs...)
	p.step = ""
}

// spinner redraws the running step on one terminal line until it ends;
// events are printed above it. ops serialises Start and End (which wait for
// the drawing goroutine); mu guards what that goroutine draws, and every
// write.
type spinner struct {
	w       io.Writer
	ops     sync.Mutex
	mu      sync.Mutex
	step    string
	detail  string
	started time.Time
	frame   int
	stop    chan struct{}
	done    chan struct{}
}

func newSpinner(w io.Writer) *spinner { return &spinner{w: w} }

const spinFrames = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

func (s *spinner) Start(step string) {
	s.ops.Lock()
	defer s.ops.Unlock()
	s.endLocked(nil)
	s.mu.Lock()
	s.step, s.detail, s.started = step, "", time.Now()
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	stop, done := s.stop, s.done
	s.mu.Unlock()
	go s.run(stop, done)
}

func (s *spinner) run(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		s.frame++
		s.drawLocked()
		s.mu.Unlock()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// drawLocked draws the spinner line; called with mu held.
func (s *spinner) drawLocked() {
	frames := []rune(spinFrames)
	line := fmt.Sprintf("%c %s (%s)", frames[s.frame%len(frames)], s.step, time.Since(s.started).Round(time.Second))
	if s.detail != "" {
		line += " " + s.detail
	}
	fmt.Fprintf(s.w, "\r\033[K%s", line)
}

func (s *spinner) Update(detail string) {
	s.mu.Lock()
	s.detail = detail
	s.mu.Unlock()
}

// Event prints line above the spinner line, which is drawn again below it.
func (s *spinner) Event(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.w, "\r\033[K  %s\n", line)
	if s.stop != nil {
		s.drawLocked()
	}
}

func (s *spinner) End(err error) {
	s.ops.Lock()
	defer s.ops.Unlock()
	s.endLocked(err)
}

// endLocked ends the running step; called with ops held.
func (s *spinner) endLocked(err error) {
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
	s.mu.Lock()
	defer s.mu.Unlock()
	suffix := ""
	if s.detail != "" {
		suffix = ": " + s.detail
	}
	fmt.Fprintf(s.w, "\r\033[K%s %s (%s)%s\n", mark, s.step, time.Since(s.started).Round(100*time.Millisecond), suffix)
}
