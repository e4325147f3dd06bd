package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Exit codes of every lab command.
const (
	exitOK    = 0 // success
	exitFail  = 1 // the operation failed
	exitUsage = 2 // usage or configuration error: nothing was attempted
)

// usageError marks an error in what the user asked for (flags, arguments,
// configuration): exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// problem is one thing wrong in what the user asked for, and its fix.
type problem struct{ what, fix string }

// problemsError is the usage error of every problem at once: one problem
// is "what\n  fix: fix"; several are listed under subject, each with its fix.
// nil when there is none.
func problemsError(subject string, ps []problem) error {
	switch len(ps) {
	case 0:
		return nil
	case 1:
		return usagef("%s\n  fix: %s", ps[0].what, ps[0].fix)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problems", subject, len(ps))
	for _, p := range ps {
		fmt.Fprintf(&b, "\n- %s\n  fix: %s", p.what, p.fix)
	}
	return usageError{errors.New(b.String())}
}

// codeError carries an exit code decided by the command, e.g. lab validate's
// verdict; err, when set, is printed.
type codeError struct {
	code int
	err  error
}

func (e codeError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit code %d", e.code)
	}
	return e.err.Error()
}
func (e codeError) Unwrap() error { return e.err }

// exitCode maps an error returned by a command to the process exit code.
func exitCode(err error) int {
	var u usageError
	var c codeError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &c):
		return c.code
	case errors.As(err, &u):
		return exitUsage
	default:
		return exitFail
	}
}

// printError prints err once, in plain words: the first line after "Error:",
// the rest (details and fixes) indented below it.
func printError(w io.Writer, err error) {
	first, rest := errorLines(err)
	fmt.Fprintf(w, "Error: %s\n", first)
	for _, l := range rest {
		fmt.Fprintf(w, "  %s\n", l)
	}
}

// printErrorJSON writes err as one record: its first line is the message,
// the others (details and fixes, in order) are "details".
func printErrorJSON(h slog.Handler, err error, code int) {
	first, rest := errorLines(err)
	r := slog.NewRecord(time.Now(), slog.LevelError, first, 0)
	r.AddAttrs(slog.Any("details", rest), slog.Int("exit_code", code))
	_ = h.Handle(context.Background(), r)
}

// errorLines splits err's message into its first line and the others,
// without their indentation or blank lines.
func errorLines(err error) (first string, rest []string) {
	msg := err.Error()
	if errors.Is(err, context.Canceled) {
		msg = "interrupted: " + msg
	}
	lines := strings.Split(strings.TrimRight(msg, "\n"), "\n")
	rest = []string{}
	for _, l := range lines[1:] {
		if l = strings.TrimLeft(l, " "); strings.TrimSpace(l) != "" {
			rest = append(rest, l)
		}
	}
	return lines[0], rest
}

// noArgs rejects positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if err := cobra.NoArgs(cmd, args); err != nil {
		return usageError{fmt.Errorf("%w\n  fix: see `%s --help`", err, cmd.CommandPath())}
	}
	return nil
}
