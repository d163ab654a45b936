package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/cnet-dev/cnet/internal/cluster"
	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/faults"
	"github.com/cnet-dev/cnet/internal/ipam"
	"github.com/cnet-dev/cnet/internal/store"
)

// Global networks (scope "global", the overlay driver's) exist on every host of a cluster.
// Their record lives in the cluster store (package cluster): a network is created there with
// its name, VNI and subnets claimed in one transaction, and every host — the creating one
// included — builds its local copy from that record: a record in the local store, so that a
// host restarting while etcd is down still has it, and the driver's kernel objects. Addresses
// come from the cluster's allocator; each endpoint is published under its host's lease. What
// the other hosts publish reaches this host through the store's watch and is applied by
// syncCluster, level-triggered, from the store's whole view: the driver's tunnel entries
// (driver.PeerSyncer) and the embedded DNS's names.

// errNoCluster is the refusal of global networks on a daemon without a cluster store.
var errNoCluster = errdefs.Invalid("overlay networks need a cluster store: start the daemon with --cluster-store etcd://HOST:PORT[,HOST:PORT...] and --cluster-advertise IP (see README, \"Overlay networks across hosts\")")

// isGlobal reports whether rec's driver declares global scope.
func (c *Controller) isGlobal(rec Network) bool {
	d, err := c.drivers.Driver(rec.Driver)
	return err == nil && d.Capabilities().Scope == driver.ScopeGlobal
}

// allocatorFor is the IPAM of a network: the cluster's for global networks (a Local one if
// this daemon runs without a cluster store, so that its containers keep their addresses),
// else the network's IPAM driver.
func (c *Controller) allocatorFor(rec Network) (ipam.Allocator, bool) {
	if c.isGlobal(rec) {
		if c.cluster != nil {
			return c.cluster.Allocator(), true
		}
		return c.ipams["default"], true
	}
	a, ok := c.ipams[rec.IPAMDriver]
	return a, ok
}

// ctx bounds the cluster calls of one controller operation (the store adds its own deadline).
func opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// createGlobalNetwork claims the network in the cluster store, then builds it here; if the
// local part fails the claim is withdrawn, so a failed create changes nothing anywhere.
func (c *Controller) createGlobalNetwork(cfg NetworkConfig, d driver.Driver, dn driver.Network) (Network, error) {
	if c.cluster == nil {
		return Network{}, errNoCluster
	}
	if err := c.prepareNetwork(d, cfg.Driver, &dn); err != nil {
		return Network{}, err
	}
	var want []netip.Prefix
	var pools []Pool
	for _, r := range cfg.Pools {
		p, err := parsePool(r)
		if err != nil {
			return Network{}, err
		}
		if p.Subnet.Addr().Is6() && !cfg.EnableIPv6 {
			return Network{}, errdefs.Invalid("invalid --subnet %s: an IPv6 subnet needs --ipv6", p.Subnet)
		}
		want, pools = append(want, p.Subnet), append(pools, p)
	}
	if cfg.EnableIPv6 && !slices.ContainsFunc(want, func(p netip.Prefix) bool { return p.Addr().Is6() }) {
		// Each host's default IPv6 pool is its own (ipam.ULAPrefix of its engine ID): a
		// network every host shares needs its IPv6 subnet named.
		return Network{}, errdefs.Invalid("an IPv6 %s network needs an IPv6 --subnet: the hosts of a cluster have no shared default IPv6 pool", cfg.Driver)
	}
	for _, p := range want {
		if err := ipam.CheckOverlap(p, c.usedSubnets()); err != nil {
			return Network{}, errdefs.Conflict("%w", err)
		}
	}
	host, err := hostPrefixes(netlink.FAMILY_V4)
	if err != nil {
		return Network{}, err
	}
	rec := Network{
		ID: dn.ID, Name: cfg.Name, Driver: cfg.Driver, Created: time.Now(),
		Internal: dn.Internal, Attachable: cfg.Attachable, IPAMDriver: cfg.IPAMDriver, IPAMOptions: cfg.IPAMOptions,
		Options: dn.Options, Labels: cfg.Labels, UserSubnet: userSubnet(cfg.Pools, false), DriverState: dn.State,
		UserSubnet6: userSubnet(cfg.Pools, true),
		EnableIPv6:  cfg.EnableIPv6,
	}
	build := func(vni uint32, subnets []netip.Prefix) ([]byte, error) {
		r := copyNetwork(rec)
		r.SegmentID = vni
		r.IPAM = nil
		for _, s := range subnets {
			p := Pool{Subnet: s} // a default subnet the store picked
			if i := slices.IndexFunc(pools, func(p Pool) bool { return p.Subnet == s }); i >= 0 {
				p = pools[i]
			}
			ip, err := ipam.NewPool(p.config())
			if err != nil {
				return nil, errdefs.Invalid("%w", err)
			}
			p.Gateway = ip.Gateway()
			r.IPAM = append(r.IPAM, p)
		}
		return json.Marshal(r)
	}
	ctx, cancel := opContext()
	defer cancel()
	nr, err := c.cluster.CreateNetwork(ctx, rec.ID, rec.Name, want, append(c.usedSubnets(), host...), build)
	if err != nil {
		return Network{}, err
	}
	// What the store holds is the network (build may have run again after the write).
	if err := json.Unmarshal(nr.Spec, &rec); err != nil {
		return Network{}, fmt.Errorf("reading back network %s from the cluster store: %w", rec.Name, err)
	}
	faults.Point("global-network-claimed")
	// A view of the store older than the creation does not know the network yet: syncCluster
	// must not take it for one removed elsewhere.
	c.storeRev[rec.ID] = nr.Revision
	n, err := c.materialize(rec)
	if err != nil {
		if _, derr := c.cluster.DeleteNetwork(ctx, nr); derr != nil {
			slog.Error("withdrawing a global network whose local creation failed", "network", rec.Name, "err", derr)
		}
		return Network{}, err
	}
	return copyNetwork(n.rec), nil
}

// materialize builds this host's copy of a global network: pools, local record, kernel
// objects, firewall. On error it leaves nothing behind.
func (c *Controller) materialize(rec Network) (*network, error) {
	n, err := c.openNetwork(rec)
	if err != nil {
		return nil, err
	}
	if err := c.store.Put(store.Networks, rec.ID, n.rec); err != nil {
		c.releasePools(n)
		return nil, err
	}
	if err := c.driver(n).CreateNetwork(n.driverView()); err != nil {
		if derr := c.store.Delete(store.Networks, rec.ID); derr != nil {
			return nil, errors.Join(err, derr)
		}
		c.releasePools(n)
		return nil, err
	}
	c.networks[rec.ID] = n
	if fn, ok := c.firewallNetwork(n.rec); ok {
		if err := c.fw.AddNetwork(fn); err != nil {
			if rerr := c.removeLocalCopy(n); rerr != nil {
				slog.Error("rolling back a network whose firewall rules failed", "network", n.rec.Name, "err", rerr)
			}
			return nil, fmt.Errorf("programming the firewall of network %s: %w", n.rec.Name, err)
		}
	}
	return n, nil
}

// removeLocalCopy takes this host's copy of a network away (the cluster's record is not touched).
func (c *Controller) removeLocalCopy(n *network) error {
	if err := c.deleteNetwork(n); err != nil {
		return err
	}
	c.dnsTable.RemoveNetwork(n.rec.Name)
	delete(c.remoteNames, n.rec.ID)
	delete(c.appliedPeers, n.rec.ID)
	if fn, ok := c.firewallNetwork(n.rec); ok {
		if err := c.fw.RemoveNetwork(fn.Bridge); err != nil {
			return fmt.Errorf("removing the firewall elements of network %s: %w", n.rec.Name, err)
		}
	}
	return nil
}

// removeGlobalNetwork removes a global network from the cluster (refused while any host has
// an endpoint on it), then here; the other hosts follow through their watch.
func (c *Controller) removeGlobalNetwork(n *network) error {
	if eps := c.networkEndpoints(n.rec.ID); len(eps) > 0 {
		return errdefs.Forbidden("error while removing network: network %s id %s has active endpoints (%s); disconnect or remove them first",
			n.rec.Name, n.rec.ID, eps[0].ContainerName)
	}
	if c.cluster == nil {
		return errNoCluster
	}
	ctx, cancel := opContext()
	defer cancel()
	rev, err := c.cluster.DeleteNetwork(ctx, clusterRecord(n.rec))
	if err != nil {
		return err
	}
	// A view of the store older than the removal still shows the network: syncCluster must
	// not build it again from one.
	c.storeRev[n.rec.ID] = rev
	return c.removeLocalCopy(n)
}

func clusterRecord(rec Network) cluster.NetworkRecord {
	nr := cluster.NetworkRecord{ID: rec.ID, Name: rec.Name, SegmentID: rec.SegmentID}
	for _, p := range rec.IPAM {
		nr.Subnets = append(nr.Subnets, p.Subnet)
	}
	return nr
}

// endpointRecord is what the cluster store publishes of a local endpoint.
func endpointRecord(ep *Endpoint, hostname string) cluster.EndpointRecord {
	names := append([]string{ep.ContainerName}, ep.Aliases...)
	if hostname != "" && hostname != ep.ContainerID[:12] {
		names = append(names, hostname)
	}
	names = append(names, ep.ContainerID[:12])
	return cluster.EndpointRecord{ID: ep.ID, NetworkID: ep.NetworkID, ContainerID: ep.ContainerID,
		Address: ep.Address, Address6: ep.Address6, MAC: ep.MAC, Names: names}
}

// publishEndpoint publishes a new endpoint of a global network.
func (c *Controller) publishEndpoint(n *network, ep *Endpoint, hostname string) error {
	if c.cluster == nil || !c.isGlobal(n.rec) {
		return nil
	}
	ctx, cancel := opContext()
	defer cancel()
	if err := c.cluster.PublishEndpoint(ctx, endpointRecord(ep, hostname)); err != nil {
		return err
	}
	faults.Point("endpoint-published")
	return nil
}

// withdrawEndpoint deletes an endpoint's record from the cluster; a store that cannot be
// reached is not a reason to keep a container: the reconcile loop deletes the record later.
func (c *Controller) withdrawEndpoint(n *network, ep *Endpoint) {
	if c.cluster == nil || !c.isGlobal(n.rec) {
		return
	}
	ctx, cancel := opContext()
	defer cancel()
	if err := c.cluster.WithdrawEndpoint(ctx, ep.NetworkID, ep.ID); err != nil {
		slog.Warn("the cluster store did not take an endpoint's removal; it will be retried", "endpoint", ep.ID[:12], "err", err)
	}
}
