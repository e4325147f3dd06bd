package app

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/jewelry-shop/lab/lab"
	"github.com/spf13/cobra"
)

func newConfigCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show the effective configuration",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	var env bool
	printCmd := &cobra.Command{
		Use:   "print",
		Short: "Print the effective configuration as lab.yaml (or as LAB_* variables with --env)",
		Long: `Print the configuration lab would use: the defaults, overridden by lab.yaml (or
--config FILE), then by LAB_* environment variables. The output is a valid
lab.yaml; start your own from it. With --env, print the environment variable
of every key instead, as shell lines that export it with its value quoted:
eval "$(lab config print --env)" sets them all. A custom profile's variables
(LAB_PROFILES_<NAME>_...) are read only when lab.yaml defines the profile.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.setup(cmd); err != nil {
				return err
			}
			if env {
				printEnv(o.streams.Out, o.cfg.Effective())
				return nil
			}
			if o.src.file != "" {
				fmt.Fprintf(o.streams.Out, "# effective configuration; file: %s\n", displayName(o.src.file))
			} else {
				fmt.Fprintln(o.streams.Out, "# effective configuration; no file read")
			}
			return printConfig(o.streams.Out, o.cfg.Effective())
		},
	}
	printCmd.Flags().BoolVar(&env, "env", false, "print LAB_* environment variables as shell export lines instead of YAML")
	cmd.AddCommand(printCmd)
	return cmd
}

func newImagesCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "images",
		Short: "List every image the lab needs",
		Long: `List every image lab up needs: the k3s node image, k3d's helper images, the
reference shop's (built by make image) and those of the charts it installs.
Pull them with docker pull while you have a network: lab up imports those the
local Docker has into the nodes instead of letting the nodes pull them.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.setup(cmd); err != nil {
				return err
			}
			imgs, err := o.newLab().Images(cmd.Context())
			for _, i := range imgs {
				fmt.Fprintln(o.streams.Out, i)
			}
			return err
		},
	}
	cmd.Flags().String("profile", "quick", "chart values of a validation profile: quick or full (stack.profile)")
	bindKey(cmd, "stack.profile", "profile")
	return cmd
}

func newVersionCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of lab and of what it pins",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			w := o.streams.Out
			fmt.Fprintln(w, versionLine(o.build))
			fmt.Fprintf(w, "  k3d library     %s\n", moduleVersion("github.com/k3d-io/k3d/v5"))
			fmt.Fprintf(w, "  k3s image       %s\n", lab.DefaultK3sImage)
			fmt.Fprintf(w, "  k3d helpers     %s\n", lab.DefaultHelperImageTag)
			return nil
		},
	}
}

// versionLine is the first line of lab version, and what lab --version
// prints.
func versionLine(b Build) string {
	return fmt.Sprintf("lab %s (commit %s, %s %s/%s)", b.Version, b.Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// moduleVersion is the version of a dependency compiled into the binary.
func moduleVersion(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, d := range bi.Deps {
		if d.Path == path {
			return d.Version
		}
	}
	return "unknown"
}
