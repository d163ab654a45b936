package controller

import (
	"net/netip"
	"time"

	"github.com/cnet-dev/cnet/internal/ipam"
)

// Network is a network's persisted record; callers get copies.
type Network struct {
	ID         string
	Name       string
	Driver     string
	Created    time.Time
	Internal   bool
	Attachable bool
	EnableIPv6 bool
	// NoIPv4: an IPv6-only network (Docker's --ipv4=false); records before IPv6 lack it, and
	// every network had IPv4 then.
	NoIPv4      bool `json:",omitempty"`
	IPAMDriver  string
	IPAMOptions map[string]string
	// IPAM holds the network's pools, IPv4 ones and (with EnableIPv6) IPv6 ones.
	IPAM    []Pool
	Options map[string]string
	Labels  map[string]string
	// Predefined marks bridge, host and none, which cannot be removed.
	Predefined bool
	// UserSubnet records that the user chose the IPv4 subnet, which Docker requires for --ip;
	// UserSubnet6 the same for the IPv6 one and --ip6.
	UserSubnet  bool
	UserSubnet6 bool `json:",omitempty"`
	// SegmentID is a global network's cluster-wide segment (its VXLAN VNI), claimed in the
	// cluster store with the network.
	SegmentID uint32 `json:",omitempty"`
	// DriverState is what the driver noted before the network was built (driver.Preparer),
	// e.g. that macvlan creates the parent's VLAN sub-interface and so must delete it.
	DriverState map[string]string `json:",omitempty"`
}

// Pool is one IPAM pool of a network as configured.
type Pool struct {
	Subnet  netip.Prefix
	IPRange netip.Prefix          `json:",omitempty"`
	Gateway netip.Addr            `json:",omitempty"`
	Aux     map[string]netip.Addr `json:",omitempty"`
}

func (p Pool) config() ipam.Config {
	return ipam.Config{Subnet: p.Subnet, IPRange: p.IPRange, Gateway: p.Gateway, Aux: p.Aux}
}

// Endpoint is one container's attachment to one network.
type Endpoint struct {
	ID            string
	NetworkID     string
	ContainerID   string
	ContainerName string
	IfName        string
	HostIfName    string
	// Address is the IPv4 address (invalid on an IPv6-only network), Address6 the IPv6 one
	// (valid on networks with IPv6); each with its subnet's length.
	Address  netip.Prefix
	Address6 netip.Prefix `json:",omitempty"`
	// Gateway and Gateway6 are the network's gateways of each family when the endpoint routes
	// through them (drivers with a gateway, networks that are not internal).
	Gateway  netip.Addr `json:",omitempty"`
	Gateway6 netip.Addr `json:",omitempty"`
	MAC      string
	Aliases  []string
	// Hostname is the container's, recorded on global networks' endpoints so that a
	// restarted daemon publishes the same names again.
	Hostname string `json:",omitempty"`
	// Reserved: the address is a reservation (ReserveAddress) that outlives the endpoint.
	Reserved bool `json:",omitempty"`
	// HandOff: the interface was made for another engine to move into its own sandbox
	// (SandboxConfig.HandOff); cnet cannot plug it again if it goes missing.
	HandOff bool `json:",omitempty"`
	// Seq orders a sandbox's endpoints by join time; the oldest non-internal one gives the
	// default route, as the first network a Docker container joins does.
	Seq uint64
}

// NetworkConfig is a request to create a network.
type NetworkConfig struct {
	Name       string
	Driver     string
	Internal   bool
	Attachable bool
	EnableIPv6 bool
	// DisableIPv4 makes an IPv6-only network (Docker's --ipv4=false); it needs EnableIPv6.
	DisableIPv4 bool
	IPAMDriver  string
	IPAMOptions map[string]string
	Pools       []PoolRequest
	Options     map[string]string
	Labels      map[string]string
}

// PoolRequest is one --subnet with its --ip-range, --gateway and --aux-address, as typed.
type PoolRequest struct {
	Subnet  string
	IPRange string
	Gateway string
	Aux     map[string]string
}

// JoinOptions are the per-endpoint settings of connect and run.
type JoinOptions struct {
	ContainerName string
	IP            string // static --ip, "" to allocate
	IP6           string // static --ip6, "" to allocate (on networks with IPv6)
	Aliases       []string
	// Hostname is the sandbox's, filled in by the controller: on global networks it is
	// published with the endpoint so that other hosts resolve it.
	Hostname string `json:"-"`
	// IfName, when set, is the interface's name in the sandbox (a CNI runtime's CNI_IFNAME)
	// instead of the next free ethN.
	IfName string `json:",omitempty"`
	// MAC, when set, is the interface's MAC instead of the one derived from its address
	// (Docker's --mac-address, CNI's mac capability).
	MAC string `json:",omitempty"`
	// Reserved: IP is an address reserved on the network (ReserveAddress), taken as is and
	// left reserved when the endpoint goes.
	Reserved bool `json:",omitempty"`
	// HandOff is set by the controller from SandboxConfig.HandOff.
	HandOff bool `json:"-"`
}
