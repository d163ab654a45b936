package daemon

import (
	"net/netip"
	"strings"

	"github.com/cnet-dev/cnet/internal/controller"
	"github.com/cnet-dev/cnet/internal/dockerplugin"
	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/store"
)

// dockerd's networks and their pools (see docker.go for the mapping as a whole).

// bindOption (--ipam-opt cnet.network=NAME) makes a Docker network another name of an existing
// cnet network instead of a new one: cnet's containers, other runtimes' (CNI) and dockerd's then
// share it, and an overlay network spans the hosts of every dockerd bound to it.
const bindOption = "cnet.network"

// dockerBinding records a Docker network that is another name of an existing cnet network.
type dockerBinding struct {
	DockerNetworkID string
	NetworkID       string // cnet's
}

func boundPoolID(networkID string) string { return "net:" + networkID }

// DriverCapabilities implements dockerplugin.Backend.
func (d *Daemon) DriverCapabilities() string { return "local" }

// DefaultAddressSpaces implements dockerplugin.Backend.
func (d *Daemon) DefaultAddressSpaces() (string, string) { return dockerLocalSpace, dockerGlobalSpace }

// RequestPool implements dockerplugin.Backend: a subnet chosen (the user's, or a free
// default) and held until the network is created.
func (d *Daemon) RequestPool(req dockerplugin.RequestPoolRequest) (dockerplugin.RequestPoolResponse, error) {
	if req.V6 {
		return dockerplugin.RequestPoolResponse{}, errdefs.Invalid("cnet's IPAM driver has no IPv6 pools yet")
	}
	if req.Pool == "" && req.SubPool != "" {
		return dockerplugin.RequestPoolResponse{}, errdefs.Invalid("an --ip-range needs a --subnet")
	}
	d.dockerMu.Lock()
	defer d.dockerMu.Unlock()
	if name := req.Options[bindOption]; name != "" {
		return d.requestBoundPool(name, req)
	}
	var avoid []netip.Prefix
	for _, p := range d.dockerPools {
		avoid = append(avoid, p.Subnet)
	}
	subnet, err := d.ctrl.ChooseSubnet(req.Pool, avoid)
	if err != nil {
		return dockerplugin.RequestPoolResponse{}, err
	}
	var ipRange netip.Prefix
	if req.SubPool != "" {
		if ipRange, err = netip.ParsePrefix(req.SubPool); err != nil || !subnet.Contains(ipRange.Addr()) || ipRange.Bits() < subnet.Bits() {
			return dockerplugin.RequestPoolResponse{}, errdefs.Invalid("invalid --ip-range %q: want a CIDR inside %s", req.SubPool, subnet)
		}
		ipRange = ipRange.Masked()
	}
	id := dockerPoolID(subnet, ipRange)
	d.dockerPools[id] = &dockerPool{Subnet: subnet, IPRange: ipRange, Held: map[netip.Addr]bool{}}
	return dockerplugin.RequestPoolResponse{PoolID: id, Pool: subnet.String()}, nil
}

// requestBoundPool is RequestPool for --ipam-opt cnet.network=NAME: the pool is the
// network's own.
func (d *Daemon) requestBoundPool(name string, req dockerplugin.RequestPoolRequest) (dockerplugin.RequestPoolResponse, error) {
	n, err := d.ctrl.Network(name)
	if err != nil {
		return dockerplugin.RequestPoolResponse{}, err
	}
	if len(n.IPAM) != 1 {
		return dockerplugin.RequestPoolResponse{}, errdefs.Invalid("cnet network %s has %d address pools: a Docker network takes one", name, len(n.IPAM))
	}
	// dockerd checks a pool it did not name against this host's routes, where the cnet network
	// already is, and asks again for ever: the user names it.
	if subnet := n.IPAM[0].Subnet.String(); req.Pool != subnet || req.SubPool != "" {
		return dockerplugin.RequestPoolResponse{}, errdefs.Invalid("--ipam-opt %s=%s needs --subnet %s, the network's own (and no --ip-range)", bindOption, name, subnet)
	}
	id := boundPoolID(n.ID)
	d.dockerPools[id] = &dockerPool{Subnet: n.IPAM[0].Subnet, Gateway: n.IPAM[0].Gateway, Bound: n.ID, Held: map[netip.Addr]bool{}}
	return dockerplugin.RequestPoolResponse{PoolID: id, Pool: n.IPAM[0].Subnet.String()}, nil
}

// ReleasePool implements dockerplugin.Backend. The pool of a created network went with the
// network (DeleteNetwork comes first).
func (d *Daemon) ReleasePool(poolID string) error {
	d.dockerMu.Lock()
	defer d.dockerMu.Unlock()
	delete(d.dockerPools, poolID)
	return nil
}

// RequestAddress implements dockerplugin.Backend.
func (d *Daemon) RequestAddress(req dockerplugin.RequestAddressRequest) (dockerplugin.RequestAddressResponse, error) {
	var want netip.Addr
	if req.Address != "" {
		a, err := netip.ParseAddr(req.Address)
		if err != nil || !a.Is4() {
			return dockerplugin.RequestAddressResponse{}, errdefs.Invalid("invalid IPv4 address %q", req.Address)
		}
		want = a
	}
	d.dockerMu.Lock()
	defer d.dockerMu.Unlock()
	if p := d.dockerPools[req.PoolID]; p != nil && p.Bound != "" {
		// An existing network: its gateway is what it is, its aux addresses are its own.
		if req.Options[gatewayRequestKey] != gatewayRequest {
			return dockerplugin.RequestAddressResponse{}, errdefs.Invalid("the aux addresses of a network bound with --ipam-opt %s are the cnet network's own", bindOption)
		}
		if !p.Gateway.IsValid() {
			return dockerplugin.RequestAddressResponse{}, errdefs.Invalid("cnet network %s has no gateway", shortID(p.Bound))
		}
		return dockerplugin.RequestAddressResponse{Address: netip.PrefixFrom(p.Gateway, p.Subnet.Bits()).String()}, nil
	}
	if p := d.dockerPools[req.PoolID]; p != nil {
		// Before the network exists: its gateway, then its aux addresses.
		a := want
		if !a.IsValid() {
			if req.Options[gatewayRequestKey] != gatewayRequest {
				return dockerplugin.RequestAddressResponse{}, errdefs.Invalid("pool %s has no network yet: only its gateway and aux addresses can be requested", req.PoolID)
			}
			a = p.Subnet.Addr().Next()
		}
		if !p.Subnet.Contains(a) || p.Held[a] {
			return dockerplugin.RequestAddressResponse{}, errdefs.Conflict("address %s is outside %s or already requested", a, p.Subnet)
		}
		p.Held[a] = true
		if req.Options[gatewayRequestKey] == gatewayRequest {
			p.Gateway = a
		}
		return dockerplugin.RequestAddressResponse{Address: netip.PrefixFrom(a, p.Subnet.Bits()).String()}, nil
	}
	n, err := d.dockerNetworkByPool(req.PoolID)
	if err != nil {
		return dockerplugin.RequestAddressResponse{}, err
	}
	if req.Options[gatewayRequestKey] == gatewayRequest {
		// A replay for a network that exists: its gateway is what it is.
		return dockerplugin.RequestAddressResponse{Address: netip.PrefixFrom(n.IPAM[0].Gateway, n.IPAM[0].Subnet.Bits()).String()}, nil
	}
	a, err := d.ctrl.ReserveAddress(n.ID, want)
	if err != nil {
		return dockerplugin.RequestAddressResponse{}, err
	}
	return dockerplugin.RequestAddressResponse{Address: a.String()}, nil
}

// ReleaseAddress implements dockerplugin.Backend.
func (d *Daemon) ReleaseAddress(poolID, address string) error {
	a, err := netip.ParseAddr(address)
	if err != nil {
		return errdefs.Invalid("invalid address %q", address)
	}
	d.dockerMu.Lock()
	defer d.dockerMu.Unlock()
	if p := d.dockerPools[poolID]; p != nil {
		delete(p.Held, a)
		return nil
	}
	n, err := d.dockerNetworkByPool(poolID)
	if errdefs.Is(err, errdefs.KindNotFound) {
		return nil // the network went with its gateway and aux addresses
	}
	if err != nil {
		return err
	}
	return d.ctrl.ReleaseReservation(n.ID, a)
}

// dockerNetworkByPool finds the cnet network made for a pool, or bound to it.
func (d *Daemon) dockerNetworkByPool(poolID string) (controller.Network, error) {
	if id, ok := strings.CutPrefix(poolID, "net:"); ok {
		return d.ctrl.Network(id)
	}
	for _, n := range d.ctrl.Networks() {
		if n.Labels[dockerPoolLabel] == poolID && n.Labels[dockerNetworkLabel] != "" {
			return n, nil
		}
	}
	return controller.Network{}, errdefs.NotFound("no network of cnet's has the address pool %s", poolID)
}

// dockerBindingOf loads the binding of dockerd's network, if it is one.
func (d *Daemon) dockerBindingOf(dockerID string) (*dockerBinding, error) {
	var found *dockerBinding
	err := store.Load(d.store, store.DockerNetworks, func(key string, b *dockerBinding) error {
		if key == dockerID {
			found = b
		}
		return nil
	})
	return found, err
}

// dockerNetwork finds the cnet network made for dockerd's network ID, or bound to it.
func (d *Daemon) dockerNetwork(dockerID string) (controller.Network, error) {
	b, err := d.dockerBindingOf(dockerID)
	if err != nil {
		return controller.Network{}, err
	}
	if b != nil {
		return d.ctrl.Network(b.NetworkID)
	}
	for _, n := range d.ctrl.Networks() {
		if n.Labels[dockerNetworkLabel] == dockerID {
			return n, nil
		}
	}
	return controller.Network{}, errdefs.NotFound("network %s is not one of cnet's (was it created with -d %s?)", shortID(dockerID), dockerplugin.DriverName)
}

func shortID(id string) string { return id[:min(12, len(id))] }

// CreateNetwork implements dockerplugin.Backend.
func (d *Daemon) CreateNetwork(req dockerplugin.CreateNetworkRequest) error {
	if len(req.IPv6Data) > 0 {
		return errdefs.Invalid("cnet's Docker plugin carries IPv4 only: create the IPv6 network with cnet (cnet network create --ipv6) to use IPv6")
	}
	if len(req.IPv4Data) != 1 {
		return errdefs.Invalid("a cnet network has exactly one IPv4 pool, got %d", len(req.IPv4Data))
	}
	data := req.IPv4Data[0]
	if data.AddressSpace != dockerLocalSpace && data.AddressSpace != dockerGlobalSpace {
		return errdefs.Invalid("the pool comes from another IPAM driver (address space %q): create the network with --ipam-driver %s, so that one allocator serves it",
			data.AddressSpace, dockerplugin.DriverName)
	}
	d.dockerMu.Lock()
	defer d.dockerMu.Unlock()
	var poolID string
	var pool *dockerPool
	for id, p := range d.dockerPools {
		if p.Subnet.String() == data.Pool {
			poolID, pool = id, p
		}
	}
	if pool == nil {
		return errdefs.NotFound("pool %s was not requested from cnet's IPAM driver (or cnet restarted since): create the network again", data.Pool)
	}
	if pool.Bound != "" {
		return d.bindNetwork(req, poolID, pool)
	}
	pr := controller.PoolRequest{Subnet: pool.Subnet.String(), Aux: data.AuxAddresses}
	if pool.IPRange.IsValid() {
		pr.IPRange = pool.IPRange.String()
	}
	if gw, err := netip.ParsePrefix(data.Gateway); err == nil {
		pr.Gateway = gw.Addr().String()
	} else if pool.Gateway.IsValid() {
		pr.Gateway = pool.Gateway.String()
	}
	for k, v := range pr.Aux {
		if p, err := netip.ParsePrefix(v); err == nil {
			pr.Aux[k] = p.Addr().String()
		}
	}
	cfg := controller.NetworkConfig{
		Name: "docker-" + shortID(req.NetworkID), Driver: "bridge", Pools: []controller.PoolRequest{pr},
		Options: dockerplugin.GenericOptions(req.Options), Internal: optionTrue(req.Options, "com.docker.network.internal"),
		Labels: map[string]string{dockerNetworkLabel: req.NetworkID, dockerPoolLabel: poolID},
	}
	if _, err := d.ctrl.CreateNetwork(cfg); err != nil {
		return err
	}
	delete(d.dockerPools, poolID)
	return nil
}

// bindNetwork is CreateNetwork for a pool of an existing network: the Docker network is
// recorded as another name of it. Options would be silently ignored (the network exists), so
// they are refused.
func (d *Daemon) bindNetwork(req dockerplugin.CreateNetworkRequest, poolID string, pool *dockerPool) error {
	if opts := dockerplugin.GenericOptions(req.Options); len(opts) > 0 {
		return errdefs.Invalid("a Docker network bound to cnet network %s with --ipam-opt %s takes that network's options: give no -o", shortID(pool.Bound), bindOption)
	}
	if optionTrue(req.Options, "com.docker.network.internal") {
		return errdefs.Invalid("--internal belongs to the cnet network a Docker network is bound to: create that one with --internal")
	}
	b := dockerBinding{DockerNetworkID: req.NetworkID, NetworkID: pool.Bound}
	if err := d.store.Put(store.DockerNetworks, req.NetworkID, b); err != nil {
		return err
	}
	delete(d.dockerPools, poolID)
	return nil
}

func optionTrue(opts map[string]any, key string) bool {
	switch v := opts[key].(type) {
	case bool:
		return v
	case string:
		return v == "true"
	}
	return false
}

// DeleteNetwork implements dockerplugin.Backend. A network already gone is not an error.
func (d *Daemon) DeleteNetwork(networkID string) error {
	d.dockerMu.Lock()
	defer d.dockerMu.Unlock()
	if b, err := d.dockerBindingOf(networkID); err != nil || b != nil {
		if err != nil {
			return err
		}
		// Only the other name goes: the cnet network is its creator's.
		return d.store.Delete(store.DockerNetworks, networkID)
	}
	n, err := d.dockerNetwork(networkID)
	if errdefs.Is(err, errdefs.KindNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return d.ctrl.RemoveNetwork(n.ID)
}
