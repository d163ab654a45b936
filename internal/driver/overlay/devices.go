package overlay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/driver/bridge"
	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/nldump"
)

// vxlanLink is the VXLAN device network n wants on a host whose VTEP is vtep (see the package
// documentation for why each attribute), enslaved to the bridge of index master. MTU 0 leaves
// the kernel's default (a network recorded without the option).
func vxlanLink(n driver.Network, vtep netip.Addr, mtu, master int) *netlink.Vxlan {
	la := netlink.NewLinkAttrs()
	la.Name = VXLANName(n)
	la.MTU = mtu
	la.MasterIndex = master
	return &netlink.Vxlan{
		LinkAttrs: la,
		VxlanId:   int(n.SegmentID),
		SrcAddr:   vtep.AsSlice(),
		Port:      VXLANPort,
		Learning:  false,
		Proxy:     true,
		L2miss:    false,
		L3miss:    false,
	}
}

// vxlanMismatch says which attribute of an existing VXLAN device differs from want ("" when
// none does). The MTU, master and up state are not in it: those can be changed in place.
func vxlanMismatch(got, want *netlink.Vxlan) string {
	switch {
	case got.VxlanId != want.VxlanId:
		return fmt.Sprintf("VNI %d, want %d", got.VxlanId, want.VxlanId)
	case got.Port != want.Port:
		return fmt.Sprintf("UDP port %d, want %d", got.Port, want.Port)
	case !got.SrcAddr.Equal(want.SrcAddr):
		return fmt.Sprintf("local address %v, want %v", got.SrcAddr, want.SrcAddr)
	case got.Learning:
		return "learning on"
	case !got.Proxy:
		return "ARP proxy off"
	case got.L2miss || got.L3miss:
		return "L2/L3 miss notifications on"
	case len(got.Group) > 0 && !got.Group.IsUnspecified():
		return fmt.Sprintf("a default destination %v", got.Group)
	}
	return ""
}

// ensureDevices makes the network's bridge and VXLAN port exist, enslaved and up, whatever was
// deleted by hand since; it is SyncPeers's first step.
func (d *Driver) ensureDevices(n driver.Network) error {
	bn := bridgeNetwork(n)
	br, err := nldump.LinkByName(nil, BridgeName(n))
	switch {
	case isNotFound(err):
		// The bridge went away, and with it every local endpoint; recreate it so that the
		// controller's recovery can plug them again.
		if err := d.bridge.CreateNetwork(bn); err != nil {
			return fmt.Errorf("recreating bridge %s of overlay network %s: %w", BridgeName(n), n.Name, err)
		}
	case err != nil:
		return fmt.Errorf("looking up bridge %s of overlay network %s: %w", BridgeName(n), n.Name, err)
	case br.Attrs().Flags&net.FlagUp == 0:
		if err := netlink.LinkSetUp(br); err != nil {
			return fmt.Errorf("bringing bridge %s of overlay network %s up: %w", BridgeName(n), n.Name, err)
		}
	}
	return d.ensureVXLAN(n)
}

// ensureVXLAN creates the VXLAN port of n if missing, recreates it if an attribute that cannot
// change in place is wrong, and makes sure it has its MTU, is a port of the bridge and is up.
func (d *Driver) ensureVXLAN(n driver.Network) error {
	name := VXLANName(n)
	m, err := mtu(n.Options)
	if err != nil {
		return err
	}
	br, err := nldump.LinkByName(nil, BridgeName(n))
	if err != nil {
		return fmt.Errorf("looking up bridge %s of overlay network %s: %w", BridgeName(n), n.Name, err)
	}
	want := vxlanLink(n, d.cfg.VTEP, m, br.Attrs().Index)
	link, err := nldump.LinkByName(nil, name)
	switch {
	case isNotFound(err):
		link = nil
	case err != nil:
		return fmt.Errorf("looking up VXLAN device %s: %w", name, err)
	default:
		got, ok := link.(*netlink.Vxlan)
		if !ok {
			return errdefs.Conflict("interface %s exists on the host and is a %s, not the VXLAN device of overlay network %s: remove it", name, link.Type(), n.Name)
		}
		if why := vxlanMismatch(got, want); why != "" {
			// VNI, port, address and learning cannot all change in place; the FDB goes with
			// the device and the caller's SyncPeers (or the controller's next one) refills it.
			if err := netlink.LinkDel(link); err != nil {
				return fmt.Errorf("replacing VXLAN device %s (it has %s): deleting it: %w", name, why, err)
			}
			link = nil
		}
	}
	if link == nil {
		if err := netlink.LinkAdd(want); err != nil {
			if errors.Is(err, unix.EEXIST) {
				return errdefs.Conflict("creating VXLAN device %s: another VXLAN device on this host already uses VNI %d on UDP port %d (%v): remove it", name, n.SegmentID, VXLANPort, err)
			}
			return fmt.Errorf("creating VXLAN device %s (VNI %d, local %s, port %d): %w", name, n.SegmentID, d.cfg.VTEP, VXLANPort, err)
		}
		if link, err = nldump.LinkByName(nil, name); err != nil {
			return fmt.Errorf("looking up new VXLAN device %s: %w", name, err)
		}
	}
	a := link.Attrs()
	if m != 0 && a.MTU != m {
		if err := netlink.LinkSetMTU(link, m); err != nil {
			return fmt.Errorf("setting the MTU of VXLAN device %s to %d: %w", name, m, err)
		}
	}
	if a.MasterIndex != br.Attrs().Index {
		if err := netlink.LinkSetMasterByIndex(link, br.Attrs().Index); err != nil {
			return fmt.Errorf("making VXLAN device %s a port of bridge %s: %w", name, BridgeName(n), err)
		}
	}
	if bridge.HasIPv6(n) {
		// The device holds the remote endpoints' IPv6 neighbour entries, which the kernel
		// refuses on a device without IPv6.
		if err := bridge.EnableIPv6(name); err != nil {
			return fmt.Errorf("VXLAN device %s of an IPv6 network: %w", name, err)
		}
	}
	if a.Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(link); err != nil {
			return fmt.Errorf("bringing VXLAN device %s up: %w", name, err)
		}
	}
	return nil
}

// vxlanIndex is the index of n's VXLAN device; a missing one is reported as not found.
func vxlanIndex(n driver.Network) (int, error) {
	link, err := nldump.LinkByName(nil, VXLANName(n))
	if err != nil {
		if isNotFound(err) {
			return 0, errdefs.NotFound("VXLAN device %s of overlay network %s does not exist on this host", VXLANName(n), n.Name)
		}
		return 0, fmt.Errorf("looking up VXLAN device %s: %w", VXLANName(n), err)
	}
	return link.Attrs().Index, nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return err != nil && errors.As(err, &nf)
}

// deleteLink deletes a link by name; a missing one is not an error.
func deleteLink(name string) error {
	link, err := nldump.LinkByName(nil, name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("looking up %s: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	return nil
}
