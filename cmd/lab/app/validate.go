package app

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jewelry-shop/lab/lab"
	"github.com/spf13/cobra"
)

func newValidateCmd(o *options) *cobra.Command {
	var opts lab.ValidateOptions
	var teardown bool
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
and any profile defined under profiles: in lab.yaml (lab config print shows
them all).

The report goes to <out>/report.md, with report.json (every figure; lab report
renders the Markdown again from it) and report.xml (JUnit, one test case per
requirement). A requirement that could not be measured says why; it is never
a pass. A first Ctrl-C stops the run, removes every fault and still writes the
report; a second exits at once.

With --kubeconfig (and --context) the same validation runs against the stack on
an existing cluster, e.g. a shared staging cluster: every fault there needs
--allow-chaos-on-foreign-cluster, the load goes to --target, and the node
failure, which needs the lab's k3d cluster, is reported "not run".

--dry-run prints the plan with its timing and writes it to <out>/plan.md, with
every Chaos Mesh object it would create in <out>/chaos/, touching no cluster.

Exit codes: 0 every requirement passed, 1 one failed, 2 the run could not be
carried out or some requirement could not be measured (the report says how far
it got and why).`,
		Example: `  lab validate --profile quick
  lab validate --profile quick --dry-run
  lab validate --profile full --dry-run --out /tmp/full-plan
  lab validate --kubeconfig staging.yaml --target https://shop.staging.example --allow-chaos-on-foreign-cluster`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.setup(cmd); err != nil {
				return err
			}
			if !opts.DryRun {
				err := runValidate(cmd, o, opts)
				if !teardown {
					return err
				}
				if _, derr := o.newLab().Down(context.WithoutCancel(cmd.Context()), false); derr != nil {
					c := codeError{code: exitFail, err: err}
					if errors.As(err, &c) && c.code < exitFail {
						c.code = exitFail
					}
					c.err = errors.Join(c.err, fmt.Errorf("--teardown: %w", derr))
					return c
				}
				return err
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
	f.StringVar(&opts.Profile, "profile", "quick", "a profile: quick, full, or one defined under profiles: in lab.yaml")
	f.StringVar(&opts.Out, "out", "", "directory for the plan and report (default ./lab-reports/<run id>-<profile>)")
	f.BoolVar(&opts.DryRun, "dry-run", false, "write the plan and the Chaos Mesh objects without touching a cluster")
	f.Uint64Var(&opts.Seed, "seed", 1, "seed of the simulated users' random choices (stated in the report)")
	f.BoolVar(&opts.AllowForeignCluster, "allow-chaos-on-foreign-cluster", false, "allow faults on a cluster that lab did not create")
	f.BoolVar(&teardown, "teardown", false, "run lab down after the report is written")
	f.StringVar(&opts.Kubeconfig, "kubeconfig", "", "validate the stack on an existing cluster of this kubeconfig instead of the lab (needs --allow-chaos-on-foreign-cluster and --target)")
	f.StringVar(&opts.Context, "context", "", "the kubeconfig context to use with --kubeconfig (default: its current context)")
	f.StringVar(&opts.Target, "target", "", "with --kubeconfig: the URL the shop answers on in that cluster")
	f.StringVar(&opts.Compare, "compare", "", "an earlier run's report.json: its figures appear beside this run's")
	return cmd
}

// runValidate runs the measured validation and exits with its verdict.
func runValidate(cmd *cobra.Command, o *options, opts lab.ValidateOptions) error {
	res, err := o.newLab().Validate(cmd.Context(), opts)
	var up *lab.UnknownProfileError
	switch {
	case errors.As(err, &up):
		return usageError{fmt.Errorf("%w\n  fix: --profile %s", err, strings.Join(up.Known, " or --profile "))}
	case res == nil && err != nil:
		return codeError{code: exitUsage, err: err} // the run could not be carried out
	}
	fmt.Fprintf(o.streams.Out, "Verdict: %s (exit code %d)\n", res.Report.Verdict(), res.ExitCode)
	for _, f := range res.Files {
		fmt.Fprintf(o.streams.Out, "  %s\n", f)
	}
	return codeError{code: res.ExitCode, err: err}
}
