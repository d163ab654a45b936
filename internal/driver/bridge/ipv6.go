package bridge

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"

	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/sandbox"
)

// IPv6 on a bridge network: the gateway on the bridge and the container's address on its end
// of the pair, both without duplicate address detection (see sandbox.Addr), and forwarding
// on, as Docker does when a network has IPv6.

// HasIPv6 reports whether n has an IPv6 subnet (the overlay driver asks it of its networks too).
func HasIPv6(n driver.Network) bool {
	for _, s := range n.Subnets {
		if s.Prefix.Addr().Is6() {
			return true
		}
	}
	return false
}

// enableIPv6Host turns on IPv6 on bridge (a host whose default is disable_ipv6=1 would leave
// it without) and IPv6 forwarding, which the host's containers need to reach past it; it
// writes the current thread's namespace's sysctls (the daemon's). accept_ra goes to 0 on the
// bridge: it is a router for its containers, not a host learning routes from them.
func enableIPv6Host(bridge string) error {
	if err := EnableIPv6(bridge); err != nil {
		return err
	}
	return writeSysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")
}

// EnableIPv6 turns IPv6 on for the host's interface ifName and keeps it from accepting router
// advertisements (a host whose default is disable_ipv6=1 would leave it without IPv6, and so
// without IPv6 neighbour entries, which the overlay driver's VXLAN device needs too).
func EnableIPv6(ifName string) error {
	if err := writeSysctl("/proc/sys/net/ipv6/conf/"+ifName+"/disable_ipv6", "0"); err != nil {
		return err
	}
	return writeSysctl("/proc/sys/net/ipv6/conf/"+ifName+"/accept_ra", "0")
}

func writeSysctl(path, val string) error {
	if err := os.WriteFile(path, []byte(val+"\n"), 0o644); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("setting %s: the kernel has no IPv6 (is it disabled on its command line?): %w", path, err)
		}
		return fmt.Errorf("setting %s: %w", path, err)
	}
	return nil
}

// gatewayAddr is the netlink address of a subnet's gateway: with the subnet's length, and
// without DAD for IPv6 (see sandbox.Addr).
func gatewayAddr(s driver.Subnet) *netlink.Addr {
	return sandbox.Addr(netip.PrefixFrom(s.Gateway, s.Prefix.Bits()))
}
