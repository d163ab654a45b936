package daemon

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strconv"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/controller"
	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/driver/bridge"
	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/faults"
	"github.com/cnet-dev/cnet/internal/firewall"
	"github.com/cnet-dev/cnet/internal/portmap"
	"github.com/cnet-dev/cnet/internal/portmap/hostlocal"
)

// published is what a running container has published: where the DNAT goes and the host
// ports it holds. It is recorded so that a restarted daemon can hold the same ports again and
// remove leftovers.
type published struct {
	Bridge   string
	IP       netip.Addr
	Mappings []portmap.Mapping
}

// bridgeName is the Linux bridge of a bridge-driver network ("" for other drivers).
func bridgeName(n controller.Network) string {
	if n.Driver != "bridge" {
		return ""
	}
	return bridge.BridgeName(driver.Network{ID: n.ID, Options: n.Options})
}

// firewallNetwork is the firewall's view of a bridge network.
func firewallNetwork(n controller.Network) firewall.Network {
	opt := func(key string) bool {
		v, err := strconv.ParseBool(n.Options[key])
		return err != nil || v // absent or malformed: Docker's default, on
	}
	fn := firewall.Network{Bridge: bridgeName(n), Internal: n.Internal,
		Masquerade: opt(bridge.OptMasquerade), ICC: opt(bridge.OptICC)}
	for _, p := range n.IPAM {
		fn.Subnets = append(fn.Subnets, p.Subnet)
	}
	return fn
}

// requestedMappings turns -p bindings (and -P's exposed ports) into mappings, validated; a
// zero host IP takes the network's host_binding_ipv4 later.
func requestedMappings(hc api.HostConfig, exposed map[string]struct{}) ([]portmap.Mapping, error) {
	var out []portmap.Mapping
	keys := make([]string, 0, len(hc.PortBindings))
	for k := range hc.PortBindings {
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
		bindings := hc.PortBindings[key]
		if len(bindings) == 0 {
			bindings = []api.PortBinding{{}}
		}
		for _, b := range bindings {
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
	if hc.PublishAllPorts {
		for key := range exposed {
			port, err := portmap.ParsePort(key)
			if err != nil || seen[port.String()] {
				continue
			}
			out = append(out, portmap.Mapping{ContainerPort: port.Num, Proto: port.Proto})
		}
	}
	return out, nil
}

// publishPorts reserves the container's host ports and programs their DNAT, on the endpoint
// that gives the container its default route (Docker publishes on the container's gateway
// network). The caller holds c.mu; it returns an undo.
func (d *Daemon) publishPorts(c *ctr) (func(), error) {
	noop := func() {}
	ms, err := requestedMappings(c.rec.HostConfig, c.rec.Config.ExposedPorts)
	if err != nil || len(ms) == 0 {
		return noop, err
	}
	var gw *controller.Endpoint
	for _, ep := range d.ctrl.SandboxEndpoints(c.rec.ID) {
		if ep.Gateway.IsValid() {
			gw = &ep
			break
		}
	}
	if gw == nil {
		return noop, nil // no network with a way out: nothing to publish on (Docker ignores it)
	}
	n, err := d.ctrl.Network(gw.NetworkID)
	if err != nil || bridgeName(n) == "" {
		return noop, err
	}
	hostIP := netip.IPv4Unspecified()
	if a, err := netip.ParseAddr(n.Options[bridge.OptHostBinding]); err == nil {
		hostIP = a
	}
	for i := range ms {
		if !ms[i].HostIP.IsValid() {
			ms[i].HostIP = hostIP
		}
	}
	reserved, err := d.ports.ReserveAll(ms)
	if err != nil {
		return noop, err
	}
	p := published{Bridge: bridgeName(n), IP: gw.Address.Addr(), Mappings: reserved}
	err = d.fw.AddPorts(p.Bridge, p.IP, p.Mappings)
	if err == nil {
		if err = d.addLocal(p); err != nil {
			_ = d.fw.RemovePorts(p.Bridge, p.IP, p.Mappings) // best effort: the publish fails either way
		}
	}
	if err != nil {
		d.ports.ReleaseAll(reserved)
		return noop, fmt.Errorf("publishing ports of container %s: %w", c.rec.Name, err)
	}
	c.rec.Published = &p
	faults.Point("ports-published")
	if err := d.startProxies(c); err != nil {
		d.unpublishPorts(c)
		return noop, err
	}
	return func() { d.unpublishPorts(c) }, nil
}

// startProxies starts the userland proxies of c's published ports, when the daemon runs them.
func (d *Daemon) startProxies(c *ctr) error {
	p := c.rec.Published
	if !d.cfg.UserlandProxy || p == nil {
		return nil
	}
	for _, m := range p.Mappings {
		if m.Proto == portmap.SCTP {
			continue // kernel NAT only
		}
		px, err := portmap.StartProxy(m, p.IP)
		if err != nil {
			d.stopProxies(c)
			return err
		}
		c.proxies = append(c.proxies, px)
	}
	return nil
}

func (d *Daemon) stopProxies(c *ctr) {
	for _, px := range c.proxies {
		_ = px.Close()
	}
	c.proxies = nil
}

// unpublishPorts removes the container's DNAT and frees its host ports. The caller holds c.mu.
func (d *Daemon) unpublishPorts(c *ctr) {
	d.stopProxies(c)
	p := c.rec.Published
	if p == nil {
		return
	}
	if err := d.removeLocal(*p); err != nil {
		slog.Error("ending the connect() translation of published ports", "container", c.rec.ID[:12], "err", err)
	}
	if err := d.fw.RemovePorts(p.Bridge, p.IP, p.Mappings); err != nil {
		slog.Error("removing published ports", "container", c.rec.ID[:12], "err", err)
	}
	d.ports.ReleaseAll(p.Mappings)
	c.rec.Published = nil
}

// localServices are p's TCP ports as the host's own connect() translation sees them: UDP and
// SCTP stay with NAT alone.
func localServices(p published) []hostlocal.Service {
	var out []hostlocal.Service
	for _, m := range p.Mappings {
		if m.Proto == portmap.TCP {
			out = append(out, hostlocal.Service{Host: netip.AddrPortFrom(m.HostIP, m.HostPort),
				Container: netip.AddrPortFrom(p.IP, m.ContainerPort)})
		}
	}
	return out
}

// addLocal has the host's own connections to p's TCP ports translated at connect(), when the
// host can (a freshly started daemon's maps are empty: restorePorts fills them).
func (d *Daemon) addLocal(p published) error {
	if d.local == nil {
		return nil
	}
	return d.local.Add(localServices(p))
}

// removeLocal ends the translation of p's TCP ports.
func (d *Daemon) removeLocal(p published) error {
	if d.local == nil {
		return nil
	}
	return d.local.Remove(localServices(p))
}

// portsView is inspect's NetworkSettings.Ports: every exposed or published container port,
// with its host bindings while running.
func portsView(rec containerRecord) map[string][]api.PortBinding {
	out := map[string][]api.PortBinding{}
	for key := range rec.Config.ExposedPorts {
		out[key] = nil
	}
	for key := range rec.HostConfig.PortBindings {
		if p, err := portmap.ParsePort(key); err == nil {
			out[p.String()] = nil
		}
	}
	if rec.Published == nil {
		return out
	}
	for _, m := range rec.Published.Mappings {
		key := m.Port().String()
		out[key] = append(out[key], api.PortBinding{HostIP: m.HostIP.String(), HostPort: strconv.Itoa(int(m.HostPort))})
	}
	return out
}

// portsList is ps's Ports: published ones with their host side, exposed ones without.
func portsList(rec containerRecord) []api.Port {
	out := []api.Port{}
	for key, bindings := range portsView(rec) {
		p, err := portmap.ParsePort(key)
		if err != nil {
			continue
		}
		if len(bindings) == 0 {
			out = append(out, api.Port{PrivatePort: p.Num, Type: p.Proto})
		}
		for _, b := range bindings {
			hp, _ := strconv.Atoi(b.HostPort)
			out = append(out, api.Port{IP: b.HostIP, PrivatePort: p.Num, PublicPort: uint16(hp), Type: p.Proto})
		}
	}
	return out
}

// desiredFirewall is what the firewall must hold after a restart: every bridge network and
// the ports of every running container.
func (d *Daemon) desiredFirewall() firewall.State {
	var st firewall.State
	for _, n := range d.ctrl.Networks() {
		if bridgeName(n) != "" {
			st.Networks = append(st.Networks, firewallNetwork(n))
		}
	}
	for _, c := range d.containers {
		if p := c.rec.Published; p != nil && c.rec.State.Running {
			for _, m := range p.Mappings {
				st.Ports = append(st.Ports, firewall.Published{Bridge: p.Bridge, ContainerIP: p.IP, Mapping: m})
			}
		}
	}
	return st
}

// restorePorts holds the recorded host ports of running containers again and brings the
// firewall in line: leftovers of containers that died while the daemon was down go.
func (d *Daemon) restorePorts() {
	probe := d.ports.Probe
	d.ports.Probe = nil // our own DNATs hold these ports; nothing on the host binds them
	for _, c := range d.containers {
		if p := c.rec.Published; p != nil && c.rec.State.Running {
			if _, err := d.ports.ReserveAll(p.Mappings); err != nil {
				slog.Error("holding the published ports of a running container again", "container", c.rec.ID[:12], "err", err)
			}
		}
	}
	d.ports.Probe = probe
	if err := d.fw.Sync(d.desiredFirewall()); err != nil {
		slog.Error("restoring the firewall", "err", err)
	}
	for _, c := range d.containers {
		if c.rec.State.Running && c.rec.Published != nil {
			if err := d.addLocal(*c.rec.Published); err != nil {
				slog.Error("translating the host's connections to a running container's ports", "container", c.rec.ID[:12], "err", err)
			}
		}
	}
	for _, c := range d.containers {
		if c.rec.State.Running {
			if err := d.startProxies(c); err != nil {
				slog.Error("restarting the userland proxies of a running container", "container", c.rec.ID[:12], "err", err)
			}
		}
	}
}

// hostModePortsWarning is Docker's warning for -p with --net host.
const hostModePortsWarning = "Published ports are discarded when using host network mode"

func hasPorts(hc api.HostConfig) bool { return len(hc.PortBindings) > 0 || hc.PublishAllPorts }
