package realnode

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// The tier's addresses come from 198.18.0.0/15, the range RFC 2544 sets aside
// for benchmarking network devices: never routed on the internet, and far
// less likely than the 10/8 ranges to be a developer's VPN or office
// network. Each running tier takes one /20 of it, a slot:
//
//	<slot>.0/24          the test bridge: .1 the host, .10, .11, ... the nodes
//	<slot>+(1+i).0/24    the pods of node i
//
// Services keep the control plane's range (envtest's 10.0.0.0/24): their
// addresses exist only in the nodes' kube-proxy rules and never reach the
// host.
var (
	tierRange = netip.MustParsePrefix("198.18.0.0/15")
)

// slotBits is the size of a slot: /20.
const slotBits = 20

// maxSlots is how many slots the range holds.
const maxSlots = 1 << (slotBits - 15)

// maxNodes is how many nodes a slot has room for (one /24 of pods each).
const maxNodes = 14

// addressing is a slot's addresses.
type addressing struct {
	slot int
	// cluster is the whole slot; bridge the test bridge's /24; host the
	// host's address on it.
	cluster, bridge netip.Prefix
	host            netip.Addr
}

func newAddressing(slot int) addressing {
	base := tierRange.Addr().As4()
	n := binary.BigEndian.Uint32(base[:]) + uint32(slot)<<(32-slotBits)
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n)
	start := netip.AddrFrom4(b)
	return addressing{
		slot:    slot,
		cluster: netip.PrefixFrom(start, slotBits),
		bridge:  netip.PrefixFrom(start, 24),
		host:    add(start, 1),
	}
}

// nodeIP is node i's address on the bridge.
func (a addressing) nodeIP(i int) netip.Addr { return add(a.bridge.Addr(), uint32(10+i)) }

// podCIDR is node i's pod range.
func (a addressing) podCIDR(i int) netip.Prefix {
	return netip.PrefixFrom(add(a.cluster.Addr(), uint32(1+i)<<8), 24)
}

func add(a netip.Addr, n uint32) netip.Addr {
	b := a.As4()
	v := binary.BigEndian.Uint32(b[:]) + n
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// freeSlot returns the first slot whose range overlaps none of the
// prefixes in use on the host (its addresses and routes, other tiers'
// bridges among them).
func freeSlot(inUse []netip.Prefix) (int, error) {
	for s := range maxSlots {
		c := newAddressing(s).cluster
		taken := false
		for _, p := range inUse {
			if p.Overlaps(c) {
				taken = true
				break
			}
		}
		if !taken {
			return s, nil
		}
	}
	return 0, fmt.Errorf("no free /%d in %s: every one overlaps an address or route of this machine", slotBits, tierRange)
}
