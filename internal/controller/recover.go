package controller

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cnet-dev/cnet/internal/driver"
)

// Recover brings the kernel in line with the records after a start, whatever point the
// previous daemon died at. live holds the IDs of containers whose sandboxes must survive:
//   - endpoints of other containers are removed (interface, record, address);
//   - every network's kernel objects are recreated if missing, and interfaces on them that no
//     record owns are deleted;
//   - a recorded endpoint whose interface is missing is plugged again with the same address and
//     MAC (the daemon died between the record and the interface);
//   - namespace files of containers not in live are unmounted.
func (c *Controller) Recover(live map[string]bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, ep := range c.sortedEndpoints() {
		if !live[ep.ContainerID] || (!ep.HandOff && !c.ns.Exists(c.SandboxPath(ep.ContainerID))) {
			if err := c.leave(ep, false); err != nil {
				errs = append(errs, fmt.Errorf("removing endpoint %s of gone container %s: %w", ep.ID[:12], ep.ContainerID[:12], err))
			}
		}
	}
	for _, n := range c.sortedNetworks() {
		var eps []driver.Endpoint
		for _, ep := range c.networkEndpoints(n.rec.ID) {
			eps = append(eps, c.endpointView(ep))
		}
		if err := c.driver(n).Restore(n.driverView(), eps); err != nil {
			errs = append(errs, fmt.Errorf("restoring network %s: %w", n.rec.Name, err))
		}
	}
	for _, ep := range c.sortedEndpoints() {
		n := c.networks[ep.NetworkID]
		if c.driver(n).EndpointPresent(n.driverView(), c.endpointView(ep)) {
			continue
		}
		if ep.HandOff {
			// The engine that moved it into its namespace is the only one that could again:
			// the endpoint is gone, and the engine's next call about it finds nothing.
			slog.Info("removing a handed-off endpoint whose interface is missing", "endpoint", ep.ID[:12], "network", n.rec.Name)
			if err := c.leave(ep, false); err != nil {
				errs = append(errs, fmt.Errorf("removing handed-off endpoint %s: %w", ep.ID[:12], err))
			}
			continue
		}
		slog.Info("re-plugging endpoint whose interface is missing", "endpoint", ep.ID[:12], "container", ep.ContainerID[:12], "network", n.rec.Name)
		// A host end that lost its bridge (the bridge was deleted) is still there with its
		// peer: remove both before plugging the endpoint again under the same names.
		if err := c.driver(n).Leave(n.driverView(), c.endpointView(ep)); err != nil {
			errs = append(errs, fmt.Errorf("removing the stale interface of endpoint %s: %w", ep.ID[:12], err))
			continue
		}
		var others []*Endpoint
		for _, o := range c.sandboxEndpoints(ep.ContainerID) {
			if o != ep {
				others = append(others, o)
			}
		}
		if err := c.plug(n, ep, others); err != nil {
			errs = append(errs, fmt.Errorf("re-plugging endpoint %s: %w", ep.ID[:12], err))
		}
	}
	errs = append(errs, c.sweepNamespaces(live)...)
	return errors.Join(errs...)
}

// sweepNamespaces unmounts namespace files that belong to no live container.
func (c *Controller) sweepNamespaces(live map[string]bool) []error {
	keep := map[string]bool{}
	for id := range live {
		keep[filepath.Base(c.SandboxPath(id))] = true
	}
	dir := filepath.Join(c.execRoot, "netns")
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return []error{fmt.Errorf("listing %s: %w", dir, err)}
	}
	var errs []error
	for _, e := range entries {
		if keep[e.Name()] {
			continue
		}
		if err := c.ns.Delete(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func (c *Controller) sortedEndpoints() []*Endpoint {
	var out []*Endpoint
	for _, n := range c.sortedNetworks() {
		out = append(out, c.networkEndpoints(n.rec.ID)...)
	}
	return out
}
