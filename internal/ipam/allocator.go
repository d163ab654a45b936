package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

// Allocator is what a network's addresses come from: libnetwork's ipamapi, narrowed to what
// cnet uses. The controller asks it for a pool when a network is created (and again, with the
// recorded configuration, when the daemon starts) and for an address each time an endpoint
// joins. Local serves networks on one host; a cluster-wide allocator can serve networks whose
// addresses must be unique across hosts. Types are netip values, which carry IPv4 and IPv6
// alike (Local serves IPv4 pools today).
type Allocator interface {
	// RequestPool reserves a pool for a network. With req.Subnet zero, the allocator picks a
	// subnet from its defaults that overlaps none of req.Avoid.
	RequestPool(req PoolRequest) (PoolInfo, error)
	// ReleasePool gives a pool back; its addresses go with it.
	ReleasePool(id PoolID) error
	// RequestAddress hands out want (a static --ip) or, when want is zero, the next free
	// address of the pool.
	RequestAddress(id PoolID, want netip.Addr) (netip.Addr, error)
	// ReleaseAddress gives back an address RequestAddress handed out.
	ReleaseAddress(id PoolID, a netip.Addr) error
}

// PoolID names one pool of one network within an allocator.
type PoolID string

// PoolRequest is one pool of a network, as configured (Config) or to be picked (zero Subnet).
type PoolRequest struct {
	// Owner is the network the pool belongs to: a network has one pool per subnet.
	Owner string
	Config
	// Avoid lists prefixes a picked subnet must not overlap: other networks' subnets, the
	// host's routes and addresses.
	Avoid []netip.Prefix
}

// PoolInfo is what a requested pool turned out to be.
type PoolInfo struct {
	ID      PoolID
	Subnet  netip.Prefix
	IPRange netip.Prefix
	Gateway netip.Addr // given or defaulted
}

// ErrUnknownPool is returned for a pool ID the allocator does not hold.
var ErrUnknownPool = errors.New("unknown address pool")

// Local is the allocator of networks that live on this host: pools in memory, rebuilt from
// the controller's records when the daemon starts. Safe for concurrent use (its lock is a
// leaf: it calls nothing while holding it).
type Local struct {
	mu    sync.Mutex
	pools map[PoolID]*Pool
}

// NewLocal returns an empty local allocator.
func NewLocal() *Local { return &Local{pools: map[PoolID]*Pool{}} }

// RequestPool implements Allocator.
func (l *Local) RequestPool(req PoolRequest) (PoolInfo, error) {
	cfg := req.Config
	if !cfg.Subnet.IsValid() {
		s, err := PickDefault(req.Avoid)
		if err != nil {
			return PoolInfo{}, err
		}
		cfg.Subnet = s
	}
	p, err := NewPool(cfg)
	if err != nil {
		return PoolInfo{}, err
	}
	id := PoolID(req.Owner + "/" + cfg.Subnet.String())
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, dup := l.pools[id]; dup {
		return PoolInfo{}, fmt.Errorf("pool %s of network %s: %w", cfg.Subnet, req.Owner, ErrOverlap)
	}
	l.pools[id] = p
	return PoolInfo{ID: id, Subnet: p.Subnet(), IPRange: p.IPRange(), Gateway: p.Gateway()}, nil
}

// ReleasePool implements Allocator.
func (l *Local) ReleasePool(id PoolID) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.pools[id]; !ok {
		return fmt.Errorf("releasing pool %s: %w", id, ErrUnknownPool)
	}
	delete(l.pools, id)
	return nil
}

// RequestAddress implements Allocator.
func (l *Local) RequestAddress(id PoolID, want netip.Addr) (netip.Addr, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.pools[id]
	if !ok {
		return netip.Addr{}, fmt.Errorf("requesting an address of pool %s: %w", id, ErrUnknownPool)
	}
	if !want.IsValid() {
		return p.Allocate()
	}
	if err := p.AllocateStatic(want); err != nil {
		return netip.Addr{}, err
	}
	return want.Unmap(), nil
}

// ReleaseAddress implements Allocator.
func (l *Local) ReleaseAddress(id PoolID, a netip.Addr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.pools[id]
	if !ok {
		return fmt.Errorf("releasing %s of pool %s: %w", a, id, ErrUnknownPool)
	}
	return p.Release(a)
}
