package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"

	"github.com/cnet-dev/cnet/internal/controller"
	"github.com/cnet-dev/cnet/internal/dockerplugin"
	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/store"
)

// Docker's network and IPAM plugin (internal/dockerplugin): dockerd's containers on cnet
// networks. dockerd keeps its own sandboxes and orders the steps the libnetwork way; cnet maps
// them onto its controller (see controller/handoff.go):
//
//   - IPAM RequestPool only chooses a subnet (held in d.dockerPools until dockerd creates the
//     network, a moment later); the network's pool is made by NetworkDriver.CreateNetwork,
//     which creates a cnet bridge network named docker-<id12> with that subnet, gateway and
//     aux addresses. Its labels name dockerd's network ID and the pool ID, so nothing else needs
//     recording to find it again.
//   - IPAM RequestAddress for an endpoint reserves the address on that network; CreateEndpoint
//     records dockerd's endpoint (bucket docker); Join starts a hand-off sandbox of its own for
//     it whose one endpoint takes the reserved address and whose veth peer dockerd moves into
//     the container; ProgramExternalConnectivity publishes its ports through cnet's nftables.
//   - Leave stops that sandbox, DeleteEndpoint drops the record, ReleaseAddress the
//     reservation.
//
// The address spaces are cnet's own, so CreateNetwork refuses pools from another IPAM driver:
// two allocators on one network would hand out the same address.

// Address spaces cnet's IPAM driver answers GetDefaultAddressSpaces with.
const (
	dockerLocalSpace  = "CnetLocal"
	dockerGlobalSpace = "CnetGlobal"
	// gatewayRequest is RequestAddress's option marking the network's gateway.
	gatewayRequestKey = "RequestAddressType"
	gatewayRequest    = "com.docker.network.gateway"
	// Labels of the cnet network made for a Docker network.
	dockerNetworkLabel = "cnet.docker.network-id"
	dockerPoolLabel    = "cnet.docker.pool-id"
)

// dockerPool is a pool dockerd requested whose network it has not created yet.
type dockerPool struct {
	Subnet  netip.Prefix
	IPRange netip.Prefix
	Gateway netip.Addr
	Held    map[netip.Addr]bool // gateway and aux addresses dockerd asked for
	// Bound is the ID of the existing cnet network the pool is (--ipam-opt cnet.network).
	Bound string
}

// dockerEndpoint is dockerd's endpoint as recorded.
type dockerEndpoint struct {
	EndpointID      string
	DockerNetworkID string
	NetworkID       string // cnet's
	Address         netip.Prefix
	MAC             string
	Joined          bool
	// Ports are what ProgramExternalConnectivity published, for restoring them.
	Ports []controller.PortMapping `json:",omitempty"`
}

func dockerSandboxID(endpointID string) string {
	sum := sha256.Sum256([]byte("docker\x00" + endpointID))
	return hex.EncodeToString(sum[:])
}

// dockerIfName is the veth peer's name in the host's namespace until dockerd moves it.
func dockerIfName(endpointID string) string { return "cnd" + endpointID[:min(12, len(endpointID))] }

func dockerPoolID(subnet, ipRange netip.Prefix) string {
	if ipRange.IsValid() {
		return subnet.String() + "," + ipRange.String()
	}
	return subnet.String()
}

// CreateEndpoint implements dockerplugin.Backend: the endpoint recorded with the address
// dockerd got from cnet's IPAM, and the MAC derived from it unless dockerd gave one.
func (d *Daemon) CreateEndpoint(req dockerplugin.CreateEndpointRequest) (dockerplugin.EndpointInterface, error) {
	if req.Interface == nil || req.Interface.Address == "" {
		return dockerplugin.EndpointInterface{}, errdefs.Invalid("endpoint %s has no IPv4 address: create the network with --ipam-driver %s", shortID(req.EndpointID), dockerplugin.DriverName)
	}
	addr, err := netip.ParsePrefix(req.Interface.Address)
	if err != nil {
		return dockerplugin.EndpointInterface{}, errdefs.Invalid("invalid endpoint address %q", req.Interface.Address)
	}
	d.dockerMu.Lock()
	defer d.dockerMu.Unlock()
	n, err := d.dockerNetwork(req.NetworkID)
	if err != nil {
		return dockerplugin.EndpointInterface{}, err
	}
	var out dockerplugin.EndpointInterface
	mac := req.Interface.MacAddress
	if mac == "" {
		mac = controller.MACFor(addr.Addr())
		out.MacAddress = mac
	}
	rec := dockerEndpoint{EndpointID: req.EndpointID, DockerNetworkID: req.NetworkID, NetworkID: n.ID, Address: addr, MAC: mac}
	if err := d.store.Put(store.Docker, req.EndpointID, rec); err != nil {
		return dockerplugin.EndpointInterface{}, err
	}
	return out, nil
}

// dockerEndpointRecord loads dockerd's endpoint.
func (d *Daemon) dockerEndpointRecord(endpointID string) (dockerEndpoint, error) {
	var found *dockerEndpoint
	err := store.Load(d.store, store.Docker, func(key string, r *dockerEndpoint) error {
		if key == endpointID {
			found = r
		}
		return nil
	})
	if err != nil {
		return dockerEndpoint{}, err
	}
	if found == nil {
		return dockerEndpoint{}, errdefs.NotFound("endpoint %s is not one of cnet's", shortID(endpointID))
	}
	return *found, nil
}

// dockerSandboxConfig is the hand-off sandbox of one of dockerd's endpoints.
func dockerSandboxConfig(r dockerEndpoint) controller.SandboxConfig {
	name := "docker-" + shortID(r.EndpointID)
	return controller.SandboxConfig{ContainerID: dockerSandboxID(r.EndpointID), ContainerName: name, HandOff: true, Ports: r.Ports,
		Networks: []controller.Attachment{{Network: r.NetworkID, Options: controller.JoinOptions{
			ContainerName: name, IP: r.Address.Addr().String(), Reserved: true, MAC: r.MAC, IfName: dockerIfName(r.EndpointID)}}}}
}

// Join implements dockerplugin.Backend: the interface made for dockerd to move in, and the
// network's gateway for its default route.
func (d *Daemon) Join(req dockerplugin.JoinRequest) (dockerplugin.JoinResponse, error) {
	d.dockerMu.Lock()
	defer d.dockerMu.Unlock()
	r, err := d.dockerEndpointRecord(req.EndpointID)
	if err != nil {
		return dockerplugin.JoinResponse{}, err
	}
	if r.Joined {
		return dockerplugin.JoinResponse{}, errdefs.Conflict("endpoint %s is already joined", shortID(req.EndpointID))
	}
	if _, err := d.ctrl.StartSandbox(dockerSandboxConfig(r)); err != nil {
		return dockerplugin.JoinResponse{}, err
	}
	r.Joined = true
	if err := d.store.Put(store.Docker, r.EndpointID, r); err != nil {
		return dockerplugin.JoinResponse{}, errorsJoin(err, d.ctrl.StopSandbox(dockerSandboxID(r.EndpointID)))
	}
	out := dockerplugin.JoinResponse{InterfaceName: &dockerplugin.InterfaceName{SrcName: dockerIfName(r.EndpointID), DstPrefix: "eth"}}
	for _, ep := range d.ctrl.SandboxEndpoints(dockerSandboxID(r.EndpointID)) {
		if ep.Gateway.IsValid() {
			out.Gateway = ep.Gateway.String()
		}
	}
	if out.Gateway == "" {
		// An internal network has no way out; without this dockerd would add a
		// docker_gwbridge interface to give it one.
		out.DisableGatewayService = true
	}
	return out, nil
}

func errorsJoin(err, other error) error {
	if other == nil {
		return err
	}
	return fmt.Errorf("%w (and undoing it: %v)", err, other)
}

// Leave implements dockerplugin.Backend.
func (d *Daemon) Leave(_, endpointID string) error {
	d.dockerMu.Lock()
	defer d.dockerMu.Unlock()
	return d.leaveDocker(endpointID)
}

func (d *Daemon) leaveDocker(endpointID string) error {
	r, err := d.dockerEndpointRecord(endpointID)
	if errdefs.Is(err, errdefs.KindNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := d.ctrl.StopSandbox(dockerSandboxID(endpointID)); err != nil {
		return err
	}
	r.Joined, r.Ports = false, nil
	return d.store.Put(store.Docker, endpointID, r)
}

// DeleteEndpoint implements dockerplugin.Backend. An endpoint still joined (dockerd lost
// track of it) is left first; one already gone is not an error.
func (d *Daemon) DeleteEndpoint(_, endpointID string) error {
	d.dockerMu.Lock()
	defer d.dockerMu.Unlock()
	if err := d.leaveDocker(endpointID); err != nil {
		return err
	}
	return d.store.Delete(store.Docker, endpointID)
}

// EndpointOperInfo implements dockerplugin.Backend: what cnet made for the endpoint, which
// dockerd shows nowhere but its debug log.
func (d *Daemon) EndpointOperInfo(_, endpointID string) (map[string]any, error) {
	r, err := d.dockerEndpointRecord(endpointID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"cnet.network": r.NetworkID, "cnet.address": r.Address.String(), "cnet.mac": r.MAC}, nil
}

// ProgramExternalConnectivity implements dockerplugin.Backend: the endpoint's published ports
// go into cnet's nftables DNAT (no docker-proxy).
func (d *Daemon) ProgramExternalConnectivity(req dockerplugin.ExternalConnectivityRequest) error {
	bindings, err := dockerplugin.PortBindings(req.Options)
	if err != nil {
		return errdefs.Invalid("%w", err)
	}
	var ports []controller.PortMapping
	for _, b := range bindings {
		m := controller.PortMapping{HostPort: b.HostPort, ContainerPort: b.ContainerPort, Proto: b.Proto}
		if b.HostIP != "" {
			a, err := netip.ParseAddr(b.HostIP)
			if err != nil || !a.Is4() {
				return errdefs.Invalid("invalid host address %q of port %d: want an IPv4 address", b.HostIP, b.ContainerPort)
			}
			if !a.IsUnspecified() {
				m.HostIP = a
			}
		}
		if b.HostPortEnd > b.HostPort {
			return errdefs.Invalid("host port ranges (%d-%d) are not supported by cnet's driver yet: publish one port", b.HostPort, b.HostPortEnd)
		}
		ports = append(ports, m)
	}
	return d.setDockerPorts(req.EndpointID, ports)
}

// RevokeExternalConnectivity implements dockerplugin.Backend.
func (d *Daemon) RevokeExternalConnectivity(_, endpointID string) error {
	err := d.setDockerPorts(endpointID, nil)
	if errdefs.Is(err, errdefs.KindNotFound) {
		return nil
	}
	return err
}

func (d *Daemon) setDockerPorts(endpointID string, ports []controller.PortMapping) error {
	d.dockerMu.Lock()
	defer d.dockerMu.Unlock()
	r, err := d.dockerEndpointRecord(endpointID)
	if err != nil {
		return err
	}
	if !r.Joined {
		return errdefs.Conflict("endpoint %s is not joined", shortID(endpointID))
	}
	if err := d.ctrl.PublishPorts(dockerSandboxID(endpointID), ports); err != nil {
		return err
	}
	r.Ports = ports
	return d.store.Put(store.Docker, endpointID, r)
}

// liveDockerSandboxes adds to live the hand-off sandboxes of dockerd's joined endpoints, so
// that a restart keeps their interfaces (still in dockerd's containers) and ports.
func (d *Daemon) liveDockerSandboxes(live map[string]controller.SandboxConfig) {
	_ = store.Load(d.store, store.Docker, func(_ string, r *dockerEndpoint) error {
		if r.Joined {
			live[dockerSandboxID(r.EndpointID)] = dockerSandboxConfig(*r)
		}
		return nil
	})
}

// dockerSandboxes maps hand-off sandboxes to dockerd's endpoint, for listings.
func (d *Daemon) dockerSandboxes() map[string]dockerEndpoint {
	out := map[string]dockerEndpoint{}
	_ = store.Load(d.store, store.Docker, func(_ string, r *dockerEndpoint) error {
		out[dockerSandboxID(r.EndpointID)] = *r
		return nil
	})
	return out
}
