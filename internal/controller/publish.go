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
	// Bridge and IP are where the IPv4 ports go: the network that gives the sandbox its IPv4
	// default route and the container's address there; Bridge6 and IP6 the same for IPv6,
	// which may be another network (records before IPv6 have no Bridge6: it is Bridge).
	Bridge   string
	IP       netip.Addr
	Bridge6  string     `json:",omitempty"`
	IP6      netip.Addr `json:",omitempty"`
	Mappings []PortMapping
}

// target is one container address ports go to, on its network's bridge.
type target struct {
	bridge string
	ip     netip.Addr
}

// targets are p's valid container addresses with their bridges.
func (p Published) targets() []target {
	var out []target
	if p.IP.IsValid() {
		out = append(out, target{p.Bridge, p.IP})
	}
	if p.IP6.IsValid() {
		b := p.Bridge6
		if b == "" {
			b = p.Bridge
		}
		out = append(out, target{b, p.IP6})
	}
	return out
}

// proxyTarget is where the userland proxy of m relays: the container's address of m's host
// address family if it has one, else its other one.
func (p Published) proxyTarget(m PortMapping) netip.Addr {
	if m.HostIP.Is6() && p.IP6.IsValid() || !p.IP.IsValid() {
		return p.IP6
	}
	return p.IP
}

// checkFamilies refuses a port whose host address is of a family the container has no address
// of on the network that routes that family ([::1]:8080:80 on an IPv4-only network, say), and
// an SCTP port on [::1], which only the userland proxy could carry and it carries no SCTP.
func checkFamilies(name string, ip4, ip6 netip.Addr, ms []PortMapping) error {
	for _, m := range ms {
		if !firewall.Applies(ip4, m) && !firewall.Applies(ip6, m) {
			fam := "IPv4"
			if m.HostIP.Is6() {
				fam = "IPv6"
			}
			return errdefs.Invalid("cannot publish %s: container %s has no %s address on a network with a gateway", m, name, fam)
		}
		if m.Proto == portmap.SCTP && m.HostIP == netip.IPv6Loopback() {
			return errdefs.Invalid("cannot publish %s: SCTP on [::1] cannot be carried (NAT never routes from ::1, and the userland proxy has no SCTP)", m)
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
	var done []target
	for _, t := range p.targets() {
		if err := c.fw.AddPorts(t.bridge, t.ip, ms); err != nil {
			for _, d := range done {
				_ = c.fw.RemovePorts(d.bridge, d.ip, ms) // best effort: the publish fails either way
			}
			return err
		}
		done = append(done, t)
	}
	return nil
}

// unprogramPorts removes p's ports from the firewall, for each container address.
func (c *Controller) unprogramPorts(p Published) error {
	ms := natMappings(p.Mappings)
	var errs []error
	for _, t := range p.targets() {
		errs = append(errs, c.fw.RemovePorts(t.bridge, t.ip, ms))
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
	r4, r6 := c.portRoutes(sb.id)
	if !r4.ok && !r6.ok {
		return nil // no network with a way out: nothing to publish on (Docker ignores it)
	}
	ms, twin := defaultBindings(sb.cfg.Ports, r4, r6)
	if err := checkFamilies(sb.cfg.ContainerName, r4.ep.Address.Addr(), r6.ep.Address6.Addr(), ms); err != nil {
		return err
	}
	reserved, err := c.ports.ReserveAll(ms)
	if err != nil {
		return err
	}
	// Docker's default binding on IPv6 too: [::] with the host port the IPv4 side got.
	var twins []PortMapping
	for i, m := range reserved {
		if twin[i] {
			m.HostIP = netip.IPv6Unspecified()
			twins = append(twins, m)
		}
	}
	reserved6, err := c.ports.ReserveAll(twins)
	if err != nil {
		c.ports.ReleaseAll(reserved)
		return err
	}
	// Each twin right after its IPv4 side, as Docker lists 0.0.0.0 then ::.
	all := make([]PortMapping, 0, len(reserved)+len(reserved6))
	for i, m := range reserved {
		all = append(all, m)
		if twin[i] {
			all, reserved6 = append(all, reserved6[0]), reserved6[1:]
		}
	}
	reserved = all
	p := &Published{Bridge: r4.e.Interface, IP: r4.ep.Address.Addr(), Bridge6: r6.e.Interface, IP6: r6.ep.Address6.Addr(), Mappings: reserved}
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

// portRoute is where a sandbox's published ports of one family go: the endpoint that gives
// it its default route of that family and how that network meets the firewall (ok false: the
// sandbox has no such route, or its network publishes no ports).
type portRoute struct {
	ok bool
	ep Endpoint
	e  driver.Exposure
}

// portRoutes are a sandbox's port routes of each family: IPv4 ports go where its IPv4
// default route goes, IPv6 ports where its IPv6 one goes, as in Docker, which may be two
// networks (an IPv6-only one joined first, an IPv4 one next).
func (c *Controller) portRoutes(containerID string) (r4, r6 portRoute) {
	c.mu.Lock()
	eps := c.sandboxEndpoints(containerID)
	var nets [2]Network
	var gws [2]*Endpoint
	for i, v6 := range []bool{false, true} {
		if gws[i] = routeEndpoint(eps, v6); gws[i] != nil {
			nets[i] = copyNetwork(c.networks[gws[i].NetworkID].rec)
		}
	}
	c.mu.Unlock()
	var out [2]portRoute
	for i := range out {
		if gws[i] == nil {
			continue
		}
		if e, ok := c.exposure(nets[i]); ok {
			out[i] = portRoute{ok: true, ep: *gws[i], e: e}
		}
	}
	return out[0], out[1]
}

// defaultBindings gives each mapping without host address Docker's default: all IPv4
// addresses (or the network's host_binding_ipv4) when the sandbox routes IPv4, and all IPv6
// addresses too when it also routes IPv6 — twin[i] marks the mappings whose IPv6 twin (the
// same host port on [::]) is to be added once the IPv4 port is chosen; an IPv6-only sandbox
// gets [::] alone.
func defaultBindings(ports []PortMapping, r4, r6 portRoute) (ms []PortMapping, twin []bool) {
	for _, m := range ports {
		dflt := !m.HostIP.IsValid()
		if dflt {
			switch {
			case r4.ok && r4.e.HostBinding.IsValid():
				m.HostIP = r4.e.HostBinding
			case r4.ok:
				m.HostIP = netip.IPv4Unspecified()
			default:
				m.HostIP = netip.IPv6Unspecified()
			}
		}
		ms = append(ms, m)
		twin = append(twin, dflt && r4.ok && r6.ok)
	}
	return ms, twin
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
		px, err := portmap.StartProxy(m, p.proxyTarget(m))
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
// SCTP stay with NAT alone): a port on an IPv4 address (0.0.0.0 included) goes to the
// container's IPv4 address, one on an IPv6 address ([::] included, which also serves [::1],
// where NAT cannot) to its IPv6 address.
func localServices(p Published) []hostlocal.Service {
	var out []hostlocal.Service
	for _, m := range p.Mappings {
		to := p.IP
		if m.HostIP.Is6() {
			to = p.IP6
		}
		if m.Proto == portmap.TCP && to.IsValid() {
			out = append(out, hostlocal.Service{Host: netip.AddrPortFrom(m.HostIP, m.HostPort),
				Container: netip.AddrPortFrom(to, m.ContainerPort)})
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
		for _, t := range p.targets() {
			for _, m := range natMappings(p.Mappings) {
				if firewall.Applies(t.ip, m) {
					st.Ports = append(st.Ports, firewall.Published{Bridge: t.bridge, ContainerIP: t.ip, Mapping: m})
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
