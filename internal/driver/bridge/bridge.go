// Package bridge is the bridge driver: a Linux bridge per network with the gateway address on
// it, and a veth pair per endpoint whose host end is a port of the bridge.
package bridge

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/nldump"
	"github.com/cnet-dev/cnet/internal/sandbox"
)

// Options understood by the bridge driver (Docker's names).
const (
	OptBridgeName    = "com.docker.network.bridge.name"
	OptMTU           = "com.docker.network.driver.mtu"
	OptDefaultBridge = "com.docker.network.bridge.default_bridge"
	OptICC           = "com.docker.network.bridge.enable_icc"
	OptMasquerade    = "com.docker.network.bridge.enable_ip_masquerade"
	OptHostBinding   = "com.docker.network.bridge.host_binding_ipv4"
)

// DefaultMTU is used when no MTU option is given.
const DefaultMTU = 1500

// Driver is the bridge driver. It holds no state but its configuration: everything it needs
// is in the network and endpoint it is handed, so a restarted daemon needs no driver-side
// recovery.
type Driver struct {
	cfg    Config
	reaper reaper // deletes retired veth pairs (see retire.go)
}

// Config is the bridge driver's part of the daemon's configuration.
type Config struct {
	// DefaultBridge is the Linux name of the default `bridge` network (cnet0, so that cnet
	// runs beside Docker's docker0).
	DefaultBridge string
	// IPv6 and FixedCIDRv6 give the default bridge IPv6 (dockerd's --ipv6 and
	// --fixed-cidr-v6); without FixedCIDRv6 its subnet comes from the default IPv6 pool.
	IPv6        bool
	FixedCIDRv6 netip.Prefix
}

// New returns the bridge driver.
func New(cfg Config) *Driver {
	if cfg.DefaultBridge == "" {
		cfg.DefaultBridge = "cnet0"
	}
	return &Driver{cfg: cfg}
}

// Type implements driver.Driver.
func (*Driver) Type() string { return "bridge" }

// Capabilities implements driver.Driver: a bridge network is the host's own segment, with a
// gateway on the bridge, NAT to the world, published ports and names.
func (*Driver) Capabilities() driver.Capabilities {
	return driver.Capabilities{Scope: driver.ScopeLocal, Gateway: true, DNS: true, PortPublishing: true, IPv6: true}
}

// Predefined implements driver.Predefiner: Docker's default `bridge` network.
func (d *Driver) Predefined() []driver.PredefinedNetwork {
	return []driver.PredefinedNetwork{{Name: "bridge", Options: map[string]string{
		OptDefaultBridge: "true",
		OptICC:           "true",
		OptMasquerade:    "true",
		OptHostBinding:   "0.0.0.0",
		OptBridgeName:    d.cfg.DefaultBridge,
		OptMTU:           "1500",
	}, IPv6: d.cfg.IPv6 || d.cfg.FixedCIDRv6.IsValid(), IPv6Subnet: d.cfg.FixedCIDRv6}}
}

// Exposure implements driver.Exposer: the bridge, and the network's NAT and icc options
// (absent or malformed: Docker's default, on).
func (*Driver) Exposure(n driver.Network) driver.Exposure {
	opt := func(key string) bool {
		v, err := strconv.ParseBool(n.Options[key])
		return err != nil || v
	}
	e := driver.Exposure{Interface: BridgeName(n), Masquerade: opt(OptMasquerade), ICC: opt(OptICC)}
	if a, err := netip.ParseAddr(n.Options[OptHostBinding]); err == nil && !a.IsUnspecified() {
		e.HostBinding = a
	}
	return e
}

// CheckConflicts implements driver.ConflictChecker: two networks cannot share a bridge.
func (*Driver) CheckConflicts(n driver.Network, others []driver.Network) error {
	name := n.Options[OptBridgeName]
	if name == "" {
		return nil
	}
	for _, o := range others {
		if o.Options[OptBridgeName] == name {
			return errdefs.Conflict("bridge name %s is already used by network %s", name, o.Name)
		}
	}
	return nil
}

// BridgeName is the Linux interface of network n: the name option, else br-<id12>.
func BridgeName(n driver.Network) string {
	if name := n.Options[OptBridgeName]; name != "" {
		return name
	}
	return "br-" + n.ID[:12]
}

// ValidateOptions implements driver.Driver.
func (*Driver) ValidateOptions(opts map[string]string) error {
	if name, ok := opts[OptBridgeName]; ok {
		if name == "" || len(name) > 15 {
			return errdefs.Invalid("invalid %s %q: an interface name is 1 to 15 characters", OptBridgeName, name)
		}
	}
	if _, err := mtu(opts); err != nil {
		return err
	}
	for _, k := range []string{OptICC, OptMasquerade, OptDefaultBridge} {
		if v, ok := opts[k]; ok {
			if _, err := strconv.ParseBool(v); err != nil {
				return errdefs.Invalid("invalid %s %q: want true or false", k, v)
			}
		}
	}
	if v, ok := opts[OptHostBinding]; ok {
		if ip := net.ParseIP(v); ip == nil || ip.To4() == nil {
			return errdefs.Invalid("invalid %s %q: want an IPv4 address", OptHostBinding, v)
		}
	}
	return nil
}

func mtu(opts map[string]string) (int, error) {
	v, ok := opts[OptMTU]
	if !ok {
		return DefaultMTU, nil
	}
	m, err := strconv.Atoi(v)
	if err != nil || m < 68 || m > 65535 {
		return 0, errdefs.Invalid("invalid %s %q: want a number from 68 to 65535", OptMTU, v)
	}
	return m, nil
}

// CreateNetwork implements driver.Driver.
func (d *Driver) CreateNetwork(n driver.Network) (err error) {
	name := BridgeName(n)
	if _, err := nldump.LinkByName(nil, name); err == nil {
		return errdefs.Conflict("cannot create network %s: an interface named %s already exists on the host", n.Name, name)
	}
	if err := d.ensureBridge(n); err != nil {
		_ = d.DeleteNetwork(n)
		return err
	}
	return nil
}

// ensureBridge creates the bridge if missing and makes sure it has its gateway addresses and
// is up; it is what both create and restore need.
func (d *Driver) ensureBridge(n driver.Network) error {
	name := BridgeName(n)
	m, err := mtu(n.Options)
	if err != nil {
		return err
	}
	link, err := nldump.LinkByName(nil, name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return fmt.Errorf("looking up bridge %s: %w", name, err)
		}
		la := netlink.NewLinkAttrs()
		la.Name = name
		la.MTU = m
		// A fixed MAC keeps the bridge's address from changing as ports come and go, which
		// would make neighbours' ARP caches go stale.
		la.HardwareAddr = randomMAC()
		link = &netlink.Bridge{LinkAttrs: la}
		if err := netlink.LinkAdd(link); err != nil {
			return fmt.Errorf("creating bridge %s: %w", name, err)
		}
		if link, err = nldump.LinkByName(nil, name); err != nil {
			return fmt.Errorf("looking up new bridge %s: %w", name, err)
		}
	} else if link.Type() != "bridge" {
		return errdefs.Conflict("interface %s exists on the host and is a %s, not a bridge", name, link.Type())
	}
	if HasIPv6(n) {
		if err := enableIPv6Host(name); err != nil {
			return err
		}
	} else {
		// No router advertisements from containers: on a host with IPv6 a bridge has a
		// link-local address and, by default, accepts RAs, which a container with
		// CAP_NET_RAW could send to reroute the host (CVE-2020-13401). Docker does the same.
		// A host without IPv6 has no such setting, which is fine.
		if err := writeSysctl("/proc/sys/net/ipv6/conf/"+name+"/accept_ra", "0"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	addrs, err := nldump.AddrList(nil, link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("listing addresses of %s: %w", name, err)
	}
	for _, s := range n.Subnets {
		if !s.Gateway.IsValid() {
			continue
		}
		want := gatewayAddr(s)
		if hasAddr(addrs, want.IPNet) {
			continue
		}
		if err := netlink.AddrAdd(link, want); err != nil {
			return fmt.Errorf("adding gateway %s to %s: %w", want.IPNet, name, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing %s up: %w", name, err)
	}
	return nil
}

func hasAddr(addrs []netlink.Addr, want *net.IPNet) bool {
	for _, a := range addrs {
		if a.IPNet != nil && a.IPNet.String() == want.String() {
			return true
		}
	}
	return false
}

// DeleteNetwork implements driver.Driver.
func (*Driver) DeleteNetwork(n driver.Network) error {
	return deleteLink(BridgeName(n))
}

func deleteLink(name string) error {
	link, err := nldump.LinkByName(nil, name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("looking up %s: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	return nil
}

// Restore implements driver.Driver.
func (d *Driver) Restore(n driver.Network, endpoints []driver.Endpoint) error {
	if err := d.ensureBridge(n); err != nil {
		return err
	}
	br, err := nldump.LinkByName(nil, BridgeName(n))
	if err != nil {
		return fmt.Errorf("looking up bridge %s: %w", BridgeName(n), err)
	}
	keep := make(map[string]bool, len(endpoints))
	for _, ep := range endpoints {
		keep[ep.HostIfName] = true
	}
	links, err := nldump.LinkList(nil)
	if err != nil {
		return fmt.Errorf("listing links: %w", err)
	}
	for _, l := range links {
		a := l.Attrs()
		if a.MasterIndex == br.Attrs().Index && l.Type() == "veth" && !keep[a.Name] {
			if err := netlink.LinkDel(l); err != nil {
				return fmt.Errorf("removing stray interface %s from %s: %w", a.Name, BridgeName(n), err)
			}
		}
	}
	return nil
}

// Join implements driver.Driver. The pair is created with its peer already inside the sandbox,
// named, addressed by MAC and enslaved, so one netlink request does what would otherwise take
// a create, a move, a rename and a set-master.
func (*Driver) Join(n driver.Network, ep driver.Endpoint, ns netns.NsHandle) (err error) {
	la, err := hostEnd(n, ep)
	if err != nil {
		return err
	}
	veth := &netlink.Veth{
		LinkAttrs:        la,
		PeerName:         ep.IfName,
		PeerHardwareAddr: ep.MAC,
		PeerNamespace:    netlink.NsFd(int(ns)),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("creating veth pair %s/%s: %w", ep.HostIfName, ep.IfName, err)
	}
	defer func() {
		if err != nil {
			_ = deleteLink(ep.HostIfName)
		}
	}()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("opening netlink in the sandbox: %w", err)
	}
	defer h.Close()
	peer, err := nldump.LinkByName(h, ep.IfName)
	if err != nil {
		return fmt.Errorf("finding %s in the sandbox: %w", ep.IfName, err)
	}
	if err := sandbox.AddAddrs(h, peer, int(ns), ep.Address, ep.Address6); err != nil {
		return err
	}
	if err := h.LinkSetUp(peer); err != nil {
		return fmt.Errorf("bringing %s up: %w", ep.IfName, err)
	}
	return nil
}

// JoinHandOff implements driver.HandOffJoiner: the pair with both ends in the host's
// namespace, the host end up on the bridge, the peer named ep.IfName with ep.MAC and left down
// and unaddressed for the engine that moves it into its sandbox (dockerd sets its address,
// routes and state there).
func (*Driver) JoinHandOff(n driver.Network, ep driver.Endpoint) error {
	la, err := hostEnd(n, ep)
	if err != nil {
		return err
	}
	veth := &netlink.Veth{LinkAttrs: la, PeerName: ep.IfName, PeerHardwareAddr: ep.MAC}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("creating veth pair %s/%s: %w", ep.HostIfName, ep.IfName, err)
	}
	return nil
}

// hostEnd is the host end of an endpoint's veth pair: its name, the network's MTU, a port of
// the network's bridge, up.
func hostEnd(n driver.Network, ep driver.Endpoint) (netlink.LinkAttrs, error) {
	br, err := nldump.LinkByName(nil, BridgeName(n))
	if err != nil {
		return netlink.LinkAttrs{}, fmt.Errorf("looking up bridge %s of network %s: %w", BridgeName(n), n.Name, err)
	}
	m, err := mtu(n.Options)
	if err != nil {
		return netlink.LinkAttrs{}, err
	}
	la := netlink.NewLinkAttrs()
	la.Name = ep.HostIfName
	la.MTU = m
	la.MasterIndex = br.Attrs().Index
	la.Flags = net.FlagUp
	return la, nil
}

// Leave implements driver.Driver: deleting the host end takes the peer with it.
func (*Driver) Leave(_ driver.Network, ep driver.Endpoint) error {
	return deleteLink(ep.HostIfName)
}

// EndpointPresent implements driver.Driver: the host end exists, is up (a retirement cut
// short by a crash leaves it down) and is a port of the network's bridge.
func (*Driver) EndpointPresent(n driver.Network, ep driver.Endpoint) bool {
	l, err := nldump.LinkByName(nil, ep.HostIfName)
	if err != nil || l.Attrs().Flags&net.FlagUp == 0 {
		return false
	}
	br, err := nldump.LinkByName(nil, BridgeName(n))
	return err == nil && l.Attrs().MasterIndex == br.Attrs().Index
}

// randomMAC returns a locally administered unicast MAC with Docker's 02:42 prefix.
func randomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	mac[0], mac[1] = 0x02, 0x42
	_, _ = rand.Read(mac[2:])
	return mac
}
