package controller

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"slices"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/faults"
	"github.com/cnet-dev/cnet/internal/ipam"
	"github.com/cnet-dev/cnet/internal/nldump"
	"github.com/cnet-dev/cnet/internal/store"
)

// validName is Docker's rule for object names.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// maxNameLen keeps names usable as labels and file names.
const maxNameLen = 128

// ValidateName checks a network or container name the way Docker does.
func ValidateName(kind, name string) error {
	if len(name) > maxNameLen || !validName.MatchString(name) {
		return errdefs.Invalid("invalid %s name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, up to %d characters", kind, name, maxNameLen)
	}
	return nil
}

// ensurePredefined creates the networks the drivers predefine (bridge, host, none) on first
// start, and after someone deleted the record of one, which cannot happen through the API.
func (c *Controller) ensurePredefined() error {
	have := map[string]*network{}
	for _, n := range c.networks {
		if n.rec.Predefined {
			have[n.rec.Name] = n
		}
	}
	for _, typ := range c.drivers.Types() {
		d, _ := c.drivers.Driver(typ)
		p, ok := d.(driver.Predefiner)
		if !ok {
			continue
		}
		for _, pn := range p.Predefined() {
			if n := have[pn.Name]; n != nil {
				if err := c.reconcileIPv6(n, pn); err != nil {
					return err
				}
				continue
			}
			if pn.NoPool {
				// Nothing to build or address: the record is the network.
				rec := Network{ID: NewID(), Name: pn.Name, Driver: typ, Created: time.Now(), IPAMDriver: "default", Predefined: true,
					Options: copyMap(pn.Options), Labels: map[string]string{}}
				if rec.Options == nil {
					rec.Options = map[string]string{}
				}
				if err := c.store.Put(store.Networks, rec.ID, rec); err != nil {
					return err
				}
				c.networks[rec.ID] = &network{rec: rec}
				continue
			}
			if _, err := c.createNetwork(predefinedConfig(typ, pn), true); err != nil {
				return fmt.Errorf("creating the predefined network %s: %w", pn.Name, err)
			}
		}
	}
	return nil
}

// predefinedConfig is the request that makes predefined network pn of driver typ.
func predefinedConfig(typ string, pn driver.PredefinedNetwork) NetworkConfig {
	cfg := NetworkConfig{Name: pn.Name, Driver: typ, Options: copyMap(pn.Options), EnableIPv6: pn.IPv6}
	if pn.IPv6Subnet.IsValid() {
		// The IPv4 pool is still the default one: only --fixed-cidr-v6 is given.
		cfg.Pools = []PoolRequest{{Subnet: pn.IPv6Subnet.String()}}
	}
	return cfg
}

// reconcileIPv6 applies the daemon's IPv6 settings of a predefined network (the default
// bridge's --ipv6 and --fixed-cidr-v6) to the one on record, as dockerd does when restarted
// with new flags: the network is made again, which needs it unused; while containers are on it
// it keeps its addresses and a warning says why.
func (c *Controller) reconcileIPv6(n *network, pn driver.PredefinedNetwork) error {
	var have netip.Prefix
	for _, p := range n.rec.IPAM {
		if p.Subnet.Addr().Is6() {
			have = p.Subnet
		}
	}
	switch {
	case pn.NoPool, n.rec.EnableIPv6 == pn.IPv6 && (!pn.IPv6Subnet.IsValid() || pn.IPv6Subnet.Masked() == have):
		return nil
	case len(c.networkEndpoints(n.rec.ID)) > 0:
		slog.Warn("the daemon's IPv6 settings of a predefined network apply at a daemon start with no container on it",
			"network", n.rec.Name, "ipv6", pn.IPv6, "subnet", pn.IPv6Subnet)
		return nil
	}
	if fn, ok := c.firewallNetwork(n.rec); ok {
		if err := c.fw.RemoveNetwork(fn.Bridge); err != nil {
			return fmt.Errorf("reconfiguring network %s: %w", n.rec.Name, err)
		}
	}
	if err := c.driver(n).DeleteNetwork(n.driverView()); err != nil {
		return fmt.Errorf("reconfiguring network %s: %w", n.rec.Name, err)
	}
	if err := c.store.Delete(store.Networks, n.rec.ID); err != nil {
		return err
	}
	delete(c.networks, n.rec.ID)
	c.dropReservations(n)
	c.releasePools(n)
	if _, err := c.createNetwork(predefinedConfig(n.rec.Driver, pn), true); err != nil {
		return fmt.Errorf("reconfiguring the predefined network %s with the daemon's --ipv6 %v --fixed-cidr-v6 %q: %w", pn.Name, pn.IPv6, pn.IPv6Subnet, err)
	}
	return nil
}

// userSubnet reports whether the user gave a subnet of the family (v6 or IPv4), which Docker
// requires for --ip (--ip6) on it.
func userSubnet(pools []PoolRequest, v6 bool) bool {
	for _, r := range pools {
		if p, err := netip.ParsePrefix(r.Subnet); err == nil && p.Addr().Is6() == v6 {
			return true
		}
	}
	return false
}

// ULAPrefix is the IPv6 pool of an engine whose ID is seed (see ipam.ULAPrefix), for the
// daemon's Config.DefaultIPv6Pool.
func ULAPrefix(seed string) netip.Prefix { return ipam.ULAPrefix(seed) }

// CreateNetwork validates cfg, allocates its pools, persists it and has its driver build it.
func (c *Controller) CreateNetwork(cfg NetworkConfig) (Network, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := ValidateName("network", cfg.Name); err != nil {
		return Network{}, err
	}
	return c.createNetwork(cfg, false)
}

func (c *Controller) createNetwork(cfg NetworkConfig, predefined bool) (Network, error) {
	for _, n := range c.networks {
		if n.rec.Name == cfg.Name {
			return Network{}, errdefs.Conflict("network with name %s already exists", cfg.Name)
		}
	}
	if cfg.Driver == "" {
		cfg.Driver = "bridge"
	}
	d, err := c.drivers.Driver(cfg.Driver)
	if err != nil {
		return Network{}, err
	}
	if cfg.IPAMDriver == "" {
		cfg.IPAMDriver = "default"
	}
	if _, ok := c.ipams[cfg.IPAMDriver]; !ok {
		return Network{}, errdefs.NotFound("IPAM driver %q not found: cnet has only the default IPAM driver", cfg.IPAMDriver)
	}
	if cfg.DisableIPv4 && !cfg.EnableIPv6 {
		return Network{}, errdefs.Invalid("network %s would have no addresses: --ipv4=false needs --ipv6", cfg.Name)
	}
	if cfg.Options == nil {
		cfg.Options = map[string]string{}
	}
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	if err := d.ValidateOptions(cfg.Options); err != nil {
		return Network{}, err
	}
	if c.cluster != nil {
		if _, taken := c.cluster.NetworkNamed(cfg.Name); taken {
			return Network{}, errdefs.Conflict("network with name %s already exists in the cluster", cfg.Name)
		}
	}
	dn := driver.Network{ID: NewID(), Name: cfg.Name, Options: cfg.Options, Internal: cfg.Internal}
	if d.Capabilities().Scope == driver.ScopeGlobal {
		if cfg.DisableIPv4 {
			return Network{}, errdefs.Invalid("IPv6-only %s networks are not supported: a global network always has IPv4 (drop --ipv4=false)", cfg.Driver)
		}
		return c.createGlobalNetwork(cfg, d, dn)
	}
	if cfg.EnableIPv6 && !d.Capabilities().IPv6 {
		return Network{}, errdefs.Invalid("the %s driver does not support IPv6 (--ipv6)", cfg.Driver)
	}
	if err := c.prepareNetwork(d, cfg.Driver, &dn); err != nil {
		return Network{}, err
	}
	pools, avoid, err := c.planPools(cfg, d, dn)
	if err != nil {
		return Network{}, err
	}
	rec := Network{
		ID: dn.ID, Name: cfg.Name, Driver: cfg.Driver, Created: time.Now(),
		Internal: dn.Internal, Attachable: cfg.Attachable, IPAMDriver: cfg.IPAMDriver, IPAMOptions: cfg.IPAMOptions,
		EnableIPv6: cfg.EnableIPv6, NoIPv4: cfg.DisableIPv4, UserSubnet6: userSubnet(cfg.Pools, true),
		Options: cfg.Options, Labels: cfg.Labels, Predefined: predefined, UserSubnet: userSubnet(cfg.Pools, false),
		DriverState: dn.State,
	}
	n := &network{rec: rec}
	alloc := c.allocator(n)
	for _, p := range pools {
		info, err := alloc.RequestPool(ipam.PoolRequest{Owner: rec.ID, Config: p.config(), Avoid: avoid})
		if err != nil {
			c.releasePools(n)
			return Network{}, classifyPoolError(err)
		}
		n.pools = append(n.pools, info)
		p.Subnet, p.Gateway = info.Subnet, info.Gateway
		n.rec.IPAM = append(n.rec.IPAM, p)
	}
	// Record first: a crash after the bridge exists leaves a record that recovery restores,
	// never a bridge nobody knows about.
	if err := c.store.Put(store.Networks, rec.ID, n.rec); err != nil {
		c.releasePools(n)
		return Network{}, err
	}
	faults.Point("network-recorded")
	if err := d.CreateNetwork(n.driverView()); err != nil {
		if derr := c.store.Delete(store.Networks, rec.ID); derr != nil {
			// The record stays, and so do its pools: the next start restores the network.
			return Network{}, errors.Join(err, fmt.Errorf("rolling back the record of network %s: %w", rec.Name, derr))
		}
		c.releasePools(n)
		return Network{}, err
	}
	c.networks[rec.ID] = n
	faults.Point("network-created")
	if fn, ok := c.firewallNetwork(n.rec); ok {
		if err := c.fw.AddNetwork(fn); err != nil {
			if rerr := c.deleteNetwork(n); rerr != nil {
				slog.Error("rolling back a network whose firewall rules failed", "network", n.rec.Name, "err", rerr)
			}
			return Network{}, fmt.Errorf("programming the firewall of network %s: %w", n.rec.Name, err)
		}
	}
	return copyNetwork(n.rec), nil
}

// prepareNetwork gives the driver, if it wants them, its say on the network before anything
// is recorded: completing the definition from the host, then refusing conflicts with the
// driver's other networks.
func (c *Controller) prepareNetwork(d driver.Driver, driverName string, dn *driver.Network) error {
	if p, ok := d.(driver.Preparer); ok {
		if err := p.PrepareNetwork(dn); err != nil {
			return err
		}
	}
	if cc, ok := d.(driver.ConflictChecker); ok {
		var others []driver.Network
		for _, n := range c.sortedNetworks() {
			if n.rec.Driver == driverName {
				others = append(others, n.driverView())
			}
		}
		if err := cc.CheckConflicts(*dn, others); err != nil {
			return err
		}
	}
	return nil
}

// planPools turns the requested pools into validated ones and adds a default pool for each
// family the network has without one: for IPv4 the driver's choice if it has one
// (driver.SubnetChooser), else a pool with no subnet, which the allocator picks so that it
// overlaps none of avoid; for IPv6 a /64 of the daemon's IPv6 pool.
func (c *Controller) planPools(cfg NetworkConfig, d driver.Driver, dn driver.Network) (pools []Pool, avoid []netip.Prefix, err error) {
	existing := c.usedSubnets()
	has4, has6 := false, false
	for _, r := range cfg.Pools {
		p, err := parsePool(r)
		if err != nil {
			return nil, nil, err
		}
		v6 := p.Subnet.Addr().Is6()
		switch {
		case v6 && !cfg.EnableIPv6:
			return nil, nil, errdefs.Invalid("invalid --subnet %s: an IPv6 subnet needs --ipv6", p.Subnet)
		case !v6 && cfg.DisableIPv4:
			return nil, nil, errdefs.Invalid("invalid --subnet %s: the network has no IPv4 (--ipv4=false)", p.Subnet)
		}
		if err := ipam.CheckOverlap(p.Subnet, existing); err != nil {
			return nil, nil, errdefs.Conflict("%w", err)
		}
		existing = append(existing, p.Subnet)
		pools = append(pools, p)
		has4, has6 = has4 || !v6, has6 || v6
	}
	if cfg.EnableIPv6 && !has6 {
		host, err := hostPrefixes(netlink.FAMILY_V6)
		if err != nil {
			return nil, nil, err
		}
		s, err := ipam.PickDefault6(c.v6Pool, append(slices.Clone(existing), host...))
		if err != nil {
			return nil, nil, classifyPoolError(err)
		}
		existing = append(existing, s)
		pools = append(pools, Pool{Subnet: s})
	}
	if has4 || cfg.DisableIPv4 {
		return pools, nil, nil
	}
	if sc, ok := d.(driver.SubnetChooser); ok {
		s, reserved, err := sc.DefaultSubnet(dn)
		if err != nil {
			return nil, nil, err
		}
		if s.Prefix.IsValid() {
			if err := ipam.CheckOverlap(s.Prefix, existing); err != nil {
				return nil, nil, errdefs.Conflict("%w", err)
			}
			return append([]Pool{{Subnet: s.Prefix, Gateway: s.Gateway, Aux: reserved}}, pools...), nil, nil
		}
	}
	host, err := hostPrefixes(netlink.FAMILY_V4)
	if err != nil {
		return nil, nil, err
	}
	// The IPv4 pool first: Docker lists it first in inspect, and an endpoint's first address.
	return append([]Pool{{}}, pools...), append(existing, host...), nil
}

func parsePool(r PoolRequest) (Pool, error) {
	var p Pool
	var err error
	if p.Subnet, err = netip.ParsePrefix(r.Subnet); err != nil {
		return p, errdefs.Invalid("invalid subnet %q: want a CIDR such as 172.30.0.0/16", r.Subnet)
	}
	if p.Subnet.Addr().Is4In6() || p.Subnet.Addr().Zone() != "" {
		return p, errdefs.Invalid("invalid subnet %s: want a plain IPv4 or IPv6 CIDR", p.Subnet)
	}
	if r.IPRange != "" {
		if p.IPRange, err = netip.ParsePrefix(r.IPRange); err != nil {
			return p, errdefs.Invalid("invalid ip-range %q: want a CIDR such as 172.30.5.0/24", r.IPRange)
		}
	}
	if r.Gateway != "" {
		if p.Gateway, err = netip.ParseAddr(r.Gateway); err != nil {
			return p, errdefs.Invalid("invalid gateway %q: want an IP address", r.Gateway)
		}
	}
	for name, a := range r.Aux {
		addr, err := netip.ParseAddr(a)
		if err != nil {
			return p, errdefs.Invalid("invalid aux-address %s=%q: want an IP address", name, a)
		}
		if p.Aux == nil {
			p.Aux = map[string]netip.Addr{}
		}
		p.Aux[name] = addr
	}
	if _, err := ipam.NewPool(p.config()); err != nil {
		return p, errdefs.Invalid("%w", err)
	}
	return p, nil
}

// usedSubnets lists the subnets of every existing network.
func (c *Controller) usedSubnets() []netip.Prefix {
	var out []netip.Prefix
	for _, n := range c.networks {
		for _, p := range n.rec.IPAM {
			out = append(out, p.Subnet)
		}
	}
	return out
}

// hostPrefixes lists the host's routes and addresses of family (netlink.FAMILY_V4 or _V6)
// that a default pool must not overlap, as Docker checks before picking one. The default route
// overlaps everything and is not a reason to skip a pool; nor are link-local and multicast
// routes, which every IPv6 interface has. A list it cannot read whole is an error: a partial
// one could hand out a pool that overlaps a route it did not see.
func hostPrefixes(family int) ([]netip.Prefix, error) {
	var out []netip.Prefix
	routes, err := nldump.RouteList(nil, nil, family)
	if err != nil {
		return nil, fmt.Errorf("choosing a default subnet: reading the host's routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		// Every IPv6 interface has link-local and multicast routes: no reason to skip a pool.
		if p, ok := prefixOf(r.Dst.IP, r.Dst.Mask); ok && p.Bits() > 0 && (family != netlink.FAMILY_V6 || p.Addr().IsGlobalUnicast()) {
			out = append(out, p)
		}
	}
	addrs, err := nldump.AddrList(nil, nil, family)
	if err != nil {
		return nil, fmt.Errorf("choosing a default subnet: reading the host's addresses: %w", err)
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IP, a.Mask); ok && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
			out = append(out, p)
		}
	}
	return out, nil
}

// RemoveNetwork deletes a network that no endpoint uses.
func (c *Controller) RemoveNetwork(ref string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.resolveNetwork(ref)
	if err != nil {
		return err
	}
	return c.removeNetwork(n)
}

func (c *Controller) removeNetwork(n *network) error {
	if c.isGlobal(n.rec) && !n.rec.Predefined {
		return c.removeGlobalNetwork(n)
	}
	if err := c.deleteNetwork(n); err != nil {
		return err
	}
	if fn, ok := c.firewallNetwork(n.rec); ok {
		if err := c.fw.RemoveNetwork(fn.Bridge); err != nil {
			return fmt.Errorf("removing the firewall elements of network %s: %w", n.rec.Name, err)
		}
	}
	return nil
}

// deleteNetwork removes n's kernel objects, record and pools, refusing while it has endpoints.
func (c *Controller) deleteNetwork(n *network) error {
	if n.rec.Predefined {
		return errdefs.Forbidden("%s is a pre-defined network and cannot be removed", n.rec.Name)
	}
	if eps := c.networkEndpoints(n.rec.ID); len(eps) > 0 {
		return errdefs.Forbidden("error while removing network: network %s id %s has active endpoints (%s); disconnect or remove them first",
			n.rec.Name, n.rec.ID, eps[0].ContainerName)
	}
	if err := c.driver(n).DeleteNetwork(n.driverView()); err != nil {
		return err
	}
	if err := c.store.Delete(store.Networks, n.rec.ID); err != nil {
		return err
	}
	delete(c.networks, n.rec.ID)
	c.dropReservations(n)
	c.releasePools(n)
	return nil
}

// classifyPoolError gives an allocator's refusal its kind for the API.
func classifyPoolError(err error) error {
	switch {
	case errors.Is(err, ipam.ErrNoDefaultPool), errors.Is(err, ipam.ErrNoDefaultPool6), errors.Is(err, ipam.ErrOverlap):
		return errdefs.Conflict("%w", err)
	case errors.Is(err, ipam.ErrInvalidConfig):
		return errdefs.Invalid("%w", err)
	}
	return err
}

// Prune removes every user network without endpoints and returns their names.
func (c *Controller) Prune(match func(Network) bool) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var removed []string
	for _, n := range c.sortedNetworks() {
		if n.rec.Predefined || len(c.networkEndpoints(n.rec.ID)) > 0 || (match != nil && !match(copyNetwork(n.rec))) {
			continue
		}
		if err := c.removeNetwork(n); err != nil {
			if c.isGlobal(n.rec) && errdefs.Is(err, errdefs.KindForbidden) {
				continue // in use on another host
			}
			return removed, err
		}
		removed = append(removed, n.rec.Name)
	}
	return removed, nil
}

// Networks lists every network, sorted by name.
func (c *Controller) Networks() []Network {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Network
	for _, n := range c.sortedNetworks() {
		out = append(out, copyNetwork(n.rec))
	}
	return out
}

// Network returns one network by ID, name or unique ID prefix.
func (c *Controller) Network(ref string) (Network, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.resolveNetwork(ref)
	if err != nil {
		return Network{}, err
	}
	return copyNetwork(n.rec), nil
}

// Scope is where network n exists, as its driver declares: "local" or "global".
func (c *Controller) Scope(n Network) string {
	d, err := c.drivers.Driver(n.Driver)
	if err != nil {
		return string(driver.ScopeLocal)
	}
	return string(d.Capabilities().Scope)
}

// NetworkEndpoints lists the endpoints on a network, by join order.
func (c *Controller) NetworkEndpoints(networkID string) []Endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Endpoint
	for _, ep := range c.networkEndpoints(networkID) {
		out = append(out, *ep)
	}
	return out
}

func (n *network) driverView() driver.Network { return driverView(n.rec) }

// driverView is what a driver is told about a network.
func driverView(rec Network) driver.Network {
	dn := driver.Network{ID: rec.ID, Name: rec.Name, Options: rec.Options, Internal: rec.Internal, SegmentID: rec.SegmentID, State: rec.DriverState}
	for _, p := range rec.IPAM {
		dn.Subnets = append(dn.Subnets, driver.Subnet{Prefix: p.Subnet, Gateway: p.Gateway})
	}
	return dn
}

func copyNetwork(n Network) Network {
	n.IPAM = append([]Pool(nil), n.IPAM...)
	n.Options = copyMap(n.Options)
	n.Labels = copyMap(n.Labels)
	n.IPAMOptions = copyMap(n.IPAMOptions)
	n.DriverState = copyMap(n.DriverState)
	return n
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
