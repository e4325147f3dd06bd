package app

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/jewelry-shop/lab/lab"
	"github.com/spf13/cobra"
)

func newStatusCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster's nodes, their state, the kubeconfig and what is installed",
		Long: `Show the lab's cluster as it is now: each node container and whether Kubernetes
reports it Ready, where the kubeconfig is, the addresses the cluster publishes
and what is installed. It changes nothing.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.setup(cmd); err != nil {
				return err
			}
			st, err := o.newLab().Status(cmd.Context())
			if err != nil {
				return err
			}
			printStatus(o.streams.Out, st)
			return nil
		},
	}
	cmd.Flags().String("name", lab.DefaultClusterName, "cluster name (cluster.name)")
	cmd.Flags().String("kubeconfig", "", "the kubeconfig lab wrote (cluster.kubeconfig)")
	bindKey(cmd, "cluster.name", "name")
	bindKey(cmd, "cluster.kubeconfig", "kubeconfig")
	return cmd
}

func printStatus(w io.Writer, st *lab.Status) {
	if !st.Exists {
		fmt.Fprintf(w, "Cluster %s does not exist. Create it with `lab up`.\n", st.Cluster)
		return
	}
	owner := "created by lab"
	if !st.Managed {
		owner = "NOT created by lab: lab will not change it"
	}
	fmt.Fprintf(w, "Cluster %s (%s)\n\n", st.Cluster, owner)
	ready := map[string]string{}
	for _, n := range st.Nodes {
		ready[n.Name] = "NotReady (" + n.Reason + ")"
		if n.Ready {
			ready[n.Name] = "Ready"
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tCONTAINER\tKUBERNETES")
	for _, c := range st.Containers {
		k := ready[c.Name]
		switch {
		case c.Role == "loadbalancer":
			k = "-"
		case k == "" && st.NodesError != "":
			k = "unknown"
		case k == "":
			k = "not registered"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, c.Role, c.Status, k)
	}
	_ = tw.Flush()
	if st.NodesError != "" {
		fmt.Fprintf(w, "\nKubernetes API not reachable: %s\n", st.NodesError)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "API server   %s\n", st.APIServer)
	fmt.Fprintf(w, "Ingress      %s\n", st.IngressURL)
	switch {
	case st.Kubeconfig != "":
		fmt.Fprintf(w, "Kubeconfig   %s\n", st.Kubeconfig)
	case st.Problem != "":
		fmt.Fprintln(w, "Kubeconfig   missing")
	default:
		fmt.Fprintln(w, "Kubeconfig   missing: run `lab up` to write it again")
	}
	switch {
	case st.StackError != "":
		fmt.Fprintf(w, "Installed    unknown: %s\n", st.StackError)
	case len(st.Installed) == 0:
		fmt.Fprintln(w, "Installed    nothing yet (the cluster is empty; `lab up` installs the stack)")
	}
	for i, s := range st.Installed {
		label := ""
		if i == 0 {
			label = "Installed"
		}
		fmt.Fprintf(w, "%-12s %s\n", label, s)
	}
	for i, s := range st.NotInstalled {
		label := ""
		if i == 0 {
			label = "Left out"
		}
		fmt.Fprintf(w, "%-12s %s\n", label, s)
	}
	if st.Problem != "" {
		fmt.Fprintf(w, "\nlab up will not use this cluster as it is: it %s\n  fix: %s\n", st.Problem, st.Fix)
	}
	for i, c := range st.Stack.Checks {
		label := ""
		if i == 0 {
			label = "Ready"
		}
		mark := "✓"
		if !c.OK {
			mark = "✗"
		}
		fmt.Fprintf(w, "%-12s %s %s: %s\n", label, mark, c.Name, c.Detail)
	}
}
