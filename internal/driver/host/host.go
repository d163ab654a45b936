// Package host is the host driver: containers on it use the daemon's own network namespace,
// so the driver has nothing to build; it exists so that `network ls` shows the network and so
// that a second host network is refused as Docker refuses it.
package host

import (
	"github.com/vishvananda/netns"

	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/errdefs"
)

// Driver is the host driver.
type Driver struct{}

// Type implements driver.Driver.
func (Driver) Type() string { return "host" }

// Capabilities implements driver.Driver: its one network is a mode, nothing to connect to.
func (Driver) Capabilities() driver.Capabilities {
	return driver.Capabilities{Scope: driver.ScopeLocal, JoinRefusal: "container cannot be disconnected from host network or connected to host network"}
}

// Predefined implements driver.Predefiner: the `host` network.
func (Driver) Predefined() []driver.PredefinedNetwork {
	return []driver.PredefinedNetwork{{Name: "host", NoPool: true}}
}

// ValidateOptions implements driver.Driver.
func (Driver) ValidateOptions(map[string]string) error { return nil }

// CreateNetwork implements driver.Driver: only the predefined network may exist.
func (Driver) CreateNetwork(driver.Network) error {
	return errdefs.Forbidden(`only one instance of "host" network is allowed`)
}

// DeleteNetwork implements driver.Driver.
func (Driver) DeleteNetwork(driver.Network) error { return nil }

// Restore implements driver.Driver.
func (Driver) Restore(driver.Network, []driver.Endpoint) error { return nil }

// Join implements driver.Driver.
func (Driver) Join(driver.Network, driver.Endpoint, netns.NsHandle) error {
	return errdefs.Forbidden("container cannot be disconnected from host network or connected to host network")
}

// Leave implements driver.Driver.
func (Driver) Leave(driver.Network, driver.Endpoint) error { return nil }

// EndpointPresent implements driver.Driver.
func (Driver) EndpointPresent(driver.Network, driver.Endpoint) bool { return true }
