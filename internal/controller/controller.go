// Package controller is the CNM core: it owns networks, endpoints and sandboxes, orders the
// steps that build them (IPAM, store, driver, sandbox) and undoes the steps already taken when
// a later one fails. It persists every record before touching the kernel, so that after a crash
// the record tells recovery what may exist and must be completed or removed.
package controller

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/cnet-dev/cnet/internal/cluster"
	"github.com/cnet-dev/cnet/internal/dns"
	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/firewall"
	"github.com/cnet-dev/cnet/internal/ipam"
	"github.com/cnet-dev/cnet/internal/portmap"
	"github.com/cnet-dev/cnet/internal/portmap/hostlocal"
	"github.com/cnet-dev/cnet/internal/store"
)

// Config is what the daemon gives the controller.
type Config struct {
	Store *store.Store
	// ExecRoot holds runtime state that dies with the machine: sandbox namespace files.
	ExecRoot string
	// Drivers are the network drivers this daemon has, filled by the binary's main (see
	// driver/builtin); the controller knows them only through the driver interfaces.
	Drivers *Drivers
	// IPAM are the address allocators by name (a network's IPAMDriver); "default" is an
	// ipam.Local unless given.
	IPAM map[string]ipam.Allocator
	// Namespaces makes and reaches sandbox namespaces: the kernel's unless given (unit tests
	// give a fake, to drive every rollback without root).
	Namespaces Namespaces
	// Firewall programs NAT, isolation and published ports: cnet's nftables table in the
	// daemon's namespace unless given (unit tests give a fake).
	Firewall Firewall
	// Cluster is the cluster store, for global (overlay) networks; nil on a daemon started
	// without --cluster-store, which then refuses them.
	Cluster *cluster.Store
	// UserlandProxy also carries published ports in the daemon (goroutines), for hosts where
	// kernel NAT cannot serve every path.
	UserlandProxy bool
	// NoConnectTranslation leaves the host's own TCP connections to published ports to NAT,
	// as Docker does, instead of translating them at connect() (see package hostlocal).
	NoConnectTranslation bool
	// DefaultIPv6Pool is where networks created with --ipv6 and no IPv6 --subnet get a /64
	// (Docker's default-address-pools for IPv6). Unset: ipam.ULAPrefix("cnet") — the daemon
	// passes the one of its engine ID.
	DefaultIPv6Pool netip.Prefix
}

// ClusterStore is the cluster store (an alias, so that the daemon can hand it over without
// depending on package cluster).
type ClusterStore = cluster.Store

// Drivers is the registry of network drivers (an alias, so that the daemon can hand it over
// without depending on the driver package).
type Drivers = driver.Registry

// Controller is safe for concurrent use; operations are serialised by one mutex, which keeps
// IPAM, the store and the kernel in step without finer locking.
type Controller struct {
	mu       sync.Mutex
	store    *store.Store
	execRoot string
	drivers  *driver.Registry
	ipams    map[string]ipam.Allocator
	ns       Namespaces
	sboxes   map[string]*sbox // running sandboxes by container ID
	// reserved holds the reservations (handoff.go) by reservationKey.
	reserved map[string]bool

	// The embedded DNS: one table of names for every network, one forwarder with the
	// daemon-wide bound on queries in flight upstream.
	dnsTable *dns.Table
	dnsFwd   *dns.Forwarder

	fw            Firewall
	v6Pool        netip.Prefix       // see Config.DefaultIPv6Pool
	ports         *portmap.Allocator // host ports held by published container ports
	userlandProxy bool
	// local translates the host's own TCP connections to published ports at connect(), so
	// they need no NAT; nil where the host has no cgroup v2 or BPF (NAT then serves them).
	local     *hostlocal.Redirector
	networks  map[string]*network  // by ID
	endpoints map[string]*Endpoint // by ID
	seq       uint64               // join order, for choosing the gateway endpoint

	cluster *cluster.Store
	// remoteNames are the endpoints of other hosts whose names this host's resolver holds,
	// by global network ID (see syncRemoteNames).
	remoteNames map[string]map[string]bool
	// appliedPeers fingerprints the remote endpoints last applied per global network, so that
	// an event that changes none of a network's skips it (see syncCluster).
	appliedPeers map[string]string
	// storeRev is the cluster store's revision at which this host created or removed a
	// global network: a store view older than it is not acted on for that network.
	storeRev map[string]int64
}

type network struct {
	rec   Network
	pools []ipam.PoolInfo // from the network's allocator, one per rec.IPAM entry
}

// New loads the state, recreates the pools' allocations from the endpoints on record and makes
// sure the predefined networks exist. Kernel state is reconciled later by Recover, once the
// daemon knows which containers are alive.
func New(cfg Config) (*Controller, error) {
	c := &Controller{
		store:         cfg.Store,
		execRoot:      cfg.ExecRoot,
		networks:      map[string]*network{},
		endpoints:     map[string]*Endpoint{},
		drivers:       cfg.Drivers,
		ipams:         map[string]ipam.Allocator{"default": ipam.NewLocal()},
		ns:            cfg.Namespaces,
		sboxes:        map[string]*sbox{},
		reserved:      map[string]bool{},
		dnsTable:      dns.NewTable(),
		dnsFwd:        dns.NewForwarder(dns.ForwarderConfig{}),
		fw:            cfg.Firewall,
		ports:         portmap.NewAllocator(portmap.EphemeralRange()),
		userlandProxy: cfg.UserlandProxy,
		v6Pool:        cfg.DefaultIPv6Pool,
		cluster:       cfg.Cluster,
		remoteNames:   map[string]map[string]bool{},
		appliedPeers:  map[string]string{},
		storeRev:      map[string]int64{},
	}
	if !c.v6Pool.IsValid() {
		c.v6Pool = ipam.ULAPrefix("cnet") // a random-looking global ID, not fd00::/48's zero one
	}
	c.ports.Probe = portmap.ProbeHost
	if c.ns == nil {
		c.ns = kernelNamespaces{}
	}
	if err := c.openServices(cfg); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	for name, a := range cfg.IPAM {
		c.ipams[name] = a
	}
	if c.drivers == nil {
		return nil, fmt.Errorf("building the controller: no network drivers given")
	}
	err := store.Load(c.store, store.Networks, func(_ string, rec *Network) error {
		if _, err := c.drivers.Driver(rec.Driver); err != nil {
			return fmt.Errorf("restoring network %s: %w", rec.Name, err)
		}
		n, err := c.openNetwork(*rec)
		if err != nil {
			return err
		}
		c.networks[rec.ID] = n
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := c.restoreReservations(); err != nil {
		return nil, err
	}
	err = store.Load(c.store, store.Endpoints, func(_ string, ep *Endpoint) error {
		n := c.networks[ep.NetworkID]
		if n == nil {
			// Its network is gone: a crash between removing the network and its last
			// endpoint's record cannot happen (removal refuses active endpoints), so this is
			// a record of nothing; drop it.
			return c.store.Delete(store.Endpoints, ep.ID)
		}
		if ep.Address.IsValid() && !ep.Reserved { // a reserved address came back with its reservation
			if err := c.restoreAddress(n, ep, ep.Address.Addr()); err != nil {
				return err
			}
		}
		if ep.Address6.IsValid() {
			if err := c.restoreAddress(n, ep, ep.Address6.Addr()); err != nil {
				return err
			}
		}
		c.endpoints[ep.ID] = ep
		c.seq = max(c.seq, ep.Seq)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := c.ensurePredefined(); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// openServices opens the kernel services the controller programs: the firewall (unless one is
// given) and the connect() translation (unless turned off, or the host cannot).
func (c *Controller) openServices(cfg Config) error {
	if c.fw == nil {
		fw, err := firewall.New(-1)
		if err != nil {
			return err
		}
		if err := fw.EnsureBase(); err != nil {
			fw.Close()
			return err
		}
		c.fw = fw
	}
	if !cfg.NoConnectTranslation {
		local, err := hostlocal.Attach()
		if err != nil {
			slog.Warn("published ports reach containers through NAT only, from this host too", "err", err)
		} else {
			c.local = local
		}
	}
	return nil
}

// Close releases the firewall's netlink socket and the connect() translation. Containers and
// their networking stay: the firewall's rules serve the host's own connections too once the
// translation is detached.
func (c *Controller) Close() error {
	if c.local != nil {
		c.local.Close()
		c.local = nil
	}
	return c.fw.Close()
}

// driver is n's driver; every recorded network's driver is registered (New checks).
func (c *Controller) driver(n *network) driver.Driver {
	d, _ := c.drivers.Driver(n.rec.Driver)
	return d
}

// allocator is the IPAM of n; every recorded network's is known (openNetwork checks).
func (c *Controller) allocator(n *network) ipam.Allocator {
	a, _ := c.allocatorFor(n.rec)
	return a
}

// addressRestorer is an allocator that takes a recorded address back at start without
// checking it now (the cluster's, whose store may be down): it confirms it later.
type addressRestorer interface {
	RestoreAddress(id ipam.PoolID, a netip.Addr) error
}

// openNetwork requests a recorded network's pools again, as recorded.
func (c *Controller) openNetwork(rec Network) (*network, error) {
	a, ok := c.allocatorFor(rec)
	if !ok {
		return nil, fmt.Errorf("restoring network %s: its IPAM driver %q is not known to this daemon", rec.Name, rec.IPAMDriver)
	}
	n := &network{rec: rec}
	for _, p := range rec.IPAM {
		info, err := a.RequestPool(ipam.PoolRequest{Owner: rec.ID, Config: p.config()})
		if err != nil {
			c.releasePools(n)
			return nil, fmt.Errorf("restoring pool %s of network %s: %w", p.Subnet, rec.Name, err)
		}
		n.pools = append(n.pools, info)
	}
	return n, nil
}

// releasePools gives n's pools back to its allocator (a network removed or never made).
func (c *Controller) releasePools(n *network) {
	for _, p := range n.pools {
		if err := c.allocator(n).ReleasePool(p.ID); err != nil {
			slog.Error("releasing an address pool", "network", n.rec.Name, "pool", p.Subnet, "err", err)
		}
	}
	n.pools = nil
}

// restoreAddress takes a recorded endpoint's address a from its network's allocator again.
func (c *Controller) restoreAddress(n *network, ep *Endpoint, a netip.Addr) error {
	pool := n.poolFor(a)
	if pool == nil {
		return fmt.Errorf("restoring endpoint %s: address %s is in no pool of network %s", ep.ID[:12], a, n.rec.Name)
	}
	if r, ok := c.allocator(n).(addressRestorer); ok {
		if err := r.RestoreAddress(pool.ID, a); err != nil {
			return fmt.Errorf("restoring address %s of endpoint %s: %w", a, ep.ID[:12], err)
		}
	} else if _, err := c.allocator(n).RequestAddress(pool.ID, a); err != nil {
		return fmt.Errorf("restoring address %s of endpoint %s: %w", a, ep.ID[:12], err)
	}
	return nil
}

// hasFamily reports whether n has a pool of IPv6 (v6) or IPv4 (!v6) addresses.
func (n *network) hasFamily(v6 bool) bool {
	for _, p := range n.pools {
		if p.Subnet.Addr().Is6() == v6 {
			return true
		}
	}
	return false
}

// poolFor returns the pool whose subnet holds a, or nil.
func (n *network) poolFor(a netip.Addr) *ipam.PoolInfo {
	for i := range n.pools {
		if n.pools[i].Subnet.Contains(a) {
			return &n.pools[i]
		}
	}
	return nil
}

// resolveNetwork finds a network by full ID, exact name, or unique ID prefix (Docker's order).
func (c *Controller) resolveNetwork(ref string) (*network, error) {
	if ref == "" {
		return nil, errdefs.Invalid("no network given")
	}
	if n, ok := c.networks[ref]; ok {
		return n, nil
	}
	for _, n := range c.networks {
		if n.rec.Name == ref {
			return n, nil
		}
	}
	var found []*network
	for id, n := range c.networks {
		if strings.HasPrefix(id, ref) {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 0:
		return nil, errdefs.NotFound("network %s not found", ref)
	case 1:
		return found[0], nil
	default:
		return nil, errdefs.Invalid("network %s is ambiguous (%d matches found based on ID prefix)", ref, len(found))
	}
}

// sortedNetworks returns the networks by name, for stable listings.
func (c *Controller) sortedNetworks() []*network {
	out := make([]*network, 0, len(c.networks))
	for _, n := range c.networks {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rec.Name < out[j].rec.Name })
	return out
}

// SandboxPath is where the namespace of a container's sandbox is bind-mounted.
func (c *Controller) SandboxPath(containerID string) string {
	return filepath.Join(c.execRoot, "netns", containerID[:12])
}

// NewID returns a random 64-hex identifier, as Docker's.
func NewID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("reading random bytes: %v", err))
	}
	return hex.EncodeToString(b[:])
}
