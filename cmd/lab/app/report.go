package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jewelry-shop/lab/lab"
	"github.com/spf13/cobra"
)

// reportFix is the fix of every report that cannot be read.
const reportFix = "pass the report.json that lab validate wrote, e.g. lab report lab-reports/<run>/report.json"

func newReportCmd(o *options) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "report REPORT.json",
		Short: "Render the Markdown report again from a validation's JSON",
		Long: `Render the Markdown validation report from the JSON file that lab validate wrote
beside it (every figure of the run is in the JSON). The JSON is checked against
its schema: a verdict that does not follow from the requirements is refused.
A file that is not such a report is a usage error (exit code 2).`,
		Example: `  lab report lab-reports/20261129-101500-quick/report.json
  lab report report.json --out report.md`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("lab report takes one argument, the report's JSON file, got %d\n  fix: lab report lab-reports/<run>/report.json", len(args))
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			path := args[0]
			if err := checkReport(path); err != nil {
				return err
			}
			// Rendered in memory first: a report that cannot be read leaves
			// no half-written --out behind, and every error until here is
			// the input's.
			var md bytes.Buffer
			if err := lab.RenderReport(path, &md); err != nil {
				msg := strings.TrimPrefix(err.Error(), "read report "+path+": ")
				msg = strings.TrimPrefix(msg, path+": ")
				return usagef("%s is not a lab report this lab can read: %s\n  fix: %s", path, msg, reportFix)
			}
			if out == "" {
				if _, err := o.streams.Out.Write(md.Bytes()); err != nil {
					return fmt.Errorf("write the report: %w", err)
				}
				return nil
			}
			if err := os.WriteFile(out, md.Bytes(), 0o644); err != nil {
				return fmt.Errorf("write %s: %w", out, err)
			}
			fmt.Fprintf(o.streams.Out, "Wrote %s.\n", out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "write the Markdown to this file instead of standard output")
	return cmd
}

// checkReport refuses, as usage errors, a path that is no JSON file: a
// missing file, a directory, an empty file, text that is not JSON.
func checkReport(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return usagef("%v\n  fix: %s", err, reportFix)
	}
	if fi.IsDir() {
		inside := filepath.Join(path, "report.json")
		if _, err := os.Stat(inside); err == nil {
			return usagef("%s is a directory\n  fix: lab report %s", path, inside)
		}
		return usagef("%s is a directory, with no report.json in it\n  fix: %s", path, reportFix)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return usagef("%v\n  fix: %s", err, reportFix)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return usagef("%s is empty (was the validation interrupted before it wrote the report?)\n  fix: %s", path, reportFix)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		var syn *json.SyntaxError
		where := ""
		if errors.As(err, &syn) {
			where = fmt.Sprintf(" at byte %d", syn.Offset)
		}
		return usagef("%s is not a lab report: not JSON: %v%s\n  fix: %s", path, err, where, reportFix)
	}
	return nil
}
