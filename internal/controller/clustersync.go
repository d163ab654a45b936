package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/cnet-dev/cnet/internal/cluster"
	"github.com/cnet-dev/cnet/internal/dns"
	"github.com/cnet-dev/cnet/internal/driver"
)

// ReconcileInterval is how often the controller applies the cluster store's view even when
// no event came: what an event cannot tell (an FDB entry deleted by hand, an event lost) is
// repaired within it.
const ReconcileInterval = 2 * time.Second

// AdoptClusterEndpoints hands the endpoints this host kept across a restart to the cluster
// store, which writes them under the new lease. The daemon calls it after Recover and before
// starting the store's loops.
func (c *Controller) AdoptClusterEndpoints() {
	if c.cluster == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ep := range c.endpoints {
		if n := c.networks[ep.NetworkID]; n != nil && c.isGlobal(n.rec) {
			c.cluster.AdoptEndpoint(endpointRecord(ep, ep.Hostname))
		}
	}
}

// RunCluster applies the cluster store's view each time it changes and every
// ReconcileInterval, until ctx ends.
func (c *Controller) RunCluster(ctx context.Context) {
	if c.cluster == nil {
		return
	}
	tick := time.NewTicker(ReconcileInterval)
	defer tick.Stop()
	full := true
	for {
		c.syncCluster(full)
		select {
		case <-ctx.Done():
			return
		case <-c.cluster.Changed():
			full = false
		case <-tick.C:
			full = true
		}
	}
}

// syncCluster makes this host match the cluster store's view: global networks created
// elsewhere are built here, ones removed elsewhere are taken down (once no local endpoint
// uses them), and each global network's remote endpoints become the driver's peers and the
// resolver's names. Before the store was listed once, or while it cannot be reached, the view
// is the last one seen: nothing is flushed because etcd is away.
//
// With full unset (an event), a network whose remote endpoints are the ones last applied is
// skipped: most events are another network's, or this host's own endpoints coming back
// through the watch. Every ReconcileInterval the pass is full, kernel reads included, which is
// what repairs drift no event reports (an entry deleted by hand).
func (c *Controller) syncCluster(full bool) {
	snap := c.cluster.Snapshot()
	if !snap.Synced {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]string, 0, len(snap.Networks))
	for id := range snap.Networks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if c.networks[id] != nil || snap.Revision < c.storeRev[id] {
			continue // here already, or removed here after this view was taken
		}
		var rec Network
		if err := json.Unmarshal(snap.Networks[id].Spec, &rec); err != nil {
			slog.Error("a global network's record in the cluster store is unreadable", "network", snap.Networks[id].Name, "err", err)
			continue
		}
		if clash := c.networkNamed(rec.Name); clash != nil {
			slog.Error("a global network has the name of a network of this host; it is not built here", "network", rec.Name)
			continue
		}
		if _, err := c.materialize(rec); err != nil {
			slog.Error("building a global network created on another host", "network", rec.Name, "err", err)
			continue
		}
		slog.Info("global network created in the cluster", "network", rec.Name, "vni", rec.SegmentID)
	}
	remote := map[string][]cluster.EndpointRecord{}
	for _, ep := range snap.Endpoints {
		if ep.Host != c.cluster.HostID() {
			remote[ep.NetworkID] = append(remote[ep.NetworkID], ep)
		}
	}
	for _, n := range c.sortedNetworks() {
		if !c.isGlobal(n.rec) {
			continue
		}
		if _, ok := snap.Networks[n.rec.ID]; !ok && snap.Revision >= c.storeRev[n.rec.ID] {
			if len(c.networkEndpoints(n.rec.ID)) == 0 {
				if err := c.removeLocalCopy(n); err != nil {
					slog.Error("removing a global network removed from the cluster", "network", n.rec.Name, "err", err)
				} else {
					slog.Info("global network removed from the cluster", "network", n.rec.Name)
				}
				continue
			}
		}
		eps := remote[n.rec.ID]
		sort.Slice(eps, func(i, j int) bool { return eps[i].ID < eps[j].ID })
		fp := fingerprint(eps)
		if prev, ok := c.appliedPeers[n.rec.ID]; ok && !full && prev == fp {
			continue
		}
		c.appliedPeers[n.rec.ID] = fp
		if ps, ok := c.driver(n).(driver.PeerSyncer); ok {
			if err := ps.SyncPeers(n.driverView(), peersOf(eps)); err != nil {
				slog.Error("programming the peers of a global network", "network", n.rec.Name, "err", err)
				delete(c.appliedPeers, n.rec.ID) // try again at the next event
			}
		}
		c.syncRemoteNames(n, eps)
	}
}

// fingerprint identifies a set of remote endpoints as applied: what the kernel and the resolver
// are told of them.
func fingerprint(eps []cluster.EndpointRecord) string {
	var b strings.Builder
	for _, ep := range eps {
		fmt.Fprintf(&b, "%s %s %s %s %s %v;", ep.ID, ep.Address, ep.Address6, ep.MAC, ep.VTEP, ep.Names)
	}
	return b.String()
}

func peersOf(eps []cluster.EndpointRecord) []driver.Peer {
	out := make([]driver.Peer, 0, len(eps))
	for _, ep := range eps {
		mac, err := net.ParseMAC(ep.MAC)
		if err != nil || !ep.Address.IsValid() || !ep.VTEP.IsValid() {
			continue
		}
		out = append(out, driver.Peer{EndpointID: ep.ID, Address: ep.Address.Addr(), Address6: ep.Address6.Addr(), MAC: mac, VTEP: ep.VTEP, Host: ep.HostName})
	}
	return out
}

// syncRemoteNames makes the resolver's records of n's remote endpoints the given ones.
func (c *Controller) syncRemoteNames(n *network, eps []cluster.EndpointRecord) {
	had := c.remoteNames[n.rec.ID]
	now := make(map[string]bool, len(eps))
	for _, ep := range eps {
		now[ep.ID] = true
		c.dnsTable.Upsert(n.rec.Name, dns.Record{EndpointID: ep.ID, ContainerID: ep.ContainerID, Names: ep.Names, IPv4: ep.Address.Addr(), IPv6: ep.Address6.Addr()})
	}
	for id := range had {
		if !now[id] {
			c.dnsTable.Remove(n.rec.Name, id)
		}
	}
	c.remoteNames[n.rec.ID] = now
}

// networkNamed is the network called name, or nil.
func (c *Controller) networkNamed(name string) *network {
	for _, n := range c.networks {
		if n.rec.Name == name {
			return n
		}
	}
	return nil
}
