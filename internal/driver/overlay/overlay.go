// Package overlay is the data plane of cnet's overlay driver: one layer-2 segment per network
// spanning every host of a cluster, carried between hosts in VXLAN (RFC 7348) over UDP 4789.
// The control plane (the cluster store, cluster-wide IPAM, which endpoints live where) is the
// controller's; it tells this driver about remote endpoints through driver.PeerSyncer.
//
// # Devices
//
// On each host a network is a Linux bridge ov-<id12> with a VXLAN device vx-<id12> as one of
// its ports, and a veth pair per local endpoint as the others. The bridge side is not written
// again here: the driver owns a private bridge.Driver and hands it a translated network (bridge
// name ov-<id12>, the network's MTU, NAT and inter-container traffic on), so creating,
// restoring, joining, leaving and retiring endpoints are exactly the bridge driver's, crash
// rules included. This driver adds the VXLAN port and what goes with it.
//
// The VXLAN device is built so that nothing crosses hosts but unicast to known endpoints:
//   - VNI = the network's SegmentID (allocated cluster-wide), UDP destination port 4789 set
//     explicitly (the kernel's default is 8472, which no other implementation speaks), local
//     address = this host's VTEP (--cluster-advertise), so peers see a stable source.
//   - Learning off: a host's FDB says where a MAC lives because the cluster store says so, not
//     because a packet claimed it; learned entries are spoofable and, mixed with programmed
//     ones, made exclusive adds fail (moby#53663).
//   - Proxy on, no L2miss/L3miss: the VXLAN device answers ARP requests for remote endpoints
//     from its own neighbour table, so ARP never leaves the host.
//   - No all-zero FDB entry: without a default destination, broadcast, unknown unicast and
//     multicast (BUM) frames are dropped at the VXLAN port instead of being flooded to every
//     VTEP. Every remote endpoint is a static FDB entry (MAC → VTEP) plus a permanent
//     neighbour entry (IP → MAC), written with replace semantics (NeighSet) and reconciled
//     as a whole on each SyncPeers (peers.go).
//   - MTU = the underlay's MTU − 50 (outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14),
//     on the bridge, the VXLAN device and every veth, so that encapsulated frames are never
//     fragmented on the underlay.
//
// # The gateway: anycast, on every host
//
// The bridge on every host holds the subnet's gateway address (the same address, a different
// MAC on each host), and the network is exposed to cnet's firewall as if it were a bridge
// network (Exposure: Interface = the bridge), so containers reach the outside world through
// NAT on their own host and ports published on a host reach that host's containers, with the
// rules every bridge network already has. ARP for the gateway is answered by the local bridge:
// the VXLAN device's neighbour table holds only remote endpoints, so the request never
// crosses. Docker instead gives each overlay container a second interface on a local bridge
// (docker_gwbridge) that carries the default route; cnet's choice keeps one interface per
// network in the container and needs no second subnet per host, at a price: the host itself
// cannot reach containers on other hosts (their replies to the gateway address go to their
// own host's bridge), which is also true of Docker's design.
//
// # Security: the VXLAN allowlist
//
// VXLAN has no authentication: whoever can send a UDP datagram to port 4789 can inject frames
// into any network whose VNI it guesses. A table of the driver's own (allowlist.go) drops, at
// the input hook, every UDP datagram to 4789 whose (source address, VNI) is not a member of a
// set that SyncPeers keeps equal to the VTEPs of each network's peers. It does not stop a
// sender that can spoof a member's source address; the underlay must filter that (reverse
// path filtering, or encryption, which this kernel cannot offer).
//
// # Namespaces
//
// Like the bridge driver, every call acts on the network namespace of the calling thread
// (the daemon's host namespace), netlink and nftables alike.
package overlay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/driver/bridge"
	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/nldump"
)

// OptMTU is the one option overlay networks take (Docker's name).
const OptMTU = "com.docker.network.driver.mtu"

// VXLANPort is the IANA port of VXLAN, set explicitly on every device.
const VXLANPort = 4789

// vxlanOverhead is what VXLAN over IPv4 adds to a frame: outer IPv4 (20), UDP (8), VXLAN
// (8) and the inner Ethernet header (14).
const vxlanOverhead = 50

// Driver is the overlay driver. Its only state is its configuration, the private bridge
// driver it delegates the bridge side to, and a lock over the allowlist's read-modify-write.
type Driver struct {
	cfg    Config
	bridge *bridge.Driver
	mu     sync.Mutex // serialises allowlist updates (a leaf lock)
}

// Config is the overlay driver's part of the daemon's configuration.
type Config struct {
	// VTEP is this host's address on the underlay (--cluster-advertise), the source of its
	// VXLAN packets and where peers send theirs. The zero Addr when the daemon runs without
	// a cluster store: overlay networks are then refused.
	VTEP netip.Addr
}

// New returns the overlay driver.
func New(cfg Config) *Driver {
	cfg.VTEP = cfg.VTEP.Unmap()
	return &Driver{cfg: cfg, bridge: bridge.New(bridge.Config{})}
}

// Type implements driver.Driver.
func (*Driver) Type() string { return "overlay" }

// Capabilities implements driver.Driver: a cluster-wide segment whose every host holds the
// gateway (see the package documentation), so endpoints get NAT out, names and published
// ports as on a bridge network.
func (*Driver) Capabilities() driver.Capabilities {
	return driver.Capabilities{Scope: driver.ScopeGlobal, Gateway: true, DNS: true, PortPublishing: true}
}

// ValidateOptions implements driver.Driver: only the MTU is accepted. Unlike bridge, an
// unknown option is refused: the network exists on every host, and an option one host's
// version ignores would mean different things on different hosts.
func (*Driver) ValidateOptions(opts map[string]string) error {
	for k := range opts {
		if k != OptMTU {
			return errdefs.Invalid("overlay networks take no option %s: the only option is %s", k, OptMTU)
		}
	}
	_, err := mtu(opts)
	return err
}

// mtu is the MTU option's value; 0 when it is absent (PrepareNetwork fills it in).
func mtu(opts map[string]string) (int, error) {
	v, ok := opts[OptMTU]
	if !ok {
		return 0, nil
	}
	m, err := strconv.Atoi(v)
	if err != nil || m < 68 || m > 65535 {
		return 0, errdefs.Invalid("invalid %s %q: want a number from 68 to 65535", OptMTU, v)
	}
	return m, nil
}

// PrepareNetwork implements driver.Preparer: it refuses overlay networks on a daemon without
// a cluster store, and writes the MTU derived from the underlay into the options when none
// was given, so that every later call (and `network inspect`) sees the one value. It only
// reads the host.
func (d *Driver) PrepareNetwork(n *driver.Network) error {
	if err := d.needVTEP(); err != nil {
		return err
	}
	if _, ok := n.Options[OptMTU]; ok {
		_, err := mtu(n.Options)
		return err
	}
	under, err := underlayMTU(d.cfg.VTEP)
	if err != nil {
		return err
	}
	m, err := overlayMTU(under, d.cfg.VTEP)
	if err != nil {
		return err
	}
	if n.Options == nil {
		n.Options = map[string]string{}
	}
	n.Options[OptMTU] = strconv.Itoa(m)
	return nil
}

func (d *Driver) needVTEP() error {
	if !d.cfg.VTEP.IsValid() || d.cfg.VTEP.IsUnspecified() {
		return errdefs.Invalid("overlay networks need a cluster store: start the daemon with --cluster-store etcd://HOST:PORT and --cluster-advertise IP")
	}
	if !d.cfg.VTEP.Is4() {
		return errdefs.Invalid("the overlay driver carries VXLAN over IPv4 only: --cluster-advertise %s must be an IPv4 address of this host", d.cfg.VTEP)
	}
	return nil
}

// underlayMTU is the MTU of the interface that holds vtep.
func underlayMTU(vtep netip.Addr) (int, error) {
	addrs, err := nldump.AddrList(nil, nil, netlink.FAMILY_V4)
	if err != nil {
		return 0, fmt.Errorf("finding the interface of the cluster advertise address %s: listing addresses: %w", vtep, err)
	}
	idx, ok := linkOf(addrs, vtep)
	if !ok {
		return 0, errdefs.Invalid("the cluster advertise address %s is on no interface of this host, so the underlay MTU is unknown: fix --cluster-advertise, or give the network -o %s=N", vtep, OptMTU)
	}
	link, err := netlink.LinkByIndex(idx)
	if err != nil {
		return 0, fmt.Errorf("looking up the interface of the cluster advertise address %s: %w", vtep, err)
	}
	return link.Attrs().MTU, nil
}

// linkOf is the index of the link that holds addr among addrs.
func linkOf(addrs []netlink.Addr, addr netip.Addr) (int, bool) {
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
			return a.LinkIndex, true
		}
	}
	return 0, false
}

// overlayMTU is the MTU of an overlay network on an underlay of MTU under.
func overlayMTU(under int, vtep netip.Addr) (int, error) {
	m := under - vxlanOverhead
	if m < 68 {
		return 0, errdefs.Invalid("the interface of %s has MTU %d, too small to carry VXLAN (%d bytes of headers): raise its MTU", vtep, under, vxlanOverhead)
	}
	return m, nil
}

// id12 is the short ID used in interface names (15 characters at most with a 3-character
// prefix).
func id12(n driver.Network) string {
	if len(n.ID) < 12 {
		return n.ID
	}
	return n.ID[:12]
}

// BridgeName is the Linux bridge of network n on every host.
func BridgeName(n driver.Network) string { return "ov-" + id12(n) }

// VXLANName is the VXLAN device of network n on every host.
func VXLANName(n driver.Network) string { return "vx-" + id12(n) }

// bridgeNetwork translates n into the network the private bridge driver is handed: the same
// ID, subnets and internal flag, with the overlay's bridge name and MTU, NAT and
// inter-container traffic on.
func bridgeNetwork(n driver.Network) driver.Network {
	b := n
	b.Options = map[string]string{
		bridge.OptBridgeName: BridgeName(n),
		bridge.OptMasquerade: "true",
		bridge.OptICC:        "true",
	}
	if v, ok := n.Options[OptMTU]; ok {
		b.Options[bridge.OptMTU] = v
	}
	return b
}

// CreateNetwork implements driver.Driver: the bridge (by the bridge driver), then the VXLAN
// port. On error nothing is left.
func (d *Driver) CreateNetwork(n driver.Network) error {
	if err := d.needVTEP(); err != nil {
		return err
	}
	if n.SegmentID == 0 || n.SegmentID >= 1<<24 {
		return fmt.Errorf("creating overlay network %s: VNI %d is not a valid VXLAN network identifier (1 to 16777215); the controller must allocate one in the cluster store", n.Name, n.SegmentID)
	}
	if _, err := mtu(n.Options); err != nil {
		return err
	}
	if _, err := nldump.LinkByName(nil, VXLANName(n)); err == nil {
		return errdefs.Conflict("cannot create network %s: an interface named %s already exists on the host", n.Name, VXLANName(n))
	}
	if err := d.bridge.CreateNetwork(bridgeNetwork(n)); err != nil {
		return err
	}
	if err := d.ensureVXLAN(n); err != nil {
		return errors.Join(err, d.deleteDevices(n))
	}
	return nil
}

// DeleteNetwork implements driver.Driver: the VXLAN port, the bridge and the network's
// allowlist elements. What is already gone is not an error.
func (d *Driver) DeleteNetwork(n driver.Network) error {
	err := d.deleteDevices(n)
	if d.allowlistOn() && n.SegmentID != 0 {
		err = errors.Join(err, d.syncAllowlist(n.SegmentID, nil))
	}
	return err
}

func (d *Driver) deleteDevices(n driver.Network) error {
	return errors.Join(deleteLink(VXLANName(n)), d.bridge.DeleteNetwork(bridgeNetwork(n)))
}

// Restore implements driver.Driver: the bridge driver restores the bridge and sweeps stray
// veths from it (it deletes only veths, never the VXLAN port), then the VXLAN port is made
// right. Remote peers come back with the controller's next SyncPeers.
func (d *Driver) Restore(n driver.Network, endpoints []driver.Endpoint) error {
	if err := d.needVTEP(); err != nil {
		return fmt.Errorf("restoring overlay network %s: %w", n.Name, err)
	}
	if err := d.bridge.Restore(bridgeNetwork(n), endpoints); err != nil {
		return err
	}
	return d.ensureVXLAN(n)
}

// Join implements driver.Driver (the bridge driver's veth pair on ov-<id12>).
func (d *Driver) Join(n driver.Network, ep driver.Endpoint, ns netns.NsHandle) error {
	return d.bridge.Join(bridgeNetwork(n), ep, ns)
}

// JoinHandOff implements driver.HandOffJoiner, as the bridge does.
func (d *Driver) JoinHandOff(n driver.Network, ep driver.Endpoint) error {
	return d.bridge.JoinHandOff(bridgeNetwork(n), ep)
}

// Leave implements driver.Driver.
func (d *Driver) Leave(n driver.Network, ep driver.Endpoint) error {
	return d.bridge.Leave(bridgeNetwork(n), ep)
}

// Retire implements driver.Retirer: the bridge driver's retirement, whose leftovers after a
// crash are veths on the bridge that Restore deletes.
func (d *Driver) Retire(n driver.Network, ep driver.Endpoint) error {
	return d.bridge.Retire(bridgeNetwork(n), ep)
}

// EndpointPresent implements driver.Driver.
func (d *Driver) EndpointPresent(n driver.Network, ep driver.Endpoint) bool {
	return d.bridge.EndpointPresent(bridgeNetwork(n), ep)
}

// Exposure implements driver.Exposer: the network meets the firewall as a bridge network on
// ov-<id12> with NAT and inter-container traffic on (see "The gateway" above).
func (d *Driver) Exposure(n driver.Network) driver.Exposure {
	return d.bridge.Exposure(bridgeNetwork(n))
}

// Start implements driver.Lifecycle: the bridge driver's reaper of retired veths, and the
// allowlist's table, chain and set, created if missing and never flushed, so that a
// restarting daemon keeps existing tunnels working until its first SyncPeers.
func (d *Driver) Start(ctx context.Context) error {
	if err := d.bridge.Start(ctx); err != nil {
		return err
	}
	if !d.allowlistOn() {
		return nil
	}
	if err := d.ensureAllowlist(); err != nil {
		return errors.Join(err, d.bridge.Close())
	}
	return nil
}

// Close implements driver.Lifecycle: it stops the reaper and leaves the kernel as it is
// (tunnels, FDB and allowlist outlive the daemon, as containers do).
func (d *Driver) Close() error {
	return d.bridge.Close()
}
