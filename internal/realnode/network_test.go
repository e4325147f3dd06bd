package realnode

import (
	"net/netip"
	"testing"
)

func TestAddressing(t *testing.T) {
	tests := []struct {
		slot                                int
		cluster, bridge, host, node1, pods1 string
	}{
		{0, "198.18.0.0/20", "198.18.0.0/24", "198.18.0.1", "198.18.0.11", "198.18.2.0/24"},
		{1, "198.18.16.0/20", "198.18.16.0/24", "198.18.16.1", "198.18.16.11", "198.18.18.0/24"},
		{31, "198.19.240.0/20", "198.19.240.0/24", "198.19.240.1", "198.19.240.11", "198.19.242.0/24"},
	}
	for _, tt := range tests {
		a := newAddressing(tt.slot)
		got := []string{a.cluster.String(), a.bridge.String(), a.host.String(), a.nodeIP(1).String(), a.podCIDR(1).String()}
		want := []string{tt.cluster, tt.bridge, tt.host, tt.node1, tt.pods1}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("slot %d: got %v, want %v", tt.slot, got, want)
				break
			}
		}
		if !tierRange.Contains(a.podCIDR(maxNodes-1).Addr()) || !a.cluster.Contains(a.podCIDR(maxNodes-1).Addr()) {
			t.Errorf("slot %d: the last node's pods %s are outside the slot %s", tt.slot, a.podCIDR(maxNodes-1), a.cluster)
		}
	}
}

func TestFreeSlot(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		name    string
		inUse   []netip.Prefix
		want    int
		wantErr bool
	}{
		{"nothing in use", nil, 0, false},
		{"the host's own networks", []netip.Prefix{p("192.0.2.0/24"), p("172.17.0.0/16"), p("127.0.0.0/8")}, 0, false},
		{"another tier's bridge", []netip.Prefix{p("198.18.0.0/24")}, 1, false},
		{"a route into slot 1", []netip.Prefix{p("198.18.0.0/24"), p("198.18.20.7/32")}, 2, false},
		{"a VPN over the whole range", []netip.Prefix{p("198.16.0.0/12")}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := freeSlot(tt.inUse)
			if (err != nil) != tt.wantErr || (err == nil && got != tt.want) {
				t.Errorf("freeSlot = %d, %v; want %d, error %t", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
