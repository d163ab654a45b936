// Package null is the driver of the `none` network: a sandbox with loopback only.
package null

import (
	"github.com/vishvananda/netns"

	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/errdefs"
)

// Driver is the null driver.
type Driver struct{}

// Type implements driver.Driver.
func (Driver) Type() string { return "null" }

// Capabilities implements driver.Driver: its one network is a mode, nothing to connect to.
func (Driver) Capabilities() driver.Capabilities {
	return driver.Capabilities{Scope: driver.ScopeLocal, JoinRefusal: "container cannot be connected to the none network: it is a sandbox with loopback only"}
}

// Predefined implements driver.Predefiner: the `none` network.
func (Driver) Predefined() []driver.PredefinedNetwork {
	return []driver.PredefinedNetwork{{Name: "none", NoPool: true}}
}

// ValidateOptions implements driver.Driver.
func (Driver) ValidateOptions(map[string]string) error { return nil }

// CreateNetwork implements driver.Driver: only the predefined network may exist.
func (Driver) CreateNetwork(driver.Network) error {
	return errdefs.Forbidden(`only one instance of "null" network is allowed`)
}

// DeleteNetwork implements driver.Driver.
func (Driver) DeleteNetwork(driver.Network) error { return nil }

// Restore implements driver.Driver.
func (Driver) Restore(driver.Network, []driver.Endpoint) error { return nil }

// Join implements driver.Driver.
func (Driver) Join(driver.Network, driver.Endpoint, netns.NsHandle) error {
	return errdefs.Forbidden("container cannot be connected to the none network, or to another network while on none")
}

// Leave implements driver.Driver.
func (Driver) Leave(driver.Network, driver.Endpoint) error { return nil }

// EndpointPresent implements driver.Driver.
func (Driver) EndpointPresent(driver.Network, driver.Endpoint) bool { return true }
