// Package builtin is the list of drivers compiled into cnet, each given its part of the
// daemon's configuration. The binary's main fills the registry from it; nothing else knows
// which drivers exist.
package builtin

import (
	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/driver/bridge"
	"github.com/cnet-dev/cnet/internal/driver/host"
	"github.com/cnet-dev/cnet/internal/driver/macvlan"
	"github.com/cnet-dev/cnet/internal/driver/null"
	"github.com/cnet-dev/cnet/internal/driver/overlay"
)

// Config is what the built-in drivers take from the daemon's command line.
type Config struct {
	Bridge bridge.Config
	// Overlay carries this host's VTEP (--cluster-advertise); zero without a cluster store.
	Overlay overlay.Config
}

// Registry returns a registry of every built-in driver.
func Registry(cfg Config) (*driver.Registry, error) {
	return driver.NewRegistry(bridge.New(cfg.Bridge), host.Driver{}, null.Driver{}, macvlan.New(), overlay.New(cfg.Overlay))
}
