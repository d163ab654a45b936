// Package driver defines what a network driver does for the controller: build and tear down a
// network's kernel objects, and plug one endpoint of a sandbox into it. Drivers know nothing of
// the controller, the store or the API; each lives in its own subpackage.
package driver

import (
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
	Address    netip.Prefix // address with the subnet's length
	MAC        net.HardwareAddr
	// SandboxPath is the bind-mounted namespace of the endpoint's sandbox, for drivers whose
	// interface lives only there (macvlan) and must be found again to be removed or checked.
	SandboxPath string
}

// Driver is implemented by bridge, host, null, macvlan (and later overlay).
type Driver interface {
	// Type is the driver's name as users give it to `network create -d`.
	Type() string
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
