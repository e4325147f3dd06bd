package lab

import (
	"testing"

	"github.com/jewelry-shop/lab/internal/controlplane"
)

func TestMain(m *testing.M) { controlplane.Main(m) }
