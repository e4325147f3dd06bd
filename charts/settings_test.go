package charts

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestJewelrySettings reads the settings the experiments depend on from the
// chart rendered for each profile, and follows a value override.
func TestJewelrySettings(t *testing.T) {
	t.Parallel()
	const mi = 1 << 20
	patroni := Patroni{TTL: 22 * time.Second, LoopWait: 2 * time.Second, RetryTimeout: 10 * time.Second, SynchronousMode: true}
	sentinel := Sentinel{DownAfter: 5 * time.Second, FailoverTimeout: 30 * time.Second, Quorum: 2}
	tests := []struct {
		name    string
		profile string
		values  map[string]any
		want    ShopSettings
	}{
		{"quick", "quick", nil, ShopSettings{
			Web:     Resources{CPURequestMilli: 15, CPULimitMilli: 500, MemoryRequestBytes: 128 * mi, MemoryLimitBytes: 256 * mi},
			Patroni: patroni, Sentinel: sentinel, NodeFailureToleration: 20 * time.Second,
		}},
		{"full", "full", nil, ShopSettings{
			Web:     Resources{CPURequestMilli: 100, CPULimitMilli: 1000, MemoryRequestBytes: 128 * mi, MemoryLimitBytes: 256 * mi},
			Patroni: patroni, Sentinel: sentinel, NodeFailureToleration: 20 * time.Second,
		}},
		{"overridden", "quick", map[string]any{
			"web":                          map[string]any{"resources": map[string]any{"limits": map[string]any{"memory": "1Gi", "cpu": "2"}}},
			"redis":                        map[string]any{"sentinel": map[string]any{"downAfterMilliseconds": 3000}},
			"nodeFailureTolerationSeconds": 45,
		}, ShopSettings{
			Web:     Resources{CPURequestMilli: 15, CPULimitMilli: 2000, MemoryRequestBytes: 128 * mi, MemoryLimitBytes: 1024 * mi},
			Patroni: patroni, Sentinel: Sentinel{DownAfter: 3 * time.Second, FailoverTimeout: 30 * time.Second, Quorum: 2}, NodeFailureToleration: 45 * time.Second,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rel, err := JewelryShop(tt.profile, "")
			if err != nil {
				t.Fatal(err)
			}
			got, err := JewelrySettings(t.Context(), rel.WithValues(tt.values))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("settings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDeployedSettings reads the settings from the manifest of the release
// as installed, whatever values it was installed with, and fails clearly
// for a release that is not there.
func TestDeployedSettings(t *testing.T) {
	t.Parallel()
	in, _ := memoryInstaller(t, nil, Options{})
	rel, err := JewelryShop("quick", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	rel = rel.WithValues(map[string]any{"nodeFailureTolerationSeconds": 2, "web": map[string]any{"resources": map[string]any{"limits": map[string]any{"memory": "300Mi"}}}})
	if _, err := in.Install(t.Context(), rel); err != nil {
		t.Fatal(err)
	}
	got, err := in.DeployedSettings(t.Context(), rel.Name, rel.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	want, err := JewelrySettings(t.Context(), rel)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("deployed settings differ from the rendered ones (-rendered +deployed):\n%s", diff)
	}
	if got.NodeFailureToleration != 2*time.Second || got.Web.MemoryLimitBytes != 300<<20 {
		t.Errorf("deployed settings %+v, want the installed values", got)
	}
	if _, err := in.DeployedSettings(t.Context(), "nothing", rel.Namespace); err == nil || !strings.Contains(err.Error(), "read release nothing") {
		t.Errorf("settings of a missing release: %v", err)
	}
}
