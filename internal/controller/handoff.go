package controller

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/ipam"
	"github.com/cnet-dev/cnet/internal/store"
)

// Hand-off sandboxes and address reservations serve another engine that keeps its own
// sandboxes and IPAM calls: dockerd, through Docker's remote network and IPAM driver API
// (internal/dockerplugin). Its order of steps is libnetwork's: an address is requested from
// IPAM before the endpoint exists and released after it is gone, and the driver's Join makes
// an interface that dockerd itself moves into its namespace, names, addresses and routes.
//
//   - ReserveAddress/ReleaseReservation are that IPAM: an address of a network held by no
//     endpoint yet, recorded (bucket reservations) so that a restart neither loses nor hands
//     it out again. An endpoint joined with JoinOptions.Reserved takes such an address and
//     leaves it reserved when it goes.
//   - A sandbox with SandboxConfig.HandOff has no namespace of cnet's: its endpoints are made
//     by the driver's driver.HandOffJoiner and left in the host's namespace under
//     JoinOptions.IfName for the engine to take. cnet runs no resolver and writes no files
//     for it (dockerd does both); published ports are set later with PublishPorts, as
//     dockerd's ProgramExternalConnectivity comes after the join.

// reservation is the record of one reserved address.
type reservation struct {
	NetworkID string
	Address   netip.Addr
}

func reservationKey(networkID string, a netip.Addr) string { return networkID + "/" + a.String() }

// ChooseSubnet picks the subnet of a network about to be created by another engine's IPAM
// call, before the network exists: want when given (refused if it overlaps a network's or one
// of avoid), else a default pool clear of the networks, avoid and the host's routes.
func (c *Controller) ChooseSubnet(want string, avoid []netip.Prefix) (netip.Prefix, error) {
	c.mu.Lock()
	existing := append(c.usedSubnets(), avoid...)
	c.mu.Unlock()
	if want != "" {
		p, err := netip.ParsePrefix(want)
		if err != nil || !p.Addr().Is4() {
			return netip.Prefix{}, errdefs.Invalid("invalid subnet %q: want an IPv4 CIDR such as 172.30.0.0/16", want)
		}
		p = p.Masked()
		if err := ipam.CheckOverlap(p, existing); err != nil {
			return netip.Prefix{}, errdefs.Conflict("%w", err)
		}
		return p, nil
	}
	host, err := hostPrefixes(netlink.FAMILY_V4)
	if err != nil {
		return netip.Prefix{}, err
	}
	p, err := ipam.PickDefault(append(existing, host...))
	if err != nil {
		return netip.Prefix{}, classifyPoolError(err)
	}
	return p, nil
}

// ReserveAddress takes want (or, when zero, the next free address) from the network's pools for
// an endpoint that another engine will create, and records it.
func (c *Controller) ReserveAddress(netRef string, want netip.Addr) (netip.Prefix, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.resolveNetwork(netRef)
	if err != nil {
		return netip.Prefix{}, err
	}
	ip := ""
	if want.IsValid() {
		ip = want.String()
	}
	// The network's own rules for a static address hold (it must be in a pool, and free),
	// except that a network created by another engine always has the subnet its IPAM chose.
	pool, addr, err := c.allocateReserved(n, ip)
	if err != nil {
		return netip.Prefix{}, err
	}
	if err := c.store.Put(store.Reservations, reservationKey(n.rec.ID, addr), reservation{NetworkID: n.rec.ID, Address: addr}); err != nil {
		if rerr := c.allocator(n).ReleaseAddress(pool.ID, addr); rerr != nil {
			slog.Error("rolling back a reserved address", "network", n.rec.Name, "address", addr, "err", rerr)
		}
		return netip.Prefix{}, err
	}
	c.reserved[reservationKey(n.rec.ID, addr)] = true
	return netip.PrefixFrom(addr, pool.Subnet.Bits()), nil
}

// allocateReserved is allocate without the user-facing refusals of --ip on networks whose
// subnet the user did not choose: another engine's IPAM asks for addresses by itself.
func (c *Controller) allocateReserved(n *network, ip string) (ipam.PoolInfo, netip.Addr, error) {
	if ip == "" {
		return c.allocate(n, "", false, false)
	}
	return c.allocateStatic(n, ip, false)
}

// ReleaseReservation gives a reserved address back. An address not reserved (already
// released, or its network gone) is not an error: the engine's release may be a retry.
// An endpoint still using the address keeps it until the endpoint goes.
func (c *Controller) ReleaseReservation(netRef string, a netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.resolveNetwork(netRef)
	if err != nil {
		if errdefs.Is(err, errdefs.KindNotFound) {
			return nil
		}
		return err
	}
	key := reservationKey(n.rec.ID, a)
	if !c.reserved[key] {
		return nil
	}
	for _, ep := range c.networkEndpoints(n.rec.ID) {
		if ep.Reserved && ep.Address.Addr() == a {
			return errdefs.Conflict("address %s of network %s is still used by endpoint %s", a, n.rec.Name, ep.ID[:12])
		}
	}
	if err := c.store.Delete(store.Reservations, key); err != nil {
		return err
	}
	delete(c.reserved, key)
	if p := n.poolFor(a); p != nil {
		if err := c.allocator(n).ReleaseAddress(p.ID, a); err != nil {
			slog.Error("releasing a reserved address", "network", n.rec.Name, "address", a, "err", err)
		}
	}
	return nil
}

// restoreReservations takes the recorded reservations back into their pools at start. It runs
// before endpoints are restored, which skip reserved addresses.
func (c *Controller) restoreReservations() error {
	return store.Load(c.store, store.Reservations, func(key string, r *reservation) error {
		n := c.networks[r.NetworkID]
		var p *ipam.PoolInfo
		if n != nil {
			p = n.poolFor(r.Address)
		}
		if p == nil {
			return c.store.Delete(store.Reservations, key)
		}
		// As endpoints' addresses: a cluster-wide allocator takes them back without asking
		// its store, which may not answer yet.
		var err error
		if rr, ok := c.allocator(n).(addressRestorer); ok {
			err = rr.RestoreAddress(p.ID, r.Address)
		} else {
			_, err = c.allocator(n).RequestAddress(p.ID, r.Address)
		}
		if err != nil {
			return fmt.Errorf("restoring reserved address %s of network %s: %w", r.Address, n.rec.Name, err)
		}
		c.reserved[key] = true
		return nil
	})
}

// dropReservations forgets the reservations of a network being removed: its pools go with it.
func (c *Controller) dropReservations(n *network) {
	for key := range c.reserved {
		if !strings.HasPrefix(key, n.rec.ID+"/") {
			continue
		}
		if err := c.store.Delete(store.Reservations, key); err != nil {
			slog.Error("dropping a reserved address of a removed network", "network", n.rec.Name, "key", key, "err", err)
		}
		delete(c.reserved, key)
	}
}

// joined is what a join takes from IPAM: an address of each family the network has, with its
// pool (zero for a family the network lacks).
type joined struct {
	pool4, pool6 ipam.PoolInfo
	addr4, addr6 netip.Addr
}

// joinAddresses takes an endpoint's addresses: for IPv4 a reserved one (opts.Reserved), which
// stays reserved when the endpoint goes, or one allocated now; for IPv6 one allocated now.
// release gives back what was allocated. On error nothing stays allocated.
func (c *Controller) joinAddresses(n *network, opts JoinOptions, isDefault bool) (j joined, release func(), err error) {
	has4, has6 := n.hasFamily(false), n.hasFamily(true)
	if opts.IP != "" && !has4 {
		return j, nil, errdefs.Invalid("network %s has no IPv4 subnet: --ip cannot be used on it", n.rec.Name)
	}
	if opts.IP6 != "" && !has6 {
		return j, nil, errdefs.Invalid("network %s has no IPv6 subnet: --ip6 needs a network created with --ipv6", n.rec.Name)
	}
	var undo []func()
	release = func() {
		for _, u := range undo {
			u()
		}
	}
	take := func(ip string, v6 bool) (ipam.PoolInfo, netip.Addr, error) {
		pool, addr, err := c.allocate(n, ip, isDefault, v6)
		if err == nil {
			undo = append(undo, func() {
				if err := c.allocator(n).ReleaseAddress(pool.ID, addr); err != nil {
					slog.Error("rolling back an address", "network", n.rec.Name, "address", addr, "err", err)
				}
			})
		}
		return pool, addr, err
	}
	switch {
	case opts.Reserved:
		a, err := netip.ParseAddr(opts.IP)
		if err != nil || !c.reserved[reservationKey(n.rec.ID, a)] {
			return j, nil, errdefs.Invalid("address %q is not reserved on network %s", opts.IP, n.rec.Name)
		}
		j.pool4, j.addr4 = *n.poolFor(a), a
	case has4:
		if j.pool4, j.addr4, err = take(opts.IP, false); err != nil {
			return joined{}, nil, err
		}
	}
	if has6 {
		if j.pool6, j.addr6, err = take(opts.IP6, true); err != nil {
			release()
			return joined{}, nil, err
		}
	}
	return j, release, nil
}

// plugHandOff has the driver make ep's interface in the host's namespace for another engine
// to move into its sandbox.
func (c *Controller) plugHandOff(n *network, ep *Endpoint) error {
	h, ok := c.driver(n).(driver.HandOffJoiner)
	if !ok {
		return errdefs.Invalid("network %s (driver %s) cannot hand its interfaces to another engine", n.rec.Name, n.rec.Driver)
	}
	return h.JoinHandOff(n.driverView(), c.endpointView(ep))
}

// PublishPorts replaces what a running sandbox publishes (dockerd's
// ProgramExternalConnectivity and RevokeExternalConnectivity): the old ports go, the new ones
// are held and programmed, all or nothing.
func (c *Controller) PublishPorts(containerID string, ports []PortMapping) error {
	sb := c.sandbox(containerID)
	if sb == nil {
		return errdefs.NotFound("sandbox %s is not running", containerID[:12])
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	old := sb.cfg.Ports
	c.unpublishPorts(sb)
	sb.cfg.Ports = ports
	if err := c.publishPorts(sb); err != nil {
		sb.cfg.Ports = old
		if rerr := c.publishPorts(sb); rerr != nil {
			return errors.Join(err, fmt.Errorf("publishing the previous ports again: %w", rerr))
		}
		return err
	}
	return nil
}

// MACFor is the MAC an endpoint with address a gets unless told otherwise (02:42 and the
// address, as Docker derives it), for engines that must announce it before the join.
func MACFor(a netip.Addr) string { return ipam.MACFromIP(a).String() }
