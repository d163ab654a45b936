// Package driver defines what a network driver does for the controller: build and tear down a
// network's kernel objects, and plug one endpoint of a sandbox into it. Drivers know nothing of
// the controller, the store or the API; each lives in its own subpackage.
package driver

import (
	"context"
	"net"
	"net/netip"

	"github.com/vishvananda/netns"
)

// Subnet is one IPAM pool as the driver sees it.
type Subnet struct {
	Prefix  netip.Prefix
	Gateway netip.Addr
}

// Network is what a driver is told about a network.
type Network struct {
	ID       string
	Name     string
	Options  map[string]string // driver options (-o KEY=VAL), validated by the driver
	Internal bool
	Subnets  []Subnet
	// SegmentID is a global network's cluster-wide identifier (the VXLAN VNI of an overlay
	// network), claimed in the cluster store by the controller when the network is created;
	// zero for local networks.
	SegmentID uint32
	// State is what the driver noted about the network before it was built (see Preparer),
	// persisted with the network and handed back on every later call. It is the driver's
	// own: users never see it.
	State map[string]string
}

// Endpoint is one interface of a sandbox on a network.
type Endpoint struct {
	ID         string
	HostIfName string       // host side (e.g. veth1a2b3c4), chosen by the controller
	IfName     string       // name inside the sandbox (eth0, eth1, ...)
	Address    netip.Prefix // IPv4 address with the subnet's length; invalid on IPv6-only networks
	Address6   netip.Prefix // IPv6 address with the subnet's length, on networks with IPv6
	MAC        net.HardwareAddr
	// SandboxPath is the bind-mounted namespace of the endpoint's sandbox, for drivers whose
	// interface lives only there (macvlan) and must be found again to be removed or checked.
	SandboxPath string
}

// Scope is where a driver's networks exist: on this host only, or on every host of a cluster
// (their records then live in the cluster store).
type Scope string

// The scopes, as Docker shows them in `network ls` and `inspect`.
const (
	ScopeLocal  Scope = "local"
	ScopeGlobal Scope = "global"
)

// Capabilities are what a driver's networks offer. The controller acts on them instead of on
// driver names, so that a new driver needs no change in the controller.
type Capabilities struct {
	Scope Scope
	// JoinRefusal, when set, is why no container can be connected to the driver's networks
	// (host, null: their one network is a mode, not something to plug into); the controller
	// refuses a join with it before allocating anything.
	JoinRefusal string
	// Gateway: endpoints get the subnet's gateway as their default route (unless the network
	// is internal), and so external connectivity.
	Gateway bool
	// DNS: containers on the driver's user-defined networks find each other by name through
	// the embedded resolver.
	DNS bool
	// PortPublishing: a container whose default route is on one of the driver's networks has
	// its published ports DNATed to it; the driver implements Exposer.
	PortPublishing bool
	// IPv6: the driver's networks can carry IPv6 subnets (--ipv6): it puts a network's IPv6
	// gateway in place and an endpoint's Address6 on its interface.
	IPv6 bool
}

// Driver is implemented by bridge, host, null, macvlan (and later overlay).
type Driver interface {
	// Type is the driver's name as users give it to `network create -d`.
	Type() string
	// Capabilities are fixed for the driver's lifetime.
	Capabilities() Capabilities
	// ValidateOptions checks -o options before anything is created.
	ValidateOptions(opts map[string]string) error
	// CreateNetwork builds the network's kernel objects; on error it leaves nothing behind.
	CreateNetwork(n Network) error
	// DeleteNetwork removes them; removing what is already gone is not an error.
	DeleteNetwork(n Network) error
	// Restore makes sure a network's kernel objects exist after a daemon restart and removes
	// interfaces on it that belong to none of the endpoints given (leftovers of a crash).
	Restore(n Network, endpoints []Endpoint) error
	// Join creates ep's interface inside the sandbox namespace ns, addressed and up; on error it
	// leaves nothing behind.
	Join(n Network, ep Endpoint, ns netns.NsHandle) error
	// Leave removes ep's interface; removing what is already gone is not an error.
	Leave(n Network, ep Endpoint) error
	// EndpointPresent reports whether ep's interface still exists (for recovery).
	EndpointPresent(n Network, ep Endpoint) bool
}

// The interfaces below are optional: the controller calls them, in this order, when a driver
// implements them, before the network is recorded. They exist because some drivers need more
// than their own options to decide whether and how a network can be built.

// Preparer completes a network's definition from the host before it is recorded: it may set
// n.Internal and n.State, and refuses (with a classified error) what cannot be built, such as
// a parent interface that does not exist. It must not change anything on the host, so that a
// refusal later in the creation has nothing to undo.
type Preparer interface {
	PrepareNetwork(n *Network) error
}

// ConflictChecker refuses a network that cannot coexist with the driver's existing ones
// (others holds every other network of the same driver), e.g. two macvlan networks on one
// parent interface.
type ConflictChecker interface {
	CheckConflicts(n Network, others []Network) error
}

// SubnetChooser picks the subnet of a network created without --subnet when the host
// dictates it (macvlan: the parent's own subnet). A zero Subnet with a nil error means "no
// opinion": the controller picks a default pool as for bridge networks. reserved are
// addresses inside the subnet that must never be handed to containers (they become aux
// addresses), such as the host's own address on the parent.
type SubnetChooser interface {
	DefaultSubnet(n Network) (s Subnet, reserved map[string]netip.Addr, err error)
}

// Predefiner is a driver whose networks exist without being created: bridge's default
// `bridge`, `host`, `none`. The controller creates each on first start if missing; they cannot
// be removed.
type Predefiner interface {
	Predefined() []PredefinedNetwork
}

// PredefinedNetwork is one network a Predefiner wants.
type PredefinedNetwork struct {
	Name    string
	Options map[string]string
	// NoPool: the network has no addresses (host, none).
	NoPool bool
	// IPv6 gives the network IPv6 too (the daemon's --ipv6 for the default bridge), with
	// IPv6Subnet (--fixed-cidr-v6) or, when that is zero, a /64 of the default IPv6 pool.
	IPv6       bool
	IPv6Subnet netip.Prefix
}

// Exposure is how a network meets the host's firewall: the host interface its traffic
// crosses and what the network's options ask of NAT and isolation.
type Exposure struct {
	Interface  string
	Masquerade bool
	ICC        bool // containers on the network may talk to each other
	// HostBinding is where published ports listen when -p names no address (the zero Addr:
	// every address).
	HostBinding netip.Addr
}

// Exposer is implemented by drivers with Capabilities.PortPublishing.
type Exposer interface {
	Exposure(n Network) Exposure
}

// Lifecycle is implemented by drivers that run goroutines (watches, reconcile loops): Start is
// called once the registry is complete, before any network is restored, and Close when the
// daemon stops. Start must not block; ctx ends when the daemon stops.
type Lifecycle interface {
	Start(ctx context.Context) error
	Close() error
}

// Retirer is implemented by drivers whose endpoints are slow to delete: Retire takes ep out of
// service within the call (no interface of the sandbox carries its address or name any more)
// and may delete the kernel objects later. The controller retires an endpoint on disconnect,
// where the caller waits, and uses Leave everywhere else. Objects a crash leaves retired but not
// deleted must be ones Restore removes.
type Retirer interface {
	Retire(n Network, ep Endpoint) error
}

// HandOffJoiner is implemented by drivers whose interfaces another engine can move into its
// own sandbox (dockerd through Docker's remote driver API, which moves, names, addresses and
// routes the interface itself). JoinHandOff makes ep's interface in the host's namespace,
// named ep.IfName, with ep.MAC, attached to the network but neither addressed nor up on the
// sandbox side; Leave removes it wherever it is by then. On error it leaves nothing behind.
type HandOffJoiner interface {
	JoinHandOff(n Network, ep Endpoint) error
}

// Peer is an endpoint of a global network that lives on another host, as the cluster store
// describes it.
type Peer struct {
	EndpointID string
	Address    netip.Addr       // the endpoint's address on the network
	Address6   netip.Addr       // its IPv6 address, on networks with IPv6 (zero otherwise)
	MAC        net.HardwareAddr // its interface's MAC
	VTEP       netip.Addr       // the underlay address of its host (the tunnel endpoint)
	Host       string           // its host's name, for diagnosis
}

// PeerSyncer is implemented by drivers of global networks. The controller hands it the whole
// set of a network's remote endpoints each time the cluster store's view of them changes and
// periodically besides; the driver makes the kernel match that set exactly: missing entries
// are added, wrong ones replaced, stale ones removed, and the network's own devices recreated
// if they went missing. Level-triggered, so a lost event or a hand-made change heals on the
// next call.
type PeerSyncer interface {
	SyncPeers(n Network, peers []Peer) error
	// KernelPeers reads back what the kernel has for n, one Peer per remote MAC (fields the
	// kernel has no entry for are left zero), for `network inspect --verbose`.
	KernelPeers(n Network) ([]Peer, error)
}
