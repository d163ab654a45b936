package ipam

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// DefaultPools returns the subnets a network gets when created without --subnet, in the order
// they are tried: Docker 20.10's defaults, so that cnet networks land where users (and their
// firewall rules) expect Docker's: 172.17.0.0/16 ... 172.31.0.0/16, then 192.168.0.0/16
// cut into /20s. The slice is new on every call; callers may modify it.
func DefaultPools() []netip.Prefix {
	pools := make([]netip.Prefix, 0, 15+16)
	for b := byte(17); b <= 31; b++ {
		pools = append(pools, netip.PrefixFrom(netip.AddrFrom4([4]byte{172, b, 0, 0}), 16))
	}
	for b := 0; b < 256; b += 16 {
		pools = append(pools, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(b), 0}), 20))
	}
	return pools
}

// PickDefault returns the first default pool that overlaps none of inUse: the subnets of
// existing networks plus the host's routes and addresses, which the caller collects. A pool
// that overlaps a host route would make the host's own traffic to that route go to the bridge.
//
// Zero-length prefixes (a default route, 0.0.0.0/0) are ignored: they overlap everything, and
// Docker skips them too, otherwise no host with a default route could get a network.
func PickDefault(inUse []netip.Prefix) (netip.Prefix, error) {
next:
	for _, pool := range DefaultPools() {
		for _, u := range inUse {
			if u.Bits() != 0 && Overlaps(pool, u) {
				continue next
			}
		}
		return pool, nil
	}
	return netip.Prefix{}, ErrNoDefaultPool
}

// Overlaps reports whether a and b share at least one address. Host bits are ignored, so a
// host address with its prefix length (172.17.0.1/16, as read from an interface) can be
// passed as it is. Prefixes of different families, or invalid ones, never overlap.
func Overlaps(a, b netip.Prefix) bool {
	return a.IsValid() && b.IsValid() && a.Masked().Overlaps(b.Masked())
}

// CheckOverlap refuses a subnet that shares addresses with an existing network's: two bridges
// claiming the same addresses would make routing on the host ambiguous.
func CheckOverlap(subnet netip.Prefix, existing []netip.Prefix) error {
	for _, e := range existing {
		if Overlaps(subnet, e) {
			return fmt.Errorf("%w: %s overlaps %s, which is already in use; choose another --subnet", ErrOverlap, subnet, e.Masked())
		}
	}
	return nil
}

// MACFromIP derives a container's MAC address from its IPv4 address as Docker does: 02:42
// (a locally administered unicast prefix) followed by the four address bytes, so that
// 172.17.0.2 gets 02:42:ac:11:00:02. Deriving it keeps MACs unique within a network without
// any state, and lets a user read the IP off a MAC in a packet capture. It returns nil for an
// address that is not IPv4; the caller then needs another source, e.g. a random MAC.
func MACFromIP(a netip.Addr) net.HardwareAddr {
	a = a.Unmap()
	if !a.Is4() {
		return nil
	}
	b := a.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
}

// ULAPrefix is the IPv6 pool networks created with --ipv6 and no IPv6 --subnet take their /64s
// from, unless the daemon is given one: a unique local /48 (RFC 4193: fd00::/8 and a 40-bit
// global ID) whose global ID is derived from seed (the engine's ID), so that it is stable
// across restarts, differs between hosts, and is never routed on the Internet.
func ULAPrefix(seed string) netip.Prefix {
	sum := sha256.Sum256([]byte("cnet ipv6 pool " + seed))
	var a [16]byte
	a[0] = 0xfd
	copy(a[1:6], sum[:5])
	return netip.PrefixFrom(netip.AddrFrom16(a), 48)
}

// PickDefault6 returns the first /64 of base that overlaps none of inUse (other networks'
// subnets, the host's IPv6 routes and addresses), as Docker's default address pools hand out
// subnets of size 64. base must be an IPv6 prefix of length 64 or less.
func PickDefault6(base netip.Prefix, inUse []netip.Prefix) (netip.Prefix, error) {
	if !base.IsValid() || !base.Addr().Is6() || base.Addr().Is4In6() || base.Bits() > 64 || base.Bits() < 8 {
		return netip.Prefix{}, fmt.Errorf("%w: default IPv6 pool %s: want an IPv6 prefix of length 8 to 64", ErrInvalidConfig, base)
	}
	base = base.Masked()
	b := base.Addr().As16()
	start := binary.BigEndian.Uint64(b[:8])
	// Every /64 of base, but no more than a million tries: inUse is a handful of prefixes, so
	// only a pool covered by one of them gets that far.
	count := min(uint64(1)<<(64-base.Bits()), 1<<20)
	for i := uint64(0); i < count; i++ {
		var a [16]byte
		binary.BigEndian.PutUint64(a[:8], start+i)
		p := netip.PrefixFrom(netip.AddrFrom16(a), 64)
		free := true
		for _, u := range inUse {
			if u.Bits() != 0 && Overlaps(p, u) {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("%w (every /64 of %s is in use; give the network an IPv6 --subnet)", ErrNoDefaultPool6, base)
}
