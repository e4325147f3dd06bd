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
	"syscall"

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
	ctx, stop := interruptible(s.Err)
	defer stop()
	root := NewRoot(s, b)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var c codeError
	if errors.As(err, &c) && c.err == nil {
		return c.code // the command said all it had to say
	}
	if err != nil {
		printError(s.Err, err)
	}
	return exitCode(err)
}

// interruptible returns a context cancelled by the first SIGINT or SIGTERM;
// after it, Go's default handling is restored, so that a second signal ends
// the process at once.
func interruptible(stderr io.Writer) (context.Context, func()) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		select {
		case <-done:
		case <-ctx.Done():
			stop()
			fmt.Fprintln(stderr, "\nInterrupted: stopping and cleaning up (press Ctrl-C again to exit at once, leaving things behind)")
		}
	}()
	// The watcher ends before stop cancels ctx: otherwise it could take the
	// cancellation for a signal and print "Interrupted" after the command.
	return ctx, func() { close(done); <-exited; stop() }
}

// NewRoot returns the root command with every subcommand.
func NewRoot(s Streams, b Build) *cobra.Command {
	o := &options{streams: s, build: b, environ: os.Environ(), isTerminal: isTerminal(s.Err)}
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
	root.SetErr(s.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\n  fix: see `lab --help` or `lab COMMAND --help`", err)}
	})
	pf := root.PersistentFlags()
	pf.StringVarP(&o.configPath, "config", "c", "", "configuration file (YAML; - reads standard input; default ./lab.yaml when it exists)")
	pf.CountVarP(&o.verbose, "verbose", "v", "more logging on stderr (-v debug, -vv trace of the libraries)")
	pf.BoolVarP(&o.quiet, "quiet", "q", false, "no progress output; results and errors only")
	pf.StringVar(&o.logFormat, "log-format", "text", "log format on stderr: text or json")

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
	return root
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
