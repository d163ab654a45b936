// Package macvlan is the macvlan driver: containers get their own MAC address and IP address
// directly on the segment of a host interface (the parent), with no bridge and no NAT between
// them and the rest of that segment, as Docker's macvlan driver does.
//
// A network is a parent interface; an endpoint is a macvlan link on it. The link is created
// straight inside the sandbox namespace, named, with the endpoint's MAC, in one netlink
// request (the kernel looks the parent up in the daemon's namespace), then addressed and
// brought up there. Because it never exists in the daemon's namespace, a crash cannot leave
// a stray macvlan on the host: one in a sandbox goes away with the sandbox's namespace, and
// Restore has nothing to sweep.
//
// The parent (option parent=) is one of:
//   - an existing interface (parent=eth0), used as it is and never changed or deleted;
//   - IFACE.VLAN for an 802.1q sub-interface (parent=eth0.100): used as it is if it exists,
//     else cnet creates it on IFACE, notes that in the network's driver state, and deletes it
//     with the network (and recreates it at restore if it went missing);
//   - nothing: an internal network. Docker hangs such networks on a dummy link; cnet uses a
//     Linux bridge named mv-<id12> instead, because dummy links are a kernel module that not
//     every kernel has, while bridges are everywhere cnet runs. The bridge is kept up (a
//     macvlan's carrier follows its parent's, and an empty bridge that is up has carrier) and
//     never gets a port or an address, so containers on it reach each other and nothing else.
//     The network is marked internal, so its containers get no default route.
//
// Modes (-o macvlan_mode=): bridge (the default: containers on one parent talk to each other
// inside the kernel), private (they cannot, even through an outside switch), vepa (their
// traffic to each other goes out to the switch, which must send it back), passthru (one
// container takes over the parent).
//
// The host cannot talk to its own macvlan containers through the parent, nor they to it: the
// kernel does not pass frames between a parent's own stack and its macvlan children. That is
// a property of macvlan, not of cnet; a host that needs to reach its containers gives itself
// a macvlan interface on the same parent.
//
// Two macvlan networks may not share a parent (their containers would share one segment with
// two address plans); different VLANs of one interface are different parents.
package macvlan

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/nldump"
)

// Options understood by the macvlan driver (Docker's names).
const (
	OptParent = "parent"
	OptMode   = "macvlan_mode"
)

// stateVLANCreated is the driver-state key that says cnet creates (and so deletes) the
// parent's VLAN sub-interface.
const stateVLANCreated = "vlan_created"

// internalPrefix names the bridge that stands in for the parent of an internal network.
const internalPrefix = "mv-"

// maxIfName is the longest interface name Linux accepts (IFNAMSIZ - 1).
const maxIfName = 15

// modes maps -o macvlan_mode values to the kernel's modes.
var modes = map[string]netlink.MacvlanMode{
	"bridge":   netlink.MACVLAN_MODE_BRIDGE,
	"private":  netlink.MACVLAN_MODE_PRIVATE,
	"vepa":     netlink.MACVLAN_MODE_VEPA,
	"passthru": netlink.MACVLAN_MODE_PASSTHRU,
}

// Driver is the macvlan driver. Like the bridge driver it keeps no state of its own:
// everything is in the network and endpoint it is handed.
type Driver struct {
	// nl is the netlink handle of the daemon's namespace; tests bind it to a throwaway one.
	nl *netlink.Handle
}

// New returns the macvlan driver working in the calling process's network namespace.
func New() *Driver { return &Driver{nl: &netlink.Handle{}} }

// Type implements driver.Driver.
func (*Driver) Type() string { return "macvlan" }

// Capabilities implements driver.Driver: containers sit on the parent's segment, its router
// their gateway; nothing is published or NATed by the host (the segment reaches them).
func (*Driver) Capabilities() driver.Capabilities {
	return driver.Capabilities{Scope: driver.ScopeLocal, Gateway: true, DNS: true, IPv6: true}
}

// mode returns the kernel mode of opts; ValidateOptions has checked it.
func mode(opts map[string]string) (netlink.MacvlanMode, error) {
	v, ok := opts[OptMode]
	if !ok || v == "" {
		return netlink.MACVLAN_MODE_BRIDGE, nil
	}
	m, ok := modes[v]
	if !ok {
		return 0, errdefs.Invalid("invalid %s %q: want bridge (the default), private, vepa or passthru", OptMode, v)
	}
	return m, nil
}

// ValidateOptions implements driver.Driver. It checks what can be checked without looking
// at the host; PrepareNetwork checks the parent against it.
func (*Driver) ValidateOptions(opts map[string]string) error {
	if _, err := mode(opts); err != nil {
		return err
	}
	if p, ok := opts[OptParent]; ok {
		if err := checkIfName(p); err != nil {
			return err
		}
	}
	return nil
}

// checkIfName refuses parent names the kernel would refuse, and loopback, which carries no
// Ethernet segment.
func checkIfName(name string) error {
	switch {
	case name == "":
		return errdefs.Invalid("invalid %s: empty; give an interface such as eth0 or eth0.100, or leave the option out for an internal network", OptParent)
	case len(name) > maxIfName:
		return errdefs.Invalid("invalid %s %q: an interface name is at most %d characters", OptParent, name, maxIfName)
	case strings.ContainsAny(name, "/: \t\n") || name == "." || name == "..":
		return errdefs.Invalid("invalid %s %q: not a valid interface name", OptParent, name)
	case name == "lo":
		return errdefs.Invalid("invalid %s lo: the loopback interface cannot be a macvlan parent", OptParent)
	}
	return nil
}

// parseVLAN splits a sub-interface name IFACE.VLAN into its interface and VLAN id (1-4094,
// 0 and 4095 being reserved by 802.1Q). The split is at the last dot, so an interface whose
// own name has dots can still carry VLANs.
func parseVLAN(name string) (base string, vid int, err error) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return "", 0, errdefs.Invalid("invalid %s %q: a VLAN sub-interface is named IFACE.VLAN, such as eth0.100", OptParent, name)
	}
	base, id := name[:i], name[i+1:]
	if base == "" {
		return "", 0, errdefs.Invalid("invalid %s %q: no interface before the VLAN id; want IFACE.VLAN, such as eth0.100", OptParent, name)
	}
	vid, err = strconv.Atoi(id)
	if err != nil || vid < 1 || vid > 4094 {
		return "", 0, errdefs.Invalid("invalid %s %q: the VLAN id %q must be a number from 1 to 4094", OptParent, name, id)
	}
	return base, vid, nil
}

// parentName is the interface the network's macvlans hang on.
func parentName(n driver.Network) string {
	if p := n.Options[OptParent]; p != "" {
		return p
	}
	return internalPrefix + n.ID[:12]
}

// ownsVLAN reports whether cnet creates and deletes n's parent.
func ownsVLAN(n driver.Network) bool { return n.State[stateVLANCreated] == "true" }

// PrepareNetwork implements driver.Preparer: it resolves the parent on the host. An existing
// interface is used as is; a missing IFACE.VLAN on an existing IFACE is noted as cnet's to
// create; anything else is refused naming the interface. Without a parent the network is
// internal.
func (d *Driver) PrepareNetwork(n *driver.Network) error {
	p := n.Options[OptParent]
	if p == "" {
		n.Internal = true
		return nil
	}
	if _, err := nldump.LinkByName(d.nl, p); err == nil {
		return nil
	} else if !isNotFound(err) {
		return fmt.Errorf("looking up parent interface %s: %w", p, err)
	}
	if !strings.Contains(p, ".") {
		return errdefs.NotFound("parent interface %s of macvlan network %s not found on the host", p, n.Name)
	}
	base, _, err := parseVLAN(p)
	if err != nil {
		return err
	}
	if _, err := nldump.LinkByName(d.nl, base); err != nil {
		if isNotFound(err) {
			return errdefs.NotFound("parent interface %s of macvlan network %s not found on the host: neither %s nor %s, on which to create it, exists", p, n.Name, p, base)
		}
		return fmt.Errorf("looking up interface %s: %w", base, err)
	}
	if n.State == nil {
		n.State = map[string]string{}
	}
	n.State[stateVLANCreated] = "true"
	return nil
}

// CheckConflicts implements driver.ConflictChecker: one parent, one macvlan network.
func (*Driver) CheckConflicts(n driver.Network, others []driver.Network) error {
	p := n.Options[OptParent]
	if p == "" {
		return nil // its own internal bridge
	}
	for _, o := range others {
		if o.Options[OptParent] == p {
			base := p
			if b, _, err := parseVLAN(p); err == nil {
				base = b
			}
			return errdefs.Conflict("macvlan network %s is already using parent interface %s: two macvlan networks cannot share a parent; use another interface or another VLAN (parent=%s.VLAN)",
				o.Name, p, base)
		}
	}
	return nil
}

// DefaultSubnet implements driver.SubnetChooser. A macvlan network puts containers on the
// parent's segment, so without --subnet the only sensible subnet is the parent's own: its
// first IPv4 address's. The gateway is the host's default-route gateway through the parent
// if it lies in that subnet (the segment's router), else the subnet's first address; the
// parent's own addresses are reserved so that no container is given the host's address.
// An internal network has no segment, so it takes a default pool like a bridge.
func (d *Driver) DefaultSubnet(n driver.Network) (driver.Subnet, map[string]netip.Addr, error) {
	p := n.Options[OptParent]
	if p == "" {
		return driver.Subnet{}, nil, nil
	}
	noAddr := errdefs.Invalid("macvlan network %s needs --subnet: its parent %s has no IPv4 address to take the subnet from", n.Name, p)
	if ownsVLAN(n) {
		return driver.Subnet{}, nil, noAddr // cnet has yet to create it
	}
	link, err := nldump.LinkByName(d.nl, p)
	if err != nil {
		return driver.Subnet{}, nil, fmt.Errorf("looking up parent interface %s: %w", p, err)
	}
	addrs, err := nldump.AddrList(d.nl, link, netlink.FAMILY_V4)
	if err != nil {
		return driver.Subnet{}, nil, fmt.Errorf("listing the addresses of %s: %w", p, err)
	}
	var own []netip.Prefix
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		if pfx, ok := toPrefix(a.IPNet.IP, a.IPNet.Mask); ok {
			own = append(own, pfx)
		}
	}
	if len(own) == 0 {
		return driver.Subnet{}, nil, noAddr
	}
	var gws []netip.Addr
	routes, err := nldump.RouteList(d.nl, link, netlink.FAMILY_V4)
	if err != nil {
		return driver.Subnet{}, nil, fmt.Errorf("listing the routes through %s: %w", p, err)
	}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue // not a default route
			}
		}
		if gw, ok := netip.AddrFromSlice(r.Gw.To4()); ok {
			gws = append(gws, gw)
		}
	}
	return chooseSubnet(p, n.Name, own, gws)
}

// chooseSubnet is DefaultSubnet's decision on what it found: own are the parent's addresses
// (first is primary), gws the gateways of its default routes.
func chooseSubnet(parent, network string, own []netip.Prefix, gws []netip.Addr) (driver.Subnet, map[string]netip.Addr, error) {
	subnet := own[0].Masked()
	if subnet.Bits() > 30 {
		return driver.Subnet{}, nil, errdefs.Invalid("macvlan network %s needs --subnet: the subnet %s of its parent %s is too small to hold containers", network, subnet, parent)
	}
	s := driver.Subnet{Prefix: subnet}
	for _, gw := range gws {
		if subnet.Contains(gw) {
			s.Gateway = gw
			break
		}
	}
	if !s.Gateway.IsValid() {
		s.Gateway = subnet.Addr().Next()
	}
	reserved := map[string]netip.Addr{}
	for _, a := range own {
		ip := a.Addr()
		if !subnet.Contains(ip) || ip == s.Gateway || ip == subnet.Addr() || ip == broadcast(subnet) {
			continue
		}
		name := parent
		if len(reserved) > 0 {
			name = fmt.Sprintf("%s-%d", parent, len(reserved)+1)
		}
		reserved[name] = ip
	}
	if len(reserved) == 0 {
		reserved = nil
	}
	return s, reserved, nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

// toPrefix converts an IPv4 address with its mask to a prefix that keeps the address.
func toPrefix(ip net.IP, mask net.IPMask) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(ip.To4())
	if !ok || mask == nil {
		return netip.Prefix{}, false
	}
	ones, bits := mask.Size()
	if bits != 32 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}

// broadcast is the last address of an IPv4 prefix.
func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	return netip.AddrFrom4(b)
}
