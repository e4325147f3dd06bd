package app

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jewelry-shop/lab/lab"
	"github.com/spf13/cobra"
)

func newValidateCmd(o *options) *cobra.Command {
	var opts lab.ValidateOptions
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Run load and failures against the lab and write a measured report",
		Long: `Run the built-in load generator against the lab while Chaos Mesh breaks things,
measure recovery, availability, latency, scale-up and scale-down and data loss,
and write a Markdown report of what this run measured.

Profiles:
  quick   100 users for 5 minutes; web pod kill, PostgreSQL primary failure and
          Redis master failure under load (about 10 minutes)
  full    ramp to 1000 users for 30 minutes; every experiment, spaced apart; the
          HPA must reach its maximum and return to its minimum (about 40 minutes)

--dry-run prints the plan with its timing and writes it to <out>/plan.md, with
every Chaos Mesh object it would create in <out>/chaos/, touching no cluster.

This version runs --dry-run only: the measured run is being built, and lab
reports nothing it did not measure.`,
		Example: `  lab validate --profile quick --dry-run
  lab validate --profile full --dry-run --out /tmp/full-plan`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.setup(cmd); err != nil {
				return err
			}
			if !opts.DryRun {
				return usagef("lab validate runs with --dry-run only in this version: the measured run (load, chaos, report) is not built yet, and lab will not report what it did not measure\n  fix: lab validate --profile %s --dry-run", opts.Profile)
			}
			res, err := o.newLab().ValidateDryRun(cmd.Context(), opts)
			var up *lab.UnknownProfileError
			if errors.As(err, &up) {
				return usageError{fmt.Errorf("%w\n  fix: --profile %s", err, strings.Join(up.Known, " or --profile "))}
			}
			if err != nil {
				return err
			}
			if err := res.Plan.WriteMarkdown(o.streams.Out); err != nil {
				return err
			}
			fmt.Fprintf(o.streams.Out, "\nWrote %d files to %s (run %s).\n", len(res.Files), res.Dir, res.RunID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Profile, "profile", "quick", "validation profile: quick or full")
	f.StringVar(&opts.Out, "out", "", "directory for the plan and report (default ./lab-reports/<run id>-<profile>)")
	f.BoolVar(&opts.DryRun, "dry-run", false, "write the plan and the Chaos Mesh objects without touching a cluster")
	return cmd
}
