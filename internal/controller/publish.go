package controller

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"

	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/faults"
	"github.com/cnet-dev/cnet/internal/firewall"
	"github.com/cnet-dev/cnet/internal/portmap"
	"github.com/cnet-dev/cnet/internal/portmap/hostlocal"
)

// Firewall is what the controller asks of the host's firewall: a network's fixed rules and a
// sandbox's published ports as elements, and a whole-state sync at start. The kernel's is
// firewall.Firewall (cnet's nftables table); unit tests give a fake.
type Firewall interface {
	AddNetwork(n firewall.Network) error
	RemoveNetwork(bridge string) error
	AddPorts(bridge string, containerIP netip.Addr, ms []portmap.Mapping) error
	RemovePorts(bridge string, containerIP netip.Addr, ms []portmap.Mapping) error
	Sync(desired firewall.State) error
	Close() error
}

// PortMapping is one published port: host address and port, container port and protocol.
type PortMapping = portmap.Mapping

// PortBinding is one host side asked for a container port (-p [IP:][HOSTPORT:]PORT), in
// Docker's HostConfig shape: an empty HostIP or HostPort means any.
type PortBinding struct {
	HostIP   string
	HostPort string
}

// Published is what a running sandbox publishes: where the DNAT goes and the host ports it
// holds. It is recorded so that a restarted daemon holds the same ports again and the
// firewall sync knows what to keep.
type Published struct {
	Bridge string
	// IP and IP6 are the container's addresses on the network, of each family it has there;
	// a port goes to those of them it applies to (firewall.Applies).
	IP       netip.Addr
	IP6      netip.Addr `json:",omitempty"`
	Mappings []PortMapping
}

// targets are p's valid container addresses.
func (p Published) targets() []netip.Addr {
	var out []netip.Addr
	for _, a := range []netip.Addr{p.IP, p.IP6} {
		if a.IsValid() {
			out = append(out, a)
		}
	}
	return out
}

// target is where the userland proxy of m relays: the container's address of m's host
// address family if it has one, else its other one.
func (p Published) target(m PortMapping) netip.Addr {
	if m.HostIP.Is6() && p.IP6.IsValid() || !p.IP.IsValid() {
		return p.IP6
	}
	return p.IP
}

// checkFamilies refuses a port whose host address is of a family the container has no address
// of on its gateway network ([::1]:8080:80 on an IPv4-only network, say).
func checkFamilies(name string, ip4, ip6 netip.Addr, ms []PortMapping) error {
	for _, m := range ms {
		if !firewall.Applies(ip4, m) && !firewall.Applies(ip6, m) {
			fam := "IPv4"
			if m.HostIP.Is6() {
				fam = "IPv6"
			}
			return errdefs.Invalid("cannot publish %s: container %s has no %s address on its gateway network", m, name, fam)
		}
	}
	return nil
}

// natMappings are the mappings of ms that NAT carries: all but those on [::1], which only the
// userland proxy can serve (the kernel never routes a packet from the IPv6 loopback address
// out of lo, and there is no route_localnet for IPv6), and which NAT must then leave alone:
// a DNAT in the output chain would take the connection away from the proxy's socket.
func natMappings(ms []PortMapping) []PortMapping {
	out := make([]PortMapping, 0, len(ms))
	for _, m := range ms {
		if m.HostIP != netip.IPv6Loopback() {
			out = append(out, m)
		}
	}
	return out
}

// programPorts adds p's ports to the firewall for each container address, all or nothing.
func (c *Controller) programPorts(p Published) error {
	ms := natMappings(p.Mappings)
	var done []netip.Addr
	for _, ip := range p.targets() {
		if err := c.fw.AddPorts(p.Bridge, ip, ms); err != nil {
			for _, d := range done {
				_ = c.fw.RemovePorts(p.Bridge, d, ms) // best effort: the publish fails either way
			}
			return err
		}
		done = append(done, ip)
	}
	return nil
}

// unprogramPorts removes p's ports from the firewall, for each container address.
func (c *Controller) unprogramPorts(p Published) error {
	ms := natMappings(p.Mappings)
	var errs []error
	for _, ip := range p.targets() {
		errs = append(errs, c.fw.RemovePorts(p.Bridge, ip, ms))
	}
	return errors.Join(errs...)
}

// Port is a container port and protocol.
type Port = portmap.Port

// ParsePortKey parses a container port key ("80", "80/tcp").
func ParsePortKey(key string) (Port, bool) {
	p, err := portmap.ParsePort(key)
	return p, err == nil
}

// PortKey normalises a container port key ("80", "80/tcp") to Docker's "80/tcp".
func PortKey(key string) (string, bool) {
	p, err := portmap.ParsePort(key)
	if err != nil {
		return "", false
	}
	return p.String(), true
}

// ParsePorts turns -p bindings (and -P's exposed ports) into mappings, validated; a zero host
// IP takes the network's host binding when the ports are published.
func ParsePorts(bindings map[string][]PortBinding, publishAll bool, exposed map[string]struct{}) ([]PortMapping, error) {
	var out []PortMapping
	keys := make([]string, 0, len(bindings))
	for k := range bindings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	seen := map[string]bool{}
	for _, key := range keys {
		port, err := portmap.ParsePort(key)
		if err != nil {
			return nil, errdefs.Invalid("invalid published port %q: %w", key, err)
		}
		seen[port.String()] = true
		bs := bindings[key]
		if len(bs) == 0 {
			bs = []PortBinding{{}}
		}
		for _, b := range bs {
			spec := port.String()
			switch {
			case b.HostIP != "":
				spec = b.HostIP + ":" + b.HostPort + ":" + spec
			case b.HostPort != "":
				spec = b.HostPort + ":" + spec
			}
			ms, err := portmap.ParseSpec(spec)
			if err != nil {
				return nil, errdefs.Invalid("invalid port binding %s → %s: %w", key, spec, err)
			}
			out = append(out, ms...)
		}
	}
	if publishAll {
		for key := range exposed {
			port, err := portmap.ParsePort(key)
			if err != nil || seen[port.String()] {
				continue
			}
			out = append(out, PortMapping{ContainerPort: port.Num, Proto: port.Proto})
		}
	}
	return out, nil
}

// exposure is how network n meets the firewall, when its driver publishes ports.
func (c *Controller) exposure(n Network) (driver.Exposure, bool) {
	d, err := c.drivers.Driver(n.Driver)
	if err != nil || !d.Capabilities().PortPublishing {
		return driver.Exposure{}, false
	}
	e, ok := d.(driver.Exposer)
	if !ok {
		return driver.Exposure{}, false
	}
	return e.Exposure(driverView(n)), true
}

// firewallNetwork is the firewall's view of a network that publishes ports.
func (c *Controller) firewallNetwork(n Network) (firewall.Network, bool) {
	e, ok := c.exposure(n)
	if !ok {
		return firewall.Network{}, false
	}
	fn := firewall.Network{Bridge: e.Interface, Internal: n.Internal, Masquerade: e.Masquerade, ICC: e.ICC}
	for _, p := range n.IPAM {
		fn.Subnets = append(fn.Subnets, p.Subnet)
	}
	return fn, true
}

// publishPorts reserves sb's host ports and programs their DNAT, on the endpoint that gives
// the sandbox its default route (Docker publishes on the container's gateway network). The
// caller holds sb.mu; on error nothing is left published.
func (c *Controller) publishPorts(sb *sbox) error {
	if len(sb.cfg.Ports) == 0 {
		return nil
	}
	gw, n, ok := c.gatewayNetwork(sb.id)
	if !ok {
		return nil // no network with a way out: nothing to publish on (Docker ignores it)
	}
	e, ok := c.exposure(n)
	if !ok {
		return nil
	}
	ms := append([]PortMapping(nil), sb.cfg.Ports...)
	for i := range ms {
		if !ms[i].HostIP.IsValid() {
			ms[i].HostIP = netip.IPv4Unspecified()
			if e.HostBinding.IsValid() {
				ms[i].HostIP = e.HostBinding
			}
		}
	}
	if err := checkFamilies(sb.cfg.ContainerName, gw.Address.Addr(), gw.Address6.Addr(), ms); err != nil {
		return err
	}
	reserved, err := c.ports.ReserveAll(ms)
	if err != nil {
		return err
	}
	p := &Published{Bridge: e.Interface, IP: gw.Address.Addr(), IP6: gw.Address6.Addr(), Mappings: reserved}
	err = c.programPorts(*p)
	if err == nil {
		if err = c.addLocal(*p); err != nil {
			_ = c.unprogramPorts(*p) // best effort: the publish fails either way
		}
	}
	if err != nil {
		c.ports.ReleaseAll(reserved)
		return fmt.Errorf("publishing ports of container %s: %w", sb.cfg.ContainerName, err)
	}
	sb.published = p
	if err := c.saveSandbox(sb); err != nil {
		c.unpublishPorts(sb)
		return err
	}
	faults.Point("ports-published")
	if err := c.startProxies(sb); err != nil {
		c.unpublishPorts(sb)
		return err
	}
	return nil
}

// gatewayNetwork is the endpoint of a sandbox that gives its default route, and its network.
func (c *Controller) gatewayNetwork(containerID string) (Endpoint, Network, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gw := gatewayEndpoint(c.sandboxEndpoints(containerID))
	if gw == nil {
		return Endpoint{}, Network{}, false
	}
	n := c.networks[gw.NetworkID]
	return *gw, copyNetwork(n.rec), true
}

// startProxies starts the userland proxies of sb's published ports, when the daemon runs them,
// and always for ports published on [::1]: the kernel never routes a packet from the IPv6
// loopback address out of lo, so NAT cannot carry them (there is no route_localnet for IPv6).
func (c *Controller) startProxies(sb *sbox) error {
	p := sb.published
	if p == nil {
		return nil
	}
	for _, m := range p.Mappings {
		if m.Proto == portmap.SCTP || !(c.userlandProxy || m.HostIP == netip.IPv6Loopback()) {
			continue // kernel NAT only
		}
		px, err := portmap.StartProxy(m, p.target(m))
		if err != nil {
			c.stopProxies(sb)
			return err
		}
		sb.proxies = append(sb.proxies, px)
	}
	return nil
}

func (c *Controller) stopProxies(sb *sbox) {
	for _, px := range sb.proxies {
		_ = px.Close()
	}
	sb.proxies = nil
}

// unpublishPorts removes sb's DNAT and frees its host ports. The caller holds sb.mu.
func (c *Controller) unpublishPorts(sb *sbox) {
	c.stopProxies(sb)
	p := sb.published
	if p == nil {
		return
	}
	if err := c.removeLocal(*p); err != nil {
		slog.Error("ending the connect() translation of published ports", "container", sb.id[:12], "err", err)
	}
	if err := c.unprogramPorts(*p); err != nil {
		slog.Error("removing published ports", "container", sb.id[:12], "err", err)
	}
	c.ports.ReleaseAll(p.Mappings)
	sb.published = nil
}

// localServices are p's TCP ports as the host's own connect() translation sees them (UDP and
// SCTP stay with NAT alone): a port on an IPv4 address (or 0.0.0.0) goes to the container's
// IPv4 address, one on an IPv6 address to its IPv6 address, and a port published on all
// addresses also to its IPv6 address for connections to [::1] (the `::` wildcard), which NAT
// cannot carry at all.
func localServices(p Published) []hostlocal.Service {
	var out []hostlocal.Service
	add := func(host, container netip.Addr, m PortMapping) {
		out = append(out, hostlocal.Service{Host: netip.AddrPortFrom(host, m.HostPort),
			Container: netip.AddrPortFrom(container, m.ContainerPort)})
	}
	for _, m := range p.Mappings {
		if m.Proto != portmap.TCP {
			continue
		}
		switch {
		case m.HostIP.Is6():
			if p.IP6.IsValid() {
				add(m.HostIP, p.IP6, m)
			}
		default:
			if p.IP.IsValid() {
				add(m.HostIP, p.IP, m)
			}
			if (!m.HostIP.IsValid() || m.HostIP.IsUnspecified()) && p.IP6.IsValid() {
				add(netip.IPv6Unspecified(), p.IP6, m)
			}
		}
	}
	return out
}

// addLocal has the host's own connections to p's TCP ports translated at connect(), when the
// host can (a freshly started daemon's maps are empty: restoring fills them).
func (c *Controller) addLocal(p Published) error {
	if c.local == nil {
		return nil
	}
	return c.local.Add(localServices(p))
}

// removeLocal ends the translation of p's TCP ports.
func (c *Controller) removeLocal(p Published) error {
	if c.local == nil {
		return nil
	}
	return c.local.Remove(localServices(p))
}

// PublishedPorts returns what a running container publishes (nil when nothing).
func (c *Controller) PublishedPorts(containerID string) []PortMapping {
	sb := c.sandbox(containerID)
	if sb == nil {
		return nil
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.published == nil {
		return nil
	}
	return append([]PortMapping(nil), sb.published.Mappings...)
}

// restorePorts holds the recorded host ports of live sandboxes again and brings the firewall
// in line: leftovers of containers that died while the daemon was down go.
func (c *Controller) restorePorts(live []*sbox) {
	probe := c.ports.Probe
	c.ports.Probe = nil // our own DNATs hold these ports; nothing on the host binds them
	var st firewall.State
	for _, n := range c.Networks() {
		if fn, ok := c.firewallNetwork(n); ok {
			st.Networks = append(st.Networks, fn)
		}
	}
	for _, sb := range live {
		p := sb.published
		if p == nil {
			continue
		}
		if _, err := c.ports.ReserveAll(p.Mappings); err != nil {
			slog.Error("holding the published ports of a running container again", "container", sb.id[:12], "err", err)
		}
		for _, ip := range p.targets() {
			for _, m := range natMappings(p.Mappings) {
				if firewall.Applies(ip, m) {
					st.Ports = append(st.Ports, firewall.Published{Bridge: p.Bridge, ContainerIP: ip, Mapping: m})
				}
			}
		}
	}
	c.ports.Probe = probe
	if err := c.fw.Sync(st); err != nil {
		slog.Error("restoring the firewall", "err", err)
	}
	for _, sb := range live {
		if sb.published == nil {
			continue
		}
		if err := c.addLocal(*sb.published); err != nil {
			slog.Error("translating the host's connections to a running container's ports", "container", sb.id[:12], "err", err)
		}
		if err := c.startProxies(sb); err != nil {
			slog.Error("restarting the userland proxies of a running container", "container", sb.id[:12], "err", err)
		}
	}
}
