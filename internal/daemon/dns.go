package daemon

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/cnet-dev/cnet/internal/controller"
	"github.com/cnet-dev/cnet/internal/dns"
)

// sandboxDNS is a running container's embedded resolver: its view of the names and the
// listener inside its namespace. Runtime state only: a restarted daemon builds it again.
type sandboxDNS struct {
	resolver *dns.Resolver
	listener *dns.Listener
}

// userNetwork reports whether names resolve on n: on user-defined networks only, as Docker
// (the default bridge has no embedded DNS; host and none have no endpoints).
func userNetwork(n controller.Network) bool { return !n.Predefined }

// wantsResolver reports whether a container gets the embedded resolver: it has a sandbox of
// its own and at least one user-defined network.
func (d *Daemon) wantsResolver(c *ctr) bool {
	if !c.rec.ownsSandbox() {
		return false
	}
	for name := range c.rec.Networks {
		if n, err := d.ctrl.Network(name); err == nil && userNetwork(n) {
			return true
		}
	}
	return false
}

// dnsRecord is what a container's endpoint publishes: its name, aliases, hostname, short ID.
func dnsRecord(rec *containerRecord, ep controller.Endpoint) dns.Record {
	names := append([]string{rec.Name}, ep.Aliases...)
	names = append(names, rec.Config.Hostname, rec.ID[:12])
	return dns.Record{EndpointID: ep.ID, ContainerID: rec.ID, Names: names, IPv4: ep.Address.Addr()}
}

// publishRecords puts the container's endpoints on user networks into the table and points
// its resolver (if any) at the networks it is on. The caller holds c.mu.
func (d *Daemon) publishRecords(c *ctr) {
	var nets []string
	forward := false
	for _, ep := range d.ctrl.SandboxEndpoints(c.rec.ID) {
		n, err := d.ctrl.Network(ep.NetworkID)
		if err != nil || !userNetwork(n) {
			continue
		}
		d.dnsTable.Upsert(n.Name, dnsRecord(&c.rec, ep))
		nets = append(nets, n.Name)
		forward = forward || !n.Internal
	}
	if c.dns != nil {
		c.dns.resolver.SetNetworks(nets)
		if forward {
			c.dns.resolver.SetUpstreams(d.upstreams(c))
		} else {
			// Only --internal networks: nothing leaves through the resolver either.
			c.dns.resolver.SetUpstreams(nil)
		}
	}
}

// forgetRecords removes the container's endpoints from the table (before they go).
func (d *Daemon) forgetRecords(c *ctr) {
	for _, ep := range d.ctrl.SandboxEndpoints(c.rec.ID) {
		if n, err := d.ctrl.Network(ep.NetworkID); err == nil {
			d.dnsTable.Remove(n.Name, ep.ID)
		}
	}
}

// startResolver serves the container's resolver at 127.0.0.11 in its sandbox. The caller
// holds c.mu.
func (d *Daemon) startResolver(c *ctr) error {
	if c.dns != nil {
		return nil
	}
	path := d.ctrl.SandboxPath(c.rec.ID)
	r := dns.NewResolver(d.dnsTable, d.dnsFwd, dns.Config{
		Links: linkNames(c.rec.Links), Dial: dns.NamespaceDialer(path), NdotsSet: ndotsSet(c.rec.HostConfig.DNSOptions),
	})
	l, err := dns.Serve(path, r)
	if err != nil {
		return fmt.Errorf("starting the embedded DNS server of container %s: %w", c.rec.Name, err)
	}
	c.dns = &sandboxDNS{resolver: r, listener: l}
	d.publishRecords(c)
	return nil
}

// stopResolver closes the container's resolver, if it has one. The caller holds c.mu.
func (d *Daemon) stopResolver(c *ctr) {
	if c.dns == nil {
		return
	}
	if err := c.dns.listener.Close(); err != nil {
		slog.Debug("closing an embedded DNS server", "container", c.rec.ID[:12], "err", err)
	}
	c.dns = nil
}

// upstreams are where the resolver forwards what it does not own: the container's --dns, or
// the host's nameservers (loopback ones included: the resolver dials those from the daemon's
// namespace, where they listen).
func (d *Daemon) upstreams(c *ctr) []netip.AddrPort {
	servers := c.rec.HostConfig.DNS
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
