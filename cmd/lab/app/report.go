package app

import (
	"fmt"
	"os"

	"github.com/jewelry-shop/lab/lab"
	"github.com/spf13/cobra"
)

func newReportCmd(o *options) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "report REPORT.json",
		Short: "Render the Markdown report again from a validation's JSON",
		Long: `Render the Markdown validation report from the JSON file that lab validate wrote
beside it (every figure of the run is in the JSON). The JSON is checked against
its schema: a verdict that does not follow from the requirements is refused.`,
		Example: `  lab report lab-reports/20261129-101500-quick/report.json
  lab report report.json --out report.md`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("lab report takes one argument, the report's JSON file, got %d\n  fix: lab report lab-reports/<run>/report.json", len(args))
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			if _, err := os.Stat(args[0]); err != nil {
				return usagef("%v\n  fix: pass the report.json that lab validate wrote", err)
			}
			if out == "" {
				return lab.RenderReport(args[0], o.streams.Out)
			}
			f, err := os.Create(out)
			if err != nil {
				return fmt.Errorf("write %s: %w", out, err)
			}
			if err := lab.RenderReport(args[0], f); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("write %s: %w", out, err)
			}
			fmt.Fprintf(o.streams.Out, "Wrote %s.\n", out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "write the Markdown to this file instead of standard output")
	return cmd
}
