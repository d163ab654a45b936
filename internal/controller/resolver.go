package controller

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/cnet-dev/cnet/internal/dns"
)

// sandboxDNS is a running sandbox's embedded resolver: its view of the names and the listener
// inside its namespace. Runtime state only: a restarted daemon builds it again.
type sandboxDNS struct {
	resolver *dns.Resolver
	listener *dns.Listener
}

// namesResolve reports whether containers find each other by name on n: on user-defined
// networks of drivers with DNS, as in Docker (the default bridge has no embedded DNS).
func (c *Controller) namesResolve(n Network) bool {
	if n.Predefined {
		return false
	}
	d, err := c.drivers.Driver(n.Driver)
	return err == nil && d.Capabilities().DNS
}

// NamesResolve is namesResolve for the daemon (link rules differ on such networks).
func (c *Controller) NamesResolve(ref string) bool {
	n, err := c.Network(ref)
	return err == nil && c.namesResolve(n)
}

// wantsResolver reports whether sb gets the embedded resolver: it is on at least one network
// where names resolve.
func (c *Controller) wantsResolver(sb *sbox) bool {
	if sb.cfg.HandOff {
		return false // the engine runs its own in its namespace
	}
	for _, a := range sb.cfg.Networks {
		if n, err := c.Network(a.Network); err == nil && c.namesResolve(n) {
			return true
		}
	}
	return false
}

// dnsRecord is what an endpoint publishes: the container's name, aliases, hostname, short ID.
func dnsRecord(cfg *SandboxConfig, ep Endpoint) dns.Record {
	names := append([]string{cfg.ContainerName}, ep.Aliases...)
	names = append(names, cfg.Hostname, cfg.ContainerID[:12])
	return dns.Record{EndpointID: ep.ID, ContainerID: cfg.ContainerID, Names: names, IPv4: ep.Address.Addr(), IPv6: ep.Address6.Addr()}
}

// publishRecords puts sb's endpoints on name-resolving networks into the table and points its
// resolver (if any) at the networks it is on. The caller holds sb.mu.
func (c *Controller) publishRecords(sb *sbox) {
	var nets []string
	forward := false
	for _, ep := range c.SandboxEndpoints(sb.id) {
		n, err := c.Network(ep.NetworkID)
		if err != nil || !c.namesResolve(n) {
			continue
		}
		c.dnsTable.Upsert(n.Name, dnsRecord(&sb.cfg, ep))
		nets = append(nets, n.Name)
		forward = forward || !n.Internal
	}
	if sb.dns != nil {
		sb.dns.resolver.SetNetworks(nets)
		if forward {
			sb.dns.resolver.SetUpstreams(c.upstreams(sb))
		} else {
			// Only --internal networks: nothing leaves through the resolver either.
			sb.dns.resolver.SetUpstreams(nil)
		}
	}
}

// forgetRecords removes sb's endpoints from the table (before they go).
func (c *Controller) forgetRecords(sb *sbox) {
	for _, ep := range c.SandboxEndpoints(sb.id) {
		if n, err := c.Network(ep.NetworkID); err == nil {
			c.dnsTable.Remove(n.Name, ep.ID)
		}
	}
}

// startResolver serves sb's resolver at 127.0.0.11 in its namespace. The caller holds sb.mu.
func (c *Controller) startResolver(sb *sbox) error {
	if sb.dns != nil {
		return nil
	}
	path := c.SandboxPath(sb.id)
	r := dns.NewResolver(c.dnsTable, c.dnsFwd, dns.Config{
		Links: sb.cfg.Links, Dial: dns.NamespaceDialer(path), NdotsSet: ndotsSet(sb.cfg.DNS.Options),
	})
	l, err := dns.Serve(path, r)
	if err != nil {
		return fmt.Errorf("starting the embedded DNS server of container %s: %w", sb.cfg.ContainerName, err)
	}
	sb.dns = &sandboxDNS{resolver: r, listener: l}
	c.publishRecords(sb)
	return nil
}

// stopResolver closes sb's resolver, if it has one. The caller holds sb.mu.
func (c *Controller) stopResolver(sb *sbox) {
	if sb.dns == nil {
		return
	}
	if err := sb.dns.listener.Close(); err != nil {
		slog.Debug("closing an embedded DNS server", "container", sb.id[:12], "err", err)
	}
	sb.dns = nil
}

// upstreams are where the resolver forwards what it does not own: the container's --dns, or
// the host's nameservers (loopback ones included: the resolver dials those from the daemon's
// namespace, where they listen).
func (c *Controller) upstreams(sb *sbox) []netip.AddrPort {
	servers := sb.cfg.DNS.Nameservers
	if len(servers) == 0 {
		servers = hostNameservers()
	}
	var out []netip.AddrPort
	for _, s := range servers {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.AddrPortFrom(a, 53))
		}
	}
	return out
}

// hostNameservers reads the nameserver lines of the daemon's /etc/resolv.conf.
func hostNameservers() []string {
	data, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return nil
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "nameserver" {
			out = append(out, f[1])
		}
	}
	return out
}

func ndotsSet(options []string) bool {
	for _, o := range options {
		if strings.HasPrefix(o, "ndots:") {
			return true
		}
	}
	return false
}
