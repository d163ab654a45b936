package controller

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"

	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/faults"
	"github.com/cnet-dev/cnet/internal/ipam"
	"github.com/cnet-dev/cnet/internal/store"
)

// CreateSandbox makes the network namespace of a container, or, with adopt set, names another
// runtime's namespace as the container's sandbox (a CNI attachment).
func (c *Controller) CreateSandbox(containerID, adopt string) (string, error) {
	path := c.SandboxPath(containerID)
	if adopt != "" {
		if err := c.ns.Adopt(adopt, path); err != nil {
			return "", fmt.Errorf("adopting network namespace %s: %w", adopt, err)
		}
	} else if err := c.ns.Create(path); err != nil {
		return "", fmt.Errorf("creating the network namespace of container %s: %w", containerID[:12], err)
	}
	faults.Point("sandbox-created")
	return path, nil
}

// DeleteSandbox removes every endpoint of a container and its namespace.
func (c *Controller) DeleteSandbox(containerID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Last joined first: the oldest endpoint gives the default route, and leaving it last
	// means no route is moved to an endpoint about to go too.
	eps := c.sandboxEndpoints(containerID)
	for i := len(eps) - 1; i >= 0; i-- {
		if err := c.leave(eps[i], false); err != nil {
			return err
		}
	}
	return c.ns.Delete(c.SandboxPath(containerID))
}

// Join connects a container's sandbox to a network: an address from IPAM, a record, then the
// driver's interface and the default route. Any failure undoes the steps before it.
func (c *Controller) Join(containerID, netRef string, opts JoinOptions) (Endpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.resolveNetwork(netRef)
	if err != nil {
		return Endpoint{}, err
	}
	caps := c.driver(n).Capabilities()
	if caps.JoinRefusal != "" {
		return Endpoint{}, errdefs.Forbidden("%s", caps.JoinRefusal)
	}
	// The default bridge is the one predefined network with endpoints: Docker's legacy network,
	// without aliases, static addresses or names.
	isDefault := n.rec.Predefined
	if len(opts.Aliases) > 0 && isDefault {
		return Endpoint{}, errdefs.Forbidden("network-scoped alias is supported only for containers in user defined networks")
	}
	mine := c.sandboxEndpoints(containerID)
	for _, ep := range mine {
		if ep.NetworkID == n.rec.ID {
			return Endpoint{}, errdefs.Forbidden("endpoint with name %s already exists in network %s", opts.ContainerName, n.rec.Name)
		}
	}
	ifName := nextIfName(mine)
	if opts.IfName != "" {
		for _, ep := range mine {
			if ep.IfName == opts.IfName {
				return Endpoint{}, errdefs.Conflict("the sandbox already has an interface %s", opts.IfName)
			}
		}
		ifName = opts.IfName
	}
	ep := &Endpoint{
		ID: NewID(), NetworkID: n.rec.ID, ContainerID: containerID, ContainerName: opts.ContainerName,
		IfName: ifName, Aliases: opts.Aliases, Hostname: opts.Hostname,
	}
	ep.HostIfName = "veth" + ep.ID[:7]
	if opts.MAC != "" {
		mac, err := net.ParseMAC(opts.MAC)
		if err != nil || len(mac) != 6 || mac[0]&1 != 0 {
			return Endpoint{}, errdefs.Invalid("invalid MAC address %q: want a unicast Ethernet address such as 02:42:ac:11:00:02", opts.MAC)
		}
		opts.MAC = mac.String()
	}
	addrs, release, err := c.joinAddresses(n, opts, isDefault)
	if err != nil {
		return Endpoint{}, err
	}
	ep.Reserved, ep.HandOff = opts.Reserved, opts.HandOff
	if addrs.addr4.IsValid() {
		ep.Address = netip.PrefixFrom(addrs.addr4, addrs.pool4.Subnet.Bits())
	}
	if addrs.addr6.IsValid() {
		ep.Address6 = netip.PrefixFrom(addrs.addr6, addrs.pool6.Subnet.Bits())
	}
	if caps.Gateway && !n.rec.Internal {
		ep.Gateway, ep.Gateway6 = addrs.pool4.Gateway, addrs.pool6.Gateway
	}
	switch {
	case opts.MAC != "":
		ep.MAC = opts.MAC
	case addrs.addr4.IsValid():
		ep.MAC = ipam.MACFromIP(addrs.addr4).String()
	default:
		// IPv6-only: no IPv4 address to derive the MAC from (Docker picks a random one too).
		ep.MAC = randomMAC().String()
	}
	c.seq++
	ep.Seq = c.seq

	// From the record on, a crash is completed by recovery rather than rolled back.
	if err := c.store.Put(store.Endpoints, ep.ID, ep); err != nil {
		release()
		return Endpoint{}, err
	}
	faults.Point("endpoint-recorded")
	unrecord := func(err error) error {
		if derr := c.store.Delete(store.Endpoints, ep.ID); derr != nil {
			// The record stays: recovery at the next start removes the endpoint and frees
			// its address then; freeing it now could hand it out twice.
			return errors.Join(err, fmt.Errorf("rolling back the record of endpoint %s: %w", ep.ID[:12], derr))
		}
		release()
		return err
	}
	plug := func() error { return c.plug(n, ep, mine) }
	if ep.HandOff {
		plug = func() error { return c.plugHandOff(n, ep) }
	}
	if err := plug(); err != nil {
		return Endpoint{}, unrecord(err)
	}
	if err := c.publishEndpoint(n, ep, opts.Hostname); err != nil {
		if lerr := c.driver(n).Leave(n.driverView(), c.endpointView(ep)); lerr != nil {
			return Endpoint{}, errors.Join(err, lerr)
		}
		return Endpoint{}, unrecord(err)
	}
	c.endpoints[ep.ID] = ep
	return *ep, nil
}

// allocate takes the requested static address or the next free one of family v6 from n's
// allocator.
func (c *Controller) allocate(n *network, ip string, isDefault, v6 bool) (ipam.PoolInfo, netip.Addr, error) {
	if len(n.pools) == 0 {
		return ipam.PoolInfo{}, netip.Addr{}, errdefs.Invalid("network %s has no address pool", n.rec.Name)
	}
	alloc := c.allocator(n)
	if ip == "" {
		var lastErr error
		for _, p := range n.pools {
			if p.Subnet.Addr().Is6() != v6 {
				continue
			}
			a, err := alloc.RequestAddress(p.ID, netip.Addr{})
			if err == nil {
				return p, a, nil
			}
			lastErr = err
		}
		if lastErr == nil {
			return ipam.PoolInfo{}, netip.Addr{}, errdefs.Invalid("network %s has no %s subnet", n.rec.Name, familyName(v6))
		}
		return ipam.PoolInfo{}, netip.Addr{}, errdefs.Conflict("network %s: %w", n.rec.Name, lastErr)
	}
	if isDefault {
		return ipam.PoolInfo{}, netip.Addr{}, errdefs.Invalid("user specified IP address is supported on user defined networks only")
	}
	user := n.rec.UserSubnet
	if v6 {
		user = n.rec.UserSubnet6
	}
	if !user {
		return ipam.PoolInfo{}, netip.Addr{}, errdefs.Invalid("user specified IP address is supported only when connecting to networks with user configured subnets")
	}
	return c.allocateStatic(n, ip, v6)
}

// familyName is "IPv6" or "IPv4", for messages.
func familyName(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}

// allocateStatic takes the static address ip (of family v6) from n's allocator.
func (c *Controller) allocateStatic(n *network, ip string, v6 bool) (ipam.PoolInfo, netip.Addr, error) {
	a, err := netip.ParseAddr(ip)
	switch {
	case !v6 && (err != nil || !a.Is4()):
		return ipam.PoolInfo{}, netip.Addr{}, errdefs.Invalid("invalid IPv4 address %q", ip)
	case v6 && (err != nil || !a.Is6() || a.Is4In6() || a.Zone() != ""):
		return ipam.PoolInfo{}, netip.Addr{}, errdefs.Invalid("invalid IPv6 address %q", ip)
	}
	p := n.poolFor(a)
	if p == nil {
		return ipam.PoolInfo{}, netip.Addr{}, errdefs.Invalid("invalid address %s: it does not belong to any of network %s's subnets", a, n.rec.Name)
	}
	if _, err := c.allocator(n).RequestAddress(p.ID, a); err != nil {
		if errors.Is(err, ipam.ErrInUse) {
			return ipam.PoolInfo{}, netip.Addr{}, errdefs.Conflict("%w", err)
		}
		return ipam.PoolInfo{}, netip.Addr{}, errdefs.Invalid("%w", err)
	}
	return *p, a, nil
}

// plug has the driver create the interface and points the default route at the right gateway.
func (c *Controller) plug(n *network, ep *Endpoint, others []*Endpoint) error {
	path := c.SandboxPath(ep.ContainerID)
	ns, err := c.ns.Open(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	d := c.driver(n)
	dep := c.endpointView(ep)
	if err := d.Join(n.driverView(), dep, ns); err != nil {
		return err
	}
	faults.Point("endpoint-plugged")
	all := append(slices.Clone(others), ep)
	for _, v6 := range []bool{false, true} {
		if gw := routeEndpoint(all, v6); gw == ep {
			if err := c.ns.SetDefaultRoute(path, ep.IfName, ep.gateway(v6)); err != nil {
				_ = d.Leave(n.driverView(), dep)
				return err
			}
		}
	}
	return nil
}

// Leave disconnects a container from a network.
func (c *Controller) Leave(containerID, netRef string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.resolveNetwork(netRef)
	if err != nil {
		return err
	}
	for _, ep := range c.sandboxEndpoints(containerID) {
		if ep.NetworkID == n.rec.ID {
			return c.leave(ep, true)
		}
	}
	return errdefs.NotFound("container %s is not connected to network %s", containerID[:12], n.rec.Name)
}

// leave removes the interface, then the record, then frees the address, so that an address is
// never free while an interface may still carry it. With retire (a disconnect, which the user
// waits for), a driver that can (driver.Retirer) takes the interface out of service at once and
// deletes it afterwards.
func (c *Controller) leave(ep *Endpoint, retire bool) error {
	n := c.networks[ep.NetworkID]
	others := c.sandboxEndpoints(ep.ContainerID)
	wasRoute := [2]bool{routeEndpoint(others, false) == ep, routeEndpoint(others, true) == ep}
	d := c.driver(n)
	unplug := d.Leave
	if r, ok := d.(driver.Retirer); ok && retire {
		unplug = r.Retire
	}
	c.withdrawEndpoint(n, ep)
	if err := unplug(n.driverView(), c.endpointView(ep)); err != nil {
		return err
	}
	faults.Point("endpoint-unplugged")
	if err := c.store.Delete(store.Endpoints, ep.ID); err != nil {
		return err
	}
	delete(c.endpoints, ep.ID)
	for _, a := range []netip.Prefix{ep.Address, ep.Address6} {
		if !a.IsValid() || (ep.Reserved && a.Addr().Is4()) {
			continue // a reserved IPv4 address outlives the endpoint
		}
		if p := n.poolFor(a.Addr()); p != nil {
			if err := c.allocator(n).ReleaseAddress(p.ID, a.Addr()); err != nil {
				slog.Error("releasing an endpoint's address", "network", n.rec.Name, "address", a.Addr(), "err", err)
			}
		}
	}
	path := c.SandboxPath(ep.ContainerID)
	for i, v6 := range []bool{false, true} {
		if !wasRoute[i] {
			continue
		}
		if next := routeEndpoint(c.sandboxEndpoints(ep.ContainerID), v6); next != nil && c.ns.Exists(path) {
			if err := c.ns.SetDefaultRoute(path, next.IfName, next.gateway(v6)); err != nil {
				return err
			}
		}
	}
	return nil
}

// SandboxEndpoints lists a container's endpoints by join order.
func (c *Controller) SandboxEndpoints(containerID string) []Endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Endpoint
	for _, ep := range c.sandboxEndpoints(containerID) {
		out = append(out, *ep)
	}
	return out
}

func (c *Controller) sandboxEndpoints(containerID string) []*Endpoint {
	var out []*Endpoint
	for _, ep := range c.endpoints {
		if ep.ContainerID == containerID {
			out = append(out, ep)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

func (c *Controller) networkEndpoints(networkID string) []*Endpoint {
	var out []*Endpoint
	for _, ep := range c.endpoints {
		if ep.NetworkID == networkID {
			out = append(out, ep)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

// routeEndpoint is the oldest endpoint with a gateway of the family (v6 or IPv4), which gives
// the sandbox its default route of that family: a dual-stack sandbox on an IPv4-only network
// and an IPv6-only one routes each family through the network that has it.
func routeEndpoint(eps []*Endpoint, v6 bool) *Endpoint {
	var best *Endpoint
	for _, ep := range eps {
		if ep.gateway(v6).IsValid() && (best == nil || ep.Seq < best.Seq) {
			best = ep
		}
	}
	return best
}

// gateway is ep's gateway of the family.
func (ep *Endpoint) gateway(v6 bool) netip.Addr {
	if v6 {
		return ep.Gateway6
	}
	return ep.Gateway
}

// nextIfName is the lowest ethN not used in the sandbox.
func nextIfName(eps []*Endpoint) string {
	used := map[string]bool{}
	for _, ep := range eps {
		used[ep.IfName] = true
	}
	for i := 0; ; i++ {
		if name := fmt.Sprintf("eth%d", i); !used[name] {
			return name
		}
	}
}

// endpointView is what a driver is told about ep.
func (c *Controller) endpointView(ep *Endpoint) driver.Endpoint {
	mac, _ := net.ParseMAC(ep.MAC)
	return driver.Endpoint{ID: ep.ID, HostIfName: ep.HostIfName, IfName: ep.IfName, Address: ep.Address, Address6: ep.Address6, MAC: mac,
		SandboxPath: c.SandboxPath(ep.ContainerID)}
}

// prefixOf converts a net.IPNet's parts to a masked netip.Prefix of either family.
func prefixOf(ip net.IP, mask net.IPMask) (netip.Prefix, bool) {
	if mask == nil {
		return netip.Prefix{}, false
	}
	ones, bits := mask.Size()
	if v4 := ip.To4(); v4 != nil && bits == 32 {
		a, _ := netip.AddrFromSlice(v4)
		return netip.PrefixFrom(a, ones).Masked(), true
	}
	if len(ip) == net.IPv6len && bits == 128 && ip.To4() == nil {
		a, _ := netip.AddrFromSlice(ip)
		return netip.PrefixFrom(a, ones).Masked(), true
	}
	return netip.Prefix{}, false
}

// randomMAC is a locally administered unicast MAC with Docker's 02:42 prefix, for endpoints
// with no IPv4 address to derive one from.
func randomMAC() net.HardwareAddr {
	mac := net.HardwareAddr{0x02, 0x42, 0, 0, 0, 0}
	_, _ = rand.Read(mac[2:])
	return mac
}
