// Package app is the lab command line: it parses flags, loads the
// configuration, sets up logging and progress, calls package lab and prints
// results and errors. It holds no logic of its own.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jewelry-shop/lab/lab"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Streams are the standard streams of the process.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// Build describes the binary, set by the linker.
type Build struct {
	Version string
	Commit  string
}

// options are the global flags and what they set up.
type options struct {
	streams    Streams
	build      Build
	configPath string
	verbose    int
	quiet      bool
	logFormat  string
	environ    []string
	// isTerminal reports whether progress may draw a spinner on stderr.
	isTerminal bool

	// onInterrupt, when a command sets it, is what the first Ctrl-C
	// prints instead of the default notice (read by the signal watcher).
	onInterrupt *atomic.Pointer[string]

	// set by setup()
	cfg lab.Config
	src configSource
	log *slog.Logger
}

// configKeyAnnotation marks a flag that sets a configuration key.
const configKeyAnnotation = "lab/config-key"

// Main runs the lab command line and returns the process exit code. The first
// Ctrl-C (or SIGTERM) cancels the running command, which stops gracefully and
// cleans up; a second one ends the process at once.
func Main(args []string, s Streams, b Build) int {
	root, o := newRoot(s, b)
	ctx, stop := interruptible(func() { o.notice(o.interruptNotice()) })
	defer stop()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var c codeError
	if errors.As(err, &c) && c.err == nil {
		return c.code // the command said all it had to say
	}
	code := exitCode(err)
	if err != nil {
		o.printError(err, code)
	}
	return code
}

// interruptible returns a context cancelled by the first SIGINT or SIGTERM,
// and calls notice to say so; after it, Go's default handling is restored,
// so that a second signal ends the process at once.
func interruptible(notice func()) (context.Context, func()) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		select {
		case <-done:
		case <-ctx.Done():
			stop()
			notice()
		}
	}()
	// The watcher ends before stop cancels ctx: otherwise it could take the
	// cancellation for a signal and print "Interrupted" after the command.
	return ctx, func() { close(done); <-exited; stop() }
}

// NewRoot returns the root command with every subcommand.
func NewRoot(s Streams, b Build) *cobra.Command {
	root, _ := newRoot(s, b)
	return root
}

func newRoot(s Streams, b Build) (*cobra.Command, *options) {
	o := &options{streams: s, build: b, environ: os.Environ(), isTerminal: isTerminal(s.Err), onInterrupt: &atomic.Pointer[string]{}}
	// Logs, progress and errors all go to stderr, some from goroutines of
	// their own: one lock keeps their lines whole.
	o.streams.Err = &lockedWriter{w: s.Err}
	root := &cobra.Command{
		Use:   "lab",
		Short: "A local copy of the jewelry-shop production stack, proven by measurement",
		Long: `lab gives you a reproducible local copy of the jewelry-shop production stack on a
3-node k3d cluster, and proves by measurement that it survives load and failure.

  lab up        create the cluster and install the stack (Docker and internet
                needed the first time; make image builds the shop's image)
  lab status    show the nodes, the kubeconfig and what is installed
  lab down      remove the cluster and everything lab created for it
  lab validate  run load and failures and write a measured report

Configuration comes from lab.yaml (or --config FILE), then LAB_* environment
variables, then flags, each overriding the one before. ` + "`lab config print`" + ` shows
the effective configuration.

Results go to stdout; progress, logs and errors to stderr. With --log-format
json, everything on stderr is one JSON object a line: logs, progress (step
started, progress every few seconds, events, step ended) and the error.

Exit codes: 0 success, 1 the operation failed, 2 usage or configuration error.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		Version:           versionLine(b),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.Flags().Bool("version", false, "print the version of lab (the first line of lab version) and exit")
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(o.streams.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\n  fix: see `lab --help` or `lab COMMAND --help`", err)}
	})
	pf := root.PersistentFlags()
	pf.StringVarP(&o.configPath, "config", "c", "", "configuration file (YAML; - reads standard input; default ./lab.yaml when it exists)")
	pf.CountVarP(&o.verbose, "verbose", "v", "more logging on stderr (-v debug, -vv trace of the libraries)")
	pf.BoolVarP(&o.quiet, "quiet", "q", false, "no progress output; results and errors only")
	pf.StringVar(&o.logFormat, "log-format", "text", "format of stderr: text, or json for logs, progress and errors as JSON lines")

	root.AddCommand(
		newUpCmd(o),
		newDownCmd(o),
		newStatusCmd(o),
		newValidateCmd(o),
		newReportCmd(o),
		newLoadCmd(o),
		newImagesCmd(o),
		newConfigCmd(o),
		newVersionCmd(o),
	)
	return root, o
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// bindKey makes a flag of cmd set a configuration key when given.
func bindKey(cmd *cobra.Command, key, flag string) {
	f := cmd.Flags().Lookup(flag)
	if f.Annotations == nil {
		f.Annotations = map[string][]string{}
	}
	f.Annotations[configKeyAnnotation] = []string{key}
}

// setup validates the global flags, loads the configuration and sets up
// logging. Commands that need the configuration call it first.
func (o *options) setup(cmd *cobra.Command) error {
	if o.logFormat != "text" && o.logFormat != "json" {
		return usagef("--log-format must be text or json, got %q", o.logFormat)
	}
	if o.quiet && o.verbose > 0 {
		return usagef("--quiet and --verbose contradict each other: use one")
	}
	flags := map[string]*pflag.Flag{}
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if key := f.Annotations[configKeyAnnotation]; len(key) == 1 && f.Changed {
			flags[key[0]] = f
		}
	})
	cfg, src, err := loadConfig(o.configPath, o.streams.In, o.environ, flags)
	if err != nil {
		return err
	}
	o.cfg, o.src = cfg, src
	o.log = newLogger(o.streams.Err, o.verbose, o.logFormat)
	lab.SetupLibraries(o.log, cfg)
	o.log.Debug("configuration loaded", "file", src.file, "cluster", cfg.Cluster.Name)
	return nil
}

// jsonOutput reports whether stderr is JSON lines (--log-format json).
func (o *options) jsonOutput() bool { return o.logFormat == "json" }

// jsonRecords is the handler of what lab writes to stderr besides logs under
// --log-format json: progress, notices and the error, at every level.
func (o *options) jsonRecords() slog.Handler {
	return slog.NewJSONHandler(o.streams.Err, &slog.HandlerOptions{Level: slog.LevelDebug - 4})
}

// interruptNotice is what the first Ctrl-C prints: the running command's
// own notice, or that lab stops and cleans up.
func (o *options) interruptNotice() string {
	if o.onInterrupt != nil {
		if msg := o.onInterrupt.Load(); msg != nil {
			return *msg
		}
	}
	return "Interrupted: stopping and cleaning up (press Ctrl-C again to exit at once, leaving things behind)"
}

// setInterruptNotice makes msg what the first Ctrl-C prints.
func (o *options) setInterruptNotice(msg string) {
	if o.onInterrupt != nil {
		o.onInterrupt.Store(&msg)
	}
}

// notice tells the user something on stderr that is neither a log nor an
// error, such as an interruption.
func (o *options) notice(msg string) {
	if o.jsonOutput() {
		_ = o.jsonRecords().Handle(context.Background(), slog.NewRecord(time.Now(), slog.LevelWarn, msg, 0))
		return
	}
	fmt.Fprintln(o.streams.Err, "\n"+msg)
}

// printError prints the command's error once: as text, or as a JSON record
// under --log-format json.
func (o *options) printError(err error, code int) {
	if o.jsonOutput() {
		printErrorJSON(o.jsonRecords(), err, code)
		return
	}
	printError(o.streams.Err, err)
}

// newLogger logs to stderr: warnings by default, debug with -v, everything
// with -vv.
func newLogger(w io.Writer, verbose int, format string) *slog.Logger {
	level := slog.LevelWarn
	switch {
	case verbose == 1:
		level = slog.LevelDebug
	case verbose >= 2:
		level = slog.LevelDebug - 4
	}
	hopts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, hopts))
	}
	return slog.New(slog.NewTextHandler(w, hopts))
}

// newLab builds the lab with the loaded configuration and the progress view.
func (o *options) newLab() *lab.Lab {
	return lab.New(o.cfg, lab.WithLogger(o.log), lab.WithProgress(o.progress()), lab.WithBuild(o.build.Version, o.build.Commit))
}
