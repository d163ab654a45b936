package daemon

import (
	"context"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/controller"
	"github.com/cnet-dev/cnet/internal/errdefs"
)

// NetworkList implements api.Backend. As Docker's list, it leaves Containers empty.
func (d *Daemon) NetworkList(context.Context) ([]api.Network, error) {
	var out []api.Network
	for _, n := range d.ctrl.Networks() {
		out = append(out, d.toAPINetwork(n, nil))
	}
	return out, nil
}

// NetworkInspect implements api.Backend.
func (d *Daemon) NetworkInspect(_ context.Context, ref string, verbose bool) (api.Network, error) {
	n, err := d.ctrl.Network(ref)
	if err != nil {
		return api.Network{}, err
	}
	out := d.toAPINetwork(n, d.ctrl.NetworkEndpoints(n.ID))
	if verbose && d.ctrl.Scope(n) == "global" {
		diag, err := d.ctrl.DiagnoseNetwork(n.ID)
		if err != nil {
			return api.Network{}, err
		}
		hosts := map[string]string{}
		for _, p := range diag.Peers {
			if p.VTEP.IsValid() {
				hosts[p.VTEP.String()] = p.Host
			}
			out.Diagnosis = append(out.Diagnosis, api.PeerDiagnosis{Endpoint: p.Endpoint, Names: p.Names, Host: p.Host,
				IP: addrString(p.IP), MAC: p.MAC, VTEP: addrString(p.VTEP), KernelVTEP: addrString(p.KernelVTEP),
				KernelIP: addrString(p.KernelIP), Status: p.Status})
		}
		for ip, name := range hosts {
			out.Peers = append(out.Peers, api.PeerInfo{Name: name, IP: ip})
		}
		sort.Slice(out.Peers, func(i, j int) bool { return out.Peers[i].IP < out.Peers[j].IP })
	}
	return out, nil
}

// prefixString is an address with its length as inspect shows it: "" for none.
func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

// addrString is an address as inspect shows it: "" for none.
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func (d *Daemon) toAPINetwork(n controller.Network, eps []controller.Endpoint) api.Network {
	out := api.Network{
		Name: n.Name, ID: n.ID, Created: n.Created, Scope: d.ctrl.Scope(n), Driver: n.Driver,
		EnableIPv6: n.EnableIPv6, Internal: n.Internal, Attachable: n.Attachable,
		IPAM:       api.IPAM{Driver: n.IPAMDriver, Options: n.IPAMOptions, Config: []api.IPAMConfig{}},
		Containers: map[string]api.EndpointResource{},
		Options:    n.Options, Labels: n.Labels,
	}
	if out.Options == nil {
		out.Options = map[string]string{}
	}
	if n.NoIPv4 {
		out.EnableIPv4 = new(bool)
	}
	if n.SegmentID != 0 {
		// As Docker shows an overlay's VNI (the record's map is a copy: n came from Network()).
		out.Options["com.docker.network.driver.overlay.vxlanid_list"] = strconv.FormatUint(uint64(n.SegmentID), 10)
	}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if out.IPAM.Options == nil && !n.Predefined {
		out.IPAM.Options = map[string]string{}
	}
	for _, p := range n.IPAM {
		c := api.IPAMConfig{Subnet: p.Subnet.String()}
		if p.IPRange.IsValid() {
			c.IPRange = p.IPRange.String()
		}
		if p.Gateway.IsValid() {
			c.Gateway = p.Gateway.String()
		}
		for name, a := range p.Aux {
			if c.AuxiliaryAddresses == nil {
				c.AuxiliaryAddresses = map[string]string{}
			}
			c.AuxiliaryAddresses[name] = a.String()
		}
		out.IPAM.Config = append(out.IPAM.Config, c)
	}
	var foreign map[string]cniRecord
	var docker map[string]dockerEndpoint
	if len(eps) > 0 {
		foreign, docker = d.cniSandboxes(), d.dockerSandboxes()
	}
	for _, ep := range eps {
		key, name := ep.ContainerID, ep.ContainerName
		if r, ok := foreign[ep.ContainerID]; ok {
			// Another runtime's container: listed under its own ID, as that runtime shows it.
			key = r.ContainerID
		} else if r, ok := docker[ep.ContainerID]; ok {
			// dockerd tells its plugins no container ID or name: its endpoint ID is what
			// `docker network inspect` shows too.
			key = r.EndpointID
		}
		out.Containers[key] = api.EndpointResource{
			Name: name, EndpointID: ep.ID, MacAddress: ep.MAC, IPv4Address: prefixString(ep.Address),
			IPv6Address: prefixString(ep.Address6),
		}
	}
	return out
}

// NetworkCreate implements api.Backend.
func (d *Daemon) NetworkCreate(_ context.Context, req api.NetworkCreateRequest) (api.NetworkCreateResponse, error) {
	cfg := controller.NetworkConfig{
		Name: req.Name, Driver: req.Driver, Internal: req.Internal, Attachable: req.Attachable,
		EnableIPv6: req.EnableIPv6, Options: req.Options, Labels: req.Labels,
		DisableIPv4: req.EnableIPv4 != nil && !*req.EnableIPv4,
	}
	if req.IPAM != nil {
		cfg.IPAMDriver = req.IPAM.Driver
		cfg.IPAMOptions = req.IPAM.Options
		for _, c := range req.IPAM.Config {
			cfg.Pools = append(cfg.Pools, controller.PoolRequest{Subnet: c.Subnet, IPRange: c.IPRange, Gateway: c.Gateway, Aux: c.AuxiliaryAddresses})
		}
	}
	n, err := d.ctrl.CreateNetwork(cfg)
	if err != nil {
		return api.NetworkCreateResponse{}, err
	}
	d.networkEvent("create", n.ID, n.Name, n.Driver, "")
	return api.NetworkCreateResponse{ID: n.ID}, nil
}

// NetworkRemove implements api.Backend.
func (d *Daemon) NetworkRemove(_ context.Context, ref string) error {
	n, err := d.ctrl.Network(ref)
	if err != nil {
		return err
	}
	if err := d.ctrl.RemoveNetwork(n.ID); err != nil {
		return err
	}
	d.networkEvent("destroy", n.ID, n.Name, n.Driver, "")
	return nil
}

// NetworksPrune implements api.Backend: unused user networks go, those created before `until`
// and matching `label`/`label!` when given.
func (d *Daemon) NetworksPrune(_ context.Context, f api.Filters) (api.NetworksPruneResponse, error) {
	if err := f.Only("until", "label", "label!"); err != nil {
		return api.NetworksPruneResponse{}, err
	}
	until, byTime, err := f.Until(time.Now())
	if err != nil {
		return api.NetworksPruneResponse{}, err
	}
	before := map[string]controller.Network{}
	for _, n := range d.ctrl.Networks() {
		before[n.Name] = n
	}
	removed, err := d.ctrl.Prune(func(n controller.Network) bool {
		return (!byTime || n.Created.Before(until)) && f.MatchLabels(n.Labels)
	})
	if removed == nil {
		removed = []string{}
	}
	for _, name := range removed {
		if n, ok := before[name]; ok {
			d.networkEvent("destroy", n.ID, n.Name, n.Driver, "")
		}
	}
	return api.NetworksPruneResponse{NetworksDeleted: removed}, err
}

// NetworkConnect implements api.Backend: a running container is plugged at once, a stopped
// one when it next starts (Docker's behaviour).
func (d *Daemon) NetworkConnect(_ context.Context, ref string, req api.NetworkConnectRequest) error {
	n, c, err := d.networkAndContainer(ref, req.Container)
	if err != nil {
		return err
	}
	defer c.mu.Unlock()
	if !c.rec.ownsSandbox() {
		return errShared()
	}
	if c.rec.networkMode() == modeNone {
		return errdefs.Forbidden("container cannot be connected to multiple networks with one of the networks in private (none) mode")
	}
	if _, ok := c.rec.Networks[n.Name]; ok {
		return errdefs.Forbidden("endpoint with name %s already exists in network %s", c.rec.Name, n.Name)
	}
	settings := req.EndpointConfig
	if settings == nil {
		settings = &api.EndpointSettings{}
	}
	if len(settings.Links) > 0 {
		// `network connect --link`: a name only this container resolves, on user networks.
		if !d.ctrl.NamesResolve(n.ID) {
			return errdefs.Invalid("--link on network connect works on user-defined networks only; use `run --link` on the default bridge")
		}
		links, err := d.parseConnectLinks(c, n.Name, settings.Links)
		if err != nil {
			return err
		}
		c.rec.Links = append(c.rec.Links, links...)
		if c.rec.State.Running {
			d.ctrl.SetLinks(c.rec.ID, linkNames(c.rec.Links))
		}
	}
	if !c.rec.State.Running {
		if err := validateStatic(n, settings); err != nil {
			return err
		}
		c.rec.Networks[n.Name] = settings
		return d.saveLocked(c)
	}
	if err := d.ctrl.Connect(c.rec.ID, n.ID, joinOptions(c.rec.Name, settings)); err != nil {
		return err
	}
	c.rec.Networks[n.Name] = settings
	d.networkEvent("connect", n.ID, n.Name, n.Driver, c.rec.ID)
	return d.saveLocked(c)
}

// validateStatic checks a --ip for a stopped container before it is recorded, so the error
// comes at connect time rather than at the next start.
func validateStatic(n controller.Network, s *api.EndpointSettings) error {
	if s.IPAMConfig == nil {
		return nil
	}
	for _, want := range []struct {
		ip, family, hint string
		v6               bool
	}{
		{s.IPAMConfig.IPv4Address, "IPv4", "--ip cannot be used on it", false},
		{s.IPAMConfig.IPv6Address, "IPv6", "--ip6 needs a network created with --ipv6", true},
	} {
		if want.ip == "" {
			continue
		}
		a, err := netip.ParseAddr(want.ip)
		if err != nil || a.Is6() != want.v6 || a.Is4In6() || a.Zone() != "" {
			return errdefs.Invalid("invalid %s address %q", want.family, want.ip)
		}
		if !slices.ContainsFunc(n.IPAM, func(p controller.Pool) bool { return p.Subnet.Addr().Is6() == want.v6 }) {
			return errdefs.Invalid("network %s has no %s subnet: %s", n.Name, want.family, want.hint)
		}
		if !slices.ContainsFunc(n.IPAM, func(p controller.Pool) bool { return p.Subnet.Contains(a) }) {
			return errdefs.Invalid("invalid address %s: it does not belong to any of network %s's subnets", a, n.Name)
		}
	}
	return nil
}

// NetworkDisconnect implements api.Backend.
func (d *Daemon) NetworkDisconnect(_ context.Context, ref string, req api.NetworkDisconnectRequest) error {
	n, c, err := d.networkAndContainer(ref, req.Container)
	if err != nil {
		return err
	}
	defer c.mu.Unlock()
	switch {
	case n.Driver == "host":
		return errdefs.Forbidden("container cannot be disconnected from host network or connected to host network")
	case n.Driver == "null":
		return errdefs.Forbidden("container cannot be disconnected from the none network: it has no other")
	case !c.rec.ownsSandbox():
		return errShared()
	}
	if _, ok := c.rec.Networks[n.Name]; !ok {
		return errdefs.Forbidden("container %s is not connected to network %s", c.rec.Name, n.Name)
	}
	if !c.rec.State.Running {
		delete(c.rec.Networks, n.Name)
		return d.saveLocked(c)
	}
	if err := d.ctrl.Disconnect(c.rec.ID, n.ID, req.Force); err != nil {
		return err
	}
	delete(c.rec.Networks, n.Name)
	d.networkEvent("disconnect", n.ID, n.Name, n.Driver, c.rec.ID)
	return d.saveLocked(c)
}

func joinOptions(name string, s *api.EndpointSettings) controller.JoinOptions {
	o := controller.JoinOptions{ContainerName: name, Aliases: s.Aliases}
	if s.IPAMConfig != nil {
		o.IP, o.IP6 = s.IPAMConfig.IPv4Address, s.IPAMConfig.IPv6Address
	}
	return o
}

// networkAndContainer resolves both sides of a connect or disconnect and returns the
// container locked.
func (d *Daemon) networkAndContainer(netRef, containerRef string) (controller.Network, *ctr, error) {
	n, err := d.ctrl.Network(netRef)
	if err != nil {
		return controller.Network{}, nil, err
	}
	c, err := d.lockLive(containerRef)
	if err != nil {
		return controller.Network{}, nil, err
	}
	return n, c, nil
}
