package lab

import (
	"context"
	"testing"

	"github.com/jewelry-shop/lab/internal/controlplane"
)

func TestMain(m *testing.M) { controlplane.Main(m) }

// simulatedNodes stops and starts kwok nodes of the test control plane, as
// *cluster.Manager does with k3d containers.
type simulatedNodes struct{ env *controlplane.Env }

func (s simulatedNodes) StopNode(ctx context.Context, _, node string) error {
	return s.env.StopNode(ctx, node)
}

func (s simulatedNodes) StartNode(ctx context.Context, _, node string) error {
	return s.env.StartNode(ctx, node)
}
