package controller

import (
	"net/netip"
	"sort"

	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/errdefs"
)

// PeerDiagnosis compares, for one remote endpoint of a global network, what the cluster store
// says with what this host's kernel has. Either side may be missing.
type PeerDiagnosis struct {
	Endpoint   string     // endpoint ID (short), from the store
	Names      []string   // container name first, from the store
	Host       string     // the peer's host name
	IP         netip.Addr // from the store, or the kernel's neighbour entry
	MAC        string
	VTEP       netip.Addr // where the store says the endpoint lives
	KernelVTEP netip.Addr // where this host's FDB sends its MAC (zero: no entry)
	KernelIP   netip.Addr // what this host's neighbour table maps its MAC from (zero: none)
	Status     string     // "ok", or what differs
}

// Diagnosis is `network inspect --verbose`'s view of a global network.
type Diagnosis struct {
	StoreSynced bool // the store has been listed at least once since the daemon started
	Peers       []PeerDiagnosis
}

// DiagnoseNetwork compares a global network's remote endpoints in the cluster store with this
// host's tunnel entries, flagging every difference (the reconcile loop repairs them within
// ReconcileInterval; a difference that stays says why traffic fails).
func (c *Controller) DiagnoseNetwork(ref string) (Diagnosis, error) {
	c.mu.Lock()
	n, err := c.resolveNetwork(ref)
	if err != nil {
		c.mu.Unlock()
		return Diagnosis{}, err
	}
	dv := n.driverView()
	ps, ok := c.driver(n).(driver.PeerSyncer)
	c.mu.Unlock()
	if !ok || c.cluster == nil {
		return Diagnosis{}, errdefs.Invalid("network %s is not a global network: it has no peers on other hosts", n.rec.Name)
	}
	snap := c.cluster.Snapshot()
	kernel, err := ps.KernelPeers(dv)
	if err != nil {
		return Diagnosis{}, err
	}
	byMAC := map[string]driver.Peer{}
	for _, p := range kernel {
		byMAC[p.MAC.String()] = p
	}
	d := Diagnosis{StoreSynced: snap.Synced}
	for _, ep := range snap.Endpoints {
		if ep.NetworkID != dv.ID || ep.Host == c.cluster.HostID() {
			continue
		}
		pd := PeerDiagnosis{Endpoint: ep.ID[:12], Names: ep.Names, Host: ep.HostName, IP: ep.Address.Addr(), MAC: ep.MAC, VTEP: ep.VTEP}
		k, have := byMAC[ep.MAC]
		delete(byMAC, ep.MAC)
		pd.KernelVTEP, pd.KernelIP = k.VTEP, k.Address
		switch {
		case !have:
			pd.Status = "missing from this host's kernel: no FDB or neighbour entry"
		case k.VTEP != ep.VTEP:
			pd.Status = "the FDB entry points at the wrong VTEP (or is missing)"
		case k.Address != pd.IP:
			pd.Status = "the neighbour entry is missing or maps another address"
		default:
			pd.Status = "ok"
		}
		d.Peers = append(d.Peers, pd)
	}
	for mac, k := range byMAC {
		d.Peers = append(d.Peers, PeerDiagnosis{MAC: mac, IP: k.Address, KernelVTEP: k.VTEP, KernelIP: k.Address,
			Status: "stale: in this host's kernel, not in the cluster store"})
	}
	sort.Slice(d.Peers, func(i, j int) bool { return d.Peers[i].IP.Less(d.Peers[j].IP) })
	return d, nil
}
