package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"

	"github.com/jewelry-shop/lab/internal/dockertest"
)

// closedRegistry is where every image of these tests points, so that no
// pull ever leaves the machine.
const closedRegistry = dockertest.ClosedRegistry

func TestMain(m *testing.M) {
	// k3d takes its helper images from these variables; without them it
	// would pull from ghcr.io.
	os.Setenv("K3D_IMAGE_LOADBALANCER", closedRegistry+"/k3d-io/k3d-proxy:5.9.0")
	os.Setenv("K3D_IMAGE_TOOLS", closedRegistry+"/k3d-io/k3d-tools:5.9.0")
	SetupLibraries(slog.New(slog.DiscardHandler), "5.9.0", "") // keep k3d's log lines out of the test output
	os.Exit(m.Run())
}

// The tests of this file do not run in parallel: k3d's Docker runtime keeps
// process-wide state in docker/cli's globals, and concurrent k3d calls race
// on it (the race detector reports it).

// unpullableSpec is a spec of a uniquely named cluster whose images cannot be
// pulled.
func unpullableSpec(t *testing.T) Spec {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	s := testSpec()
	s.Name = "labtest-" + hex.EncodeToString(b)
	s.Image = closedRegistry + "/rancher/k3s:v1.33.6-k3s1"
	s.LoadBalancerImage = closedRegistry + "/k3d-io/k3d-proxy:5.9.0"
	s.ToolsImage = closedRegistry + "/k3d-io/k3d-tools:5.9.0"
	s.APIPort, s.IngressPort = 0, 0 // let Docker choose: tests run in parallel
	return s
}

// TestCreateFailureLeavesNothing lets k3d itself run into the missing image:
// it creates the network and the image volume first, fails, and its library
// does not roll back. Create must remove both.
func TestCreateFailureLeavesNothing(t *testing.T) {
	dc := dockertest.Client(t)
	spec := unpullableSpec(t)
	m := New(nil)
	start := time.Now()
	err := m.Create(context.Background(), spec, CreateOptions{Timeout: time.Minute})
	if err == nil {
		t.Fatal("Create succeeded with an image that cannot be pulled")
	}
	t.Logf("Create failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	dockertest.AssertNothingLeft(t, dc, spec.Name)
	if _, err := m.Get(context.Background(), spec.Name); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after failed Create = %v, want ErrNotFound", err)
	}
}

// TestCreateCancelledLeavesNothing cancels the creation while k3d works.
func TestCreateCancelledLeavesNothing(t *testing.T) {
	dc := dockertest.Client(t)
	spec := unpullableSpec(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := New(nil).Create(ctx, spec, CreateOptions{Timeout: time.Minute}); err == nil {
		t.Fatal("Create succeeded with a cancelled context")
	}
	dockertest.AssertNothingLeft(t, dc, spec.Name)
}

// TestEnsureImagesNamesTheImage checks that a missing image is reported by
// name, with the fix, before anything is created.
func TestEnsureImagesNamesTheImage(t *testing.T) {
	dockertest.Client(t)
	spec := unpullableSpec(t)
	var pulled []string
	err := New(nil).EnsureImages(context.Background(), spec.Images(), func(img string) { pulled = append(pulled, img) })
	var iu *ImageUnavailableError
	if !errors.As(err, &iu) {
		t.Fatalf("EnsureImages error = %v, want an ImageUnavailableError", err)
	}
	if iu.Image != spec.Image || !strings.Contains(err.Error(), "docker pull "+spec.Image) {
		t.Errorf("error names %q: %v; want the k3s image %s and how to get it", iu.Image, err, spec.Image)
	}
	if len(pulled) != 1 || pulled[0] != spec.Image {
		t.Errorf("pull attempts = %v, want only the first image", pulled)
	}
}

// TestDeleteResidue removes the leftovers of a failed creation made by hand
// the way k3d leaves them, and succeeds when nothing exists.
func TestDeleteResidue(t *testing.T) {
	dc := dockertest.Client(t)
	ctx := context.Background()
	spec := unpullableSpec(t)
	m := New(nil)

	existed, err := m.Delete(ctx, spec.Name, false)
	if err != nil || existed {
		t.Fatalf("Delete of a cluster that does not exist = %v, %v; want false, nil", existed, err)
	}

	labels := map[string]string{"app": "k3d", "k3d.cluster": spec.Name}
	if _, err := dc.NetworkCreate(ctx, "k3d-"+spec.Name, network.CreateOptions{Labels: labels}); err != nil {
		t.Fatal(err)
	}
	if _, err := dc.VolumeCreate(ctx, volume.CreateOptions{Name: "k3d-" + spec.Name + "-images", Labels: labels}); err != nil {
		t.Fatal(err)
	}
	existed, err = m.Delete(ctx, spec.Name, false)
	if err != nil || !existed {
		t.Fatalf("Delete of leftovers = %v, %v; want true, nil", existed, err)
	}
	dockertest.AssertNothingLeft(t, dc, spec.Name)
}

// TestNodeErrors checks the errors of StopNode and StartNode for clusters
// and nodes that do not exist.
func TestNodeErrors(t *testing.T) {
	dockertest.Client(t)
	m := New(nil)
	name := unpullableSpec(t).Name
	for _, op := range []struct {
		name string
		fn   func(context.Context, string, string) error
	}{{"StopNode", m.StopNode}, {"StartNode", m.StartNode}} {
		err := op.fn(context.Background(), name, "k3d-"+name+"-agent-0")
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s on a missing cluster = %v, want ErrNotFound naming %s", op.name, err, name)
		}
	}
}

// TestDockerUnavailable points the client at a socket nobody serves.
func TestDockerUnavailable(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+t.TempDir()+"/no-docker.sock")
	start := time.Now()
	_, err := New(nil).Docker(context.Background())
	var du *DockerUnavailableError
	if !errors.As(err, &du) {
		t.Fatalf("Docker() error = %v, want DockerUnavailableError", err)
	}
	if took := time.Since(start); took > 2*pingTimeout {
		t.Errorf("took %s to notice, want at most the ping timeout %s", took, pingTimeout)
	}
	for _, want := range []string{"no-docker.sock", "fix:", "DOCKER_HOST"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestGetReadsOwnership creates node containers labelled exactly as k3d
// labels a cluster's nodes (k3d's own labels, plus the spec's runtime label
// lab asks for), once with lab's label and once without, and checks that Get
// tells them apart. k3d's node view keeps only labels that start with "k3d",
// so ownership must be read from the containers themselves.
func TestGetReadsOwnership(t *testing.T) {
	dc := dockertest.Client(t)
	img := dockertest.Busybox(t, dc)
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		labelled    []bool // per node: carries lab's label
		wantManaged bool
		wantForeign int
	}{
		{"every node lab's", []bool{true, true, true}, true, 0},
		{"no node lab's", []bool{false, false, false}, false, 3},
		{"one node not lab's", []bool{true, false, true}, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := unpullableSpec(t).Name
			roles := []string{"server", "agent", "loadbalancer"}
			for i, mine := range tc.labelled {
				labels := map[string]string{
					"app": "k3d", "k3d.cluster": name, "k3d.role": roles[i],
					"k3d.cluster.network": "k3d-" + name, "k3d.version": "v5.9.0",
				}
				if mine {
					labels[ManagedByLabel] = ManagedByValue
				}
				cname := "k3d-" + name + "-" + roles[i] + "-0"
				if _, err := dc.ContainerCreate(ctx, &container.Config{Image: img, Cmd: []string{"sleep", "60"}, Labels: labels}, nil, nil, nil, cname); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = dc.ContainerRemove(context.Background(), cname, container.RemoveOptions{Force: true}) })
			}
			info, err := New(nil).Get(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if info.Managed != tc.wantManaged || len(info.Foreign) != tc.wantForeign {
				t.Errorf("Managed = %v, Foreign = %v; want %v and %d foreign nodes", info.Managed, info.Foreign, tc.wantManaged, tc.wantForeign)
			}
			if len(info.Nodes) != 3 || info.Network != "k3d-"+name {
				t.Errorf("nodes %v on network %q, want 3 on k3d-%s", info.Nodes, info.Network, name)
			}
			for _, n := range info.Nodes {
				if n.Running || n.Status != "created" {
					t.Errorf("node %s: running %v, status %q; want a created, not running container", n.Name, n.Running, n.Status)
				}
			}
		})
	}
}

// TestCreateFailureKept keeps what a failed creation made when asked to:
// k3d's network and image volume stay, and Residue names them, until
// Delete removes them.
func TestCreateFailureKept(t *testing.T) {
	dc := dockertest.Client(t)
	spec := unpullableSpec(t)
	m := New(nil)
	ctx := context.Background()
	t.Cleanup(func() { _, _ = m.Delete(context.Background(), spec.Name, true) })
	if err := m.Create(ctx, spec, CreateOptions{Timeout: time.Minute, KeepOnFailure: true}); err == nil {
		t.Fatal("Create succeeded with an image that cannot be pulled")
	}
	r, err := m.Residue(ctx, spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Networks) != 1 || len(r.Volumes) == 0 {
		t.Errorf("kept %+v, want k3d's network and image volume", r)
	}
	if _, err := m.Delete(ctx, spec.Name, false); err != nil {
		t.Fatalf("Delete of the kept leftovers: %v", err)
	}
	dockertest.AssertNothingLeft(t, dc, spec.Name)
}
