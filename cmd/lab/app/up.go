package app

import (
	"fmt"
	"io"
	"time"

	"github.com/jewelry-shop/lab/lab"
	"github.com/spf13/cobra"
)

func newUpCmd(o *options) *cobra.Command {
	var upOpts lab.UpOptions
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Create the 3-node k3d cluster and install the jewelry-shop stack",
		Long: `Create the lab's k3d cluster (1 server and 2 agents by default), wait until every
node is Ready, and write a kubeconfig for it to a file of lab's own (mode 0600);
~/.kube/config is only changed with --update-default-kubeconfig.

Then install the stack: import the reference shop's image (built by make image)
and every image this machine's Docker already has, install the postgres-operator,
Chaos Mesh and the jewelry-shop chart, and wait until the stack is really ready:
PostgreSQL running with a primary and its replicas, the Sentinels agreeing on one
master, the shop answering through the ingress, and the metrics API available.

Before anything is created, lab checks that Docker answers, that the host ports
are free and that Docker has enough memory, and pulls the pinned images. If a
step fails, or you press Ctrl-C, lab removes whatever it created (unless
--keep-on-failure).

Running it again is safe: an existing healthy cluster is reused and the charts
are upgraded in place.`,
		Example: `  lab up
  lab up --name shop-dev --ingress-port 8081
  LAB_CLUSTER_AGENTS=3 lab up`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.setup(cmd); err != nil {
				return err
			}
			res, err := o.newLab().Up(cmd.Context(), upOpts)
			if err != nil {
				return err
			}
			printUp(o.streams.Out, res)
			return nil
		},
	}
	f := cmd.Flags()
	f.String("name", lab.DefaultClusterName, "cluster name (cluster.name)")
	f.Int("ingress-port", 8080, "host port of the cluster's HTTP ingress on 127.0.0.1 (cluster.ingressPort)")
	f.Int("api-port", 6550, "host port of the Kubernetes API on 127.0.0.1 (cluster.apiPort)")
	f.String("k3s-image", lab.DefaultK3sImage, "k3s node image, pinned to a version (cluster.image)")
	f.String("kubeconfig", "", "where to write the kubeconfig (cluster.kubeconfig; default <user config dir>/lab/<name>/kubeconfig)")
	f.Bool("update-default-kubeconfig", false, "also merge the cluster into ~/.kube/config, without switching context (cluster.updateDefaultKubeconfig)")
	f.Duration("ready-timeout", 3*time.Minute, "how long to wait for every node to be Ready (cluster.readyTimeout)")
	f.Bool("stack", true, "install the jewelry-shop stack; --stack=false creates the cluster only (stack.install)")
	f.String("profile", "quick", "chart values of a validation profile: quick or full (stack.profile)")
	f.BoolVar(&upOpts.KeepOnFailure, "keep-on-failure", false, "keep a cluster this run created when a later step fails, to look into it")
	bindKey(cmd, "cluster.name", "name")
	bindKey(cmd, "cluster.ingressPort", "ingress-port")
	bindKey(cmd, "cluster.apiPort", "api-port")
	bindKey(cmd, "cluster.image", "k3s-image")
	bindKey(cmd, "cluster.kubeconfig", "kubeconfig")
	bindKey(cmd, "cluster.updateDefaultKubeconfig", "update-default-kubeconfig")
	bindKey(cmd, "cluster.readyTimeout", "ready-timeout")
	bindKey(cmd, "stack.install", "stack")
	bindKey(cmd, "stack.profile", "profile")
	return cmd
}

func printUp(w io.Writer, r *lab.UpResult) {
	verb := fmt.Sprintf("created in %s", r.Elapsed.Round(time.Second))
	if r.Reused {
		verb = "already existed and is healthy; reused"
	}
	fmt.Fprintf(w, "Cluster %s is ready (%s).\n\n", r.Cluster, verb)
	fmt.Fprintf(w, "  API server   %s\n", r.APIServer)
	fmt.Fprintf(w, "  Ingress      %s\n", r.IngressURL)
	fmt.Fprintf(w, "  Kubeconfig   %s\n", r.Kubeconfig)
	if r.DefaultKubeconfig != "" {
		fmt.Fprintf(w, "               (also merged into %s, context k3d-%s)\n", r.DefaultKubeconfig, r.Cluster)
	}
	for i, n := range r.Nodes {
		label := ""
		if i == 0 {
			label = "Nodes"
		}
		state := "Ready"
		if !n.Ready {
			state = "NotReady"
		}
		fmt.Fprintf(w, "  %-12s %s %s\n", label, n.Name, state)
	}
	if s := r.Stack; s != nil {
		fmt.Fprintf(w, "  %-12s %s\n", "Shop image", s.ShopImage)
		for i, rel := range s.Releases {
			label := ""
			if i == 0 {
				label = "Releases"
			}
			fmt.Fprintf(w, "  %-12s %s (%s) chart %s %s\n", label, rel.Release, rel.Namespace, rel.Chart, rel.Version)
		}
		for i, c := range s.Readiness.Checks {
			label := ""
			if i == 0 {
				label = "Ready"
			}
			fmt.Fprintf(w, "  %-12s %s: %s\n", label, c.Name, c.Detail)
		}
		fmt.Fprintf(w, "\nThe shop: %s/api/products\n", r.IngressURL)
	}
	fmt.Fprintf(w, "\nUse it:\n  export KUBECONFIG=%s\n  kubectl get nodes\n\nThen: lab status; lab validate --profile quick --dry-run to see the validation plan; lab down to remove it all.\n", r.Kubeconfig)
}

func newDownCmd(o *options) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Remove the cluster and everything lab created for it",
		Long: `Remove the lab's k3d cluster with its containers, network and volumes (also the
leftovers of a failed creation), and the kubeconfig lab wrote. Running it when
there is nothing to remove succeeds. Once the removal has begun, Ctrl-C does
not stop it halfway (a second Ctrl-C does; lab down then removes the rest).

A cluster of the same name that lab did not create is left alone unless --force.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.setup(cmd); err != nil {
				return err
			}
			o.setInterruptNotice("Interrupted: finishing the removal first, a cluster removed halfway is neither usable nor gone (press Ctrl-C again to exit at once; `lab down` then removes the rest)")
			res, err := o.newLab().Down(cmd.Context(), force)
			if err != nil {
				return err
			}
			if res.Existed {
				fmt.Fprintf(o.streams.Out, "Cluster %s removed.\n", res.Cluster)
			} else {
				fmt.Fprintf(o.streams.Out, "Nothing to remove: there is no cluster %s.\n", res.Cluster)
			}
			if res.Kubeconfig != "" {
				fmt.Fprintf(o.streams.Out, "Kubeconfig %s removed.\n", res.Kubeconfig)
			}
			return nil
		},
	}
	cmd.Flags().String("name", lab.DefaultClusterName, "cluster name (cluster.name)")
	cmd.Flags().String("kubeconfig", "", "the kubeconfig lab wrote, removed too (cluster.kubeconfig)")
	cmd.Flags().BoolVar(&force, "force", false, "also remove a cluster of this name that lab did not create")
	bindKey(cmd, "cluster.name", "name")
	bindKey(cmd, "cluster.kubeconfig", "kubeconfig")
	return cmd
}
