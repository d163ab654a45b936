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
}

// Endpoint is one interface of a sandbox on a network.
type Endpoint struct {
	ID         string
	HostIfName string       // host side (e.g. veth1a2b3c4), chosen by the controller
	IfName     string       // name inside the sandbox (eth0, eth1, ...)
	Address    netip.Prefix // address with the subnet's length
	MAC        net.HardwareAddr
}

// Driver is implemented by bridge, host, null (and later macvlan, overlay).
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
