package dockertest

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
)

// AssertNothingLeft checks through the Docker API, not through the code under
// test, that no container, network or volume of the k3d cluster name remains.
func AssertNothingLeft(tb testing.TB, c *client.Client, name string) {
	tb.Helper()
	ctx := context.Background()
	byLabel := filters.NewArgs(filters.Arg("label", "k3d.cluster="+name))
	cs, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: byLabel})
	if err != nil {
		tb.Fatal(err)
	}
	for _, ct := range cs {
		tb.Errorf("container left behind: %v (%s)", ct.Names, ct.State)
	}
	ns, err := c.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	for _, n := range ns {
		if strings.Contains(n.Name, name) {
			tb.Errorf("network left behind: %s", n.Name)
		}
	}
	vs, err := c.VolumeList(ctx, volume.ListOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	for _, v := range vs.Volumes {
		if strings.Contains(v.Name, name) || v.Labels["k3d.cluster"] == name {
			tb.Errorf("volume left behind: %s", v.Name)
		}
	}
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on now, for
// a cluster to publish its API or ingress on.
func FreePort(tb testing.TB) string {
	tb.Helper()
	l, err := (&net.ListenConfig{}).Listen(tb.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
